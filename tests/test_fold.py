"""Frozen norms folded into convolutions: the same features and input gradients (fp32, rel < 1e-5)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bbam_lite.attribution.fold import fold_frozen_norms
from bbam_lite.compat import import_torchvision

import_torchvision()
from torchvision.models import resnet18  # noqa: E402
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor  # noqa: E402
from torchvision.ops.misc import FrozenBatchNorm2d  # noqa: E402


def _randomise_norms(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d)):
            n = m.running_mean.numel()
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))


def _features_and_grad(model: nn.Module, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    x = x.clone().requires_grad_(True)
    out = model(x)
    feats = list(out.values()) if isinstance(out, dict) else [out]
    sum(f.square().mean() for f in feats).backward()
    return [f.detach() for f in feats], x.grad


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


@pytest.mark.parametrize("norm", ["frozen", "batchnorm-eval"])
def test_folded_backbone_equals_the_original(norm) -> None:
    torch.manual_seed(0)
    layer = FrozenBatchNorm2d if norm == "frozen" else nn.BatchNorm2d
    body = resnet18(weights=None, norm_layer=layer)
    backbone = _resnet_fpn_extractor(body, trainable_layers=5).eval()
    _randomise_norms(backbone)
    folded, count = fold_frozen_norms(backbone)
    assert count == 20  # stem + 2 per basic block x 8 + 3 downsample branches
    assert not any(isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d)) for m in folded.modules())
    assert any(isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d)) for m in backbone.modules())  # untouched
    x = torch.rand(2, 3, 96, 128)
    feats, grad = _features_and_grad(backbone, x)
    feats2, grad2 = _features_and_grad(folded, x)
    for a, b in zip(feats2, feats, strict=True):
        assert _rel(a, b) < 1e-5
    assert _rel(grad2, grad) < 1e-5


def test_groupnorm_and_training_batchnorm_are_left_alone() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(2, 8), nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8))
    folded, count = fold_frozen_norms(model.train())
    assert count == 0 and isinstance(folded[1], nn.GroupNorm) and isinstance(folded[3], nn.BatchNorm2d)
    folded, count = fold_frozen_norms(model.eval())
    assert count == 1 and isinstance(folded[3], nn.Identity) and folded[2].bias is not None


def test_engine_runs_a_folded_copy_and_leaves_the_model_alone() -> None:
    from bbam_lite.attribution.engine import EngineOptions, HeadRunner
    from bbam_lite.detector.heads import frozen
    from bbam_lite.detector.model import build_detector, get_profile

    torch.manual_seed(0)
    cfg = get_profile("paper-r50", min_size=128, max_size=160, representation_size=64)
    model = build_detector(cfg, 3).eval()
    _randomise_norms(model)
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in model.backbone.modules())
    images = torch.rand(2, 3, 128, 160)
    props = [torch.tensor([[10.0, 12.0, 90.0, 100.0], [30.0, 20.0, 150.0, 120.0]])] * 2
    outs = {}
    with frozen(model):
        for fold in (False, True):
            runner = HeadRunner(model, EngineOptions(precision="fp32", fold_norms=fold), "cpu")
            x = images.clone().requires_grad_(True)
            out = runner(x, runner.plan(props, 128, 160))
            (out.deltas.square().sum() + out.probs[:, 1].sum()).backward()  # smooth: no kinks
            outs[fold] = (out.deltas.detach(), out.probs.detach(), x.grad)
            if fold:
                assert runner.backbone.eager is not model.backbone
                assert not any(isinstance(m, nn.BatchNorm2d) for m in runner.backbone.eager.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.backbone.modules()) == norms > 0
    (d1, p1, g1), (d0, p0, g0) = outs[True], outs[False]
    assert _rel(d1, d0) < 1e-5 and _rel(p1, p0) < 1e-5
    # the input gradient crosses the heads' ReLUs, where fp32 rounding of the folded convolutions
    # can flip a unit near zero: equal to a few per mille (the backbone alone: < 1e-5, above)
    assert _rel(g1, g0) < 1e-2
