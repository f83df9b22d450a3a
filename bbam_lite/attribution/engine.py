"""The BBAM engine: the detector's two heads on fixed proposals, run as fast as the device allows.

:class:`HeadRunner` computes what :func:`bbam_lite.detector.heads.roi_head_outputs` computes (the
detector's transform, backbone, RoIAlign, box head and predictor on given proposals) for the 300
forward/backward passes of a BBAM optimisation, with what stays fixed across them done once:

- the RoI plan (FPN level of each proposal, sampling grids) is built once per batch of objects;
  RoIAlign is :mod:`bbam_lite.detector.roi_align` (one ``grid_sample`` per image and level) where
  torchvision's compiled ops are missing, and torchvision's own op where they load;
- the resize to the detector's input size is skipped when it is the identity (the lite profile);
- box decoding, which the loss does not need, happens only when asked.

The engine runs its own copies of the backbone and heads, never the user's model: frozen norms
folded into the convolutions (:mod:`bbam_lite.attribution.fold`, exact up to rounding), and on
CUDA, by default, bf16 weights cast once (no per-op autocast casts; the losses, Adam state and
masks stay fp32) with channels-last activations. ``compile="auto"`` (the default) wraps the
backbone in ``torch.compile`` on CUDA for runs of :data:`COMPILE_MIN_OBJECTS` objects or more,
where it pays for its compilation; a failed compilation falls back to eager with one warning.
On the CPU the defaults stay
fp32 and NCHW: channels-last measured 5-9% faster there, but its rounding depends on the batch size,
and Adam amplifies that into visibly different maps for the same object in different batches
(``tests/test_bbam.py::test_batched_equals_one_by_one``); the CPU engine's gain comes from batching
objects, frozen weights (no weight gradients) and the RoIAlign above.
:func:`auto_batch_size` sizes a batch of objects to the free GPU memory.
"""

from __future__ import annotations

import copy
import math
import warnings
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

#: Objects from which compiling the backbone pays for itself on a GPU. Measured on an H100
#: (2026-11-28, paper profile, batch 16): 2.41 s/object eager, 1.33 compiled, plus about 50 s of
#: compilation: even after 46 objects; 200 leaves room for recompilation on new image sizes.
COMPILE_MIN_OBJECTS = 200
ROI_ALIGNS = ("auto", "grid", "torchvision")


@dataclass(frozen=True)
class EngineOptions:
    """How the engine runs the detector; ``auto`` values resolve per device (see :meth:`resolve`)."""

    precision: str = "auto"  # auto: bf16 on CUDA, fp32 elsewhere | fp32 | bf16
    roi_align: str = "auto"  # auto: grid where torchvision's compiled ops are missing | grid | torchvision
    channels_last: bool | None = None  # None: on CUDA only
    # None | auto | a torch.compile mode (default | reduce-overhead | max-autotune) for the backbone;
    # auto: "default" on CUDA for runs of COMPILE_MIN_OBJECTS objects or more, else eager
    compile: str | None = "auto"
    fold_norms: bool = True  # frozen norms folded into the convolutions of the engine's own backbone copy
    # reduced precision by weights cast once (the engine's own copies of backbone and heads), not by
    # per-op autocast, which re-casts every fp32 weight at every iteration
    cast_weights: bool = True

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.roi_align not in ROI_ALIGNS:
            raise ValueError(f"roi_align must be one of {ROI_ALIGNS}, got {self.roi_align!r}")

    def resolve(self, device: torch.device | str, n_objects: int | None = None) -> EngineOptions:
        """Concrete settings for ``device`` (and, for ``compile="auto"``, a run of ``n_objects``)."""
        cuda = torch.device(device).type == "cuda"
        compile_mode = self.compile
        if compile_mode == "auto":
            pays = cuda and n_objects is not None and n_objects >= COMPILE_MIN_OBJECTS
            compile_mode = "default" if pays else None
        return EngineOptions(
            precision=self.precision if self.precision != "auto" else ("bf16" if cuda else "fp32"),
            roi_align=self.roi_align
            if self.roi_align != "auto"
            else ("grid" if compat.USING_FALLBACK_NMS else "torchvision"),
            channels_last=cuda if self.channels_last is None else self.channels_last,
            compile=compile_mode,
            fold_norms=self.fold_norms,
            cast_weights=self.cast_weights,
        )

    @property
    def reduced_precision(self) -> bool:
        return self.precision == "bf16"


#: The options of the reference loop: the detector's own modules, fp32, nothing else.
REFERENCE = EngineOptions(
    precision="fp32",
    roi_align="torchvision",
    channels_last=False,
    compile=None,
    fold_norms=False,
    cast_weights=False,
)

