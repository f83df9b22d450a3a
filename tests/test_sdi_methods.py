"""Simple Does It's label generators (Box^i and M∩G+), added through the method registry."""

from __future__ import annotations

import numpy as np
import pytest

from bbam_lite.pseudo import methods
from bbam_lite.pseudo.labels import IGNORE, box_region
from bbam_lite.pseudo.methods import ImageBoxes, LabelContext
from bbam_lite.pseudo.methods import mcg_grabcut as mg
from bbam_lite.pseudo.methods.box_inner import box_inner_instances, inner_box
from bbam_lite.pseudo.settings import PseudoLabelSettings


def test_box_inner_is_the_central_20_percent_and_the_rest_of_the_box_ignored() -> None:
    box = np.array([20.0, 10.0, 120.0, 60.0], np.float32)  # 100 x 50
    inner = inner_box(box)
    w, h = inner[2] - inner[0], inner[3] - inner[1]
    assert w * h == pytest.approx(0.2 * 100 * 50, rel=1e-5) and w / h == pytest.approx(2.0)
    assert (inner[0] + inner[2]) / 2 == pytest.approx(70.0) and (inner[1] + inner[3]) / 2 == pytest.approx(
        35.0
    )
    (inst,) = box_inner_instances(box[None], np.array([3]), 80, 140)
    in_box = box_region(box, 80, 140)
    assert inst.fg.sum() == pytest.approx(0.2 * in_box.sum(), rel=0.06)  # pixel centres
    assert (inst.fg == box_region(inner, 80, 140)).all()
    assert (inst.ignore == (in_box & ~inst.fg)).all() and not (inst.fg & inst.ignore).any()
    sem, visible = methods.get_method("box_inner").semantic(PseudoLabelSettings("box_inner"), [inst], 80, 140)
    assert (sem[inst.fg] == 3).all() and (sem[inst.ignore] == IGNORE).all() and (sem[~in_box] == 0).all()
    assert (visible[0] == inst.fg).all()


def test_box_inner_overlapping_boxes_smaller_on_top() -> None:
    big = np.array([0.0, 0.0, 100.0, 100.0], np.float32)
    small = np.array([40.0, 40.0, 60.0, 60.0], np.float32)
    insts = box_inner_instances(np.stack([big, small]), np.array([1, 2]), 100, 100)
    sem, visible = methods.get_method("box_inner").semantic(PseudoLabelSettings("box_inner"), insts, 100, 100)
    small_inner = box_region(inner_box(small), 100, 100)
    assert (sem[small_inner] == 2).all()
    ring = box_region(small, 100, 100) & ~small_inner
    assert (sem[ring] == IGNORE).all()  # the small box's ring over the big box's centre
    assert not (visible[0] & box_region(small, 100, 100)).any()


def test_mcg_grabcut_agreement_and_ignore_by_hand() -> None:
    inside = np.zeros((6, 8), bool)
    inside[1:5, 1:7] = True
    grab = np.zeros_like(inside)
    grab[1:4, 2:6] = True
    prop = np.zeros_like(inside)
    prop[2:5, 3:7] = True
    prop[0, 0] = True  # outside the box: never labelled
    fg, ignore = mg.agreement(grab, prop, inside)
    assert (fg == (grab & prop & inside)).all() and fg.sum() == 2 * 3
    assert (ignore == ((grab ^ prop) & inside)).all() and not ignore[0, 0]
    assert not (fg & ignore).any()
    fg_none, ignore_none = mg.agreement(grab, None, inside)  # no proposal: nothing agreed
    assert not fg_none.any() and (ignore_none == grab).all()


def test_best_proposal_is_the_one_overlapping_the_box_most() -> None:
    box = np.array([2.0, 2.0, 6.0, 6.0])
    props = np.zeros((3, 8, 8), bool)
    props[0, 0:8, 0:8] = True  # the whole image: IoU 16/64
    props[1, 2:6, 3:6] = True  # most of the box: IoU 12/16
    props[2, 7:8, 7:8] = True  # elsewhere
    assert (mg.best_proposal(props, box) == props[1]).all()
    assert mg.best_proposal(props[2:], box) is None and mg.best_proposal(props[:0], box) is None


def test_mcg_grabcut_labels_where_grabcut_and_the_proposal_agree(monkeypatch, tiny_synth) -> None:
    from bbam_lite.data.synthetic import read_synthetic

    rec = list(read_synthetic(tiny_synth, "train"))[0]
    image = rec.load_image()
    h, w = image.shape[:2]
    box = np.array([10.0, 10.0, 50.0, 40.0], np.float32)
    grab = box_region(np.array([10.0, 10.0, 35.0, 40.0]), h, w)  # left part of the box
    prop = np.zeros((1, h, w), bool)
    prop[0] = box_region(np.array([20.0, 10.0, 50.0, 40.0]), h, w)  # right part
    monkeypatch.setattr(mg, "grabcut_box", lambda img, b: (grab, True))
    monkeypatch.setattr(mg, "mask_proposals", lambda img, path, mcg_dir: prop)
    ctx = LabelContext(PseudoLabelSettings("mcg_grabcut"))
    item = ImageBoxes(rec, image, box[None], np.array([2]), np.ones(1, np.float32))
    (inst,) = methods.get_method("mcg_grabcut").label(ctx, item)
    inside = box_region(box, h, w)
    assert (inst.fg == (grab & prop[0] & inside)).all() and inst.fg.any()
    assert (inst.ignore == ((grab ^ prop[0]) & inside)).all() and inst.ignore.any()
    assert inst.info == {"grabcut_ran": True, "proposal": True}
    assert not (inst.fg | inst.ignore)[~inside].any()


def test_both_appear_wherever_methods_are_listed() -> None:
    from bbam_lite.experiments import demo_variants
    from bbam_lite.experiments.networks import MAIN_ROWS, PAPER

    for name in ("box_inner", "mcg_grabcut"):
        assert name in methods.method_names() and name in demo_variants() and name in MAIN_ROWS
        assert not methods.get_method(name).needs_detector  # chapter 4's baselines
    assert PAPER["mcg_grabcut"]["miou"] == 69.4  # SDI in BBAM's Table 3
