"""The pipeline as a diagram, drawn with matplotlib (chapter 1 of the book)."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from bbam_lite.plotting import MIN_FONT_PT, figure_size

#: (title, detail, chapter) of each stage of the pipeline, in order.
PIPELINE: tuple[tuple[str, str, str], ...] = (
    ("Images + boxes", "the only labels: a class\nand a box per object", "ch. 2"),
    ("Faster R-CNN", "trained on the boxes;\nheads f_box and f_cls", "ch. 3"),
    ("BBAM per box", "smallest mask M that keeps\nf_box and f_cls (Eq. 1-3, 5)", "ch. 5"),
    ("Pseudo labels", "dense CRF, θ_fg / θ_bg,\nproposal refinement (Eq. 4)", "ch. 6"),
    ("Segmentation nets", "DeepLab-v2 (semantic),\nMask R-CNN (instance)", "ch. 12"),
    ("Evaluation", "mIoU, AP25-AP75, ABO\nagainst true masks", "ch. 12"),
)

BASELINE = ("Box baselines", "Box, Box + CRF, GrabCut\n(Box2Seg Algorithm 1)", "ch. 4")


def _stage(ax: plt.Axes, x: float, y: float, title: str, detail: str, chapter: str, colour: str) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (x - 0.95, y - 0.55),
            1.9,
            1.1,
            boxstyle="round,pad=0.04,rounding_size=0.12",
            fc=colour,
            ec="0.25",
            lw=1.2,
        )
    )
    ax.text(x, y + 0.25, title, ha="center", va="center", fontsize=10.5, weight="bold")
    ax.text(x, y - 0.17, detail, ha="center", va="center", fontsize=MIN_FONT_PT)
    ax.text(x + 0.88, y + 0.47, chapter, ha="right", va="top", fontsize=MIN_FONT_PT, color="0.35")


def _arrow(ax: plt.Axes, start: tuple[float, float], end: tuple[float, float], style: str = "-") -> None:
    ax.add_patch(
        FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, lw=1.4, color="0.2", linestyle=style)
    )


def pipeline_diagram(figsize: tuple[float, float] = (11.5, 4.6)) -> plt.Figure:
    """BBAM's pipeline in two rows (training the detector and explaining it; using the labels), with
    the box baselines as the alternative route from boxes to pseudo labels."""
    fig, ax = plt.subplots(figsize=figure_size(*figsize))
    top = [(1.1 + 2.45 * i, 2.6) for i in range(4)]
    bottom = [(top[3][0] - 2.45 * i, 0.35) for i in range(2)]
    colours = ["#dbe9f6", "#fde2c8", "#f8d0d0", "#d9f0d3", "#e8dff5", "#eeeeee"]
    positions = top + bottom
    for (x, y), (title, detail, chapter), colour in zip(positions, PIPELINE, colours, strict=True):
        _stage(ax, x, y, title, detail, chapter, colour)
    for (x0, y0), (x1, y1) in zip(positions[:3], positions[1:4], strict=True):
        _arrow(ax, (x0 + 0.97, y0), (x1 - 0.97, y1))
    _arrow(ax, (top[3][0], top[3][1] - 0.57), (bottom[0][0], bottom[0][1] + 0.57))
    _arrow(ax, (bottom[0][0] - 0.97, bottom[0][1]), (bottom[1][0] + 0.97, bottom[1][1]))
    bx, by = top[0][0], bottom[0][1]
    _stage(ax, bx, by, *BASELINE, "#fff6bf")
    _arrow(ax, (top[0][0], top[0][1] - 0.57), (bx, by + 0.57), style="--")
    _arrow(ax, (bx + 0.97, by + 0.3), (top[3][0] - 0.5, top[3][1] - 0.57), style="--")
    ax.set_xlim(-0.1, top[3][0] + 1.1)
    ax.set_ylim(-0.4, 3.35)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("From boxes to masks: BBAM's pipeline (solid) and the box baselines (dashed)")
    fig.tight_layout()
    return fig
