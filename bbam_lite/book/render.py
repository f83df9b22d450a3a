"""Render the book to HTML with Jupyter Book 1.x, offline.

``book/`` holds the pages (``intro.md``, ``data.md``), ``_config.yml``, ``_toc.yml`` listing all
chapters, and ``_mathjax/`` (MathJax 3 from npm, served from ``_static/mathjax`` so formulas render
without a network). The executed notebooks are taken from a chapters folder (``book/chapters`` by
default, where ``bbam-lite book run`` writes them). The build

1. stages the pages, the chapters and ``docs/`` (pages include design notes from it) in
   ``OUT/stage``, with a table of contents reduced to the chapters present (missing chapters are
   reported, not fatal, so the book builds while chapters are being written); each chapter gets
   the reader's view of its parameters and a "Run this chapter" box, the "Execution
   statistics" page is generated from the run markers, and the index's chapter list and run
   dates replace its marker line (:mod:`bbam_lite.book.pages`); formulas in a chapter's headings
   become plain text (:func:`plain_headings`), since a page's title, the search results and the
   tables of contents show a heading's text where MathJax does not run;
2. runs ``jupyter-book build`` with warnings as errors (``-W -n --keep-going``), execution off;
3. moves the HTML to ``OUT/html`` and refuses the result if any page would fetch a resource from
   another host (scripts, stylesheets, images, fonts, frames).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nbformat
import yaml

from bbam_lite.book.pages import (
    GENERATED,
    STATISTICS_PAGE,
    read_markers,
    reader_view,
    statistics_page,
)
from bbam_lite.book.runner import chapters_in

PAGE_SUFFIXES = (".md", ".ipynb")
MATHJAX_ENTRY = Path("_mathjax") / "mathjax" / "tex-chtml.js"


#: TeX that a heading may hold, as the plain text its title and search entry show instead.
TEX_TEXT = {
    r"\alpha": "α", r"\beta": "β", r"\theta": "θ", r"\lambda": "λ", r"\mu": "μ", r"\sigma": "σ",
    r"\Phi": "Φ", r"\lVert": "‖", r"\rVert": "‖", r"\|": "‖", r"\times": "×", r"\le": "≤", r"\ge": "≥",
}  # fmt: skip
_INLINE_MATH = re.compile(r"\$([^$]+)\$")
_HEADING = re.compile(r"^ {0,3}#{1,6}\s")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


class BookBuildError(ValueError):
    """The book could not be built; one line with the reason and where to look."""


@dataclass
class BuildResult:
    index: Path
    chapters: list[str]
    missing: list[str] = field(default_factory=list)


def _present(stage: Path, entry: str) -> bool:
    return any((stage / f"{entry}{s}").is_file() for s in ("", *PAGE_SUFFIXES))


def plain_math(tex: str) -> str | None:
    """Inline math as plain text (``\\theta_{fg}`` -> ``θ_fg``, as the prose writes it), or None where
    it needs more than letters, digits, subscripts and the symbols of :data:`TEX_TEXT`."""
    text = re.sub(r"\\[A-Za-z]+|\\\|", lambda m: TEX_TEXT.get(m.group(0), m.group(0)), tex)
    text = re.sub(r"_\{(\w+)\}", r"_\1", text)
    return None if re.search(r"[\\{}^]", text) else text.strip()


#: A chapter's markdown link to a design note, e.g. ``[results](../../docs/results.md)`` (the path
#: that works in the repository, from ``book/chapters/`` and ``notebooks/``).
_DOCS_LINK = re.compile(r"\]\((\.\./)+docs/([\w./-]+\.md)(#[\w-]*)?\)")


def docs_links(nb: nbformat.NotebookNode) -> None:
    """Point ``nb``'s links to ``docs/`` at the staged notes as downloads (``path:``), in place: the
    notes are not pages of the book (their own links lead all over the repository), so the book
    serves each linked note as a file, offline, where a page link would not resolve."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = _DOCS_LINK.sub(lambda m: f"](path:../../docs/{m.group(2)})", cell.source)


