#!/usr/bin/env bash
# Headless Chromium for the book's browser test (tests/test_book.py), from Debian's packages.
# Installs only where it is missing and this is Debian/Ubuntu as root; otherwise says why and exits 0
# (the browser test then skips and names the reason). A few minutes with the download.
set -uo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: not installed and cannot be (needs root and apt-get); the browser test will skip"
  exit 0
fi
echo "chromium: installing Debian's package for the book's browser test"
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq chromium; } >/tmp/chromium-install.log 2>&1; then
  echo "chromium: apt-get failed (see /tmp/chromium-install.log); the browser test will skip"
fi
exit 0
