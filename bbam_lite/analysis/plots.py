"""Figures of the analysis chapters. Each function returns a matplotlib figure with a title, axis
labels and a legend where there is more than one series; none shows or saves it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Circle, Rectangle

from bbam_lite.analysis.heads import contour, relative_position
from bbam_lite.plotting import MIN_FONT_PT, figure_size
from bbam_lite.pseudo import methods as label_methods

#: Series colours: the analyses' own series, then every pseudo-label method and variant (registry).
COLOURS = {
    "box head only": "tab:orange",
    "cls head only": "tab:blue",
    "both heads": "tab:green",
    "BBAM": "tab:green",
    "SimpleGrad": "tab:blue",
    "SmoothGrad": "tab:orange",
    "Grad-CAM": "tab:red",
    **label_methods.colours(),
}
#: Legend names of the pseudo-label methods and variants (registry titles).
METHOD_NAMES = label_methods.titles()


def _off(ax: plt.Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _box(ax: plt.Axes, box: Sequence[float], colour: str, style: str = "-", label: str | None = None) -> None:
    x1, y1, x2, y2 = (float(v) for v in box)
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=colour, ls=style, lw=1.5, label=label))


def r_definition_figure(mask: np.ndarray, pixel: tuple[int, int] | None = None) -> plt.Figure:
    """Fig. 6a: the definition of R drawn on ``mask`` (centroid, contour, r1, r2, theta), and |R| of
    every pixel of the mask. ``pixel`` (row, col) is the example point; by default one inside the mask
    about halfway between the centroid and the contour."""
    R, norm = relative_position(mask)
    ys, xs = np.nonzero(mask)
    yc, xc = ys.mean(), xs.mean()
    c = contour(mask)
    if pixel is None:
        cand = np.argwhere(np.abs(norm - 0.6) < 0.05)
        pixel = tuple(cand[len(cand) // 3]) if len(cand) else (int(ys[0]), int(xs[0]))
    py, px = pixel
    cy, cx = np.argwhere(c)[np.argmin(np.hypot(*(np.argwhere(c) - np.array(pixel)).T))]
    fig, axes = plt.subplots(1, 2, layout="constrained", figsize=figure_size(10.5, 4.4))
    ax = axes[0]
    ax.imshow(mask, cmap="Greys", vmin=0, vmax=2.5)
    ax.contour(c, levels=[0.5], colors="k", linewidths=1)
    ax.plot([xc, px], [yc, py], "-", c="tab:blue", lw=2, label=r"$r_1 = \|x - x_c\|$")
    ax.plot([px, cx], [py, cy], "-", c="tab:red", lw=2, label=r"$r_2 = \min_{c \in C}\|x - c\|$")
    ax.plot([xc, xc + 0.6 * abs(px - xc) + 8], [yc, yc], ":", c="k", lw=1)
    ax.plot(xc, yc, "o", c="tab:blue", ms=7, label=r"centroid $x_c$")
    ax.plot(px, py, "s", c="k", ms=6, label="pixel $x$")
    ax.annotate(r"$\theta$", (xc + 6, yc + (3 if py > yc else -3)), fontsize=12)
    ax.set_title(r"$R = \frac{r_1}{r_1 + r_2}(\cos\theta, \sin\theta)$, C: the contour", fontsize=10)
    ax.legend(loc="lower left", fontsize=MIN_FONT_PT)
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    im = axes[1].imshow(np.where(mask, norm, np.nan), cmap="viridis", vmin=0, vmax=1)
    axes[1].set_title(r"$\|R\|$ of every pixel: 0 at the centroid, 1 on the contour", fontsize=10)
    axes[1].set_xlabel("x (px)")
    axes[1].set_ylabel("y (px)")
    fig.colorbar(im, ax=axes[1], label=r"$\|R\|$")
    fig.suptitle("Fig. 6a: the relative position of a pixel in an object")
    return fig


def relative_position_figure(summaries: dict[str, dict[str, Any]]) -> plt.Figure:
    """Fig. 6b: R of the high-attribution pixels of each head in the objects' boxes (|R| = 1 is the
    object's contour; |R| > 1 lies outside the object, drawn at most at 2), and the distribution of
    |R| of each head's pixels (seaborn ``histplot`` with hue on the head, on the plotted subsample
    of ``points``) against that of all box pixels (dashed: the summaries' reference histogram)."""
    import pandas as pd
    import seaborn as sns
    from matplotlib.lines import Line2D

    n = len(summaries)
    fig, axes = plt.subplots(1, n + 1, layout="constrained", figsize=figure_size(3.5 * (n + 1), 3.8))
    for ax, (name, s) in zip(axes, summaries.items(), strict=False):
        P = np.asarray(s["points"]).reshape(-1, 2)
        ax.scatter(P[:, 0], -P[:, 1], s=2, alpha=0.35, c=COLOURS.get(name, "k"), label=f"{len(P)} pixels")
        ax.add_patch(Circle((0, 0), 1, fill=False, ec="k", lw=1.2, label="|R| = 1: contour"))
        ax.add_patch(Circle((0, 0), 2, fill=False, ec="k", lw=0.6, ls=":", label="|R| >= 2 drawn at 2"))
        ax.set_xlim(-2.15, 2.15)
        ax.set_ylim(-2.15, 2.15)
        ax.set_aspect("equal")
        what = f"> {s['threshold']} x its max in the box" if s.get("relative") else f"> {s['threshold']}"
        ax.set_title(f"{name}: map {what}", fontsize=9)
        ax.set_xlabel("$R_x$")
        ax.set_ylabel("$R_y$ (up)")
        ax.legend(loc="lower right", fontsize=MIN_FONT_PT)
    ax = axes[-1]
    edges = np.asarray(next(iter(summaries.values()))["edges"])
    norms = pd.DataFrame(
        [
            {"head": name, "norm": float(np.hypot(x, y))}
            for name, s in summaries.items()
            for x, y in np.asarray(s["points"]).reshape(-1, 2)
        ],
        columns=["head", "norm"],
    )
    palette = {name: COLOURS.get(name, "k") for name in summaries}
    if len(norms):
        sns.histplot(
            data=norms,
            x="norm",
            hue="head",
            hue_order=list(summaries),
            palette=palette,
            bins=edges,
            stat="probability",
            common_norm=False,
            element="step",
            fill=False,
            linewidth=1.6,
            legend=False,
            ax=ax,
        )
    ref = next(iter(summaries.values()))["reference_hist"]
    ax.stairs(ref, edges, ls="--", color="k")
    ax.axvline(1.0, c="k", lw=0.6)
    handles = [Line2D([], [], c=c, lw=1.6, label=name) for name, c in palette.items()]
    handles.append(Line2D([], [], c="k", ls="--", label="all box pixels"))
    ax.legend(handles=handles, fontsize=MIN_FONT_PT)
    ax.set_xlabel(r"$\|R\|$ (0 centre, 1 contour, > 1 outside)")
    ax.set_ylabel("share of pixels")
    ax.set_title(r"distribution of $\|R\|$", fontsize=10)
    fig.suptitle("Fig. 6b: where each head's high-attribution pixels lie relative to the object")
    return fig


def loss_curves_figure(curves: dict[str, dict[str, Any]]) -> plt.Figure:
    """Fig. 6c: both heads' losses per iteration when the mask keeps one head's outputs (or both),
    one panel per setting (seaborn ``lineplot``, hue on the head). The cached curves hold the mean
    over the objects, so there is no band over objects."""
    import pandas as pd
    import seaborn as sns

    long = pd.DataFrame(
        [
            {"setting": name, "loss of": f"{head} head", "iteration": i, "loss": float(v)}
            for name, c in curves.items()
            for head in ("box", "cls")
            for i, v in enumerate(c[head])
        ]
    )
    palette = {"box head": COLOURS["box head only"], "cls head": COLOURS["cls head only"]}
    n = len(curves)
    fig, axes = plt.subplots(
        1, n, layout="constrained", figsize=figure_size(4.2 * n, 3.4), sharey=True, squeeze=False
    )
    for ax, (name, c) in zip(axes[0], curves.items(), strict=True):
        sns.lineplot(
            data=long[long["setting"] == name],
            x="iteration",
            y="loss",
            hue="loss of",
            palette=palette,
            seed=0,
            ax=ax,
        )
        ax.set_title(f"optimising: {name} ({c['objects']} objects)", fontsize=10)
        ax.legend(fontsize=MIN_FONT_PT, title="loss of", title_fontsize=MIN_FONT_PT)
    axes[0, 0].set_ylabel("L1 change of the head's output\n(mean over objects)")
    fig.suptitle("Fig. 6c: optimising one head's loss raises the other's")
    return fig


def grouped_bars(
    rows: Sequence[dict[str, Any]],
    group: str,
    series: str,
    metrics: Sequence[tuple[str, str]],
    title: str,
    xlabel: str,
) -> plt.Figure:
    """Bars of ``metrics`` ((key, axis label) pairs, one panel each) by ``group``, one bar per ``series``."""
    groups = list(dict.fromkeys(r[group] for r in rows))
    names = list(dict.fromkeys(r[series] for r in rows))
    width = 0.8 / max(len(names), 1)
    fig, axes = plt.subplots(
        1, len(metrics), layout="constrained", figsize=figure_size(4.6 * len(metrics), 3.6), squeeze=False
    )
    for ax, (key, label) in zip(axes[0], metrics, strict=True):
        for j, name in enumerate(names):
            vals = [
                next((r[key] for r in rows if r[group] == g and r[series] == name), np.nan) for g in groups
            ]
            x = np.arange(len(groups)) + (j - (len(names) - 1) / 2) * width
            ax.bar(x, vals, width, label=METHOD_NAMES.get(name, name), color=COLOURS.get(name))
        ax.set_xticks(np.arange(len(groups)), groups)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=MIN_FONT_PT)
    fig.suptitle(title)
    return fig