def plain_headings(nb: nbformat.NotebookNode) -> list[str]:
    """Rewrite the formulas of the markdown headings of ``nb`` (outside code fences) as plain text,
    in place; returns the headings whose TeX has no plain form (left unchanged)."""
    unconverted = []
    for cell in nb.cells:
        if cell.cell_type != "markdown" or "$" not in cell.source:
            continue
        lines, fenced = cell.source.split("\n"), False
        for i, line in enumerate(lines):
            if _FENCE.match(line):
                fenced = not fenced
            if fenced or not _HEADING.match(line) or "$" not in line:
                continue
            if any(plain_math(tex) is None for tex in _INLINE_MATH.findall(line)):
                unconverted.append(line.strip())
                continue
            lines[i] = _INLINE_MATH.sub(lambda m: plain_math(m.group(1)) or "", line)
        cell.source = "\n".join(lines)
    return unconverted


def filter_toc(toc: Any, stage: Path, missing: list[str]) -> Any:
    """The toc with every ``file`` entry absent from ``stage`` removed (appended to ``missing``);
    parts, chapter lists and sections left empty are dropped."""
    if isinstance(toc, list):
        kept = [filter_toc(item, stage, missing) for item in toc]
        return [k for k in kept if k is not None]
    if not isinstance(toc, dict):
        return toc
    if "file" in toc and not _present(stage, toc["file"]):
        missing.append(toc["file"])
        for key in ("sections", "chapters", "parts"):  # their pages go with their parent
            filter_toc(toc.get(key, []), stage, [])
        return None
    out = {}
    for key, value in toc.items():
        if key in ("parts", "chapters", "sections"):
            value = filter_toc(value, stage, missing)
            if not value:
                continue
        out[key] = value
    if "file" not in out and "root" not in out and not any(k in out for k in ("chapters", "sections")):
        return None  # a part without chapters
    return out


def toc_files(toc: Any) -> list[str]:
    """Every ``file`` (and the root) a toc names, in order."""
    if isinstance(toc, list):
        return [f for item in toc for f in toc_files(item)]
    if not isinstance(toc, dict):
        return []
    out = [toc["root"]] if "root" in toc else []
    if "file" in toc:
        out.append(toc["file"])
    for key in ("parts", "chapters", "sections"):
        out += toc_files(toc.get(key, []))
    return out


def stage_book(book_dir: Path, chapters_dir: Path, stage_root: Path) -> tuple[Path, list[str]]:
    """Copy pages, config, MathJax, ``docs/`` and the executed chapters into ``stage_root``."""
    book_dir = Path(book_dir)
    for name in ("_config.yml", "_toc.yml"):
        if not (book_dir / name).is_file():
            raise BookBuildError(f"{book_dir / name}: missing (is {book_dir} the book folder?)")
    if not (book_dir / MATHJAX_ENTRY).is_file():
        raise BookBuildError(
            f"{book_dir / MATHJAX_ENTRY}: missing; restore it with scripts/vendor_mathjax.sh (npm mathjax@3)"
        )
    shutil.rmtree(stage_root, ignore_errors=True)
    stage = stage_root / "book"
    stage.mkdir(parents=True)
    for item in book_dir.iterdir():
        if item.is_file() and item.suffix in (*PAGE_SUFFIXES, ".yml", ".bib"):
            shutil.copy2(item, stage / item.name)
    shutil.copytree(book_dir / "_mathjax", stage / "_mathjax")
    if (book_dir / "_static").is_dir():  # the book's stylesheet
        shutil.copytree(book_dir / "_static", stage / "_static")
    docs = book_dir.resolve().parent / "docs"
    if docs.is_dir():  # pages include design notes as ../docs/NAME.md
        shutil.copytree(docs, stage_root / "docs", ignore=shutil.ignore_patterns("measurements"))
    (stage / "chapters").mkdir()
    if Path(chapters_dir).is_dir():
        markers = read_markers(chapters_dir)
        for nb in chapters_in(chapters_dir):
            try:
                notebook = nbformat.read(nb, as_version=4)
            except (OSError, ValueError) as e:
                raise BookBuildError(f"{nb}: not a readable notebook ({e}); rerun its chapter") from None
            reader_view(notebook, nb.stem, markers.get(nb.stem))
            docs_links(notebook)
            raw = plain_headings(notebook)
            if raw:
                raise BookBuildError(
                    f"{nb}: heading {raw[0]!r} has TeX that its page title and search entry would "
                    f"show raw; write it in plain text (or add the symbol to render.TEX_TEXT)"
                )
            nbformat.write(notebook, stage / "chapters" / nb.name)
        (stage / f"{STATISTICS_PAGE}.md").write_text(statistics_page(chapters_dir), encoding="utf-8")
    for page in stage.glob("*.md"):  # the index's chapter list, the labs' cold times: from the records
        text = page.read_text(encoding="utf-8")
        for marker, write in GENERATED.items():
            if marker in text:
                text = text.replace(marker, write(chapters_dir))
                page.write_text(text, encoding="utf-8")
    toc = yaml.safe_load((book_dir / "_toc.yml").read_text(encoding="utf-8"))
    missing: list[str] = []
    reduced = filter_toc(toc, stage, missing)
    if not reduced or not _present(stage, reduced.get("root", "")):
        raise BookBuildError(f"{book_dir / '_toc.yml'}: its root page is missing")
    (stage / "_toc.yml").write_text(yaml.safe_dump(reduced, sort_keys=False), encoding="utf-8")
    return stage, missing


