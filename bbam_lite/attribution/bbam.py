"""BBAM: the smallest mask that keeps the detector's box-head and class-head outputs (Eq. 1, 2, 3, 5).

For each object, a coarse mask M (one cell per ``stride`` x ``stride`` pixels) is optimised with
Adam so that the perturbed image Phi(I, M) = I * M_up + mu * (1 - M_up) still gives, for every
positive proposal o, the box deltas t^c and the class probabilities p^c of the clean image:

    lambda * |M|_1 + lambda_TV * TV_beta(M)
        + mean_o [ 1_box * |t^c - f_box(Phi, o)|_1 + 1_cls * |p^c - f_cls(Phi, o)|_1 ]

(the loss, with its variants, is written once in :mod:`bbam_lite.attribution.loss`).

Many objects (from one image or several) are optimised together: each has its own mask and its
own Adam state (Adam is element-wise), and the detector sees them as one batch; the result is that
of optimising them one by one. The detector runs through :mod:`bbam_lite.attribution.engine`
(frozen weights, so no weight gradients; bf16 and channels-last on GPUs). See :data:`PRESETS` for
the paper's settings and the authors'.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bbam_lite.attribution.engine import EngineOptions, HeadRunner, auto_batch_size, input_scale
from bbam_lite.attribution.loss import (
    check_variants,
    head_terms,
    mask_l1,
    object_means,
    weighted_total,
)
from bbam_lite.attribution.loss import tv_norm as tv_norm  # re-exported: its home was this module
from bbam_lite.attribution.proposals import Positives, select_positives
from bbam_lite.detector.heads import HeadOutputs, frozen


@dataclass(frozen=True)
class BBAMConfig:
    """Settings of one BBAM run. Defaults are the authors' code (preset ``official``, the CLI's
    default); :data:`PRESETS` ``"paper"`` is the paper's text."""

    preset: str = "official"
    lam: float = 0.007  # lambda, weight of |M|_1
    lam_tv: float = 1e-4  # lambda_TV
    beta: float = 3.0  # exponent of the TV norm
    lr: float = 0.02  # Adam
    iterations: int = 300
    use_box: bool = True  # 1_box
    use_cls: bool = True  # 1_cls
    stride: float | None = (
        None  # fixed stride (Fig. 7b ablation); None: adaptive s(a) = base + gain * sqrt(a)
    )
    stride_base: float = 16.0
    stride_gain: float = 48.0
    # Strides are in pixels of the paper's VOC images (shorter side about 375 px, which the detector
    # resizes to 800). When set, strides are multiplied by (image shorter side / this value), so a
    # perturbation unit covers the same fraction of the image, and of the detector's input, as in the
    # paper; the number of mask cells, and with it the weight of the L1 term, is then the paper's.
    stride_reference_side: float | None = None
    n_jitter: int = 1000  # the authors' code; the paper does not give the count (preset paper: 200)
    jitter: float = 0.3
    iou_thresholds: tuple[float, ...] = (0.9, 0.85, 0.8)  # tried in order (the paper: 0.8 only)
    min_positives: int = 100  # a threshold must give more than this many positives
    max_positives: int | None = 100
    init: str = "boxes"  # boxes: 1 on the union of the positives' regressed boxes, 0 elsewhere | ones
    tv_diagonal: bool = True  # the authors' TV adds the four diagonal differences
    # box and class targets of Eq. 5, by name (bbam_lite.attribution.targets): half-mean: mean |dt| / 2
    # (authors' code) | sum: |.|_1 over the 4 deltas (paper); target-half: |p_c - p'_c| / 2 on the
    # object's class (authors' code) | all: |.|_1 over all class probabilities (paper)
    box_loss: str = "half-mean"
    cls_loss: str = "target-half"
    seed: int = 0
    # Context crop (beyond the paper; off by default): an object whose box covers less than
    # crop_max_area of the image is explained on a crop around it, at the full image's scale, its map
    # 0 outside the crop (see crop_window). The detector then spends its FLOPs near the object.
    context_crop: bool = False
    crop_margin: float = 1.0  # context on each side, in box widths / heights
    crop_min_context: float = 64.0  # ... and at least this many detector-input pixels
    crop_max_area: float = 0.1

    def __post_init__(self) -> None:
        if self.init not in ("ones", "boxes"):
            raise ValueError(f"init must be 'ones' or 'boxes', got {self.init!r}")
        if not (self.use_box or self.use_cls):
            raise ValueError("at least one of use_box and use_cls must be on")
        check_variants(self.box_loss, self.cls_loss)

    def stride_for(self, area_ratio: float, height: int, width: int) -> float:
        """The stride in image pixels for an object covering ``area_ratio`` of the image."""
        s = (
            self.stride
            if self.stride is not None
            else adaptive_stride(area_ratio, self.stride_base, self.stride_gain)
        )
        if self.stride_reference_side:
            s = s * min(height, width) / self.stride_reference_side
        return max(float(s), 1.0)


