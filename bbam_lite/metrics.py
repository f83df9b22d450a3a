"""Segmentation metrics: semantic mIoU from a confusion matrix (255 ignored), instance IoU."""

from __future__ import annotations

import numpy as np

IGNORE = 255


class ConfusionMatrix:
    """Accumulates a (K x K) confusion matrix over images; prediction pixels equal to 255 are
    excluded from the IoU and counted as ignored, ground-truth pixels equal to 255 are excluded."""

    def __init__(self, num_classes: int) -> None:
        self.k = num_classes
        self.mat = np.zeros((num_classes, num_classes), np.int64)
        self.ignored = 0
        self.total = 0

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        if gt.shape != pred.shape:
            raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
        valid_gt = gt != IGNORE
        self.total += int(valid_gt.sum())
        ign = valid_gt & (pred == IGNORE)
        self.ignored += int(ign.sum())
        keep = valid_gt & ~ign
        g, p = gt[keep].astype(np.int64), pred[keep].astype(np.int64)
        if g.size and (g.max() >= self.k or p.max() >= self.k):
            raise ValueError(f"class id {max(g.max(), p.max())} outside 0..{self.k - 1}")
        self.mat += np.bincount(g * self.k + p, minlength=self.k * self.k).reshape(self.k, self.k)

    def iou(self) -> np.ndarray:
        """Per-class IoU (nan for a class absent from both ground truth and prediction)."""
        tp = np.diag(self.mat).astype(np.float64)
        denom = self.mat.sum(0) + self.mat.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom > 0, tp / denom, np.nan)

    def miou(self) -> float:
        iou = self.iou()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0

    @property
    def ignore_fraction(self) -> float:
        return self.ignored / self.total if self.total else 0.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def best_match_ious(
    gt_masks: np.ndarray, gt_labels: np.ndarray, pred_masks: list[np.ndarray], pred_labels: list[int]
) -> list[float]:
    """For each ground-truth instance, the IoU of the best predicted mask of the same class (0 if none)."""
    out = []
    for g, c in zip(gt_masks, gt_labels, strict=True):
        cands = [mask_iou(g, p) for p, pc in zip(pred_masks, pred_labels, strict=True) if pc == c]
        out.append(max(cands, default=0.0))
    return out
