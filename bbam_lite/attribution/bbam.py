"""BBAM: the smallest mask that keeps the detector's box-head and class-head outputs (Eq. 1, 2, 3, 5).

For each object, a coarse mask M (one cell per ``stride`` x ``stride`` pixels) is optimised with
Adam so that the perturbed image Phi(I, M) = I * M_up + mu * (1 - M_up) still gives, for every
positive proposal o, the box deltas t^c and the class probabilities p^c of the clean image:

    lambda * |M|_1 + lambda_TV * TV_beta(M)
        + mean_o [ 1_box * |t^c - f_box(Phi, o)|_1 + 1_cls * |p^c - f_cls(Phi, o)|_1 ]

Many objects (from one image or several) are optimised together: each has its own mask and its
own Adam state (Adam is element-wise), and the detector sees them as one batch; the result is that
of optimising them one by one. See :data:`PRESETS` for the paper's settings and the authors'.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bbam_lite.attribution.proposals import Positives, select_positives
from bbam_lite.detector.heads import frozen, roi_head_outputs


@dataclass(frozen=True)
class BBAMConfig:
    """Settings of one BBAM run. Defaults are the paper's (preset ``paper``)."""

    preset: str = "paper"
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
    n_jitter: int = 200  # the paper does not give the count; the authors' code uses 1000
    jitter: float = 0.3
    iou_thresholds: tuple[float, ...] = (0.8,)
    min_positives: int = 0
    max_positives: int | None = None
    init: str = "ones"  # ones | boxes (1 on the union of the positives' regressed boxes, 0 elsewhere)
    tv_diagonal: bool = False  # the authors' TV adds the four diagonal differences
    box_loss: str = "sum"  # sum: |.|_1 over the 4 deltas | half-mean: mean / 2 (authors' code)
    cls_loss: str = "all"  # all: |.|_1 over all class probabilities | target-half: |p_c - p'_c| / 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.init not in ("ones", "boxes"):
            raise ValueError(f"init must be 'ones' or 'boxes', got {self.init!r}")
        if not (self.use_box or self.use_cls):
            raise ValueError("at least one of use_box and use_cls must be on")
        if self.box_loss not in ("sum", "half-mean") or self.cls_loss not in ("all", "target-half"):
            raise ValueError("box_loss must be sum|half-mean and cls_loss all|target-half")

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
    "paper": BBAMConfig(),
    "official": BBAMConfig(
        preset="official",
        n_jitter=1000,
        iou_thresholds=(0.9, 0.85, 0.8),
        min_positives=100,
        max_positives=100,
        init="boxes",
        tv_diagonal=True,
        box_loss="half-mean",
        cls_loss="target-half",
    ),
}


def get_preset(name: str, **overrides: Any) -> BBAMConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown BBAM preset {name!r}; choose one of {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)


def adaptive_stride(area_ratio: float, base: float = 16.0, gain: float = 48.0) -> float:
    """s(a) = 16 + 48 sqrt(a): small objects get fine perturbation units, large ones coarse."""
    return base + gain * math.sqrt(min(max(area_ratio, 0.0), 1.0))


def tv_norm(mask: torch.Tensor, beta: float, diagonal: bool = False) -> torch.Tensor:
    """sum |dM|^beta over vertical and horizontal neighbour differences (and diagonals if asked)."""
    tv = (mask[1:, :] - mask[:-1, :]).abs().pow(beta).sum() + (mask[:, 1:] - mask[:, :-1]).abs().pow(
        beta
    ).sum()
    if diagonal:
        tv = tv + (mask[1:, 1:] - mask[:-1, :-1]).abs().pow(beta).sum()
        tv = tv + (mask[1:, :-1] - mask[:-1, 1:]).abs().pow(beta).sum()
    return tv


