"""Training batches for the segmentation networks, each a function of (seed, iteration).

The semantic network sees DeepLab-v2's augmentation: a random rescale, a random crop of
``crop_size`` (padding with the mean colour and ignored labels where the image is smaller) and a
horizontal flip. The instance network sees the detector's: a horizontal flip (torchvision's
transform resizes). The random draws come from ``numpy.random.default_rng([seed, iteration, ...])``,
so a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from bbam_lite.data.images import image_tensor
from bbam_lite.detector.train import ImageCache
from bbam_lite.segment.targets import IGNORE, TrainingLabels

#: ImageNet mean colour (uint8); padding with it gives zero after the networks' normalisation.
MEAN_RGB = (124, 116, 104)


def scale_crop_flip(
    image: np.ndarray,
    label: np.ndarray,
    crop: int,
    scale_range: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Rescale by a factor drawn from ``scale_range``, pad to at least ``crop``, crop ``crop`` x ``crop``
    at a random place, flip with probability 1/2. Labels use nearest neighbour; padding is 255."""
    s = rng.uniform(*scale_range)
    h, w = label.shape
    nh, nw = max(int(round(h * s)), 1), max(int(round(w * s)), 1)
    if (nh, nw) != (h, w):
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, (nw, nh), interpolation=cv2.INTER_NEAREST)
    ph, pw = max(crop - nh, 0), max(crop - nw, 0)
    if ph or pw:
        image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=MEAN_RGB)
        label = cv2.copyMakeBorder(label, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=IGNORE)
    y = int(rng.integers(0, label.shape[0] - crop + 1))
    x = int(rng.integers(0, label.shape[1] - crop + 1))
    image, label = image[y : y + crop, x : x + crop], label[y : y + crop, x : x + crop]
    if rng.random() < 0.5:
        image, label = image[:, ::-1], label[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


def semantic_batch(
    labels: TrainingLabels,
    idx: np.ndarray,
    cache: ImageCache,
    crop: int,
    scale_range: tuple[float, float],
    seed: int,
    iteration: int,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (B, 3, crop, crop) in [0, 1] and class targets (B, crop, crop) int64 (255 ignored)."""
    images, targets = [], []
    for k, i in enumerate(idx):
        rec = labels.records[int(i)]
        rng = np.random.default_rng([seed, iteration, k])
        img, lab = scale_crop_flip(cache.get(rec), labels.semantic(rec), crop, scale_range, rng)
        images.append(image_tensor(img, device))
        targets.append(torch.from_numpy(lab.astype(np.int64)))
    return torch.stack(images), torch.stack(targets).to(device)


def instance_batch(
    labels: TrainingLabels,
    idx: np.ndarray,
    cache: ImageCache,
    seed: int,
    iteration: int,
    device: torch.device | str = "cpu",
) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Images and torchvision targets (boxes, labels, uint8 masks with 255 = ignore), half flipped."""
    flips = np.random.default_rng([seed, iteration, 7]).random(len(idx)) < 0.5
    images, targets = [], []
    for i, flip in zip(idx, flips, strict=True):
        rec = labels.records[int(i)]
        t = labels.instances(rec)
        img = image_tensor(cache.get(rec), device)
        boxes = torch.as_tensor(t.boxes, dtype=torch.float32, device=device)
        masks = torch.from_numpy(t.masks).to(device)
        if flip:
            img, masks = img.flip(-1), masks.flip(-1)
            boxes = torch.stack(
                [rec.width - boxes[:, 2], boxes[:, 1], rec.width - boxes[:, 0], boxes[:, 3]], 1
            )
        images.append(img)
        targets.append(
            {
                "boxes": boxes,
                "labels": torch.as_tensor(t.labels, dtype=torch.int64, device=device),
                "masks": masks,
            }
        )
    return images, targets
