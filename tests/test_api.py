"""The public API: docs/api.md's examples run as written, BBAM's maps equal the command line's bit
for bit, every torchvision architecture goes through it, and bad arguments are one line."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

import bbam_lite
from bbam_lite.cli import main
from bbam_lite.compat import import_torchvision
from bbam_lite.data.synthetic import CLASSES
from bbam_lite.detector.torchvision_models import ARCHITECTURES
from bbam_lite.pseudo.folder import LabelsFolder

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
SYNTH = ["background", *CLASSES]
CLASS_MAP = {"house": "bed", "tree": "potted plant"}


def _blocks(text: str) -> list[tuple[str, str]]:
    return re.findall(r"```(python|bash)\n(.*?)```", text, flags=re.S)


def test_docs_api_examples_run(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = _blocks(DOC.read_text(encoding="utf-8"))
    assert [kind for kind, _ in blocks].count("python") >= 4
    namespace: dict = {}
    for kind, code in blocks:
        if kind == "bash":
            for line in code.splitlines():
                argv = shlex.split(line)
                assert argv[0] == "bbam-lite", line
                assert main(["--quiet", *argv[1:]]) == 0, capsys.readouterr().err
        else:
            exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 (the page's own examples)
    assert Path("maps.png").stat().st_size > 0
    assert json.loads(Path("labels/bbam/quality.json").read_text())["images"] == 2
    out = capsys.readouterr().out
    assert "GrabCut: mIoU" in out and "BBAM: mIoU" in out


def test_api_maps_equal_the_cli_maps(tiny_synth, tmp_path) -> None:
    out = tmp_path / "labels"
    argv = ["--quiet", "pseudo-labels", "--data", str(tiny_synth), "--method", "bbam", "--profile", "lite"]
    argv += ["--limit", "3", "--iterations", "8", "--workers", "1", "--batch-images", "1"]
    assert main([*argv, "--out", str(out)]) == 0  # one image per batch: the API's batches
    data = bbam_lite.load_dataset(tiny_synth)
    explainer = bbam_lite.BBAM(
        bbam_lite.load_detector(class_names=data.class_names), profile="lite", mean=data, iterations=8
    )
    folder = LabelsFolder(out)
    for rec in list(data)[:3]:
        result = explainer.attribute(rec.path, rec.boxes, rec.labels, image_id=rec.image_id)
        stored = folder.read_maps(rec.image_id)
        assert np.array_equal(result.maps.astype(np.float16), stored)  # the folder stores float16
        instances, info = folder.read_image(rec.image_id)
        assert all(np.array_equal(i.fg, m) for i, m in zip(instances, result.masks, strict=True))
        assert all(np.array_equal(i.ignore, m) for i, m in zip(instances, result.ignore, strict=True))
        assert info == json.loads(json.dumps(result.info))
    # another image id is another jitter: other maps (the id is what ties the two together)
    rec = data[0]
    other = explainer.attribute(rec.path, rec.boxes, rec.labels, image_id=rec.image_id + 1000)
    assert not np.array_equal(other.maps.astype(np.float16), folder.read_maps(rec.image_id))


def _model(arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    builder = getattr(import_torchvision().models.detection, arch)
    return builder(weights=None, weights_backbone=None, min_size=64, max_size=96).eval()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_each_torchvision_architecture_through_the_api(arch, tiny_synth) -> None:
    data = bbam_lite.load_dataset(tiny_synth)
    model = _model(arch)
    detector = bbam_lite.load_detector(model, class_names=data.class_names, class_map=CLASS_MAP)
    rec = data[0]
    result = bbam_lite.BBAM(detector, profile="lite", iterations=2, n_jitter=16).attribute(
        rec.load_image(), rec.boxes, rec.labels
    )
    assert result.maps.shape == (len(rec.boxes), rec.height, rec.width)
    assert np.isfinite(result.maps).all() and result.maps.min() >= 0 and result.maps.max() <= 1
    assert [r.key for r in result.results] == [(0, k) for k in range(len(rec.boxes))]  # image_id 0
    # a bare module is used as given (its own class indices) and never modified
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bbam_lite.BBAM(model, profile="lite", iterations=1, n_jitter=8).attribute(
        rec.load_image(), rec.boxes[:1], [1]
    )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.slow
@pytest.mark.parametrize("arch", [a for a in ARCHITECTURES if a != "fasterrcnn_mobilenet_v3_large_320_fpn"])
def test_each_torchvision_architecture_through_the_cli(arch, tiny_synth, tmp_path, capsys) -> None:
    """(mobilenet_v3_large_320_fpn: tests/test_torchvision_detectors.py)"""
    weights = tmp_path / "W.pth"
    torch.save(_model(arch).state_dict(), weights)
    out = tmp_path / "labels"
    argv = ["--quiet", "pseudo-labels", "--data", str(tiny_synth), "--method", "bbam", "--profile", "lite"]
    argv += ["--limit", "1", "--iterations", "1", "--workers", "1"]
    argv += ["--detector", f"torchvision:{arch}:{weights}"]
    assert main([*argv, "--class-map", "house=bed,tree=potted plant", "--out", str(out)]) == 0, (
        capsys.readouterr().err
    )
    settings = json.loads((out / "settings.json").read_text())
    assert settings["detector"] == f"torchvision:{arch}:{weights.resolve()}"
    rec = bbam_lite.load_dataset(tiny_synth)[0]
    assert len(LabelsFolder(out).read_maps(rec.image_id)) == len(rec.boxes)


def test_pseudo_labels_records_an_in_memory_detector(tiny_synth, tmp_path) -> None:
    data = bbam_lite.load_dataset(tiny_synth)
    model = _model("fasterrcnn_mobilenet_v3_large_320_fpn")
    detector = bbam_lite.load_detector(model, class_names=SYNTH, class_map=CLASS_MAP)
    q = bbam_lite.pseudo_labels(
        data, "box", detector, tmp_path / "a", boxes="detector", detector_score=0.0, limit=1, progress=False
    )
    assert q["images"] == 1
    recorded = json.loads((tmp_path / "a" / "settings.json").read_text())
    assert set(recorded["detector"]) == {"state_dict_sha256"}
    assert recorded["detector_classes"] == ["person", "car", "airplane", "bed", "potted plant", "bottle"]
    # a folder path and a split name work as well as a dataset; no detector: the method needs none
    q = bbam_lite.pseudo_labels(tiny_synth, "box", out=tmp_path / "b", split="val", progress=False)
    assert q["images"] == len(bbam_lite.load_dataset(tiny_synth, "val"))


def test_bad_arguments_are_one_line(tiny_synth) -> None:
    data = bbam_lite.load_dataset(tiny_synth)
    detector = bbam_lite.load_detector(class_names=data.class_names)
    with pytest.raises(TypeError, match="not_a_setting"):
        bbam_lite.BBAM(detector, not_a_setting=1)
    with pytest.raises(ValueError, match="unknown BBAM preset|preset"):
        bbam_lite.BBAM(detector, preset="nope")
    explainer = bbam_lite.BBAM(detector, profile="lite", iterations=1)
    rec = data[0]
    with pytest.raises(ValueError, match="uint8 RGB"):
        explainer.attribute(rec.load_image().astype(np.float32), rec.boxes, rec.labels)
    with pytest.raises(ValueError, match="2 boxes but 1 labels"):
        explainer.attribute(rec.load_image(), np.zeros((2, 4)), [1])
    with pytest.raises(ValueError, match="3 values"):
        bbam_lite.BBAM(detector, mean=[0.5, 0.5])
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        bbam_lite.nothing  # noqa: B018
