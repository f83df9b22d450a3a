"""What the build adds to the executed chapters: the reader's view of the parameters, a "Run this
chapter" box, and the "Execution statistics" page made from the run markers.

``bbam-lite book run`` leaves, per chapter, its executed copy ``NN-slug.ipynb`` and the marker
``.book-run/NN-slug.json`` (profile, parameters, hardware, device, seconds, date, commit). The build
reads both; nothing here changes what a chapter computed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat

from bbam_lite.book.runner import NOTEBOOK_NAME, STATE_DIR

#: The page the build generates from the markers (listed in ``book/_toc.yml``).
STATISTICS_PAGE = "execution-statistics"

#: Example data roots of the GPU commands in the box (the layouts ``bbam_lite.data`` reads).
GPU_DATA = {"voc": "/data/VOCdevkit/VOC2012", "coco": "/data/coco"}


def read_markers(chapters_dir: Path) -> dict[str, dict[str, Any]]:
    """The run marker of every executed chapter of ``chapters_dir``, by notebook stem (unreadable
    or missing markers are left out: the page says the chapter has no record)."""
    out = {}
    state = Path(chapters_dir) / STATE_DIR
    for nb in sorted(Path(chapters_dir).glob("*.ipynb")):
        if not NOTEBOOK_NAME.match(nb.name):
            continue
        try:
            out[nb.stem] = json.loads((state / f"{nb.stem}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return out


def _title(nb: nbformat.NotebookNode, stem: str) -> str:
    first = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if first:
        for line in first.source.splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return stem


def run_commands(stem: str) -> str:
    """The commands that execute chapter ``stem`` at the lite profile on a CPU and at the full
    profile on a GPU with VOC or COCO, as a shell block (lines within 80 characters) that works as
    written in a fresh clone after ``make setup`` (the command from the repository's venv;
    ``--force``: the committed records mark every chapter finished)."""
    nn = stem[:2]
    voc, coco = GPU_DATA["voc"], GPU_DATA["coco"]
    return (
        "# in the repository, after `make setup` (which makes .venv/); --force runs the\n"
        "# chapter although the committed records mark it finished\n"
        "# laptop CPU, the embedded synthetic data (lite profile)\n"
        f".venv/bin/bbam-lite book run --profile lite --only {nn} --force\n"
        "# GPU machine, PASCAL VOC (COCO: -p dataset coco -p data_root " + coco + ")\n"
        f".venv/bin/bbam-lite book run --profile full --only {nn} --force \\\n"
        f"    -p device cuda -p dataset voc -p data_root {voc}\n"
        ".venv/bin/bbam-lite book build   # then open book/_build/html/index.html"
    )


def _when(marker: dict[str, Any] | None) -> str:
    if not marker:
        return "This page has no run record (it was not executed by `bbam-lite book run`)."
    p = marker.get("parameters", {})
    device = marker.get("device", "cpu")
    minutes = marker.get("seconds", 0) / 60
    date = str(marker.get("finished", ""))[:10]
    commit = str(marker.get("commit", "unknown"))[:12]
    return (
        f"This page: profile `{p.get('profile', '?')}` on {marker.get('hardware', '?')} "
        f"(device `{device}`), {minutes:.1f} min, {date}, commit `{commit}`; {_cold(marker)}; "
        f"every chapter in [Execution statistics](../{STATISTICS_PAGE}.md)."
    )


def _cold(marker: dict[str, Any]) -> str:
    """The chapter's cold run in words (from an empty run folder), or that it was not measured."""
    cold = marker.get("cold")
    if not cold:
        return "its time from an empty run folder was not measured (this page's run reused cached work)"
    after = cold.get("after") or []
    made = f", after chapters {', '.join(a[:2] for a in after)} of the same run" if after else ""
    return (
        f"from an empty run folder{made}: {cold['seconds'] / 60:.1f} min on {cold.get('hardware', '?')}, "
        f"{str(cold.get('finished', ''))[:10]}"
    )


