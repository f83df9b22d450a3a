"""Files that are not the checkpoint a command expects: one line saying what the file is and what
was expected, exit 2, never torch's advice to load with ``weights_only=False``; and detector
checkpoints that record their backbone's norm (old ones still load)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from PIL import Image

from bbam_lite.cli import main
from bbam_lite.compat import import_torchvision
from bbam_lite.detector.model import (
    build_detector,
    get_profile,
    load_detector,
    norm_of_weights,
    save_detector,
)
from bbam_lite.segment.checkpoint import load_segmenter
from bbam_lite.utils.checkpoints import CheckpointError, checkpoint_kind, read_checkpoint

tv = import_torchvision()

EXPECTED = (
    "expected a bbam-lite detector checkpoint (train-detector's detector.pt) or torchvision:ARCH:WEIGHTS"
)


def _random_bytes(path):
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())


def _lfs_pointer(path):
    path.write_text(
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n"
    )


def _text(path):
    path.write_text("not a checkpoint\n")


def _jpeg(path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, format="JPEG")


def _empty(path):
    path.write_bytes(b"")


def _segmenter(path):
    torch.save({"task": "semantic", "config": {}, "class_names": ["background", "a"], "state_dict": {}}, path)


def _torchvision_state_dict(path):
    model = tv.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None)
    torch.save(model.state_dict(), path)


def _training(path):
    torch.save({"model": {}, "optimizer": {}, "iteration": 3, "elapsed": 1.0}, path)


def _python_objects(path):
    torch.save({"args": argparse.Namespace(a=1)}, path)


def _truncated(path, smoke_detector):
    path.write_bytes(smoke_detector.read_bytes()[:2000])


CASES = [
    (_random_bytes, "not a PyTorch file (unknown binary data)"),
    (_lfs_pointer, "a Git LFS pointer (a text file; fetch the real file with git lfs pull)"),
    (_text, "a text file"),
    (_jpeg, "a JPEG image"),
    (_empty, "an empty file"),
    (_segmenter, "a bbam-lite segmentation network's checkpoint (train-seg's model.pt)"),
    (
        _torchvision_state_dict,
        "a torchvision Faster R-CNN state dict without its architecture (give it as torchvision:ARCH:PATH)",
    ),
    (_training, "a training checkpoint (a run's checkpoint.pt"),
    (_python_objects, "a PyTorch file holding Python objects that safe loading (weights_only) refuses"),
    (_truncated, "a damaged or truncated PyTorch file"),
]


@pytest.mark.parametrize(("make", "what"), CASES, ids=[m.__name__.strip("_") for m, _ in CASES])
def test_detector_option_names_what_the_file_is(make, what, tmp_path, tiny_synth, smoke_detector, capsys):
    path = tmp_path / "file.pt"
    make(path, smoke_detector) if make is _truncated else make(path)
    argv = ["--quiet", "pseudo-labels", "--data", str(tiny_synth), "--method", "bbam"]
    argv += ["--out", str(tmp_path / "labels"), "--detector", str(path), "--limit", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"bbam-lite pseudo-labels: error: {path}: {what}"), err
    assert err.endswith(EXPECTED), err
    assert "weights_only=False" not in err and "issue" not in err
    assert not (tmp_path / "labels" / "semantic").exists()


def test_segmentation_loader_uses_the_same_classifier(tmp_path, smoke_detector) -> None:
    with pytest.raises(CheckpointError) as err:
        load_segmenter(smoke_detector)
    assert str(err.value) == (
        f"{smoke_detector}: a bbam-lite detector checkpoint; expected a bbam-lite segmentation "
        "checkpoint (train-seg's model.pt)"
    )
    _jpeg(tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="a JPEG image; expected a bbam-lite segmentation"):
        load_segmenter(tmp_path / "x.pt")


def test_checkpoint_kinds() -> None:
    assert checkpoint_kind([1, 2]) == "other"
    assert checkpoint_kind({"w": torch.zeros(1)}) == "state-dict"
    assert checkpoint_kind({"config": {}, "class_names": [], "state_dict": {}}) == "detector"


def test_missing_file(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "none.pt", "detector", "a detector")


@pytest.mark.parametrize("norm", ["frozen_batch_norm", "batch_norm"])
def test_checkpoints_record_the_backbone_norm(norm, tmp_path, monkeypatch) -> None:
    cfg = get_profile("paper-r50", fpn_channels=16, representation_size=16, min_size=64, max_size=96)
    torch.manual_seed(0)
    model = build_detector(cfg, 2, norm)
    norm_class = tv.ops.misc.FrozenBatchNorm2d if norm == "frozen_batch_norm" else torch.nn.BatchNorm2d
    assert any(type(m) is norm_class for m in model.backbone.modules())
    path = tmp_path / "det.pt"
    save_detector(path, model, cfg, ["background", "a", "b"], {})
    payload = torch.load(path, weights_only=True)
    assert payload["architecture"] == {"norm": norm}
    # the norm is rebuilt from the checkpoint, whatever this machine's torch cache holds
    import bbam_lite.detector.model as model_module

    monkeypatch.setattr(model_module, "in_torch_cache", lambda weights: pytest.fail("cache consulted"))
    loaded = load_detector(path).model
    assert any(type(m) is norm_class for m in loaded.backbone.modules())
    # a checkpoint made before the norm was recorded: read from its weights
    assert norm_of_weights(payload["state_dict"]) == norm
    del payload["architecture"]
    torch.save(payload, tmp_path / "old.pt")
    old = load_detector(tmp_path / "old.pt").model
    for (k, a), b in zip(model.state_dict().items(), old.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_the_shipped_detector_loads_as_before() -> None:
    from bbam_lite.weights import default_detector_path

    payload = torch.load(default_detector_path(), weights_only=True)
    assert "architecture" not in payload and norm_of_weights(payload["state_dict"]) == "group_norm"
    state = load_detector(default_detector_path()).model.state_dict()
    assert list(state) == list(payload["state_dict"])
    assert all(torch.equal(state[k], v) for k, v in payload["state_dict"].items())


def test_segmentation_checkpoints_record_the_backbone_norm(tmp_path, monkeypatch) -> None:
    import bbam_lite.segment.semantic as semantic
    from bbam_lite.segment.checkpoint import build_model, save_segmenter

    cfg = semantic.get_semantic_profile("lite", backbone="resnet50")
    model = build_model("semantic", cfg, 2, "frozen_batch_norm")
    save_segmenter(tmp_path / "model.pt", "semantic", model, cfg, ["background", "a", "b"], {})
    assert torch.load(tmp_path / "model.pt", weights_only=True)["architecture"] == {
        "norm": "frozen_batch_norm"
    }
    from bbam_lite.detector import model as model_module  # the one place the cache is consulted

    monkeypatch.setattr(model_module, "in_torch_cache", lambda weights: pytest.fail("cache consulted"))
    loaded = load_segmenter(tmp_path / "model.pt").model
    assert any(isinstance(m, tv.ops.misc.FrozenBatchNorm2d) for m in loaded.backbone.modules())
