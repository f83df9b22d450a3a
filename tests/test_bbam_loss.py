"""The BBAM loss (Eq. 5), written once in bbam_lite.attribution.loss, against the terms by hand."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from bbam_lite.attribution.bbam import BBAMConfig
from bbam_lite.attribution.loss import (
    bbam_objective,
    head_terms,
    mask_l1,
    mask_terms,
    object_means,
    tv_norm,
    weighted_total,
)

# Two objects, three positive proposals (rows 0, 1 belong to object 0, row 2 to object 1), three
# classes; the objects' classes are 1 and 2. Deltas are taken at each row's class already.
SEGMENTS = torch.tensor([0, 0, 1])
COUNTS = torch.tensor([2.0, 1.0])
LABELS = torch.tensor([1, 1, 2])
TARGET_DELTAS = torch.zeros(3, 4)
DELTAS = torch.tensor([[0.1, -0.2, 0.3, -0.4], [0.5, 0.0, 0.0, -0.25], [1.0, 1.0, -1.0, 0.0]])
TARGET_PROBS = torch.tensor([[0.2, 0.7, 0.1], [0.3, 0.6, 0.1], [0.1, 0.1, 0.8]])
PROBS = torch.tensor([[0.3, 0.5, 0.2], [0.3, 0.6, 0.1], [0.2, 0.2, 0.6]])

# By hand, per row and per object (mean over the object's rows):
#   box "sum":         |d|_1 = 1.0, 0.75, 3.0                  -> objects 0.875, 3.0
#   box "half-mean":   |d|_1 / 4 / 2 = 0.125, 0.09375, 0.375   -> objects 0.109375, 0.375
#   cls "all":         |p - p'|_1 = 0.4, 0.0, 0.4              -> objects 0.2, 0.4
#   cls "target-half": |p_c - p'_c| / 2 = 0.1, 0.0, 0.1        -> objects 0.05, 0.1
ROWS = {
    "sum": [1.0, 0.75, 3.0],
    "half-mean": [0.125, 0.09375, 0.375],
    "all": [0.4, 0.0, 0.4],
    "target-half": [0.1, 0.0, 0.1],
}
OBJECTS = {
    "sum": [0.875, 3.0],
    "half-mean": [0.109375, 0.375],
    "all": [0.2, 0.4],
    "target-half": [0.05, 0.1],
}

# Masks: object 0 (2 x 3) and object 1 (1 x 2), beta = 3.
MASK0 = torch.tensor([[1.0, 0.5, 0.0], [1.0, 1.0, 0.5]])
MASK1 = torch.tensor([[0.25, 0.75]])
# |M0|_1 = 4; vertical differences 0, 0.5, 0.5 -> 0.25; horizontal 0.5, 0.5 | 0, 0.5 -> 0.375;
# diagonals: down-right 0, 0 -> 0; down-left (1 - 0.5), (1 - 0) -> 0.125 + 1.
L1 = {0: 4.0, 1: 1.0}
TV = {(0, False): 0.625, (0, True): 0.625 + 1.125, (1, False): 0.125, (1, True): 0.125}


def _cfg(box_loss: str, cls_loss: str, use_box: bool = True, use_cls: bool = True, diag: bool = False):
    return BBAMConfig(
        lam=0.5,
        lam_tv=0.25,
        box_loss=box_loss,
        cls_loss=cls_loss,
        use_box=use_box,
        use_cls=use_cls,
        tv_diagonal=diag,
    )


VARIANTS = [(b, c) for b in ("sum", "half-mean") for c in ("all", "target-half")]


@pytest.mark.parametrize(("box_loss", "cls_loss"), VARIANTS)
def test_head_terms_by_hand(box_loss: str, cls_loss: str) -> None:
    box_rows, cls_rows = head_terms(
        _cfg(box_loss, cls_loss), DELTAS, PROBS, TARGET_DELTAS, TARGET_PROBS, LABELS
    )
    assert box_rows.tolist() == pytest.approx(ROWS[box_loss])
    assert cls_rows.tolist() == pytest.approx(ROWS[cls_loss])
    box = object_means(box_rows, SEGMENTS, COUNTS)
    cls = object_means(cls_rows, SEGMENTS, COUNTS)
    assert box.tolist() == pytest.approx(OBJECTS[box_loss])
    assert cls.tolist() == pytest.approx(OBJECTS[cls_loss])


def test_tv_norm_and_l1_by_hand() -> None:
    for k, mask in ((0, MASK0), (1, MASK1)):
        assert float(mask_l1(mask)) == pytest.approx(L1[k])
        for diag in (False, True):
            assert float(tv_norm(mask, 3.0, diag)) == pytest.approx(TV[k, diag])
            l1, tv = mask_terms(_cfg("sum", "all", diag=diag), mask)
            assert (float(l1), float(tv)) == pytest.approx((L1[k], TV[k, diag]))
    # beta is the exponent: beta = 1 sums the absolute differences
    assert float(tv_norm(MASK0, 1.0)) == pytest.approx(1.0 + 1.5)


@pytest.mark.parametrize(("box_loss", "cls_loss"), VARIANTS)
@pytest.mark.parametrize(("use_box", "use_cls"), [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("diag", [False, True])
def test_objective_equals_terms_written_out(box_loss, cls_loss, use_box, use_cls, diag) -> None:
    cfg = _cfg(box_loss, cls_loss, use_box, use_cls, diag)
    box_rows, cls_rows = head_terms(cfg, DELTAS, PROBS, TARGET_DELTAS, TARGET_PROBS, LABELS)
    box = object_means(box_rows, SEGMENTS, COUNTS)
    cls = object_means(cls_rows, SEGMENTS, COUNTS)
    masks = (MASK0, MASK1)
    for k in (0, 1):
        by_hand = (
            0.5 * L1[k]
            + 0.25 * TV[k, diag]
            + (OBJECTS[box_loss][k] if use_box else 0.0)
            + (OBJECTS[cls_loss][k] if use_cls else 0.0)
        )
        assert float(bbam_objective(cfg, masks[k], box[k], cls[k])) == pytest.approx(by_hand)
    # the batched total: one value per object
    l1 = torch.stack([mask_l1(m) for m in masks])
    tv = torch.stack([tv_norm(m, 3.0, diag) for m in masks])
    total = weighted_total(cfg, l1, tv, box, cls)
    assert total.shape == (2,)
    assert total.tolist() == pytest.approx(
        [float(bbam_objective(cfg, m, box[k], cls[k])) for k, m in enumerate(masks)]
    )


@pytest.mark.parametrize(("box_loss", "cls_loss"), VARIANTS)
def test_batched_average_equals_one_object(box_loss: str, cls_loss: str) -> None:
    """The per-object averages of a batch are each object's own loss, computed alone."""
    g = torch.Generator().manual_seed(0)
    counts_list = [5, 1, 3]
    n = sum(counts_list)
    deltas, target_deltas = torch.randn(n, 4, generator=g), torch.randn(n, 4, generator=g)
    probs = torch.softmax(torch.randn(n, 6, generator=g), -1)
    target_probs = torch.softmax(torch.randn(n, 6, generator=g), -1)
    labels = [4, 1, 5]
    segments = torch.repeat_interleave(torch.arange(3), torch.tensor(counts_list))
    row_labels = torch.repeat_interleave(torch.tensor(labels), torch.tensor(counts_list))
    cfg = _cfg(box_loss, cls_loss)
    box_rows, cls_rows = head_terms(cfg, deltas, probs, target_deltas, target_probs, row_labels)
    counts = torch.tensor(counts_list, dtype=torch.float32)
    box, cls = object_means(box_rows, segments, counts), object_means(cls_rows, segments, counts)
    start = 0
    for k, (c, label) in enumerate(zip(counts_list, labels, strict=True)):
        sl = slice(start, start + c)
        start += c
        one_box, one_cls = head_terms(cfg, deltas[sl], probs[sl], target_deltas[sl], target_probs[sl], label)
        torch.testing.assert_close(box[k], object_means(one_box))
        torch.testing.assert_close(cls[k], object_means(one_cls))


def test_l1_gradient_is_lambda_also_on_removed_cells() -> None:
    """|M|_1 is the sum of the cells (M in [0, 1]): a cell at 0 still gets the gradient lambda (an
    abs() there would give 0 and change the optimisation)."""
    cfg = _cfg("sum", "all")
    mask = torch.zeros(3, 4, requires_grad=True)
    bbam_objective(cfg, mask, torch.tensor(0.0), torch.tensor(0.0)).backward()
    torch.testing.assert_close(mask.grad, torch.full((3, 4), 0.5))


def test_unknown_variants_are_refused() -> None:
    with pytest.raises(ValueError, match="box_loss"):
        BBAMConfig(box_loss="mean")
    with pytest.raises(ValueError, match="cls_loss"):
        BBAMConfig(cls_loss="target")
    cfg = SimpleNamespace(box_loss="sum", cls_loss="bogus")
    with pytest.raises(ValueError):
        head_terms(cfg, DELTAS, PROBS, TARGET_DELTAS, TARGET_PROBS, LABELS)
