"""Numerical faults in BBAM (issue 7): a NaN in one object's loss or mask is detected, reported with
its image and box, retried at fp32 when it ran in bf16, or marked failed; the others are untouched."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from bbam_lite.attribution.bbam import BBAMNumericalWarning, ObjectTask, explain, get_preset, optimise
from bbam_lite.attribution.engine import EngineOptions
from bbam_lite.data.synthetic import read_synthetic
from bbam_lite.detector.model import build_detector, get_profile
from bbam_lite.pseudo.folder import LabelsFolder
from bbam_lite.pseudo.generate import generate
from bbam_lite.pseudo.job import LabelJob
from bbam_lite.pseudo.methods import bbam as bbam_method
from bbam_lite.pseudo.methods.bbam import FAULT_FALLBACK
from bbam_lite.pseudo.settings import PseudoLabelSettings

CFG = get_preset("paper", iterations=3, n_jitter=10, iou_thresholds=(-1.0,), stride_reference_side=375)
MEAN = torch.full((3,), 0.5)


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    return build_detector(get_profile("smoke"), num_classes=3).eval()


def _tasks() -> list[ObjectTask]:
    g = torch.Generator().manual_seed(1)
    imgs = [torch.rand(3, 64, 64, generator=g) for _ in range(2)]
    return [
        ObjectTask(imgs[0], torch.tensor([8.0, 8.0, 40.0, 44.0]), 1, key=(1, 0)),
        ObjectTask(imgs[0], torch.tensor([30.0, 20.0, 60.0, 60.0]), 2, key=(1, 1)),
        ObjectTask(imgs[1], torch.tensor([4.0, 10.0, 50.0, 30.0]), 3, key=(2, 0)),
    ]


def _caught(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    return out, [str(w.message) for w in caught if issubclass(w.category, BBAMNumericalWarning)]


def test_poisoned_object_is_marked_failed_and_the_others_are_untouched(detector) -> None:
    clean = _tasks()
    poisoned = list(clean)
    bad = poisoned[1].image.clone()
    bad[:, 30:34, 40:44] = float("nan")  # a poisoned image, for the middle object only
    poisoned[1] = replace(poisoned[1], image=bad)
    fp32 = EngineOptions(precision="fp32")
    results, messages = _caught(lambda: explain(detector, poisoned, CFG, MEAN, batch_size=3, engine=fp32))
    assert [r.failed for r in results] == [False, True, False]
    assert "non-finite loss from iteration 0" in results[1].fault
    assert np.isfinite(results[1].bbam).all() and not results[1].bbam.any()  # zero maps, never NaN
    assert (
        len(messages) == 1
        and "image 1, object 1" in messages[0]
        and "box [30.0, 20.0, 60.0, 60.0]" in messages[0]
    )
    assert "marked failed" in messages[0]
    expected = explain(detector, [clean[0], clean[2]], CFG, MEAN, batch_size=3, engine=fp32)
    for got, want in zip([results[0], results[2]], expected, strict=True):
        np.testing.assert_allclose(got.bbam, want.bbam, atol=2e-4)


def test_bf16_fault_is_retried_at_fp32(detector) -> None:
    """A NaN that appears only in reduced precision (injected into the first object's rows): under
    bf16 autocast, or in the engine's bf16 copy of the predictor (weights cast once)."""
    from bbam_lite.attribution import engine as engine_module

    def nan_under_autocast(module, inputs, output):
        if torch.is_autocast_enabled("cpu") or module.cls_score.weight.dtype == torch.bfloat16:
            logits, deltas = output
            logits = logits.clone()
            logits[0] = float("nan")
            return logits, deltas
        return output

    handle = detector.roi_heads.box_predictor.register_forward_hook(nan_under_autocast)
    engine_module._COPIES.pop(detector, None)  # the engine's copies are made with the hook
    try:
        bf16 = EngineOptions(precision="bf16")
        results, messages = _caught(lambda: explain(detector, _tasks(), CFG, MEAN, batch_size=3, engine=bf16))
    finally:
        handle.remove()
        engine_module._COPIES.pop(detector, None)
    first = results[0]
    assert not first.failed and first.retried and first.precision == "fp32"
    assert [r.precision for r in results[1:]] == ["bf16", "bf16"] and not any(r.failed for r in results)
    assert len(messages) == 1 and "retrying at fp32" in messages[0] and "image 1, object 0" in messages[0]
    alone = explain(detector, _tasks()[:1], CFG, MEAN, engine=EngineOptions(precision="fp32"))[0]
    np.testing.assert_allclose(first.bbam, alone.bbam, atol=2e-4)


def test_fault_in_the_mask_is_detected(detector, monkeypatch) -> None:
    """A mask that goes NaN (here: through the optimiser's step) is a fault as well."""
    real_step = torch.optim.Adam.step

    def step(self, *a, **k):
        out = real_step(self, *a, **k)
        with torch.no_grad():
            self.param_groups[0]["params"][0].fill_(float("nan"))
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    res = optimise(detector, _tasks()[:2], replace(CFG, iterations=1), MEAN)
    assert res[0].failed and not res[1].failed
    assert np.isfinite(res[0].mask).all()


def test_pseudo_labels_run_through_a_bad_object(tiny_synth, tmp_path, monkeypatch) -> None:
    """generate(): the failed object becomes an ignored box, is recorded and counted; the run ends."""
    torch.manual_seed(0)
    ds = read_synthetic(tiny_synth, "train")
    det = build_detector(get_profile("smoke"), len(ds.class_names) - 1).eval()
    real = bbam_method.explain
    target = (ds[1].image_id, 0)

    def poisoning_explain(model, tasks, *args, **kwargs):
        tasks = [
            replace(t, image=torch.full_like(t.image, float("nan"))) if t.key == target else t for t in tasks
        ]
        return real(model, tasks, *args, **kwargs)

    monkeypatch.setattr(bbam_method, "explain", poisoning_explain)
    settings = PseudoLabelSettings(
        method="bbam",
        profile="lite",
        crf=False,
        bbam={"iterations": 2, "n_jitter": 8, "iou_thresholds": [-1.0]},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job = LabelJob.make(
            ds, settings, tmp_path / "labels", det, MEAN, limit=3, batch_images=3, progress=False
        )
        q = generate(job)
    assert q["failed_objects"] == 1 and q["fallbacks"][FAULT_FALLBACK] == 1 and q["images"] == 3
    insts, info = LabelsFolder(tmp_path / "labels").read_image(target[0])
    assert info[0]["failed"] and "non-finite" in info[0]["fault"] and info[0]["fallback"] == FAULT_FALLBACK
    assert not insts[0].fg.any() and insts[0].ignore.any()  # the box is ignored, nothing claimed
    saved = json.loads((tmp_path / "labels" / "quality.json").read_text())
    assert saved["failed_objects"] == 1
