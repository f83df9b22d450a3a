"""DeepLab-v2 for semantic segmentation: a dilated ResNet (output stride 8) and ASPP.

ASPP here is DeepLab-v2's (Chen et al., TPAMI 2018): four parallel 3x3 convolutions with dilation
rates 6, 12, 18, 24, each predicting the classes, summed. Logits are upsampled bilinearly to the
input size and trained with cross-entropy that ignores label 255.

Profiles (each scaled value stated beside the paper's):

``paper``
    BBAM's DeepLab-v2-ResNet-101: batch 8, 2.4e4 iterations, lr 2e-4 (SGD, momentum 0.9, weight
    decay 5e-4, poly decay with power 0.9, classifier at 10x lr), 321 px crops, rescale 0.5-1.5.
    ImageNet weights are used when present in the local torch cache (nothing is downloaded),
    otherwise it starts from scratch and says so.
``lite``
    The CPU profile for the synthetic set (160 px images): the detector's small GroupNorm ResNet
    (widths 32/64/128/256) with its last two stages dilated (output stride 8, like the paper's),
    rates 3/6/9/12 (paper 6/12/18/24 on 321 px crops: scaled by 160/321), 160 px crops (paper 321),
    rescale 0.75-1.25 (paper 0.5-1.5), AdamW lr 1e-3 with 50 warm-up iterations and weight decay
    1e-4 (paper SGD lr 2e-4, 5e-4), classifier at the backbone's rate (paper 10x), 1500 iterations
    of batch 8 (paper 2.4e4). Where the paper starts from ImageNet weights, the lite network starts
    from the backbone of the box detector (:func:`DeepLabV2.load_detector_backbone`; trained on the
    same images' boxes only, so no mask supervision leaks in): dilating a trained classification
    backbone is what DeepLab does, and from scratch 300 iterations on 100 images learned nothing
    but background here (mIoU 0.13).
``smoke``
    ``lite`` cut down for tests.

Multi-scale inputs with max fusion (DeepLab-v2's MSC) are not used.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bbam_lite.compat import import_torchvision
from bbam_lite.detector.model import BasicBlock, group_norm, imagenet_start, resnet_norm_layer
from bbam_lite.segment.seed_growing import IGNORE, SeedGrowing, grow_seeds
from bbam_lite.utils.profiles import profile_name

import_torchvision()

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class SemanticConfig:
    """Architecture and schedule of one semantic profile; stored in every checkpoint."""

    profile: str = "lite"
    backbone: str = "gn-small"  # gn-small | resnet101 | resnet50
    widths: tuple[int, ...] = (32, 64, 128, 256)  # the lite detector's, so its backbone can initialise
    aspp_rates: tuple[int, ...] = (3, 6, 9, 12)
    crop_size: int = 160
    scale_range: tuple[float, float] = (0.75, 1.25)
    iterations: int = 1500
    batch_size: int = 8
    lr: float = 1e-3
    head_lr_mult: float = 1.0
    optimizer: str = "adamw"  # adamw | sgd
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    warmup: int = 50
    grow: bool = False  # seed growing into the ignored pixels (on for the instance network)
    grow_start: float = 0.2
    grow_theta_fg: float = 0.99
    grow_theta_bg: float = 0.85
    checkpoint_every: int = 250
    eval_every: int = 500
    eval_images: int = 100

    def seed_growing(self) -> SeedGrowing:
        return SeedGrowing(self.grow, self.grow_start, self.grow_theta_fg, self.grow_theta_bg)


SEMANTIC_PROFILES: dict[str, SemanticConfig] = {
    "lite": SemanticConfig(),
    "smoke": SemanticConfig(
        profile="smoke",
        widths=(8, 8, 16, 16),
        aspp_rates=(1, 2),
        crop_size=64,
        iterations=4,
        batch_size=2,
        warmup=1,
        checkpoint_every=2,
        eval_every=4,
        eval_images=2,
    ),
    "paper": SemanticConfig(
        profile="paper",
        backbone="resnet101",
        aspp_rates=(6, 12, 18, 24),
        crop_size=321,
        scale_range=(0.5, 1.5),
        iterations=24000,
        batch_size=8,
        lr=2e-4,
        head_lr_mult=10.0,
        optimizer="sgd",
        weight_decay=5e-4,
        warmup=0,
        checkpoint_every=1000,
        eval_every=4000,
        eval_images=500,
    ),
}


def get_semantic_profile(name: str, **overrides: Any) -> SemanticConfig:
    name = profile_name(name, SEMANTIC_PROFILES)
    if name not in SEMANTIC_PROFILES:
        raise ValueError(f"unknown semantic profile {name!r}; choose one of {sorted(SEMANTIC_PROFILES)}")
    return replace(SEMANTIC_PROFILES[name], **overrides)


class ASPPv2(nn.Module):
    """DeepLab-v2's atrous spatial pyramid pooling: summed class predictions at several rates."""

    def __init__(self, in_channels: int, num_labels: int, rates: tuple[int, ...]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(in_channels, num_labels, 3, 1, r, dilation=r) for r in rates)
        for conv in self.branches:
            nn.init.normal_(conv.weight, 0.0, 0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([b(x) for b in self.branches]).sum(0)


class SmallDilatedResNet(nn.Module):
    """A 4-stage GroupNorm ResNet of output stride 8: strides 4, 8, then dilations 2 and 4."""

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        w0 = widths[0]
        self.stem = nn.Sequential(
            nn.Conv2d(3, w0, 3, 2, 1, bias=False),
            group_norm(w0),
            nn.ReLU(inplace=True),
            nn.Conv2d(w0, w0, 3, 2, 1, bias=False),
            group_norm(w0),
            nn.ReLU(inplace=True),
        )
        strides, dilations = (1, 2, 1, 1), (1, 1, 2, 4)
        stages, cin = [], w0
        for w, s, d in zip(widths, strides, dilations, strict=True):
            stages.append(nn.Sequential(BasicBlock(cin, w, s, d), BasicBlock(w, w, 1, d)))
            cin = w
        self.stages = nn.Sequential(*stages)
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


def _resnet_os8(name: str, norm: str | None = None) -> tuple[nn.Module, int]:
    """torchvision ResNet with layers 3 and 4 dilated (output stride 8), started as
    :func:`~bbam_lite.detector.model.imagenet_start` says."""
    from torchvision import models

    use, norm = imagenet_start(name, norm, "DeepLab")
    net = getattr(models, name)(
        weights=use, replace_stride_with_dilation=[False, True, True], norm_layer=resnet_norm_layer(norm)
    )
    body = nn.Sequential(
        net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4
    )
    return body, 2048


class DeepLabV2(nn.Module):
    """Backbone (output stride 8) + ASPP; ``forward`` maps images in [0, 1] to full-size logits."""

    def __init__(self, cfg: SemanticConfig, num_labels: int, norm: str | None = None) -> None:
        super().__init__()
        if cfg.backbone == "gn-small":
            self.backbone: nn.Module = SmallDilatedResNet(cfg.widths)
            channels = cfg.widths[-1]
        elif cfg.backbone in ("resnet50", "resnet101"):
            self.backbone, channels = _resnet_os8(cfg.backbone, norm)
        else:
            raise ValueError(f"unknown backbone {cfg.backbone!r}; choose gn-small, resnet50 or resnet101")
        self.aspp = ASPPv2(channels, num_labels, cfg.aspp_rates)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.aspp(self.backbone((images - self.mean) / self.std))
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)

    def load_detector_backbone(self, state: dict[str, torch.Tensor], source: str) -> None:
        """Initialise the backbone from a gn-small detector's (its stem and stages; dilation does
        not change a convolution's weights). The FPN and the detector's heads are not used."""
        if not isinstance(self.backbone, SmallDilatedResNet):
            raise ValueError(f"{source}: a detector can initialise only the gn-small DeepLab backbone")
        mine = self.backbone.state_dict()
        theirs = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
        missing = [k for k in mine if k not in theirs]
        wrong = [k for k in mine if k in theirs and theirs[k].shape != mine[k].shape]
        if missing or wrong:
            raise ValueError(
                f"{source}: detector backbone does not fit this DeepLab (missing {missing[:2]}, "
                f"other shapes {wrong[:2]}); the detector's widths must equal the semantic profile's"
            )
        self.backbone.load_state_dict({k: theirs[k].float() for k in mine})

    def param_groups(self, head_lr_mult: float) -> list[dict]:
        """Backbone at the base rate, the ASPP classifier at ``head_lr_mult`` times it (DeepLab-v2)."""
        back = [p for p in self.backbone.parameters() if p.requires_grad]
        return [
            {"params": back, "lr_mult": 1.0},
            {"params": list(self.aspp.parameters()), "lr_mult": head_lr_mult},
        ]


