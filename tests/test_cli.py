"""The bbam-lite command end to end on tiny inputs, and its one-line errors (exit status 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bbam_lite.cli import main


def test_help_lists_the_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bbam_lite", "--help"], capture_output=True, text=True, check=True
    )
    for cmd in ("data", "train-detector", "eval-detector", "demo"):
        assert cmd in out.stdout


def test_synth_train_eval_round_trip(tmp_path, capsys) -> None:
    data = tmp_path / "data"
    assert (
        main(
            [
                "--quiet",
                "data",
                "synth",
                "--out",
                str(data),
                "--n-train",
                "4",
                "--n-val",
                "2",
                "--size",
                "96",
                "--seed",
                "1",
                "--difficulty",
                "hard",
            ]
        )
        == 0
    )
    meta = json.loads((data / "dataset.json").read_text())
    assert meta["settings"]["difficulty"] == 0.8 and meta["splits"]["train"]["images"] == 4
    run = tmp_path / "run"
    assert (
        main(
            [
                "--quiet",
                "train-detector",
                "--data",
                str(data),
                "--out",
                str(run),
                "--profile",
                "smoke",
                "--iterations",
                "2",
            ]
        )
        == 0
    )
    metrics = json.loads((run / "detector_metrics.json").read_text())
    assert {"box_ap50", "box_ap", "train_seconds"} <= set(metrics)
    out_json = tmp_path / "eval.json"
    assert (
        main(
            [
                "--quiet",
                "eval-detector",
                "--data",
                str(data),
                "--detector",
                str(run / "detector.pt"),
                "--json",
                str(out_json),
            ]
        )
        == 0
    )
    assert json.loads(out_json.read_text())["images"] == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train-detector", "--data", "/nonexistent/root", "--out", "x"], "does not exist"),
        (["data", "synth", "--out", "{tmp}/d", "--difficulty", "extreme"], "difficulty"),
        (
            ["train-detector", "--data", "{synth}", "--out", "{tmp}/r", "--profile", "huge"],
            "unknown detector profile",
        ),
        (["eval-detector", "--data", "{synth}", "--detector", "{tmp}/missing.pt"], "not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, tiny_synth, capsys) -> None:
    argv = [a.format(tmp=tmp_path, synth=tiny_synth) for a in argv]
    assert main(["--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize(
    "argv, option",
    [
        (["train-detector", "--out", "{tmp}/r", "--profile", "smoke"], "--val-split"),
        (["train-detector", "--out", "{tmp}/r", "--train-split", "tr"], "--train-split"),
        (["pseudo-labels", "--split", "val", "--method", "box", "--out", "{tmp}/l"], "--split"),
        (["eval-detector"], "--split"),
        (["train-seg", "--task", "semantic", "--labels", "gt", "--out", "{tmp}/s"], "--val-split"),
    ],
)
def test_a_dataset_without_the_split_says_which_option_picks_another(
    argv, option, tmp_path, tiny_synth, capsys
) -> None:
    """A COCO-style folder with a train split only (no val): one line naming the option."""
    import shutil

    data = tmp_path / "coco"
    shutil.copytree(tiny_synth, data)
    (data / "dataset.json").unlink()
    (data / "annotations" / "val.json").unlink()
    shutil.rmtree(data / "images" / "val")
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(["--quiet", *argv, "--data", str(data)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    split = "tr" if "tr" in argv else "val"
    assert f"no split '{split}'" in err and "splits here: train" in err, err
    assert err.endswith(f"choose another with {option} NAME"), err


def test_eval_refuses_a_detector_for_other_classes(tmp_path, tiny_synth, capsys) -> None:
    from bbam_lite.detector.model import build_detector, get_profile, save_detector

    path = tmp_path / "det3.pt"
    save_detector(
        path, build_detector(get_profile("smoke"), 3), get_profile("smoke"), ["background", "a", "b", "c"], {}
    )
    assert main(["--quiet", "eval-detector", "--data", str(tiny_synth), "--detector", str(path)]) == 2
    assert "trained for 3 classes" in capsys.readouterr().err


def _outputs(folder) -> dict:
    inst = json.loads((folder / "instances.json").read_text())
    pngs = {p.name: p.read_bytes() for p in sorted((folder / "semantic").glob("*.png"))}
    return {"annotations": inst["annotations"], "pngs": pngs}


@pytest.mark.parametrize("method", ["box", "box_crf", "grabcut", "bbam"])
def test_pseudo_labels_command(method, tmp_path, tiny_synth, smoke_detector) -> None:
    from pycocotools.coco import COCO

    out = tmp_path / "labels"
    argv = [
        "--quiet",
        "pseudo-labels",
        "--data",
        str(tiny_synth),
        "--method",
        method,
        "--out",
        str(out),
        "--limit",
        "3",
        "--detector",
        str(smoke_detector),
        "--iterations",
        "3",
    ]
    assert main(argv) == 0
    q = json.loads((out / "quality.json").read_text())
    assert q["images"] == 3 and 0 <= q["miou"] <= 1 and 0 <= q["mean_instance_iou"] <= 1
    coco = COCO(str(out / "instances.json"))
    assert len(coco.getAnnIds()) == q["objects"]
    assert len(list((out / "semantic").glob("*.png"))) == 3
    if method == "bbam":
        assert len(list((out / "bbam").glob("*.npz"))) == 3
    # same command again: nothing to do, same outputs; other settings: refused
    before = _outputs(out)
    assert main(argv) == 0 and _outputs(out) == before
    assert main([*argv[:-2], "--iterations", "4"]) == 2 or method != "bbam"


def test_interrupted_pseudo_labels_resume_to_the_same_outputs(tmp_path, tiny_synth, monkeypatch) -> None:
    from bbam_lite.pseudo.folder import LabelsFolder

    # in this process (--workers 1), where the patched write_image runs; tests/test_pseudo_workers.py
    # kills runs with workers
    argv = ["--quiet", "pseudo-labels", "--data", str(tiny_synth), "--method", "grabcut", "--limit", "4"]
    argv += ["--workers", "1"]
    assert main([*argv, "--out", str(tmp_path / "full")]) == 0
    real = LabelsFolder.write_image
    calls = {"n": 0}

    def dies_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(LabelsFolder, "write_image", dies_on_third)
    assert main([*argv, "--out", str(tmp_path / "cut")]) == 130
    assert len(list((tmp_path / "cut" / "images").glob("*.npz"))) == 2
    assert not (tmp_path / "cut" / "instances.json").exists()
    monkeypatch.setattr(LabelsFolder, "write_image", real)
    assert main([*argv, "--out", str(tmp_path / "cut")]) == 0
    assert _outputs(tmp_path / "cut") == _outputs(tmp_path / "full")


def test_demo_smoke(tmp_path, smoke_detector, capsys) -> None:
    assert (
        main(
            [
                "--quiet",
                "demo",
                "--out",
                str(tmp_path / "demo"),
                "--images",
                "2",
                "--detector",
                str(smoke_detector),
            ]
        )
        == 0
    )
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    from bbam_lite.experiments import demo_variants

    assert tuple(summary["methods"]) == demo_variants()
    assert {"box", "box_crf", "grabcut", "bbam", "bbam_paper"} <= set(summary["methods"])
    assert set(summary["bbam_settings"]) == {"bbam", "bbam_paper"}
    for row in summary["methods"].values():
        assert 0 <= row["miou"] <= 1 and 0 <= row["mean_instance_iou"] <= 1
    assert (tmp_path / "demo" / "comparison.png").stat().st_size > 10_000
    assert "bbam_paper" in capsys.readouterr().out
    # only labels made with the detector record it: a newly shipped detector reuses the others
    recorded = {
        m: "detector" in json.loads((tmp_path / "demo" / "labels" / m / "settings.json").read_text())
        for m in summary["methods"]
    }
    from bbam_lite.pseudo.methods import get_method, variants

    assert recorded == {m: get_method(variants()[m].method).needs_detector for m in summary["methods"]}
    assert recorded["bbam"] and recorded["bbam_paper"] and not recorded["box"]
