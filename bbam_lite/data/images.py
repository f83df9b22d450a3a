"""An image record's pixels as the networks' input tensor."""

from __future__ import annotations

import numpy as np
import torch


def image_tensor(image: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 (H, W, 3) -> float (3, H, W) in [0, 1]."""
    return torch.from_numpy(image).permute(2, 0, 1).float().div_(255).to(device)
