"""The paper's box term: |t^c - f_box(Phi, o)|_1 over the 4 deltas (``box_loss="sum"``)."""

from __future__ import annotations

import torch

from bbam_lite.attribution.targets.base import HeadRows, HeadTarget, register


@register
class BoxL1(HeadTarget):
    name = "sum"
    head = "box"
    summary = "|t^c - f_box|_1 over the 4 deltas (paper)"

    def __call__(self, out: HeadRows, clean: HeadRows) -> torch.Tensor:
        return (out.deltas - clean.deltas).abs().sum(-1)
