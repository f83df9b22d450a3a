"""The paper's evaluation of segmentation predictions.

* Semantic: mIoU over background and every class (:class:`bbam_lite.metrics.ConfusionMatrix`;
  ground-truth 255, VOC's void boundary, is not scored).
* Instance: mask AP from pycocotools' COCOeval (``segm``) at IoU 0.25, 0.5, 0.7 and 0.75, AP
  averaged over 0.5:0.95, and AP_S / AP_M / AP_L (COCO's area ranges, averaged over 0.5:0.95); all
  read from one COCOeval run whose IoU thresholds are 0.25 plus COCO's ten, at 100 detections per
  image. A size range without ground-truth objects gives ``None``, not 0.
* ABO, average best overlap (Pont-Tuset et al., as used for weakly supervised instance
  segmentation since PRM): for every ground-truth instance the best IoU of any predicted mask of its
  image, class-agnostic and whatever the score, averaged over all instances (0 for an instance of
  an image without predictions).

Diagnostics beside them: the share of pixels that are and that are predicted an object
(semantic), and the median area of each object's best-overlap prediction over the object's own
(instance): they tell a network that predicts too little foreground from one that predicts the
wrong shapes.

The same scorers serve trained networks and labels folders taken as predictions (the
GrabCut-NoTrain rows); predicted masks are thresholded at probability 0.5.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from bbam_lite.data.coco import coco_ground_truth, decode_rle, encode_rle, load_coco_json
from bbam_lite.data.images import image_tensor
from bbam_lite.data.records import BoxDataset, DataError
from bbam_lite.metrics import ConfusionMatrix
from bbam_lite.pseudo.folder import LabelsFolder
from bbam_lite.pseudo.writers import read_semantic_png
from bbam_lite.segment.postprocess import crf_instance, crf_semantic
from bbam_lite.segment.targets import IGNORE, semantic_ground_truth

#: COCO's ten IoU thresholds 0.5:0.05:0.95, plus 0.25 (BBAM's AP25) in front.
IOU_THRESHOLDS = np.concatenate([[0.25], np.linspace(0.5, 0.95, 10)])
INSTANCE_KEYS = ("ap25", "ap50", "ap70", "ap75", "ap", "ap_s", "ap_m", "ap_l")


def _mean_precision(precision: np.ndarray) -> float | None:
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else None


def mask_ap(gt, results: list[dict]) -> dict[str, float | None]:
    """COCOeval ``segm`` on a pycocotools ``COCO`` ground truth and result dicts (RLE segmentation)."""
    from pycocotools.cocoeval import COCOeval

    if not results:  # nothing predicted: AP 0 wherever there is something to find
        areas = [a["area"] for a in gt.dataset["annotations"]]
        ranges = {"ap_s": (0, 32**2), "ap_m": (32**2, 96**2), "ap_l": (96**2, float("inf"))}
        out: dict[str, float | None] = dict.fromkeys(INSTANCE_KEYS, 0.0 if areas else None)
        for k, (lo, hi) in ranges.items():
            out[k] = 0.0 if any(lo <= a < hi for a in areas) else None
        return out
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(results), "segm")
        ev.params.iouThrs = IOU_THRESHOLDS
        ev.evaluate()
        ev.accumulate()
    prec = ev.eval["precision"]  # (T, R, K, A, M): thresholds, recall, classes, areas, max detections
    m = ev.params.maxDets.index(100)
    coco = slice(1, None)  # 0.5:0.95

    def at(t: float) -> float | None:
        return _mean_precision(prec[int(np.flatnonzero(np.isclose(IOU_THRESHOLDS, t))[0]), :, :, 0, m])

    out = {"ap25": at(0.25), "ap50": at(0.5), "ap70": at(0.7), "ap75": at(0.75)}
    out["ap"] = _mean_precision(prec[coco, :, :, 0, m])
    for a, name in zip((1, 2, 3), ("ap_s", "ap_m", "ap_l"), strict=True):
        out[name] = _mean_precision(prec[coco, :, :, a, m])
    return out


def best_overlap_matches(gt_masks: np.ndarray, pred_masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each ground-truth mask (n, H, W): its best IoU with any predicted mask (m, H, W), and
    that prediction's area over the ground truth's (0 when there is no prediction)."""
    if len(gt_masks) == 0 or len(pred_masks) == 0:
        return np.zeros(len(gt_masks)), np.zeros(len(gt_masks))
    g = gt_masks.reshape(len(gt_masks), -1).astype(np.float32)
    p = pred_masks.reshape(len(pred_masks), -1).astype(np.float32)
    inter = g @ p.T
    g_area, p_area = g.sum(1), p.sum(1)
    union = g_area[:, None] + p_area[None, :] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    best = iou.argmax(1)
    return iou.max(1), p_area[best] / np.maximum(g_area, 1)


