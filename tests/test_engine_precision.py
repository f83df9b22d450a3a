"""The engine's reduced precision by weights cast once, its compile options, and their fallbacks."""

from __future__ import annotations

import pytest
import torch

from bbam_lite.attribution.engine import COMPILE_MIN_OBJECTS, EngineOptions, HeadRunner
from bbam_lite.detector.heads import frozen
from bbam_lite.detector.model import load_detector
from bbam_lite.weights import default_detector_path


@pytest.fixture(scope="module")
def detector():
    return load_detector(default_detector_path(), "cpu").model


def _run(model, options, images, props):
    with frozen(model):
        runner = HeadRunner(model, options, "cpu")
        x = images.clone().requires_grad_(True)
        out = runner(x, runner.plan(props, *images.shape[-2:]))
        (out.deltas.square().sum() + out.probs[:, 1].sum()).backward()
    return runner, out, x.grad


def test_bf16_weights_are_cast_once_and_the_model_stays_fp32(detector) -> None:
    torch.manual_seed(0)
    images = torch.rand(2, 3, 160, 160)
    props = [torch.tensor([[20.0, 30.0, 100.0, 120.0], [50.0, 10.0, 150.0, 90.0]])] * 2
    _, ref, ref_grad = _run(detector, EngineOptions(precision="fp32"), images, props)
    runner, out, grad = _run(detector, EngineOptions(precision="bf16"), images, props)
    assert runner.dtype == torch.bfloat16
    assert {p.dtype for p in runner.box_head.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in runner.backbone.eager.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in detector.parameters()} == {torch.float32}  # the user's model untouched
    assert out.deltas.dtype == out.probs.dtype == grad.dtype == torch.float32  # outputs and grads fp32
    assert (out.probs - ref.probs).abs().max() < 0.05 and (out.deltas - ref.deltas).abs().max() < 0.1
    cos = torch.nn.functional.cosine_similarity(grad.flatten(), ref_grad.flatten(), dim=0)
    assert cos > 0.9
    # the same precision through per-op autocast (the former path) agrees with the cast-once one
    auto_runner, auto, _ = _run(detector, EngineOptions(precision="bf16", cast_weights=False), images, props)
    assert auto_runner.dtype is None and (auto.probs - out.probs).abs().max() < 0.05


def test_compile_auto_pays_for_itself_only_on_long_gpu_runs() -> None:
    auto = EngineOptions()
    assert auto.compile == "auto"
    assert auto.resolve("cpu", 10 * COMPILE_MIN_OBJECTS).compile is None
    assert auto.resolve("cuda", COMPILE_MIN_OBJECTS).compile == "default"
    assert auto.resolve("cuda", COMPILE_MIN_OBJECTS - 1).compile is None
    assert auto.resolve("cuda").compile is None  # run size unknown: eager
    assert EngineOptions(compile="max-autotune").resolve("cpu").compile == "max-autotune"


def test_a_failed_compilation_falls_back_to_eager_with_one_warning(detector, monkeypatch) -> None:
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("inductor could not find a C++ compiler")

    monkeypatch.setattr(torch, "compile", lambda module, mode=None: Broken())
    images = torch.rand(1, 3, 160, 160)
    props = [torch.tensor([[20.0, 30.0, 100.0, 120.0]])]
    _, eager, _ = _run(detector, EngineOptions(precision="fp32", compile=None), images, props)
    with pytest.warns(RuntimeWarning, match="torch.compile of the BBAM engine failed .*running eagerly"):
        runner, out, _ = _run(detector, EngineOptions(precision="fp32", compile="default"), images, props)
    assert torch.equal(out.deltas, eager.deltas) and runner.backbone.compiled is None
