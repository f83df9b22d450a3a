"""Figures: the book's style, method colours, overlays of masks on images and the side-by-side
comparison of methods."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from bbam_lite.data.voc import voc_palette
from bbam_lite.pseudo.methods import colours, titles

#: Width of the book's text column in CSS pixels (headless Chromium, 1400 px window): wider
#: images are shrunk to it.
COLUMN_PX = 772
#: Pixels per inch of the book's figures (on screen and saved).
DPI = 100
#: The widest figure, in inches: at most 1.3 times the column, so that the browser shrinks no
#: figure below 1 / 1.3 of its pixel width.
MAX_WIDTH_IN = 1.3 * COLUMN_PX / DPI
#: The smallest text of any figure, in points: at least 9 px high even in the widest figure shrunk
#: to the column (9 px * 72 / (COLUMN_PX / MAX_WIDTH_IN)), rounded up to a half point.
MIN_FONT_PT = math.ceil(2 * 9 * 72 * MAX_WIDTH_IN / COLUMN_PX) / 2

#: Matplotlib settings of every chapter's figures (on top of seaborn's "ticks" theme): the
#: resolution and font sizes above, so that text reads at the column's width.
BOOK_RC = {
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.title_fontsize": 9,
    "figure.titlesize": 11.5,
}


def figure_size(width: float, height: float) -> tuple[float, float]:
    """A figure size in inches no wider than :data:`MAX_WIDTH_IN`: a wider one is scaled down,
    keeping its aspect, so that the browser shows its text at least :data:`MIN_FONT_PT` readable."""
    scale = min(1.0, MAX_WIDTH_IN / width)
    return width * scale, height * scale


def book_style() -> None:
    """The book's figure style: seaborn's "ticks" theme at notebook scale with :data:`BOOK_RC`.

    Every chapter calls it once after its imports, so figures look the same in every chapter.
    Figures made by the package's helpers take their size from :func:`figure_size` and no text
    smaller than :data:`MIN_FONT_PT`; a chapter sets no resolution of its own."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="ticks", rc=BOOK_RC)


def method_palette(names: Sequence[str] | None = None, by_title: bool = False) -> dict[str, str]:
    """Registry colours of methods and variants (all, or ``names``), keyed by name or by title:
    pass it as seaborn's ``palette`` (with ``hue`` on the name or title column) so a method has
    one colour in every chapter."""
    col, tit = colours(), titles()
    keys = list(col) if names is None else list(names)
    unknown = [k for k in keys if k not in col]
    if unknown:
        raise KeyError(f"no registered method or variant named {', '.join(unknown)}")
    return {(tit[k] if by_title else k): col[k] for k in keys}


def colourise(class_map: np.ndarray) -> np.ndarray:
    """VOC palette colours for a class map (255 = ignore, drawn white)."""
    pal = np.array(voc_palette(), np.uint8).reshape(-1, 3)
    out = pal[class_map.astype(np.int64) % 256]
    out[class_map == 255] = 255
    return out


def overlay(image: np.ndarray, class_map: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """The image with its class map blended on top (background left as is)."""
    col = colourise(class_map).astype(np.float32)
    img = image.astype(np.float32)
    fg = (class_map > 0)[..., None]
    return np.where(fg, (1 - alpha) * img + alpha * col, img).astype(np.uint8)


def draw_boxes(ax: plt.Axes, boxes: np.ndarray, labels: Sequence[int], class_names: Sequence[str]) -> None:
    for (x1, y1, x2, y2), c in zip(boxes, labels, strict=True):
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="yellow", lw=1.2))
        ax.text(
            x1,
            y1 - 1,
            class_names[c],
            color="yellow",
            fontsize=MIN_FONT_PT,
            va="bottom",
            bbox={"facecolor": "black", "alpha": 0.5, "pad": 0.5, "lw": 0},
        )


