"""Faster R-CNN (torchvision) in named profiles, and its checkpoint format.

Profiles:

``lite``
    The CPU profile (this project's default, for the synthetic set): a small residual CNN with
    GroupNorm (trainable from scratch with small batches), an FPN, 160-256 px input, fewer RPN
    proposals and sampled RoIs, RoIAlign ``sampling_ratio`` 1 (its backward dominates CPU time).
``smoke``
    ``lite`` cut down further, for tests: a few iterations, narrower layers.
``paper``
    The paper's detector for GPUs: ResNet-101-FPN, 800 px shorter side (max 1333), torchvision's
    default RPN/RoI settings. ``paper-r50`` is the same with ResNet-50. ImageNet (or COCO) weights
    are used when present in the local torch cache; otherwise training starts from scratch and says
    so once.

A checkpoint is a plain dict (``config``, ``class_names``, ``state_dict``, ``meta`` and
``architecture``: what the network was built with beyond its config, i.e. the backbone's norm) that
loads with ``torch.load(..., weights_only=True)``. Checkpoints without ``architecture`` (made before
it was recorded) have the norm read from their weights.

:func:`load_detector` also takes a torchvision Faster R-CNN (an instance, or
``torchvision:ARCH:WEIGHTS``; :mod:`bbam_lite.detector.torchvision_models`) and matches its classes
to the dataset's (:mod:`bbam_lite.detector.classes`).
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bbam_lite.compat import import_torchvision
from bbam_lite.utils.checkpoints import CheckpointError, mismatch, read_checkpoint
from bbam_lite.utils.io import atomic_save
from bbam_lite.utils.profiles import profile_name

tv = import_torchvision()
from torchvision.models.detection import FasterRCNN  # noqa: E402
from torchvision.models.detection.anchor_utils import AnchorGenerator  # noqa: E402
from torchvision.models.detection.faster_rcnn import TwoMLPHead  # noqa: E402
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign  # noqa: E402
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool  # noqa: E402


@dataclass(frozen=True)
class DetectorConfig:
    """Architecture and training schedule of one profile; stored in every checkpoint."""

    profile: str = "lite"
    backbone: str = "gn-small"  # gn-small | resnet50 | resnet101
    widths: tuple[int, ...] = (32, 64, 128, 256)
    fpn_channels: int = 96
    representation_size: int = 512
    min_size: int = 160
    max_size: int = 256
    anchor_sizes: tuple[int, ...] = (16, 32, 64, 128, 192)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_pre_nms_top_n_train: int = 600
    rpn_post_nms_top_n_train: int = 300
    rpn_pre_nms_top_n_test: int = 300
    rpn_post_nms_top_n_test: int = 150
    rpn_batch_size_per_image: int = 128
    box_batch_size_per_image: int = 128
    box_detections_per_img: int = 50
    sampling_ratio: int = 1
    # training schedule
    iterations: int = 3000
    batch_size: int = 8
    lr: float = 1.5e-3
    weight_decay: float = 1e-4
    warmup: int = 300
    optimizer: str = "adamw"  # adamw | sgd
    checkpoint_every: int = 250
    eval_every: int = 250
    eval_images: int = 100


PROFILES: dict[str, DetectorConfig] = {
    "lite": DetectorConfig(),
    "smoke": DetectorConfig(
        profile="smoke",
        widths=(8, 16, 32, 32),
        fpn_channels=32,
        representation_size=64,
        rpn_pre_nms_top_n_train=200,
        rpn_post_nms_top_n_train=100,
        rpn_pre_nms_top_n_test=100,
        rpn_post_nms_top_n_test=50,
        rpn_batch_size_per_image=64,
        box_batch_size_per_image=32,
        iterations=6,
        batch_size=2,
        warmup=2,
        checkpoint_every=3,
        eval_every=6,
        eval_images=4,
    ),
    "paper": DetectorConfig(
        profile="paper",
        backbone="resnet101",
        fpn_channels=256,
        representation_size=1024,
        min_size=800,
        max_size=1333,
        anchor_sizes=(32, 64, 128, 256, 512),
        rpn_pre_nms_top_n_train=2000,
        rpn_post_nms_top_n_train=2000,
        rpn_pre_nms_top_n_test=1000,
        rpn_post_nms_top_n_test=1000,
        rpn_batch_size_per_image=256,
        box_batch_size_per_image=512,
        box_detections_per_img=100,
        sampling_ratio=2,
        iterations=30000,
        batch_size=8,
        lr=0.01,
        weight_decay=1e-4,
        warmup=500,
        optimizer="sgd",
        checkpoint_every=1000,
        eval_every=5000,
        eval_images=500,
    ),
}
PROFILES["paper-r50"] = replace(PROFILES["paper"], profile="paper-r50", backbone="resnet50")


def get_profile(name: str, **overrides: Any) -> DetectorConfig:
    name = profile_name(name, PROFILES)  # full: the paper's scale, as labels and notebooks call it
    if name not in PROFILES:
        raise ValueError(f"unknown detector profile {name!r}; choose one of {sorted(PROFILES)}")
    return replace(PROFILES[name], **overrides)


# --------------------------------------------------------------------------------------------
# The small CPU backbone.


def group_norm(channels: int) -> nn.GroupNorm:
    """The GroupNorm of the small backbones (at most 8 groups of at least 4 channels)."""
    return nn.GroupNorm(min(8, channels // 4), channels)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with GroupNorm and a skip; ``dilation`` > 1 for DeepLab-style stages."""

    def __init__(self, cin: int, cout: int, stride: int, dilation: int = 1) -> None:
        super().__init__()
        d = dilation
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, d, dilation=d, bias=False)
        self.n1 = group_norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, d, dilation=d, bias=False)
        self.n2 = group_norm(cout)
        self.skip = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), group_norm(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.n1(self.conv1(x)))
        return torch.relu(self.n2(self.conv2(y)) + self.skip(x))


