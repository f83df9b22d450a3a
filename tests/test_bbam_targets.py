"""Head targets of Eq. 5 as callables (bbam_lite.attribution.targets): each against its formula
(bit for bit: the maps depend on the exact operations), the registry, a new target as one class,
the heads' one forward against torchvision's own composition, and the presets' defaults."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

import pytest
import torch

from bbam_lite.attribution.bbam import PRESETS, BBAMConfig
from bbam_lite.attribution.loss import head_terms
from bbam_lite.attribution.targets import HeadRows, HeadTarget, get_target, register, target_names
from bbam_lite.attribution.targets.base import REGISTRY
from bbam_lite.compat import import_torchvision
from bbam_lite.detector.heads import frozen, roi_head_outputs
from bbam_lite.detector.model import build_detector, get_profile

import_torchvision()
from torchvision.ops import boxes as box_ops  # noqa: E402


def _rows(seed: int = 0, n: int = 7, c: int = 5) -> tuple[HeadRows, HeadRows]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, c, (n,), generator=g)
    out = HeadRows(torch.randn(n, 4, generator=g), torch.softmax(torch.randn(n, c, generator=g), -1), labels)
    clean = HeadRows(
        torch.randn(n, 4, generator=g), torch.softmax(torch.randn(n, c, generator=g), -1), labels
    )
    return out, clean


def test_targets_equal_their_formulas_bit_for_bit() -> None:
    out, clean = _rows()
    d = (out.deltas - clean.deltas).abs()
    idx = torch.arange(len(out.probs))
    expected = {
        ("box", "sum"): d.sum(-1),
        ("box", "half-mean"): d.mean(-1) / 2,
        ("cls", "all"): (out.probs - clean.probs).abs().sum(-1),
        ("cls", "target-half"): (out.probs[idx, out.labels] - clean.probs[idx, out.labels]).abs() / 2,
    }
    for (head, name), value in expected.items():
        got = get_target(head, name)(out, clean)
        assert got.shape == (7,) and torch.equal(got, value), (head, name)
    # and by hand, row by row (one value per positive)
    row = 3
    by_hand = sum(abs(float(a) - float(b)) for a, b in zip(out.deltas[row], clean.deltas[row], strict=True))
    assert float(get_target("box", "sum")(out, clean)[row]) == pytest.approx(by_hand, rel=1e-6)
    assert float(get_target("box", "half-mean")(out, clean)[row]) == pytest.approx(by_hand / 8, rel=1e-6)
    k = int(out.labels[row])
    assert float(get_target("cls", "target-half")(out, clean)[row]) == pytest.approx(
        abs(float(out.probs[row, k]) - float(clean.probs[row, k])) / 2, rel=1e-6
    )


def test_one_label_for_all_rows_equals_per_row_labels() -> None:
    out, clean = _rows(1)
    same = HeadRows(out.deltas, out.probs, 2), HeadRows(clean.deltas, clean.probs, 2)
    per_row = HeadRows(out.deltas, out.probs, torch.full((7,), 2)), HeadRows(clean.deltas, clean.probs, 2)
    target = get_target("cls", "target-half")
    assert torch.equal(target(*same), target(*per_row))


@pytest.mark.parametrize("preset", ["paper", "official"])
def test_head_terms_are_the_configs_targets(preset: str) -> None:
    cfg = PRESETS[preset]
    out, clean = _rows(2)
    box, cls = head_terms(cfg, out.deltas, out.probs, clean.deltas, clean.probs, out.labels)
    assert torch.equal(box, get_target("box", cfg.box_loss)(out, clean))
    assert torch.equal(cls, get_target("cls", cfg.cls_loss)(out, clean))


def test_registry_names_and_refusals() -> None:
    assert set(target_names("box")) == {"sum", "half-mean"}
    assert set(target_names("cls")) == {"all", "target-half"}
    with pytest.raises(ValueError, match="unknown box target 'nope'; known: "):
        get_target("box", "nope")
    with pytest.raises(ValueError, match="cls_loss"):
        BBAMConfig(cls_loss="nope")

    class Clash(HeadTarget):
        name, head = "sum", "box"

    with pytest.raises(ValueError, match="already registered"):
        register(Clash)

    class Neither(HeadTarget):
        name, head = "x", "mask"

    with pytest.raises(ValueError, match="head must be"):
        register(Neither)


def test_a_new_target_is_one_class() -> None:
    """A class-head-only score registered in one place becomes a valid cls_loss of the config
    and the loss uses it."""

    @register
    class ScoreDrop(HeadTarget):
        name, head = "score-drop", "cls"

        def __call__(self, out: HeadRows, clean: HeadRows) -> torch.Tensor:
            idx = torch.arange(len(out.probs))
            return (clean.probs[idx, out.labels] - out.probs[idx, out.labels]).clamp(min=0)

    try:
        cfg = BBAMConfig(cls_loss="score-drop")
        out, clean = _rows(3)
        _, cls = head_terms(cfg, out.deltas, out.probs, clean.deltas, clean.probs, out.labels)
        idx = torch.arange(7)
        assert torch.equal(cls, (clean.probs[idx, out.labels] - out.probs[idx, out.labels]).clamp(min=0))
    finally:
        del REGISTRY["cls", "score-drop"]


def test_default_config_is_the_cli_default_preset() -> None:
    assert BBAMConfig() == PRESETS["official"]
    paper = PRESETS["paper"]
    assert (paper.preset, paper.n_jitter, paper.iou_thresholds, paper.init) == ("paper", 200, (0.8,), "ones")
    assert (paper.min_positives, paper.max_positives, paper.tv_diagonal) == (0, None, False)
    assert (paper.box_loss, paper.cls_loss) == ("sum", "all")
    differ = {f.name for f in fields(BBAMConfig) if getattr(paper, f.name) != getattr(BBAMConfig(), f.name)}
    assert differ == {
        "preset", "n_jitter", "iou_thresholds", "min_positives", "max_positives", "init",
        "tv_diagonal", "box_loss", "cls_loss",
    }  # fmt: skip


def _torchvision_heads(model, images, proposals):
    """The heads' forward composed from the detector's own torchvision modules (what
    ``roi_head_outputs`` computed before its forward was shared with the engine)."""
    orig = images.shape[-2:]
    image_list, _ = model.transform(list(images))
    scaled = []
    for props, (h, w) in zip(proposals, image_list.image_sizes, strict=True):
        ratio = props.new_tensor([w / orig[1], h / orig[0], w / orig[1], h / orig[0]])
        scaled.append(props.to(images.dtype) * ratio)
    features = model.backbone(image_list.tensors)
    heads = model.roi_heads
    pooled = heads.box_roi_pool(features, scaled, image_list.image_sizes)
    logits, regression = heads.box_predictor(heads.box_head(pooled))
    n = logits.shape[-1]
    boxes = heads.box_coder.decode(regression, scaled).reshape(-1, n, 4)
    out, start = [], 0
    for props, (h, w) in zip(scaled, image_list.image_sizes, strict=True):
        b = box_ops.clip_boxes_to_image(boxes[start : start + len(props)], (h, w))
        out.append(b * b.new_tensor([orig[1] / w, orig[0] / h, orig[1] / w, orig[0] / h]))
        start += len(props)
    return regression.reshape(-1, n, 4), torch.softmax(logits, -1), torch.cat(out)


@pytest.mark.parametrize("size", [(160, 160), (96, 120)])  # the detector's input size, and resized
def test_the_heads_forward_equals_torchvisions_composition(size) -> None:
    torch.manual_seed(0)
    model = build_detector(get_profile("smoke"), num_classes=3).eval()
    g = torch.Generator().manual_seed(5)
    h, w = size
    images = torch.rand(2, 3, h, w, generator=g)
    props = [
        torch.tensor([[4.0, 5.0, 50.0, 60.0], [20.0, 10.0, 90.0, 80.0]]),
        torch.tensor([[1.0, 2.0, 30.0, 33.0]]),
    ]
    with frozen(model):
        x1, x2 = images.clone().requires_grad_(True), images.clone().requires_grad_(True)
        ours = roi_head_outputs(model, x1, props)
        deltas, probs, boxes = _torchvision_heads(model, x2, props)
        assert torch.equal(ours.deltas, deltas) and torch.equal(ours.probs, probs)
        assert torch.equal(ours.boxes, boxes)
        (ours.deltas.abs().sum() + ours.probs[:, 1].sum() + ours.boxes.sum()).backward()
        (deltas.abs().sum() + probs[:, 1].sum() + boxes.sum()).backward()
    assert torch.equal(x1.grad, x2.grad)


def test_loss_does_not_import_the_optimisation() -> None:
    """attribution.loss (and the targets) sit below attribution.bbam: no import cycle."""
    code = "import sys, bbam_lite.attribution.loss; print('bbam_lite.attribution.bbam' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
