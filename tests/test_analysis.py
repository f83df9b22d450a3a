"""The analysis package (Fig. 4, 6, 7, 8, Tables 5, 6): geometry, noise, statistics, and the BBAM
and gradient paths on the shipped detector with a few iterations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from bbam_lite.analysis import gradients, heads, label_noise, sensitivity, stride, study
from bbam_lite.analysis.tables import markdown_table


def disc(size: int = 41, radius: float = 15.0) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    return np.hypot(yy - c, xx - c) <= radius


# ------------------------------------------------------------------------------ relative position
def test_relative_position_is_zero_at_the_centroid_one_on_the_contour_and_grows_outwards():
    mask = disc()
    R, norm = heads.relative_position(mask)
    assert np.isfinite(norm).all()  # a disc's centroid is inside it: R is defined everywhere
    assert norm[20, 20] == 0.0  # the centroid of a symmetric disc is its centre pixel
    assert np.allclose(norm[heads.contour(mask)], 1.0)
    ray = norm[20, 20:41]  # from the centre rightwards, across the contour (x = 35) and beyond
    assert np.all(np.diff(ray) > 0) and ray[15] == 1.0
    assert np.all(ray[:15] < 1) and np.all(ray[16:] > 1)
    # on a disc both branches give r / rho: 20 px from the centre of a radius-15 disc
    assert abs(norm[20, 40] - 20 / 15) < 0.08 and abs(norm[20, 27] - 7 / 15) < 0.05
    assert np.allclose(np.hypot(R[..., 0], R[..., 1]), norm)
    # the direction is the pixel's angle around the centroid; y points down as in the image
    assert R[20, 30, 0] > 0 and abs(R[20, 30, 1]) < 1e-12
    assert R[30, 20, 1] > 0 and abs(R[30, 20, 0]) < 1e-12
    assert np.isnan(heads.relative_position(np.zeros((5, 5), bool))[1]).all()


def test_high_pixel_positions_separate_boundary_from_interior_maps():
    mask = disc()
    _, norm = heads.relative_position(mask)
    box = np.array([5, 5, 36, 36], np.float32)
    obj = study.StudyObject(1, 0, np.zeros((41, 41, 3), np.uint8), box, 1, mask)

    def summary(m):
        return heads.position_summary([study.ObjectMap(obj, m, {})])

    ring = np.where(mask & (norm > 0.85), 1.0, 0.0)
    core = np.where(mask & (norm < 0.3), 1.0, 0.0)
    s_ring, s_core = summary(ring), summary(core)
    assert s_ring["median_norm"] > s_ring["reference_median_norm"] > 0.3 > s_core["median_norm"]
    assert 0.7 < s_ring["reference_median_norm"] < 1.0  # about sqrt(2 / pi) of the way out: box pixels
    assert s_ring["share_near_boundary"] == 1.0 and s_core["share_near_boundary"] == 0.0
    assert s_ring["share_inside_mask"] == 1.0 and 0.7 < s_ring["reference_share_inside_mask"] < 0.85
    assert math.isclose(sum(s_ring["hist"]), 1.0) and math.isclose(sum(s_ring["reference_hist"]), 1.0)
    # a map high just outside the object, inside its box: placed beyond the contour
    halo = np.where(~mask & (norm < 1.2), 1.0, 0.0)
    s_halo = summary(halo)
    assert s_halo["share_inside_mask"] == 0.0 and 1.0 < s_halo["median_norm"] < 1.2
    assert s_halo["share_of_mask_high"] == 0.0
    # relative: the same pixels at any scale of the map
    s_low = heads.position_summary([study.ObjectMap(obj, 0.5 * ring, {})], relative=True)
    assert summary(0.5 * ring)["n_high"] == 0 and s_low["n_high"] == s_ring["n_high"]
    assert s_low["median_norm"] == s_ring["median_norm"]
    # high pixels outside the box are counted, not placed
    outside = ring.copy()
    outside[0, :] = 1.0
    s_out = summary(outside)
    assert s_out["n_high"] == s_ring["n_high"] + 41
    assert math.isclose(s_out["share_high_outside_box"], 41 / s_out["n_high"])
    assert len(s_out["points"]) == len(s_ring["points"])


def test_head_switches_are_valid_configs():
    from bbam_lite.attribution.bbam import BBAMConfig

    for switches in heads.HEADS.values():
        BBAMConfig(**switches)
    assert {tuple(s.values()) for s in heads.HEADS.values()} == {(True, False), (False, True), (True, True)}


# ------------------------------------------------------------------------------------ box noise
def test_perturb_boxes_scales_width_and_height_by_the_level():
    box = np.array([[20.0, 30.0, 70.0, 50.0]])  # 50 x 20
    grown = label_noise.perturb_boxes(box, 0.2, 200, 200)
    shrunk = label_noise.perturb_boxes(box, -0.2, 200, 200)
    assert np.allclose(grown, [[15, 28, 75, 52]]) and np.allclose(shrunk, [[25, 32, 65, 48]])
    assert np.allclose(label_noise.perturb_boxes(box, 0.0, 200, 200), box)
    # expanded boxes are clipped to the image, contracted ones keep a pixel
    assert np.allclose(label_noise.perturb_boxes(np.array([[0.0, 0, 10, 10]]), 0.4, 12, 12), [[0, 0, 12, 12]])
    thin = label_noise.perturb_boxes(np.array([[10.0, 10, 11, 30]]), -0.99, 50, 50)
    assert thin[0, 2] - thin[0, 0] >= 1 - 1e-6
    with pytest.raises(ValueError, match="noise level"):
        label_noise.perturb_boxes(box, 1.5, 200, 200)


def test_noisy_dataset_draws_once_per_object_and_keeps_masks(tiny_synth):
    from bbam_lite.data.synthetic import read_synthetic

    ds = read_synthetic(tiny_synth, "train")
    half, full = label_noise.noisy_dataset(ds, 0.1, 7, 3), label_noise.noisy_dataset(ds, 0.2, 7, 3)
    assert len(full) == 3 and [r.image_id for r in full] == [r.image_id for r in list(ds)[:3]]
    for r, h, f in zip(ds, half, full, strict=False):
        inside = (
            (f.boxes[:, 0] > 0) & (f.boxes[:, 1] > 0) & (f.boxes[:, 2] < r.width) & (f.boxes[:, 3] < r.height)
        )
        # the same draw u at every level: the displacement at 20% is twice that at 10% (unless clipped)
        assert np.allclose((f.boxes - r.boxes)[inside], 2 * (h.boxes - r.boxes)[inside], atol=1e-3)
        assert np.all(f.boxes[:, :2] <= r.boxes[:, :2] + 1e-4) and np.all(
            f.boxes[:, 2:] >= r.boxes[:, 2:] - 1e-4
        )
        assert np.array_equal(f.load_masks(), r.load_masks())
    other_seed = label_noise.noisy_dataset(ds, 0.2, 8, 3)
    assert not np.allclose(other_seed[0].boxes, full[0].boxes)


def test_degradation_reads_the_extremes():
    rows = [{"method": "box", "level": lv, "miou": m} for lv, m in ((-0.2, 0.3), (0.0, 0.6), (0.2, 0.5))]
    d = label_noise.degradation(rows)["box"]
    assert d["clean"] == 0.6 and math.isclose(d["contracted"], -0.3) and math.isclose(d["expanded"], -0.1)


# ------------------------------------------------------------------------------- sizes, tables
def test_size_bins_are_terciles():
    edges = stride.size_edges([0.01, 0.02, 0.03, 0.1, 0.2, 0.3])
    assert [stride.size_bin(a, edges) for a in (0.01, 0.1, 0.3, 1.0)] == [0, 1, 2, 2]
    rows = [
        {"setting": "s", "area_ratio": a, "iou_map": i, "iou_label": i, "stride": 8.0}
        for a, i in ((0.01, 0.1), (0.02, 0.3), (0.3, 0.9))
    ]
    summary = stride.summarise(rows, (0.0, 0.015, 0.1, 1.0))
    assert [(s["size"], s["objects"]) for s in summary] == [("small", 1), ("medium", 1), ("large", 1)]


def test_markdown_table_formats_and_marks_missing_values():
    text = markdown_table(
        [{"a": 0.12345, "b": "x"}, {"a": float("nan")}], [("a", "A", ".2f"), ("b", "B", "")]
    )
    assert text.splitlines() == ["| A | B |", "| --- | --- |", "| 0.12 | x |", "| - | - |"]


def test_label_quality_of_the_ground_truth_is_perfect(tiny_synth):
    from bbam_lite.data.synthetic import read_synthetic
    from bbam_lite.pseudo.labels import InstanceLabel

    ds = read_synthetic(tiny_synth, "train")
    items = []
    for rec in list(ds)[:3]:
        none = np.zeros((rec.height, rec.width), bool)
        items.append(
            (
                rec,
                [
                    InstanceLabel(int(c), b, m, none)
                    for b, c, m in zip(rec.boxes, rec.labels, rec.load_masks(), strict=True)
                ],
            )
        )
    q = study.label_quality(items, ds.class_names)
    assert q["miou"] == 1.0 and q["mean_instance_iou"] == 1.0 and q["ignore_fraction"] == 0.0


def test_study_objects_need_masks(tiny_synth):
    from dataclasses import replace

    from bbam_lite.data.records import BoxDataset
    from bbam_lite.data.synthetic import read_synthetic

    ds = read_synthetic(tiny_synth, "train")
    objs = study.study_objects(ds, 2)
    assert len(objs) == sum(len(r.boxes) for r in list(ds)[:2])
    assert all(o.gt.shape == o.image.shape[:2] and 0 < o.area_ratio < 1 for o in objs)
    bare = BoxDataset([replace(r, mask_loader=None) for r in ds], ds.class_names, "bare")
    with pytest.raises(ValueError, match="no instance masks"):
        study.study_objects(bare, 1)


# ------------------------------------------------------- the detector: BBAM, loss curves, gradients
@pytest.fixture(scope="module")
def smoke_ws(tmp_path_factory):
    from bbam_lite.workspace import Workspace

    return Workspace(tmp_path_factory.mktemp("analysis-run"), "smoke")


def test_bbam_labels_maps_and_threshold_sweep_agree_with_generate(smoke_ws):
    folder, q = study.bbam_labels(smoke_ws, n_images=1, iterations=3)
    ds = smoke_ws.data("train")
    maps = study.read_maps(folder, ds, 1)
    assert len(maps) == len(ds[0].boxes) == q["objects"]
    assert all(m.bbam.shape == m.obj.gt.shape and 0 <= m.bbam.min() <= m.bbam.max() <= 1 for m in maps)
    assert all("stride" in m.info for m in maps)
    # the same labels folder is found again, not remade, also when a setting is given its default value
    assert study.bbam_labels(smoke_ws, n_images=1, iterations=3)[0] == folder
    assert study.bbam_labels(smoke_ws, 1, 3, use_box=True, use_cls=True, lam=0.007)[0] == folder
    assert label_noise.noisy_labels(smoke_ws, "bbam", 0.0, 1, 3)[0] == folder
    with pytest.raises(ValueError, match="unknown BBAM setting"):
        study.bbam_labels(smoke_ws, 1, 3, lamda=0.1)
    # Table 5 sweeps the thresholds of the paper's text: on the paper preset's maps
    assert q["preset"] == "official"  # the default
    folder, q = study.bbam_labels(smoke_ws, n_images=1, iterations=3, preset="paper")
    settings = smoke_ws.label_settings("bbam", preset="paper", bbam={"iterations": 3})
    rows = sensitivity.threshold_sweep(folder, ds, settings, 1, ((0.2, 0.8), (0.5, 0.5)))
    default, equal = rows
    # Table 5's default row recomputes what generate measured (maps are stored as float16)
    assert abs(default["miou"] - q["miou"]) < 0.02
    assert abs(default["mean_instance_iou"] - q["mean_instance_iou"]) < 0.02
    assert equal["ignore_fraction"] == 0.0 and default["ignore_fraction"] >= 0.0
    with pytest.raises(ValueError, match="paper preset"):
        sensitivity.threshold_sweep(folder, ds, smoke_ws.label_settings("bbam", preset="official"), 1)


def test_labels_from_stored_maps_redo_only_the_post_processing(smoke_ws, tmp_path):
    from dataclasses import replace

    from bbam_lite.pseudo.folder import LabelsFolderError
    from bbam_lite.pseudo.generate import generate
    from bbam_lite.pseudo.job import LabelJob

    folder, q = study.bbam_labels(smoke_ws, n_images=1, iterations=3, preset="paper")
    ds = smoke_ws.data("train")
    base = smoke_ws.label_settings("bbam", preset="paper", bbam={"iterations": 3})

    def derive(out, limit=1, **fields):  # no detector given: the stored maps are all it needs
        s = replace(base, maps_from=str(folder), **fields)
        return generate(LabelJob.make(ds, s, tmp_path / out, limit=limit, progress=False))

    same = derive("same")
    assert same["objects"] == q["objects"] and abs(same["miou"] - q["miou"]) < 0.02  # float16 maps
    equal = derive("equal", theta_fg=0.5, theta_bg=0.5)
    (row,) = sensitivity.threshold_sweep(folder, ds, base, 1, ((0.5, 0.5),))
    assert equal["ignore_fraction"] == 0.0 and abs(equal["miou"] - row["miou"]) < 1e-9
    with pytest.raises(ValueError, match="other settings .*BBAM settings"):
        derive("other", bbam={"iterations": 4})
    with pytest.raises(LabelsFolderError, match="no stored maps for image 2"):
        derive("more", limit=2)
    with pytest.raises(ValueError, match="--method box stores none"):
        replace(base, method="box", maps_from=str(folder))
    with pytest.raises(LabelsFolderError, match="not a labels folder"):
        s = replace(base, maps_from=str(tmp_path))
        generate(LabelJob.make(ds, s, tmp_path / "none", limit=1, progress=False))
    # the workspace derives non-default post-processing from the default's maps by itself
    ws_folder, ws_q = smoke_ws.labels(
        "bbam", limit=1, preset="paper", theta_fg=0.5, theta_bg=0.5, bbam={"iterations": 3}
    )
    made = json.loads((ws_folder / "settings.json").read_text())
    assert made["settings"]["maps_from"] == str(folder) and ws_q["miou"] == equal["miou"]


def test_loss_curves_record_both_heads_from_zero(smoke_ws):
    det = smoke_ws.detector()
    objs = study.study_objects(smoke_ws.data("train"), 1)[:1]
    # the paper's initialisation (a mask of ones); the authors' code starts from the positives' boxes
    cfg = smoke_ws.label_settings("bbam", preset="paper", bbam={"iterations": 3}).bbam_config()
    curves = heads.loss_curves(det.model, objs, cfg, smoke_ws.mean())
    assert set(curves) == set(heads.HEADS)
    for c in curves.values():
        assert len(c["box"]) == len(c["cls"]) == 4 and c["objects"] == 1
        assert c["box"][0] == 0.0 and c["cls"][0] == 0.0  # a mask of ones is the clean image
        assert c["mask_mean"][0] == 1.0 and c["mask_mean"][-1] < 1.0
    rows = {r["head"]: r for r in heads.left_out_losses(curves)}
    assert rows["cls"]["left_out"] == curves["box head only"]["cls"][-1]
    assert rows["cls"]["optimised"] == curves["cls head only"]["cls"][-1]
    assert math.isclose(rows["box"]["ratio"], rows["box"]["left_out"] / rows["box"]["optimised"])


def test_simplegrad_is_the_input_gradient_and_smoothgrad_without_noise_equals_it(smoke_ws):
    from bbam_lite.detector.heads import roi_head_outputs

    det = smoke_ws.detector().model
    obj = study.study_objects(smoke_ws.data("train"), 1)[0]
    task = obj.task()
    proposal = torch.as_tensor(obj.box)
    # by hand: |d p_c / d pixel|, max over colour channels, scaled to max 1
    x = task.image.clone().requires_grad_(True)
    det.eval()
    p = roi_head_outputs(det, x[None], [proposal[None]]).probs[0, obj.label]
    (g,) = torch.autograd.grad(p, x)
    manual = g.abs().amax(0).numpy()
    manual = manual / manual.max()
    simple = gradients.attribution_map(det, task.image, proposal, obj.label, "SimpleGrad", head="cls")
    assert simple.shape == obj.gt.shape and math.isclose(float(simple.max()), 1.0, rel_tol=1e-5)
    assert np.allclose(simple, manual, atol=1e-4)
    smooth = gradients.attribution_map(
        det, task.image, proposal, obj.label, "SmoothGrad", head="cls", smooth_samples=2, smooth_std=0.0
    )
    assert np.allclose(smooth, simple, atol=1e-4)
    both = gradients.attribution_map(det, task.image, proposal, obj.label, "SimpleGrad", head="both")
    assert 0 <= both.min() and math.isclose(float(both.max()), 1.0, rel_tol=1e-5)
    with pytest.raises(ValueError, match="unknown gradient method"):
        gradients.attribution_map(det, task.image, proposal, obj.label, "Occlusion")


def test_gradcam_reads_the_fpn_level_of_the_proposal(smoke_ws):
    det = smoke_ws.detector().model
    obj = study.study_objects(smoke_ws.data("train"), 1)[0]
    task = obj.task()
    layer = gradients.roi_feature_layer(det, task.image, torch.as_tensor(obj.box))
    assert any(layer is b for b in det.backbone.fpn.layer_blocks)
    cam = gradients.attribution_map(det, task.image, torch.as_tensor(obj.box), obj.label, "Grad-CAM")
    assert cam.shape == obj.gt.shape and 0 <= cam.min() and cam.max() <= 1


def test_gradient_study_statistics(smoke_ws):
    folder, _ = study.bbam_labels(smoke_ws, n_images=1, iterations=3)
    maps = study.read_maps(folder, smoke_ws.data("train"), 1)[:1]
    cfg = smoke_ws.label_settings("bbam", bbam={"iterations": 3}).bbam_config()
    det = smoke_ws.detector().model
    res = gradients.gradient_study(det, maps, cfg, methods=("SimpleGrad",), n_proposals=2, smooth_samples=2)
    assert set(res["methods"]) == {"SimpleGrad", "BBAM"} and res["objects"] == 1
    for s in res["methods"].values():
        assert len(s["iou_by_threshold"]) == len(res["thresholds"])
        assert 0 <= s["share_high_inside_proposal"] <= 1 and -1 <= s["correlation"] <= 1
        assert 0 <= s["share_top2_inside_proposal"] <= 1
    if res["positives"]:
        assert 0 < res["proposal_prediction_iou"] <= 1
    from bbam_lite.attribution.bbam import prepare

    pos = prepare(det, maps[0].obj.task(), cfg)
    picks = gradients.spread_proposals(pos, 3)
    assert len(set(picks)) == len(picks) == min(3, len(pos.proposals))


def test_inside_share_and_pearson():
    a = np.zeros((10, 10), np.float32)
    a[2:4, 2:4] = 1.0
    a[8, 8] = 0.95
    assert gradients.inside_share(a, np.array([0, 0, 5, 5])) == (4, 5)
    assert gradients.top_inside_share(a, np.array([0, 0, 5, 5]), 0.05) == (4, 5)
    assert math.isclose(gradients.pearson(a, a > 0.5), gradients.pearson(a, a > 0.5))
    assert gradients.pearson(np.ones((3, 3)), a[:3, :3]) == 0.0


def test_notebook_parameters_are_checked_in_one_line():
    from bbam_lite.workspace import ParameterError

    assert study.check_count("n_images", None) is None and study.check_count("n_images", 3) == 3
    assert study.check_numbers("levels", [-0.2, 0, 0.2], -0.9, 0.9) == (-0.2, 0.0, 0.2)
    for bad in ("3", 0, True, 2.5):
        with pytest.raises(ParameterError, match="n_images=") as err:
            study.check_count("n_images", bad)
        assert "\n" not in str(err.value)
    for bad in ([], [0.5, "x"], [2.0], "0.1"):
        with pytest.raises(ParameterError, match="levels="):
            study.check_numbers("levels", bad, -0.9, 0.9)


def test_table_displays_as_escaped_html_and_markdown():
    from bbam_lite.analysis.tables import Table

    t = Table([{"a": 0.5, "b": "<x>"}], [("a", "A", ".1f"), ("b", "B & C", "")], caption="cap")
    page = t._repr_html_()
    assert "<caption>cap</caption>" in page and "<th>B &amp; C</th>" in page and "&lt;x&gt;" in page
    assert '<td style="text-align: right">0.5</td>' in page
    assert t._repr_markdown_().startswith("**cap**\n\n| A | B & C |")


def test_analysis_images_per_profile(tmp_path):
    from bbam_lite.workspace import Workspace

    assert study.analysis_images(Workspace(tmp_path, "smoke")) == 2  # the profile's study_images
    assert study.analysis_images(Workspace(tmp_path, "lite")) == 6  # fewer than its 12: several runs each
    assert study.analysis_images(Workspace(tmp_path, "full")) == 200


def test_detector_line_names_the_checkpoint_and_its_ap(smoke_ws):
    line = study.detector_line(smoke_ws)
    assert smoke_ws.detector_path().name in line and "box AP50 0." in line
