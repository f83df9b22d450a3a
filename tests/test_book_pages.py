"""What the build adds to executed chapters: the parameters once, the run box, the statistics page."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from bbam_lite.book.pages import reader_view, run_box, run_commands, statistics_page


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


def test_a_notebook_without_injected_parameters_keeps_its_own(tmp_path):
    nb = _chapter(tmp_path / "07-a.ipynb", injected=False)
    reader_view(nb, "07-a", None)
    assert nb.cells[3].metadata["tags"] == ["parameters"]
    assert "no run record" in nb.cells[1].source


def test_run_commands_name_the_chapter_and_fit_the_code_column():
    text = run_commands("11-sensitivity")
    assert ".venv/bin/bbam-lite book run --profile lite --only 11 --force" in text
    assert "-p device cuda" in text and "make setup" in text
    assert "-p dataset voc" in text and "dataset coco" in text
    assert max(len(line) for line in text.splitlines()) <= 88


def test_statistics_page_lists_every_chapter_from_its_marker(tmp_path):
    _chapter(tmp_path / "01-a.ipynb")
    _chapter(tmp_path / "02-b.ipynb")
    _marker(tmp_path, "01-a", seconds=600.0, device="cuda", hardware="NVIDIA H200")
    page = statistics_page(tmp_path)
    row = next(line for line in page.splitlines() if "chapters/01-a" in line)
    assert "| lite | cuda | NVIDIA H200 | 10.0 | not measured | 2026-11-28 | `0123456789ab` |" in row
    assert "chapters/02-b" in page and "no record" in page and "No run record for: 02-b" in page
    assert "Total: 10.0 minutes over 1 recorded chapters" in page
    assert (
        "Cold total: 0.0 minutes over the 0 chapters with a cold run; not measured for chapters 01." in page
    )
    # a cold run kept beside a cached rerun: both shown, the cold total sums the cold runs
    cold = {"seconds": 1200.0, "hardware": "AMD EPYC, 1 threads", "finished": "2026-12-04T04:00:00+00:00"}
    _marker(tmp_path, "02-b", seconds=30.0, cold=cold)
    page = statistics_page(tmp_path)
    row = next(line for line in page.splitlines() if "chapters/02-b" in line)
    assert "| 0.5 | 20.0 |" in row
    assert (
        "Cold total: 20.0 minutes over the 1 chapters with a cold run; not measured for chapters 01." in page
    )
    assert "from an empty run folder: 20.0 min on AMD EPYC" in run_box(
        "02-b", json.loads((tmp_path / ".book-run" / "02-b.json").read_text())
    )


@pytest.mark.slow
def test_the_run_box_works_as_written_in_a_fresh_clone(tmp_path):
    """The box's CPU command, pasted into a fresh clone after ``make setup`` (here: the venv that runs
    the tests as ``.venv``), runs the chapter and writes its outputs (at the smoke profile)."""
    import shlex
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", root.as_uri(), str(clone)], check=True)
    (clone / ".venv").symlink_to(Path(sys.prefix))
    box = run_box("01-why-boxes", None)
    (line,) = [ln for ln in box.splitlines() if ln.startswith(".venv/bin/bbam-lite book run --profile lite")]
    argv = shlex.split(line.replace("--profile lite", "--profile smoke"))
    run = subprocess.run(argv, cwd=clone, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 done, 0 skipped" in run.stdout, run.stdout
    record = json.loads((clone / "book/chapters/.book-run/01-why-boxes.json").read_text())
    assert record["parameters"]["profile"] == "smoke"
