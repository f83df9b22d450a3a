"""BBAM: loss terms, stride rule, jitter and positives, presets, batched == one by one."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bbam_lite.attribution.bbam import (
    PRESETS,
    BBAMConfig,
    ObjectTask,
    adaptive_stride,
    get_preset,
    optimise,
    perturb,
    tv_norm,
    upsample,
)
from bbam_lite.attribution.loss import head_terms, object_means
from bbam_lite.attribution.proposals import Positives, jitter_boxes, positive_mask, select_positives
from bbam_lite.detector.heads import HeadOutputs, frozen
from bbam_lite.detector.model import build_detector, get_profile


def test_adaptive_stride_rule_and_scaling() -> None:
    assert adaptive_stride(0.0) == 16 and adaptive_stride(1.0) == 64
    assert adaptive_stride(0.25) == pytest.approx(16 + 48 * 0.5)
    cfg = BBAMConfig(stride_reference_side=375)
    assert cfg.stride_for(0.25, 160, 200) == pytest.approx(40 * 160 / 375)
    assert BBAMConfig().stride_for(0.25, 160, 200) == pytest.approx(40)
    assert BBAMConfig(stride=24).stride_for(0.9, 375, 500) == 24


def test_tv_norm_by_hand() -> None:
    m = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    # vertical: |0-0| + |0-1| ; horizontal: |1-0| + |0-0| ; beta=3 -> 1 + 1
    assert float(tv_norm(m, 3.0)) == pytest.approx(2.0)
    # diagonals: (1,1)-(0,0) = 0 ; (1,0)-(0,1) = -1 -> +1
    assert float(tv_norm(m, 3.0, diagonal=True)) == pytest.approx(3.0)
    assert float(tv_norm(torch.full((4, 4), 0.3), 3.0)) == 0.0
    half = torch.tensor([[0.0, 0.5]])
    assert float(tv_norm(half, 3.0)) == pytest.approx(0.125)


def test_perturbation_and_upsampling() -> None:
    img = torch.rand(3, 8, 8)
    mean = torch.tensor([0.1, 0.2, 0.3])
    assert torch.allclose(perturb(img, torch.ones(8, 8), mean), img)
    assert torch.allclose(perturb(img, torch.zeros(8, 8), mean), mean.view(3, 1, 1).expand(3, 8, 8))
    up = upsample(torch.tensor([[0.0, 1.0]]), 4, 8)
    assert up.shape == (4, 8) and up[:, 0].max() == 0 and up[:, -1].min() == 1


def _positives(n: int, c: int = 2) -> Positives:
    probs = torch.softmax(torch.randn(n, 4), -1)
    return Positives(torch.zeros(n, 4), torch.randn(n, 4), probs, torch.zeros(n, 4), 0.8, n)


def test_head_terms_paper_and_official() -> None:
    pos = _positives(3)
    deltas = pos.target_deltas + 0.5
    probs = pos.target_probs.clone()
    probs[:, 2] += 0.1
    # paper: 4 deltas x 0.5 and 0.1 on one class; official: both halved means, class 2 only
    for preset, expected in (("paper", (2.0, 0.1)), ("official", (0.25, 0.05))):
        rows = head_terms(PRESETS[preset], deltas, probs, pos.target_deltas, pos.target_probs, 2)
        assert [float(object_means(r)) for r in rows] == pytest.approx(expected)


def test_jitter_within_30_percent_and_inside_image() -> None:
    box = torch.tensor([40.0, 30.0, 100.0, 90.0])
    j = jitter_boxes(box, 500, 0.3, 120, 150, torch.Generator().manual_seed(0))
    assert j.shape == (500, 4)
    assert (j[:, 0] >= 0).all() and (j[:, 2] <= 150).all() and (j[:, 3] <= 120).all()
    assert ((j - box).abs() <= 0.3 * 60 + 1e-4).all()
    assert ((j[:, 2] - j[:, 0]) >= 1).all() and ((j[:, 3] - j[:, 1]) >= 1).all()
    assert (j - box).abs().max() > 0.25 * 60  # the whole range is used


def test_positive_rule() -> None:
    gt = torch.tensor([10.0, 10.0, 50.0, 50.0])
    boxes = torch.zeros(3, 3, 4)
    boxes[:, 1] = torch.tensor([[10.0, 10.0, 50.0, 50.0], [10.0, 10.0, 50.0, 50.0], [10.0, 10.0, 30.0, 50.0]])
    probs = torch.tensor([[0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.0, 1.0, 0.0]])
    out = HeadOutputs(torch.zeros(3, 3, 4), probs, boxes, probs.log())
    # right class and IoU 1 / wrong class / right class but IoU 0.5
    assert positive_mask(out, gt, 1, 0.8).tolist() == [True, False, False]


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    return build_detector(get_profile("smoke"), num_classes=3).eval()


def test_no_positive_gives_a_reported_fallback(detector) -> None:
    img = torch.rand(3, 64, 64)
    with frozen(detector):
        pos = select_positives(
            detector, img, torch.tensor([5.0, 5.0, 40.0, 40.0]), 1, 20, 0.3, thresholds=(1.01,)
        )
    assert (
        pos.fallback
        and len(pos.proposals) == 1
        and torch.equal(pos.proposals[0], torch.tensor([5.0, 5, 40, 40]))
    )


def _tasks() -> list[ObjectTask]:
    g = torch.Generator().manual_seed(1)
    imgs = [torch.rand(3, 64, 64, generator=g) for _ in range(2)]
    return [
        ObjectTask(imgs[0], torch.tensor([8.0, 8.0, 40.0, 44.0]), 1, key=(1, 0)),
        ObjectTask(imgs[0], torch.tensor([30.0, 20.0, 60.0, 60.0]), 2, key=(1, 1)),
        ObjectTask(imgs[1], torch.tensor([4.0, 10.0, 50.0, 30.0]), 3, key=(2, 0)),
    ]


def test_batched_equals_one_by_one(detector) -> None:
    cfg = get_preset("paper", iterations=6, n_jitter=12, iou_thresholds=(-1.0,), stride_reference_side=375)
    mean = torch.tensor([0.5, 0.5, 0.5])
    tasks = _tasks()
    together = optimise(detector, tasks, cfg, mean)
    alone = [optimise(detector, [t], cfg, mean)[0] for t in tasks]
    for a, b in zip(together, alone, strict=True):
        assert a.mask.shape == b.mask.shape
        np.testing.assert_allclose(a.bbam, b.bbam, atol=2e-4)
        assert a.n_positives == b.n_positives and a.stride == b.stride


def test_optimisation_records_and_moves_the_mask(detector) -> None:
    cfg = get_preset("paper", iterations=5, n_jitter=8, iou_thresholds=(-1.0,), use_cls=False, lam=0.5)
    res = optimise(
        detector,
        _tasks()[:1],
        cfg,
        torch.full((3,), 0.5),
        record=("losses", "snapshots", "proposals"),
        snapshot_every=2,
    )[0]
    assert len(res.history["box"]) == 6 and len(res.history["cls"]) == 6  # both heads recorded, one optimised
    assert [it for it, _ in res.history["snapshots"]] == [0, 2, 4]
    assert res.history["l1"][-1] < res.history["l1"][0]  # a strong L1 shrinks the mask
    assert res.history["proposals"]["final_probs"].shape == (
        res.n_positives or 1,
    )  # fallback: the box itself
    assert 0 <= res.bbam.min() and res.bbam.max() <= 1 and res.bbam.shape == (64, 64)
    gh = math.ceil(64 / res.stride)
    assert res.mask.shape == (gh, gh)


def test_official_init_on_union_of_regressed_boxes(detector) -> None:
    cfg = get_preset("official", iterations=0, n_jitter=10, iou_thresholds=(-1.0,), min_positives=0, stride=8)
    res = optimise(detector, _tasks()[:1], cfg, torch.full((3,), 0.5))[0]
    assert set(np.unique(res.mask)) <= {0.0, 1.0}


def test_presets() -> None:
    with pytest.raises(ValueError, match="unknown BBAM preset"):
        get_preset("nope")
    off = get_preset("official")
    assert off.n_jitter == 1000 and off.iou_thresholds == (0.9, 0.85, 0.8) and off.max_positives == 100
    paper = get_preset("paper")
    assert (paper.lam, paper.lam_tv, paper.beta, paper.lr, paper.iterations) == (0.007, 1e-4, 3.0, 0.02, 300)
