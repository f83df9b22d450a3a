"""What the detector's two heads return for proposals jittered around a box (chapter 3 of the book),
and the training curve a detector was shipped or trained with."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bbam_lite.attribution.proposals import jitter_boxes, positive_mask
from bbam_lite.compat import import_torchvision
from bbam_lite.detector.heads import frozen, roi_head_outputs

import_torchvision()
from torchvision.ops import box_iou  # noqa: E402


@dataclass
class HeadProbe:
    """Per jittered proposal: the proposal, f_box's regressed box for the object's class, f_cls's
    probabilities, and Eq. 3's verdict. IoUs are with the object's box."""

    box: np.ndarray  # (4,) the object's box
    label: int
    proposals: np.ndarray  # (n, 4)
    proposal_iou: np.ndarray  # (n,)
    regressed: np.ndarray  # (n, 4) f_box decoded for class ``label``
    regressed_iou: np.ndarray  # (n,)
    class_prob: np.ndarray  # (n,) f_cls probability of class ``label``
    predicted: np.ndarray  # (n,) argmax class of f_cls (0 = background)
    positive: np.ndarray  # (n,) right class and regressed IoU > threshold (Eq. 3)


@torch.no_grad()
def probe_heads(
    model: torch.nn.Module,
    image: torch.Tensor,
    box: torch.Tensor,
    label: int,
    n: int = 200,
    amount: float = 0.3,
    threshold: float = 0.8,
    generator: torch.Generator | None = None,
) -> HeadProbe:
    """Jitter ``box`` ``n`` times by up to ``amount`` of its size and run both heads on the clean image."""
    h, w = image.shape[-2:]
    props = jitter_boxes(box, n, amount, h, w, generator).to(image.device)
    with frozen(model):
        out = roi_head_outputs(model, image[None], [props])
    target = box[None].to(props)
    regressed = out.boxes[:, label]
    return HeadProbe(
        box=box.cpu().numpy().astype(np.float32),
        label=int(label),
        proposals=props.cpu().numpy(),
        proposal_iou=box_iou(props, target)[:, 0].cpu().numpy(),
        regressed=regressed.cpu().numpy(),
        regressed_iou=box_iou(regressed, target)[:, 0].cpu().numpy(),
        class_prob=out.probs[:, label].cpu().numpy(),
        predicted=out.probs.argmax(-1).cpu().numpy(),
        positive=positive_mask(out, box.to(props), label, threshold).cpu().numpy(),
    )


def checkpoint_id(detector_path: Path) -> str:
    """A short hash of a checkpoint's bytes: a cache key that changes when the weights do (a
    detector replaced under the same file name must not reuse results of the old one)."""
    return hashlib.sha256(Path(detector_path).read_bytes()).hexdigest()[:16]


def detector_card(detector_path: Path) -> dict:
    """What a detector was made with: the shipped detector's card (``<name>.json`` beside the
    checkpoint: command, seed, machine, time, AP, ``training_log``) or a training run's
    ``detector_metrics.json`` (AP, time, ``log``). Empty when neither exists."""
    path = Path(detector_path)
    for candidate in (path.with_suffix(".json"), path.parent / "detector_metrics.json"):
        if candidate.is_file():
            data = json.loads(candidate.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                return data
    return {}


def training_log(detector_path: Path) -> list[dict]:
    """The validation log of a detector, from :func:`detector_card` (key ``training_log`` of a card,
    ``log`` of a run); empty when there is none."""
    card = detector_card(detector_path)
    log = card.get("training_log", card.get("log", []))
    return log if isinstance(log, list) else []
