"""Dataset statistics that methods need: the per-channel mean mu of BBAM's perturbation."""

from __future__ import annotations

import json

import numpy as np
import torch

from bbam_lite.data.records import BoxDataset


def channel_mean(dataset: BoxDataset, max_images: int = 200) -> torch.Tensor:
    """Per-channel mean (RGB, in [0, 1]) of the training data.

    A synthetic set records it in ``dataset.json``; otherwise it is measured on up to ``max_images``
    evenly spaced images of ``dataset`` (for VOC train_aug this is within 0.01 of the full mean).
    """
    meta = dataset.root.parent.parent / "dataset.json" if dataset.root is not None else None
    if meta is not None and meta.is_file():
        with open(meta, encoding="utf-8") as f:
            mean = json.load(f).get("mean_rgb")
        if mean:
            return torch.tensor(mean, dtype=torch.float32)
    if len(dataset) == 0:
        return torch.tensor([0.485, 0.456, 0.406])
    idx = np.linspace(0, len(dataset) - 1, min(max_images, len(dataset))).round().astype(int)
    sums = np.zeros(3)
    count = 0
    for i in np.unique(idx):
        img = dataset[int(i)].load_image()
        sums += img.reshape(-1, 3).sum(0)
        count += img.shape[0] * img.shape[1]
    return torch.tensor(sums / count / 255.0, dtype=torch.float32)