#: The engine's own copies of a model's modules, per model: {(part, fold, dtype): (weights key, module)}.
_COPIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_NOTHING_TO_FOLD: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {part}
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _weights_key(module: torch.nn.Module) -> tuple:
    """Changes whenever a weight or buffer of ``module`` is replaced or modified in place."""
    return tuple((t.data_ptr(), t._version) for t in module.state_dict().values())


def _copy(model: torch.nn.Module, part: str, fold: bool, dtype: torch.dtype | None) -> torch.nn.Module:
    """``model``'s submodule ``part`` as the engine runs it: with ``fold``, its frozen norms folded
    into its convolutions (:mod:`bbam_lite.attribution.fold`); with ``dtype``, its weights cast once.
    Copies are cached per model and weights; the model's own module is returned where nothing
    changes (no norm to fold, no cast), and the model itself is never modified."""
    module = model.get_submodule(part)
    fold = fold and part not in _NOTHING_TO_FOLD.get(model, set())
    if not fold and dtype is None:
        return module
    cache = _COPIES.setdefault(model, {})
    key = _weights_key(module)
    hit = cache.get((part, fold, dtype))
    if hit is not None and hit[0] == key:
        return hit[1]
    if fold:
        engine_copy, count = fold_frozen_norms(module)
        if not count:  # e.g. GroupNorm: the same function as the model's own module
            _NOTHING_TO_FOLD.setdefault(model, set()).add(part)
            if dtype is None:
                return module
    else:
        engine_copy = copy.deepcopy(module)
    if dtype is not None:
        engine_copy = engine_copy.to(dtype)
    engine_copy.eval().requires_grad_(False)  # frozen: backward computes what the pixels need only
    cache[part, fold, dtype] = (key, engine_copy)
    return engine_copy


def engine_backbone(model: torch.nn.Module, fold: bool, dtype: torch.dtype | None = None) -> torch.nn.Module:
    """The backbone the engine runs (see :func:`_copy`)."""
    return _copy(model, "backbone", fold, dtype)


def _compiled(model: torch.nn.Module, module: torch.nn.Module, mode: str) -> torch.nn.Module:
    cache = _COMPILED.setdefault(model, {})
    if (id(module), mode) not in cache:
        cache[id(module), mode] = torch.compile(module, mode=None if mode == "default" else mode)
    return cache[id(module), mode]


