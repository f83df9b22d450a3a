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
