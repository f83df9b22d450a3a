"""The bbam-lite command end to end on tiny inputs, and its one-line errors (exit status 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bbam_lite.cli import main


def test_help_lists_the_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "bbam_lite", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("data", "train-detector", "eval-detector", "demo"):
        assert cmd in out.stdout


def test_synth_train_eval_round_trip(tmp_path, capsys) -> None:
    data = tmp_path / "data"
    assert main(["--quiet", "data", "synth", "--out", str(data), "--n-train", "4", "--n-val", "2",
                 "--size", "96", "--seed", "1", "--difficulty", "hard"]) == 0
    meta = json.loads((data / "dataset.json").read_text())
    assert meta["settings"]["difficulty"] == 0.8 and meta["splits"]["train"]["images"] == 4
    run = tmp_path / "run"
    assert main(["--quiet", "train-detector", "--data", str(data), "--out", str(run), "--profile", "smoke",
                 "--iterations", "2"]) == 0
    metrics = json.loads((run / "detector_metrics.json").read_text())
    assert {"box_ap50", "box_ap", "train_seconds"} <= set(metrics)
    out_json = tmp_path / "eval.json"
    assert main(["--quiet", "eval-detector", "--data", str(data), "--detector", str(run / "detector.pt"),
                 "--json", str(out_json)]) == 0
    assert json.loads(out_json.read_text())["images"] == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train-detector", "--data", "/nonexistent/root", "--out", "x"], "does not exist"),
        (["data", "synth", "--out", "{tmp}/d", "--difficulty", "extreme"], "difficulty"),
        (["train-detector", "--data", "{synth}", "--out", "{tmp}/r", "--profile", "huge"], "unknown detector profile"),
        (["eval-detector", "--data", "{synth}", "--detector", "{tmp}/missing.pt"], "not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, tiny_synth, capsys) -> None:
    argv = [a.format(tmp=tmp_path, synth=tiny_synth) for a in argv]
    assert main(["--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_eval_refuses_a_detector_for_other_classes(tmp_path, tiny_synth, capsys) -> None:
    from bbam_lite.detector.model import build_detector, get_profile, save_detector

    path = tmp_path / "det3.pt"
    save_detector(path, build_detector(get_profile("smoke"), 3), get_profile("smoke"), ["background", "a", "b", "c"], {})
    assert main(["--quiet", "eval-detector", "--data", str(tiny_synth), "--detector", str(path)]) == 2
    assert "trained for 3 classes" in capsys.readouterr().err
