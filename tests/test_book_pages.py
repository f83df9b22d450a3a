"""What the build adds to executed chapters: the parameters once, the run box, the statistics page."""

from __future__ import annotations

import json

import nbformat
import pytest
from book_helpers import CHAPTERS

from bbam_lite.book.pages import (
    CHAPTER_LIST_MARKER,
    chapter_list,
    reader_view,
    run_commands,
    statistics_page,
)


def _chapter(path, injected: bool = True) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "lite"')
    params.metadata["tags"] = ["parameters"]
    cells = [nbformat.v4.new_markdown_cell("# 7. A chapter\n\nText."), params]
    if injected:
        inj = nbformat.v4.new_code_cell('# Parameters\nprofile = "smoke"')
        inj.metadata["tags"] = ["injected-parameters"]
        cells.append(inj)
    nb.cells = [*cells, nbformat.v4.new_code_cell("print(1)")]
    nbformat.write(nb, path)
    return nb


def _marker(folder, stem, **extra):
    (folder / ".book-run").mkdir(exist_ok=True)
    record = {
        "parameters": {"profile": "lite", "run_dir": "runs/book"},
        "seconds": 90.0,
        "finished": "2026-11-28T10:00:00+00:00",
        "hardware": "AMD EPYC, 1 threads",
        "device": "cpu",
        "commit": "0123456789abcdef",
        **extra,
    }
    (folder / ".book-run" / f"{stem}.json").write_text(json.dumps(record))
    return record


def test_reader_view_shows_the_injected_parameters_once_and_adds_the_box(tmp_path):
    nb = _chapter(tmp_path / "07-a.ipynb")
    reader_view(nb, "07-a", _marker(tmp_path, "07-a"))
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert nb.cells[0].source == "# 7. A chapter" and nb.cells[2].source == "Text."
    assert "remove-cell" in tags[3] and "parameters" in tags[3]  # the default cell goes
    assert "hide-input" in tags[4] and "remove-cell" not in tags[4]  # the run's values, folded
    box = nb.cells[1]
    assert box.cell_type == "markdown" and "Run this chapter" in box.source
    assert "--only 07" in box.source and "1.5 min" in box.source and "0123456789ab" in box.source
    assert "(cold): not measured" in box.source  # a record written before cold runs were recorded


def test_a_notebook_without_injected_parameters_keeps_its_own(tmp_path):
    nb = _chapter(tmp_path / "07-a.ipynb", injected=False)
    reader_view(nb, "07-a", None)
    assert nb.cells[3].metadata["tags"] == ["parameters"]
    assert "no run record" in nb.cells[1].source


def test_run_commands_name_the_chapter_and_fit_the_code_column():
    text = run_commands("11-sensitivity")
    assert ".venv/bin/bbam-lite book run --profile lite --only 11 --out my-book" in text
    assert "-p device cuda" in text and "-p dataset voc" in text and "dataset coco" in text
    assert "make setup" in text and "--force" in text and "book build --chapters my-book" in text
    assert max(len(line) for line in text.splitlines()) <= 88


def test_run_box_shows_the_cold_run_beside_the_page_run(tmp_path):
    nb = _chapter(tmp_path / "05-a.ipynb")
    cold = {"seconds": 360.0, "hardware": "Laptop, 2 threads", "threads": 2}
    cold |= {"finished": "2026-12-01T09:00:00+00:00", "commit": "fedcba987654", "cache_hits": 0}
    reader_view(nb, "05-a", _marker(tmp_path, "05-a", seconds=66.0, cache_hits=4, cold=cold))
    box = nb.cells[1].source
    assert "1.1 min, reusing 4 cached artefacts" in box
    assert "(cold): 6.0 min on Laptop, 2 threads, 2026-12-01, commit `fedcba987654`" in box


def test_statistics_page_lists_every_chapter_from_its_marker(tmp_path):
    _chapter(tmp_path / "01-a.ipynb")
    _chapter(tmp_path / "02-b.ipynb")
    _chapter(tmp_path / "03-c.ipynb")
    _marker(tmp_path, "01-a", seconds=600.0, device="cuda", hardware="NVIDIA H200")
    cold = {"seconds": 1800.0, "hardware": "Laptop, 2 threads", "finished": "2026-12-01T09:00:00+00:00"}
    _marker(tmp_path, "03-c", seconds=30.0, cache_hits=7, cold={**cold, "commit": "fedcba9876543210"})
    page = statistics_page(tmp_path)
    row = next(line for line in page.splitlines() if "chapters/01-a" in line)
    assert "| lite | cuda | NVIDIA H200 | 10.0 |  |  | not measured | 2026-11-28 | `0123456789ab` |" in row
    row = next(line for line in page.splitlines() if "chapters/03-c" in line)
    assert "| 0.5 | 7 | 30.0 | Laptop, 2 threads, 2026-12-01, commit `fedcba987654` |" in row
    assert "chapters/02-b" in page and "no record" in page and "No run record for: 02-b" in page
    assert "Total: 10.5 minutes over 2 recorded chapters" in page
    assert "Cold total: 30.0 minutes over 1 chapters with a cold run; not measured: 01-a." in page


