"""The authors' box term: the mean |t^c - f_box(Phi, o)| over the 4 deltas, halved
(``box_loss="half-mean"``)."""

from __future__ import annotations

import torch

from bbam_lite.attribution.targets.base import HeadRows, HeadTarget, register


@register
class BoxHalfMean(HeadTarget):
    name = "half-mean"
    head = "box"
    summary = "mean |t^c - f_box| over the 4 deltas, / 2 (authors' code)"

    def __call__(self, out: HeadRows, clean: HeadRows) -> torch.Tensor:
        return (out.deltas - clean.deltas).abs().mean(-1) / 2
