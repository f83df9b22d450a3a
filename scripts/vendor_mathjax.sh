#!/usr/bin/env bash
# Copy the MathJax 3 files the book serves itself into book/_mathjax/mathjax (about 2.1 MB): the
# combined TeX + CommonHTML component, its woff-v2 fonts, the TeX extensions it loads on demand
# (autoload) and the assistive-MathML extension, with MathJax's licence (Apache 2.0).
# Needs npm and its registry; the committed copy came from mathjax@3.2.2.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
npm install --prefix "$tmp" --no-audit --no-fund "mathjax@${version}" >/dev/null
src="$tmp/node_modules/mathjax"
dst=book/_mathjax/mathjax
rm -rf "$dst"
mkdir -p "$dst/output/chtml/fonts" "$dst/input/tex" "$dst/a11y"
cp "$src/es5/tex-chtml.js" "$dst/"
cp -r "$src/es5/output/chtml/fonts/woff-v2" "$dst/output/chtml/fonts/"
cp -r "$src/es5/input/tex/extensions" "$dst/input/tex/"
cp "$src/es5/a11y/assistive-mml.js" "$dst/a11y/"
cp "$src/LICENSE" "$dst/LICENSE"
echo "MathJax $(node -p "require('$src/package.json').version") -> $dst ($(du -sh "$dst" | cut -f1))"