def method_grid(
    rows: list[dict],
    methods: Sequence[str],
    class_names: Sequence[str],
    path: Path | None = None,
    title: str | None = None,
) -> plt.Figure:
    """One row per image: the image with its boxes, the ground truth, then each method's labels.

    Each row is ``{"image", "boxes", "labels", "gt", method: class_map, ...}``.
    """
    cols = ["image", "ground truth", *methods]
    fig, axes = plt.subplots(
        len(rows), len(cols), figsize=figure_size(2.1 * len(cols), 2.1 * len(rows)), squeeze=False
    )
    for r, row in enumerate(rows):
        for c, name in enumerate(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if name == "image":
                ax.imshow(row["image"])
                draw_boxes(ax, row["boxes"], row["labels"], class_names)
            else:
                ax.imshow(overlay(row["image"], row["gt"] if name == "ground truth" else row[name]))
            if r == 0:
                ax.set_title(titles().get(name, name), fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        from bbam_lite.utils.io import writing

        with writing(path):
            fig.savefig(path, dpi=110)
    return fig


# ------------------------------------------------------------------ chapters 1-4: data, detector, baselines
def _no_ticks(ax: plt.Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _rect(ax: plt.Axes, box: Sequence[float], **style) -> None:
    x1, y1, x2, y2 = (float(v) for v in box)
    ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, **style))


def gt_class_map(rec) -> np.ndarray:
    """The true semantic class map of an image record (later instances over earlier ones; all
    background when the record has no masks, as VOC ``train_aug`` images without VOC masks)."""
    out = np.zeros((rec.height, rec.width), np.uint8)
    masks = rec.load_masks()
    for m, c in zip(masks if masks is not None else [], rec.labels, strict=False):
        out[m] = c
    return out


def annotation_hours_figure() -> plt.Figure:
    """Chapter 1: annotator hours to label PASCAL VOC ``train_aug`` and COCO ``train`` with tags,
    boxes and masks, from the papers' seconds per image (:mod:`bbam_lite.label_cost`), on a log
    axis: each grid line is a factor of ten."""
    from bbam_lite.label_cost import DATASET_IMAGES, LABEL_COSTS, annotation_hours

    fig, ax = plt.subplots(figsize=figure_size(7.5, 3.8))
    kinds = [c.kind for c in LABEL_COSTS]
    width = 0.36
    for i, (name, n) in enumerate(DATASET_IMAGES.items()):
        hours = annotation_hours(n)
        xs = np.arange(len(kinds)) + (i - 0.5) * width
        bars = ax.bar(xs, [hours[k] for k in kinds], width, label=f"{name} ({n:,} images)")
        ax.bar_label(bars, labels=[f"{hours[k]:,.0f} h" for k in kinds], fontsize=MIN_FONT_PT, padding=2)
    ax.set_xticks(np.arange(len(kinds)), kinds)
    ax.set_yscale("log")
    ax.set_ylim(10, 30000)
    ax.set_ylabel("annotator hours (log scale)")
    ax.set_xlabel("kind of label")
    ax.set_title("Hours to label a training set, from the papers' seconds per image")
    ax.legend(loc="upper left")
    ax.grid(axis="y", which="major", alpha=0.3)
    return fig


def boxes_and_masks_figure(records: Sequence, class_names: Sequence[str]) -> plt.Figure:
    """Chapter 2: per image (columns), the image with its boxes, the only labels BBAM gets (top),
    and the true instance masks in the class colours, which only the scoring sees (bottom)."""
    fig, axes = plt.subplots(2, len(records), figsize=figure_size(2.1 * len(records), 4.6), squeeze=False)
    for j, rec in enumerate(records):
        image = rec.load_image()
        axes[0, j].imshow(image)
        draw_boxes(axes[0, j], rec.boxes, rec.labels, class_names)
        axes[1, j].imshow(overlay(image, gt_class_map(rec)))
        axes[0, j].set_title(f"image {rec.image_id}", fontsize=10)
        for ax in axes[:, j]:
            _no_ticks(ax)
    axes[0, 0].set_ylabel("boxes (the labels)")
    axes[1, 0].set_ylabel("true masks (for scoring)")
    fig.suptitle("Training images: what BBAM is given (top) and what it is scored against (bottom)")
    fig.tight_layout()
    return fig


def data_overview_figure(summary: dict, mean_colour: Sequence[float]) -> plt.Figure:
    """Chapter 2: objects per class, the distribution of box area / image area ``a`` (a seaborn
    histogram) with BBAM's adaptive stride ``s(a) = 16 + 48 sqrt(a)`` on its top axis, and the mean
    colour ``mu`` that BBAM paints where its mask removes the image. ``summary`` is
    :func:`bbam_lite.data.summary.dataset_summary`'s."""
    import seaborn as sns

    fig, (ax1, ax2, ax3) = plt.subplots(
        1, 3, figsize=figure_size(12, 3.4), gridspec_kw={"width_ratios": [3, 3, 1]}
    )
    names = list(summary["by_class"])
    ax1.bar(names, [summary["by_class"][n] for n in names], color="tab:blue")
    ax1.set_xlabel("class")
    ax1.set_ylabel("objects")
    ax1.set_title("Objects per class (training split)")
    ax1.tick_params(axis="x", rotation=30)
    ratios = np.array(summary["area_ratios"], dtype=float)
    bins = np.linspace(0, max(0.6, float(ratios.max(initial=0.0))), 21)
    sns.histplot(x=ratios, bins=bins, color="tab:orange", label="training boxes", ax=ax2)
    ax2.set_xlabel("box area / image area  $a$")
    ax2.set_ylabel("objects")
    ax2.set_title("Object sizes")
    ax2.legend()
    top = ax2.secondary_xaxis(
        "top",
        functions=(
            lambda a: 16 + 48 * np.sqrt(np.clip(a, 0, 1)),
            lambda s: (np.clip(s - 16, 0, None) / 48) ** 2,
        ),
    )
    top.set_xticks([20, 30, 40, 50])
    top.set_xlabel("adaptive stride $s(a)$ in paper pixels")
    mu = np.asarray(mean_colour, dtype=float)
    ax3.imshow(np.ones((8, 8, 3)) * mu)
    _no_ticks(ax3)
    ax3.set_title("$\\mu$ (mean colour)")
    ax3.set_xlabel(", ".join(f"{v:.2f}" for v in mu.tolist()))
    fig.tight_layout()
    return fig


def training_curve_figure(log: Sequence[dict]) -> plt.Figure:
    """Chapter 3: a detector's validation box AP50 and AP 0.5:0.95 (left axis) and its training
    loss (right axis, dashed) over the iterations of its training log
    (:func:`bbam_lite.analysis.probe.training_log`)."""
    it = [e["iteration"] for e in log]
    fig, ax = plt.subplots(figsize=figure_size(7.5, 4.0), layout="constrained")
    ax.plot(it, [e["box_ap50"] for e in log], "o-", label="box AP50 (validation)")
    ax.plot(it, [e["box_ap"] for e in log], "s-", label="box AP 0.5:0.95 (validation)")
    ax.set_xlabel("training iteration")
    ax.set_ylabel("average precision")
    ax.set_ylim(0, 1)
    ax2 = ax.twinx()
    ax2.plot(it, [e["loss"] for e in log], "k--", alpha=0.6, label="training loss")
    ax2.set_ylabel("training loss")
    lines, lines2 = ax.get_legend_handles_labels(), ax2.get_legend_handles_labels()
    # below the axes, so that it covers no curve
    fig.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="outside lower center", ncol=3)
    ax.set_title(f"Training of the detector (validation AP on {log[-1]['val_images']} images per point)")
    return fig


