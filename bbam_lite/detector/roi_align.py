"""RoIAlign as one ``grid_sample`` per image and level: torchvision's result, with a fast backward.

torchvision's ``roi_align`` (``aligned=False``, fixed ``sampling_ratio``) averages, in each of the
``PH x PW`` bins of a RoI, ``sr x sr`` bilinear samples whose coordinates are clamped to
``[0, size - 1]``. ``F.grid_sample(..., align_corners=True, padding_mode="border")`` samples the same
points with the same clamping, so the pooled features are equal up to float rounding; the RoIs of
one image are stacked along the grid's height, so no feature map is copied per RoI.

Why: where torchvision's compiled ops do not load (a CPU-only torch), torchvision falls back to a
Python RoIAlign built from advanced indexing, whose backward (``index_put`` with accumulation) is
about a third of a BBAM iteration on the CPU; ``grid_sample`` has native forward and backward
kernels on CPU and GPU. Adaptive sampling (``sampling_ratio <= 0``) is not covered.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bbam_lite.compat import import_torchvision

import_torchvision()
from torchvision.ops import MultiScaleRoIAlign  # noqa: E402
from torchvision.ops.poolers import _filter_input, _setup_scales  # noqa: E402


def roi_align_image(
    feature: torch.Tensor,
    boxes: torch.Tensor,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
) -> torch.Tensor:
    """RoIAlign of ``boxes`` (K, 4; x1, y1, x2, y2 in input pixels) on one feature map (C, H, W).

    Returns (K, C, PH, PW), torchvision's ``roi_align(..., aligned=False)`` up to float rounding.
    """
    if sampling_ratio <= 0:
        raise ValueError("roi_align_image needs a fixed sampling_ratio > 0")
    ph, pw = output_size
    sr = sampling_ratio
    c, h, w = feature.shape
    k = boxes.shape[0]
    if k == 0:
        return feature.new_zeros((0, c, ph, pw))
    b = boxes.to(feature.dtype) * spatial_scale
    x1, y1, x2, y2 = b.unbind(-1)
    bin_w = (x2 - x1).clamp(min=1.0) / pw  # (K,)
    bin_h = (y2 - y1).clamp(min=1.0) / ph
    steps_w = (torch.arange(pw * sr, device=b.device, dtype=b.dtype) + 0.5) / sr  # bins + sub-samples
    steps_h = (torch.arange(ph * sr, device=b.device, dtype=b.dtype) + 0.5) / sr
    xs = x1[:, None] + steps_w[None] * bin_w[:, None]  # (K, PW*sr) pixel coordinates
    ys = y1[:, None] + steps_h[None] * bin_h[:, None]  # (K, PH*sr)
    gx = xs * (2.0 / max(w - 1, 1)) - 1.0
    gy = ys * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), -1)  # (K, PH*sr, PW*sr, 2)
    grid = grid.reshape(1, k * ph * sr, pw * sr, 2)
    out = F.grid_sample(
        feature[None], grid, mode="bilinear", padding_mode="border", align_corners=True
    )  # (1, C, K*PH*sr, PW*sr)
    out = out.reshape(c, k, ph, sr, pw, sr)
    if sr > 1:
        out = out.mean((3, 5))
    else:
        out = out.reshape(c, k, ph, pw)
    return out.permute(1, 0, 2, 3)


def multiscale_roi_align(
    pooler: MultiScaleRoIAlign,
    features: dict[str, torch.Tensor],
    boxes: list[torch.Tensor],
    image_sizes: list[tuple[int, int]],
) -> torch.Tensor:
    """What ``pooler(features, boxes, image_sizes)`` returns (same FPN level per RoI, same order)."""
    x = _filter_input(features, pooler.featmap_names)
    if pooler.scales is None or pooler.map_levels is None:
        pooler.scales, pooler.map_levels = _setup_scales(
            x, image_sizes, pooler.canonical_scale, pooler.canonical_level
        )
    out_size = tuple(pooler.output_size)
    levels = (
        pooler.map_levels(boxes)
        if len(x) > 1
        else torch.zeros(sum(len(b) for b in boxes), dtype=torch.long, device=x[0].device)
    )
    pieces, order, start = [], [], 0
    for img, img_boxes in enumerate(boxes):
        lv = levels[start : start + len(img_boxes)]
        for level in torch.unique(lv).tolist():
            idx = torch.nonzero(lv == level).flatten()
            pieces.append(
                roi_align_image(
                    x[level][img], img_boxes[idx], out_size, pooler.scales[level], pooler.sampling_ratio
                )
            )
            order.append(idx + start)
        start += len(img_boxes)
    if not pieces:
        return x[0].new_zeros((0, x[0].shape[1], *out_size))
    stacked = torch.cat(pieces)
    inverse = torch.empty_like(levels)
    inverse[torch.cat(order)] = torch.arange(len(levels), device=levels.device)
    return stacked[inverse]