def noise_figure(rows: Sequence[dict[str, Any]]) -> plt.Figure:
    """Fig. 7a: pseudo-label quality against the box noise level, one line per method (seaborn
    ``lineplot``, registry colours and names). The rows hold each method's mean over the images at
    each level, so there is no band over objects."""
    import pandas as pd
    import seaborn as sns

    methods = list(dict.fromkeys(r["method"] for r in rows))
    df = pd.DataFrame(
        [{**r, "noise": 100 * r["level"], "title": METHOD_NAMES.get(r["method"], r["method"])} for r in rows]
    )
    palette = {METHOD_NAMES.get(m, m): COLOURS.get(m, "k") for m in methods}
    fig, axes = plt.subplots(1, 2, layout="constrained", figsize=figure_size(9.5, 3.6))
    for ax, (key, label) in zip(
        axes, (("miou", "pseudo-label mIoU"), ("mean_instance_iou", "mean instance IoU")), strict=True
    ):
        sns.lineplot(data=df, x="noise", y=key, hue="title", palette=palette, marker="o", seed=0, ax=ax)
        ax.axvline(0, c="k", lw=0.6, ls=":")
        ax.set_xlabel("box noise (%): < 0 contracted, > 0 expanded")
        ax.set_ylabel(label)
        ax.legend(fontsize=MIN_FONT_PT)
    fig.suptitle("Fig. 7a: pseudo labels from noisy boxes")
    return fig


