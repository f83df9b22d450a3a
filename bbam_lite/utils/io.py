"""Atomic writes: every output is written under a temporary name and renamed into place.

A run killed part-way therefore leaves either the old file or the new one, never half of one, and
a rerun can trust whatever it finds under a final name. A write that fails (a read-only or full
file system, no permission, a file where a folder should be) is :class:`WriteError`, one line
naming the output and the cause; a JSON file that already holds what would be written is left
alone, so a finished run's rerun writes nothing.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)


class WriteError(ValueError):
    """An output that could not be written: one line naming it and the cause."""


def _file_in_the_way(path: Path) -> Path | None:
    """The first of ``path`` and its parents that exists but is not a folder."""
    for p in (path, *path.parents):
        if p.exists():
            return None if p.is_dir() else p
    return None


def write_error(exc: OSError, path: Path | str | None = None) -> WriteError:
    """The one-line :class:`WriteError` for ``exc``, raised while writing ``path`` (default: the
    file the error names)."""
    target = Path(path if path is not None else exc.filename or "?")
    cause = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        blocker = _file_in_the_way(target)
        if blocker is not None:
            cause = f"{blocker} is a file, not a folder"
    return WriteError(f"{target}: cannot write ({cause})")


def _concerns(name: Path, path: Path) -> bool:
    """Whether an error about file ``name`` is about writing ``path``: the path itself, a folder on
    the way to it, something inside it, or its temporary sibling (``.NAME.*``) or what is in that."""
    if name in path.parents:
        return True
    temporary = f".{path.name}."
    return any(
        a == path or (a.parent == path.parent and a.name.startswith(temporary)) for a in (name, *name.parents)
    )


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an :class:`OSError` of the block about ``path`` (or naming no file, as a full disk's
    does) into :class:`WriteError`; an error about another file (an input the block reads) passes
    unchanged."""
    path = Path(path)
    try:
        yield
    except OSError as exc:
        name = exc.filename
        if isinstance(name, (str, bytes)) and not _concerns(Path(os.fsdecode(name)), path):
            raise
        raise write_error(exc, path) from None


def make_folder(path: Path) -> Path:
    """``mkdir -p path``, failing with one line (:class:`WriteError`); nothing is written when the
    folder exists."""
    path = Path(path)
    with writing(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


def check_output_folder(path: Path, option: str = "--out") -> None:
    """One line (:class:`WriteError`) when the folder option ``option`` names a file, or a path
    under a file, before anything runs."""
    path = Path(path)
    blocker = _file_in_the_way(path)
    if blocker == path:
        raise WriteError(f"{option} {path}: is a file; {option} must be a folder")
    if blocker is not None:
        raise WriteError(f"{option} {path}: {blocker} is a file, not a folder")


def _disk_full(folder: Path) -> bool:
    """Whether the file system holding ``folder`` has (almost) no space left."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < (1 << 20)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``. An OS error
    while writing is :class:`WriteError` naming ``path``."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
            yield Path(tmp)
            os.replace(tmp, path)
        except Exception as exc:  # torch.save reports a full disk as a RuntimeError
            if not isinstance(exc, OSError) and _disk_full(path.parent):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) from None
            raise
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def atomic_write_json(path: Path, data: Any, indent: int | None = None) -> None:
    """Write ``data`` as JSON, unless ``path`` already holds exactly that text (then nothing is
    written: a rerun that changes nothing works on read-only media)."""
    text = json.dumps(data, indent=indent)
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size == len(text.encode("utf-8")):
            if path.read_text(encoding="utf-8") == text:
                return
    except (OSError, UnicodeDecodeError):
        pass  # unreadable: write it anew
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def atomic_save(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` and rename the result to ``path`` (for torch.save, PIL, ...)."""
    with atomic_path(path) as tmp:
        write(tmp)


def file_digest(path: Path, length: int = 16) -> str:
    """The first ``length`` hex digits of the SHA-256 of a file's bytes: names a checkpoint by its
    content, so that a new file under the same name never passes for the old one."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]
