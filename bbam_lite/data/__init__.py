"""Datasets: one record type (:mod:`.records`) and readers for COCO, PASCAL VOC and the synthetic set."""

from __future__ import annotations

import re
from pathlib import Path

from bbam_lite.data.records import BoxDataset, DataError, DataWarning, ImageRecord, check_not_empty

DATASETS = ("synthetic", "voc", "coco")


def split_files(kind: str, root: Path, split: str) -> list[Path]:
    """The files that define split ``split`` of a dataset (any one of them is enough)."""
    root = Path(root)
    if kind == "voc":
        return [root / "ImageSets" / "Segmentation" / f"{split}.txt"]
    if kind == "coco":
        return [root / "annotations" / f"instances_{split}2017.json", root / "annotations" / f"{split}.json"]
    return [root / "annotations" / f"{split}.json"]


def available_splits(kind: str, root: Path) -> list[str]:
    """The splits a dataset folder has (what :func:`split_files` finds), sorted."""
    root = Path(root)
    if kind == "voc":
        return sorted(p.stem for p in (root / "ImageSets" / "Segmentation").glob("*.txt"))
    names = [p.stem for p in (root / "annotations").glob("*.json")]
    official = [n[len("instances_") : -len("2017")] for n in names if re.fullmatch(r"instances_.+2017", n)]
    return sorted(official or names)


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
    image_list: Path | None = None,
    split_option: str | None = None,
) -> BoxDataset:
    """Read split ``split`` of a dataset of kind synthetic | voc | coco rooted at ``root``.

    * synthetic: the folder written by ``bbam-lite data synth``;
    * voc: the ``VOC2012`` folder (split train | val | trainval | train_aug, or ``image_list``);
    * coco: the COCO 2017 root (``annotations/instances_{split}2017.json``, images in ``{split}2017/``),
      or any folder laid out like the synthetic one (``annotations/{split}.json``, ``images/{split}/``).

    A missing split is one line naming the splits there are and ``split_option``, the command-line
    option that picks another (``--split``, ``--val-split``, ...), when given.
    """
    from bbam_lite.data.records import check_data_root

    root = check_data_root(Path(root), kind)
    if kind in DATASETS and image_list is None:
        check_split(kind, root, split, split_option)
    if kind == "synthetic":
        from bbam_lite.data.synthetic import read_synthetic

        return read_synthetic(root, split)
    if kind == "voc":
        from bbam_lite.data.voc import read_voc

        return read_voc(root, split, image_list)
    if kind == "coco":
        from bbam_lite.data.coco import read_coco

        official = root / "annotations" / f"instances_{split}2017.json"
        if official.exists():
            return read_coco(official, root / f"{split}2017", name=f"coco-{split}")
        return read_coco(
            root / "annotations" / f"{split}.json", root / "images" / split, name=f"coco-{split}"
        )
    raise ValueError(f"unknown dataset kind {kind!r}; choose one of {DATASETS}")


__all__ = [
    "DATASETS",
    "BoxDataset",
    "DataError",
    "DataWarning",
    "ImageRecord",
    "available_splits",
    "check_not_empty",
    "check_split",
    "load_dataset",
    "split_files",
]
