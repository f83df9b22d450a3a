"""The paper's class term: |p^c - f_cls(Phi, o)|_1 over all class probabilities (``cls_loss="all"``)."""

from __future__ import annotations

import torch

from bbam_lite.attribution.targets.base import HeadRows, HeadTarget, register


@register
class ClsL1(HeadTarget):
    name = "all"
    head = "cls"
    summary = "|p^c - f_cls|_1 over all classes (paper)"

    def __call__(self, out: HeadRows, clean: HeadRows) -> torch.Tensor:
        return (out.probs - clean.probs).abs().sum(-1)
