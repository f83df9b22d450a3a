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

from bbam_lite.book.runner import STATE_DIR, chapters_in

#: The page the build generates from the markers (listed in ``book/_toc.yml``).
STATISTICS_PAGE = "execution-statistics"

#: Example data roots of the GPU commands in the box (the layouts ``bbam_lite.data`` reads).
GPU_DATA = {"voc": "/data/VOCdevkit/VOC2012", "coco": "/data/coco"}


def chapter_link(nb: Path) -> str:
    """A Markdown link to an executed chapter's page, with its title, from the book's root pages."""
    return f"[{_title(nbformat.read(nb, as_version=4), nb.stem)}](chapters/{nb.stem}.ipynb)"


def read_markers(chapters_dir: Path) -> dict[str, dict[str, Any]]:
    """The run marker of every executed chapter of ``chapters_dir``, by notebook stem (unreadable
    or missing markers are left out: the page says the chapter has no record)."""
    out = {}
    state = Path(chapters_dir) / STATE_DIR
    for nb in chapters_in(chapters_dir):
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


#: Where the run box's commands write: the student's own copy, beside the committed book.
MY_CHAPTERS = "my-book"

#: The command as a fresh clone reaches it after ``make setup`` (which makes ``.venv``).
COMMAND = ".venv/bin/bbam-lite"


def run_commands(stem: str) -> str:
    """The commands that execute chapter ``stem`` in a fresh clone after ``make setup``, at the
    lite profile on a CPU and at the full profile on a GPU with VOC or COCO, into the reader's own
    folder (the committed copy stays), and render it; a shell block (lines within 80 characters)."""
    nn = stem[:2]
    voc, coco = GPU_DATA["voc"], GPU_DATA["coco"]
    return (
        "# in the clone, after `make setup` (it makes .venv; or `source .venv/bin/activate`\n"
        "# and drop the .venv/bin/). Laptop CPU, synthetic data (lite profile):\n"
        f"{COMMAND} book run --profile lite --only {nn} --out {MY_CHAPTERS}\n"
        "# GPU machine, PASCAL VOC (COCO: -p dataset coco -p data_root " + coco + ")\n"
        f"{COMMAND} book run --profile full --only {nn} --out {MY_CHAPTERS}-voc \\\n"
        f"    -p device cuda -p dataset voc -p data_root {voc}\n"
        "# your run as a page: my-book/_build/html/index.html\n"
        f"{COMMAND} book build --chapters {MY_CHAPTERS} --out {MY_CHAPTERS}/_build\n"
        f"# to remake the committed page itself: --force instead of --out {MY_CHAPTERS}"
    )


def _minutes(seconds: Any) -> str:
    return f"{float(seconds) / 60:.1f}"


def cold_run(marker: dict[str, Any] | None) -> dict[str, Any] | None:
    """The record's cold run (from an empty run folder), None where it has none."""
    cold = (marker or {}).get("cold")
    return cold if isinstance(cold, dict) and "seconds" in cold else None


def _cold_where(cold: dict[str, Any]) -> str:
    jobs = cold.get("jobs", 1)
    return (
        f"{cold.get('hardware', '?')}{f', {jobs} chapters at a time' if jobs != 1 else ''}, "
        f"{str(cold.get('finished', ''))[:10]}, commit `{str(cold.get('commit', 'unknown'))[:12]}`"
    )


def cold_text(marker: dict[str, Any] | None) -> str:
    """The chapter's cold run in words, or "not measured"."""
    cold = cold_run(marker)
    return "not measured" if cold is None else f"{_minutes(cold['seconds'])} min on {_cold_where(cold)}"


