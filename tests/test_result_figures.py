"""The figures and tables of chapters 9-12 (Fig. 7b, Tables 5 and 6, the main comparison): each
builds from a result of the shape its study returns, with the rows and cells it should show."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bbam_lite.analysis import plots, stride  # noqa: E402
from bbam_lite.experiments import networks  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def stride_result() -> dict:
    rng = np.random.default_rng(0)
    rows = []
    for setting in stride.STRIDES:
        for k, a in enumerate((0.02, 0.03, 0.1, 0.12, 0.3, 0.4)):
            rows.append(
                {
                    "setting": setting,
                    "image_id": k,
                    "object": 0,
                    "area_ratio": a,
                    "stride": 10.0,
                    "iou_map": float(rng.uniform()),
                    "iou_label": float(rng.uniform()),
                }
            )
    edges = stride.size_edges([r["area_ratio"] for r in rows[:6]])
    return {"rows": rows, "summary": stride.summarise(rows, edges), "size_edges": list(edges)}


def test_stride_figure_draws_one_line_per_setting_over_the_size_groups():
    fig = plots.stride_iou_figure(stride_result())
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == list(stride.SIZE_NAMES)
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == sorted(stride.STRIDES)


def test_sweep_heatmap_has_one_cell_per_metric_and_value():
    rows = [{"lam": lam, "miou": 0.5, "mean_instance_iou": 0.4} for lam in (0.001, 0.007, 0.02)]
    fig = plots.sweep_heatmap(rows, "lam", "lambda", [("miou", "a"), ("mean_instance_iou", "b")], "t")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 6 and texts[0] == "0.500"


def test_threshold_heatmaps_share_the_axes_values_and_leave_unswept_pairs_empty():
    rows = [
        {"theta_bg": bg, "theta_fg": fg, "miou": 0.5, "ignore_fraction": 0.01}
        for bg, fg in ((0.2, 0.2), (0.5, 0.5), (0.3, 0.7))
    ]
    fig = plots.threshold_heatmaps(rows, [("miou", "mIoU"), ("ignore_fraction", "ignored")], "t")
    ax, shares = (a for a in fig.axes if a.get_title())  # not the colour bars
    assert [t.get_text() for t in ax.get_xticklabels()] == [t.get_text() for t in ax.get_yticklabels()]
    assert len(ax.texts) == 3  # 5 x 5 cells, three swept
    assert shares.texts[0].get_text() == "1.0%"


def comparison_result() -> dict:
    def row(title, sem, ap50):
        return {
            "title": title,
            "labels": "gt",
            "semantic": {"miou": sem, "train_seconds": 60.0, "crf": {"miou": sem + 0.01}},
            "instance": {"ap50": ap50, "ap": ap50 / 2, "train_seconds": 30.0},
        }

    return {
        "rows": {
            "full": row(networks.ROWS["full"], 0.7, 0.6),
            "box": row(networks.ROWS["box"], 0.5, 0.4),
            "bbam": row(networks.ROWS["bbam"], 0.6, 0.5),
        },
        "expected_order": {
            "semantic/miou/bbam": {"rows": ["full", "bbam", "box"], "values": [0.7, 0.6, 0.5], "holds": True}
        },
    }


def test_comparison_tables_and_bars_from_a_result():
    result = comparison_result()
    assert networks.training_minutes(result) == pytest.approx(4.5)
    ours, paper = networks.comparison_tables(result)
    assert [r["miou"] for r in ours.rows] == pytest.approx([70.0, 50.0, 60.0])
    assert len(paper.rows) == len(networks.PAPER)
    assert networks.order_table(result).rows[0]["holds"] == "yes"
    fig = plots.comparison_bars(result, networks.PAPER)
    bars = fig.axes[0].patches
    assert len(bars) == 6 and bars[0].get_height() == pytest.approx(70.0)
    assert matplotlib.colors.to_hex(bars[1].get_facecolor()) == matplotlib.colors.to_hex("tab:gray")


def test_sensitivity_tables_and_bars_from_a_result():
    inst = {"ap": 0.2, "ap50": 0.5, "ap75": 0.1, "abo": 0.4}
    sens = {
        "rows": {
            "table5/0.2-0.8-on": {"instance": inst},
            "table5/0.5-0.5-off": {"instance": inst},
            "table6/0.007": {"instance": inst, "semantic": {"miou": 0.6}},
        },
        "paper_table5": {"0.2-0.8-on": {"ap50": 61.9}},
        "paper_table6": {"0.007": {"ap50": 61.9, "miou": 71.4}, "0.02": {"ap50": 59.6, "miou": 70.3}},
    }
    t5, t6 = networks.table5_rows(sens), networks.table6_rows(sens)
    assert [(r["theta_bg"], r["theta_fg"], r["grow"]) for r in t5] == [(0.2, 0.8, "on"), (0.5, 0.5, "off")]
    assert t5[0]["paper_ap50"] == 61.9 and t5[1]["paper_ap50"] is None
    assert t6[0]["miou"] == pytest.approx(60.0)
    table5, table6 = networks.sensitivity_tables(sens)
    assert len(table5.rows) == 2 and len(table6.rows) == 1
    fig = plots.sensitivity_bars(t5, t6, sens["paper_table6"])
    assert len(fig.axes) == 2


def test_stride_table_gives_each_setting_on_the_run_images():
    from bbam_lite.attribution.bbam import BBAMConfig

    table = stride.stride_table(BBAMConfig(), 375, 500, ratios=(0.1,))
    row = table.rows[0]
    assert row["adaptive (paper px)"] == pytest.approx(16 + 48 * 0.1**0.5)
    assert {"s = 24 (this run, px)", "s = 48 (this run, px)"} <= set(row)