def iou_threshold_figure(study: dict[str, Any]) -> plt.Figure:
    """Fig. 7c: IoU with the ground-truth mask of each attribution map thresholded at t."""
    fig, ax = plt.subplots(layout="constrained", figsize=figure_size(5.6, 3.8))
    for name, s in study["methods"].items():
        if s["iou_by_threshold"]:
            ax.plot(study["thresholds"], s["iou_by_threshold"], "-o", ms=3, c=COLOURS.get(name), label=name)
    ax.set_xlabel("threshold t on the attribution map (scaled to max 1)")
    ax.set_ylabel("IoU(map > t, ground-truth mask)")
    ax.set_ylim(0, 1)
    ax.set_title(f"Fig. 7c: localisation by attribution method ({study['objects']} objects)")
    ax.legend(fontsize=MIN_FONT_PT)
    return fig


def attribution_grid(
    rows: Sequence[dict[str, Any]],
    methods: Sequence[str],
    title: str = "Attribution maps for the detector's outputs (dotted: the object's box)",
) -> plt.Figure:
    """One row per object: the image with its box, the ground truth, then each method's map.

    Each row is ``{"image", "box", "gt", method: map, ...}``."""
    cols = ["image", "ground truth", *methods]
    fig, axes = plt.subplots(
        len(rows),
        len(cols),
        layout="constrained",
        figsize=figure_size(2.2 * len(cols), 2.3 * len(rows)),
        squeeze=False,
    )
    for r, row in enumerate(rows):
        for c, name in enumerate(cols):
            ax = axes[r, c]
            _off(ax)
            if name == "image":
                ax.imshow(row["image"])
                _box(ax, row["box"], "yellow")
            elif name == "ground truth":
                ax.imshow(row["gt"], cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(row["image"])
                im = ax.imshow(row[name], cmap="jet", vmin=0, vmax=1, alpha=0.55)
                _box(ax, row["box"], "white", ":")
            if r == 0:
                ax.set_title(name, fontsize=10)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label="attribution (BBAM: mask value)")
    fig.suptitle(title)
    return fig


def proposal_example_figure(
    image: np.ndarray, example: Sequence[dict[str, Any]], bbam: np.ndarray
) -> plt.Figure:
    """Fig. 8: gradient maps of three positives of one object, each with its proposal and prediction,
    and the object's BBAM."""
    n = len(example)
    fig, axes = plt.subplots(1, n + 1, layout="constrained", figsize=figure_size(3.1 * (n + 1), 3.6))
    for ax, e in zip(axes, example, strict=False):
        ax.imshow(image)
        ax.imshow(e["map"], cmap="jet", vmin=0, vmax=1, alpha=0.55)
        _box(ax, e["proposal"], "white", "--", "proposal")
        _box(ax, e["prediction"], "yellow", "-", "prediction")
        inside, top = e["share_top_inside"]
        share = f"{inside / top:.0%}" if top else "-"
        ax.set_title(
            f"IoU(proposal, prediction) {e['iou_proposal_prediction']:.2f}\n"
            f"top 2% pixels in proposal: {share}",
            fontsize=9,
        )
        _off(ax)
    axes[0].legend(loc="lower left", fontsize=MIN_FONT_PT)
    axes[-1].imshow(image)
    axes[-1].imshow(bbam, cmap="jet", vmin=0, vmax=1, alpha=0.55)
    axes[-1].set_title("BBAM (all positives)", fontsize=9)
    _off(axes[-1])
    fig.suptitle("Fig. 8: SimpleGrad for three positives of one object, and its BBAM")
    return fig


