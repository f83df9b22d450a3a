"""Mask R-CNN (torchvision) whose mask loss skips the ignore regions, with DSRG seed growing.

The network is the detector of :mod:`bbam_lite.detector.model` (same backbone, RPN and box head,
same profiles) plus torchvision's mask branch (RoIAlign 14 x 14, conv head, 28 x 28 masks). Two
things differ from torchvision. Training: :class:`IgnoreAwareRoIHeads` computes the mask loss over
the pixels a pseudo label decides. A target mask is uint8: 1 object, 0 background, 255 ignore; the
object and the ignore maps are projected onto each positive RoI (:func:`project_on_boxes`); a
mask-grid cell is ignored when at least half of it is ignored, else object when at least half of it
is object; with seed growing (:mod:`.seed_growing`) the ignored cells take the network's confident
predictions. Pooling: both FPN poolers compute torchvision's RoIAlign with ``grid_sample``
(:class:`GridMultiScaleRoIAlign`), the same features in less time on a CPU-only torch.

Profiles (:data:`INSTANCE_PROFILES`):

``paper``
    BBAM's VOC settings: ResNet-101-FPN, image min/max size 512/800, anchors 21/42/84/168/332,
    lr 8e-3 (SGD), 2e4 iterations, batch 8, torchvision's mask head (4 x 256 channels).
``lite``
    The detector's lite profile (small GroupNorm ResNet-FPN, 160-256 px, anchors 16-192; paper
    512/800 px, 21-332) with a 2 x 64-channel mask head (paper 4 x 256), 600 iterations of batch 4
    (paper 2e4 of 8), AdamW lr 5e-4 with 50 warm-up iterations and cosine decay (paper SGD 8e-3).
    On synthetic data it starts from the shipped box detector (trained on the same boxes; only
    the mask branch starts from scratch), because a from-scratch detector needs hours on a CPU.
``smoke``
    The detector's smoke profile with a tiny mask head, for tests.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bbam_lite.compat import import_torchvision
from bbam_lite.detector.model import PROFILES, DetectorConfig, build_detector
from bbam_lite.detector.roi_align import multiscale_roi_align, roi_align_image
from bbam_lite.segment.seed_growing import IGNORE, SeedGrowing, grow_seeds
from bbam_lite.utils.profiles import profile_name

import_torchvision()
from torchvision.models.detection import FasterRCNN  # noqa: E402
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor  # noqa: E402
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss  # noqa: E402
from torchvision.ops import MultiScaleRoIAlign  # noqa: E402


@dataclass(frozen=True)
class InstanceConfig(DetectorConfig):
    """A detector profile plus the mask branch and seed growing; stored in every checkpoint."""

    mask_layers: tuple[int, ...] = (64, 64)
    mask_dim_reduced: int = 64
    grow: bool = True
    grow_start: float = 0.2
    grow_theta_fg: float = 0.99
    grow_theta_bg: float = 0.85

    def seed_growing(self) -> SeedGrowing:
        return SeedGrowing(self.grow, self.grow_start, self.grow_theta_fg, self.grow_theta_bg)


def _from_detector(name: str, **overrides: Any) -> InstanceConfig:
    return InstanceConfig(**{**asdict(PROFILES[name]), **overrides})


INSTANCE_PROFILES: dict[str, InstanceConfig] = {
    "lite": _from_detector(
        "lite",
        iterations=600,
        batch_size=4,
        lr=5e-4,
        warmup=50,
        checkpoint_every=100,
        eval_every=600,
        eval_images=100,
    ),
    "smoke": _from_detector("smoke", mask_layers=(8,), mask_dim_reduced=8),
    "paper": _from_detector(
        "paper",
        min_size=512,
        max_size=800,
        anchor_sizes=(21, 42, 84, 168, 332),
        lr=8e-3,
        iterations=20000,
        batch_size=8,
        mask_layers=(256, 256, 256, 256),
        mask_dim_reduced=256,
        checkpoint_every=1000,
        eval_every=5000,
        eval_images=500,
    ),
}


def get_instance_profile(name: str, **overrides: Any) -> InstanceConfig:
    name = profile_name(name, INSTANCE_PROFILES)
    if name not in INSTANCE_PROFILES:
        raise ValueError(f"unknown instance profile {name!r}; choose one of {sorted(INSTANCE_PROFILES)}")
    return replace(INSTANCE_PROFILES[name], **overrides)


def project_on_boxes(
    masks: torch.Tensor, boxes: torch.Tensor, matched: torch.Tensor, size: int, sampling_ratio: int = 2
) -> torch.Tensor:
    """Each box's view of its matched mask, RoIAligned to ``size`` x ``size`` (values in [0, 1]).

    ``masks`` (N, C, H, W) float, ``boxes`` (K, 4) x1 y1 x2 y2, ``matched`` (K,) mask index per box.
    torchvision's own projection (RoIAlign with an adaptive sampling ratio) runs in Python on a
    CPU-only torch and took minutes per batch here; this is RoIAlign with a fixed sampling ratio
    through :func:`bbam_lite.detector.roi_align.roi_align_image` (one ``grid_sample`` per mask), in
    the "aligned" convention (torchvision's projection samples half a pixel off; at 28 x 28 on small
    objects that shifts an ignore band by a whole cell).
    """
    out = masks.new_zeros((len(boxes), masks.shape[1], size, size))
    shifted = boxes - 0.5  # RoIAlign "aligned": pixel i covers [i, i + 1], as the boxes' coordinates
    for j in matched.unique().tolist():
        sel = torch.where(matched == j)[0]
        out[sel] = roi_align_image(masks[j], shifted[sel], (size, size), 1.0, sampling_ratio)
    return out


def ignore_aware_mask_loss(
    mask_logits: torch.Tensor,
    proposals: list[torch.Tensor],
    gt_masks: list[torch.Tensor],
    gt_labels: list[torch.Tensor],
    matched_idxs: list[torch.Tensor],
    growing: SeedGrowing | None = None,
) -> tuple[torch.Tensor, dict[str, int]]:
    """Binary cross-entropy of each positive RoI's class mask over its decided cells only.

    ``gt_masks`` are uint8 (N, H, W) per image: 1 object, 0 background, 255 ignore. Ignored cells
    contribute nothing (no gradient); with ``growing`` they first take confident predictions.
    Returns the loss and the counts of ignored and grown cells.
    """
    size = mask_logits.shape[-1]
    labels = torch.cat([g[i] for g, i in zip(gt_labels, matched_idxs, strict=True)])
    if labels.numel() == 0:
        return mask_logits.sum() * 0.0, {"ignored": 0, "grown": 0}
    projected = torch.cat(
        [
            project_on_boxes(torch.stack([m == 1, m == IGNORE], 1).float(), p, i, size)
            for m, p, i in zip(gt_masks, proposals, matched_idxs, strict=True)
        ]
    )
    fg, ign = projected[:, 0], projected[:, 1]
    logits = mask_logits[torch.arange(labels.shape[0], device=labels.device), labels]
    target = (fg >= 0.5).long()
    target[ign >= 0.5] = IGNORE
    ignored = int((target == IGNORE).sum())
    if growing is not None and ignored:
        p = logits.detach().sigmoid()
        target = grow_seeds(target, torch.stack([1 - p, p], 1), growing.thresholds(2, logits.device))
    valid = target != IGNORE
    stats = {"ignored": ignored, "grown": ignored - int((~valid).sum())}
    if not valid.any():
        return logits.sum() * 0.0, stats
    return F.binary_cross_entropy_with_logits(logits[valid], target[valid].float()), stats


class IgnoreAwareRoIHeads(RoIHeads):
    """torchvision's RoI heads with masks; in training, the mask loss is :func:`ignore_aware_mask_loss`.

    Set ``growing`` (a :class:`SeedGrowing`, or None) before a training step to grow seeds in it;
    ``last_stats`` holds the ignored / grown cell counts of the last step.
    """

    def __init__(
        self, box_heads: RoIHeads, mask_roi_pool: nn.Module, mask_head: nn.Module, mask_predictor: nn.Module
    ):
        super().__init__(
            box_heads.box_roi_pool,
            box_heads.box_head,
            box_heads.box_predictor,
            box_heads.proposal_matcher.high_threshold,
            box_heads.proposal_matcher.low_threshold,
            box_heads.fg_bg_sampler.batch_size_per_image,
            box_heads.fg_bg_sampler.positive_fraction,
            box_heads.box_coder.weights,
            box_heads.score_thresh,
            box_heads.nms_thresh,
            box_heads.detections_per_img,
            mask_roi_pool=mask_roi_pool,
            mask_head=mask_head,
            mask_predictor=mask_predictor,
        )
        self.growing: SeedGrowing | None = None
        self.last_stats: dict[str, int] = {"ignored": 0, "grown": 0}

    def forward(self, features, proposals, image_shapes, targets=None):  # noqa: ANN001 (torchvision's signature)
        if not self.training:
            return super().forward(features, proposals, image_shapes, targets)
        proposals, matched_idxs, labels, regression_targets = self.select_training_samples(proposals, targets)
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)
        loss_classifier, loss_box_reg = fastrcnn_loss(
            class_logits, box_regression, labels, regression_targets
        )
        positive = [torch.where(lab > 0)[0] for lab in labels]
        mask_proposals = [p[i] for p, i in zip(proposals, positive, strict=True)]
        pos_matched = [m[i] for m, i in zip(matched_idxs, positive, strict=True)]
        mask_features = self.mask_head(self.mask_roi_pool(features, mask_proposals, image_shapes))
        mask_logits = self.mask_predictor(mask_features)
        loss_mask, self.last_stats = ignore_aware_mask_loss(
            mask_logits,
            mask_proposals,
            [t["masks"] for t in targets],
            [t["labels"] for t in targets],
            pos_matched,
            self.growing,
        )
        losses = {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg, "loss_mask": loss_mask}
        return [], losses


class GridMultiScaleRoIAlign(MultiScaleRoIAlign):
    """torchvision's FPN pooler computed with :func:`bbam_lite.detector.roi_align.multiscale_roi_align`
    (``grid_sample``): the same features, and on a CPU-only torch a third less time per training
    iteration than torchvision's Python RoIAlign (1.0 vs 1.5 s at batch 4 in the lite profile)."""

    def forward(self, x, boxes, image_shapes):  # noqa: ANN001 (torchvision's signature)
        return multiscale_roi_align(self, x, boxes, image_shapes)


