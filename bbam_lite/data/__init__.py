"""Datasets: one record type (:mod:`.records`) and readers for COCO, PASCAL VOC and the synthetic set."""

from __future__ import annotations

from pathlib import Path

from bbam_lite.data.records import BoxDataset, DataError, DataWarning, ImageRecord

DATASETS = ("synthetic", "voc", "coco")


def load_dataset(kind: str, root: Path, split: str = "train", image_list: Path | None = None) -> BoxDataset:
    """Read split ``split`` of a dataset of kind synthetic | voc | coco rooted at ``root``.

    * synthetic: the folder written by ``bbam-lite data synth``;
    * voc: the ``VOC2012`` folder (split train | val | trainval | train_aug, or ``image_list``);
    * coco: the COCO 2017 root (``annotations/instances_{split}2017.json``, images in ``{split}2017/``),
      or any folder laid out like the synthetic one (``annotations/{split}.json``, ``images/{split}/``).
    """
    from bbam_lite.data.records import check_data_root

    root = check_data_root(Path(root), kind)
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


__all__ = ["DATASETS", "BoxDataset", "DataError", "DataWarning", "ImageRecord", "load_dataset"]
