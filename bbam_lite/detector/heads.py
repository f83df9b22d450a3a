"""Differentiable access to the detector's two heads: the f_box and f_cls of the BBAM paper.

:class:`HeadForward` is the one forward of the heads: the detector's transform (normalise, resize,
pad), backbone, RoIAlign, box head and predictor on given proposals (bypassing the RPN), returning
for exactly those proposals the class-specific box-regression deltas, the class probabilities and
the decoded boxes, differentiable with respect to the input pixels. :func:`roi_head_outputs` runs it
on the detector's own modules; the BBAM engine (:mod:`bbam_lite.attribution.engine`) runs it on its
own copies (folded norms, bf16 weights, compiled backbone, grid RoIAlign) with a plan of the RoIs
made once for many passes. Inside :func:`frozen` the detector's weights do not require gradients,
so backward computes only what the pixels need.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bbam_lite.compat import import_torchvision
from bbam_lite.detector.roi_align import GridRoIAlign, setup_pooler

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


@dataclass
class RoIPlan:
    """Proposals of a batch of images, scaled to the detector's input, with their pooling plan."""

    scaled: list[torch.Tensor]  # per image (K_i, 4) in detector-input pixels
    image_sizes: list[tuple[int, int]]  # detector-input sizes before padding
    orig_size: tuple[int, int]
    pool: GridRoIAlign | None  # None: torchvision's pooler
    scale: float | None = None  # fixed image -> detector-input scale (a crop); None: the transform's rule


def input_scale(model: nn.Module, height: int, width: int) -> float:
    """The factor by which the detector's transform resizes an (height, width) image."""
    t = model.transform
    return min(float(t.min_size[-1]) / min(height, width), float(t.max_size) / max(height, width))


class HeadForward:
    """f_box and f_cls of a detector on given proposals, differentiable to the input pixels.

    By default the detector's own modules at their own precision; ``backbone``, ``box_head`` and
    ``box_predictor`` replace them (the engine's copies), ``dtype`` is the dtype of replaced
    weights cast once (the input and the pooled features are cast to it; outputs stay fp32),
    ``channels_last`` the input's memory format, ``grid_pool`` plans RoIAlign as
    :class:`~bbam_lite.detector.roi_align.GridRoIAlign` and ``autocast`` runs under bf16 autocast.
    """

    def __init__(
        self,
        model: FasterRCNN,
        device: torch.device | str | None = None,
        *,
        backbone: Callable[..., dict[str, torch.Tensor]] | None = None,
        box_head: nn.Module | None = None,
        box_predictor: nn.Module | None = None,
        dtype: torch.dtype | None = None,
        channels_last: bool = False,
        grid_pool: bool = False,
        autocast: bool = False,
    ) -> None:
        self.model = model
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.transform = model.transform
        self.pooler = model.roi_heads.box_roi_pool
        self.backbone = backbone if backbone is not None else model.backbone
        self.box_head = box_head if box_head is not None else model.roi_heads.box_head
        self.box_predictor = box_predictor if box_predictor is not None else model.roi_heads.box_predictor
        self.dtype = dtype
        self.channels_last = channels_last
        self.grid_pool = grid_pool
        self.bf16_autocast = autocast

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
        if self.channels_last:
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
        if self.grid_pool:
            if self.pooler.scales is None or self.pooler.map_levels is None:
                with torch.no_grad():  # a detector that never ran: let the pooler see feature sizes once
                    x = torch.zeros(1, 3, height, width, device=self.device)
                    setup_pooler(self.pooler, self.model.backbone(self.to_input(x, scale)), sizes[:1])
            pool = GridRoIAlign(self.pooler, scaled, sizes)
        return RoIPlan(scaled, sizes, (height, width), pool, scale)

    # -- forward -------------------------------------------------------------------------------
    def autocast(self) -> AbstractContextManager:
        """bf16 autocast where asked for (reduced precision without weights cast once)."""
        if not self.bf16_autocast:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def __call__(self, images: torch.Tensor, plan: RoIPlan, decode: bool = False) -> HeadOutputs:
        """Head outputs for ``plan``'s proposals on the (B, 3, H, W) images in [0, 1] (fp32 outputs;
        ``boxes`` empty unless ``decode``).

        With weights cast once (``dtype``), the input is cast after normalisation, RoIAlign samples
        the features in fp32 (as torchvision's op does under autocast) and the pooled features are
        cast back for the heads; the outputs stay fp32."""
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
        """One pass with decoded boxes, the plan made for it."""
        return self(images, self.plan(proposals, *images.shape[-2:], scale), decode=True)

    def decode(self, regression: torch.Tensor, plan: RoIPlan) -> torch.Tensor:
        """Decoded, clipped boxes (K, C+1, 4) in pixels of the original images."""
        heads = self.model.roi_heads
        n_cls = regression.shape[-1] // 4
        boxes = heads.box_coder.decode(regression, plan.scaled).reshape(-1, n_cls, 4)
        (h, w), (oh, ow) = plan.image_sizes[0], plan.orig_size
        boxes = box_ops.clip_boxes_to_image(boxes, (h, w))
        return boxes * boxes.new_tensor([ow / w, oh / h, ow / w, oh / h])


def roi_head_outputs(model: FasterRCNN, images: torch.Tensor, proposals: list[torch.Tensor]) -> HeadOutputs:
    """f_box and f_cls for ``proposals[i]`` (x1, y1, x2, y2 in pixels of ``images[i]``), through the
    detector's own modules (:class:`HeadForward`).

    ``images`` is a (B, 3, H, W) float batch in [0, 1]; gradients flow back to it. Outputs of all
    images are concatenated in the order of ``proposals``. Proposals may live on another device
    than the images (a box made on the CPU for an image on the GPU): they are moved to the images'.
    """
    if images.dim() != 4 or len(proposals) != images.shape[0]:
        raise ValueError("images must be (B, 3, H, W) with one proposal tensor per image")
    return HeadForward(model, images.device).outputs(images, proposals)


@torch.no_grad()
def detect(model: FasterRCNN, images: list[torch.Tensor], score_threshold: float = 0.0) -> list[dict]:
    """Plain inference: a list of {boxes, labels, scores} per image (float images in [0, 1])."""
    model.eval()
    outputs = model(images)
    if score_threshold > 0:
        outputs = [{k: v[o["scores"] >= score_threshold] for k, v in o.items()} for o in outputs]
    return outputs