class InstanceScorer:
    """Collects predicted instances image by image; :meth:`result` gives AP25..AP_L and ABO."""

    def __init__(self, dataset: BoxDataset) -> None:
        self.dataset = dataset
        self.results: list[dict] = []
        self.overlaps: list[np.ndarray] = []
        self.area_ratios: list[np.ndarray] = []
        self.seen: set[int] = set()

    def add(self, image_id: int, gt_masks: np.ndarray, masks: np.ndarray, labels, scores) -> None:
        """``masks`` (m, H, W) bool, ``labels`` class ids, ``scores`` confidences of one image."""
        self.seen.add(image_id)
        for mask, label, score in zip(masks, labels, scores, strict=True):
            self.results.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(label),
                    "segmentation": encode_rle(mask),
                    "score": float(score),
                }
            )
        overlap, area_ratio = best_overlap_matches(gt_masks, masks)
        self.overlaps.append(overlap)
        self.area_ratios.append(area_ratio)

    def result(self) -> dict:
        recs = [r for r in self.dataset if r.image_id in self.seen]
        gt = coco_ground_truth(BoxDataset(recs, self.dataset.class_names, self.dataset.name), use_masks=True)
        overlaps = np.concatenate(self.overlaps) if self.overlaps else np.zeros(0)
        ratios = np.concatenate(self.area_ratios) if self.area_ratios else np.zeros(0)
        return {
            **mask_ap(gt, self.results),
            "abo": float(overlaps.mean()) if overlaps.size else 0.0,
            # diagnostic: median area of each object's best-overlap prediction over the object's
            "best_match_area_ratio": float(np.median(ratios)) if ratios.size else 0.0,
            "images": len(recs),
            "instances": int(overlaps.size),
            "predictions": len(self.results),
        }


class SemanticScorer:
    """Collects predicted class maps; :meth:`result` gives mIoU (background included) and per-class IoU."""

    def __init__(self, dataset: BoxDataset) -> None:
        self.names = dataset.class_names
        self.conf = ConfusionMatrix(len(self.names))
        self.images = 0

    def add(self, gt: np.ndarray, pred: np.ndarray) -> None:
        self.conf.update(gt, pred)
        self.images += 1

    def result(self) -> dict:
        iou = self.conf.iou()
        total = max(int(self.conf.mat.sum()), 1)
        return {
            "miou": self.conf.miou(),
            # diagnostics: the share of scored pixels that are, and that are predicted, an object
            "foreground_fraction": float(self.conf.mat[1:].sum() / total),
            "predicted_foreground_fraction": float(self.conf.mat[:, 1:].sum() / total),
            "per_class_iou": {
                n: None if np.isnan(v) else float(v) for n, v in zip(self.names, iou, strict=True)
            },
            "images": self.images,
        }


def _gt_masks(rec) -> np.ndarray:
    masks = rec.load_masks()
    if masks is None:
        raise DataError(f"{rec.path}: no ground-truth instance masks to evaluate against")
    return masks


