"""The package functions chapters 1-6 call: label costs, the pipeline diagram, the data summary, the
head probe, study objects and the post-processing ablation."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from bbam_lite.analysis.probe import checkpoint_id, probe_heads, training_log  # noqa: E402
from bbam_lite.attribution.tasks import study_objects  # noqa: E402
from bbam_lite.data.summary import dataset_summary  # noqa: E402
from bbam_lite.data.synthetic import read_synthetic  # noqa: E402
from bbam_lite.label_cost import LABEL_COSTS, annotation_hours  # noqa: E402
from bbam_lite.pseudo.ablation import TABLE4_VARIANTS, Variant, rederive, variant_masks  # noqa: E402
from bbam_lite.pseudo.settings import PseudoLabelSettings  # noqa: E402


def test_annotation_hours_follow_the_papers_seconds():
    hours = annotation_hours(10_582)
    assert hours["bounding boxes"] == pytest.approx(10_582 * 38.1 / 3600)
    assert hours["pixel-level masks"] / hours["bounding boxes"] == pytest.approx(240 / 38.1)
    assert [c.kind for c in LABEL_COSTS] == list(hours)
    with pytest.raises(ValueError):
        annotation_hours(-1)


def test_pipeline_diagram_draws_every_stage():
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    from bbam_lite.diagrams import BASELINE, PIPELINE, pipeline_diagram

    fig = pipeline_diagram()
    ax = fig.axes[0]
    assert sum(isinstance(p, FancyBboxPatch) for p in ax.patches) == len(PIPELINE) + 1
    assert sum(isinstance(p, FancyArrowPatch) for p in ax.patches) == len(PIPELINE) + 1
    texts = {t.get_text() for t in ax.texts}
    assert {title for title, _, _ in PIPELINE} | {BASELINE[0]} <= texts
    assert ax.get_title()
    plt.close(fig)


def test_dataset_summary_counts_match_the_records(tiny_synth):
    ds = read_synthetic(tiny_synth, "train")
    s = dataset_summary(ds)
    n_obj = sum(len(r.boxes) for r in ds)
    assert s["images"] == len(ds) and s["objects"] == n_obj == len(s["area_ratios"])
    assert sum(s["by_class"].values()) == n_obj and list(s["by_class"]) == ds.class_names[1:]
    assert sum(k * v for k, v in s["objects_per_image"].items()) == n_obj
    assert all(0 < a <= 1 for a in s["area_ratios"]) and s["with_masks"]
    json.dumps(s)


def test_study_objects_are_the_labelled_objects_in_order(tiny_synth):
    ds = read_synthetic(tiny_synth, "train")
    objs = study_objects(ds, 3)
    recs = list(ds)[:3]
    assert len(objs) == sum(len(r.boxes) for r in recs)
    first, task = objs[0], objs[0].task()
    assert task.key == first.key == (recs[0].image_id, 0) and first.gt.shape == (
        recs[0].height,
        recs[0].width,
    )
    assert np.allclose(task.box.numpy(), recs[0].boxes[0]) and task.label == first.label == recs[0].labels[0]
    assert task.image.shape == (3, recs[0].height, recs[0].width) and 0 < first.area_ratio <= 1


def test_probe_heads_reports_eq3_consistently(tiny_synth, smoke_detector):
    from bbam_lite.detector.model import load_detector

    ds = read_synthetic(tiny_synth, "train")
    det = load_detector(smoke_detector, class_names=ds.class_names)
    obj = study_objects(ds, 1)[0]
    task = obj.task()
    p = probe_heads(det.model, task.image, task.box, task.label, n=16, threshold=0.5,
                    generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert p.proposals.shape == (16, 4) and p.regressed.shape == (16, 4)
    for iou in (p.proposal_iou, p.regressed_iou, p.class_prob):
        assert ((iou >= 0) & (iou <= 1)).all()
    expected = (p.predicted == task.label) & (p.regressed_iou > 0.5)
    assert (p.positive == expected).all()
    again = probe_heads(det.model, task.image, task.box, task.label, n=16, threshold=0.5,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert np.array_equal(again.proposals, p.proposals)


def test_training_log_from_the_card_or_a_run(tmp_path):
    from bbam_lite.weights import default_detector_path

    shipped = training_log(default_detector_path())
    assert shipped and {"iteration", "box_ap50", "loss"} <= set(shipped[0])
    (tmp_path / "detector.pt").write_bytes(b"")
    assert training_log(tmp_path / "detector.pt") == []
    assert checkpoint_id(tmp_path / "detector.pt") != checkpoint_id(default_detector_path())
    (tmp_path / "detector_metrics.json").write_text(json.dumps({"log": [{"iteration": 5}]}))
    assert training_log(tmp_path / "detector.pt") == [{"iteration": 5}]


def _fake_bbam_folder(tmp_path, ds, maps_of):
    folder = tmp_path / "labels"
    (folder / "bbam").mkdir(parents=True)
    recs = list(ds)[:3]
    for rec in recs:
        maps = np.array([maps_of(rec, k) for k in range(len(rec.boxes))], np.float16)
        np.savez_compressed(folder / "bbam" / f"{rec.image_id}.npz", bbam=maps)
    return folder, recs


def test_rederive_scores_known_maps(tiny_synth, tmp_path):
    ds = read_synthetic(tiny_synth, "train")
    settings = PseudoLabelSettings(method="bbam", profile="lite")
    folder, recs = _fake_bbam_folder(tmp_path, ds, lambda rec, k: rec.load_masks()[k].astype(np.float32))
    variants = {"exact": Variant(crf=False, theta_fg=0.5, theta_bg=0.5), "box": Variant(source="prior")}
    res = rederive(ds, folder, variants, settings, limit=3)
    n_obj = sum(len(r.boxes) for r in recs)
    # maps equal to the true masks (which lie inside their boxes) reproduce them exactly
    assert res["exact"]["mean_instance_iou"] == pytest.approx(1.0)
    assert res["exact"]["miou"] == pytest.approx(1.0) and res["exact"]["ignore_fraction"] == 0
    assert len(res["exact"]["objects"]) == n_obj and res["exact"]["images"] == 3
    assert 0 < res["box"]["mean_instance_iou"] < 1
    assert rederive(ds, folder, variants, settings, limit=3, workers=2) == res  # forked workers agree
    empty, _ = _fake_bbam_folder(tmp_path / "z", ds, lambda rec, k: np.zeros((rec.height, rec.width)))
    assert rederive(ds, empty, variants, settings, limit=3)["exact"]["mean_instance_iou"] == 0


def test_rederive_refuses_foreign_folders(tiny_synth, tmp_path):
    ds = read_synthetic(tiny_synth, "train")
    settings = PseudoLabelSettings(method="bbam", profile="lite")
    with pytest.raises(ValueError, match="no stored BBAM maps"):
        rederive(ds, tmp_path, TABLE4_VARIANTS, settings)
    folder, _ = _fake_bbam_folder(tmp_path, ds, lambda rec, k: np.zeros((rec.height, rec.width)))
    rec = list(ds)[0]
    np.savez_compressed(folder / "bbam" / f"{rec.image_id}.npz", bbam=np.zeros((9, rec.height, rec.width)))
    with pytest.raises(ValueError, match="9 maps for"):
        rederive(ds, folder, TABLE4_VARIANTS, settings, limit=3)


def test_variant_masks_need_proposals_to_refine(tiny_synth):
    ds = read_synthetic(tiny_synth, "train")
    rec = list(ds)[0]
    settings = PseudoLabelSettings(method="bbam", profile="lite")
    bbam = rec.load_masks()[0].astype(np.float32)
    (fg, ign), (fg2, _) = variant_masks(rec.load_image(), bbam, rec.boxes[0], settings,
                                        [Variant(crf=False), Variant(crf=False, refine=True)],
                                        proposals=bbam[None] > 0.5)  # fmt: skip
    assert fg.any() and not (fg & ign).any() and np.array_equal(fg, fg2)
    with pytest.raises(ValueError, match="needs mask proposals"):
        variant_masks(rec.load_image(), bbam, rec.boxes[0], settings, [Variant(refine=True)])
    with pytest.raises(ValueError):
        Variant(theta_fg=0.2, theta_bg=0.8)


def test_quantile_rule_ignores_the_maps_scale(tiny_synth, tmp_path):
    """The paper's thresholds read the map's values; the authors' area quantiles read its ranking, so
    a map that ranks the object first but never reaches theta_fg (what BBAM does at lite scale) is
    lost by the first rule and kept by the second."""
    from bbam_lite.pseudo.folder import ImageLabels, LabelsFolder
    from bbam_lite.pseudo.labels import InstanceLabel

    ds = read_synthetic(tiny_synth, "train")
    settings = PseudoLabelSettings(method="bbam", profile="lite")
    folder, recs = _fake_bbam_folder(
        tmp_path, ds, lambda rec, k: 0.1 + 0.4 * rec.load_masks()[k].astype(np.float32)
    )
    for rec in recs:
        empty = np.zeros((rec.height, rec.width), bool)
        insts = [InstanceLabel(int(c), b, empty, empty) for b, c in zip(rec.boxes, rec.labels, strict=True)]
        labels = ImageLabels(insts, [{"stride": 3.0}] * len(insts))
        LabelsFolder(folder).write_image(rec, labels, np.zeros((rec.height, rec.width), np.uint8))
    variants = {"values": Variant(), "quantiles": Variant(rule="quantiles")}
    res = rederive(ds, folder, variants, settings, limit=3)
    assert res["values"]["mean_instance_iou"] < 0.05  # nothing above 0.8: every object lost
    assert res["quantiles"]["mean_instance_iou"] > 0.5
    assert res["quantiles"]["miou_ignore_as_background"] <= res["quantiles"]["miou"] + 1e-9
    with pytest.raises(ValueError, match="crf must be True"):
        Variant(rule="quantiles", crf=False)
    with pytest.raises(ValueError, match="needs the object's stride"):
        variant_masks(
            recs[0].load_image(),
            recs[0].load_masks()[0] * 0.3,
            recs[0].boxes[0],
            settings,
            [Variant(rule="quantiles")],
        )
