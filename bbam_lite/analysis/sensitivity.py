"""Parameter sensitivity: lambda (Table 6) and the thresholds theta_fg / theta_bg (Table 5).

The paper measures both on instance and semantic segmentation networks trained on the pseudo
labels; here we measure the pseudo labels themselves (mIoU and mean instance IoU against the exact
masks), the quantity the networks learn from. Table 5's seed growing (G) belongs to training and is
left to the segmentation chapter.

* lambda changes the optimisation: one BBAM run per value.
* The thresholds act after it: the dense CRF refines each object's map once, and every
  (theta_bg, theta_fg) pair thresholds the same refined map, so Table 5 costs one BBAM run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bbam_lite.analysis.study import analysis_images, bbam_labels, label_quality, quality_row, read_maps
from bbam_lite.analysis.tables import Table, fmt_change
from bbam_lite.pseudo.labels import InstanceLabel, threshold_map
from bbam_lite.pseudo.postprocess import PostProcess

#: Table 6's values of lambda (the paper's default 0.007).
LAMBDAS = (0.001, 0.003, 0.005, 0.007, 0.010, 0.020)
#: A short sweep for quick profiles: the two ends and the default.
LAMBDAS_SHORT = (0.001, 0.007, 0.020)


def study_lambdas(profile: str) -> tuple[float, ...]:
    """Table 6's values of lambda for a profile: the paper's six at ``full``, the two ends and the
    default otherwise (each value is a BBAM run)."""
    return LAMBDAS if profile == "full" else LAMBDAS_SHORT


#: Table 5's rows as (theta_bg, theta_fg); equal values leave no pixel ignored.
THRESHOLDS = ((0.2, 0.2), (0.5, 0.5), (0.8, 0.8), (0.3, 0.7), (0.2, 0.8))
#: The paper's numbers (VOC val, networks trained on the labels) to set beside ours.
PAPER_TABLE6 = {
    0.001: {"AP": 26.6, "AP50": 58.7, "AP75": 21.1, "mIoU": 67.9},
    0.003: {"AP": 28.1, "AP50": 59.9, "AP75": 22.8, "mIoU": 69.7},
    0.005: {"AP": 28.7, "AP50": 60.2, "AP75": 24.3, "mIoU": 70.8},
    0.007: {"AP": 29.6, "AP50": 61.9, "AP75": 25.8, "mIoU": 71.4},
    0.010: {"AP": 28.7, "AP50": 60.4, "AP75": 24.4, "mIoU": 70.7},
    0.020: {"AP": 28.3, "AP50": 59.6, "AP75": 23.7, "mIoU": 70.3},
}
#: Table 5 without seed growing, keyed (theta_bg, theta_fg).
PAPER_TABLE5 = {
    (0.2, 0.2): {"AP": 24.8, "AP50": 58.3, "AP75": 18.1},
    (0.5, 0.5): {"AP": 28.3, "AP50": 59.5, "AP75": 24.7},
    (0.8, 0.8): {"AP": 27.8, "AP50": 59.0, "AP75": 23.3},
    (0.3, 0.7): {"AP": 28.1, "AP50": 59.5, "AP75": 24.0},
    (0.2, 0.8): {"AP": 28.6, "AP50": 60.4, "AP75": 24.0},
}
#: Table 5's rows with seed growing (G), keyed (theta_bg, theta_fg).
PAPER_TABLE5_GROWING = {
    (0.3, 0.7): {"AP": 28.4, "AP50": 59.6, "AP75": 24.6},
    (0.2, 0.8): {"AP": 29.6, "AP50": 61.9, "AP75": 25.8},
}


def lambda_sweep(
    ws,
    lambdas: Sequence[float] = LAMBDAS,
    n_images: int | None = None,
    iterations: int | None = None,
    split: str = "train",
    preset: str | None = None,
) -> list[dict[str, Any]]:
    """Table 6: pseudo-label quality and the mean map value on and off the object for each lambda
    (BBAM ``preset``: the default's when None)."""
    rows = []
    ds = ws.data(split)
    n = analysis_images(ws) if n_images is None else n_images
    for lam in lambdas:
        folder, q = bbam_labels(ws, n_images, iterations, split, preset, lam=float(lam))
        maps = read_maps(folder, ds, n)
        inside = [float(m.bbam[m.obj.gt].mean()) for m in maps]
        outside = [float(m.bbam[~m.obj.gt].mean()) for m in maps]
        rows.append(
            quality_row(
                q,
                lam=float(lam),
                mean_map_on_object=float(np.mean(inside)) if inside else float("nan"),
                mean_map_off_object=float(np.mean(outside)) if outside else float("nan"),
            )
        )
    return rows


def threshold_sweep(
    folder: Path, dataset, settings, n_images: int | None, pairs: Sequence[tuple[float, float]] = THRESHOLDS
) -> list[dict[str, Any]]:
    """Table 5 from one BBAM labels folder: every (theta_bg, theta_fg) pair on the same CRF-refined maps.

    ``settings`` is the folder's :class:`~bbam_lite.pseudo.settings.PseudoLabelSettings` (paper
    preset, no proposal refinement): it gives the CRF parameters.
    """
    post = PostProcess.of(settings)
    if post.rule != "values" or post.refine:
        raise ValueError("threshold_sweep reproduces the paper preset without proposal refinement")
    maps = read_maps(folder, dataset, n_images)
    refined = [post.refined_map(m.obj.image, m.bbam, m.obj.box) for m in maps]
    records = {r.image_id: r for r in list(dataset)[: n_images if n_images is not None else None]}
    rows = []
    for bg, fg in pairs:
        per_image: dict[int, list[InstanceLabel]] = {}
        for m, r in zip(maps, refined, strict=True):
            f, ign = threshold_map(r, fg, bg)
            per_image.setdefault(m.obj.image_id, []).append(InstanceLabel(m.obj.label, m.obj.box, f, ign))
        q = label_quality(((records[i], insts) for i, insts in per_image.items()), dataset.class_names)
        rows.append({"theta_bg": bg, "theta_fg": fg, **q})
    return rows


# --- the chapter's tables and its sentences about this run ------------------------------------

#: Differences of label mIoU below this are read as "no difference" (a few pixels on a few objects).
NEGLIGIBLE = 0.005


#: The label scores both of this run's tables show, with their units.
LABEL_SCORES = (
    ("miou", "label mIoU (fraction)", ".3f"),
    ("mean_instance_iou", "mean instance IoU (fraction)", ".3f"),
    ("ignore_fraction", "ignored pixels (%)", ".1%"),
)


def lambda_table(rows: Sequence[dict[str, Any]]) -> Table:
    """Table 6 of this run: label scores (fractions) and mean map values (0-1) per lambda."""
    return Table(
        rows,
        [
            ("lam", "λ", ".3f"),
            *LABEL_SCORES,
            ("mean_map_on_object", "mean map on the object (0-1)", ".2f"),
            ("mean_map_off_object", "mean map off the object (0-1)", ".2f"),
            ("objects", "objects", "d"),
        ],
        caption="This run: pseudo labels against the exact masks",
    )


def paper_lambda_table() -> Table:
    """The paper's Table 6: networks trained on BBAM labels, VOC val, in percent."""
    rows = [{"lam": lam, **v} for lam, v in PAPER_TABLE6.items()]
    return Table(
        rows,
        [
            ("lam", "λ", ".3f"),
            ("AP", "instance AP (%)", ".1f"),
            ("AP50", "instance AP50 (%)", ".1f"),
            ("AP75", "instance AP75 (%)", ".1f"),
            ("mIoU", "semantic mIoU (%)", ".1f"),
        ],
        caption="The paper (Table 6): networks trained on the labels, VOC val",
    )


def threshold_table(rows: Sequence[dict[str, Any]]) -> Table:
    """Table 5 of this run: label scores (fractions) and the ignored share per threshold pair."""
    return Table(
        rows,
        [
            ("theta_bg", "θ_bg", ".1f"),
            ("theta_fg", "θ_fg", ".1f"),
            *LABEL_SCORES,
            ("miou_ignore_as_background", "label mIoU, ignored as background (fraction)", ".3f"),
        ],
        caption="This run: pseudo labels against the exact masks",
    )


def paper_threshold_table() -> Table:
    """The paper's Table 5: instance networks trained on the labels, VOC val, in percent."""
    rows = [{"theta_bg": bg, "theta_fg": fg, "growing": "no", **v} for (bg, fg), v in PAPER_TABLE5.items()]
    rows += [
        {"theta_bg": bg, "theta_fg": fg, "growing": "yes", **v}
        for (bg, fg), v in PAPER_TABLE5_GROWING.items()
    ]
    return Table(
        rows,
        [
            ("theta_bg", "θ_bg", ".1f"),
            ("theta_fg", "θ_fg", ".1f"),
            ("growing", "seed growing", ""),
            ("AP", "instance AP (%)", ".1f"),
            ("AP50", "instance AP50 (%)", ".1f"),
            ("AP75", "instance AP75 (%)", ".1f"),
        ],
        caption="The paper (Table 5): instance networks trained on the labels, VOC val",
    )


def _falls(values: Sequence[float]) -> bool:
    return all(b < a for a, b in zip(values[:-1], values[1:], strict=True))


def map_verdict(rows: Sequence[dict[str, Any]]) -> str:
    """How the mean map on and off the object move from the smallest to the largest lambda."""
    rows = sorted(rows, key=lambda r: r["lam"])
    lo, hi = rows[0], rows[-1]
    parts = []
    for key, where in (("mean_map_on_object", "on the object"), ("mean_map_off_object", "off it")):
        values = [r[key] for r in rows]
        how = "falls" if _falls(values) else "rises" if values[-1] > values[0] else "does not fall steadily"
        parts.append(f"{how} {where} ({lo[key]:.2f} to {hi[key]:.2f})")
    gap = max(rows, key=lambda r: r["mean_map_on_object"] - r["mean_map_off_object"])
    return (
        f"From λ = {lo['lam']:g} to {hi['lam']:g} the mean map {parts[0]} and {parts[1]}; the gap "
        f"between the two is largest at λ = {gap['lam']:g} "
        f"({gap['mean_map_on_object'] - gap['mean_map_off_object']:.2f})."
    )


def lambda_verdict(rows: Sequence[dict[str, Any]]) -> str:
    """Table 6 in words: the best lambda here against the paper's 0.007, and how much the label
    mIoU moves over the sweep against the paper's semantic mIoU over the same values."""
    rows = sorted(rows, key=lambda r: r["lam"])
    best = max(rows, key=lambda r: r["miou"])
    worst = min(rows, key=lambda r: r["miou"])
    spread = 100 * (best["miou"] - worst["miou"])
    paper = [PAPER_TABLE6[round(r["lam"], 3)]["mIoU"] for r in rows if round(r["lam"], 3) in PAPER_TABLE6]
    paper_spread = max(paper) - min(paper) if len(paper) > 1 else None
    optimum = "the paper's optimum too" if round(best["lam"], 3) == 0.007 else "not the paper's 0.007"
    text = (
        f"The best λ here is {best['lam']:g} (label mIoU {best['miou']:.3f}), {optimum}; the worst "
        f"is {worst['lam']:g} ({worst['miou']:.3f}). Over the sweep the label mIoU moves by "
        f"{spread:.1f} points"
    )
    if paper_spread is not None:
        ratio = spread / paper_spread if paper_spread else float("inf")
        how = (
            "far more sensitive to λ than the paper's networks"
            if ratio > 2
            else "less sensitive to λ than the paper's networks"
            if ratio < 0.5
            else "about as sensitive to λ as the paper's networks"
        )
        text += (
            f", the paper's semantic mIoU by {paper_spread:.1f} points over the same values: these "
            f"labels are {how} (labels and networks are different measures; compare the spreads, "
            "not the levels)."
        )
    else:
        text += "."
    return f"{text} {map_verdict(rows)}"


def threshold_verdict(rows: Sequence[dict[str, Any]]) -> str:
    """Table 5 in words: the band (0.2, 0.8) against equal thresholds (0.5, 0.5), the spread over
    all pairs, and how many pixels the band leaves out (the paper: the band gains 0.3 AP)."""
    by = {(r["theta_bg"], r["theta_fg"]): r for r in rows}
    band, equal = by[(0.2, 0.8)], by[(0.5, 0.5)]
    change = band["miou"] - equal["miou"]
    spread = max(r["miou"] for r in rows) - min(r["miou"] for r in rows)
    in_band = band["ignore_fraction"] - equal["ignore_fraction"]
    text = (
        f"Here the band 0.2 / 0.8 {fmt_change(change)} label mIoU against 0.5 / 0.5 "
        f"({band['miou']:.3f} against {equal['miou']:.3f}) and ignores {band['ignore_fraction']:.1%} "
        f"of the pixels ({equal['ignore_fraction']:.1%} with equal thresholds, the pixels claimed by "
        f"two objects): about {max(in_band, 0.0):.1%} of the pixels lie between 0.2 and 0.8 of the "
        "CRF-refined maps."
    )
    if spread < NEGLIGIBLE:
        text += (
            f" All five pairs lie within {spread:.3f} mIoU of each other: the refined maps are so close "
            "to 0 and 1 that the thresholds barely matter, and the paper's small gain for the band "
            "(AP 28.3 to 28.6) has nothing to act on here."
        )
    else:
        agree = "as" if change > 0 else "unlike"
        text += (
            f" The five pairs span {spread:.3f} mIoU; the band's change goes {agree} the paper's "
            "small gain (AP 28.3 to 28.6)."
        )
    return text


def diagonal_verdict(rows: Sequence[dict[str, Any]]) -> str:
    """The equal thresholds in words: the best and the worst here, and whether 0.2 / 0.2 is the
    worst as in the paper (AP 24.8)."""
    diagonal = sorted((r for r in rows if r["theta_bg"] == r["theta_fg"]), key=lambda r: -r["miou"])
    best, worst = diagonal[0], diagonal[-1]
    spread = best["miou"] - worst["miou"]
    as_paper = (
        "as in the paper, whose worst row is 0.2 / 0.2 (AP 24.8)"
        if worst["theta_fg"] == 0.2
        else "unlike the paper, whose worst row is 0.2 / 0.2 (AP 24.8)"
    )
    text = (
        f"Of the equal thresholds, {best['theta_fg']:.1f} gives the best labels here (mIoU "
        f"{best['miou']:.3f}) and {worst['theta_fg']:.1f} the worst ({worst['miou']:.3f}), {as_paper}"
    )
    if spread < NEGLIGIBLE:
        text += f"; but they differ by only {spread:.3f}, too little to rank them"
    return text + "."


def band_verdict(rows: Sequence[dict[str, Any]]) -> str:
    """Whether each band with its ignored pixels counted as background scores as its diagonal cell
    (theta_fg, theta_fg) does."""
    by = {(r["theta_bg"], r["theta_fg"]): r for r in rows}
    key = "miou_ignore_as_background"
    diffs = {
        (bg, fg): abs(r[key] - by[(fg, fg)][key]) for (bg, fg), r in by.items() if bg < fg and (fg, fg) in by
    }
    if not diffs:
        return "No band has its diagonal cell in this sweep."
    worst = max(diffs.values())
    if worst <= NEGLIGIBLE:
        return (
            f"Each band, its ignored pixels counted as background, scores within {worst:.3f} of its "
            "diagonal cell (θ_fg, θ_fg): the same label, up to pixels claimed by two objects."
        )
    return (
        f"A band and its diagonal cell differ by up to {worst:.3f} here: more than pixels claimed by "
        "two objects would explain, so the two labels differ in more than the ignored band."
    )


def wider_band_verdict(narrow: dict[str, Any], wide: dict[str, Any]) -> str:
    """Exercise 11.2: what widening the band from ``narrow`` to ``wide`` did to the labels."""
    rise = wide["miou"] - narrow["miou"]
    return (
        f"From {narrow['theta_bg']:.1f} / {narrow['theta_fg']:.1f} to {wide['theta_bg']:.1f} / "
        f"{wide['theta_fg']:.1f} the ignored share goes from {narrow['ignore_fraction']:.2%} to "
        f"{wide['ignore_fraction']:.2%}, the label mIoU {fmt_change(rise)} and the mIoU with the "
        f"ignored pixels as background "
        f"{fmt_change(wide['miou_ignore_as_background'] - narrow['miou_ignore_as_background'])}: "
        + (
            "the tendency (ignoring the uncertain pixels raises the label mIoU) holds."
            if round(rise, 3) > 0
            else "the tendency (ignoring the uncertain pixels raises the label mIoU) does not show here."
        )
    )


def recompute_verdict(band: dict[str, Any], quality: dict[str, Any]) -> str:
    """Whether Table 5's 0.2 / 0.8 row recomputes the labels run's own mIoU (maps are stored as
    float16, so the last digit may differ)."""
    diff = abs(band["miou"] - float(quality["miou"]))
    agree = (
        "agree (maps are stored as float16, so the last digit may differ)"
        if diff <= 0.002
        else f"differ by {diff:.3f}, more than the float16 storage of the maps explains"
    )
    return (
        f"Check: the 0.2 / 0.8 row gives mIoU {band['miou']:.3f}, the labels run itself "
        f"{float(quality['miou']):.3f}: they {agree}."
    )


def summary(rows: Sequence[dict[str, Any]], trows: Sequence[dict[str, Any]]) -> str:
    """The chapter's summary bullets about this run (Markdown)."""
    best = max(rows, key=lambda r: r["miou"])
    spread = max(r["miou"] for r in trows) - min(r["miou"] for r in trows)
    return "\n".join(
        [
            f"* λ: the best of {len(rows)} values here is {best['lam']:g} (label mIoU "
            f"{best['miou']:.3f}), "
            + ("as in the paper (0.007)." if round(best["lam"], 3) == 0.007 else "not the paper's 0.007.")
            + f" {map_verdict(rows)}",
            f"* Thresholds: the five pairs of Table 5 span {spread:.3f} label mIoU here; "
            + (
                "the CRF-refined maps leave almost nothing between the thresholds."
                if spread < NEGLIGIBLE
                else "where the band helps is the question of the table above."
            ),
        ]
    )
