"""The registry of dataset readers: every reader module of :mod:`bbam_lite.data` registers itself.

A reader is a name, a detection test on a folder, the files that define a split, the splits a
folder has and the function that reads a split. Detection (``--dataset auto``), the commands'
``--dataset`` choices and :func:`bbam_lite.data.load_dataset` derive from it, so a new reader is
one module in ``bbam_lite/data/`` that calls :func:`register_reader` (plus its test).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bbam_lite.data.records import BoxDataset


@dataclass(frozen=True)
class DatasetReader:
    """One kind of dataset folder."""

    name: str  # the --dataset value
    read: Callable[[Path, str], BoxDataset]  # (root, split) -> the split's records
    split_files: Callable[[Path, str], list[Path]]  # the files that define a split (any one is enough)
    available_splits: Callable[[Path], list[str]]  # the splits a folder has, sorted
    detect: Callable[[Path], bool] | None = None  # None: the kind a folder no other reader claims
    detected_by: str = ""  # for --help: what detection looks for, e.g. "DATA/Annotations exists"
    order: int = 50  # detection order: lower first


_REGISTRY: dict[str, DatasetReader] = {}
_loaded = False


def register_reader(reader: DatasetReader) -> DatasetReader:
    """Add ``reader`` (call it at the end of the reader's module)."""
    _REGISTRY[reader.name] = reader
    return reader


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        package = importlib.import_module("bbam_lite.data")
        for mod in pkgutil.iter_modules(package.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"bbam_lite.data.{mod.name}")


def readers() -> list[DatasetReader]:
    """Every registered reader, in detection order (the fallback last)."""
    _load()
    return sorted(_REGISTRY.values(), key=lambda r: (r.detect is None, r.order, r.name))


def reader_names() -> tuple[str, ...]:
    """The dataset kinds, in detection order: the ``--dataset`` choices besides ``auto``."""
    return tuple(r.name for r in readers())


def get_reader(kind: str) -> DatasetReader:
    """The reader of ``kind``; one-line error naming the kinds otherwise."""
    _load()
    if kind not in _REGISTRY:
        raise ValueError(f"unknown dataset kind {kind!r}; choose one of {', '.join(reader_names())}")
    return _REGISTRY[kind]


def dataset_kind(root: Path, kind: str = "auto") -> str:
    """``kind``, or for ``auto`` the first reader whose detection claims the folder ``root``."""
    if kind != "auto":
        return get_reader(kind).name
    for reader in readers():
        if reader.detect is None or reader.detect(Path(root)):
            return reader.name
    raise ValueError(f"{root}: no dataset reader recognises this folder; choose one with --dataset")


def detection_help() -> str:
    """How ``auto`` picks a kind, in words (the ``--dataset`` help)."""
    parts = [f"{r.name} if {r.detected_by}" for r in readers() if r.detect is not None]
    parts += [f"else {r.name}" for r in readers() if r.detect is None]
    return ", ".join(parts)


def annotation_splits(root: Path) -> list[str]:
    """Splits of a folder of COCO JSON files (``annotations/*.json``): the official
    ``instances_<split>2017`` names when there are any, else every file's stem."""
    names = [p.stem for p in (Path(root) / "annotations").glob("*.json")]
    official = [n[len("instances_") : -len("2017")] for n in names if re.fullmatch(r"instances_.+2017", n)]
    return sorted(official or names)
