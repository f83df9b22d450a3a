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

from bbam_lite.attribution.tasks import StudyObject, study_objects
from bbam_lite.data.records import BoxDataset, ImageRecord
from bbam_lite.metrics import LabelQuality, mask_iou
from bbam_lite.pseudo.labels import InstanceLabel, box_region, instances_to_semantic


@dataclass
class ObjectMap:
    """A study object with the BBAM made for it and the optimisation's per-object record."""

    obj: StudyObject
    bbam: np.ndarray  # float32 (H, W) in [0, 1]
    info: dict[str, Any]  # stride, n_positives, fallback, box_loss, cls_loss (from generate)


def read_maps(folder: Path, dataset: BoxDataset, n_images: int | None) -> list[ObjectMap]:
    """The BBAMs a BBAM pseudo-label folder holds for the first ``n_images`` images of ``dataset``."""
    from bbam_lite.pseudo.folder import LabelsFolder

    labels = LabelsFolder(folder)
    out = []
    objects = study_objects(dataset, n_images)
    by_image: dict[int, list[StudyObject]] = {}
    for o in objects:
        by_image.setdefault(o.image_id, []).append(o)
    for image_id, objs in by_image.items():
        maps = labels.read_maps(image_id)
        _, info = labels.read_image(image_id)
        if len(maps) != len(objs):
            raise ValueError(
                f"{labels.maps_path(image_id)}: {len(maps)} maps for {len(objs)} boxes of image {image_id}"
            )
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
    ws,
    n_images: int | None = None,
    iterations: int | None = None,
    split: str = "train",
    preset: str | None = None,
    **bbam: Any,
):
    """BBAM pseudo labels of the workspace for the study images of ``split``: ``(folder, quality)``.

    ``bbam`` overrides :class:`~bbam_lite.attribution.bbam.BBAMConfig` fields (``use_box=False``,
    ``stride=24.0``, ``lam=0.001``, ...); ``n_images`` defaults to :func:`analysis_images`,
    ``iterations`` to the profile's BBAM iterations and ``preset`` to the default (``official``).
    Overrides equal to the profile's own values are dropped, so that e.g. "both heads" (Fig. 4), the
    adaptive stride (Fig. 7b) and lambda = 0.007 (Table 6) name the same labels folder and run once.
    Cached in the workspace's run folder.
    """
    overrides = dict(bbam)
    if iterations is not None:
        overrides["iterations"] = int(iterations)
    n = analysis_images(ws) if n_images is None else n_images
    chosen = {"preset": preset} if preset is not None else {}
    return ws.labels("bbam", split=split, limit=n, bbam=overrides, **chosen)


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
    scorer = LabelQuality(len(class_names))
    for rec, instances in items:
        sem = instances_to_semantic(instances, rec.height, rec.width, contained_wins)
        scorer.add(rec.load_masks(), rec.labels, sem, [i.fg for i in instances], [i.label for i in instances])
    return scorer.result()


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