def detections_figure(records: Sequence, outputs: Sequence[dict], class_names: Sequence[str]) -> plt.Figure:
    """Chapter 3: per image, the detector's boxes (yellow, with class and score; ``outputs`` as
    :func:`bbam_lite.detector.heads.detect` returns them) over the true boxes (white, dashed)."""
    fig, axes = plt.subplots(1, len(records), figsize=figure_size(3.2 * len(records), 3.4), squeeze=False)
    for ax, rec, out in zip(axes[0], records, outputs, strict=True):
        ax.imshow(rec.load_image())
        for box in rec.boxes:
            _rect(ax, box, ls="--", color="white", lw=1)
        detections = zip(out["boxes"].tolist(), out["labels"].tolist(), out["scores"].tolist(), strict=True)
        for box, c, s in detections:
            _rect(ax, box, color="yellow", lw=1.4)
            ax.text(
                box[0],
                box[1] - 1,
                f"{class_names[c]} {s:.2f}",
                color="yellow",
                fontsize=MIN_FONT_PT,
                bbox={"facecolor": "black", "alpha": 0.5, "pad": 0.5, "lw": 0},
            )
        ax.set_title(f"image {rec.image_id}: {len(out['boxes'])} detections", fontsize=10)
        _no_ticks(ax)
    fig.suptitle("Detections with score >= 0.5 (yellow) and true boxes (dashed)")
    fig.tight_layout()
    return fig


