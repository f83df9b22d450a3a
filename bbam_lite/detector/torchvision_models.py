"""torchvision's Faster R-CNN models as BBAM detectors (``--detector torchvision:ARCH:WEIGHTS``).

Nothing is downloaded: the architecture is built with ``weights=None, weights_backbone=None`` and
the weights are a local state-dict file (torchvision's published COCO weights from a torch cache,
or one's own), read with ``weights_only=True``. Class names come from torchvision's weights
metadata (COCO's 91 slots with ``__background__`` and ``N/A``).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from bbam_lite.compat import import_torchvision
from bbam_lite.utils.checkpoints import CheckpointError, mismatch, read_checkpoint

tv = import_torchvision()
from torchvision.models.detection import FasterRCNN  # noqa: E402
from torchvision.ops.misc import FrozenBatchNorm2d  # noqa: E402

#: The Faster R-CNN builders of torchvision.models.detection that ``torchvision:ARCH:...`` accepts.
ARCHITECTURES = (
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
)
PREFIX = "torchvision:"


def coco_class_names() -> list[str]:
    """COCO's 91 category slots as torchvision's detection weights name them (index 0 background)."""
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

    return list(FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"])


def class_names_of(model: FasterRCNN) -> list[str] | None:
    """The class names of a torchvision Faster R-CNN: COCO's when its head has 91 outputs, else None."""
    n = model.roi_heads.box_predictor.cls_score.out_features
    names = coco_class_names()
    return names if n == len(names) else None


def freeze_batch_norms(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` of ``module`` by ``FrozenBatchNorm2d`` in place (the same map in
    eval mode, and what torchvision's published weights were trained with in the backbone)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, FrozenBatchNorm2d(child.num_features, eps=child.eps))
        else:
            freeze_batch_norms(child)
    return module


def parse_spec(spec: str) -> tuple[str, Path]:
    """``torchvision:ARCH:WEIGHTS`` -> (ARCH, WEIGHTS); a one-line error for anything else."""
    arch, sep, weights = spec[len(PREFIX) :].partition(":")
    if not sep or not weights:
        raise CheckpointError(f"--detector {spec}: expected torchvision:ARCH:WEIGHTS_FILE")
    if arch not in ARCHITECTURES:
        raise CheckpointError(
            f"--detector {spec}: unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}"
        )
    return arch, Path(weights)


def build_torchvision_detector(spec: str) -> FasterRCNN:
    """The model of ``torchvision:ARCH:WEIGHTS`` with its weights, in eval mode on the CPU."""
    arch, path = parse_spec(spec)
    state = read_checkpoint(
        path, "torchvision-detector", f"a state dict of torchvision's {arch} (model.state_dict())"
    )
    num_classes = int(state["roi_heads.box_predictor.cls_score.weight"].shape[0])
    builder = getattr(tv.models.detection, arch)
    model = freeze_batch_norms(builder(weights=None, weights_backbone=None, num_classes=num_classes))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit torchvision's {arch} ({mismatch(exc)})") from None
    return model.eval()
