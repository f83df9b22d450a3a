"""Run folders: the settings a run was made with (a rerun with other settings is refused), one lock
per shared artefact (made once however many processes ask for it), and the one-line descriptions
of the machine and of the code's commit that results files record."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bbam_lite.utils.io import atomic_write_json


class RunSettingsError(ValueError):
    """A run folder made with other settings than the ones asked for."""


def check_run_settings(run: Path, settings: dict) -> None:
    """Write ``RUN/settings.json`` on a fresh run; refuse a run folder made with other settings."""
    path = Path(run) / "settings.json"
    if path.exists():
        try:
            with open(path, encoding="utf-8") as f:
                old = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RunSettingsError(f"{path}: unreadable settings file ({e}); delete the folder") from None
        new = json.loads(json.dumps(settings))
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise RunSettingsError(
                f"{run}: run folder was made with other settings (differs in {', '.join(diff)}); "
                "use another --out or delete it"
            )
    else:
        atomic_write_json(path, settings, indent=2)


def finished_run(run: Path, model: str, summary: str) -> dict | None:
    """The summary (``RUN/summary``, JSON) of a run whose final files are intact, else None.

    A trainer calls it when its checkpoint is at the last iteration: a finished run's rerun
    returns the stored summary and writes nothing (it works on read-only media); a missing or
    damaged ``RUN/model`` (it must load with ``torch.load(weights_only=True)``) or summary is
    written again from the checkpoint."""
    import torch

    try:
        with open(Path(run) / summary, encoding="utf-8") as f:
            result = json.load(f)
        torch.load(Path(run) / model, map_location="cpu", weights_only=True)
    except Exception:  # missing or damaged: the caller rewrites it
        return None
    return result if isinstance(result, dict) else None


def hardware() -> str:
    """A one-line description of this machine, for results files."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{cpu}, {torch.get_num_threads()} threads{gpu}"


def git_commit(repo: Path | None = None, watched: tuple[str, ...] = ("bbam_lite", "scripts")) -> str:
    """The checkout's commit (12 hex digits), ``+dirty`` where ``watched`` paths have uncommitted
    changes; "unknown" outside a git checkout."""
    cwd = str(repo) if repo else None
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=cwd
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", *watched], capture_output=True, text=True, cwd=cwd
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()[:12] + ("+dirty" if dirty.stdout.strip() else "")


#: ``bbam-lite book run`` sets this to a file while a chapter runs; every run-folder artefact the
#: chapter's workspace looks up (dataset, trained detector, pseudo labels, analysis results) adds a
#: line ``hit KIND PATH`` (reused) or ``miss KIND PATH`` (made now) to it.
CACHE_LOG_ENV = "BBAM_LITE_CACHE_LOG"


def note_cache(kind: str, path: Path, hit: bool) -> None:
    """Log one artefact lookup to the file named by :data:`CACHE_LOG_ENV` (nothing if unset)."""
    log = os.environ.get(CACHE_LOG_ENV)
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{'hit' if hit else 'miss'} {kind} {path}\n")


def cache_hits(log: Path) -> int:
    """How many lookups of a :data:`CACHE_LOG_ENV` file reused an artefact (0 if it is absent)."""
    try:
        lines = Path(log).read_text(encoding="utf-8").splitlines()
    except OSError:
        return 0
    return sum(line.startswith("hit ") for line in lines)


#: ``RUN/locks/<kind>-<artefact name>.lock``: one lock file per artefact of a run folder.
LOCKS_DIR = "locks"

#: Lock files this process holds (a nested request for the same artefact does not lock again).
_HELD: set[Path] = set()


@contextmanager
def artefact_lock(run: Path, kind: str, path: Path) -> Iterator[None]:
    """Hold the run folder's exclusive lock on artefact ``path`` (kind ``data``, ``labels``, ...).

    ``flock`` on ``RUN/locks/<kind>-<name>.lock``: a second process asking for the same artefact
    waits until the first is done; the OS releases the lock of a process that dies, so a killed
    run never leaves a stale lock. A run folder where the lock cannot be made (read-only media) is
    used without one: nothing can be written there anyway."""
    lock = Path(run) / LOCKS_DIR / f"{kind}-{Path(path).name}.lock"
    if lock in _HELD:
        yield
        return
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        f = open(lock, "a")
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        yield
        return
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        _HELD.add(lock)
        try:
            yield
        finally:
            _HELD.discard(lock)
            fcntl.flock(f, fcntl.LOCK_UN)


@contextmanager
def made_once(run: Path, kind: str, path: Path, finished: Callable[[], bool]) -> Iterator[bool]:
    """The one way a run-folder artefact is made: under its :func:`artefact_lock`, yields whether
    ``finished()`` (then the caller reads it) or not (then the caller makes it, inside the block,
    writing it atomically or marking it finished last). The lookup is logged (:func:`note_cache`)
    after any wait, so an artefact another chapter made meanwhile counts as reused."""
    with artefact_lock(run, kind, path):
        done = finished()
        note_cache(kind, path, done)
        yield done
