"""``bbam-lite book run --jobs N``: chapters in parallel give the notebooks and records of a
sequential run, an artefact several processes ask for is made once (the run folder's locks), and a
killed parallel batch resumes without making again what it had finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from book_helpers import REPO, book_env, book_run_command, notebook_outputs

from bbam_lite.book.pages import cold_text
from bbam_lite.book.runner import check_jobs, default_jobs
from bbam_lite.utils.run_folder import CACHE_LOG_ENV

#: Cheap at smoke, and both read the run folder's synthetic dataset (03 also caches a result).
CHAPTERS = {"02": "02-data", "03": "03-detector"}

#: Record fields that differ between two runs of the same chapter (times, the batch's size, which
#: chapter happened to make a shared artefact, the output file's bytes: papermill's timings).
VOLATILE = {"seconds", "cpu_seconds", "finished", "jobs", "cache_hits", "after", "output_sha256"}


def _book(out: Path, run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = book_run_command(out, run_dir, "--only", *CHAPTERS, *extra)
    done = subprocess.run(cmd, cwd=REPO, env=book_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _record(out: Path, stem: str) -> dict:
    return json.loads((out / ".book-run" / f"{stem}.json").read_text(encoding="utf-8"))


def _stable(record: dict) -> dict:
    """A record without its volatile fields and its run folder."""
    out = {k: v for k, v in record.items() if k not in VOLATILE}
    out["parameters"] = {k: v for k, v in record["parameters"].items() if k != "run_dir"}
    if "cold" in record:
        out["cold"] = _stable({**record["cold"], "parameters": {}})
    return out


def _artefacts(run_dir: Path) -> dict[str, bytes]:
    """Every file of a run folder (its locks aside), by relative path."""
    return {
        str(p.relative_to(run_dir)): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.parts[len(run_dir.parts)] != "locks"
    }


# ---------------------------------------------------------------------- same results for any N
@pytest.mark.slow
def test_a_parallel_batch_gives_the_notebooks_and_records_of_a_sequential_one(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    seq = _book(one / "chapters", one / "run", "--jobs", "1")
    par = _book(two / "chapters", two / "run", "--jobs", "2")
    assert "up to 2 at a time" in par.stdout and "at a time" not in seq.stdout
    for stem in CHAPTERS.values():
        a, b = _record(one / "chapters", stem), _record(two / "chapters", stem)
        assert notebook_outputs(one / "chapters" / f"{stem}.ipynb") == notebook_outputs(
            two / "chapters" / f"{stem}.ipynb"
        ), stem
        assert _stable(a) == _stable(b), stem
        assert (a["jobs"], b["jobs"], a["threads"], b["threads"]) == (1, 2, 1, 1)
    # the same artefacts, made once: as many lookups reused them as in the sequential batch
    assert _artefacts(one / "run") == _artefacts(two / "run")
    hits = [sum(_record(o / "chapters", s)["cache_hits"] for s in CHAPTERS.values()) for o in (one, two)]
    assert hits[0] == hits[1] >= 1
    # cold: sequentially 03 ran after 02; in parallel each ran alongside the other
    assert [_record(one / "chapters", s)["cold"]["after"] for s in CHAPTERS.values()] == [[], ["02-data"]]
    assert [_record(two / "chapters", s)["cold"]["after"] for s in CHAPTERS.values()] == [
        ["03-detector"],
        ["02-data"],
    ]


def test_jobs_is_checked_and_defaults_to_the_cores_at_most_one_per_chapter(monkeypatch):
    import bbam_lite.pseudo.workers as workers

    monkeypatch.setattr(workers, "available_cores", lambda: 2)
    assert (default_jobs(13), default_jobs(1), default_jobs(0)) == (2, 1, 1)
    assert check_jobs(3) == 3
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="--jobs must be a positive integer"):
            check_jobs(bad)


def test_a_cold_run_says_how_many_chapters_ran_at_a_time():
    cold = {
        "seconds": 90,
        "hardware": "AMD EPYC, 1 threads",
        "finished": "2026-12-04T06:00:00",
        "commit": "abc",
    }
    assert cold_text({"cold": {**cold, "jobs": 2}}).startswith(
        "1.5 min on AMD EPYC, 1 threads, 2 chapters at"
    )
    assert "at a time" not in cold_text({"cold": {**cold, "jobs": 1}}) + cold_text({"cold": cold})


# ------------------------------------------------------------------------------ made once
_LOCKED_MAKE = """
import sys, time
from pathlib import Path
from bbam_lite.utils.run_folder import made_once
run = Path(sys.argv[1])
art = run / "results" / "answer.json"
with made_once(run, "result", art, art.exists) as finished:
    if not finished:
        with open(run / "made.txt", "a") as f:
            f.write("made\\n")
        time.sleep(1.5)  # long enough for the others to ask meanwhile
        art.parent.mkdir(parents=True, exist_ok=True)
        art.write_text("42")
