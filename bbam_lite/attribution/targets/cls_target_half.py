"""The authors' class term: |p^c_c - f_cls(Phi, o)_c| / 2 on the object's class c only
(``cls_loss="target-half"``)."""

from __future__ import annotations

import torch

from bbam_lite.attribution.targets.base import HeadRows, HeadTarget, register


@register
class ClsTargetHalf(HeadTarget):
    name = "target-half"
    head = "cls"
    summary = "|p_c - p'_c| / 2, the object's class only (authors' code)"

    def __call__(self, out: HeadRows, clean: HeadRows) -> torch.Tensor:
        probs = out.probs
        idx = torch.arange(len(probs), device=probs.device)
        labels = torch.as_tensor(out.labels, device=probs.device).expand(len(probs))
        return (probs[idx, labels] - clean.probs[idx, labels]).abs() / 2