def noise_example_figure(image: np.ndarray, boxes: dict[float, np.ndarray]) -> plt.Figure:
    """One image with its boxes at several noise levels (``{level: (N, 4) boxes}``): clean boxes in
    yellow, contracted ones in blue, expanded ones in red (darker = stronger noise)."""
    fig, ax = plt.subplots(layout="constrained", figsize=figure_size(4.8, 4.8))
    ax.imshow(image)
    top = max((abs(v) for v in boxes), default=1.0) or 1.0
    for level, bs in sorted(boxes.items()):
        if level == 0:
            colour, style, lw = "yellow", "-", 2.0
        else:
            cmap = plt.get_cmap("Reds" if level > 0 else "Blues")
            colour, style, lw = cmap(0.45 + 0.5 * abs(level) / top), "--", 1.4
        for i, b in enumerate(np.asarray(bs).reshape(-1, 4)):
            x1, y1, x2, y2 = (float(v) for v in b)
            ax.add_patch(
                Rectangle(
                    (x1, y1),
                    x2 - x1,
                    y2 - y1,
                    fill=False,
                    ec=colour,
                    ls=style,
                    lw=lw,
                    label=f"{100 * level:+.0f}%" if i == 0 else None,
                )
            )
    ax.legend(
        loc="lower left", fontsize=MIN_FONT_PT, framealpha=0.85, title="box noise", title_fontsize=MIN_FONT_PT
    )
    ax.set_title("the box labels at each noise level")
    _off(ax)
    return fig


def stride_curve_figure(
    fixed: Sequence[float] = (24.0, 48.0), base: float = 16.0, gain: float = 48.0
) -> plt.Figure:
    """s(a) = base + gain sqrt(a) against the fixed strides of Fig. 7b, in the paper's pixels."""
    a = np.linspace(0, 1, 201)
    fig, ax = plt.subplots(layout="constrained", figsize=figure_size(5.4, 3.6))
    ax.plot(
        a, base + gain * np.sqrt(a), c=COLOURS["BBAM"], label=f"adaptive s(a) = {base:g} + {gain:g} sqrt(a)"
    )
    for s, style in zip(fixed, ("--", ":"), strict=False):
        ax.axhline(s, ls=style, c="k", label=f"fixed s = {s:g}")
    ax.set_xlabel("a = predicted-box area / image area")
    ax.set_ylabel("stride s (paper px, VOC images)")
    ax.set_title("Perturbation unit size: adaptive against fixed")
    ax.legend(fontsize=MIN_FONT_PT)
    return fig