print(art.read_text())
"""


def _together(code: str, args: list[str], logs: list[Path]) -> list[str]:
    """Run ``code`` in one process per log file at the same time; their outputs."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, *args],
            cwd=REPO,
            env={**os.environ, "OMP_NUM_THREADS": "1", CACHE_LOG_ENV: str(log)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for log in logs
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, out + err
    return [out for out, _ in outs]


def _lookups(logs: list[Path]) -> list[str]:
    return sorted(ln.split()[0] for log in logs for ln in log.read_text().splitlines())


def test_three_processes_asking_for_one_artefact_make_it_once(tmp_path):
    run = tmp_path / "run"
    logs = [tmp_path / f"cache-{i}.log" for i in range(3)]
    assert _together(_LOCKED_MAKE, [str(run)], logs) == ["42\n"] * 3
    assert (run / "made.txt").read_text() == "made\n"
    assert _lookups(logs) == ["hit", "hit", "miss"]  # the two that waited read it
    assert (run / "locks" / "result-answer.json.lock").is_file()


def test_a_lock_held_by_a_killed_process_is_released(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", _LOCKED_MAKE.replace("time.sleep(1.5)", "time.sleep(600)"), str(run)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not (run / "made.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (run / "made.txt").exists(), holder.communicate()
    holder.kill()  # SIGKILL while it holds the lock, before the artefact is written
    holder.wait()
    log = tmp_path / "cache.log"
    assert _together(_LOCKED_MAKE, [str(run)], [log]) == ["42\n"]
    assert (run / "made.txt").read_text() == "made\nmade\n"  # made again: the first never finished
    assert _lookups([log]) == ["miss"]


_WORKSPACE = """
import sys, time
from pathlib import Path
from bbam_lite.workspace import Workspace
run = Path(sys.argv[1])
ws = Workspace(run, profile="smoke")
root = ws.data_path()

def compute():
    with open(run.parent / "computed.txt", "a") as f:
        f.write("computed\\n")
    time.sleep(1.5)
    return {"images": len(ws.data("train"))}

print(root.name, ws.cached_json("counted", {"n": 1}, compute, uses_detector=False))
"""


def test_two_workspaces_on_one_run_folder_make_the_data_and_a_result_once(tmp_path):
    run = tmp_path / "run"
    logs = [tmp_path / f"cache-{i}.log" for i in range(2)]
    outs = _together(_WORKSPACE, [str(run)], logs)
    assert outs[0] == outs[1] and "{'images': 6}" in outs[0], outs  # smoke: 6 training images
    assert (tmp_path / "computed.txt").read_text() == "computed\n"
    assert len(list((run / "data").iterdir())) == 1  # no partial folder of a second generation left
    kinds = sorted(ln.split()[:2] for log in logs for ln in log.read_text().splitlines())
    assert kinds == [["hit", "data"], ["hit", "result"], ["miss", "data"], ["miss", "result"]]


# ---------------------------------------------------------------------------- kill, resume
def _alive_in_group(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` that still run (zombies aside; Linux /proc)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (command)"
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


@pytest.mark.slow
def test_a_killed_parallel_batch_resumes_without_making_again_what_it_finished(tmp_path):
    out, run = tmp_path / "chapters", tmp_path / "run"
    cmd = book_run_command(out, run, "--only", *CHAPTERS, "--jobs", "2")
    proc = subprocess.Popen(cmd, cwd=REPO, env=book_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    made = []
    while not made and proc.poll() is None and time.monotonic() < deadline:
        made = list(run.glob("data/*/dataset.json"))  # the shared dataset is finished
        time.sleep(0.1)
    assert proc.poll() is None and made, "the batch finished before it could be killed: " + proc.stdout.read()
    before = made[0].stat()
    os.kill(proc.pid, signal.SIGKILL)  # kill -9 of bbam-lite book run itself
    proc.wait()
    deadline = time.monotonic() + 60
    while _alive_in_group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)  # its chapter processes end with it (and their kernels with them)
    left = _alive_in_group(proc.pid)
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
    assert not left, f"processes {left} outlived the killed batch"
    finished = [s for s in CHAPTERS.values() if (out / f"{s}.ipynb").exists()]
    assert len(finished) < len(CHAPTERS), "both chapters finished before the kill"

    again = _book(out, run, "--jobs", "2")
    for stem in CHAPTERS.values():
        line = next(ln for ln in again.stdout.splitlines() if stem in ln)
        assert ("skipped" if stem in finished else "done in") in line, again.stdout
        assert (out / f"{stem}.ipynb").is_file()
        assert _record(out, stem)["cache_hits"] >= 1, stem  # every rerun chapter reused the dataset
    after = made[0].stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), "data made again"


def test_a_parallel_batch_starts_the_longest_chapters_first(tmp_path):
    import nbformat

    from bbam_lite.book.runner import STATE_DIR, BookRun

    notebooks = []
    for stem in ("01-a", "02-b", "03-c", "04-d"):
        nb = nbformat.v4.new_notebook()
        nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata.language_info = {"name": "python"}
        cell = nbformat.v4.new_code_cell('profile = "smoke"')
        cell.metadata["tags"] = ["parameters"]
        nb.cells = [cell]
        nbformat.write(nb, tmp_path / f"{stem}.ipynb")
        notebooks.append(tmp_path / f"{stem}.ipynb")
    state = tmp_path / "out" / STATE_DIR
    state.mkdir(parents=True)
    records = {
        "01-a": {"seconds": 5.0},
        "02-b": {"seconds": 1.0, "cold": {"seconds": 900.0}},
        "04-d": {"seconds": 60},
    }
    for stem, record in records.items():
        (state / f"{stem}.json").write_text(json.dumps(record))
    run = BookRun(notebooks, tmp_path / "out", {"profile": "smoke"}, jobs=2)
    # by the cold time where there is one, else the last run's; unknown last, chapter order among equals
    assert [p.stem for p in run.start_order(notebooks)] == ["02-b", "04-d", "01-a", "03-c"]
