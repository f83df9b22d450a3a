"""Box, Box + CRF and GrabCut baselines; mIoU and instance IoU on cases with known answers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bbam_lite.metrics import ConfusionMatrix, best_match_ious, mask_iou
from bbam_lite.pseudo.crf import CRFParams
from bbam_lite.pseudo.methods.box import box_instances
from bbam_lite.pseudo.methods.box_crf import box_crf_instances
from bbam_lite.pseudo.methods.grabcut import grabcut_box, grabcut_init_mask, grabcut_instances


def test_grabcut_initial_mask_is_algorithm_1() -> None:
    mask, (x, y, w, h) = grabcut_init_mask(np.array([10.0, 20.0, 50.0, 60.0]), 80, 70)
    assert (x, y, w, h) == (10, 20, 40, 40)
    assert (mask[:20] == 0).all() and (mask[:, :10] == 0).all() and (mask[60:] == 0).all()
    assert mask[20, 10] == cv2.GC_PR_BGD and mask[23, 13] == cv2.GC_PR_BGD
    assert mask[24, 14] == cv2.GC_PR_FGD and mask[55, 45] == cv2.GC_PR_FGD  # inner 10%-90%
    assert mask[30, 20] == cv2.GC_FGD and mask[49, 39] == cv2.GC_FGD  # inner 25%-75%
    assert mask[50, 40] == cv2.GC_PR_FGD
    assert set(np.unique(mask)) == {0, 1, 2, 3}


def _scene() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(60, 8, (64, 64, 3)), 0, 255).astype(np.uint8)
    truth = np.zeros((64, 64), bool)
    cv2.circle(truth.view(np.uint8), (32, 32), 14, 1, -1)
    img[truth] = np.clip(rng.normal(200, 8, (truth.sum(), 3)), 0, 255).astype(np.uint8)
    return img, truth


def test_grabcut_and_box_crf_find_a_contrasting_object() -> None:
    img, truth = _scene()
    box = np.array([16.0, 16.0, 49.0, 49.0])
    fg, ran = grabcut_box(img, box)
    assert ran and mask_iou(fg, truth) > 0.85
    assert not fg[16, :].any() and not fg[:, 16].any()  # border rows/columns cleared
    crf = box_crf_instances(img, box[None], np.array([1]), CRFParams().scaled(64 / 375))[0]
    assert mask_iou(crf.fg, truth) > 0.85
    plain = box_instances(box[None], np.array([1]), 64, 64)[0]
    assert plain.fg.sum() == 33 * 33


def test_grabcut_without_background_falls_back_and_says_so() -> None:
    img, _ = _scene()
    inst = grabcut_instances(img, np.array([[0.0, 0.0, 64.0, 64.0]]), np.array([1]))[0]
    assert inst.info["grabcut_ran"] in (True, False)
    assert inst.fg.any()


def test_miou_by_hand() -> None:
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    pred = np.array([[0, 1, 1, 1], [0, 0, 255, 1]])
    cm = ConfusionMatrix(2)
    cm.update(gt, pred)
    # ignored pixel excluded: bg IoU 3/4, class-1 IoU 3/4
    assert cm.miou() == pytest.approx(0.75)
    assert cm.ignore_fraction == pytest.approx(1 / 8)
    with pytest.raises(ValueError):
        cm.update(gt, pred[:, :3])


def test_instance_iou_matching() -> None:
    a = np.zeros((4, 4), bool)
    a[:2] = True
    b = np.zeros((4, 4), bool)
    b[:1] = True
    assert mask_iou(a, b) == 0.5
    assert best_match_ious(np.array([a, b]), np.array([1, 2]), [b, a], [1, 1]) == [1.0, 0.0]
    assert best_match_ious(np.array([a]), np.array([1]), [b], [1]) == [0.5]
