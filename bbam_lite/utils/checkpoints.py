"""What a checkpoint file is, in one line: the one reader behind every ``--detector`` / ``--init``
/ ``model.pt`` the package loads.

:func:`read_checkpoint` loads with ``torch.load(..., weights_only=True)`` and, when the file is not
what the caller expected, says what it is instead (random bytes, a text file such as a Git LFS
pointer, an image, a damaged PyTorch file, a segmentation network, a torchvision state dict without
its architecture, ...). torch's own messages (with their advice to load with
``weights_only=False``) never reach the user.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

#: The kinds :func:`checkpoint_kind` tells apart, and how a message names them.
KINDS: dict[str, str] = {
    "detector": "a bbam-lite detector checkpoint",
    "segmenter": "a bbam-lite segmentation network's checkpoint (train-seg's model.pt)",
    "training": "a training checkpoint (a run's checkpoint.pt, for resuming; its final weights are "
    "in detector.pt or model.pt)",
    "torchvision-detector": "a torchvision Faster R-CNN state dict without its architecture (give it "
    "as torchvision:ARCH:PATH)",
    "state-dict": "a bare state dict (weights without an architecture or class names)",
    "other": "a PyTorch file of another kind",
}


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, in one line."""


def checkpoint_kind(payload: Any) -> str:
    """The kind (a key of :data:`KINDS`) of a loaded checkpoint ``payload``."""
    if not isinstance(payload, dict):
        return "other"
    keys = set(payload)
    if {"task", "config", "class_names", "state_dict"} <= keys:
        return "segmenter"
    if {"config", "class_names", "state_dict"} <= keys:
        return "detector"
    if {"model", "optimizer", "iteration"} <= keys:
        return "training"
    if payload and all(isinstance(k, str) and torch.is_tensor(v) for k, v in payload.items()):
        if any(k.startswith("roi_heads.box_predictor.") for k in payload):
            return "torchvision-detector"
        return "state-dict"
    return "other"


def _sniff(head: bytes) -> str | None:
    """What a file that torch cannot read is, from its first bytes; None: a PyTorch file."""
    if not head:
        return "an empty file"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):
        return None  # a zip archive (torch.save) or a pickle (the legacy format)
    if head.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer (a text file; fetch the real file with git lfs pull)"
    if head.startswith(b"\xff\xd8\xff"):
        return "a JPEG image"
    if head.startswith(b"\x89PNG"):
        return "a PNG image"
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
            return "a text file"
        except UnicodeDecodeError:
            pass
    return "not a PyTorch file (unknown binary data)"


def read_checkpoint(path: Path, expected: str, what: str) -> dict:
    """Load ``path`` safely and return it if it is of kind ``expected`` (a key of :data:`KINDS`).

    ``what`` names the expected file in messages (e.g. "a bbam-lite detector checkpoint"). Anything
    else is a one-line :class:`CheckpointError` saying what the file is and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found (expected {what})")
    with open(path, "rb") as f:
        head = f.read(512)
    found = _sniff(head)
    if found is None:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            found = "a PyTorch file holding Python objects that safe loading (weights_only) refuses"
        except Exception:
            found = "a damaged or truncated PyTorch file"
        else:
            kind = checkpoint_kind(payload)
            if kind == expected:
                return payload
            found = KINDS[kind]
    raise CheckpointError(f"{path}: {found}; expected {what}")


def mismatch(exc: RuntimeError, limit: int = 160) -> str:
    """The first problem of a failed ``load_state_dict`` (``exc``), shortened to one short line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    first = lines[1] if len(lines) > 1 else (lines[0] if lines else type(exc).__name__)
    return first if len(first) <= limit else first[: limit - 3].rstrip(", ") + "..."
