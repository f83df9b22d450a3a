"""The rendered book: built from the smoke-run notebooks with warnings as errors, no page fetches
anything from another host, and a headless Chromium loads pages whose figures and formulas appear."""

from __future__ import annotations

import html as html_lib
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from book_helpers import MIN_SHOWN, REPO, book_env, chromium, load_pages, remote, smoke_book

from bbam_lite.book.render import BookBuildError, build_book, external_resources, filter_toc, toc_files

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The smoke-run chapters (shared with test_notebooks.py) built into a temporary folder."""
    base = tmp_path_factory.getbasetemp() / "smoke-book"
    run = smoke_book(base)
    assert run.returncode == 0, run.stdout + run.stderr
    out = tmp_path_factory.mktemp("book-build")
    cmd = [sys.executable, "-m", "bbam_lite", "book", "build", "--chapters", str(base / "chapters")]
    done = subprocess.run(
        [*cmd, "--out", str(out)], cwd=REPO, env=book_env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return base / "chapters", out / "html", done.stdout


def test_every_executed_chapter_is_in_the_book(built):
    chapters, html, stdout = built
    executed = sorted(p.stem for p in chapters.glob("[0-9][0-9]-*.ipynb"))
    assert executed, "no executed chapters"
    for stem in executed:
        page = html / "chapters" / f"{stem}.html"
        assert page.is_file(), stem
        assert "<img" in page.read_text(encoding="utf-8") or stem.startswith("12-"), f"{stem} shows no figure"
    assert (html / "index.html").is_file() and (html / "data.html").is_file()
    assert f"built {len(executed)} chapters" in stdout


def test_no_page_fetches_from_another_host(built):
    _, html, _ = built
    assert external_resources(html) == []
    page = (html / "chapters" / "05-bbam-step-by-step.html").read_text(encoding="utf-8")
    assert "_static/mathjax/tex-chtml.js" in page and "cdn.jsdelivr" not in page
    assert (html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()


def test_external_resources_are_found(tmp_path):
    (tmp_path / "a.html").write_text(
        '<script src="https://cdn.example.org/x.js"></script><a href="https://example.org">link</a>'
        '<link rel="stylesheet" href="//fonts.example.org/f.css"><img src="_images/local.png">'
    )
    (tmp_path / "s.css").write_text(
        "@font-face { src: url('https://x.org/f.woff') } .a { background: url(b.png) }"
    )
    found = sorted(url for _, url in external_resources(tmp_path))
    assert found == ["//fonts.example.org/f.css", "https://cdn.example.org/x.js", "https://x.org/f.woff"]


def test_warnings_fail_the_build(tmp_path):
    book = tmp_path / "book"
    shutil.copytree(REPO / "book" / "_mathjax", book / "_mathjax")
    shutil.copy(REPO / "book" / "_config.yml", book / "_config.yml")
    shutil.copytree(REPO / "book" / "_static", book / "_static")  # _config.yml names both
    shutil.copy(REPO / "book" / "references.bib", book / "references.bib")
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    (book / "intro.md").write_text("# Intro\n\nSee {doc}`no-such-page`.\n")
    with pytest.raises(BookBuildError, match="book build failed.*no-such-page"):
        build_book(book, tmp_path / "chapters", tmp_path / "build")


def test_toc_keeps_only_present_pages(tmp_path):
    toc = yaml.safe_load((REPO / "book" / "_toc.yml").read_text())
    listed = [f for f in toc_files(toc) if f.startswith("chapters/")]
    assert len(listed) == 13 and [f[9:11] for f in listed] == [f"{n:02d}" for n in range(1, 14)]
    for nb in (REPO / "notebooks").glob("[0-9][0-9]-*.ipynb"):
        assert f"chapters/{nb.stem}" in listed, f"{nb.name} is not in book/_toc.yml"
    (tmp_path / "chapters").mkdir()
    for name in (
        "intro.md",
        "data.md",
        "chapters/01-why-boxes.ipynb",
        "chapters/07-head-complementarity.ipynb",
    ):
        (tmp_path / name).write_text("{}")
    missing: list[str] = []
    reduced = filter_toc(toc, tmp_path, missing)
    assert toc_files(reduced) == ["intro", "chapters/01-why-boxes", "chapters/07-head-complementarity"]
    # a section goes with its chapter
    assert "chapters/02-data" in missing and "data" not in toc_files(reduced)
    assert [p["caption"] for p in reduced["parts"]] == ["The method", "The paper's analyses"]


def test_chapter_pages_show_parameters_once_and_a_run_box(built):
    chapters, html, _ = built
    for nb in sorted(chapters.glob("[0-9][0-9]-*.ipynb")):
        page = (html / "chapters" / f"{nb.stem}.html").read_text(encoding="utf-8")
        assert "tag_parameters" not in page, f"{nb.stem}: the default parameters cell is shown"
        assert page.count("tag_injected-parameters") == 1, f"{nb.stem}: the run's parameters once"
        text = html_lib.unescape(re.sub(r"<[^>]+>", "", page))  # code is split into highlight spans
        assert "Run this chapter" in text and f"--only {nb.stem[:2]}" in text, nb.stem
    stats = (html / "execution-statistics.html").read_text(encoding="utf-8")
    for nb in sorted(chapters.glob("[0-9][0-9]-*.ipynb")):
        assert f"chapters/{nb.stem}.html" in stats, f"{nb.stem} missing from the statistics page"
    assert "smoke" in stats and "no record" not in stats


@pytest.mark.browser
@pytest.mark.skipif(
    chromium() is None, reason="headless Chromium is not installed (apt-get install -y chromium)"
)
def test_every_page_in_headless_chromium(built):
    """Every chapter page at 1400 px: figures load, formulas are typeset (no raw TeX left), no code
    line is cut off, nothing comes from another host; the statistics page loads; search works."""
    pytest.importorskip(
        "websocket", reason="websocket-client (a Jupyter dependency) is needed to drive Chromium"
    )
    chapters, html, _ = built
    stems = sorted(p.stem for p in chapters.glob("[0-9][0-9]-*.ipynb"))
    pages = [html / "index.html", *(html / "chapters" / f"{s}.html" for s in stems)]
    pages.append(html / "execution-statistics.html")
    urls = [p.as_uri() for p in pages] + [(html / "search.html").as_uri() + "?q=GrabCut"]
    results = load_pages(urls, settle=3.0)
    for page in results:
        name = page["url"].rsplit("/", 1)[-1]
        assert page["loaded"], name
        assert [u for u in page["requests"] if remote(u)] == [], name
        failed = page["failed"]
        if name.startswith("search.html"):  # its result summaries fetch pages, which file:// refuses
            failed = [(u, e) for u, e in failed if not (u.startswith("file:") and u.endswith(".html"))]
        assert failed == [], name
        broken = [i["src"] for i in page["images"] if not (i["complete"] and i["width"] > 0)]
        assert broken == [], f"{name}: images that did not load: {broken}"
        assert page["raw_tex"] == 0, f"{name}: TeX left untypeset in the text"
        assert page["cut_code"] == [], f"{name}: code cut off at the right edge: {page['cut_code'][:2]}"
    for stem, page in zip(stems, results[1 : 1 + len(stems)], strict=True):
        assert len(page["images"]) >= 1 or stem.startswith("12-"), f"{stem}: its figures are missing"
        figures = [i for i in page["images"] if i["output"]]
        shrunk = [
            f"{i['src'].rsplit('/', 1)[-1]} ({i['width']} px shown at {i['shown']:.0f})"
            for i in figures
            if i["shown"] < MIN_SHOWN * i["width"]
        ]
        assert shrunk == [], f"{stem}: figures shown below {MIN_SHOWN} of their width: {shrunk}"
        # every figure has a number and a caption (cell metadata mystnb: figure: caption / name)
        bare = [i["src"].rsplit("/", 1)[-1] for i in figures if not i["caption"]]
        assert bare == [], f"{stem}: figures without a caption: {bare}"
    chapter5 = next(r for s, r in zip(stems, results[1:], strict=False) if s.startswith("05-"))
    assert chapter5["math"] > 0, "MathJax did not typeset the formulas of chapter 5"
    assert results[-1]["search_hits"] > 0, "the search page found nothing for GrabCut"
