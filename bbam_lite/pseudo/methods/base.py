"""The protocol of a pseudo-label method, and the registry that lists them.

A method is one class with a name, a title for tables and figures, a colour for figures, whether it
needs the detector, which settings it reads, the named variants worth showing side by side, and one
call, :meth:`Method.label`, that turns an image and its boxes into instance labels (foreground,
ignore, background per box). Decorate it with :func:`register` in a module of this package and every
list of methods -- the CLI's ``--method``, the demo, ``scripts/compare_methods.py``, chapter 12's
networks, figure colours and names -- picks it up.

Labelling is two stages, so that the generator can keep the device busy while worker processes do
the per-image CPU work (``bbam-lite pseudo-labels --workers N``, :mod:`bbam_lite.pseudo.workers`):

* :meth:`Method.device_stage` runs in the main process on a batch of images (several when
  ``batch_images``) with the full :class:`LabelContext` (detector, device, channel mean) and returns
  one picklable payload per image (BBAM: the objects' attribution maps). Default: no device stage
  (``None`` per image).
* :meth:`Method.cpu_stage` turns one image and its payload into :class:`ImageLabels`. It may run in
  a worker process, whose context holds the settings only (:meth:`LabelContext.for_worker`: no
  detector, mean or device). Default: :meth:`Method.label`, so a method without device work only
  implements ``label`` and gets parallel labelling for free; a method that uses the detector
  overrides ``device_stage`` and keeps ``label`` / ``cpu_stage`` off the detector.

The generator calls ``device_stage`` then, per image, ``cpu_stage``, :meth:`Method.semantic` and the
labels folder's write, the same way whether one process or N do the per-image part; so its outputs
do not depend on ``--workers``. Every stage is deterministic given its inputs (GrabCut seeds
OpenCV's RNG per box), which that relies on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
import torch

from bbam_lite.data.records import ImageRecord
from bbam_lite.pseudo.folder import ImageLabels
from bbam_lite.pseudo.labels import InstanceLabel, compose_overwrite
from bbam_lite.pseudo.options import Option
from bbam_lite.pseudo.registry import register  # noqa: F401 (the method modules import it from here)
from bbam_lite.pseudo.settings import PseudoLabelSettings


@dataclass
class ImageBoxes:
    """An image and the boxes to label in it (ground truth or the detector's)."""

    record: ImageRecord
    image: np.ndarray  # uint8 (H, W, 3)
    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2
    labels: np.ndarray  # (N,) int64
    scores: np.ndarray  # (N,) float32 (1 for ground-truth boxes)

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape[0], self.image.shape[1]


@dataclass
class LabelContext:
    """What a method may use besides the image: the folder's settings and the detector's runtime."""

    settings: PseudoLabelSettings
    detector: torch.nn.Module | None = None
    mean: torch.Tensor | None = None  # the training images' channel mean (BBAM's perturbation)
    device: str = "cpu"
    batch_objects: int | str = 8
    engine: Any = None  # bbam_lite.attribution.engine.EngineOptions

    def for_worker(self) -> LabelContext:
        """The context :meth:`Method.cpu_stage` gets: the settings only (what a worker process is sent)."""
        return LabelContext(self.settings)


@dataclass(frozen=True)
class LabelVariant:
    """A method under named settings, as the demo, the comparison and chapter 12 show it."""

    name: str  # also the labels folder's and the table row's name
    method: str
    title: str
    settings: dict = field(default_factory=dict)  # PseudoLabelSettings fields
    colour: str = "tab:gray"
    in_demo: bool = True  # shown by the demo and the method comparison (not only by chapter 12)


class Method:
    """One way to turn boxes into instance pseudo labels. Subclass, set the class attributes,
    implement :meth:`label` (or :meth:`device_stage` and :meth:`cpu_stage` for methods with device
    work, like BBAM), decorate with :func:`register`."""

    name: ClassVar[str]
    title: ClassVar[str]  # for tables and figures
    summary: ClassVar[str]  # one line for --help and docs
    colour: ClassVar[str] = "tab:gray"
    order: ClassVar[int] = 100  # position in lists, tables and figures
    needs_detector: ClassVar[bool] = False  # beyond --boxes detector
    stores_maps: ClassVar[bool] = False  # writes per-object maps that --maps-from can reuse
    batch_images: ClassVar[bool] = False  # labels several images together (BBAM's batches)
    #: PseudoLabelSettings fields the method reads (besides boxes, profile, detector_score)
    settings: ClassVar[tuple[str, ...]] = ()
    #: the method's own options (bbam_lite.pseudo.options): each a --flag of pseudo-labels and a value
    #: in PseudoLabelSettings.options and the labels folder's key
    options: ClassVar[tuple[Option, ...]] = ()
    #: named variants {name: (title, settings, in_demo)}; default: the method alone under its name
    variants: ClassVar[dict[str, tuple[str, dict, bool]] | None] = None
    #: figure colours of variants that should not share the method's colour {variant: colour}
    variant_colours: ClassVar[dict[str, str]] = {}
    #: the paper's numbers for the method's variants on VOC 2012 val, percent: {variant: {metric: v}}
    paper: ClassVar[dict[str, dict[str, float]]] = {}
    #: what the method's design predicts for noisy boxes (chapter 8): why it is hurt little by
    #: "contracted" or "expanded" boxes, and its "contracted weakness" / "expanded weakness"
    box_noise: ClassVar[dict[str, str]] = {}
    #: bytes per image pixel of the CPU stage (scripts/bench_memory.py; bbam_lite.pseudo.memory)
    memory_per_pixel: ClassVar[float] = 45.0

    def memory_bytes(self, settings: PseudoLabelSettings, height: int, width: int, n_objects: int) -> int:
        """Bytes of one image's CPU work (its labels' memory budget, :mod:`bbam_lite.pseudo.memory`)."""
        from bbam_lite.pseudo.memory import PER_OBJECT_PIXEL

        return int((self.memory_per_pixel + PER_OBJECT_PIXEL * n_objects) * height * width)

    @classmethod
    def check_options(cls) -> None:
        """Refuse options that repeat a name or a :class:`PseudoLabelSettings` field (they would
        share a flag and a key); called by :func:`~bbam_lite.pseudo.registry.register`."""
        names = [o.name for o in cls.options]
        taken = {f.name for f in fields(PseudoLabelSettings)}
        clash = sorted({n for n in names if n in taken or names.count(n) > 1})
        if clash:
            raise ValueError(f"method {cls.name!r}: options {clash} repeat a name or a settings field")

    def label(self, ctx: LabelContext, item: ImageBoxes) -> list[InstanceLabel]:
        """One instance label per box of ``item``; per-object facts go in ``InstanceLabel.info``.
        Runs in a worker process (``ctx`` holds the settings only) unless :meth:`cpu_stage` is
        overridden."""
        raise NotImplementedError

    def device_stage(self, ctx: LabelContext, items: Sequence[ImageBoxes]) -> list[Any]:
        """The work on the device for a batch of images, in the main process: one picklable payload
        per image, handed to :meth:`cpu_stage` (default: none, ``None`` per image)."""
        return [None] * len(items)

    def cpu_stage(self, ctx: LabelContext, item: ImageBoxes, staged: Any) -> ImageLabels:
        """One image's labels from its :meth:`device_stage` payload ``staged``; may run in a worker
        process with ``ctx`` = :meth:`LabelContext.for_worker` (default: :meth:`label`)."""
        insts = self.label(ctx, item)
        for inst, score in zip(insts, item.scores, strict=True):
            inst.score = float(score)
        return ImageLabels(insts, [dict(i.info) for i in insts])

    def semantic(
        self, settings: PseudoLabelSettings, instances: list[InstanceLabel], height: int, width: int
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The class map (255 = ignore) and each instance's foreground as it appears in it.

        Default: Box2Seg's composition (boxes from large to small, each overwriting the map with its
        foreground, and its ignore region where it has one)."""
        return compose_overwrite(instances, height, width)

    def label_variants(self) -> list[LabelVariant]:
        named = self.variants if self.variants is not None else {self.name: (self.title, {}, True)}
        return [
            LabelVariant(
                name,
                self.name,
                title,
                {"method": self.name, **s},
                self.variant_colours.get(name, self.colour),
                demo,
            )
            for name, (title, s, demo) in named.items()
        ]
