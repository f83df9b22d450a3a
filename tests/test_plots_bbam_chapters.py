"""The figures of chapters 5-8 (bbam_lite.analysis.plots) on small made-up inputs: each returns a
figure with the expected panels and colours series by the registry."""

from types import SimpleNamespace

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from bbam_lite.analysis import plots
from bbam_lite.pseudo.methods import colours, titles


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _summary(rng, n=50):
    edges = np.linspace(0, 2, 21)
    return {
        "threshold": 0.9,
        "relative": True,
        "points": rng.uniform(-1.5, 1.5, (n, 2)).tolist(),
        "edges": edges.tolist(),
        "hist": (np.ones(20) / 20).tolist(),
        "reference_hist": (np.ones(20) / 20).tolist(),
    }


def test_relative_position_figure_has_one_panel_per_head_and_a_distribution():
    rng = np.random.default_rng(0)
    summaries = {name: _summary(rng) for name in ("box head only", "cls head only", "both heads")}
    summaries["both heads"]["points"] = []  # a head without high pixels still draws
    fig = plots.relative_position_figure(summaries)
    assert len(fig.axes) == 4
    labels = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert labels == [*summaries, "all box pixels"]


def test_loss_curves_figure_one_panel_per_setting():
    curves = {
        name: {"box": [0.1, 0.2, 0.3], "cls": [0.3, 0.2, 0.1], "mask_mean": [1, 0.9, 0.8], "objects": 2}
        for name in ("box head only", "cls head only", "both heads")
    }
    fig = plots.loss_curves_figure(curves)
    assert len(fig.axes) == 3
    assert all(len(ax.get_lines()) >= 2 for ax in fig.axes)


def test_noise_figure_uses_registry_colours_and_titles():
    rows = [
        {"method": m, "level": v, "miou": 0.5 + v, "mean_instance_iou": 0.4 + v}
        for m in ("box", "grabcut", "bbam")
        for v in (-0.2, 0.0, 0.2)
    ]
    fig = plots.noise_figure(rows)
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [titles()[m] for m in ("box", "grabcut", "bbam")]
    line = next(ln for ln in fig.axes[0].get_lines() if ln.get_label() == titles()["bbam"])
    assert matplotlib.colors.same_color(line.get_color(), colours()["bbam"])


def test_label_quality_figure_shows_both_bbam_presets_in_their_colours():
    q = {"miou": 0.6, "mean_instance_iou": 0.5}
    fig = plots.label_quality_figure({"bbam_paper": q, "bbam": q}, "two presets")
    bars = fig.axes[0].patches
    assert {matplotlib.colors.to_hex(b.get_facecolor()) for b in bars} == {
        matplotlib.colors.to_hex(colours()[m]) for m in ("bbam_paper", "bbam")
    }


def test_chapter_5_and_6_figures_draw_from_plain_arrays():
    rng = np.random.default_rng(1)
    h = w = 24
    fig = plots.perturbation_figure(
        np.ones((3, 3)), ["a", "b"], rng.uniform(0, 1, (2, 3, h, w)), [0.9, 0.1], [0.8, 0.2], "car", 8.0
    )
    assert len(fig.axes) == 3
    fig = plots.stride_figure([0.1, 0.5], [20.0, 40.0], [30, 9], 0.5, 160)
    assert len(fig.axes) == 2
    image, gt = np.zeros((h, w, 3), np.uint8), np.zeros((h, w), bool)
    obj = SimpleNamespace(image=image, box=[2, 2, 20, 20], gt=gt, label=0, image_id=1)
    hist = {k: [1.0, 0.5, 0.2] for k in ("box", "cls", "l1", "tv")}
    res = SimpleNamespace(history={**hist, "snapshots": [(0, np.ones((h, w))), (2, np.zeros((h, w)))]})
    assert plots.mask_snapshots_figure([obj], [res], ["car"]).axes[0].get_ylabel() == "car"
    cfg = SimpleNamespace(lam=0.007, lam_tv=1e-4, use_box=True, use_cls=True)
    assert len(plots.bbam_losses_figure([obj], [res], ["car"], cfg).axes) == 3
    fg = np.zeros((h, w), bool)
    row = {"image": obj.image, "box": obj.box, "bbam": np.ones((h, w)), "gt": fg, "name": "car"}
    fig = plots.label_steps_figure([{**row, "masks": [(fg, fg), (fg, ~fg)]}], ["one", "two"])
    assert len(fig.axes) == 5  # image, BBAM, two steps, true mask
    objs = [{"iou": 0.5, "area_ratio": 0.1, "label": 0}, {"iou": 0.7, "area_ratio": 0.3, "label": 1}]
    fig = plots.box_crf_gain_figure(objs, objs[::-1], ["car", "tree"])
    assert "of 2 objects" in fig.axes[0].get_title()
