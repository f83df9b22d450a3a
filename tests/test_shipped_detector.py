"""The shipped detector against a freshly generated val split of the default synthetic data.

A change to the generator without retraining the detector fails here, loudly.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from bbam_lite.data.synthetic import GENERATOR_VERSION, SynthSettings, read_synthetic, synthesize
from bbam_lite.detector.evaluate import evaluate_detector
from bbam_lite.detector.model import load_detector
from bbam_lite.weights import DEFAULT_DETECTOR, default_detector_path


def test_shipped_detector_is_small_and_records_its_provenance() -> None:
    path = default_detector_path()
    assert path.stat().st_size <= 25 * 1024 * 1024
    det = load_detector(path)
    data = det.meta["data"]
    assert data["generator_version"] == GENERATOR_VERSION, "generator changed: retrain the shipped detector"
    default = asdict(SynthSettings())
    assert {k: data["settings"][k] for k in ("size", "difficulty")} == {
        k: default[k] for k in ("size", "difficulty")
    }
    card = json.loads(DEFAULT_DETECTOR.with_suffix(".json").read_text())
    assert {"command", "seed", "hardware", "train_seconds", "box_ap50", "box_ap"} <= set(card)


@pytest.mark.slow
def test_shipped_detector_ap50_on_a_fresh_val_split(tmp_path) -> None:
    # a seed the detector never saw; 60 images keep the test under a minute
    root = synthesize(tmp_path / "fresh", SynthSettings(n_train=0, n_val=60, seed=2024), progress=False)
    val = read_synthetic(root, "val")
    det = load_detector(default_detector_path(), class_names=val.class_names)
    metrics = evaluate_detector(det.model, val, progress=False)
    card = json.loads(DEFAULT_DETECTOR.with_suffix(".json").read_text())
    # Within 0.1 of the AP50 recorded on the training seed's val split: a generator change that the
    # detector was not retrained for drops far more. (The project's target, AP50 >= 0.85, is checked
    # on 200-image splits in the README; these 60 images gave 0.861 on 2026-11-22.)
    assert metrics["box_ap50"] >= card["box_ap50"] - 0.1, (metrics, card["box_ap50"])
    assert metrics["box_ap50"] > 0.1, metrics