def evaluate_semantic_model(
    model: torch.nn.Module,
    dataset: BoxDataset,
    device: str | torch.device = "cpu",
    crf: bool = False,
    scaled_crf: bool = True,
    progress: bool = True,
) -> dict:
    """mIoU of a DeepLab on ``dataset`` (and, with ``crf``, after dense-CRF post-processing)."""
    from bbam_lite.segment.semantic import predict_semantic

    plain, refined = SemanticScorer(dataset), SemanticScorer(dataset)
    for rec in tqdm(dataset, desc="evaluate semantic", unit="img", disable=not progress, leave=False):
        image = rec.load_image()
        gt = semantic_ground_truth(rec)
        probs = predict_semantic(model, [image_tensor(image, device)])[0].cpu().numpy()
        plain.add(gt, probs.argmax(0).astype(np.uint8))
        if crf:
            refined.add(gt, crf_semantic(image, probs, scaled_crf).argmax(0).astype(np.uint8))
    out = plain.result()
    if crf:
        out["crf"] = refined.result()
    return out


def evaluate_instance_model(
    model: torch.nn.Module,
    dataset: BoxDataset,
    device: str | torch.device = "cpu",
    crf: bool = False,
    scaled_crf: bool = True,
    progress: bool = True,
    batch_size: int = 4,
) -> dict:
    """Mask AP and ABO of a Mask R-CNN on ``dataset`` (and, with ``crf``, after CRF post-processing)."""
    from bbam_lite.segment.instance import predict_instances

    plain, refined = InstanceScorer(dataset), InstanceScorer(dataset)
    recs = list(dataset)
    bar = tqdm(total=len(recs), desc="evaluate instance", unit="img", disable=not progress, leave=False)
    for start in range(0, len(recs), batch_size):
        batch = recs[start : start + batch_size]
        images = [r.load_image() for r in batch]
        outs = predict_instances(model, [image_tensor(im, device) for im in images])
        for rec, image, out in zip(batch, images, outs, strict=True):
            probs = out["masks"].cpu().numpy()
            labels, scores = out["labels"].cpu().numpy(), out["scores"].cpu().numpy()
            gt = _gt_masks(rec)
            plain.add(rec.image_id, gt, probs >= 0.5, labels, scores)
            if crf:
                masks = np.array([crf_instance(image, p, scaled_crf) >= 0.5 for p in probs], bool)
                refined.add(rec.image_id, gt, masks.reshape(probs.shape), labels, scores)
        bar.update(len(batch))
    bar.close()
    out = plain.result()
    if crf:
        out["crf"] = refined.result()
    return out


def evaluate_labels(labels_dir: Path, dataset: BoxDataset, progress: bool = True) -> dict:
    """A labels folder taken as predictions (the NoTrain rows): semantic mIoU and instance AP / ABO.

    Ignored label pixels (255) count as background here: a prediction has to decide every pixel.
    Instances are scored with the confidence stored in ``instances.json`` (1 for ground-truth boxes).
    """
    labels_dir = Path(labels_dir)
    folder = LabelsFolder(labels_dir)
    data = load_coco_json(folder.instances_path)
    by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    labelled = {im["id"] for im in data["images"]}
    recs = [r for r in dataset if r.image_id in labelled]
    if not recs:
        raise DataError(f"{labels_dir}: labels no image of {dataset.name}")
    sem, inst = SemanticScorer(dataset), InstanceScorer(dataset)
    for rec in tqdm(recs, desc="evaluate labels", unit="img", disable=not progress, leave=False):
        png = folder.semantic_path(rec)
        if not png.is_file():
            raise DataError(f"{png}: semantic label missing for image id {rec.image_id}")
        pred = read_semantic_png(png)
        sem.add(semantic_ground_truth(rec), np.where(pred == IGNORE, 0, pred).astype(np.uint8))
        anns = by_image.get(rec.image_id, [])
        masks = np.array([decode_rle(a["segmentation"]) for a in anns], bool).reshape(
            -1, rec.height, rec.width
        )
        inst.add(
            rec.image_id,
            _gt_masks(rec),
            masks,
            [a["category_id"] for a in anns],
            [a.get("score", 1.0) for a in anns],
        )
    return {
        "semantic": sem.result(),
        "instance": inst.result(),
        "labels": str(labels_dir.resolve()),
        "made_with": folder.settings() if folder.settings_path.is_file() else None,
    }
