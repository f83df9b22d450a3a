"""Jittered proposals around a box and the positives of Eq. 3 (right class, regressed-box IoU > 0.8)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from bbam_lite.compat import import_torchvision
from bbam_lite.detector.heads import HeadOutputs, roi_head_outputs

import_torchvision()
from torchvision.ops import box_iou  # noqa: E402


def jitter_boxes(
    box: torch.Tensor,
    n: int,
    amount: float,
    height: int,
    width: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``n`` copies of ``box`` (x1, y1, x2, y2), each coordinate moved by up to ``amount`` of the
    box's width (x) or height (y), clipped to the image and kept at least one pixel wide.

    The proposals are returned on the CPU whatever the devices of ``box`` and ``generator`` (the
    draws are made on the generator's device): a CPU generator, as BBAM's ``task_generator``, gives
    the same proposals for an image on the CPU and on a GPU."""
    x1, y1, x2, y2 = box.tolist()
    w, h = x2 - x1, y2 - y1
    device = generator.device if generator is not None else "cpu"
    u = torch.rand(n, 4, generator=generator, dtype=torch.float64, device=device).cpu() * 2 - 1
    scale = torch.tensor([w, h, w, h], dtype=torch.float64) * amount
    out = torch.tensor([x1, y1, x2, y2], dtype=torch.float64) + u * scale
    out[:, [0, 2]] = out[:, [0, 2]].clamp(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clamp(0, height)
    out[:, 2] = torch.maximum(out[:, 2], out[:, 0] + 1).clamp(max=width)
    out[:, 0] = torch.minimum(out[:, 0], out[:, 2] - 1)
    out[:, 3] = torch.maximum(out[:, 3], out[:, 1] + 1).clamp(max=height)
    out[:, 1] = torch.minimum(out[:, 1], out[:, 3] - 1)
    return out.float()


@dataclass
class Positives:
    """The proposals BBAM optimises over for one object, with their clean-image targets."""

    proposals: torch.Tensor  # (P, 4)
    target_deltas: torch.Tensor  # (P, 4): t^c, class-specific deltas for the object's class
    target_probs: torch.Tensor  # (P, C+1): p^c
    pred_boxes: torch.Tensor  # (P, 4): regressed boxes for the object's class
    iou_threshold: float  # the threshold that selected them (nan for the fallback)
    n_candidates: int  # jittered proposals tried
    fallback: str | None = None  # why the positives are not Eq. 3's, if they are not


def positive_mask(out: HeadOutputs, box: torch.Tensor, label: int, threshold: float) -> torch.Tensor:
    """Eq. 3's test: the cls head's argmax is ``label`` and the regressed box has IoU > threshold."""
    right_class = out.probs.argmax(-1) == label
    iou = box_iou(out.boxes[:, label], box[None].to(out.boxes))[:, 0]
    return right_class & (iou > threshold)


@torch.no_grad()
def select_positives(
    model: torch.nn.Module,
    image: torch.Tensor,
    box: torch.Tensor,
    label: int,
    n_jitter: int,
    jitter: float,
    thresholds: tuple[float, ...] = (0.8,),
    min_positives: int = 0,
    max_positives: int | None = None,
    generator: torch.Generator | None = None,
    heads: Callable[[torch.Tensor, list[torch.Tensor]], HeadOutputs] | None = None,
) -> Positives:
    """Jitter ``box``, run both heads once on the clean image, keep the positives.

    Thresholds are tried in order; the first that yields more than ``min_positives`` positives is
    used (the paper: one threshold, 0.8; the authors' code: 0.9, 0.85, 0.8 until more than 100).
    When no proposal passes, the box itself becomes the only proposal and ``fallback`` says so:
    the map is then explained for the detector's output on the annotated box, whatever its class.
    ``heads(images, proposals)`` runs the two heads (default: ``roi_head_outputs`` on ``model``).
    """
    if heads is None:
        heads = partial(roi_head_outputs, model)
    h, w = image.shape[-2:]
    props = jitter_boxes(box, n_jitter, jitter, h, w, generator).to(image.device)
    out = heads(image[None], [props])
    keep, used = None, float("nan")
    for thr in thresholds:
        keep = positive_mask(out, box, label, thr)
        used = thr
        if int(keep.sum()) > min_positives:
            break
    idx = torch.nonzero(keep).flatten() if keep is not None else torch.zeros(0, dtype=torch.long)
    if max_positives is not None and len(idx) > max_positives:
        idx = idx[:max_positives]
    if len(idx) == 0:
        own = heads(image[None], [box[None].to(image)])
        return Positives(
            box[None].to(image),
            own.deltas[:, label],
            own.probs,
            own.boxes[:, label],
            float("nan"),
            n_jitter,
            fallback="no-positive-proposal:annotated-box-used",
        )
    return Positives(
        props[idx], out.deltas[idx, label], out.probs[idx], out.boxes[idx, label], used, n_jitter
    )
