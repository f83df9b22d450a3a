"""The objects of a dataset as BBAM tasks, with what the book's chapters compare them against."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bbam_lite.attribution.bbam import ObjectTask
from bbam_lite.data.records import BoxDataset, ImageRecord
from bbam_lite.detector.evaluate import image_tensor


@dataclass
class StudyObject:
    """One annotated object: its BBAM task (key = (image_id, index)), image and true mask if any."""

    task: ObjectTask
    image: np.ndarray  # uint8 (H, W, 3)
    mask: np.ndarray | None  # bool (H, W) ground truth, None when the data has no masks
    record: ImageRecord
    index: int  # position of the object in its record

    @property
    def box(self) -> np.ndarray:
        return self.record.boxes[self.index]

    @property
    def area_ratio(self) -> float:
        x1, y1, x2, y2 = self.box
        return float(max(x2 - x1, 0) * max(y2 - y1, 0) / (self.record.width * self.record.height))


def study_objects(dataset: BoxDataset, n_images: int | None = None, device: str = "cpu") -> list[StudyObject]:
    """Every object of the first ``n_images`` images (all images when None), in dataset order."""
    recs = list(dataset)[: n_images if n_images is not None else None]
    out = []
    for rec in recs:
        image = rec.load_image()
        tensor = image_tensor(image, device)
        masks = rec.load_masks()
        for k, (b, c) in enumerate(zip(rec.boxes, rec.labels, strict=True)):
            task = ObjectTask(tensor, torch.as_tensor(b, dtype=torch.float32), int(c), key=(rec.image_id, k))
            out.append(StudyObject(task, image, None if masks is None else masks[k], rec, k))
    return out
