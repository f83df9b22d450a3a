"""torchvision Faster R-CNNs as BBAM detectors: load_detector on instances and on
``torchvision:ARCH:WEIGHTS``, the class matching, and ``pseudo-labels`` with one (randomly
initialised models, small inputs: nothing is downloaded)."""

from __future__ import annotations

import json

import pytest
import torch

from bbam_lite.cli import main
from bbam_lite.compat import import_torchvision
from bbam_lite.data.synthetic import CLASSES
from bbam_lite.detector.classes import ClassMatchError, ClassSelection, match_classes, parse_class_map
from bbam_lite.detector.heads import roi_head_outputs
from bbam_lite.detector.model import LoadedDetector, load_detector
from bbam_lite.detector.torchvision_models import ARCHITECTURES, coco_class_names

tv = import_torchvision()

SYNTH = ["background", *CLASSES]  # person, car, plane, house, tree, bottle
COCO = coco_class_names()
SMALL = {"min_size": 64, "max_size": 96}


def _model(arch: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    builder = getattr(tv.models.detection, arch)
    return builder(weights=None, weights_backbone=None, **{**SMALL, **kwargs}).eval()


def test_coco_names_are_torchvision_metadata() -> None:
    assert len(COCO) == 91 and COCO[0] == "__background__" and COCO.count("N/A") == 10
    assert COCO[1] == "person" and COCO[5] == "airplane" and COCO[44] == "bottle"


def test_voc_classes_match_coco_exactly() -> None:
    from bbam_lite.data.voc import VOC_CLASSES

    voc = ["background", *VOC_CLASSES]
    indices = match_classes(voc, COCO)
    got = dict(zip(voc[1:], (COCO[i] for i in indices[1:]), strict=True))
    assert indices[0] == 0
    assert got == {
        "aeroplane": "airplane",
        "bicycle": "bicycle",
        "bird": "bird",
        "boat": "boat",
        "bottle": "bottle",
        "bus": "bus",
        "car": "car",
        "cat": "cat",
        "chair": "chair",
        "cow": "cow",
        "diningtable": "dining table",
        "dog": "dog",
        "horse": "horse",
        "motorbike": "motorcycle",
        "person": "person",
        "pottedplant": "potted plant",
        "sheep": "sheep",
        "sofa": "couch",
        "train": "train",
        "tvmonitor": "tv",
    }


def test_synthetic_classes_with_a_class_map() -> None:
    indices = match_classes(SYNTH, COCO, "house=bed, tree=potted plant")
    assert [COCO[i] for i in indices] == [
        "__background__",
        "person",
        "car",
        "airplane",
        "bed",
        "potted plant",
        "bottle",
    ]
    assert parse_class_map({"tree": "kite"}) == {"tree": "kite"}


@pytest.mark.parametrize(
    ("class_map", "message"),
    [
        (
            None,
            "dataset class 'house' has no class of the detector's by that name; name one with "
            "--class-map house=DETECTOR_NAME",
        ),
        ("house=bed", "dataset class 'tree'"),
        ("house=bed,tree=oak", "--class-map tree=oak: the detector has no class 'oak'"),
        ("house=bed,tree=kite,boat=boat", "--class-map names 'boat', which is not a dataset class"),
        ("house", "--class-map: 'house' is not DATASET_NAME=DETECTOR_NAME"),
    ],
)
def test_class_matching_errors(class_map, message) -> None:
    with pytest.raises(ClassMatchError) as err:
        match_classes(SYNTH, COCO, class_map)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_class_selection_keeps_each_selected_class_probability() -> None:
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

    torch.manual_seed(0)
    full = FastRCNNPredictor(16, 91)
    indices = match_classes(SYNTH, COCO, "house=bed,tree=kite")
    sel = ClassSelection(full, indices)
    x = torch.randn(5, 16)
    logits, deltas = full(x)
    s_logits, s_deltas = sel(x)
    assert s_logits.shape == (5, 7) and s_deltas.shape == (5, 28)
    p, q = torch.softmax(logits, -1), torch.softmax(s_logits, -1)
    torch.testing.assert_close(q[:, 1:], p[:, indices[1:]])
    torch.testing.assert_close(q[:, 0], 1 - p[:, indices[1:]].sum(-1))
    d = deltas.reshape(5, 91, 4)
    torch.testing.assert_close(s_deltas.reshape(5, 7, 4), d[:, [0, *indices[1:]]])
    assert list(sel.state_dict()) == list(full.state_dict())  # the full predictor's weights


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_each_architecture_loads_and_runs_the_heads(arch) -> None:
    model = _model(arch)
    loaded = load_detector(model, "cpu", class_names=SYNTH, class_map="house=bed,tree=potted plant")
    assert isinstance(loaded, LoadedDetector) and loaded.class_names == SYNTH and loaded.config is None
    assert loaded.provenance["detector_classes"] == [
        "person",
        "car",
        "airplane",
        "bed",
        "potted plant",
        "bottle",
    ]
    assert model.roi_heads.box_predictor.cls_score.out_features == 91  # the instance is not modified
    image = torch.rand(1, 3, 80, 72)
    boxes = [torch.tensor([[10.0, 12.0, 50.0, 60.0], [5.0, 5.0, 30.0, 40.0]])]
    ours = roi_head_outputs(loaded.model, image, boxes)
    assert ours.probs.shape == (2, 7) and ours.deltas.shape == (2, 7, 4)
    with torch.no_grad():
        full = roi_head_outputs(model, image, boxes)
    keep = [COCO.index(n) for n in loaded.provenance["detector_classes"]]
    torch.testing.assert_close(ours.probs[:, 1:], full.probs[:, keep])
    torch.testing.assert_close(ours.boxes[:, 1:], full.boxes[:, keep])


def test_spec_string_loads_a_state_dict_file(tmp_path) -> None:
    arch = "fasterrcnn_mobilenet_v3_large_320_fpn"
    model = _model(arch)
    weights = tmp_path / "w.pth"
    torch.save(model.state_dict(), weights)
    loaded = load_detector(
        f"torchvision:{arch}:{weights}", class_names=SYNTH, class_map="house=bed,tree=kite"
    )
    assert loaded.provenance["detector"] == f"torchvision:{arch}:{weights.resolve()}"
    # the weights are the file's (BatchNorm frozen: its running statistics, no batch counter)
    state = loaded.model.state_dict()
    for k, v in model.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(state[k], v), k
    bn = [m for m in loaded.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert not bn


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("torchvision:fasterrcnn_resnet18:W", "unknown architecture 'fasterrcnn_resnet18'"),
        ("torchvision:fasterrcnn_resnet50_fpn", "expected torchvision:ARCH:WEIGHTS_FILE"),
        ("torchvision:fasterrcnn_resnet50_fpn:{tmp}/missing.pth", "not found"),
    ],
)
def test_bad_spec_strings(spec, message, tmp_path, capsys) -> None:
    from bbam_lite.utils.checkpoints import CheckpointError

    with pytest.raises(CheckpointError, match=message):
        load_detector(spec.format(tmp=tmp_path), class_names=SYNTH)


