"""Differentiable access to the detector's two heads: the f_box and f_cls of the BBAM paper.

:func:`roi_head_outputs` runs the detector's own transform, backbone, RoIAlign, box head and
predictor on given proposals (bypassing the RPN), and returns for exactly those proposals the
class-specific box-regression deltas, the class probabilities and the decoded boxes, all
differentiable with respect to the input pixels. Inside :func:`frozen` the detector's weights
do not require gradients, so backward computes only what the pixels need.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from bbam_lite.compat import import_torchvision

import_torchvision()
from torchvision.models.detection import FasterRCNN  # noqa: E402
from torchvision.ops import boxes as box_ops  # noqa: E402


@dataclass
class HeadOutputs:
    """Outputs of the RoI heads for K proposals over C+1 classes (index 0 = background)."""

    deltas: torch.Tensor  # (K, C+1, 4) class-specific regression deltas t = (tx, ty, tw, th)
    probs: torch.Tensor  # (K, C+1) softmax class probabilities
    boxes: torch.Tensor  # (K, C+1, 4) deltas decoded on the proposals, in input-image pixels
    logits: torch.Tensor  # (K, C+1) class logits


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no weight gradients for the duration; the previous state is restored."""
    flags = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, f in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(f)
        model.train(was_training)


def roi_head_outputs(model: FasterRCNN, images: torch.Tensor, proposals: list[torch.Tensor]) -> HeadOutputs:
    """f_box and f_cls for ``proposals[i]`` (x1, y1, x2, y2 in pixels of ``images[i]``).

    ``images`` is a (B, 3, H, W) float batch in [0, 1]; gradients flow back to it. Outputs of all
    images are concatenated in the order of ``proposals``. Proposals may live on another device
    than the images (a box made on the CPU for an image on the GPU): they are moved to the images'.
    """
    if images.dim() != 4 or len(proposals) != images.shape[0]:
        raise ValueError("images must be (B, 3, H, W) with one proposal tensor per image")
    orig_size = images.shape[-2:]
    image_list, _ = model.transform(list(images))
    scaled = []
    for props, (h, w) in zip(proposals, image_list.image_sizes, strict=True):
        props = props.to(images.device)
        ratio = props.new_tensor([w / orig_size[1], h / orig_size[0], w / orig_size[1], h / orig_size[0]])
        scaled.append(props.to(images.dtype) * ratio)
    features = model.backbone(image_list.tensors)
    heads = model.roi_heads
    pooled = heads.box_roi_pool(features, scaled, image_list.image_sizes)
    logits, regression = heads.box_predictor(heads.box_head(pooled))
    n_cls = logits.shape[-1]
    deltas = regression.reshape(-1, n_cls, 4)
    boxes = heads.box_coder.decode(regression, scaled).reshape(-1, n_cls, 4)
    out_boxes = []
    start = 0
    for props, (h, w) in zip(scaled, image_list.image_sizes, strict=True):
        b = box_ops.clip_boxes_to_image(boxes[start : start + len(props)], (h, w))
        ratio = b.new_tensor([orig_size[1] / w, orig_size[0] / h, orig_size[1] / w, orig_size[0] / h])
        out_boxes.append(b * ratio)
        start += len(props)
    return HeadOutputs(deltas, torch.softmax(logits, -1), torch.cat(out_boxes), logits)


@torch.no_grad()
def detect(model: FasterRCNN, images: list[torch.Tensor], score_threshold: float = 0.0) -> list[dict]:
    """Plain inference: a list of {boxes, labels, scores} per image (float images in [0, 1])."""
    model.eval()
    outputs = model(images)
    if score_threshold > 0:
        outputs = [{k: v[o["scores"] >= score_threshold] for k, v in o.items()} for o in outputs]
    return outputs
