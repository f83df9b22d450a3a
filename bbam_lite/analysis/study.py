"""The objects an analysis looks at, their BBAMs, and the quality of any set of instance labels.

An analysis of BBAM needs, per object, the image, the box, the class, the ground-truth mask and the
BBAM. The BBAMs come from a pseudo-label folder of the notebooks' workspace (``generate`` saves every
raw map under ``bbam/``), so that one optimisation serves the pseudo-label quality of a setting and
every per-object statistic about it, and chapters that ask for the same setting share it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bbam_lite.attribution.bbam import ObjectTask
from bbam_lite.data.records import BoxDataset, ImageRecord
from bbam_lite.metrics import ConfusionMatrix, best_match_ious, mask_iou
from bbam_lite.pseudo.labels import InstanceLabel, box_region, instances_to_semantic


@dataclass
class StudyObject:
    """One annotated object with its ground-truth mask."""

    image_id: int
    index: int  # position among its image's boxes (the key BBAM's jitter stream is drawn from)
    image: np.ndarray  # uint8 (H, W, 3)
    box: np.ndarray  # (4,) float32 x1, y1, x2, y2
    label: int
    gt: np.ndarray  # (H, W) bool

    @property
    def key(self) -> tuple[int, int]:
        return (self.image_id, self.index)

    @property
    def area_ratio(self) -> float:
        """Box area / image area: the ``a`` of the adaptive stride s(a)."""
        h, w = self.gt.shape
        x1, y1, x2, y2 = (float(v) for v in self.box)
        return max(x2 - x1, 0.0) * max(y2 - y1, 0.0) / (h * w)

    def task(self, device: str | torch.device = "cpu") -> ObjectTask:
        """The object as a BBAM task, keyed as :class:`~bbam_lite.pseudo.generate.PseudoLabeler` keys it."""
        from bbam_lite.detector.evaluate import image_tensor

        return ObjectTask(image_tensor(self.image, device), torch.as_tensor(self.box), self.label, self.key)


def _require_masks(dataset: BoxDataset, records: Sequence[ImageRecord]) -> None:
    missing = [r for r in records if not r.has_masks]
    if missing:
        raise ValueError(
            f"{dataset.name}: image {missing[0].path} has no instance masks; the analyses compare "
            "with ground-truth masks (use a split with masks, e.g. VOC val or COCO)"
        )


def study_objects(dataset: BoxDataset, n_images: int | None) -> list[StudyObject]:
    """Every object of the first ``n_images`` images (all images when None)."""
    records = list(dataset)[: n_images if n_images is not None else None]
    _require_masks(dataset, records)
    out = []
    for rec in records:
        image, masks = rec.load_image(), rec.load_masks()
        for k, (b, c) in enumerate(zip(rec.boxes, rec.labels, strict=True)):
            out.append(StudyObject(rec.image_id, k, image, np.asarray(b, np.float32), int(c), masks[k]))
    return out


@dataclass
class ObjectMap:
    """A study object with the BBAM made for it and the optimisation's per-object record."""

    obj: StudyObject
    bbam: np.ndarray  # float32 (H, W) in [0, 1]
    info: dict[str, Any]  # stride, n_positives, fallback, box_loss, cls_loss (from generate)


def read_maps(folder: Path, dataset: BoxDataset, n_images: int | None) -> list[ObjectMap]:
    """The BBAMs a BBAM pseudo-label folder holds for the first ``n_images`` images of ``dataset``."""
    from bbam_lite.pseudo.generate import load_image_result

    folder = Path(folder)
    out = []
    objects = study_objects(dataset, n_images)
    by_image: dict[int, list[StudyObject]] = {}
    for o in objects:
        by_image.setdefault(o.image_id, []).append(o)
    for image_id, objs in by_image.items():
        path = folder / "bbam" / f"{image_id}.npz"
        if not path.is_file():
            raise ValueError(f"{path}: no BBAM maps for image {image_id} (not a finished BBAM labels folder)")
        with np.load(path, allow_pickle=False) as z:
            maps = z["bbam"].astype(np.float32)
        _, info = load_image_result(folder / "images" / f"{image_id}.npz")
        if len(maps) != len(objs):
            raise ValueError(f"{path}: {len(maps)} maps for {len(objs)} boxes of image {image_id}")
        out += [ObjectMap(o, m, i) for o, m, i in zip(objs, maps, info, strict=True)]
    return out


#: Images per BBAM setting in the analysis chapters, where a profile's ``study_images`` is too many:
#: each chapter runs BBAM under several settings (3 to 6), and a lite run of the book has to stay
#: within minutes per chapter on 2 CPU cores (lite: 6 images, about 15 objects; the profile's
#: ``study_images`` otherwise).
ANALYSIS_IMAGES = {"lite": 6}


def analysis_images(ws) -> int:
    """How many images the analysis chapters study by default on this workspace's profile."""
    return ANALYSIS_IMAGES.get(ws.profile.name, ws.profile.study_images)