# ------------------------------------------------------------------ chapters 5 and 6: BBAM, labels
def perturbation_figure(
    coarse: np.ndarray,
    names: Sequence[str],
    batch: np.ndarray,
    probs: Sequence[float],
    ious: Sequence[float],
    class_name: str,
    stride: float,
) -> plt.Figure:
    """Chapter 5: the coarse mask M that is 1 on an object's box, then Phi(I, M) for hand-made masks
    (``batch``: (N, 3, H, W) images in [0, 1], one per name in ``names``), each titled with f_cls's
    probability of the true class and the IoU of f_box's regressed box with the annotated box
    (``probs``, ``ious``)."""
    n = len(names)
    fig, axes = plt.subplots(1, n + 1, layout="constrained", figsize=figure_size(2.8 * (n + 1), 3.3))
    gh, gw = np.asarray(coarse).shape
    axes[0].imshow(coarse, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(f"coarse M: {gh} x {gw} cells\n(stride {stride:.1f} px)", fontsize=9)
    for ax, name, image, p, iou in zip(axes[1:], names, np.asarray(batch), probs, ious, strict=True):
        ax.imshow(np.clip(image.transpose(1, 2, 0), 0, 1))
        ax.set_title(f"{name}\np({class_name}) = {p:.2f}, IoU = {iou:.2f}", fontsize=9)
    for ax in axes:
        _off(ax)
    fig.suptitle("Phi(I, M) for hand-made masks, and what f_cls and f_box return for the object's box")
    return fig


def stride_figure(
    ratios: Sequence[float],
    strides: Sequence[float],
    cells: Sequence[int],
    scale: float,
    side: int,
    base: float = 16.0,
    gain: float = 48.0,
) -> plt.Figure:
    """Chapter 5: the adaptive stride s(a) = base + gain sqrt(a) in the paper's pixels and scaled by
    ``scale`` to an image side of ``side`` pixels, with the run's objects (box area ratio, stride) on
    it; and the number of cells of each object's mask."""
    from bbam_lite.attribution.bbam import adaptive_stride

    a = np.linspace(0, 1, 200)
    s = np.array([adaptive_stride(v, base, gain) for v in a])
    fig, (a1, a2) = plt.subplots(1, 2, layout="constrained", figsize=figure_size(11, 3.6))
    a1.plot(a, s, c=COLOURS["BBAM"], label="s(a) in paper pixels (375 px side)")
    a1.plot(a, s * scale, "--", c=COLOURS["BBAM"], label=f"scaled to this image side ({side} px)")
    a1.scatter(ratios, strides, color="tab:red", zorder=3, label="this run's objects")
    a1.set_xlabel("box area / image area  a")
    a1.set_ylabel("stride s (pixels)")
    a1.set_title("Adaptive stride")
    a1.legend()
    a2.scatter(ratios, cells, color="tab:red")
    a2.set_xlabel("box area / image area  a")
    a2.set_ylabel("cells in the mask M")
    a2.set_title("Mask resolution per object")
    return fig


def mask_snapshots_figure(
    objects: Sequence[Any],
    results: Sequence[Any],
    class_names: Sequence[str],
    title: str = "The mask M (upsampled) during optimisation",
) -> plt.Figure:
    """Chapter 5: one row per object: the image with its box, the upsampled mask M at the iterations
    ``explain`` recorded (``history["snapshots"]``: (iteration, map) pairs), and the true mask."""
    n_snap = len(results[0].history["snapshots"])
    cols = n_snap + 2
    fig, axes = plt.subplots(
        len(objects),
        cols,
        layout="constrained",
        figsize=figure_size(1.9 * cols, 2.0 * len(objects)),
        squeeze=False,
    )
    for r, (o, res) in enumerate(zip(objects, results, strict=True)):
        axes[r, 0].imshow(o.image)
        _box(axes[r, 0], o.box, "yellow")
        axes[r, 0].set_ylabel(class_names[o.label])
        for c, (it, snap) in enumerate(res.history["snapshots"], 1):
            axes[r, c].imshow(snap, cmap="magma", vmin=0, vmax=1)
            if r == 0:
                axes[r, c].set_title(f"iteration {it}", fontsize=9)
        axes[r, -1].imshow(o.gt, cmap="gray")
    axes[0, 0].set_title("image and box", fontsize=9)
    axes[0, -1].set_title("true mask", fontsize=9)
    for ax in axes.ravel():
        _off(ax)
    fig.suptitle(title)
    return fig


def bbam_losses_figure(
    objects: Sequence[Any], results: Sequence[Any], class_names: Sequence[str], cfg: Any
) -> plt.Figure:
    """Chapter 5: per object, the two head losses, lambda |M|_1 and the total objective (Eq. 5, from
    the recorded terms by :func:`bbam_lite.attribution.loss.weighted_total`, the function the
    optimisation itself uses) at every iteration."""
    from bbam_lite.attribution.loss import weighted_total

    fig, axes = plt.subplots(1, 3, layout="constrained", figsize=figure_size(13, 3.4))
    for o, res in zip(objects, results, strict=True):
        hist = res.history
        label = f"{class_names[o.label]} (image {o.image_id})"
        (line,) = axes[0].plot(hist["box"], label=f"box: {label}")
        axes[0].plot(hist["cls"], "--", c=line.get_color(), label=f"cls: {label}")
        axes[1].plot(cfg.lam * np.array(hist["l1"]), label=label)
        total = weighted_total(cfg, *(np.array(hist[k]) for k in ("l1", "tv", "box", "cls")))
        axes[2].plot(total, label=label)
    axes[0].set_title("head losses |t^c - f_box|, |p^c - f_cls|")
    axes[1].set_title("lambda |M|_1")
    axes[2].set_title("total objective")
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss")
    axes[0].legend(fontsize=MIN_FONT_PT)
    axes[2].legend(fontsize=MIN_FONT_PT)
    return fig


def label_steps_figure(rows: Sequence[dict[str, Any]], step_names: Sequence[str]) -> plt.Figure:
    """Chapter 6: one row per object: the image and box, the BBAM, the label after each step
    (red: foreground, grey: ignored) and the true mask. Each row is ``{"image", "box", "bbam",
    "masks": [(foreground, ignore), ...] (one per step), "gt", "name"}``."""
    cols = ["image and box", "BBAM", *step_names, "true mask"]
    fig, axes = plt.subplots(
        len(rows),
        len(cols),
        layout="constrained",
        figsize=figure_size(2.2 * len(cols), 2.3 * len(rows)),
        squeeze=False,
    )
    for r, row in enumerate(rows):
        axes[r, 0].imshow(row["image"])
        _box(axes[r, 0], row["box"], "yellow")
        axes[r, 0].set_ylabel(row["name"])
        axes[r, 1].imshow(row["bbam"], cmap="magma", vmin=0, vmax=1)
        for c, (fg, ignore) in enumerate(row["masks"], 2):
            zones = np.zeros((*fg.shape, 3))
            zones[ignore] = (0.6, 0.6, 0.6)
            zones[fg] = (0.85, 0.15, 0.15)
            axes[r, c].imshow(zones)
        axes[r, -1].imshow(row["gt"], cmap="gray")
    for c, title in enumerate(cols):
        axes[0, c].set_title(title, fontsize=9)
    for ax in axes.ravel():
        _off(ax)
    fig.suptitle("From a BBAM to a pseudo label (red: foreground, grey: ignored)")
    return fig


def box_crf_gain_figure(
    box_rows: Sequence[dict[str, Any]], bbam_rows: Sequence[dict[str, Any]], class_names: Sequence[str]
) -> plt.Figure:
    """Chapter 6: per object (rows of the ablation, ``{"iou", "area_ratio", "label"}``), its instance
    IoU with the CRF on the box alone (x) against BBAM + CRF (y), coloured by box size; and the mean
    gain of BBAM + CRF per class (green: BBAM better)."""
    x = np.array([r["iou"] for r in box_rows])
    y = np.array([r["iou"] for r in bbam_rows])
    size = np.array([r["area_ratio"] for r in bbam_rows])
    labels = np.array([r["label"] for r in bbam_rows])
    fig, (a1, a2) = plt.subplots(1, 2, layout="constrained", figsize=figure_size(11, 4.2))
    sc = a1.scatter(x, y, c=size, cmap="viridis", s=22)
    a1.plot([0, 1], [0, 1], "k:", lw=1, label="equal")
    a1.set_xlabel("instance IoU, CRF on the box alone")
    a1.set_ylabel("instance IoU, BBAM + CRF")
    a1.set_xlim(0, 1)
    a1.set_ylim(0, 1)
    a1.set_title(
        f"BBAM better on {(y > x + 0.02).sum()}, worse on {(y < x - 0.02).sum()} of {len(x)} objects"
    )
    a1.legend(loc="lower right")
    fig.colorbar(sc, ax=a1, label="box area / image area")
    classes = sorted(set(labels.tolist()))
    gain = [float(np.mean((y - x)[labels == c])) for c in classes]
    a2.bar([class_names[c] for c in classes], gain, color=["tab:green" if g > 0 else "tab:red" for g in gain])
    a2.axhline(0, color="k", lw=0.8)
    a2.set_xlabel("class")
    a2.set_ylabel("mean IoU gain of BBAM + CRF")
    a2.set_title("Gain over the CRF on the box, by class")
    a2.tick_params(axis="x", rotation=30)
    return fig


#: Colours of Fig. 7b's stride settings: the adaptive stride in BBAM's colour, the fixed ones grey.
STRIDE_COLOURS = {"s = 24": "tab:gray", "s = 48": "black", "adaptive s(a)": COLOURS["BBAM"]}


def stride_iou_figure(study: dict[str, Any]) -> plt.Figure:
    """Fig. 7b: mean IoU with the ground truth by object size (terciles of a), one line per stride
    setting, with a 95% confidence band over the objects of each size group; left the raw map
    (BBAM > 0.5 in the box, what the paper plots), right the pseudo label.

    ``study`` is :func:`bbam_lite.analysis.stride.stride_study`'s result (its per-object rows)."""
    import pandas as pd
    import seaborn as sns

    from bbam_lite.analysis.stride import SIZE_NAMES

    df = pd.DataFrame(study["rows"])
    sizes = [s for s in SIZE_NAMES if s in set(df["size"])]
    df["x"] = df["size"].map({s: i for i, s in enumerate(sizes)})
    panels = [("iou_map", "IoU(BBAM > 0.5 in the box, GT)"), ("iou_label", "IoU(pseudo label, GT)")]
    panels = [(k, label) for k, label in panels if k in df and df[k].notna().any()]
    fig, axes = plt.subplots(
        1, len(panels), layout="constrained", figsize=figure_size(4.8 * len(panels), 3.7), squeeze=False
    )
    palette = {s: STRIDE_COLOURS.get(s, f"C{i}") for i, s in enumerate(dict.fromkeys(df["setting"]))}
    for ax, (key, label) in zip(axes[0], panels, strict=True):
        sns.lineplot(
            df,
            x="x",
            y=key,
            hue="setting",
            palette=palette,
            errorbar=("ci", 95),
            seed=0,  # the band is a bootstrap: the same figure every run
            marker="o",
            ax=ax,
        )
        counts = df[df["setting"] == df["setting"].iloc[0]].groupby("x").size()
        ax.set_xticks(range(len(sizes)), [f"{s}\n({counts.get(i, 0)} objects)" for i, s in enumerate(sizes)])
        ax.set_xlabel("object size (terciles of a)")
        ax.set_ylabel(label)
        ax.set_ylim(0, 1)
        ax.legend(title="stride", fontsize=MIN_FONT_PT)
    fig.suptitle("Fig. 7b: localisation by stride and object size (band: 95% CI over objects)")
    return fig


def _heatmap(ax: plt.Axes, table: Any, fmt: str, label: str, vmax: float | None = 1.0) -> None:
    """An annotated seaborn heatmap of ``table`` (a DataFrame; NaN cells left empty) from 0 to
    ``vmax`` (None: the data's maximum); a percent ``fmt`` also labels the colour bar in percent."""
    import seaborn as sns
    from matplotlib.ticker import PercentFormatter

    percent = fmt.endswith("%")
    sns.heatmap(
        table,
        annot=True,
        fmt=fmt,
        cmap="viridis",
        vmin=0,
        vmax=vmax,
        cbar_kws={"label": label, **({"format": PercentFormatter(1.0, decimals=1)} if percent else {})},
        linewidths=0.5,
        ax=ax,
    )


def sweep_heatmap(
    rows: Sequence[dict[str, Any]],
    x: str,
    xlabel: str,
    metrics: Sequence[tuple[str, str]],
    title: str,
    xfmt: str = "g",
    fmt: str = ".3f",
) -> plt.Figure:
    """A one-parameter sweep as an annotated heatmap: one row per metric ((key, name) pairs), one
    column per value of the swept parameter ``x``; colour and number give each metric's value
    (all on a 0-1 scale), so a row read left to right is the metric's curve over the sweep."""
    import pandas as pd

    table = pd.DataFrame(
        [[r.get(key, np.nan) for r in rows] for key, _ in metrics],
        index=[name for _, name in metrics],
        columns=[format(r[x], xfmt) for r in rows],
    ).astype(float)
    fig, ax = plt.subplots(
        layout="constrained", figsize=figure_size(1.1 * len(rows) + 4.2, 0.55 * len(metrics) + 1.6)
    )
    _heatmap(ax, table, fmt, "value (0-1)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("")
    ax.set_title(title)
    return fig


def threshold_heatmaps(
    rows: Sequence[dict[str, Any]], metrics: Sequence[tuple[str, str]], title: str
) -> plt.Figure:
    """Table 5's threshold pairs as annotated heatmaps, one panel per metric ((key, name) pairs),
    stacked so that each panel's cell numbers are read at the column's width: rows theta_bg, columns
    theta_fg, empty cells for the pairs not swept. The diagonal holds the equal thresholds (nothing
    ignored); cells above it leave the band between the two ignored."""
    import pandas as pd

    df = pd.DataFrame(rows)
    values = sorted(set(df["theta_bg"]) | set(df["theta_fg"]))  # same on both axes: a diagonal
    fig, axes = plt.subplots(
        len(metrics), 1, layout="constrained", figsize=figure_size(6.0, 3.2 * len(metrics)), squeeze=False
    )
    for ax, (key, name) in zip(axes[:, 0], metrics, strict=True):
        table = df.pivot_table(index="theta_bg", columns="theta_fg", values=key, aggfunc="mean")
        table = table.reindex(index=values, columns=values)
        share = "fraction" in key  # a share: its own colour scale, in percent
        _heatmap(ax, table, ".1%" if share else ".3f", name, vmax=None if share else 1.0)
        ax.set_xlabel(r"$\theta_{fg}$")
        ax.set_ylabel(r"$\theta_{bg}$")
        ax.tick_params(axis="y", rotation=0)
        ax.set_title(name)
    fig.suptitle(title)
    return fig


def _row_colour(name: str) -> str:
    """Registry colour of a comparison row: its method variant's, black for full supervision,
    and the GrabCut colour for Box2Seg's GrabCut-NoTrain rows."""
    if name in COLOURS:
        return COLOURS[name]
    if name == "full":
        return "black"
    return COLOURS.get(name.split("_notrain")[0], "tab:brown")


def comparison_bars(result: dict[str, Any], paper: dict[str, dict[str, float]]) -> plt.Figure:
    """Chapter 12's main comparison: semantic mIoU and instance mask AP50 (%) of the network trained
    on each kind of label, in the registry's colour of its method (solid: this run), beside the
    paper's number on VOC val (hatched, "n/a" where the paper has none: its semantic BBAM number
    stands beside the row with proposal refinement, with which it was made).

    ``result`` is :func:`bbam_lite.experiments.networks.book_comparison`'s, ``paper`` its
    ``PAPER`` dict (fractions in ``result``, percent in ``paper``)."""
    from matplotlib.patches import Patch

    rows = result["rows"]
    names = [n for n in rows if "semantic" in rows[n] or "instance" in rows[n]]
    colours = [_row_colour(n) for n in names]
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 2, layout="constrained", figsize=figure_size(11, 4.4))
    for ax, (task, key, label) in zip(
        axes,
        (("semantic", "miou", "semantic mIoU (%)"), ("instance", "ap50", "instance mask AP50 (%)")),
        strict=True,
    ):
        ours = [rows[n].get(task, {}).get(key) for n in names]
        ref = [paper.get(n, {}).get(key) for n in names]
        ax.bar(x - 0.2, [0 if v is None else 100 * v for v in ours], 0.4, color=colours)
        ax.bar(
            x + 0.2,
            [0 if v is None else v for v in ref],
            0.4,
            color=colours,
            alpha=0.35,
            hatch="//",
            edgecolor="dimgray",
        )
        for xi, v in zip(x + 0.2, ref, strict=True):
            if v is None:
                ax.text(
                    xi, 1, "n/a", ha="center", va="bottom", fontsize=MIN_FONT_PT, rotation=90, color="dimgray"
                )
        ticks = [rows[n]["title"].split(" (")[0] for n in names]
        ax.set_xticks(x, ticks, rotation=35, ha="right", fontsize=MIN_FONT_PT)
        ax.set_ylabel(label)
        ax.set_ylim(0, 100)
        ax.set_title(f"{task.capitalize()} networks trained on each kind of label", fontsize=10)
        ax.legend(
            handles=[
                Patch(color="gray", label="this run"),
                Patch(facecolor="lightgray", hatch="//", edgecolor="dimgray", label="paper (VOC val)"),
            ],
            loc="upper right",
        )
    return fig


def sensitivity_bars(
    table5: Sequence[dict[str, Any]],
    table6: Sequence[dict[str, Any]],
    paper6: dict[str, dict[str, float]],
) -> plt.Figure:
    """Tables 5 and 6 with trained networks (chapter 12): left, instance AP50 of each threshold
    pair (+G: with seed growing) against the paper's; right, AP50 and semantic mIoU against lambda
    (solid: this run, dashed: the paper's). Rows as
    :func:`bbam_lite.experiments.networks.table5_rows` and ``table6_rows`` give them (percent)."""
    colour = COLOURS.get("bbam_paper", COLOURS["BBAM"])
    fig, axes = plt.subplots(1, 2, layout="constrained", figsize=figure_size(11, 4))
    ax = axes[0]
    labels = [f"{r['theta_bg']:g}/{r['theta_fg']:g}" + (" +G" if r["grow"] == "on" else "") for r in table5]
    x = np.arange(len(table5))
    ax.bar(x - 0.2, [r["ap50"] or 0 for r in table5], 0.4, label="this run", color=colour)
    ax.bar(x + 0.2, [r["paper_ap50"] or 0 for r in table5], 0.4, label="paper (VOC val)", color="tab:gray")
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=MIN_FONT_PT)
    ax.set_xlabel("θ_bg / θ_fg (+G: seed growing)")
    ax.set_ylabel("instance mask AP50 (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Table 5: thresholds and seed growing", fontsize=10)
    ax.legend(loc="upper left")
    ax = axes[1]
    lams = [r["lam"] for r in table6]
    for key, label, c in (("ap50", "AP50", colour), ("miou", "sem. mIoU", "tab:orange")):
        ax.plot(lams, [r[key] for r in table6], "o-", color=c, label=f"{label}, this run")
        ref = sorted((float(k), p[key]) for k, p in paper6.items() if key in p)
        ax.plot(*zip(*ref, strict=True), "s--", color=c, alpha=0.5, label=f"{label}, paper")
    ax.set_xscale("log")
    ax.set_xlabel("λ (weight of the mask's L1 norm)")
    ax.set_ylabel("score (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Table 6: λ", fontsize=10)
    ax.legend(fontsize=MIN_FONT_PT, loc="upper center", ncol=2)
    return fig


