"""Training targets for the segmentation networks, from a pseudo-label folder or the ground truth.

``source`` is either

* a labels folder written by ``bbam-lite pseudo-labels``: ``semantic/<image stem>.png`` (class ids,
  255 = ignore) for the semantic network, ``instances.json`` (COCO, RLE ``segmentation`` plus an
  ``ignore`` RLE per object) for the instance network; only the images it labels are trained on
  (a folder made with ``--limit N`` trains on those N images); or
* ``gt``: full supervision, the dataset's own masks (``SegmentationClass`` PNGs where the dataset
  has them, so VOC's void boundary stays ignored; otherwise the instance masks).

An instance target is a uint8 map per object: 1 foreground, 0 background, 255 ignore. Packing the
ignore region into the mask lets torchvision's transform resize it together with the mask (nearest
neighbour keeps the three values).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bbam_lite.data.coco import decode_rle, load_coco_json
from bbam_lite.data.records import BoxDataset, DataError, ImageRecord
from bbam_lite.detector.train import ImageCache
from bbam_lite.pseudo.folder import LabelsFolder
from bbam_lite.pseudo.writers import read_semantic_png

GT = "gt"
IGNORE = 255


@dataclass
class InstanceTarget:
    """One image's instance targets: boxes (N, 4) x1 y1 x2 y2, class ids (N,), masks (N, H, W) uint8."""

    boxes: np.ndarray
    labels: np.ndarray
    masks: np.ndarray


def semantic_png_path(rec: ImageRecord) -> Path | None:
    """The dataset's own ``SegmentationClass`` PNG for a record (VOC or synthetic layout), if any."""
    p = rec.path
    for cand in (
        p.parents[1] / "SegmentationClass" / f"{p.stem}.png",  # VOC2012/JPEGImages/x.jpg
        p.parents[2] / "SegmentationClass" / p.parent.name / f"{p.stem}.png",  # root/images/<split>/x.jpg
    ):
        if cand.is_file():
            return cand
    return None


def semantic_ground_truth(rec: ImageRecord) -> np.ndarray:
    """Class map (H, W) uint8 of a record: its ``SegmentationClass`` PNG, else its instance masks."""
    png = semantic_png_path(rec)
    if png is not None:
        return _read_class_png(png, rec)
    masks = rec.load_masks()
    if masks is None:
        raise DataError(f"{rec.path}: no ground-truth masks (no SegmentationClass PNG, no instance masks)")
    out = np.zeros((rec.height, rec.width), np.uint8)
    for m, c in zip(masks, rec.labels, strict=True):
        out[m] = c
    return out