def build_semantic_model(cfg: SemanticConfig, num_classes: int, norm: str | None = None) -> DeepLabV2:
    """DeepLab-v2 for ``num_classes`` object classes plus background; ``norm``: the ResNet
    backbone's, as a checkpoint records it (None: chosen for training)."""
    return DeepLabV2(cfg, num_classes + 1, norm)


def semantic_loss(
    logits: torch.Tensor, target: torch.Tensor, growing: SeedGrowing | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy over the labelled pixels (255 ignored: those pixels get no gradient).

    With ``growing``, ignored pixels are first grown into from the network's own confident
    predictions (DSRG). Returns the loss and the counts of ignored and grown pixels.
    """
    ignored = int((target == IGNORE).sum())
    if growing is not None and ignored:
        probs = logits.detach().softmax(1)
        target = grow_seeds(target, probs, growing.thresholds(logits.shape[1], logits.device))
    grown = ignored - int((target == IGNORE).sum())
    if not (target != IGNORE).any():
        return logits.sum() * 0.0, {"ignored": ignored, "grown": grown}
    return F.cross_entropy(logits, target, ignore_index=IGNORE), {"ignored": ignored, "grown": grown}


@torch.no_grad()
def predict_semantic(model: DeepLabV2, images: list[torch.Tensor]) -> list[torch.Tensor]:
    """Class probabilities (C, H, W) for each image (3, H, W) in [0, 1], whole images at once."""
    model.eval()
    out = []
    for img in images:
        out.append(model(img[None]).softmax(1)[0])
    return out
