"""The objects of a dataset as BBAM tasks, with what the book's chapters compare them against."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bbam_lite.attribution.bbam import ObjectTask
from bbam_lite.data.records import BoxDataset, ImageRecord


@dataclass
class StudyObject:
    """One annotated object: its image, box, class and ground-truth mask (None where the data has
    none); :meth:`task` makes it a BBAM task keyed as the pseudo-label generator keys it."""

    image_id: int
    index: int  # position among its image's boxes (the key BBAM's jitter stream is drawn from)
    image: np.ndarray  # uint8 (H, W, 3)
    box: np.ndarray  # (4,) float32 x1, y1, x2, y2
    label: int
    gt: np.ndarray | None  # (H, W) bool

    @property
    def key(self) -> tuple[int, int]:
        return (self.image_id, self.index)

    @property
    def height(self) -> int:
        return self.image.shape[0]

    @property
    def width(self) -> int:
        return self.image.shape[1]

    @property
    def area_ratio(self) -> float:
        """Box area / image area: the ``a`` of the adaptive stride s(a)."""
        x1, y1, x2, y2 = (float(v) for v in self.box)
        return max(x2 - x1, 0.0) * max(y2 - y1, 0.0) / (self.height * self.width)

    def task(self, device: str | torch.device = "cpu") -> ObjectTask:
        """The object as a BBAM task: its image on ``device``, its box on the CPU (the functions
        that take a task move the box where they need it)."""
        from bbam_lite.data.images import image_tensor

        return ObjectTask(image_tensor(self.image, device), torch.as_tensor(self.box), self.label, self.key)


def _require_masks(dataset: BoxDataset, records: list[ImageRecord]) -> None:
    missing = [r for r in records if not r.has_masks]
    if missing:
        raise ValueError(
            f"{dataset.name}: image {missing[0].path} has no instance masks; the analyses compare "
            "with ground-truth masks (use a split with masks, e.g. VOC val or COCO)"
        )


def study_objects(
    dataset: BoxDataset, n_images: int | None = None, need_masks: bool = True
) -> list[StudyObject]:
    """Every object of the first ``n_images`` images (all images when None), in dataset order.
    ``need_masks``: refuse images without ground-truth masks in one line (else ``gt`` is None)."""
    records = list(dataset)[: n_images if n_images is not None else None]
    if need_masks:
        _require_masks(dataset, records)
    out = []
    for rec in records:
        image, masks = rec.load_image(), rec.load_masks() if rec.has_masks else None
        for k, (b, c) in enumerate(zip(rec.boxes, rec.labels, strict=True)):
            gt = None if masks is None else masks[k]
            out.append(StudyObject(rec.image_id, k, image, np.asarray(b, np.float32), int(c), gt))
    return out
