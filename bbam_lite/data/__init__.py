"""Datasets: one record type (:mod:`.records`) and readers for COCO, PASCAL VOC and the synthetic
set, each registered in :mod:`.registry` (detection, ``--dataset`` choices, loading)."""

from __future__ import annotations

from pathlib import Path

from bbam_lite.data.records import BoxDataset, DataError, DataWarning, ImageRecord, check_not_empty
from bbam_lite.data.registry import (
    DatasetReader,
    dataset_kind,
    get_reader,
    reader_names,
    readers,
    register_reader,
)


def split_files(kind: str, root: Path, split: str) -> list[Path]:
    """The files that define split ``split`` of a dataset (any one of them is enough)."""
    return get_reader(kind).split_files(Path(root), split)


def available_splits(kind: str, root: Path) -> list[str]:
    """The splits a dataset folder has (what :func:`split_files` finds), sorted."""
    return get_reader(kind).available_splits(Path(root))


def check_split(kind: str, root: Path, split: str, split_option: str | None = None) -> None:
    """One-line :class:`DataError` when ``root`` has no split ``split``: it names the file looked
    for, the splits that are there and, when given, the option that picks another split."""
    files = split_files(kind, root, split)
    if any(f.is_file() for f in files):
        return
    looked = " or ".join(str(f.relative_to(root)) for f in files)
    there = ", ".join(available_splits(kind, root)) or "none"
    hint = f"; choose another with {split_option} NAME" if split_option else ""
    raise DataError(f"{root}: no split {split!r} ({looked} not found; splits here: {there}){hint}")


def load_dataset(
    kind: str,
    root: Path,
    split: str = "train",
    split_option: str | None = None,
) -> BoxDataset:
    """Read split ``split`` of the dataset folder ``root`` with the reader of ``kind`` (a
    registered kind, see :func:`reader_names`, or ``auto``: detected from the folder).

    * synthetic: the folder written by ``bbam-lite data synth``;
    * voc: the ``VOC2012`` folder (split train | val | trainval | train_aug);
    * coco: the COCO 2017 root (``annotations/instances_{split}2017.json``, images in ``{split}2017/``),
      or any folder laid out like the synthetic one (``annotations/{split}.json``, ``images/{split}/``).

    A missing split is one line naming the splits there are and ``split_option``, the command-line
    option that picks another (``--split``, ``--val-split``, ...), when given.
    """
    from bbam_lite.data.records import check_data_root

    kind = dataset_kind(Path(root), kind)
    root = check_data_root(Path(root), kind)
    check_split(kind, root, split, split_option)
    return get_reader(kind).read(root, split)


__all__ = [
    "BoxDataset",
    "DataError",
    "DataWarning",
    "DatasetReader",
    "ImageRecord",
    "available_splits",
    "check_not_empty",
    "check_split",
    "dataset_kind",
    "get_reader",
    "load_dataset",
    "reader_names",
    "readers",
    "register_reader",
    "split_files",
]