def label_quality_figure(qualities: dict[str, dict[str, Any]], title: str) -> plt.Figure:
    """Pseudo-label mIoU and mean instance IoU of several label sets side by side, in the registry's
    colours and names (``qualities``: {method or variant: its ``quality.json``})."""
    bars = [
        {"metric": label, "method": name, "value": q[key]}
        for name, q in qualities.items()
        for key, label in (("miou", "pseudo-label mIoU"), ("mean_instance_iou", "mean instance IoU"))
    ]
    return grouped_bars(bars, "metric", "method", [("value", "score (1 = the exact masks)")], title, "")


# ------------------------------------------------------------------ chapter 7: the two heads
def head_labels_figure(rows: Sequence[dict[str, Any]]) -> plt.Figure:
    """Fig. 4: pseudo-label mIoU and mean instance IoU of the BBAM of each head setting (``rows``:
    ``{"setting", "miou", "mean_instance_iou"}``), one bar per setting."""
    bars = [
        {"metric": label, "setting": r["setting"], "value": r[key]}
        for r in rows
        for key, label in (("miou", "pseudo-label mIoU"), ("mean_instance_iou", "mean instance IoU"))
    ]
    return grouped_bars(
        bars,
        "metric",
        "setting",
        [("value", "score (1 = the exact masks)")],
        "Fig. 4: pseudo labels from the BBAM of each head",
        "",
    )


def head_maps_figure(maps: dict[str, Sequence[Any]], n: int = 3) -> plt.Figure:
    """The BBAM of each head setting (``maps``: {setting: object maps, same objects in the same
    order}) for the first ``n`` objects, beside the image and the true mask."""
    first = next(iter(maps.values()))
    grid = [
        {
            "image": m.obj.image,
            "box": m.obj.box,
            "gt": m.obj.gt,
            **{name: maps[name][i].bbam for name in maps},
        }
        for i, m in enumerate(first[:n])
    ]
    return attribution_grid(grid, list(maps), "BBAM of each head (dotted: the object's box)")
