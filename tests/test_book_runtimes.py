"""Honest run times and run boxes that work as written: a chapter run from an empty run folder is
recorded as cold, a cached rerun keeps that figure, and the run box's command, pasted into a fresh
clone, runs the chapter."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from book_helpers import REPO, book_env, book_run_command

from bbam_lite.book.pages import MY_CHAPTERS, run_box, statistics_page
from bbam_lite.book.runner import run_folder_empty, same_settings

pytestmark = pytest.mark.slow

CHAPTER = "02-data"  # small at smoke, and it reads the run folder's dataset (a cache hit on a rerun)


def _run(out: Path, run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = book_run_command(out, run_dir, "--only", CHAPTER[:2], *extra)
    done = subprocess.run(cmd, cwd=REPO, env=book_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _record(out: Path) -> dict:
    return json.loads((out / ".book-run" / f"{CHAPTER}.json").read_text(encoding="utf-8"))


def test_a_cold_run_is_recorded_and_a_cached_rerun_keeps_it(tmp_path):
    out, run_dir = tmp_path / "chapters", tmp_path / "run"
    assert "; cold: the run folder was empty" in _run(out, run_dir).stdout
    first = _record(out)
    cold = first["cold"]
    assert cold["seconds"] == first["seconds"] and cold["finished"] == first["finished"]
    assert cold["after"] == [] and cold["cache_hits"] == first["cache_hits"] == 0
    assert {"hardware", "threads", "commit", "cpu_seconds"} <= set(cold)

    done = _run(out, run_dir, "--force")  # the run folder kept: the dataset is reused
    assert "; cold:" not in done.stdout
    second = _record(out)
    assert second["cold"] == cold  # the cold figure stays
    assert second["finished"] >= first["finished"] and second["cache_hits"] >= 1
    assert not list((out / ".book-run").glob("*.cache.log"))

    page = statistics_page(out)
    row = next(line for line in page.splitlines() if f"chapters/{CHAPTER}" in line)
    assert f"| {second['seconds'] / 60:.1f} | {second['cache_hits']} | {cold['seconds'] / 60:.1f} |" in row
    assert f"Cold total: {cold['seconds'] / 60:.1f} minutes over 1 chapters with a cold run." in page
    box = run_box(CHAPTER, second)
    assert f"From an empty run folder (cold): {cold['seconds'] / 60:.1f} min on" in box


def test_the_cold_rule_and_which_records_share_a_cold_figure(tmp_path):
    assert run_folder_empty(tmp_path / "absent") and run_folder_empty(tmp_path)
    (tmp_path / "data").mkdir()
    assert not run_folder_empty(tmp_path)
    lite = {"parameters": {"profile": "lite", "run_dir": "runs/book"}}
    assert same_settings(lite, {"parameters": {"profile": "lite", "run_dir": "runs/other"}})
    assert not same_settings(lite, {"parameters": {"profile": "smoke", "run_dir": "runs/book"}})


def _box_command(stem: str) -> str:
    """The lite CPU command of the chapter's run box (the text the page shows), at smoke."""
    text = run_box(stem, None)
    lines = [ln for ln in text.splitlines() if "book run --profile lite" in ln]
    assert len(lines) == 1, text
    return lines[0].replace("--profile lite", "--profile smoke")


def test_the_run_box_command_runs_the_chapter_in_a_fresh_clone(tmp_path):
    """`git clone`, a `.venv` whose bbam-lite is this interpreter's (what `make setup` makes), the
    box's command pasted: the chapter runs although the committed records mark it finished."""
    script = Path(sys.executable).with_name("bbam-lite")
    if not script.is_file():
        pytest.skip(f"{script}: the package's command is not installed next to this interpreter")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
    (clone / ".venv" / "bin").mkdir(parents=True)
    (clone / ".venv" / "bin" / "bbam-lite").symlink_to(script)
    stem = "01-why-boxes"
    command = _box_command(stem)
    assert command.startswith(".venv/bin/bbam-lite ")
    env = book_env()
    # the venv's editable install points at its own checkout: run the clone's code
    env["PYTHONPATH"] = os.pathsep.join([str(clone), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run(
        ["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 done, 0 skipped, 0 failed" in done.stdout, done.stdout
    assert (clone / MY_CHAPTERS / f"{stem}.ipynb").is_file()
    assert json.loads((clone / MY_CHAPTERS / ".book-run" / f"{stem}.json").read_text())["cold"]
    # the committed copy is untouched
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True)
    assert status.stdout.strip() == "", status.stdout
    assert shlex.split(command)[-2:] == ["--out", MY_CHAPTERS]
