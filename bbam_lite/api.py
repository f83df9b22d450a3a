"""The public API: BBAM on any torchvision Faster R-CNN, datasets and pseudo labels from Python.

Four names, in the order of the pipeline (``docs/api.md`` has worked examples, run by the tests)::

    import bbam_lite

    data = bbam_lite.load_dataset("runs/data/synthetic/train")     # COCO, VOC or synthetic
    detector = bbam_lite.load_detector(class_names=data.class_names)  # or torchvision:ARCH:WEIGHTS
    result = bbam_lite.BBAM(detector, mean=data).attribute(image, boxes, labels)
    quality = bbam_lite.pseudo_labels(data, method="grabcut", out="runs/labels/grabcut")

These names (and :class:`Attribution`) are what the package promises to keep; everything else is
reachable but may change. The API adds no algorithm of its own: :class:`BBAM` runs the registered
``bbam`` method's two stages on one image (the command line's code, the same bits), and
:func:`pseudo_labels` builds the same :class:`~bbam_lite.pseudo.job.LabelJob` as ``bbam-lite
pseudo-labels``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bbam_lite.attribution.bbam import ObjectResult
from bbam_lite.data import BoxDataset
from bbam_lite.data import load_dataset as _load_dataset
from bbam_lite.data.records import ImageRecord, load_rgb
from bbam_lite.detector.model import LoadedDetector
from bbam_lite.detector.model import load_detector as _load_detector
from bbam_lite.pseudo.job import DetectorRef, LabelJob
from bbam_lite.pseudo.methods.base import ImageBoxes, LabelContext
from bbam_lite.pseudo.registry import get_method
from bbam_lite.pseudo.settings import DEFAULT_PRESET, PseudoLabelSettings

#: The post-processing settings :class:`BBAM` takes by name (the rest of its keywords are BBAM's).
POSTPROCESSING = ("theta_fg", "theta_bg", "crf", "refine", "mcg_dir")

Detector = LoadedDetector | torch.nn.Module | str | Path | None


def load_dataset(path: str | Path, split: str = "train", kind: str = "auto") -> BoxDataset:
    """Split ``split`` of the dataset folder ``path``: a COCO root, a ``VOC2012`` folder or a
    synthetic set (``bbam-lite data synth``), told apart by what the folder holds (``kind="auto"``)
    or named (``"coco"``, ``"voc"``, ``"synthetic"``, or any registered reader)."""
    return _load_dataset(kind, Path(path), split)


def load_detector(
    spec: str | Path | torch.nn.Module | None = None,
    device: str = "cpu",
    *,
    class_names: Sequence[str] | None = None,
    class_map: str | dict[str, str] | None = None,
    detector_classes: Sequence[str] | None = None,
) -> LoadedDetector:
    """A Faster R-CNN ready for BBAM: a bbam-lite checkpoint path, ``"torchvision:ARCH:WEIGHTS"``
    (a local state-dict file), a ``torchvision.models.detection.FasterRCNN`` instance (copied, never
    modified), or None: the shipped detector of the synthetic set.

    With ``class_names`` (a dataset's, background first) a torchvision model's classes are matched
    to them by name (VOC/COCO synonyms built in, ``class_map`` ``{"dataset name": "detector name"}``
    for the rest) and its outputs re-indexed to the dataset's order; a checkpoint must have been
    trained for exactly these classes. See :func:`bbam_lite.detector.model.load_detector`.
    """
    if spec is None:
        from bbam_lite.weights import default_detector_path

        spec = default_detector_path()
    return _load_detector(
        spec, device, class_names=class_names, class_map=class_map, detector_classes=detector_classes
    )


@dataclass
class Attribution:
    """BBAM of one image's objects, in the order of the boxes given.

    ``maps``: the attribution maps (N, H, W) float32 in [0, 1]; ``masks``: each object's pseudo-label
    foreground (N, H, W) bool after the preset's post-processing (thresholds or the authors' area
    quantiles, dense CRF, optional refinement); ``ignore``: their ignore regions (N, H, W) bool;
    ``results``: the optimisation's facts per object (stride, positives, final losses, faults);
    ``info``: what a labels folder records per object.
    """

    maps: np.ndarray
    masks: np.ndarray
    ignore: np.ndarray
    results: list[ObjectResult]
    info: list[dict]


class BBAM:
    """Bounding Box Attribution Maps (Lee et al., CVPR 2021) of a Faster R-CNN's box and class heads.

    ``detector``: anything :func:`load_detector` returns or takes (None: the shipped detector).
    ``preset``: ``"official"`` (the authors' code, the default) or ``"paper"`` (the paper's text);
    ``profile``: ``"full"`` (the paper's pixel values) or ``"lite"`` (fewer iterations, strides and
    CRF widths scaled to the image). ``mean``: the perturbation's fill colour mu, RGB in [0, 1] -- a
    tensor, a :class:`~bbam_lite.data.BoxDataset` (its channel mean, as the command line uses), or
    None: the detector's normalisation mean. ``batch_objects``: objects optimised together.
    Other keywords: the post-processing (``theta_fg``, ``theta_bg``, ``crf``, ``refine``,
    ``mcg_dir``) or fields of :class:`~bbam_lite.attribution.bbam.BBAMConfig` (``iterations``,
    ``lr``, ...), as ``bbam-lite pseudo-labels`` takes them.
    """

    def __init__(
        self,
        detector: Detector = None,
        preset: str = DEFAULT_PRESET,
        *,
        profile: str = "full",
        device: str = "cpu",
        mean: torch.Tensor | Sequence[float] | BoxDataset | None = None,
        batch_objects: int = 8,
        **settings: Any,
    ) -> None:
        post = {k: settings.pop(k) for k in POSTPROCESSING if k in settings}
        self.settings = PseudoLabelSettings(
            method="bbam", preset=preset, profile=profile, bbam=settings, **post
        )
        self.settings.bbam_config()  # unknown BBAMConfig fields: an error now, not at the first image
        self.device = device
        self.model = _model(detector, device)
        self.mean = _mean(mean, self.model)
        self.batch_objects = batch_objects
        self.method = get_method("bbam")

    def attribute(
        self,
        image: np.ndarray | str | Path,
        boxes: np.ndarray | Sequence[Sequence[float]],
        labels: np.ndarray | Sequence[int],
        image_id: int = 0,
    ) -> Attribution:
        """BBAM of each box (x1, y1, x2, y2 in pixels) of class ``labels`` (the detector's class
        indices, 1..K) in ``image`` (uint8 RGB (H, W, 3), or a file). ``image_id`` keys the
        proposals' random jitter, as a labels folder's image id does: the same id gives the maps
        ``bbam-lite pseudo-labels`` stores for that image."""
        rgb = load_rgb(Path(image)) if isinstance(image, str | Path) else np.asarray(image)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"image must be uint8 RGB (H, W, 3), got {rgb.dtype} {rgb.shape}")
        b = np.asarray(boxes, np.float32).reshape(-1, 4)
        c = np.asarray(labels, np.int64).reshape(-1)
        if len(b) != len(c):
            raise ValueError(f"{len(b)} boxes but {len(c)} labels")
        h, w = rgb.shape[:2]
        path = Path(image) if isinstance(image, str | Path) else Path("<array>")
        record = ImageRecord(image_id, path, w, h, b, c)
        item = ImageBoxes(record, rgb, b, c, np.ones(len(b), np.float32))
        ctx = LabelContext(self.settings, self.model, self.mean, self.device, self.batch_objects)
        (results,) = self.method.device_stage(ctx, [item])
        labelled = self.method.from_maps(self.settings, item, results)
        stack = lambda xs, dtype: np.array(xs, dtype).reshape(-1, h, w)  # noqa: E731
        return Attribution(
            maps=stack([r.bbam for r in results], np.float32),
            masks=stack([i.fg for i in labelled.instances], bool),
            ignore=stack([i.ignore for i in labelled.instances], bool),
            results=results,
            info=labelled.info,
        )


def pseudo_labels(
    dataset: BoxDataset | str | Path,
    method: str = "bbam",
    detector: Detector = None,
    out: str | Path = "labels",
    *,
    split: str = "train",
    device: str = "cpu",
    limit: int | None = None,
    workers: int = 1,
    progress: bool = True,
    **settings: Any,
) -> dict:
    """Label ``dataset`` (a :class:`BoxDataset` or a folder, read with :func:`load_dataset` at
    ``split``) with a registered ``method`` into the labels folder ``out``; returns its quality
    (mIoU and instance IoU when the data has masks). Resumable: a rerun labels only what is missing.

    ``detector``: for methods that run it (``bbam``) or ``boxes="detector"``; None: the shipped
    detector. ``settings``: the fields of :class:`~bbam_lite.pseudo.settings.PseudoLabelSettings`
    (``boxes``, ``preset``, ``profile``, ``theta_fg``, ``crf``, ``bbam={...}``, ...) and the
    method's own options. The folder is the one ``bbam-lite pseudo-labels`` writes with the same
    settings, byte for byte.
    """
    data = dataset if isinstance(dataset, BoxDataset) else load_dataset(dataset, split)
    own = {f.name for f in fields(PseudoLabelSettings)}
    options = {k: settings.pop(k) for k in list(settings) if k not in own}
    s = PseudoLabelSettings(method=method, options=options, **settings)
    ref = (lambda: _detector_ref(detector, data, device)) if s.uses_detector else None
    job = LabelJob.make(data, s, out, ref, limit=limit, device=device, workers=workers, progress=progress)
    from bbam_lite.pseudo.generate import generate

    return generate(job)


def _model(detector: Detector, device: str) -> torch.nn.Module:
    """The network BBAM runs: a loaded detector's, a copy of a module, or a file's."""
    if isinstance(detector, LoadedDetector):
        return detector.model.to(device).eval()
    if isinstance(detector, torch.nn.Module):
        return copy.deepcopy(detector).to(device).eval()
    return load_detector(detector, device).model


def _mean(mean: torch.Tensor | Sequence[float] | BoxDataset | None, model: torch.nn.Module) -> torch.Tensor:
    if isinstance(mean, BoxDataset):
        from bbam_lite.data.stats import channel_mean

        return channel_mean(mean)
    if mean is None:
        mean = getattr(getattr(model, "transform", None), "image_mean", None)
        if mean is None:
            raise ValueError("mean: the detector has no transform.image_mean; give the RGB mean in [0, 1]")
    mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
    if mean.numel() != 3:
        raise ValueError(f"mean must have 3 values (RGB in [0, 1]), got {mean.numel()}")
    return mean


def _detector_ref(detector: Detector, data: BoxDataset, device: str) -> DetectorRef:
    """The detector of a labels folder and what the folder records of it (the CLI's rules: a file
    by its resolved path, a torchvision model by its spec and classes, a module by its weights)."""
    if isinstance(detector, LoadedDetector):
        loaded = detector
    else:
        loaded = load_detector(detector, device, class_names=data.class_names)
    if "detector" in loaded.provenance:
        return DetectorRef.loaded(loaded)
    return DetectorRef(loaded.model, {**DetectorRef.in_memory(loaded.model).provenance, **loaded.provenance})


__all__ = ["BBAM", "Attribution", "load_dataset", "load_detector", "pseudo_labels"]