def run_box(stem: str, marker: dict[str, Any] | None) -> str:
    """The markdown of the "Run this chapter" box: how this page was made and how to remake it."""
    return (
        ":::{admonition} Run this chapter\n:class: tip dropdown\n\n"
        f"{_when(marker)}\n\n```bash\n{run_commands(stem)}\n```\n:::\n"
    )


def reader_view(nb: nbformat.NotebookNode, stem: str, marker: dict[str, Any] | None) -> None:
    """Edit an executed chapter in place for the rendered page: the parameters appear once (the
    values papermill injected, folded; the default ``parameters`` cell is removed when an injected
    one follows it) and the "Run this chapter" box stands right under the chapter's title."""
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    if any("injected-parameters" in t for t in tags):
        for cell, t in zip(nb.cells, tags, strict=True):
            if "parameters" in t and "remove-cell" not in t:
                cell.metadata["tags"] = [*t, "remove-cell"]
            if "injected-parameters" in t and "hide-input" not in t:
                cell.metadata["tags"] = [*t, "hide-input"]
    first = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), -1)
    box = nbformat.v4.new_markdown_cell(run_box(stem, marker))
    box.metadata["tags"] = ["run-this-chapter"]
    if first >= 0 and nb.cells[first].source.startswith("# "):  # right under the title
        title, _, rest = nb.cells[first].source.partition("\n")
        nb.cells[first].source = title
        if rest.strip():
            nb.cells.insert(first + 1, nbformat.v4.new_markdown_cell(rest.strip("\n")))
    nb.cells.insert(first + 1, box)


def statistics_page(chapters_dir: Path) -> str:
    """The "Execution statistics" page: per executed chapter its profile, device, hardware, minutes,
    date and commit, from the run markers (QuantEcon's pattern), and the total."""
    markers = read_markers(chapters_dir)
    lines = [
        "# Execution statistics",
        "",
        "Every chapter of this book is a notebook executed by `bbam-lite book run`, which records how",
        "each run went in `book/chapters/.book-run/NN-slug.json`. This page is generated from those",
        "records when the book is built. Two times per chapter, wall-clock minutes of the whole notebook:",
        "the run that made this page (it may have reused labels and results cached in the run folder,",
        "and then took a fraction of its first run's time), and its cold run, the last one of a batch",
        "that started from an empty run folder (everything computed, shared artefacts by the chapter",
        "that first needed them). A cached rerun never replaces the cold time.",
        "",
        "| chapter | profile | device | hardware | minutes (this page) | minutes (cold) | date | commit |",
        "| --- | --- | --- | --- | ---: | ---: | --- | --- |",
    ]
    total = cold_total = 0.0
    no_cold = []
    missing = []
    for nb in sorted(Path(chapters_dir).glob("*.ipynb")):
        if not NOTEBOOK_NAME.match(nb.name):
            continue
        marker = markers.get(nb.stem)
        title = _title(nbformat.read(nb, as_version=4), nb.stem)
        link = f"[{title}](chapters/{nb.stem}.ipynb)"
        if marker is None:
            missing.append(nb.stem)
            lines.append(f"| {link} | no record | | | | | | |")
            continue
        minutes = marker.get("seconds", 0) / 60
        total += minutes
        cold = marker.get("cold")
        if cold:
            cold_total += cold["seconds"] / 60
        else:
            no_cold.append(nb.stem[:2])
        cells = [
            link,
            str(marker.get("parameters", {}).get("profile", "?")),
            str(marker.get("device", "cpu")),
            str(marker.get("hardware", "?")),
            f"{minutes:.1f}",
            f"{cold['seconds'] / 60:.1f}" if cold else "not measured",
            str(marker.get("finished", ""))[:10],
            f"`{str(marker.get('commit', 'unknown'))[:12]}`",
        ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    lines += ["", f"Total: {total:.1f} minutes over {len(markers)} recorded chapters (this page's runs)."]
    measured = len(markers) - len(no_cold)
    lines.append(
        f"Cold total: {cold_total:.1f} minutes over the {measured} chapters with a cold run"
        + (f"; not measured for chapters {', '.join(no_cold)}." if no_cold else ".")
    )
    if missing:
        lines.append(f"No run record for: {', '.join(missing)}.")
    return "\n".join(lines) + "\n"
