"""From maps to pseudo labels: thresholds, CRF, authors' variant, semantic conversion, Eq. 4, writers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools.coco import COCO

from bbam_lite.data.coco import decode_rle
from bbam_lite.pseudo.crf import CRFParams, crf_foreground
from bbam_lite.pseudo.labels import (
    IGNORE,
    InstanceLabel,
    box_region,
    compose_overwrite,
    instances_to_semantic,
    refine_official,
    refine_paper,
    threshold_map,
)
from bbam_lite.pseudo.refine import grouping_proposals, read_mcg, refine_with_proposals
from bbam_lite.pseudo.writers import (
    annotation,
    coco_instances,
    read_semantic_png,
    write_coco_json,
    write_semantic_png,
)


def test_thresholds_make_an_ignore_band() -> None:
    prob = np.array([[0.1, 0.2, 0.5, 0.8, 0.81, 1.0]])
    fg, ign = threshold_map(prob, 0.8, 0.2)
    assert fg.tolist() == [[False, False, False, False, True, True]]
    assert ign.tolist() == [[False, True, True, True, False, False]]
    fg, ign = threshold_map(prob, 0.5, 0.5)
    assert not ign.any() and fg.sum() == 3
    with pytest.raises(ValueError):
        threshold_map(prob, 0.2, 0.8)


def test_box_region_pixel_centres() -> None:
    r = box_region(np.array([1.0, 2.0, 4.0, 3.0]), 5, 6)
    assert r.sum() == 3 and r[2, 1:4].all()


def _two_tone(h: int = 40, w: int = 40) -> tuple[np.ndarray, np.ndarray]:
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (30, 60, 200)
    truth = np.zeros((h, w), bool)
    truth[10:30, 12:28] = True
    img[truth] = (220, 180, 40)
    return img, truth


def test_crf_snaps_a_blurry_prior_to_colour_edges() -> None:
    img, truth = _two_tone()
    prior = np.zeros(truth.shape, np.float32)
    prior[8:32, 10:30] = 0.7  # too large and uncertain
    q = crf_foreground(img, prior, CRFParams().scaled(40 / 375))
    assert ((q > 0.5) == truth).mean() > 0.97


def test_refine_paper_restricted_to_box() -> None:
    img, truth = _two_tone()
    bbam = np.full(truth.shape, 0.95, np.float32)
    box = np.array([12.0, 10.0, 28.0, 30.0])
    fg, ign, _ = refine_paper(img, bbam, box, None)
    assert fg.sum() == box_region(box, 40, 40).sum() and not ign.any()


def test_refine_official_quantiles_make_nested_masks() -> None:
    img, truth = _two_tone()
    yy, xx = np.mgrid[0:40, 0:40]
    bbam = np.exp(-((yy - 20) ** 2 + (xx - 20) ** 2) / 60.0).astype(np.float32)
    fg, ign, info = refine_official(img, bbam, np.array([12.0, 10.0, 28.0, 30.0]), 4, CRFParams().scaled(0.1))
    assert not (fg & ign).any() and fg.any()
    assert isinstance(info["crf_box_fallback"], bool)


def _inst(label: int, box, fg, ign=None) -> InstanceLabel:
    fg = np.asarray(fg, bool)
    return InstanceLabel(
        label, np.asarray(box, np.float32), fg, np.zeros_like(fg) if ign is None else np.asarray(ign, bool)
    )


def test_semantic_conversion_ignores_multi_class_pixels_and_bands() -> None:
    a = np.zeros((4, 4), bool)
    a[:2, :3] = True
    b = np.zeros((4, 4), bool)
    b[1:3, 2:4] = True
    band = np.zeros((4, 4), bool)
    band[3, 0] = True
    sem = instances_to_semantic([_inst(1, [0, 0, 3, 2], a, band), _inst(2, [2, 1, 4, 3], b)], 4, 4)
    assert (
        sem[0, 0] == 1 and sem[2, 3] == 2 and sem[1, 2] == IGNORE and sem[3, 0] == IGNORE and sem[3, 3] == 0
    )
    same = instances_to_semantic([_inst(1, [0, 0, 3, 2], a), _inst(1, [2, 1, 4, 3], b)], 4, 4)
    assert same[1, 2] == 1  # two instances of one class do not conflict


def test_contained_box_wins_in_the_authors_conversion() -> None:
    outer = np.ones((4, 4), bool)
    inner = np.zeros((4, 4), bool)
    inner[1:3, 1:3] = True
    insts = [_inst(1, [0, 0, 4, 4], outer), _inst(2, [1, 1, 3, 3], inner)]
    assert instances_to_semantic(insts, 4, 4)[1, 1] == IGNORE
    assert instances_to_semantic(insts, 4, 4, contained_wins=True)[1, 1] == 2


def test_compose_overwrite_small_boxes_on_top() -> None:
    big = np.ones((4, 4), bool)
    small = np.zeros((4, 4), bool)
    small[0, 0] = True
    sem, visible = compose_overwrite([_inst(2, [0, 0, 1, 1], small), _inst(1, [0, 0, 4, 4], big)], 4, 4)
    assert sem[0, 0] == 2 and sem[3, 3] == 1
    assert visible[0].sum() == 1 and visible[1].sum() == 15


def test_eq4_union_of_contained_and_best_iou() -> None:
    t = np.zeros((10, 10), bool)
    t[2:8, 2:8] = True
    p_in = np.zeros_like(t)
    p_in[3:5, 3:5] = True  # inside T
    p_best = np.zeros_like(t)
    p_best[2:8, 2:9] = True  # best IoU, not inside
    p_out = np.zeros_like(t)
    p_out[0:2, 0:10] = True  # neither
    r = refine_with_proposals(t, np.array([p_in, p_best, p_out]))
    assert (r == (p_in | p_best)).all()
    clipped = refine_with_proposals(t, np.array([p_in, p_best, p_out]), box=np.array([2.0, 2.0, 8.0, 8.0]))
    assert not clipped[:, 8].any()


def test_grouping_proposals_cover_segments(tmp_path) -> None:
    img, truth = _two_tone()
    img = np.clip(img + np.random.default_rng(0).normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    props = grouping_proposals(img)
    assert props.dtype == bool and props.shape[1:] == truth.shape
    best = max(((p & truth).sum() / (p | truth).sum()) for p in props)
    assert best > 0.9


def test_read_mcg_format(tmp_path) -> None:
    from scipy.io import savemat

    sp = np.array([[1, 1, 2], [3, 3, 2]], np.uint16)
    labels = np.empty((2, 1), dtype=object)
    labels[0, 0] = np.array([[1, 2]], np.uint16)
    labels[1, 0] = np.array([[3]], np.uint16)
    savemat(tmp_path / "img.mat", {"superpixels": sp, "labels": labels, "scores": np.array([[0.2], [0.9]])})
    masks = read_mcg(tmp_path / "img.mat")
    assert masks.shape == (2, 2, 3)
    assert masks[0].tolist() == [[False, False, False], [True, True, False]]  # best score first
    assert masks[1].tolist() == [[True, True, True], [False, False, True]]
    from bbam_lite.data.records import DataError

    (tmp_path / "bad.mat").write_bytes(b"not a mat file")
    with pytest.raises(DataError):
        read_mcg(tmp_path / "bad.mat")


def test_writers_round_trip_through_pycocotools(tmp_path) -> None:
    rng = np.random.default_rng(0)
    fg = rng.random((12, 9)) > 0.6
    ign = (rng.random((12, 9)) > 0.8) & ~fg
    ann = annotation(1, 7, 3, fg, ign, 0.9, np.array([0, 0, 9, 12]))
    write_coco_json(
        tmp_path / "inst.json",
        coco_instances(
            [{"id": 7, "file_name": "a.jpg", "width": 9, "height": 12}], [ann], ["background", "a", "b", "c"]
        ),
    )
    coco = COCO(str(tmp_path / "inst.json"))
    loaded = coco.loadAnns(coco.getAnnIds(imgIds=[7]))[0]
    assert (coco.annToMask(loaded).astype(bool) == fg).all()
    assert (
        decode_rle(json.loads((tmp_path / "inst.json").read_text())["annotations"][0]["ignore"]) == ign
    ).all()
    sem = rng.integers(0, 4, (12, 9)).astype(np.uint8)
    sem[0, 0] = 255
    write_semantic_png(tmp_path / "s.png", sem)
    assert (read_semantic_png(tmp_path / "s.png") == sem).all()
