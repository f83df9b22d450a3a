"""The BBAM engine: the detector's two heads on fixed proposals, run as fast as the device allows.

:class:`HeadRunner` runs the heads' one forward (:class:`bbam_lite.detector.heads.HeadForward`,
which :func:`~bbam_lite.detector.heads.roi_head_outputs` runs on the detector's own modules) for the
300 forward/backward passes of a BBAM optimisation, with what stays fixed across them done once:

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
import warnings
import weakref
from dataclasses import dataclass, replace

import torch

from bbam_lite import compat
from bbam_lite.attribution.fold import fold_frozen_norms
from bbam_lite.detector.heads import HeadForward, RoIPlan, input_scale

__all__ = [
    "COMPILE_MIN_OBJECTS",
    "EngineOptions",
    "HeadRunner",
    "RoIPlan",
    "auto_batch_size",
    "engine_backbone",
    "input_scale",
]

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


class HeadRunner(HeadForward):
    """f_box and f_cls of a frozen detector on fixed proposals, differentiable to the input pixels:
    the heads' forward (:class:`~bbam_lite.detector.heads.HeadForward`) on the engine's copies of
    the detector's modules, as ``options`` say.

    Converts the backbone's weights to channels-last memory format in place when that option is
    on (values unchanged).
    """

    def __init__(self, model: torch.nn.Module, options: EngineOptions | None = None, device=None) -> None:
        device = torch.device(device) if device is not None else next(model.parameters()).device
        options = (options or EngineOptions()).resolve(device)
        if options.roi_align == "grid" and model.roi_heads.box_roi_pool.sampling_ratio <= 0:
            options = replace(options, roi_align="torchvision")
        if options.compile == "auto":  # not resolved for a run: eager
            options = replace(options, compile=None)
        self.options = options
        cast = options.reduced_precision and options.cast_weights
        dtype = torch.bfloat16 if cast else None  # the engine's weights, cast once
        backbone = engine_backbone(model, options.fold_norms, dtype)
        if options.channels_last:
            backbone.to(memory_format=torch.channels_last)
        super().__init__(
            model,
            device,
            backbone=_CompiledOrEager(model, backbone, options.compile),
            box_head=_copy(model, "roi_heads.box_head", False, dtype),
            box_predictor=_copy(model, "roi_heads.box_predictor", False, dtype),
            dtype=dtype,
            channels_last=bool(options.channels_last),
            grid_pool=options.roi_align == "grid",
            autocast=options.reduced_precision and dtype is None,
        )


def auto_batch_size(
    per_object_bytes: int, free_bytes: int, fraction: float = 0.8, minimum: int = 1, maximum: int = 64
) -> int:
    """Objects per batch so their activations fill ``fraction`` of the free device memory."""
    if per_object_bytes <= 0:
        return maximum
    return int(max(minimum, min(maximum, (free_bytes * fraction) // per_object_bytes)))
