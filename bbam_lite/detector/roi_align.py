"""RoIAlign as one ``grid_sample`` per FPN level: torchvision's result, with a fast backward.

torchvision's ``roi_align`` (``aligned=False``, fixed ``sampling_ratio``) averages, in each of the
``PH x PW`` bins of a RoI, ``sr x sr`` bilinear samples whose coordinates are clamped to
``[0, size - 1]``. ``F.grid_sample(..., align_corners=True, padding_mode="border")`` samples the same
points with the same clamping, so the pooled features are equal up to float rounding. The RoIs of
each image are stacked along the grid's height (images with fewer RoIs padded), so one call per
level covers the whole batch and no feature map is copied per RoI.

Why: where torchvision's compiled ops do not load (a CPU-only torch), torchvision falls back to a
Python RoIAlign built from advanced indexing, whose backward (``index_put`` with accumulation) was
about a third of a BBAM iteration on the CPU; ``grid_sample`` has native forward and backward
kernels on CPU and GPU. The sampling grids depend only on the boxes, so :class:`GridRoIAlign`
builds them once and reuses them for every pass over the same RoIs (BBAM's 300 iterations).
Adaptive sampling (``sampling_ratio <= 0``) is not covered.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bbam_lite.compat import import_torchvision

import_torchvision()
from torchvision.ops import MultiScaleRoIAlign  # noqa: E402
from torchvision.ops.poolers import _filter_input, _setup_scales  # noqa: E402


def sample_points(
    boxes: torch.Tensor, output_size: tuple[int, int], spatial_scale: float, sampling_ratio: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample coordinates (feature-map pixels) of RoIAlign: xs (K, PW*sr) and ys (K, PH*sr)."""
    if sampling_ratio <= 0:
        raise ValueError("grid RoIAlign needs a fixed sampling_ratio > 0")
    ph, pw = output_size
    sr = sampling_ratio
    b = boxes.float() * spatial_scale
    x1, y1, x2, y2 = b.unbind(-1)
    bin_w = (x2 - x1).clamp(min=1.0) / pw
    bin_h = (y2 - y1).clamp(min=1.0) / ph
    steps_w = (torch.arange(pw * sr, device=b.device, dtype=b.dtype) + 0.5) / sr  # bin + sub-sample
    steps_h = (torch.arange(ph * sr, device=b.device, dtype=b.dtype) + 0.5) / sr
    return x1[:, None] + steps_w[None] * bin_w[:, None], y1[:, None] + steps_h[None] * bin_h[:, None]