def head_probe_figure(image: np.ndarray, probe, class_name: str, n_show: int = 25) -> plt.Figure:
    """Chapter 3: what the two heads do with proposals jittered around one box (a
    :class:`~bbam_lite.analysis.probe.HeadProbe`). Left: ``n_show`` proposals (grey) and where
    f_box moves them (green: positive by Eq. 3, red: not), the box in yellow. Middle: each
    proposal's IoU with the box before and after regression, coloured by f_cls's probability of
    the class. Right: that probability for positives and for the other proposals."""
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=figure_size(13, 4))
    a1.imshow(image)
    for k in range(min(n_show, len(probe.proposals))):
        _rect(a1, probe.proposals[k], color="0.7", lw=0.6)
        _rect(a1, probe.regressed[k], lw=0.9, color="tab:green" if probe.positive[k] else "tab:red")
    _rect(a1, probe.box, color="yellow", lw=2)
    a1.set_title(f"a {class_name}: proposals (grey),\nregressed (green: positive)")
    _no_ticks(a1)
    sc = a2.scatter(
        probe.proposal_iou, probe.regressed_iou, c=probe.class_prob, cmap="viridis", vmin=0, vmax=1, s=14
    )
    a2.plot([0, 1], [0, 1], "k:", lw=1, label="no change")
    a2.axhline(0.8, color="tab:red", lw=1, ls="--", label="IoU 0.8 (Eq. 3)")
    a2.set_xlabel("IoU(proposal, box)")
    a2.set_ylabel("IoU(regressed box, box)")
    a2.set_title("f_box: where proposals move")
    a2.legend(loc="lower right")
    fig.colorbar(sc, ax=a2, label=f"f_cls: p({class_name})")
    bins = np.linspace(0, 1, 21)
    pos = probe.positive
    a3.hist(probe.class_prob[pos], bins=bins, alpha=0.7, label=f"positives ({pos.sum()})")
    a3.hist(probe.class_prob[~pos], bins=bins, alpha=0.7, label=f"others ({(~pos).sum()})")
    a3.set_xlabel(f"f_cls: p({class_name})")
    a3.set_ylabel("proposals")
    a3.set_title("f_cls on the same proposals")
    a3.legend()
    fig.tight_layout()
    return fig


def grabcut_init_figure(
    image: np.ndarray, box: np.ndarray, true_mask: np.ndarray, class_name: str
) -> plt.Figure:
    """Chapter 4: GrabCut on one box as in Box2Seg's Algorithm 1: the image and box, the initial
    mask's four zones, GrabCut's foreground (with its IoU with the true mask) and the true mask."""
    import cv2

    from bbam_lite.metrics import mask_iou
    from bbam_lite.pseudo.methods.grabcut import grabcut_box, grabcut_init_mask

    init, _ = grabcut_init_mask(box, *image.shape[:2])
    fg, _ = grabcut_box(image, box)
    zone_colours = {
        cv2.GC_BGD: ((0.15, 0.15, 0.15), "background"),
        cv2.GC_PR_BGD: ((0.45, 0.55, 0.95), "probable bg."),
        cv2.GC_PR_FGD: ((0.98, 0.75, 0.35), "probable fg."),
        cv2.GC_FGD: ((0.85, 0.2, 0.2), "foreground"),
    }
    zones = np.zeros((*init.shape, 3))
    for value, (colour, _) in zone_colours.items():
        zones[init == value] = colour
    fig, axes = plt.subplots(1, 4, figsize=figure_size(12, 3.3))
    axes[0].imshow(image)
    axes[0].set_title(f"image, box of a {class_name}")
    _rect(axes[0], box, color="yellow", lw=1.5)
    axes[1].imshow(zones)
    axes[1].set_title("initial mask")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c, _ in zone_colours.values()]
    axes[1].legend(handles, [n for _, n in zone_colours.values()], fontsize=MIN_FONT_PT, loc="lower left")
    axes[2].imshow(fg, cmap="gray")
    axes[2].set_title(f"GrabCut result (IoU {mask_iou(fg, true_mask):.2f})")
    axes[3].imshow(true_mask, cmap="gray")
    axes[3].set_title("true mask")
    for ax in axes:
        _no_ticks(ax)
    fig.tight_layout()
    return fig


def method_rows(records: Sequence, folders: dict[str, Path], boxes_from: str) -> list[dict]:
    """Rows for :func:`method_grid` from labels folders: per record its image, its true class map,
    the boxes the labels were made from (as stored in ``folders[boxes_from]``) and each method's
    semantic labels (``folders`` maps a method's name to its labels folder)."""
    from bbam_lite.pseudo.folder import LabelsFolder

    out = []
    for rec in records:
        insts, _ = LabelsFolder(folders[boxes_from]).read_image(rec.image_id)
        row = {
            "image": rec.load_image(),
            "gt": gt_class_map(rec),
            "boxes": np.array([i.box for i in insts]).reshape(-1, 4),
            "labels": [i.label for i in insts],
        }
        for method, folder in folders.items():
            row[method] = LabelsFolder(folder).read_semantic(rec)
        out.append(row)
    return out