def _read_class_png(path: Path, rec: ImageRecord, num_classes: int | None = None) -> np.ndarray:
    try:
        sem = read_semantic_png(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read label PNG ({type(exc).__name__}: {exc})") from None
    if sem.shape != (rec.height, rec.width):
        raise DataError(
            f"{path}: label map is {sem.shape[1]}x{sem.shape[0]}, its image {rec.path.name} is "
            f"{rec.width}x{rec.height}"
        )
    if num_classes is not None:
        bad = (sem > num_classes) & (sem != IGNORE)
        if bad.any():
            raise DataError(f"{path}: class id {int(sem[bad].max())} outside 0..{num_classes} (or 255)")
    return sem


class TrainingLabels:
    """The targets of one training run: which images, and their semantic or instance labels."""

    def __init__(self, dataset: BoxDataset, source: str | Path, task: str) -> None:
        if task not in ("semantic", "instance"):
            raise ValueError(f"unknown task {task!r}; choose semantic or instance")
        self.dataset, self.task = dataset, task
        self.source = GT if str(source) == GT else Path(source)
        self._anns: dict[int, list[dict]] = {}
        self._cache = ImageCache(512 << 20)
        if self.source == GT:
            missing = [r for r in dataset if not r.has_masks]
            if missing:
                raise DataError(
                    f"{missing[0].path}: --labels gt needs ground-truth masks "
                    f"({len(missing)} images have none)"
                )
            self.records = list(dataset)
        else:
            self.records = self._labelled_records()
        if not self.records:
            where = "--labels gt" if self.source == GT else str(self.source)
            raise DataError(
                f"{where}: none of the {len(dataset)} images of {dataset.name} ({dataset.root}) "
                f"has {task} labels there"
            )

    def _labelled_records(self) -> list[ImageRecord]:
        root = self.source
        if not root.is_dir():
            raise DataError(f"{root}: labels folder not found")
        folder = LabelsFolder(root)
        if not folder.settings_path.is_file() and not any(root.iterdir()):
            raise DataError(
                f"{root}: empty folder, no labels (no {folder.SETTINGS}, no {folder.SEMANTIC}/); "
                f"make them with bbam-lite pseudo-labels --out {root}"
            )
        if self.task == "semantic":
            sem = root / folder.SEMANTIC
            if not sem.is_dir() or not any(sem.glob("*.png")):
                raise DataError(
                    f"{root}: labels folder holds no semantic labels ({folder.SEMANTIC}/*.png: none; "
                    "its run labelled no image yet)"
                )
            return [r for r in self.dataset if folder.semantic_path(r).is_file()]
        path = folder.instances_path
        if not path.is_file():
            raise DataError(
                f"{root}: labels folder has no {folder.INSTANCES} (its run has not finished; rerun "
                "bbam-lite pseudo-labels to finish it)"
            )
        data = load_coco_json(path)
        names = {c["id"]: c["name"] for c in data["categories"]}
        want = dict(enumerate(self.dataset.class_names))
        if any(want.get(i) != n for i, n in names.items()):
            raise DataError(
                f"{path}: categories {sorted(names.items())} do not match the dataset's classes "
                f"{self.dataset.class_names[1:]}"
            )
        sizes = {im["id"]: (im.get("height"), im.get("width")) for im in data["images"]}
        for ann in data["annotations"]:
            self._anns.setdefault(ann.get("image_id"), []).append(ann)
        recs = [r for r in self.dataset if r.image_id in sizes]
        for r in recs:
            if sizes[r.image_id] != (r.height, r.width):
                raise DataError(
                    f"{path}: image id {r.image_id} is {sizes[r.image_id][1]}x{sizes[r.image_id][0]} there, "
                    f"{r.width}x{r.height} in the dataset ({r.path.name}); labels for another dataset?"
                )
        return recs

    def describe(self) -> dict:
        """What the labels are, for the run's settings (a labels folder's own settings included)."""
        if self.source == GT:
            return {"source": GT, "images": len(self.records)}
        folder = LabelsFolder(self.source)
        made_with = folder.settings() if folder.settings_path.is_file() else None
        return {"source": str(self.source.resolve()), "images": len(self.records), "made_with": made_with}

    def semantic(self, rec: ImageRecord) -> np.ndarray:
        """Class map (H, W) uint8, 255 = ignore."""
        if self.source == GT:
            return self._cache.get(rec, semantic_ground_truth)
        path = LabelsFolder(self.source).semantic_path(rec)
        return self._cache.get(rec, lambda r: _read_class_png(path, r, self.dataset.num_classes))

    def instances(self, rec: ImageRecord) -> InstanceTarget:
        """Boxes, class ids and uint8 masks (1 object, 0 background, 255 ignore) of one image."""
        if self.source == GT:
            masks = self._cache.get(rec, lambda r: r.load_masks().astype(np.uint8))
            return InstanceTarget(rec.boxes.astype(np.float32), rec.labels.astype(np.int64), masks)
        anns = self._anns.get(rec.image_id, [])
        masks = self._cache.get(rec, lambda r: self._decode(r, anns))
        boxes = np.array([_box_of(a) for a in anns], np.float32).reshape(-1, 4)
        labels = np.array([a["category_id"] for a in anns], np.int64)
        return InstanceTarget(boxes, labels, masks)

    def _decode(self, rec: ImageRecord, anns: list[dict]) -> np.ndarray:
        out = np.zeros((len(anns), rec.height, rec.width), np.uint8)
        path = LabelsFolder(self.source).instances_path
        for k, a in enumerate(anns):
            where = f"{path} (annotation {a.get('id')}, image id {rec.image_id})"
            try:
                fg = decode_rle(a["segmentation"])
                ign = decode_rle(a["ignore"]) if a.get("ignore") else np.zeros_like(fg)
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{where}: cannot decode mask ({type(exc).__name__}: {exc})") from None
            if fg.shape != (rec.height, rec.width) or ign.shape != fg.shape:
                raise DataError(
                    f"{where}: mask is {fg.shape[1]}x{fg.shape[0]}, image is {rec.width}x{rec.height}"
                )
            out[k][ign] = IGNORE
            out[k][fg] = 1
        return out


def _box_of(ann: dict) -> list[float]:
    """The box an object was labelled from (``source_box``, x1 y1 x2 y2), else its mask's COCO bbox."""
    if "source_box" in ann:
        return [float(v) for v in ann["source_box"]]
    x, y, w, h = (float(v) for v in ann["bbox"])
    return [x, y, x + w, y + h]
