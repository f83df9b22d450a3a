"""The BBAM engine: the detector's two heads on fixed proposals, run as fast as the device allows.

:class:`HeadRunner` computes what :func:`bbam_lite.detector.heads.roi_head_outputs` computes (the
detector's transform, backbone, RoIAlign, box head and predictor on given proposals) for the 300
forward/backward passes of a BBAM optimisation, with what stays fixed across them done once:

- the RoI plan (FPN level of each proposal, sampling grids) is built once per batch of objects;
  RoIAlign is :mod:`bbam_lite.detector.roi_align` (one ``grid_sample`` per image and level) where
  torchvision's compiled ops are missing, and torchvision's own op where they load;
- the resize to the detector's input size is skipped when it is the identity (the lite profile);
- box decoding, which the loss does not need, happens only when asked.

On CUDA, by default, the backbone and heads run under bf16 autocast (the losses stay fp32) with
channels-last activations; ``compile`` wraps the backbone in ``torch.compile`` (mode
``reduce-overhead`` uses CUDA graphs; off by default, not measured yet). On the CPU the defaults stay
fp32 and NCHW: channels-last measured 5-9% faster there, but its rounding depends on the batch size,
and Adam amplifies that into visibly different maps for the same object in different batches
(``tests/test_bbam.py::test_batched_equals_one_by_one``); the CPU engine's gain comes from batching
objects, frozen weights (no weight gradients) and the RoIAlign above.
:func:`auto_batch_size` sizes a batch of objects to the free GPU memory.
"""

from __future__ import annotations

import math
import weakref
from contextlib import nullcontext
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from bbam_lite import compat
from bbam_lite.attribution.fold import fold_frozen_norms
from bbam_lite.detector.heads import HeadOutputs
from bbam_lite.detector.roi_align import GridRoIAlign, setup_pooler

compat.import_torchvision()
from torchvision.ops import boxes as box_ops  # noqa: E402

PRECISIONS = ("auto", "fp32", "bf16")
ROI_ALIGNS = ("auto", "grid", "torchvision")


@dataclass(frozen=True)
class EngineOptions:
    """How the engine runs the detector; ``auto`` values resolve per device (see :meth:`resolve`)."""

    precision: str = "auto"  # auto: bf16 on CUDA, fp32 elsewhere | fp32 | bf16
    roi_align: str = "auto"  # auto: grid where torchvision's compiled ops are missing | grid | torchvision
    channels_last: bool | None = None  # None: on CUDA only
    compile: str | None = None  # None | a torch.compile mode: default | reduce-overhead | max-autotune
    fold_norms: bool = True  # frozen norms folded into the convolutions of the engine's own backbone copy

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.roi_align not in ROI_ALIGNS:
            raise ValueError(f"roi_align must be one of {ROI_ALIGNS}, got {self.roi_align!r}")

    def resolve(self, device: torch.device | str) -> EngineOptions:
        """Concrete settings for ``device``."""
        cuda = torch.device(device).type == "cuda"
        return EngineOptions(
            precision=self.precision if self.precision != "auto" else ("bf16" if cuda else "fp32"),
            roi_align=self.roi_align
            if self.roi_align != "auto"
            else ("grid" if compat.USING_FALLBACK_NMS else "torchvision"),
            channels_last=cuda if self.channels_last is None else self.channels_last,
            compile=self.compile,
            fold_norms=self.fold_norms,
        )

    @property
    def reduced_precision(self) -> bool:
        return self.precision == "bf16"


#: The options of the reference loop: the detector's own modules, fp32, nothing else.
REFERENCE = EngineOptions(
    precision="fp32", roi_align="torchvision", channels_last=False, compile=None, fold_norms=False
)

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FOLDED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_NOTHING_TO_FOLD: weakref.WeakSet = weakref.WeakSet()


def _weights_key(module: torch.nn.Module) -> tuple:
    """Changes whenever a weight or buffer of ``module`` is replaced or modified in place."""
    return tuple((t.data_ptr(), t._version) for t in module.state_dict().values())


def engine_backbone(model: torch.nn.Module, fold: bool) -> torch.nn.Module:
    """The backbone the engine runs: with ``fold``, a copy with its frozen norms folded into the
    convolutions (:mod:`bbam_lite.attribution.fold`; cached per model and weights), the model's own
    backbone where there is nothing to fold (GroupNorm) or without ``fold``."""
    if not fold or model in _NOTHING_TO_FOLD:
        return model.backbone
    key = _weights_key(model.backbone)
    cached = _FOLDED.get(model)
    if cached is None or cached[0] != key:
        folded, count = fold_frozen_norms(model.backbone)
        if not count:
            _NOTHING_TO_FOLD.add(model)
            return model.backbone
        cached = _FOLDED[model] = (key, folded)
    return cached[1]


def _compiled_backbone(model: torch.nn.Module, backbone: torch.nn.Module, mode: str) -> torch.nn.Module:
    cache = _COMPILED.setdefault(model, {})
    if (id(backbone), mode) not in cache:
        cache[id(backbone), mode] = torch.compile(backbone, mode=None if mode == "default" else mode)
    return cache[id(backbone), mode]


@dataclass
class RoIPlan:
    """Proposals of a batch of images, scaled to the detector's input, with their pooling plan."""

    scaled: list[torch.Tensor]  # per image (K_i, 4) in detector-input pixels
    image_sizes: list[tuple[int, int]]  # detector-input sizes before padding
    orig_size: tuple[int, int]
    pool: GridRoIAlign | None  # None: torchvision's pooler