class SmallBackboneFPN(nn.Module):
    """A 4-stage residual CNN (strides 4, 8, 16, 32) with GroupNorm, plus an FPN and a pool level."""

    def __init__(self, widths: tuple[int, ...], out_channels: int) -> None:
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
        stages, cin = [], w0
        for i, w in enumerate(widths):
            stages.append(nn.Sequential(BasicBlock(cin, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)))
            cin = w
        self.stages = nn.ModuleList(stages)
        self.fpn = FeaturePyramidNetwork(
            list(widths), out_channels, extra_blocks=LastLevelMaxPool(), norm_layer=group_norm
        )
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        x = self.stem(x)
        feats = OrderedDict()
        for i, stage in enumerate(self.stages):
            x = stage(x)
            feats[str(i)] = x
        return self.fpn(feats)


def in_torch_cache(weights: Any) -> bool:
    """Whether torchvision weights are already in the local torch cache (nothing is downloaded)."""
    import os

    filename = os.path.basename(weights.url)
    return (Path(torch.hub.get_dir()) / "checkpoints" / filename).is_file()


#: The backbone norms a checkpoint records (``architecture["norm"]``) and the layers they build.
NORMS = ("group_norm", "frozen_batch_norm", "batch_norm")

_SCRATCH_WARNED: set[str] = set()  # the networks warned about (once each per process)


def imagenet_start(backbone: str, norm: str | None, network: str) -> tuple[Any, str]:
    """How a ResNet ``backbone`` (resnet50 | resnet101) of ``network`` starts: ``(weights, norm)``.

    ``norm`` None (training): ImageNet weights with frozen norms when they are in the torch cache,
    otherwise no weights and trainable norms, with one warning per network; a recorded ``norm``
    (loading a checkpoint): that norm, no pretrained weights (the checkpoint brings them)."""
    from torchvision.models import ResNet50_Weights, ResNet101_Weights

    if norm is not None:
        return None, norm
    weights = (ResNet101_Weights if backbone == "resnet101" else ResNet50_Weights).IMAGENET1K_V1
    use = weights if in_torch_cache(weights) else None
    if use is None and network not in _SCRATCH_WARNED:
        warnings.warn(
            f"no pretrained {backbone} weights in the torch cache ({torch.hub.get_dir()}); "
            f"{network} starts from scratch",
            stacklevel=4,
        )
        _SCRATCH_WARNED.add(network)
    return use, "frozen_batch_norm" if use else "batch_norm"


def _resnet_fpn(cfg: DetectorConfig, norm: str | None) -> nn.Module:
    """A ResNet-FPN backbone started as :func:`imagenet_start` says."""
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    use, norm = imagenet_start(cfg.backbone, norm, "training")
    return resnet_fpn_backbone(
        backbone_name=cfg.backbone,
        weights=use,
        trainable_layers=3 if use else 5,
        norm_layer=resnet_norm_layer(norm),
    )