def perturb(image: torch.Tensor, mask_up: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Phi(I, M) = I * M_up + mu * (1 - M_up), with mu the per-channel training mean."""
    return image * mask_up + mean.view(3, 1, 1) * (1 - mask_up)


def upsample(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The coarse mask bilinearly upsampled to the image size."""
    return F.interpolate(mask[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]


def head_losses(
    cfg: BBAMConfig, out_deltas: torch.Tensor, out_probs: torch.Tensor, pos: Positives, label: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-head perturbation losses of one object, averaged over its positives (Eq. 3)."""
    d = (out_deltas - pos.target_deltas).abs()
    box = d.sum(-1).mean() if cfg.box_loss == "sum" else d.mean(-1).mean() / 2
    if cfg.cls_loss == "all":
        cls = (out_probs - pos.target_probs).abs().sum(-1).mean()
    else:
        cls = (out_probs[:, label] - pos.target_probs[:, label]).abs().mean() / 2
    return box, cls


@dataclass
class ObjectTask:
    """One object to explain: its image (float (3, H, W) in [0, 1]), box and class."""

    image: torch.Tensor
    box: torch.Tensor
    label: int
    key: Any = None


@dataclass
class ObjectResult:
    """A BBAM and what it was made from; ``history`` holds what was asked to be recorded."""

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


def _init_mask(cfg: BBAMConfig, pos: Positives, h: int, w: int, gh: int, gw: int, device) -> torch.Tensor:
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
def prepare(model: torch.nn.Module, task: ObjectTask, cfg: BBAMConfig) -> Positives:
    """Jittered proposals and the positives of Eq. 3 for one object (detector in eval mode)."""
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
    )


@torch.no_grad()
def _batched_targets(
    model: torch.nn.Module,
    images: torch.Tensor,
    tasks: Sequence[ObjectTask],
    positives: Sequence[Positives],
    counts: list[int],
) -> list[Positives]:
    """t^c and p^c recomputed on the clean images in the same batch as the optimisation.

    The L1 losses have a kink at zero residual: computed in a batch of another size, the clean
    targets differ from the optimisation's outputs by float rounding, and the sign of that noise
    would steer the first steps. Recomputed here, a mask of ones has exactly zero loss.
    """
    out = roi_head_outputs(model, images, [p.proposals for p in positives])
    fixed, start = [], 0
    for task, pos, n in zip(tasks, positives, counts, strict=True):
        sl = slice(start, start + n)
        start += n
        fixed.append(replace(pos, target_deltas=out.deltas[sl, task.label], target_probs=out.probs[sl]))
    return fixed


def optimise(
    model: torch.nn.Module,
    tasks: Sequence[ObjectTask],
    cfg: BBAMConfig,
    mean: torch.Tensor,
    positives: Sequence[Positives] | None = None,
    record: Sequence[str] = (),
    snapshot_every: int = 25,
) -> list[ObjectResult]:
    """BBAMs of ``tasks`` (images of one size), optimised together.

    ``record`` may hold ``"losses"`` (per-iteration box/cls/L1/TV losses per object; both heads'
    losses are computed even when one head is switched off, for Fig. 6c), ``"snapshots"`` (the
    upsampled mask every ``snapshot_every`` iterations) and ``"proposals"`` (per-proposal outputs
    on the clean and on the final perturbed image).
    """
    if not tasks:
        return []
    sizes = {tuple(t.image.shape[-2:]) for t in tasks}
    if len(sizes) != 1:
        raise ValueError(f"optimise() takes images of one size per call, got {sorted(sizes)}")
    ((h, w),) = sizes
    device = tasks[0].image.device
    mean = mean.to(device)
    with frozen(model):
        if positives is None:
            positives = [prepare(model, t, cfg) for t in tasks]
        strides, masks = [], []
        for pos in positives:
            pb = pos.pred_boxes.mean(0)
            area = float((pb[2] - pb[0]).clamp(min=0) * (pb[3] - pb[1]).clamp(min=0)) / (h * w)
            s = cfg.stride_for(area, h, w)
            gh, gw = math.ceil(h / s), math.ceil(w / s)
            strides.append(s)
            masks.append(_init_mask(cfg, pos, h, w, gh, gw, device).requires_grad_(True))
        opt = torch.optim.Adam(masks, lr=cfg.lr)
        images = torch.stack([t.image for t in tasks])
        counts = [len(p.proposals) for p in positives]
        positives = _batched_targets(model, images, tasks, positives, counts)
        hist: list[dict[str, list]] = [
            {"box": [], "cls": [], "l1": [], "tv": [], "snapshots": []} for _ in tasks
        ]
        last = [(0.0, 0.0)] * len(tasks)
        for it in range(cfg.iterations + 1):
            ups = torch.stack([upsample(m, h, w) for m in masks])
            perturbed = torch.stack([perturb(images[j], ups[j], mean) for j in range(len(tasks))])
            out = roi_head_outputs(model, perturbed, [p.proposals for p in positives])
            total = perturbed.new_zeros(())
            start = 0
            for j, (task, pos, m) in enumerate(zip(tasks, positives, masks, strict=True)):
                sl = slice(start, start + counts[j])
                start += counts[j]
                box_l, cls_l = head_losses(cfg, out.deltas[sl, task.label], out.probs[sl], pos, task.label)
                l1 = m.sum()
                tv = tv_norm(m, cfg.beta, cfg.tv_diagonal)
                last[j] = (box_l.item(), cls_l.item())
                if "losses" in record:
                    hist[j]["box"].append(last[j][0])
                    hist[j]["cls"].append(last[j][1])
                    hist[j]["l1"].append(l1.item())
                    hist[j]["tv"].append(tv.item())
                if "snapshots" in record and it % snapshot_every == 0:
                    hist[j]["snapshots"].append((it, ups[j].detach().cpu().numpy().astype(np.float32)))
                total = total + cfg.lam * l1 + cfg.lam_tv * tv + cfg.use_box * box_l + cfg.use_cls * cls_l
            if it == cfg.iterations:  # the last pass only measures the final masks
                break
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            with torch.no_grad():
                for m in masks:
                    m.clamp_(0, 1)

        results = []
        start = 0
        for j, (task, pos, m) in enumerate(zip(tasks, positives, masks, strict=True)):
            history: dict[str, Any] = {}
            if "losses" in record:
                history.update({k: hist[j][k] for k in ("box", "cls", "l1", "tv")})
            if "snapshots" in record:
                history["snapshots"] = hist[j]["snapshots"]
            if "proposals" in record:
                sl = slice(start, start + counts[j])
                history["proposals"] = {
                    "boxes": pos.proposals.cpu().numpy(),
                    "clean_probs": pos.target_probs[:, task.label].cpu().numpy(),
                    "clean_boxes": pos.pred_boxes.cpu().numpy(),
                    "final_probs": out.probs[sl, task.label].detach().cpu().numpy(),
                    "final_boxes": out.boxes[sl, task.label].detach().cpu().numpy(),
                }
            start += counts[j]
            results.append(
                ObjectResult(
                    key=task.key,
                    mask=m.detach().cpu().numpy().astype(np.float32),
                    bbam=upsample(m.detach(), h, w).clamp(0, 1).cpu().numpy().astype(np.float32),
                    stride=strides[j],
                    n_positives=0 if pos.fallback else len(pos.proposals),
                    n_candidates=pos.n_candidates,
                    iou_threshold=pos.iou_threshold,
                    fallback=pos.fallback,
                    final_box_loss=last[j][0],
                    final_cls_loss=last[j][1],
                    history=history,
                )
            )
    return results


def explain(
    model: torch.nn.Module,
    tasks: Sequence[ObjectTask],
    cfg: BBAMConfig,
    mean: torch.Tensor,
    batch_size: int = 8,
    **kwargs: Any,
) -> list[ObjectResult]:
    """BBAMs of any number of objects: grouped by image size, ``batch_size`` objects at a time."""
    order = sorted(range(len(tasks)), key=lambda i: tuple(tasks[i].image.shape[-2:]))
    results: list[ObjectResult | None] = [None] * len(tasks)
    i = 0
    while i < len(order):
        size = tuple(tasks[order[i]].image.shape[-2:])
        group = [order[i]]
        while (
            len(group) < batch_size
            and i + len(group) < len(order)
            and tuple(tasks[order[i + len(group)]].image.shape[-2:]) == size
        ):
            group.append(order[i + len(group)])
        with frozen(model):
            pos = [prepare(model, tasks[k], cfg) for k in group]
        for k, r in zip(
            group, optimise(model, [tasks[k] for k in group], cfg, mean, pos, **kwargs), strict=True
        ):
            results[k] = r
        i += len(group)
    return [r for r in results if r is not None]