class _Resources(HTMLParser):
    """Collects the URLs a page loads by itself (not the links a reader may follow)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "audio", "video", "embed") and a.get("src"):
            self.urls.append(a["src"])
        if tag == "link" and a.get("href"):
            rel = (a.get("rel") or "").lower()
            if any(r in rel for r in ("stylesheet", "preload", "icon", "modulepreload", "manifest")):
                self.urls.append(a["href"])
        if tag == "object" and a.get("data"):
            self.urls.append(a["data"])


_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)""")
_CSS_IMPORT = re.compile(r"""@import\s+['"]([^'"]+)""")


def _remote(url: str) -> bool:
    return bool(re.match(r"^(https?:)?//", url.strip(), re.I))


def external_resources(html_dir: Path) -> list[tuple[str, str]]:
    """(file, url) for every resource a built page or stylesheet would fetch from another host."""
    html_dir = Path(html_dir)
    found = []
    for page in sorted(html_dir.rglob("*.html")):
        parser = _Resources()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        found += [(str(page.relative_to(html_dir)), u) for u in parser.urls if _remote(u)]
    for css in sorted(html_dir.rglob("*.css")):
        text = css.read_text(encoding="utf-8", errors="replace")
        urls = _CSS_URL.findall(text) + _CSS_IMPORT.findall(text)
        found += [(str(css.relative_to(html_dir)), u) for u in urls if _remote(u)]
    return found


def jupyter_book_command() -> list[str]:
    exe = Path(sys.executable).with_name("jupyter-book")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    if not found:
        raise BookBuildError("jupyter-book is not installed (pip install -e '.[dev]')")
    return [found]


def build_book(
    book_dir: Path = Path("book"), chapters_dir: Path | None = None, out_dir: Path | None = None
) -> BuildResult:
    """Build the HTML book into ``OUT/html`` (``OUT`` defaults to ``BOOK/_build``)."""
    book_dir = Path(book_dir)
    chapters_dir = Path(chapters_dir) if chapters_dir else book_dir / "chapters"
    out_dir = Path(out_dir) if out_dir else book_dir / "_build"
    stage, missing = stage_book(book_dir, chapters_dir, out_dir / "stage")
    cmd = [*jupyter_book_command(), "build", str(stage), "--all", "-W", "-n", "--keep-going", "-q"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    log = out_dir / "build.log"
    log.write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode != 0:
        problems = [ln for ln in (done.stdout + done.stderr).splitlines() if "WARNING" in ln or "ERROR" in ln]
        first = problems[0].strip() if problems else f"jupyter-book exited with status {done.returncode}"
        raise BookBuildError(
            f"book build failed ({len(problems) or 1} problem(s); first: {first}); see {log}"
        )
    html = out_dir / "html"
    shutil.rmtree(html, ignore_errors=True)
    shutil.move(str(stage / "_build" / "html"), str(html))
    remote = external_resources(html)
    if remote:
        page, url = remote[0]
        raise BookBuildError(f"{html / page}: fetches {url} from another host ({len(remote)} such resources)")
    toc = yaml.safe_load((stage / "_toc.yml").read_text(encoding="utf-8"))
    chapters = [f for f in toc_files(toc) if f.startswith("chapters/")]
    return BuildResult(html / "index.html", chapters, missing)