def resnet_norm_layer(norm: str) -> type[nn.Module]:
    """The norm class of a ResNet backbone built with ``norm`` (``frozen_batch_norm`` or ``batch_norm``)."""
    return tv.ops.misc.FrozenBatchNorm2d if norm == "frozen_batch_norm" else nn.BatchNorm2d


def build_detector(cfg: DetectorConfig, num_classes: int, norm: str | None = None) -> FasterRCNN:
    """A torchvision Faster R-CNN for ``num_classes`` object classes (background added).

    ``norm`` (one of :data:`NORMS`, as a checkpoint records it) fixes the ResNet backbones' norm;
    None picks it for training (see :func:`_resnet_fpn`). The small backbone always uses GroupNorm.
    """
    if norm is not None and norm not in NORMS:
        raise ValueError(f"unknown backbone norm {norm!r}; choose one of {NORMS}")
    if cfg.backbone == "gn-small":
        backbone = SmallBackboneFPN(cfg.widths, cfg.fpn_channels)
    elif cfg.backbone in ("resnet50", "resnet101"):
        backbone = _resnet_fpn(cfg, norm)
    else:
        raise ValueError(f"unknown backbone {cfg.backbone!r}")
    names = ["0", "1", "2", "3"]
    anchor_gen = AnchorGenerator(
        tuple((s,) for s in cfg.anchor_sizes), (tuple(cfg.aspect_ratios),) * len(cfg.anchor_sizes)
    )
    roi_pool = MultiScaleRoIAlign(names, output_size=7, sampling_ratio=cfg.sampling_ratio)
    box_head = TwoMLPHead(backbone.out_channels * 7 * 7, cfg.representation_size)
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

    return FasterRCNN(
        backbone,
        num_classes=None,
        min_size=cfg.min_size,
        max_size=cfg.max_size,
        rpn_anchor_generator=anchor_gen,
        rpn_pre_nms_top_n_train=cfg.rpn_pre_nms_top_n_train,
        rpn_post_nms_top_n_train=cfg.rpn_post_nms_top_n_train,
        rpn_pre_nms_top_n_test=cfg.rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_test=cfg.rpn_post_nms_top_n_test,
        rpn_batch_size_per_image=cfg.rpn_batch_size_per_image,
        box_roi_pool=roi_pool,
        box_head=box_head,
        box_predictor=FastRCNNPredictor(cfg.representation_size, num_classes + 1),
        box_batch_size_per_image=cfg.box_batch_size_per_image,
        box_detections_per_img=cfg.box_detections_per_img,
    )


# --------------------------------------------------------------------------------------------
# Checkpoints.


def backbone_norm(model: nn.Module) -> str:
    """The norm (one of :data:`NORMS`) of a detector's backbone."""
    for m in model.backbone.modules():
        if isinstance(m, tv.ops.misc.FrozenBatchNorm2d):
            return "frozen_batch_norm"
        if isinstance(m, nn.BatchNorm2d):
            return "batch_norm"
    return "group_norm"


def norm_of_weights(state_dict: Mapping[str, torch.Tensor]) -> str:
    """The backbone norm a state dict was saved from (checkpoints that do not record it): BatchNorm2d
    keeps ``num_batches_tracked``, FrozenBatchNorm2d running statistics only, GroupNorm neither."""
    keys = [k for k in state_dict if k.startswith("backbone.")]
    if any(k.endswith(".num_batches_tracked") for k in keys):
        return "batch_norm"
    if any(k.endswith(".running_mean") for k in keys):
        return "frozen_batch_norm"
    return "group_norm"


def architecture_of(model: nn.Module) -> dict:
    """What a checkpoint records of a network beyond its config: its backbone's norm."""
    return {"norm": backbone_norm(model)}


def norm_from_checkpoint(path: Path, payload: dict) -> str:
    """The backbone norm a checkpoint records (``architecture``), or, for one made before it was
    recorded, the norm its weights were saved from."""
    norm = dict(payload.get("architecture") or {}).get("norm") or norm_of_weights(payload["state_dict"])
    if norm not in NORMS:
        raise CheckpointError(f"{path}: unknown backbone norm {norm!r} (known: {', '.join(NORMS)})")
    return norm