def _when(marker: dict[str, Any] | None) -> str:
    if not marker:
        return "This page has no run record (it was not executed by `bbam-lite book run`)."
    p = marker.get("parameters", {})
    device = marker.get("device", "cpu")
    date = str(marker.get("finished", ""))[:10]
    commit = str(marker.get("commit", "unknown"))[:12]
    hits = marker.get("cache_hits")
    reused = "" if hits is None else f", reusing {hits} cached artefacts of the run folder"
    return (
        f"This page: profile `{p.get('profile', '?')}` on {marker.get('hardware', '?')} "
        f"(device `{device}`), {_minutes(marker.get('seconds', 0))} min{reused}, {date}, "
        f"commit `{commit}`. From an empty run folder (cold): {cold_text(marker)}. "
        f"Every chapter in [Execution statistics](../{STATISTICS_PAGE}.md)."
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


#: The lite book's cold-run targets on a 2-core machine, minutes (issue: the whole lite book in an
#: hour on a 2-core laptop, each lab chapter in minutes): the whole book (wall), a chapter, and the
#: chapters allowed longer.
COLD_TARGETS = {"book": 60.0, "chapter": 10.0, "12-main-results": 25.0}


def whole_book_run(markers: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The whole-book cold batch the records show, if every chapter's cold run comes from one batch
    (same commit): its wall minutes (first start to last finish), chapters at a time, hardware and
    date; None otherwise."""
    from datetime import datetime

    colds = [cold_run(m) for m in markers.values()]
    if not colds or any(c is None or "finished" not in c for c in colds):
        return None
    if len({c.get("commit") for c in colds}) != 1:
        return None
    try:
        ends = [datetime.fromisoformat(str(c["finished"])).timestamp() for c in colds]
    except ValueError:
        return None
    starts = [end - float(c["seconds"]) for end, c in zip(ends, colds, strict=True)]
    return {
        "minutes": (max(ends) - min(starts)) / 60,
        "jobs": colds[0].get("jobs", 1),
        "where": _cold_where(colds[0]),
        "chapters": len(colds),
    }


def target_lines(markers: dict[str, dict[str, Any]]) -> list[str]:
    """The cold-run targets (:data:`COLD_TARGETS`) against the records: met, or by how much not."""

    def verdict(minutes: float, target: float) -> str:
        return "met" if minutes <= target else f"missed by {minutes - target:.1f} min"

    book = whole_book_run(markers)
    lines = [
        "",
        "**Targets** (lite profile, 2 cores, from an empty run folder): "
        f"the whole book in {COLD_TARGETS['book']:.0f} minutes, a chapter in {COLD_TARGETS['chapter']:.0f}, "
        f"chapter 12 in {COLD_TARGETS['12-main-results']:.0f}.",
        "",
    ]
    if book is None:
        lines.append("* The whole book: not measured in one batch (the cold runs above come from several).")
    else:
        lines.append(
            f"* The whole book: {book['minutes']:.1f} min wall for its {book['chapters']} chapters "
            f"({book['where']}): {verdict(book['minutes'], COLD_TARGETS['book'])}."
        )
    over = []
    for stem, marker in sorted(markers.items()):
        cold = cold_run(marker)
        target = COLD_TARGETS.get(stem, COLD_TARGETS["chapter"])
        if cold is not None and cold["seconds"] / 60 > target:
            over.append(f"{stem} {verdict(cold['seconds'] / 60, target)}")
    shared = " (in a batch of several chapters at a time a chapter shares the cores)" if book else ""
    lines.append(
        "* Each chapter: "
        + ("every cold run within its target" if not over else "; ".join(over))
        + shared
        + "."
    )
    return lines


def statistics_page(chapters_dir: Path) -> str:
    """The "Execution statistics" page: per executed chapter its profile, device, hardware, the
    minutes of the run that made the page and of its last cold run, date and commit, from the run
    markers (QuantEcon's pattern), and both totals."""
    markers = read_markers(chapters_dir)
    lines = [
        "# Execution statistics",
        "",
        "Every chapter of this book is a notebook executed by `bbam-lite book run`, which records how",
        "each run went in `book/chapters/.book-run/NN-slug.json`. This page is generated from those",
        "records when the book is built. *This page* is the wall-clock time of the run that made the",
        "page, which may have reused artefacts cached in the run folder (*reused*: how many).",
        "*Cold* is the chapter's last run in a `book run` batch that started from an empty run",
        "folder, so that all it used was computed in that batch, by itself or by the chapters that",
        "ran before it or alongside it (`--jobs N` runs N chapters at a time, one thread each, and",
        "makes what they share once); a cached rerun never replaces it. Records written before cold",
        "runs were recorded say *not measured*.",
        "",
        "| chapter | profile | device | hardware | this page (min) | reused | cold (min) "
        "| cold run | date | commit |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | --- | --- | --- |",
    ]
    total = cold_total = 0.0
    missing, unmeasured = [], []
    for nb in chapters_in(chapters_dir):
        marker = markers.get(nb.stem)
        link = chapter_link(nb)
        if marker is None:
            missing.append(nb.stem)
            lines.append(f"| {link} | no record |" + " |" * 8)
            continue
        total += marker.get("seconds", 0) / 60
        cold = cold_run(marker)
        if cold:
            cold_total += cold["seconds"] / 60
            cold_cells = [_minutes(cold["seconds"]), _cold_where(cold)]
        else:
            unmeasured.append(nb.stem)
            cold_cells = ["", "not measured"]
        hits = marker.get("cache_hits")
        cells = [
            link,
            str(marker.get("parameters", {}).get("profile", "?")),
            str(marker.get("device", "cpu")),
            str(marker.get("hardware", "?")),
            _minutes(marker.get("seconds", 0)),
            "" if hits is None else str(hits),
            *cold_cells,
            str(marker.get("finished", ""))[:10],
            f"`{str(marker.get('commit', 'unknown'))[:12]}`",
        ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    measured = len(markers) - len(unmeasured)
    lines += [
        "",
        f"Total: {total:.1f} minutes over {len(markers)} recorded chapters (the runs that made the pages).",
        "",
        f"Cold total: {cold_total:.1f} minutes over {measured} chapters with a cold run"
        + (f"; not measured: {', '.join(unmeasured)}." if unmeasured else "."),
        *target_lines(markers),
    ]
    if missing:
        lines += ["", f"No run record for: {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


#: The line of ``book/intro.md`` that the build replaces with the generated chapter list.
CHAPTER_LIST_MARKER = "<!-- chapter list: generated by bbam-lite book build -->"
#: The line of ``book/course.md`` that the build replaces with the labs' cold run times.
COLD_TABLE_MARKER = "<!-- cold run times: generated by bbam-lite book build -->"


def cold_table(chapters_dir: Path) -> str:
    """Each executed chapter's cold run (minutes, where and when) from the records, and the cold
    total, as markdown: what a teacher plans a lab with."""
    markers = read_markers(chapters_dir)
    lines = ["| chapter | cold run (min) | measured on |", "| --- | ---: | --- |"]
    total, unmeasured = 0.0, []
    for nb in chapters_in(chapters_dir):
        cold = cold_run(markers.get(nb.stem))
        if cold is None:
            unmeasured.append(nb.stem[:2])
            lines.append(f"| {chapter_link(nb)} | | not measured |")
        else:
            total += cold["seconds"] / 60
            lines.append(f"| {chapter_link(nb)} | {_minutes(cold['seconds'])} | {_cold_where(cold)} |")
    lines += [
        "",
        f"Cold total of the chapters measured: {total:.1f} minutes"
        + (f"; not measured: chapters {', '.join(unmeasured)}." if unmeasured else "."),
    ]
    return "\n".join(lines) + "\n"


def chapter_list(chapters_dir: Path) -> str:
    """The index page's list of chapters (titles from the executed notebooks, linked) and the dates
    and profiles of their runs (from the records), as markdown."""
    markers = read_markers(chapters_dir)
    lines = [f"- {chapter_link(nb)}" for nb in chapters_in(chapters_dir)]
    if not lines:
        return "No chapter has been executed yet (`bbam-lite book run --profile lite`).\n"
    dates = sorted(str(m.get("finished", ""))[:10] for m in markers.values() if m.get("finished"))
    profiles = sorted({str(m.get("parameters", {}).get("profile", "?")) for m in markers.values()})
    if dates:
        span = f"on {dates[0]}" if dates[0] == dates[-1] else f"between {dates[0]} and {dates[-1]}"
        when = (
            f"The {len(markers)} executed chapters here were run {span} (profile "
            f"{', '.join(f'`{p}`' for p in profiles)}); each chapter's run box and "
            f"[Execution statistics]({STATISTICS_PAGE}.md) say when, where and how long."
        )
    else:
        when = "No chapter here has a run record."
    return "\n".join(lines) + "\n\n" + when + "\n"


#: The generated parts of the book's pages: marker line -> the function that writes it from the
#: chapters folder (the build replaces each marker in every page).
GENERATED = {CHAPTER_LIST_MARKER: chapter_list, COLD_TABLE_MARKER: cold_table}
