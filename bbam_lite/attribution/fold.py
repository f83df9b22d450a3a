"""Frozen normalisation folded into the convolution before it, for the BBAM engine's copy of a
detector.

BBAM runs the detector hundreds of times per object with frozen weights. A frozen norm is then an
affine map per channel, ``y = scale * x + shift``, and a convolution followed by it is one
convolution with scaled weights and a new bias: the same function (exact in real arithmetic, equal
to rounding in fp32) at the cost of the convolution alone. torchvision's ResNet backbones use
``FrozenBatchNorm2d``; a ``BatchNorm2d`` in eval mode is the same map. GroupNorm depends on its input
and cannot be folded (the lite profile's backbone keeps it).

:func:`fold_frozen_norms` works on a deep copy: the user's model is never changed.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from bbam_lite.compat import import_torchvision

import_torchvision()
from torchvision.ops.misc import FrozenBatchNorm2d  # noqa: E402


def _affine(norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(scale, shift) per channel of a frozen norm, or None if ``norm`` is not one."""
    if isinstance(norm, FrozenBatchNorm2d) or (isinstance(norm, nn.BatchNorm2d) and not norm.training):
        if norm.running_mean is None or norm.running_var is None:
            return None  # BatchNorm2d without running statistics normalises by the batch
        weight = norm.weight if norm.weight is not None else torch.ones_like(norm.running_var)
        bias = norm.bias if norm.bias is not None else torch.zeros_like(norm.running_mean)
        scale = weight * (norm.running_var + norm.eps).rsqrt()
        return scale, bias - norm.running_mean * scale
    return None


def fold_into(conv: nn.Conv2d, norm: nn.Module) -> nn.Conv2d:
    """A convolution computing ``norm(conv(x))`` for a frozen ``norm``."""
    affine = _affine(norm)
    if affine is None:
        raise ValueError(f"{type(norm).__name__} in training mode or without statistics cannot be folded")
    scale, shift = affine
    fused = copy.deepcopy(conv)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        bias = conv.bias * scale + shift if conv.bias is not None else shift
        fused.bias = nn.Parameter(bias.detach().clone(), requires_grad=conv.weight.requires_grad)
    return fused


def fold_frozen_norms(module: nn.Module) -> tuple[nn.Module, int]:
    """A deep copy of ``module`` in which every frozen norm that directly follows a ``Conv2d``
    (its previous sibling in registration order, as in torchvision's ResNet blocks and their
    downsample branches) is folded into that convolution and replaced by ``Identity``; returns
    the copy and the number of norms folded."""
    folded = copy.deepcopy(module)
    count = 0
    for parent in folded.modules():
        names = list(parent._modules)
        for prev, name in zip(names, names[1:], strict=False):
            conv, norm = parent._modules[prev], parent._modules[name]
            if isinstance(conv, nn.Conv2d) and _affine(norm) is not None:
                parent._modules[prev] = fold_into(conv, norm)
                parent._modules[name] = nn.Identity()
                count += 1
    return folded, count