def test_chapter_list_is_made_from_the_chapters_and_their_records(tmp_path):
    assert "No chapter has been executed yet" in chapter_list(tmp_path)
    _chapter(tmp_path / "07-a.ipynb")
    _chapter(tmp_path / "08-b.ipynb")
    _marker(tmp_path, "07-a")
    _marker(tmp_path, "08-b", finished="2026-12-02T10:00:00+00:00")
    text = chapter_list(tmp_path)
    assert "- [7. A chapter](chapters/07-a.ipynb)\n- [7. A chapter](chapters/08-b.ipynb)\n" in text
    assert "The 2 executed chapters here were run between 2026-11-28 and 2026-12-02 (profile `lite`)" in text


def test_the_index_page_carries_the_marker_of_its_generated_chapter_list():
    from book_helpers import REPO

    intro = (REPO / "book" / "intro.md").read_text(encoding="utf-8")
    assert CHAPTER_LIST_MARKER in intro and "run on 20" not in intro


def test_the_course_page_lists_the_labs_cold_times_from_the_records(tmp_path):
    from book_helpers import REPO

    from bbam_lite.book.pages import COLD_TABLE_MARKER, GENERATED, cold_table

    _chapter(tmp_path / "03-a.ipynb")
    _chapter(tmp_path / "05-b.ipynb")
    cold = {"seconds": 150.0, "hardware": "AMD EPYC, 1 threads", "finished": "2026-12-04T06:00:00+00:00"}
    _marker(tmp_path, "03-a", cold=cold)
    _marker(tmp_path, "05-b")
    text = cold_table(tmp_path)
    assert "| [7. A chapter](chapters/03-a.ipynb) | 2.5 | AMD EPYC, 1 threads, 2026-12-04" in text
    assert "| [7. A chapter](chapters/05-b.ipynb) | | not measured |" in text
    assert "Cold total of the chapters measured: 2.5 minutes; not measured: chapters 05." in text
    course = (REPO / "book" / "course.md").read_text(encoding="utf-8")
    assert COLD_TABLE_MARKER in course and GENERATED[COLD_TABLE_MARKER] is cold_table
    assert "(cold:" not in course, "a lab's cold time typed in the plan: the generated table gives it"


def test_links_to_the_design_notes_become_downloads_in_the_book():
    from bbam_lite.book.render import docs_links

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "see [the notes](../../docs/results.md#chapter-6) and [ch. 6](06-a.ipynb)"
        ),
        nbformat.v4.new_code_cell("x = '](../../docs/results.md)'"),
    ]
    docs_links(nb)
    assert nb.cells[0].source == "see [the notes](path:../../docs/results.md) and [ch. 6](06-a.ipynb)"
    assert nb.cells[1].source == "x = '](../../docs/results.md)'"


@pytest.mark.parametrize("path", sorted(CHAPTERS.glob("[0-9][0-9]-*.ipynb")), ids=lambda p: p.stem)
def test_the_committed_chapters_figures_are_captioned_and_readable_at_the_column_width(path):
    """What the browser test checks on a smoke build, on the committed pages: every figure has a
    caption and a name, and is made at most 1 / MIN_SHOWN of the column's width (772 px)."""
    import base64
    import struct

    from book_helpers import MIN_SHOWN

    from bbam_lite.plotting import COLUMN_PX

    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        images = [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        if not images:
            continue
        figure = cell.metadata.get("mystnb", {}).get("figure", {})
        assert figure.get("caption") and figure.get("name"), f"{path.stem}, cell {i}: a figure, no caption"
        for out in images:
            width = struct.unpack(">I", base64.b64decode(out["data"]["image/png"])[16:20])[0]
            assert width * MIN_SHOWN <= COLUMN_PX, f"{path.stem}, cell {i}: a figure {width} px wide"


def test_the_statistics_page_says_whether_the_cold_targets_are_met(tmp_path):
    from bbam_lite.book.pages import target_lines

    def cold(seconds: float, finished: str, commit: str = "abc") -> dict:
        return {"seconds": seconds, "finished": f"2026-12-04T{finished}+00:00", "commit": commit, "jobs": 2}

    one_batch = {
        "01-a": {"cold": cold(300.0, "07:05:00")},
        "12-main-results": {"cold": cold(1800.0, "07:40:00")},  # started 07:10
    }
    text = "\n".join(target_lines(one_batch))
    assert "* The whole book: 40.0 min wall for its 2 chapters" in text and "): met." in text
    assert "12-main-results missed by 5.0 min" in text and "01-a" not in text.split("Each chapter")[1]
    slow = {**one_batch, "01-a": {"cold": cold(660.0, "06:00:00")}}  # started 05:49: 111 min in all
    text = "\n".join(target_lines(slow))
    assert "111.0 min wall" in text and "missed by 51.0 min" in text and "01-a missed by 1.0 min" in text
    apart = {**one_batch, "01-a": {"cold": cold(300.0, "07:05:00", commit="def")}}
    assert "not measured in one batch" in "\n".join(target_lines(apart))
