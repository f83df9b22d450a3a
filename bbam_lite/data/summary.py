"""What a dataset holds, in numbers a data tour shows: objects per image, classes, box sizes."""

from __future__ import annotations

from collections import Counter

import numpy as np

from bbam_lite.data.records import BoxDataset


def dataset_summary(dataset: BoxDataset) -> dict:
    """Counts and box statistics of ``dataset`` (JSON-able).

    ``area_ratios`` are box area / image area, the ``a`` of BBAM's adaptive stride; ``by_class``
    maps a class name to its number of objects.
    """
    per_image, ratios, labels = [], [], []
    for rec in dataset:
        per_image.append(len(rec.boxes))
        if len(rec.boxes):
            wh = np.clip(rec.boxes[:, 2:] - rec.boxes[:, :2], 0, None)
            ratios += (wh.prod(1) / float(rec.width * rec.height)).tolist()
            labels += rec.labels.tolist()
    counts = Counter(labels)
    return {
        "name": dataset.name,
        "images": len(per_image),
        "objects": int(sum(per_image)),
        "objects_per_image": dict(sorted(Counter(per_image).items())),
        "by_class": {n: int(counts.get(i, 0)) for i, n in enumerate(dataset.class_names) if i > 0},
        "area_ratios": [float(r) for r in ratios],
        "with_masks": bool(len(dataset)) and all(r.has_masks for r in dataset),
    }