def bbam_labels(
    ws, n_images: int | None = None, iterations: int | None = None, split: str = "train", **bbam: Any
):
    """BBAM pseudo labels of the workspace for the study images of ``split``: ``(folder, quality)``.

    ``bbam`` overrides :class:`~bbam_lite.attribution.bbam.BBAMConfig` fields (``use_box=False``,
    ``stride=24.0``, ``lam=0.001``, ...); ``n_images`` defaults to :func:`analysis_images` and
    ``iterations`` to the profile's BBAM iterations. Cached in the workspace's run folder.
    """
    overrides = dict(bbam)
    if iterations is not None:
        overrides["iterations"] = int(iterations)
    # values equal to the profile's own are dropped, so that e.g. "both heads" (Fig. 4), the adaptive
    # stride (Fig. 7b) and lambda = 0.007 (Table 6) name the same labels folder and run once
    base = ws.label_settings("bbam").bbam_config()
    unknown = sorted(k for k in overrides if not hasattr(base, k))
    if unknown:
        raise ValueError(f"unknown BBAM setting(s) {unknown}; see bbam_lite.attribution.bbam.BBAMConfig")
    overrides = {k: v for k, v in overrides.items() if getattr(base, k) != v}
    n = analysis_images(ws) if n_images is None else n_images
    return ws.labels("bbam", split=split, limit=n, bbam=overrides)


def map_iou(bbam: np.ndarray, gt: np.ndarray, box: np.ndarray | None = None, threshold: float = 0.5) -> float:
    """IoU with the ground-truth mask of the map thresholded at ``threshold`` (inside ``box`` if given)."""
    pred = bbam > threshold
    if box is not None:
        pred &= box_region(box, *bbam.shape)
    return mask_iou(pred, gt)


def label_quality(
    items: Iterable[tuple[ImageRecord, list[InstanceLabel]]],
    class_names: Sequence[str],
    contained_wins: bool = False,
) -> dict[str, float]:
    """Quality of BBAM-style instance labels against ground truth, as ``generate`` reports it.

    Instances become a class map with :func:`~bbam_lite.pseudo.labels.instances_to_semantic`
    (pixels claimed by two classes and ignore bands -> 255); returns mIoU (ignored pixels left out),
    the ignored share, mIoU with ignored pixels counted as background, and the mean over ground-truth
    objects of the IoU of the best same-class instance.
    """
    conf = ConfusionMatrix(len(class_names))
    conf_strict = ConfusionMatrix(len(class_names))
    inst: list[float] = []
    for rec, instances in items:
        masks = rec.load_masks()
        gt = np.zeros((rec.height, rec.width), np.uint8)
        for m, c in zip(masks, rec.labels, strict=True):
            gt[m] = c
        sem = instances_to_semantic(instances, rec.height, rec.width, contained_wins)
        conf.update(gt, sem)
        conf_strict.update(gt, np.where(sem == 255, 0, sem).astype(np.uint8))
        inst += best_match_ious(masks, rec.labels, [i.fg for i in instances], [i.label for i in instances])
    return {
        "miou": conf.miou(),
        "ignore_fraction": conf.ignore_fraction,
        "miou_ignore_as_background": conf_strict.miou(),
        "mean_instance_iou": float(np.mean(inst)) if inst else 0.0,
    }


QUALITY_KEYS = ("miou", "mean_instance_iou", "ignore_fraction", "miou_ignore_as_background")


def quality_row(quality: dict, **extra: Any) -> dict[str, Any]:
    """The headline numbers of a ``quality.json`` (plus ``extra``) as one table row."""
    row = dict(extra)
    row.update({k: float(quality[k]) for k in QUALITY_KEYS if k in quality})
    row["objects"] = int(quality.get("objects", 0))
    row["fallbacks"] = int(sum(quality.get("fallbacks", {}).values()))
    return row


def check_count(name: str, value: Any) -> int | None:
    """A notebook's optional count parameter (``n_images``, ``iterations``, ...): None or an int > 0."""
    from bbam_lite.workspace import ParameterError

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParameterError(f"parameter {name}={value!r}: expected None or a positive integer")
    return value


def check_numbers(name: str, value: Any, low: float, high: float) -> tuple[float, ...] | None:
    """A notebook's optional list of numbers in [low, high] (noise levels, lambdas): None or a tuple."""
    from bbam_lite.workspace import ParameterError

    if value is None:
        return None
    ok = isinstance(value, (list, tuple)) and len(value) > 0
    ok = ok and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v <= high for v in value
    )
    if not ok:
        raise ParameterError(
            f"parameter {name}={value!r}: expected None or a list of numbers in [{low}, {high}]"
        )
    return tuple(float(v) for v in value)


def detector_line(ws) -> str:
    """One line on the workspace's detector and its box AP50 (as recorded in its checkpoint), which
    BBAM's results depend on."""
    det = ws.detector()
    ap50 = det.meta.get("val_metrics", {}).get("box_ap50")
    quality = f"box AP50 {ap50:.3f} on its validation images" if ap50 is not None else "no AP recorded"
    return f"detector {ws.detector_path().name} ({det.config.profile} profile): {quality}"