def _grid(xs: torch.Tensor, ys: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(..., K, PW*sr) and (..., K, PH*sr) pixel coordinates -> grid_sample grid (..., K*PH*sr, PW*sr, 2)."""
    gx = xs * (2.0 / max(width - 1, 1)) - 1.0
    gy = ys * (2.0 / max(height - 1, 1)) - 1.0
    grid = torch.stack(torch.broadcast_tensors(gx[..., None, :], gy[..., :, None]), -1)
    return grid.flatten(-4, -3)


def roi_align_image(
    feature: torch.Tensor,
    boxes: torch.Tensor,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
) -> torch.Tensor:
    """RoIAlign of ``boxes`` (K, 4; x1, y1, x2, y2 in input pixels) on one feature map (C, H, W).

    Returns (K, C, PH, PW): torchvision's ``roi_align(..., aligned=False)`` up to float rounding.
    """
    ph, pw = output_size
    sr = sampling_ratio
    c, h, w = feature.shape
    if boxes.shape[0] == 0:
        return feature.new_zeros((0, c, ph, pw))
    xs, ys = sample_points(boxes, output_size, spatial_scale, sampling_ratio)
    grid = _grid(xs, ys, h, w).to(feature.dtype)[None]
    out = F.grid_sample(feature[None], grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.reshape(c, -1, ph, sr, pw, sr).mean((3, 5)).permute(1, 0, 2, 3)


class GridRoIAlign:
    """``pooler(features, boxes, image_sizes)`` for fixed ``boxes``, planned once, run many times.

    ``boxes`` holds one (K_i, 4) tensor per image of the batch, in the detector-input pixels of
    ``image_sizes``; calling the plan with the FPN features returns (sum K_i, C, PH, PW) in the
    order of ``boxes``, each RoI pooled from the level torchvision's pooler would choose.
    """

    def __init__(
        self, pooler: MultiScaleRoIAlign, boxes: list[torch.Tensor], image_sizes: list[tuple[int, int]]
    ) -> None:
        if pooler.scales is None or pooler.map_levels is None:
            raise ValueError("the pooler's scales are not set up yet (run the detector once)")
        self.pooler = pooler
        self.output_size = tuple(pooler.output_size)
        self.sr = pooler.sampling_ratio
        device = boxes[0].device if boxes else torch.device("cpu")
        counts = [len(b) for b in boxes]
        self.n = sum(counts)
        levels = pooler.map_levels(boxes) if len(pooler.scales) > 1 else torch.zeros(self.n, dtype=torch.long)
        levels = levels.to(device)
        image_of = torch.repeat_interleave(
            torch.arange(len(boxes), device=device), torch.tensor(counts, device=device)
        )
        flat = torch.cat(boxes) if boxes else torch.zeros(0, 4, device=device)
        # per level: padded (B, Kmax, .) sample coordinates, valid slots, and which RoIs they are
        self.levels: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        order = []
        for level in torch.unique(levels).tolist():
            idx = torch.nonzero(levels == level).flatten()
            img = image_of[idx]
            per_img = torch.bincount(img, minlength=len(boxes))
            kmax = int(per_img.max())
            first = torch.cumsum(per_img, 0) - per_img  # position of each image's first RoI in idx
            slot = torch.arange(len(idx), device=device) - first[img]
            xs, ys = sample_points(flat[idx], self.output_size, pooler.scales[level], self.sr)
            pad_x = xs.new_zeros(len(boxes), kmax, xs.shape[-1])
            pad_y = ys.new_zeros(len(boxes), kmax, ys.shape[-1])
            pad_x[img, slot], pad_y[img, slot] = xs, ys
            self.levels.append((level, pad_x, pad_y, img * kmax + slot, idx))
            order.append(idx)
        self.inverse = torch.empty(self.n, dtype=torch.long, device=device)
        if order:
            self.inverse[torch.cat(order)] = torch.arange(self.n, device=device)
        self._grids: dict[tuple[int, int, int], torch.Tensor] = {}

    def __call__(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        x = _filter_input(features, self.pooler.featmap_names)
        ph, pw = self.output_size
        sr = self.sr
        pieces = []
        for level, xs, ys, valid, _ in self.levels:
            f = x[level].float()  # sampled in fp32 under autocast too, as torchvision's roi_align does
            b, c, h, w = f.shape
            key = (level, h, w)
            if key not in self._grids:
                self._grids[key] = _grid(xs, ys, h, w)
            out = F.grid_sample(
                f, self._grids[key], mode="bilinear", padding_mode="border", align_corners=True
            )
            out = out.reshape(b, c, -1, ph, sr, pw, sr)
            out = out.mean((4, 6)) if sr > 1 else out.reshape(b, c, -1, ph, pw)
            pieces.append(out.transpose(1, 2).reshape(-1, c, ph, pw)[valid])
        if not pieces:
            return x[0].new_zeros((0, x[0].shape[1], ph, pw))
        return torch.cat(pieces)[self.inverse]


def setup_pooler(pooler: MultiScaleRoIAlign, features: dict[str, torch.Tensor], image_sizes) -> None:
    """Let torchvision's pooler infer its level scales from ``features`` (as its first call does)."""
    if pooler.scales is None or pooler.map_levels is None:
        x = _filter_input(features, pooler.featmap_names)
        pooler.scales, pooler.map_levels = _setup_scales(
            x, image_sizes, pooler.canonical_scale, pooler.canonical_level
        )


def multiscale_roi_align(
    pooler: MultiScaleRoIAlign,
    features: dict[str, torch.Tensor],
    boxes: list[torch.Tensor],
    image_sizes: list[tuple[int, int]],
) -> torch.Tensor:
    """What ``pooler(features, boxes, image_sizes)`` returns, computed with :class:`GridRoIAlign`."""
    setup_pooler(pooler, features, image_sizes)
    return GridRoIAlign(pooler, boxes, image_sizes)(features)