def test_architecture_mismatch_is_one_line(tmp_path) -> None:
    weights = tmp_path / "w.pth"
    torch.save(_model("fasterrcnn_mobilenet_v3_large_320_fpn").state_dict(), weights)
    from bbam_lite.utils.checkpoints import CheckpointError

    with pytest.raises(CheckpointError) as err:
        load_detector(f"torchvision:fasterrcnn_resnet50_fpn:{weights}", class_names=SYNTH)
    msg = str(err.value)
    assert "weights do not fit torchvision's fasterrcnn_resnet50_fpn" in msg and "\n" not in msg
    assert len(msg) < 400


@pytest.fixture(scope="module")
def mobilenet_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("tv") / "W.pth"
    torch.save(_model("fasterrcnn_mobilenet_v3_large_320_fpn").state_dict(), path)
    return path


def test_pseudo_labels_with_a_torchvision_detector(tmp_path, tiny_synth, mobilenet_weights, capsys) -> None:
    spec = f"torchvision:fasterrcnn_mobilenet_v3_large_320_fpn:{mobilenet_weights}"
    out = tmp_path / "labels"
    argv = ["--quiet", "pseudo-labels", "--data", str(tiny_synth), "--method", "bbam"]
    argv += ["--limit", "2", "--iterations", "2", "--workers", "1", "--detector", spec, "--out"]
    assert main([*argv, str(out), "--class-map", "house=bed,tree=potted plant"]) == 0, capsys.readouterr().err
    settings = json.loads((out / "settings.json").read_text())
    assert (
        settings["detector"]
        == f"torchvision:fasterrcnn_mobilenet_v3_large_320_fpn:{mobilenet_weights.resolve()}"
    )
    assert settings["detector_classes"] == ["person", "car", "airplane", "bed", "potted plant", "bottle"]
    assert len(list((out / "semantic").glob("*.png"))) == 2
    # another class map is another detector: the folder refuses it
    assert main([*argv, str(out), "--class-map", "house=bed,tree=kite"]) == 2
    capsys.readouterr()
    # a missing class: one line naming it and the option, exit 2
    assert main([*argv, str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'house'" in err and "--class-map house=" in err, err
    assert not (tmp_path / "other").exists()


def test_own_model_with_its_class_names() -> None:
    model = _model("fasterrcnn_mobilenet_v3_large_320_fpn", num_classes=4)
    names = ["bg", "Tree", "house", "plane"]
    with pytest.raises(ValueError, match="class head has 4 outputs"):
        load_detector(model, class_names=SYNTH)
    loaded = load_detector(model, class_names=["background", "airplane", "tree"], detector_classes=names)
    assert loaded.provenance["detector_classes"] == ["plane", "Tree"]
    assert loaded.model.roi_heads.box_predictor.keep.tolist() == [3, 1]
