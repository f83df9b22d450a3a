"""Seed growing (Huang et al., DSRG, CVPR 2018) into the pixels a pseudo label leaves undecided.

A pseudo label decides some pixels (the seeds: a class, or background) and leaves others at 255 (the
band BBAM leaves between theta_bg and theta_fg, or pixels claimed by two classes). DSRG lets the
network label such pixels while it trains: an undecided pixel takes class c when

* it touches (8-neighbourhood) a pixel already labelled c,
* c is the network's most probable class there, and
* that probability exceeds theta_c;

and growing repeats from the grown region until nothing changes, so regions spread outward from
their seeds and never jump across the image. As in DSRG, every iteration grows afresh from the
original seeds with the network's current (detached) prediction, so the labels follow the network
as it improves: early on little is confident and little grows, later more of the band is filled.

Schedule and thresholds (:class:`SeedGrowing`, all configurable):

* ``theta_fg`` = 0.99 for object classes and ``theta_bg`` = 0.85 for background: DSRG's values;
* ``start`` = 0.2: growing is off for the first 20% of the iterations. This is ours, not DSRG's
  or BBAM's (neither states one): DSRG's classifier starts from ImageNet weights, ours often start
  from scratch, and the confident pixels of a freshly initialised head are noise. ``start`` = 0
  grows from the first iteration as DSRG does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

IGNORE = 255


@dataclass(frozen=True)
class SeedGrowing:
    """When and how confidently the ignored pixels are grown into."""

    enabled: bool = True
    start: float = 0.2  # fraction of the iterations before growing begins (ours; DSRG: 0)
    theta_fg: float = 0.99  # DSRG
    theta_bg: float = 0.85  # DSRG

    def __post_init__(self) -> None:
        if not 0.0 <= self.start <= 1.0:
            raise ValueError(
                f"seed growing start must be a fraction of the iterations in [0, 1], got {self.start}"
            )
        for name in ("theta_fg", "theta_bg"):
            if not 0.5 <= getattr(self, name) <= 1.0:
                raise ValueError(f"seed growing {name} must be in [0.5, 1], got {getattr(self, name)}")

    def active(self, iteration: int, iterations: int) -> bool:
        """Whether iteration ``iteration`` (0-based) of ``iterations`` grows."""
        return self.enabled and iteration >= self.start * iterations

    def thresholds(self, num_labels: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Per-label thresholds: label 0 is background, the others are object classes."""
        t = torch.full((num_labels,), self.theta_fg, device=device)
        t[0] = self.theta_bg
        return t


def grow_seeds(
    labels: torch.Tensor, probs: torch.Tensor, thresholds: torch.Tensor, max_steps: int | None = None
) -> torch.Tensor:
    """Grow ``labels`` (N, H, W; class ids, 255 undecided) into undecided pixels (DSRG's rule).

    ``probs`` (N, C, H, W) are the network's class probabilities (not differentiated through);
    ``thresholds`` (C,) the per-class confidence a pixel needs. Returns new labels; decided pixels
    never change. ``max_steps`` bounds the growing steps (default: until nothing changes).
    """
    if labels.shape != probs.shape[:1] + probs.shape[2:]:
        raise ValueError(f"labels {tuple(labels.shape)} do not fit probabilities {tuple(probs.shape)}")
    labels = labels.clone()
    num = probs.shape[1]
    conf, best = probs.detach().max(1)
    candidate = (labels == IGNORE) & (conf > thresholds.to(probs.device)[best])
    steps = max_steps if max_steps is not None else labels.shape[-1] * labels.shape[-2]
    for _ in range(steps):
        if not candidate.any():
            break
        seeds = torch.stack([labels == c for c in range(num)], 1).float()
        touching = F.max_pool2d(seeds, 3, 1, 1) > 0
        grow = candidate & touching.gather(1, best[:, None])[:, 0]
        if not grow.any():
            break
        labels[grow] = best[grow].to(labels.dtype)
        candidate &= ~grow
    return labels
