"""Figures: the book's style, method colours, overlays of masks on images and the side-by-side
comparison of methods."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from bbam_lite.data.voc import voc_palette
from bbam_lite.pseudo.methods import colours, titles

#: Matplotlib settings of every chapter's figures (on top of seaborn's "ticks" theme).
BOOK_RC = {"figure.dpi": 100, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9}


def book_style() -> None:
    """The book's figure style: seaborn's "ticks" theme at notebook scale with :data:`BOOK_RC`.

    Every chapter calls it once after its imports, so figures look the same in every chapter."""
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
            fontsize=7,
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
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(2.1 * len(cols), 2.1 * len(rows)), squeeze=False)
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
                ax.set_title(titles().get(name, name), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