class _CompiledOrEager:
    """A module run through ``torch.compile`` (mode ``mode``; eager when None), falling back to
    eager execution, with one warning, if compiling or running the compiled module fails."""

    def __init__(self, model: torch.nn.Module, module: torch.nn.Module, mode: str | None) -> None:
        self.eager = module
        self.compiled = _compiled(model, module, mode) if mode else None

    def __call__(self, *args, **kwargs):
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 (dynamo and inductor raise many kinds)
                first = (str(e).splitlines() or [""])[0][:200]
                warnings.warn(
                    f"torch.compile of the BBAM engine failed ({type(e).__name__}: {first}); running eagerly",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self.compiled = None
        return self.eager(*args, **kwargs)


@dataclass
class RoIPlan:
    """Proposals of a batch of images, scaled to the detector's input, with their pooling plan."""

    scaled: list[torch.Tensor]  # per image (K_i, 4) in detector-input pixels
    image_sizes: list[tuple[int, int]]  # detector-input sizes before padding
    orig_size: tuple[int, int]
    pool: GridRoIAlign | None  # None: torchvision's pooler
    scale: float | None = None  # fixed image -> detector-input scale (a crop); None: the transform's rule


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
        if self.options.compile == "auto":  # not resolved for a run: eager
            self.options = replace(self.options, compile=None)
        cast = self.options.reduced_precision and self.options.cast_weights
        self.dtype = torch.bfloat16 if cast else None  # the engine's weights, cast once
        backbone = engine_backbone(model, self.options.fold_norms, self.dtype)
        if self.options.channels_last:
            backbone.to(memory_format=torch.channels_last)
        self.backbone = _CompiledOrEager(model, backbone, self.options.compile)
        self.box_head = _copy(model, "roi_heads.box_head", False, self.dtype)
        self.box_predictor = _copy(model, "roi_heads.box_predictor", False, self.dtype)

    # -- input ---------------------------------------------------------------------------------
    def input_size(self, h: int, w: int, scale: float | None = None) -> tuple[tuple[int, int], float]:
        """The detector-input size of an (h, w) image and the resize factor: torchvision's rule, or
        ``scale`` where given (a crop keeps the scale of the image it was cut from)."""
        if scale is None:
            scale = input_scale(self.model, h, w)
        return (math.floor(h * scale), math.floor(w * scale)), scale

    def to_input(self, images: torch.Tensor, scale: float | None = None) -> torch.Tensor:
        """Normalise, resize (unless the identity) and pad a (B, 3, H, W) batch as the detector does."""
        t = self.transform
        mean = torch.as_tensor(t.image_mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        std = torch.as_tensor(t.image_std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        x = (images - mean) / std
        (h, w), scale = self.input_size(*images.shape[-2:], scale)
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
    def plan(
        self, proposals: list[torch.Tensor], height: int, width: int, scale: float | None = None
    ) -> RoIPlan:
        """Scale ``proposals`` (per image, in pixels of the (height, width) images) and plan pooling
        (``scale``: a fixed image -> detector-input scale, see :meth:`input_size`)."""
        (h, w), _ = self.input_size(height, width, scale)
        ratio = torch.tensor([w / width, h / height, w / width, h / height], device=self.device)
        scaled = [p.to(self.device, torch.float32) * ratio for p in proposals]
        sizes = [(h, w)] * len(proposals)
        pool = None
        if self.options.roi_align == "grid":
            if self.pooler.scales is None or self.pooler.map_levels is None:
                with torch.no_grad():  # a detector that never ran: let the pooler see feature sizes once
                    x = torch.zeros(1, 3, height, width, device=self.device)
                    setup_pooler(self.pooler, self.model.backbone(self.to_input(x, scale)), sizes[:1])
            pool = GridRoIAlign(self.pooler, scaled, sizes)
        return RoIPlan(scaled, sizes, (height, width), pool, scale)

    # -- forward -------------------------------------------------------------------------------
    def autocast(self):
        """bf16 autocast where reduced precision is asked for without weights cast once."""
        if not self.options.reduced_precision or self.dtype is not None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def __call__(self, images: torch.Tensor, plan: RoIPlan, decode: bool = False) -> HeadOutputs:
        """Head outputs for ``plan``'s proposals on the (B, 3, H, W) images in [0, 1] (fp32 outputs).

        With weights cast once (bf16), the input is cast after normalisation, RoIAlign samples the
        features in fp32 (as torchvision's op does under autocast) and the pooled features are cast
        back for the heads; the outputs, the losses and the masks stay fp32."""
        with self.autocast():
            x = self.to_input(images, plan.scale)
            features = self.backbone(x if self.dtype is None else x.to(self.dtype))
            if plan.pool is not None:
                pooled = plan.pool(features)  # samples in fp32
            else:
                fp32 = features if self.dtype is None else {k: v.float() for k, v in features.items()}
                pooled = self.pooler(fp32, plan.scaled, plan.image_sizes)
            if self.dtype is not None:
                pooled = pooled.to(self.dtype)
            logits, regression = self.box_predictor(self.box_head(pooled))
        logits, regression = logits.float(), regression.float()
        n_cls = logits.shape[-1]
        deltas = regression.reshape(-1, n_cls, 4)
        probs = torch.softmax(logits, -1)
        boxes = self.decode(regression, plan) if decode else deltas.new_zeros(0)
        return HeadOutputs(deltas, probs, boxes, logits)

    def outputs(
        self, images: torch.Tensor, proposals: list[torch.Tensor], scale: float | None = None
    ) -> HeadOutputs:
        """One pass with decoded boxes: what ``roi_head_outputs(model, images, proposals)`` returns."""
        return self(images, self.plan(proposals, *images.shape[-2:], scale), decode=True)

    def decode(self, regression: torch.Tensor, plan: RoIPlan) -> torch.Tensor:
        """Decoded, clipped boxes (K, C+1, 4) in pixels of the original images."""
        heads = self.model.roi_heads
        n_cls = regression.shape[-1] // 4
        boxes = heads.box_coder.decode(regression.detach(), plan.scaled).reshape(-1, n_cls, 4)
        (h, w), (oh, ow) = plan.image_sizes[0], plan.orig_size
        boxes = box_ops.clip_boxes_to_image(boxes, (h, w))
        return boxes * boxes.new_tensor([ow / w, oh / h, ow / w, oh / h])


def input_scale(model: torch.nn.Module, height: int, width: int) -> float:
    """The factor by which the detector's transform resizes an (height, width) image."""
    t = model.transform
    return min(float(t.min_size[-1]) / min(height, width), float(t.max_size) / max(height, width))


def auto_batch_size(
    per_object_bytes: int, free_bytes: int, fraction: float = 0.8, minimum: int = 1, maximum: int = 64
) -> int:
    """Objects per batch so their activations fill ``fraction`` of the free device memory."""
    if per_object_bytes <= 0:
        return maximum
    return int(max(minimum, min(maximum, (free_bytes * fraction) // per_object_bytes)))
