"""The house style of docs/writing-chapters.md, as far as a program can check it, on the source
notebooks: the reader's view (setup folded, short figure cells, 88-character code lines), and
exercises with folded worked solutions at the end of chapters 1-12."""

from __future__ import annotations

import re

import nbformat
import pytest
from book_helpers import NOTEBOOKS

from bbam_lite.book.runner import discover

ALL = [p.stem for p in discover(NOTEBOOKS)]
CHAPTERS = [s for s in ALL if int(s[:2]) <= 12]
WIDTH = 88
FIGURE_CALL = re.compile(r"(_figure|_grid|_bars|\bplt\.subplots|\bsns\.)\w*\(")
FOLDED = {"hide-input", "hide-cell", "remove-input", "remove-cell"}


def _cells(stem: str) -> list[nbformat.NotebookNode]:
    return nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4).cells


def _tags(cell) -> set[str]:
    return set(cell.metadata.get("tags", []))


@pytest.mark.parametrize("stem", ALL)
def test_code_fits_the_book_column(stem):
    long = [
        (i, line)
        for i, c in enumerate(_cells(stem))
        if c.cell_type == "code"
        for line in c.source.splitlines()
        if len(line) > WIDTH
    ]
    assert long == [], f"{stem}: code lines over {WIDTH} characters: {long[:3]}"


@pytest.mark.parametrize("stem", ALL)
def test_setup_is_folded_and_the_run_time_removed(stem):
    code = [c for c in _cells(stem) if c.cell_type == "code"]
    setup = code[1]  # the Workspace cell (test_notebooks checks it is there)
    assert _tags(setup) & FOLDED, f"{stem}: the setup cell is shown to the reader"
    # an import that names where a figure's function lives may stay; blocks of imports are setup
    imports = [c for c in code if len(re.findall(r"^(import|from) ", c.source, re.M)) >= 4]
    assert all(_tags(c) & FOLDED for c in imports), f"{stem}: an import block is shown to the reader"
    assert "remove-input" in _tags(code[-1]) and "run time" in code[-1].source, stem
    assert not any("rcParams" in c.source for c in code), f"{stem}: use plotting.book_style()"


@pytest.mark.parametrize("stem", [s for s in CHAPTERS if int(s[:2]) >= 7])
def test_a_figure_cell_is_a_few_lines(stem):
    for i, c in enumerate(_cells(stem)):
        if c.cell_type != "code" or _tags(c) & {"hide-cell", "remove-cell"}:
            continue  # exercises' worked solutions may spell a figure out
        lines = [ln for ln in c.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if FIGURE_CALL.search(c.source):
            assert len(lines) <= 6, f"{stem}, cell {i}: a figure cell of {len(lines)} lines"


@pytest.mark.parametrize("stem", CHAPTERS)
def test_chapter_ends_with_exercises_and_folded_solutions(stem):
    cells = _cells(stem)
    start = next(
        (i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("## Exercises")),
        None,
    )
    assert start is not None, f"{stem}: no '## Exercises' section"
    assert not any(
        c.cell_type == "markdown" and c.source.startswith("## ") for c in cells[start + 1 :]
    ), f"{stem}: the exercises are not the last section"
    section = cells[start + 1 :]
    heads = [
        i for i, c in enumerate(section) if c.cell_type == "markdown" and c.source.startswith("### Exercise")
    ]
    assert 2 <= len(heads) <= 4, f"{stem}: {len(heads)} exercises (want 2-4)"
    for k, h in enumerate(heads):
        body = section[h + 1 : heads[k + 1] if k + 1 < len(heads) else len(section)]
        solved = [
            c
            for c in body
            if (c.cell_type == "code" and "hide-cell" in _tags(c))
            or (c.cell_type == "markdown" and ":class: dropdown" in c.source)
        ]
        assert solved, f"{stem}: {section[h].source.splitlines()[0]} has no folded solution"
        shown = [c for c in body if c.cell_type == "code" and not _tags(c) & FOLDED]
        assert shown == [] or body[-1] is shown[-1] and "run time" in shown[-1].source, (
            f"{stem}: {section[h].source.splitlines()[0]}: a solution's code is not folded"
        )