class HeadRunner:
    """f_box and f_cls of a frozen detector on fixed proposals, differentiable to the input pixels.

    Converts the backbone's weights to channels-last memory format in place when that option is
    on (values unchanged).
    """

    def __init__(self, model: torch.nn.Module, options: EngineOptions | None = None, device=None) -> None:
        device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model
        self.device = device
        self.options = (options or EngineOptions()).resolve(device)
        self.transform = model.transform
        self.pooler = model.roi_heads.box_roi_pool
        if self.options.roi_align == "grid" and self.pooler.sampling_ratio <= 0:
            self.options = replace(self.options, roi_align="torchvision")
        backbone = engine_backbone(model, self.options.fold_norms)
        if self.options.channels_last:
            backbone.to(memory_format=torch.channels_last)
        self.backbone = (
            _compiled_backbone(model, backbone, self.options.compile) if self.options.compile else backbone
        )

    # -- input ---------------------------------------------------------------------------------
    def input_size(self, h: int, w: int) -> tuple[tuple[int, int], float]:
        """The detector-input size of an (h, w) image and the resize factor (torchvision's rule)."""
        t = self.transform
        scale = min(float(t.min_size[-1]) / min(h, w), float(t.max_size) / max(h, w))
        return (math.floor(h * scale), math.floor(w * scale)), scale

    def to_input(self, images: torch.Tensor) -> torch.Tensor:
        """Normalise, resize (unless the identity) and pad a (B, 3, H, W) batch as the detector does."""
        t = self.transform
        mean = torch.as_tensor(t.image_mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        std = torch.as_tensor(t.image_std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        x = (images - mean) / std
        (h, w), scale = self.input_size(*images.shape[-2:])
        if (h, w) != tuple(images.shape[-2:]):
            x = F.interpolate(
                x, scale_factor=scale, mode="bilinear", recompute_scale_factor=True, align_corners=False
            )
        d = t.size_divisible
        ph, pw = math.ceil(x.shape[-2] / d) * d - x.shape[-2], math.ceil(x.shape[-1] / d) * d - x.shape[-1]
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        if self.options.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    # -- proposals -----------------------------------------------------------------------------
    def plan(self, proposals: list[torch.Tensor], height: int, width: int) -> RoIPlan:
        """Scale ``proposals`` (per image, in pixels of the (height, width) images) and plan pooling."""
        (h, w), _ = self.input_size(height, width)
        ratio = torch.tensor([w / width, h / height, w / width, h / height], device=self.device)
        scaled = [p.to(self.device, torch.float32) * ratio for p in proposals]
        sizes = [(h, w)] * len(proposals)
        pool = None
        if self.options.roi_align == "grid":
            if self.pooler.scales is None or self.pooler.map_levels is None:
                with torch.no_grad():  # a detector that never ran: let the pooler see feature sizes once
                    x = torch.zeros(1, 3, height, width, device=self.device)
                    setup_pooler(self.pooler, self.model.backbone(self.to_input(x)), sizes[:1])
            pool = GridRoIAlign(self.pooler, scaled, sizes)
        return RoIPlan(scaled, sizes, (height, width), pool)

    # -- forward -------------------------------------------------------------------------------
    def autocast(self):
        if not self.options.reduced_precision:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def __call__(self, images: torch.Tensor, plan: RoIPlan, decode: bool = False) -> HeadOutputs:
        """Head outputs for ``plan``'s proposals on the (B, 3, H, W) images in [0, 1] (fp32 outputs)."""
        heads = self.model.roi_heads
        with self.autocast():
            features = self.backbone(self.to_input(images))
            if plan.pool is not None:
                pooled = plan.pool(features)
            else:
                pooled = self.pooler(features, plan.scaled, plan.image_sizes)
            logits, regression = heads.box_predictor(heads.box_head(pooled))
        logits, regression = logits.float(), regression.float()
        n_cls = logits.shape[-1]
        deltas = regression.reshape(-1, n_cls, 4)
        probs = torch.softmax(logits, -1)
        boxes = self.decode(regression, plan) if decode else deltas.new_zeros(0)
        return HeadOutputs(deltas, probs, boxes, logits)

    def outputs(self, images: torch.Tensor, proposals: list[torch.Tensor]) -> HeadOutputs:
        """One pass with decoded boxes: what ``roi_head_outputs(model, images, proposals)`` returns."""
        return self(images, self.plan(proposals, *images.shape[-2:]), decode=True)

    def decode(self, regression: torch.Tensor, plan: RoIPlan) -> torch.Tensor:
        """Decoded, clipped boxes (K, C+1, 4) in pixels of the original images."""
        heads = self.model.roi_heads
        n_cls = regression.shape[-1] // 4
        boxes = heads.box_coder.decode(regression.detach(), plan.scaled).reshape(-1, n_cls, 4)
        (h, w), (oh, ow) = plan.image_sizes[0], plan.orig_size
        boxes = box_ops.clip_boxes_to_image(boxes, (h, w))
        return boxes * boxes.new_tensor([ow / w, oh / h, ow / w, oh / h])


def auto_batch_size(
    per_object_bytes: int, free_bytes: int, fraction: float = 0.8, minimum: int = 1, maximum: int = 64
) -> int:
    """Objects per batch so their activations fill ``fraction`` of the free device memory."""
    if per_object_bytes <= 0:
        return maximum
    return int(max(minimum, min(maximum, (free_bytes * fraction) // per_object_bytes)))