def _grid_pooler(pooler: MultiScaleRoIAlign) -> GridMultiScaleRoIAlign:
    return GridMultiScaleRoIAlign(pooler.featmap_names, pooler.output_size, pooler.sampling_ratio)


def build_instance_model(cfg: InstanceConfig, num_classes: int, norm: str | None = None) -> FasterRCNN:
    """Mask R-CNN: :func:`build_detector`'s network (``norm`` as there) with a mask branch and
    ignore-aware RoI heads."""
    model = build_detector(cfg, num_classes, norm)
    channels = model.backbone.out_channels
    model.roi_heads.box_roi_pool = _grid_pooler(model.roi_heads.box_roi_pool)
    model.roi_heads = IgnoreAwareRoIHeads(
        model.roi_heads,
        GridMultiScaleRoIAlign(["0", "1", "2", "3"], output_size=14, sampling_ratio=cfg.sampling_ratio),
        MaskRCNNHeads(channels, list(cfg.mask_layers), dilation=1),
        MaskRCNNPredictor(cfg.mask_layers[-1], cfg.mask_dim_reduced, num_classes + 1),
    )
    return model


def load_detector_weights(model: FasterRCNN, state: dict[str, torch.Tensor], source: str) -> None:
    """Start a Mask R-CNN from a box detector's weights (everything but the mask branch)."""
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes differ: another profile or class list
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise ValueError(f"{source}: detector weights do not fit this Mask R-CNN ({lines[-1]})") from None
    foreign = [k for k in missing if not k.startswith(("roi_heads.mask_head", "roi_heads.mask_predictor"))]
    if foreign or unexpected:
        raise ValueError(
            f"{source}: detector weights do not fit this Mask R-CNN "
            f"(missing {foreign[:3]}, unexpected {list(unexpected)[:3]}); same profile needed"
        )


@torch.no_grad()
def predict_instances(model: FasterRCNN, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """Per image: boxes, labels, scores and mask probabilities (n, H, W) at the image's size."""
    model.eval()
    out = model(images)
    return [{**o, "masks": o["masks"][:, 0]} for o in out]