PRESETS: dict[str, BBAMConfig] = {
    "paper": BBAMConfig(
        preset="paper",
        n_jitter=200,
        iou_thresholds=(0.8,),
        min_positives=0,
        max_positives=None,
        init="ones",
        tv_diagonal=False,
        box_loss="sum",
        cls_loss="all",
    ),
    "official": BBAMConfig(),
}


def get_preset(name: str, **overrides: Any) -> BBAMConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown BBAM preset {name!r}; choose one of {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)


def adaptive_stride(area_ratio: float, base: float = 16.0, gain: float = 48.0) -> float:
    """s(a) = 16 + 48 sqrt(a): small objects get fine perturbation units, large ones coarse."""
    return base + gain * math.sqrt(min(max(area_ratio, 0.0), 1.0))


def perturb(image: torch.Tensor, mask_up: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Phi(I, M) = I * M_up + mu * (1 - M_up), with mu the per-channel training mean.

    ``mask_up`` and ``mean`` may be on another device than ``image`` (a mask made on the CPU, the
    workspace's CPU mean): they are moved to the image's device, where the result is."""
    mask_up, mean = mask_up.to(image.device), mean.to(image.device)
    return image * mask_up + mean.view(3, 1, 1) * (1 - mask_up)


def upsample(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The coarse mask bilinearly upsampled to the image size."""
    return F.interpolate(mask[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]


@dataclass
class ObjectTask:
    """One object to explain: its image (float (3, H, W) in [0, 1]), box and class.

    A task on a crop (:func:`crop_task`) also carries the full image's size, which the stride rule
    reads, the crop's offset in it and the full image's detector-input scale, which the crop keeps.
    """

    image: torch.Tensor
    box: torch.Tensor
    label: int
    key: Any = None
    full_size: tuple[int, int] | None = None  # (H, W) of the image a crop was cut from
    offset: tuple[int, int] = (0, 0)  # (x0, y0) of the crop in that image
    scale: float | None = None  # image -> detector-input scale; None: the detector's transform rule

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the image the object belongs to (the full image for a crop)."""
        return self.full_size or (int(self.image.shape[-2]), int(self.image.shape[-1]))


@dataclass
class ObjectResult:
    """A BBAM and what it was made from; ``history`` holds what was asked to be recorded.

    ``fault`` names a numerical fault (NaN or inf in the loss or the mask); the maps of such a
    result are zeros, never NaN. ``precision`` is the one the result was computed at, ``retried``
    says it is the fp32 retry of a reduced-precision run that faulted.
    """

    key: Any
    mask: np.ndarray  # coarse mask (h, w) in [0, 1]
    bbam: np.ndarray  # mask upsampled to the image, float32 (H, W) in [0, 1]
    stride: float
    n_positives: int
    n_candidates: int
    iou_threshold: float
    fallback: str | None
    final_box_loss: float
    final_cls_loss: float
    history: dict[str, Any] = field(default_factory=dict)
    fault: str | None = None
    precision: str = "fp32"
    retried: bool = False

    @property
    def failed(self) -> bool:
        return self.fault is not None


class BBAMNumericalWarning(UserWarning):
    """A BBAM object whose loss or mask went NaN or inf (retried at fp32, or marked failed)."""


def init_mask(cfg: BBAMConfig, pos: Positives, h: int, w: int, gh: int, gw: int, device) -> torch.Tensor:
    """The coarse (gh, gw) mask an optimisation starts from: ones (the paper), or 1 on the cells the
    union of the positives' regressed boxes touches and 0 elsewhere (the authors' code)."""
    if cfg.init == "ones":
        return torch.ones(gh, gw, device=device)
    full = torch.zeros(1, 1, h, w, device=device)
    for x1, y1, x2, y2 in pos.pred_boxes.round().long().tolist():
        full[..., max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)] = 1
    cells = F.adaptive_avg_pool2d(full, (gh, gw))[0, 0]
    return (cells > 0).float()


def task_generator(seed: int, key: Any) -> torch.Generator:
    """The jitter stream of one object: a function of the seed and the object's key only, so results
    do not depend on which other objects share its batch or on a resumed run's order."""
    return torch.Generator().manual_seed((seed * 2_654_435_761 + zlib.crc32(repr(key).encode())) % 2**63)


@torch.no_grad()
def prepare(
    model: torch.nn.Module, task: ObjectTask, cfg: BBAMConfig, engine: EngineOptions | None = None
) -> Positives:
    """Jittered proposals and the positives of Eq. 3 for one object (detector in eval mode).

    With ``engine`` the heads run through the engine, at fp32 whatever its precision (the IoU and
    class tests of Eq. 3 are thresholds); without, through the detector's own modules.
    """
    heads = None
    if engine is not None:
        runner = HeadRunner(model, replace(engine, precision="fp32"), task.image.device)
        heads = partial(runner.outputs, scale=task.scale)
    elif task.scale is not None:
        raise ValueError("a task on a crop needs the engine (it keeps the full image's scale)")
    return select_positives(
        model,
        task.image,
        task.box,
        task.label,
        cfg.n_jitter,
        cfg.jitter,
        cfg.iou_thresholds,
        cfg.min_positives,
        cfg.max_positives,
        task_generator(cfg.seed, task.key),
        heads,
    )


def _area_ratio(pred_box: torch.Tensor, box: torch.Tensor, h: int, w: int) -> float:
    """Area of the mean regressed box over the image area, for the stride rule; the annotated box
    where the regression is not finite (a numerical fault, reported by the optimisation)."""
    for b in (pred_box, box):
        area = float((b[2] - b[0]).clamp(min=0) * (b[3] - b[1]).clamp(min=0)) / (h * w)
        if math.isfinite(area):
            return area
    return 0.0


def _object_losses(
    cfg: BBAMConfig,
    out: HeadOutputs,
    target_deltas: torch.Tensor,
    target_probs: torch.Tensor,
    row_labels: torch.Tensor,
    segments: torch.Tensor,
    counts: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 5's head terms of every object at once: per-proposal terms averaged per object."""
    idx = torch.arange(len(row_labels), device=row_labels.device)
    box_rows, cls_rows = head_terms(
        cfg, out.deltas[idx, row_labels], out.probs, target_deltas, target_probs, row_labels
    )
    return object_means(box_rows, segments, counts), object_means(cls_rows, segments, counts)


def _fault_message(first_bad_iteration: int, mask_finite: bool) -> str | None:
    if first_bad_iteration >= 0:
        return f"non-finite loss from iteration {first_bad_iteration}"
    if not mask_finite:
        return "non-finite mask"
    return None


def optimise(
    model: torch.nn.Module,
    tasks: Sequence[ObjectTask],
    cfg: BBAMConfig,
    mean: torch.Tensor,
    positives: Sequence[Positives] | None = None,
    record: Sequence[str] = (),
    snapshot_every: int = 25,
    engine: EngineOptions | None = None,
) -> list[ObjectResult]:
    """BBAMs of ``tasks`` (images of one size), optimised together.

    ``record`` may hold ``"losses"`` (per-iteration box/cls/L1/TV losses per object; both heads'
    losses are computed even when one head is switched off, for Fig. 6c), ``"snapshots"`` (the
    upsampled mask every ``snapshot_every`` iterations) and ``"proposals"`` (per-proposal outputs
    on the clean and on the final perturbed image). ``engine`` says how the detector runs
    (:class:`~bbam_lite.attribution.engine.EngineOptions`; default: the device's fast settings).

    An object whose loss or mask goes NaN or inf gets a ``fault`` and zero maps; the others are
    unaffected (each object's loss depends on its own image and mask only).
    """
    if not tasks:
        return []
    sizes = {(*t.image.shape[-2:], t.scale) for t in tasks}
    if len(sizes) != 1:
        raise ValueError(
            f"optimise() takes images of one size (and scale) per call, got {sorted(sizes, key=str)}"
        )
    ((h, w, scale),) = sizes
    device = tasks[0].image.device
    mean = mean.to(device)
    n = len(tasks)
    with frozen(model):
        runner = HeadRunner(model, engine, device)
        if positives is None:
            positives = [prepare(model, t, cfg, runner.options) for t in tasks]
        strides, masks = [], []
        for task, pos in zip(tasks, positives, strict=True):
            fh, fw = task.size  # a crop's stride is the full image's
            s = cfg.stride_for(_area_ratio(pos.pred_boxes.mean(0), task.box, fh, fw), fh, fw)
            gh, gw = math.ceil(h / s), math.ceil(w / s)
            strides.append(s)
            masks.append(init_mask(cfg, pos, h, w, gh, gw, device).requires_grad_(True))
        images = torch.stack([t.image for t in tasks])
        plan = runner.plan([p.proposals for p in positives], h, w, scale)
        counts_list = [len(p.proposals) for p in positives]
        counts = torch.tensor(counts_list, device=device, dtype=torch.float32)
        segments = torch.repeat_interleave(torch.arange(n, device=device), counts.long())
        row_labels = torch.repeat_interleave(
            torch.tensor([t.label for t in tasks], device=device), counts.long()
        )
        # t^c and p^c on the clean images, computed by the same engine in the same batch: the L1
        # losses have a kink at zero residual, and targets from another batch size or precision
        # differ from the optimisation's outputs by rounding whose sign would steer the first steps.
        with torch.no_grad():
            clean = runner(images, plan)
        target_deltas = clean.deltas[torch.arange(len(row_labels), device=device), row_labels]
        target_probs = clean.probs
        opt = torch.optim.Adam(masks, lr=cfg.lr)
        mean4 = mean.view(1, 3, 1, 1)
        first_bad = torch.full((n,), -1, dtype=torch.long, device=device)
        hist: dict[str, list[torch.Tensor]] = {"box": [], "cls": [], "l1": [], "tv": []}
        snaps: list[list[tuple[int, np.ndarray]]] = [[] for _ in tasks]
        out = clean
        box_o = cls_o = images.new_zeros(n)
        for it in range(cfg.iterations + 1):
            last = it == cfg.iterations  # the last pass only measures the final masks
            up = torch.stack([upsample(m, h, w) for m in masks])[:, None]
            perturbed = images * up + mean4 * (1 - up)
            out = runner(perturbed, plan, decode=last and "proposals" in record)
            box_o, cls_o = _object_losses(cfg, out, target_deltas, target_probs, row_labels, segments, counts)
            l1 = torch.stack([mask_l1(m) for m in masks])
            tv = torch.stack([tv_norm(m, cfg.beta, cfg.tv_diagonal) for m in masks])
            total = weighted_total(cfg, l1, tv, box_o, cls_o)
            bad = ~(torch.isfinite(box_o) & torch.isfinite(cls_o) & torch.isfinite(total))
            first_bad = torch.where(bad & (first_bad < 0), it, first_bad)
            if "losses" in record:
                for name, v in (("box", box_o), ("cls", cls_o), ("l1", l1), ("tv", tv)):
                    hist[name].append(v.detach())
            if "snapshots" in record and it % snapshot_every == 0:
                for j in range(n):
                    snaps[j].append((it, up[j, 0].detach().cpu().numpy().astype(np.float32)))
            if last:
                break
            opt.zero_grad(set_to_none=True)
            total.sum().backward()
            opt.step()
            with torch.no_grad():
                for m in masks:
                    m.clamp_(0, 1)

        first_bad_l = first_bad.tolist()
        final_box, final_cls = box_o.detach().tolist(), cls_o.detach().tolist()
        stacked = {k: torch.stack(v).cpu().T.tolist() for k, v in hist.items() if v}
        results = []
        start = 0
        for j, (task, pos, m) in enumerate(zip(tasks, positives, masks, strict=True)):
            mask = m.detach()
            fault = _fault_message(first_bad_l[j], bool(torch.isfinite(mask).all()))
            if fault is not None:
                mask = torch.zeros_like(mask)
            history: dict[str, Any] = {}
            if "losses" in record:
                history.update({k: stacked[k][j] for k in ("box", "cls", "l1", "tv")})
            if "snapshots" in record:
                history["snapshots"] = snaps[j]
            sl = slice(start, start + counts_list[j])
            start += counts_list[j]
            if "proposals" in record:
                history["proposals"] = {
                    "boxes": pos.proposals.cpu().numpy(),
                    "clean_probs": target_probs[sl, task.label].cpu().numpy(),
                    "clean_boxes": pos.pred_boxes.cpu().numpy(),
                    "final_probs": out.probs[sl, task.label].detach().cpu().numpy(),
                    "final_boxes": out.boxes[sl, task.label].detach().cpu().numpy(),
                }
            results.append(
                ObjectResult(
                    key=task.key,
                    mask=mask.cpu().numpy().astype(np.float32),
                    bbam=upsample(mask, h, w).clamp(0, 1).cpu().numpy().astype(np.float32),
                    stride=strides[j],
                    n_positives=0 if pos.fallback else len(pos.proposals),
                    n_candidates=pos.n_candidates,
                    iou_threshold=pos.iou_threshold,
                    fallback=pos.fallback,
                    final_box_loss=final_box[j],
                    final_cls_loss=final_cls[j],
                    history=history,
                    fault=fault,
                    precision=runner.options.precision,
                )
            )
    return results


def _describe(task: ObjectTask) -> str:
    where = (
        f"image {task.key[0]}, object {task.key[1]}"
        if isinstance(task.key, tuple) and len(task.key) == 2
        else f"object {task.key!r}"
    )
    box = ", ".join(f"{v:.1f}" for v in task.box.tolist())
    return f"{where}, box [{box}], class {task.label}"


#: Crop sizes are rounded up to this many detector-input pixels, so that the crops of objects of
#: similar size share a size and batch together (the FPN pads to 32 anyway).
CROP_ROUNDING = 32


def crop_window(
    box: Sequence[float], height: int, width: int, cfg: BBAMConfig, scale: float
) -> tuple[int, int, int, int] | None:
    """The crop (x0, y0, x1, y1) a small object is explained on, or None (a large object, or a crop
    that would be the whole image): the box plus ``crop_margin`` box sizes on each side, at least
    ``crop_min_context`` detector-input pixels, rounded up to :data:`CROP_ROUNDING` input pixels and
    shifted to lie inside the image."""
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    if bw * bh / (height * width) >= cfg.crop_max_area:
        return None
    context = cfg.crop_min_context / scale
    step = CROP_ROUNDING / scale
    cw = min(width, math.ceil(math.ceil((bw + 2 * max(cfg.crop_margin * bw, context)) / step) * step))
    ch = min(height, math.ceil(math.ceil((bh + 2 * max(cfg.crop_margin * bh, context)) / step) * step))
    if cw >= width and ch >= height:
        return None
    x0 = min(max(round((x1 + x2) / 2 - cw / 2), 0), width - cw)
    y0 = min(max(round((y1 + y2) / 2 - ch / 2), 0), height - ch)
    return x0, y0, x0 + cw, y0 + ch


def crop_task(task: ObjectTask, window: tuple[int, int, int, int], scale: float) -> ObjectTask:
    """``task`` on the crop ``window`` of its image, keeping the image's ``scale``."""
    x0, y0, x1, y1 = window
    return replace(
        task,
        image=task.image[:, y0:y1, x0:x1],
        box=task.box - task.box.new_tensor([x0, y0, x0, y0]),
        full_size=task.size,
        offset=(x0, y0),
        scale=scale,
    )


def uncrop(result: ObjectResult, task: ObjectTask) -> ObjectResult:
    """A crop's result with its map placed in the full image (0 outside the crop). The coarse
    ``mask`` and the ``history`` stay in the crop's coordinates."""
    (h, w), (x0, y0) = task.size, task.offset
    full = np.zeros((h, w), np.float32)
    ch, cw = result.bbam.shape
    full[y0 : y0 + ch, x0 : x0 + cw] = result.bbam
    return replace(result, bbam=full)


def _size_groups(tasks: Sequence[ObjectTask], batch_size: int) -> list[list[int]]:
    """Indices of ``tasks`` grouped by image size (and a crop's scale), at most ``batch_size`` per
    group, in order."""

    def group_key(i: int) -> tuple:
        return (*tasks[i].image.shape[-2:], tasks[i].scale or 0.0)

    order = sorted(range(len(tasks)), key=group_key)
    groups: list[list[int]] = []
    for i in order:
        same = bool(groups) and group_key(groups[-1][0]) == group_key(i)
        if same and len(groups[-1]) < batch_size:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def probe_batch_size(
    model: torch.nn.Module,
    task: ObjectTask,
    cfg: BBAMConfig,
    mean: torch.Tensor,
    engine: EngineOptions,
    select: Callable[[torch.nn.Module, ObjectTask, BBAMConfig], Positives] | None = None,
) -> int:
    """Objects per batch that fill the free GPU memory (CUDA), from the peak of one real
    iteration of :func:`optimise` on two objects (the per-object increment, so that what a batch
    shares, the weights and the engine's copies, is not counted per object); the CPU default (8)
    elsewhere."""
    device = task.image.device
    if device.type != "cuda":
        return 8
    select = select or partial(prepare, engine=engine)
    with frozen(model):
        pos = select(model, task, cfg)
    one_iteration = replace(cfg, iterations=1)
    peaks = []
    for n in (1, 2):
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        optimise(model, [task] * n, one_iteration, mean, [pos] * n, engine=engine)
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
    per_object = max(peaks[1] - peaks[0], 1)
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(device)
    return auto_batch_size(int(per_object * 1.2), int(free - peaks[0]))


def explain(
    model: torch.nn.Module,
    tasks: Sequence[ObjectTask],
    cfg: BBAMConfig,
    mean: torch.Tensor,
    batch_size: int | str = 8,
    engine: EngineOptions | None = None,
    select: Callable[[torch.nn.Module, ObjectTask, BBAMConfig], Positives] | None = None,
    **kwargs: Any,
) -> list[ObjectResult]:
    """BBAMs of any number of objects: grouped by image size, ``batch_size`` objects at a time.

    ``select`` chooses each object's proposals (default :func:`prepare`, Eq. 3's positives).

    ``batch_size="auto"`` fills the free GPU memory (8 on the CPU); a batch that runs out of GPU
    memory is split in two and redone. An object with a numerical fault (see :func:`optimise`) is
    reported with a :class:`BBAMNumericalWarning` naming its image and box, redone alone at fp32 if
    it ran in reduced precision, and otherwise returned with its ``fault`` set (zero maps): one bad
    object never ends the run.
    """
    if not tasks:
        return []
    options = (engine or EngineOptions()).resolve(tasks[0].image.device, len(tasks))
    if cfg.context_crop:  # small objects on crops around them; their maps placed back below
        cropped = []
        for t in tasks:
            scale = input_scale(model, *t.image.shape[-2:])
            window = crop_window(t.box.tolist(), *t.image.shape[-2:], cfg, scale)
            cropped.append(crop_task(t, window, scale) if window else t)
        done = explain(
            model, cropped, replace(cfg, context_crop=False), mean, batch_size, engine, select, **kwargs
        )
        return [uncrop(r, t) if t.full_size else r for r, t in zip(done, cropped, strict=True)]
    select = select or partial(prepare, engine=options)
    if batch_size == "auto":
        batch_size = probe_batch_size(model, tasks[0], cfg, mean, options, select)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer or 'auto', got {batch_size!r}")
    results: list[ObjectResult | None] = [None] * len(tasks)
    queue = _size_groups(tasks, batch_size)
    while queue:
        group = queue.pop(0)
        try:
            with frozen(model):
                pos = [select(model, tasks[k], cfg) for k in group]
            done = optimise(model, [tasks[k] for k in group], cfg, mean, pos, engine=options, **kwargs)
        except torch.OutOfMemoryError:
            if len(group) == 1:
                raise
            if tasks[0].image.is_cuda:
                torch.cuda.empty_cache()
            half = (len(group) + 1) // 2
            warnings.warn(
                f"BBAM: out of memory with {len(group)} objects in a batch; trying {half}",
                ResourceWarning,
                stacklevel=2,
            )
            queue[:0] = [group[:half], group[half:]]
            continue
        for k, r in zip(group, done, strict=True):
            results[k] = (
                _handle_fault(model, tasks[k], r, cfg, mean, options, select, kwargs) if r.failed else r
            )
    return [r for r in results if r is not None]


def _handle_fault(
    model: torch.nn.Module,
    task: ObjectTask,
    result: ObjectResult,
    cfg: BBAMConfig,
    mean: torch.Tensor,
    options: EngineOptions,
    select: Callable[[torch.nn.Module, ObjectTask, BBAMConfig], Positives],
    kwargs: dict[str, Any],
) -> ObjectResult:
    """Report a faulty object; redo it alone at fp32 once if it ran in reduced precision."""
    what = f"BBAM numerical fault: {_describe(task)}: {result.fault} ({result.precision})"
    if options.reduced_precision:
        warnings.warn(f"{what}; retrying at fp32", BBAMNumericalWarning, stacklevel=3)
        with frozen(model):
            pos = [select(model, task, cfg)]
        fp32 = replace(options, precision="fp32")
        retry = optimise(model, [task], cfg, mean, pos, engine=fp32, **kwargs)[0]
        retry.retried = True
        if not retry.failed:
            return retry
        result = retry
        what = f"BBAM numerical fault: {_describe(task)}: {retry.fault} (fp32 retry)"
    warnings.warn(f"{what}; object marked failed", BBAMNumericalWarning, stacklevel=3)
    return result