def save_detector(
    path: Path, model: nn.Module, cfg: DetectorConfig, class_names: list[str], meta: dict
) -> None:
    """Write a detector checkpoint atomically (fp32 weights, config, class names, the backbone's norm,
    metadata)."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {
        "config": asdict(cfg),
        "class_names": list(class_names),
        "state_dict": state,
        "meta": meta,
        "architecture": architecture_of(model),
    }
    atomic_save(Path(path), lambda tmp: torch.save(payload, tmp))


def config_from_dict(d: dict, cls: type = DetectorConfig) -> Any:
    """A config dataclass (``cls``) from a checkpoint's dict: unknown keys dropped, lists -> tuples."""
    known = {f.name for f in fields(cls)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known}
    return cls(**values)


@dataclass
class LoadedDetector:
    """A detector ready for BBAM: outputs indexed by ``class_names`` (background first).

    ``config`` is None for a torchvision model; ``provenance`` is what a labels folder records of it.
    """

    model: FasterRCNN
    config: DetectorConfig | None
    class_names: list[str]
    meta: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)


#: What ``--detector`` expects, for messages.
EXPECTED = "a bbam-lite detector checkpoint (train-detector's detector.pt) or torchvision:ARCH:WEIGHTS"


def load_detector(
    spec: Path | str | FasterRCNN,
    device: str | torch.device = "cpu",
    class_names: Sequence[str] | None = None,
    class_map: str | Mapping[str, str] | None = None,
    detector_classes: Sequence[str] | None = None,
) -> LoadedDetector:
    """A detector from a bbam-lite checkpoint path, a torchvision ``FasterRCNN`` instance, or the
    string ``torchvision:ARCH:WEIGHTS`` (a local state-dict file; nothing is downloaded).

    ``class_names`` (the dataset's, background first): a checkpoint must have been trained for
    exactly these; a torchvision model's classes (``detector_classes``, default COCO's from
    torchvision's weights metadata) are matched to them by name, synonyms and ``class_map``
    (:mod:`bbam_lite.detector.classes`), and its outputs re-indexed to the dataset's order. An
    instance is copied, never modified. Files load with ``weights_only=True``; every failure is a
    one-line :class:`CheckpointError` (or :class:`~bbam_lite.detector.classes.ClassMatchError`).
    """
    from bbam_lite.detector import torchvision_models as tvm

    if class_map and class_names is None:
        raise ValueError("class_map needs the dataset's class_names")
    if isinstance(spec, FasterRCNN):
        import copy

        model, source = copy.deepcopy(spec), {}
    elif str(spec).startswith(tvm.PREFIX):
        model = tvm.build_torchvision_detector(str(spec))
        arch, weights = tvm.parse_spec(str(spec))
        source = {"detector": f"{tvm.PREFIX}{arch}:{weights.resolve()}"}
    else:
        if class_map:
            raise CheckpointError(
                f"--class-map: {spec} is a bbam-lite checkpoint (trained for the dataset's classes); "
                "the option is for torchvision:ARCH:WEIGHTS detectors"
            )
        return _load_checkpoint_file(Path(spec), device, class_names)
    from bbam_lite.detector.classes import match_classes, select_classes

    outputs = model.roi_heads.box_predictor.cls_score.out_features
    names = list(detector_classes) if detector_classes is not None else tvm.class_names_of(model)
    if names is None or len(names) != outputs:
        raise CheckpointError(
            f"the detector's class head has {outputs} outputs: give as many class names "
            "(detector_classes, background first)"
        )
    if class_names is not None:
        indices = match_classes(list(class_names), names, class_map)
        select_classes(model, indices)
        source["detector_classes"] = [names[i] for i in indices[1:]]
        names = list(class_names)
    model.to(device).eval()
    return LoadedDetector(model, None, names, {}, source)


def _load_checkpoint_file(
    path: Path, device: str | torch.device, class_names: Sequence[str] | None
) -> LoadedDetector:
    """A bbam-lite detector checkpoint (:func:`save_detector`), rebuilt from what it records."""
    payload = read_checkpoint(path, "detector", EXPECTED)
    names = list(payload["class_names"])
    if class_names is not None and list(class_names) != names:
        raise CheckpointError(
            f"{path}: detector was trained for {len(names) - 1} classes {names[1:]}, "
            f"the data has {len(class_names) - 1} classes {list(class_names)[1:]}"
        )
    cfg = config_from_dict(payload["config"])
    model = build_detector(cfg, len(names) - 1, norm_from_checkpoint(path, payload))
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: weights do not fit the {cfg.profile} architecture ({mismatch(exc)})"
        ) from None
    model.to(device).eval()
    return LoadedDetector(model, cfg, names, dict(payload.get("meta", {})), {"detector": str(path.resolve())})
