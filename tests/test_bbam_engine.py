"""The BBAM engine: grid RoIAlign == torchvision's, engine heads == the detector's own path,
options, batch sizing and the out-of-memory split."""

from __future__ import annotations

import copy
import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch

from bbam_lite.attribution import bbam as bbam_mod
from bbam_lite.attribution.bbam import ObjectTask, explain, get_preset
from bbam_lite.attribution.engine import EngineOptions, HeadRunner, auto_batch_size
from bbam_lite.compat import import_torchvision
from bbam_lite.detector.heads import frozen, roi_head_outputs
from bbam_lite.detector.model import build_detector, get_profile
from bbam_lite.detector.roi_align import multiscale_roi_align, roi_align_image

import_torchvision()
from torchvision.ops import MultiScaleRoIAlign, roi_align  # noqa: E402


def _boxes(n: int, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w, h])
    wh = torch.rand(n, 2, generator=g) * torch.tensor([w, h]) + 0.3
    b = torch.cat([xy, xy + wh], 1)
    b[:, 0::2] = b[:, 0::2].clamp(0, w)
    b[:, 1::2] = b[:, 1::2].clamp(0, h)
    return b


@pytest.mark.parametrize("sr", [1, 2])
def test_grid_roi_align_equals_torchvision_forward_and_backward(sr: int) -> None:
    g = torch.Generator().manual_seed(sr)
    feats = OrderedDict(
        (str(i), torch.randn(3, 8, 96 // 4 // 2**i, 128 // 4 // 2**i, generator=g, requires_grad=True))
        for i in range(4)
    )
    boxes = [_boxes(12, 96, 128, g), _boxes(0, 96, 128, g), _boxes(7, 96, 128, g)]  # an image without RoIs
    sizes = [(96, 128)] * 3
    ours, theirs = MultiScaleRoIAlign(list(feats), 7, sr), MultiScaleRoIAlign(list(feats), 7, sr)
    a = theirs(feats, boxes, sizes)
    b = multiscale_roi_align(ours, feats, boxes, sizes)
    assert a.shape == b.shape == (19, 8, 7, 7)
    torch.testing.assert_close(b, a, atol=5e-5, rtol=1e-4)
    w = torch.randn(a.shape, generator=g)
    ga = torch.autograd.grad((a * w).sum(), list(feats.values()), allow_unused=True, materialize_grads=True)
    gb = torch.autograd.grad((b * w).sum(), list(feats.values()), allow_unused=True, materialize_grads=True)
    for x, y in zip(ga, gb, strict=True):
        torch.testing.assert_close(y, x, atol=5e-5, rtol=1e-4)
    # one level, one image: torchvision's roi_align itself
    single = roi_align(feats["0"][:1], [boxes[0]], 7, 0.25, sr)
    torch.testing.assert_close(
        roi_align_image(feats["0"][0], boxes[0], (7, 7), 0.25, sr), single, atol=5e-5, rtol=1e-4
    )


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    return build_detector(get_profile("smoke"), num_classes=3).eval()


def _props(g: torch.Generator, h: int, w: int) -> list[torch.Tensor]:
    return [_boxes(9, h, w, g), _boxes(5, h, w, g)]


@pytest.mark.parametrize("size", [(160, 160), (96, 120)])  # at the detector input size, and resized
@pytest.mark.parametrize("channels_last", [False, True])
def test_engine_heads_equal_the_detectors_own_path(detector, size, channels_last) -> None:
    g = torch.Generator().manual_seed(3)
    h, w = size
    images = torch.rand(2, 3, h, w, generator=g)
    props = _props(g, h, w)
    model = copy.deepcopy(detector)
    with frozen(detector), frozen(model):
        x1 = images.clone().requires_grad_(True)
        ref = roi_head_outputs(detector, x1, props)
        runner = HeadRunner(
            model, EngineOptions(precision="fp32", roi_align="grid", channels_last=channels_last)
        )
        x2 = images.clone().requires_grad_(True)
        out = runner(x2, runner.plan(props, h, w), decode=True)
        for name in ("deltas", "probs", "boxes"):
            torch.testing.assert_close(getattr(out, name), getattr(ref, name), atol=1e-4, rtol=1e-4)
        (ref.deltas.abs().sum() + ref.probs[:, 1].sum()).backward()
        (out.deltas.abs().sum() + out.probs[:, 1].sum()).backward()
    torch.testing.assert_close(x2.grad, x1.grad, atol=1e-4, rtol=1e-3)
    assert not any(p.grad is not None for p in model.parameters())  # frozen: no weight gradients


def test_engine_options() -> None:
    with pytest.raises(ValueError, match="precision"):
        EngineOptions(precision="fp16")
    with pytest.raises(ValueError, match="roi_align"):
        EngineOptions(roi_align="fast")
    cpu = EngineOptions().resolve("cpu")
    assert cpu.precision == "fp32" and cpu.channels_last is False and cpu.compile is None
    cuda = EngineOptions().resolve("cuda")
    assert cuda.precision == "bf16" and cuda.channels_last is True
    explicit = EngineOptions(
        precision="fp32", roi_align="torchvision", channels_last=False, compile=None, fold_norms=False
    )
    assert explicit.resolve("cpu") == explicit


def test_auto_batch_size_fills_the_free_memory() -> None:
    gib = 1 << 30
    assert auto_batch_size(2 * gib, 40 * gib) == 16  # 0.8 * 40 / 2
    assert auto_batch_size(2 * gib, 1 * gib) == 1  # never below one
    assert auto_batch_size(1, 80 * gib, maximum=64) == 64
    assert auto_batch_size(0, 1) == 64


def _tasks() -> list[ObjectTask]:
    g = torch.Generator().manual_seed(1)
    imgs = [torch.rand(3, 64, 64, generator=g) for _ in range(2)]
    return [
        ObjectTask(imgs[0], torch.tensor([8.0, 8.0, 40.0, 44.0]), 1, key=(1, 0)),
        ObjectTask(imgs[0], torch.tensor([30.0, 20.0, 60.0, 60.0]), 2, key=(1, 1)),
        ObjectTask(imgs[1], torch.tensor([4.0, 10.0, 50.0, 30.0]), 3, key=(2, 0)),
    ]


CFG = get_preset("paper", iterations=3, n_jitter=10, iou_thresholds=(-1.0,), stride_reference_side=375)


def test_out_of_memory_splits_the_batch(detector, monkeypatch) -> None:
    mean = torch.full((3,), 0.5)
    expected = explain(detector, _tasks(), CFG, mean, batch_size=3)
    real = bbam_mod.optimise
    sizes = []

    def small_device(model, tasks, *args, **kwargs):
        sizes.append(len(tasks))
        if len(tasks) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, tasks, *args, **kwargs)

    monkeypatch.setattr(bbam_mod, "optimise", small_device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = explain(detector, _tasks(), CFG, mean, batch_size=3)
    assert sizes == [3, 2, 1, 1, 1]
    assert any("out of memory" in str(w.message) for w in caught)
    assert [r.key for r in got] == [r.key for r in expected]
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a.bbam, b.bbam, atol=2e-4)
