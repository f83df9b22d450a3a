"""scripts/bench_bbam.py end to end at the smallest size: the JSON has the fields the performance
docs quote, and a shortened timing is projected to the profile's iterations."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_bbam", ROOT / "scripts" / "bench_bbam.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_lite_smoke(tiny_synth, tmp_path):
    out = tmp_path / "bench.json"
    argv = ["--profile", "lite", "--data", str(tiny_synth), "--images", "1"]
    assert _bench().main([*argv, "--iterations", "2", "--device", "cpu", "--json", str(out)]) in (0, None)
    r = json.loads(out.read_text())
    for key in ("reference_s_per_object", "engine_s_per_object", "speedup", "peak_memory_bytes", "device",
                "floor_s_per_object", "agreement_map_iou", "agreement_label_miou"):  # fmt: skip
        assert key in r, key
    assert r["iterations"] == 2 and r["profile_iterations"] == 150
    assert r["engine_s_per_object_at_profile_iterations"] == pytest.approx(r["engine_s_per_object"] * 75)
    assert r["projected_voc_train_aug_hours"] == pytest.approx(
        r["engine_s_per_object"] * 75 * 10_582 * 2.8 / 3600, rel=1e-6
    )
    assert 0 <= r["agreement_map_iou"] <= 1 and r["speedup"] > 0


def test_agreement_is_judged_against_the_noise_floor():
    verdict = _bench().agreement_verdict
    base = {"device": "cpu", "objects": 40, "agreement_map_iou": 0.85, "noise_floor_map_iou": 0.865,
            "agreement_label_miou": 0.90, "noise_floor_label_miou": 0.926,
            "label_miou_gap_points": 0.6, "noise_floor_miou_gap_points": -0.2}  # fmt: skip
    assert verdict(base)["passes"] is True
    assert verdict({**base, "agreement_map_iou": 0.83})["passes"] is False  # 0.035 below its floor
    assert verdict({**base, "label_miou_gap_points": 0.8})["passes"] is False  # > 0.5 + 0.2 points
    few = verdict({**base, "objects": 15})
    assert few["passes"] is None and "fewer than the 40" in few["undecided_because"][0]
    assert verdict({**base, "device": "cuda", "objects": 16})["passes"] is True
    no_floor = {k: v for k, v in base.items() if not k.startswith("noise_floor")}
    assert verdict(no_floor)["passes"] is None
