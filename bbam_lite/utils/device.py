"""The device a command or a library call runs on."""

from __future__ import annotations


def check_device(name: str) -> str:
    """``name`` (cpu | cuda | cuda:N), refused in one line when it asks for CUDA on a machine without it."""
    import torch

    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine")
    return name
