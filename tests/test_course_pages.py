"""The course scaffolding of the book (bibliography, glossary, course plan) and plain-text headings:
every citation and glossary reference in the pages and chapters resolves, without building the book."""

from __future__ import annotations

import re
import shutil

import nbformat
import pytest
import yaml
from book_helpers import NOTEBOOKS, REPO

from bbam_lite.book.lab import main as lab_main
from bbam_lite.book.render import BookBuildError, plain_headings, plain_math, stage_book, toc_files

BOOK = REPO / "book"
CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")
TERM = re.compile(r"\{term\}`([^`]+)`")


def _pages() -> dict[str, str]:
    """The markdown of every page and of every chapter's markdown cells, by name."""
    pages = {p.name: p.read_text(encoding="utf-8") for p in BOOK.glob("*.md")}
    for nb in sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")):
        cells = nbformat.read(nb, as_version=4).cells
        pages[nb.name] = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    return {name: re.sub(r"``.*?``", "", text) for name, text in pages.items()}  # not code spans


def _bib_keys() -> list[str]:
    return re.findall(r"^@\w+\{([^,]+),", (BOOK / "references.bib").read_text(encoding="utf-8"), re.M)


def _glossary_terms() -> set[str]:
    text = (BOOK / "glossary.md").read_text(encoding="utf-8")
    block = text.split("```{glossary}", 1)[1].split("\n```", 1)[0]
    return {
        ln.strip().lower() for ln in block.splitlines() if ln.strip() and not ln[0].isspace() and ln[0] != ":"
    }


def test_about_pages_are_in_the_toc_and_the_bibliography_is_configured():
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text(encoding="utf-8"))
    about = next(p for p in toc["parts"] if p["caption"] == "About this book")
    files = toc_files(about)
    assert {"course", "glossary", "bibliography", "execution-statistics"} <= set(files)
    for name in ("course", "glossary", "bibliography"):
        assert (BOOK / f"{name}.md").is_file(), name
    config = yaml.safe_load((BOOK / "_config.yml").read_text(encoding="utf-8"))
    assert [(BOOK / f).is_file() for f in config["bibtex_bibfiles"]] == [True]  # staged with the pages


def test_bibliography_entries_are_unique_and_every_citation_resolves():
    keys = _bib_keys()
    assert len(keys) == len(set(keys)) and len(keys) >= 15
    cited = {
        key.strip()
        for name, text in _pages().items()
        for group in CITE.findall(text)
        for key in group.split(",")
    }
    assert cited - set(keys) == set(), "cited but not in book/references.bib"
    table = (BOOK / "bibliography.md").read_text(encoding="utf-8").split("```{bibliography}")[0]
    listed = {k.strip() for group in CITE.findall(table) for k in group.split(",")}
    assert set(keys) - listed == set(), "in references.bib but not in bibliography.md's table"


def test_every_glossary_reference_names_a_term():
    terms = _glossary_terms()
    assert {"positives", "notrain-gt", "abo", "ignore band", "presets", "profiles", "fallbacks"} <= terms
    for name, text in _pages().items():
        for ref in TERM.findall(text):
            target = re.sub(r"^.*<(.+)>$", r"\1", ref).strip().lower()
            assert target in terms, f"{name}: {{term}}`{ref}` is not in the glossary"


def test_headings_lose_their_tex_and_nothing_else_does():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "# 11. Parameter sensitivity: $\\lambda$ and the two thresholds\n\nWith $\\lambda = 0.007$."
        ),
        nbformat.v4.new_markdown_cell(
            "## Table 5: the thresholds $\\theta_{bg}$ and $\\theta_{fg}$\n```bash\n# $\\lambda$ stays\n```"
        ),
        nbformat.v4.new_code_cell("# $\\lambda$ in a code comment"),
    ]
    assert plain_headings(nb) == []
    assert (
        nb.cells[0].source
        == "# 11. Parameter sensitivity: λ and the two thresholds\n\nWith $\\lambda = 0.007$."
    )
    assert nb.cells[1].source.splitlines() == [
        "## Table 5: the thresholds θ_bg and θ_fg",
        "```bash",
        "# $\\lambda$ stays",
        "```",
    ]
    assert nb.cells[2].source == "# $\\lambda$ in a code comment"
    assert plain_math("\\lambda = 0") == "λ = 0" and plain_math("\\lVert R \\rVert") == "‖ R ‖"
    assert plain_math("\\mathcal{G}") is None and plain_math("x^2") is None


def test_every_chapter_heading_has_a_plain_form():
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert plain_headings(nb) == [], path.name
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                headings = [ln for ln in cell.source.splitlines() if re.match(r"#{1,6} ", ln)]
                assert not any("$" in h or "\\" in h for h in headings), (path.name, headings)


def test_a_heading_without_a_plain_form_fails_the_build_in_one_line(tmp_path):
    book, chapters = tmp_path / "book", tmp_path / "chapters"
    (book / "_mathjax" / "mathjax").mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(BOOK / name, book / name)
    (book / "_mathjax" / "mathjax" / "tex-chtml.js").write_text("")
    (book / "intro.md").write_text("# Intro\n")
    chapters.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 12. Seed growing $\\mathcal{G}$\n\nText.")]
    nbformat.write(nb, chapters / "12-main-results.ipynb")
    with pytest.raises(BookBuildError, match=r"12-main-results.ipynb: heading '# 12. Seed growing") as err:
        stage_book(book, chapters, tmp_path / "stage")
    assert "\n" not in str(err.value)
    nb.cells[0].source = "# 12. Seed growing with $\\lambda$\n\nText."
    nbformat.write(nb, chapters / "12-main-results.ipynb")
    stage, _ = stage_book(book, chapters, tmp_path / "stage")
    staged = nbformat.read(stage / "chapters" / "12-main-results.ipynb", as_version=4)
    assert staged.cells[0].source == "# 12. Seed growing with λ"


def test_make_lab_runs_the_lab_module_which_needs_the_repository_root(tmp_path, monkeypatch, capsys):
    make = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^lab: setup\n\t\$\(PY\) -m bbam_lite\.book\.lab$", make, re.M)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as err:
        lab_main([])
    assert err.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "bbam-lite lab: notebooks: no such folder here; run `make lab` from the repository root"
    )
