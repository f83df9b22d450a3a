"""The checkpoint of a trained segmentation network: ``task``, ``config``, ``class_names``,
``state_dict`` and ``meta`` in a plain dict that loads with ``torch.load(..., weights_only=True)``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from bbam_lite.detector.model import architecture_of, config_from_dict, norm_from_checkpoint
from bbam_lite.utils.checkpoints import CheckpointError, mismatch, read_checkpoint
from bbam_lite.utils.io import atomic_save

TASKS = ("semantic", "instance")


def config_class(task: str) -> type:
    if task == "semantic":
        from bbam_lite.segment.semantic import SemanticConfig

        return SemanticConfig
    if task == "instance":
        from bbam_lite.segment.instance import InstanceConfig

        return InstanceConfig
    raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")


def build_model(task: str, cfg, num_classes: int, norm: str | None = None) -> nn.Module:
    """The network of ``task`` for ``num_classes`` object classes (background added); ``norm``: the
    backbone's, as a checkpoint records it (None: chosen for training)."""
    if task == "semantic":
        from bbam_lite.segment.semantic import build_semantic_model

        return build_semantic_model(cfg, num_classes, norm)
    from bbam_lite.segment.instance import build_instance_model

    return build_instance_model(cfg, num_classes, norm)


def save_segmenter(path: Path, task: str, model: nn.Module, cfg, class_names: list[str], meta: dict) -> None:
    """Write a trained network atomically (fp32 weights, config, class names, metadata)."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {
        "task": task,
        "config": asdict(cfg),
        "class_names": list(class_names),
        "state_dict": state,
        "meta": meta,
        "architecture": architecture_of(model),
    }
    atomic_save(Path(path), lambda tmp: torch.save(payload, tmp))


@dataclass
class LoadedSegmenter:
    task: str
    model: nn.Module
    config: object
    class_names: list[str]
    meta: dict = field(default_factory=dict)


def load_segmenter(path: Path, device: str | torch.device = "cpu") -> LoadedSegmenter:
    """Load a checkpoint written by :func:`save_segmenter`; one-line :class:`CheckpointError` otherwise."""
    path = Path(path)
    payload = read_checkpoint(path, "segmenter", "a bbam-lite segmentation checkpoint (train-seg's model.pt)")
    task = payload["task"]
    if task not in TASKS:
        raise CheckpointError(f"{path}: unknown task {task!r}")
    cfg = config_from_dict(payload["config"], config_class(task))
    names = list(payload["class_names"])
    model = build_model(task, cfg, len(names) - 1, norm_from_checkpoint(path, payload))
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: weights do not fit the {task} {cfg.profile} network ({mismatch(exc)})"
        ) from None
    model.to(device).eval()
    return LoadedSegmenter(task, model, cfg, names, dict(payload.get("meta", {})))
