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


def class_map(masks: np.ndarray, labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """The semantic class map of instance masks (later instances over earlier ones)."""
    out = np.zeros((height, width), np.uint8)
    for m, c in zip(masks, labels, strict=True):
        out[m] = c
    return out


class LabelQuality:
    """The quality of pseudo labels against ground truth, the one scorer of labels folders, analyses
    and benchmarks: semantic mIoU with ignored pixels left out (and their share), mIoU with ignored
    pixels counted as background, and the mean over ground-truth objects of the IoU of the best
    same-class instance. Add images one by one (:meth:`add`); :meth:`merge` sums scorers that saw
    disjoint images (worker processes)."""

    def __init__(self, num_classes: int) -> None:
        self.conf = ConfusionMatrix(num_classes)
        self.conf_bg = ConfusionMatrix(num_classes)
        self.instance_ious: list[float] = []

    def add(
        self,
        gt_masks: np.ndarray,
        gt_labels: np.ndarray,
        semantic: np.ndarray,
        fg_masks: list[np.ndarray],
        fg_labels: list[int],
    ) -> list[float]:
        """Score one image's class map (255 = ignore) and instance foregrounds; returns the
        best-match IoU of each ground-truth object."""
        gt = class_map(gt_masks, gt_labels, *semantic.shape)
        self.conf.update(gt, semantic)
        self.conf_bg.update(gt, np.where(semantic == IGNORE, 0, semantic).astype(np.uint8))
        ious = best_match_ious(gt_masks, gt_labels, fg_masks, fg_labels)
        self.instance_ious += ious
        return ious

    def merge(self, other: LabelQuality) -> None:
        for mine, theirs in ((self.conf, other.conf), (self.conf_bg, other.conf_bg)):
            mine.mat += theirs.mat
            mine.ignored += theirs.ignored
            mine.total += theirs.total
        self.instance_ious += other.instance_ious

    def result(self, class_names: list[str] | None = None) -> dict:
        """The scores as ``quality.json`` holds them (``per_class_iou`` when ``class_names``)."""
        out = {
            "miou": self.conf.miou(),
            "ignore_fraction": self.conf.ignore_fraction,
            "miou_ignore_as_background": self.conf_bg.miou(),
            "mean_instance_iou": float(np.mean(self.instance_ious)) if self.instance_ious else 0.0,
        }
        if class_names is not None:
            out["per_class_iou"] = {
                n: (None if np.isnan(v) else float(v))
                for n, v in zip(class_names, self.conf.iou(), strict=True)
            }
        return out
