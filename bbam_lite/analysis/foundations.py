"""Sentences and tables of the book's first chapters (1: label costs, 2: the data, 3: the
detector's heads, 4: the box baselines), made from the numbers, so that a re-execution cannot
leave a false sentence.

Each ``*_verdict`` returns Markdown for ``bbam_lite.book.claims.say``; the wording for each
outcome is chosen from the numbers with :func:`~bbam_lite.analysis.tables.pick`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bbam_lite.analysis.tables import Table, fmt_change, pick
from bbam_lite.attribution.bbam import adaptive_stride

#: Box2Seg's names of the two ways to score labels without training a network (its Table 1).
SETTINGS = {"gt": "NoTrain-GT", "detector": "NoTrain-Det"}


# ------------------------------------------------------------------------- chapter 1: label costs
def cost_verdict(seconds: Mapping[str, float]) -> str:
    """What boxes cost against tags and masks, from the seconds per image of each kind of label
    (keys ``image-level tags``, ``bounding boxes``, ``pixel-level masks``)."""
    tags, boxes, masks = (seconds[k] for k in ("image-level tags", "bounding boxes", "pixel-level masks"))
    return (
        f"By these figures, boxes cost {pick(boxes > tags, 'more', 'less')} than tags per image "
        f"({boxes / tags:.1f} times as much), and masks {masks / boxes:.1f} times as much as boxes."
    )


# ------------------------------------------------------------------------------- chapter 2: data
def size_verdict(area_ratios: Sequence[float]) -> str:
    """How large the objects are (the middle 90% of box area / image area) and how much the
    adaptive stride varies over them."""
    a = np.asarray(area_ratios, dtype=float)
    lo, hi = np.percentile(a, [5, 95])
    s_lo, s_hi = adaptive_stride(float(lo)), adaptive_stride(float(hi))
    return (
        f"The middle 90% of the objects cover {lo:.1%} to {hi:.1%} of their image, so the adaptive "
        f"stride varies from {s_lo:.0f} to {s_hi:.0f} paper pixels over them, "
        f"{pick(s_hi / s_lo >= 1.5, 'a factor', 'only a factor')} of {s_hi / s_lo:.1f}."
    )


def colour_verdict(oracle: Sequence[float], box: Sequence[float]) -> str:
    """Exercise 2.1: the oracle colour model's pixel accuracy inside the box against Box's."""
    o, b = float(np.median(oracle)), float(np.median(box))
    return (
        f"Here the oracle colour model is right about a median {o:.1%} of a box's pixels, against "
        f"{b:.1%} for Box: {pick(o > b, 'better than Box', 'no better than Box')}, yet wrong about "
        f"{1 - o:.1%} of the pixels with the true colours in hand."
    )


def fill_verdict(fill_by_class: Mapping[str, float]) -> str:
    """Exercise 2.2: the classes that fill their boxes least and most (median fill ratio)."""
    order = sorted(fill_by_class, key=lambda c: fill_by_class[c])
    low, high = order[0], order[-1]
    return (
        f"Here {low} fills its boxes least (median {fill_by_class[low]:.2f}) and {high} most "
        f"({fill_by_class[high]:.2f})."
    )


def overlap_verdict(share_overlapping: float, share_on_others: float, n_boxes: int) -> str:
    """Exercise 2.3: how common overlapping boxes are in this run's images."""
    common = share_overlapping >= 0.2
    return (
        f"{share_overlapping:.0%} of the {n_boxes} boxes overlap another box, and a box has on "
        f"average {share_on_others:.1%} of its pixels on other objects: overlaps are "
        f"{pick(common, 'not a corner case', 'rare')} here."
    )


# --------------------------------------------------------------------------- chapter 3: detector
def regression_verdict(proposal_iou: Sequence[float], regressed_iou: Sequence[float]) -> str:
    """What f_box does to jittered proposals: their mean IoU with the box before and after, and the
    share it moves closer."""
    before, after = np.asarray(proposal_iou, float), np.asarray(regressed_iou, float)
    closer = float(np.mean(after > before))
    undoes = after.mean() > before.mean() and closer > 0.5
    return (
        f"Over these proposals the box head {fmt_change(after.mean() - before.mean())} mean IoU with "
        f"the box ({before.mean():.2f} before, {after.mean():.2f} after) and moves {closer:.0%} of "
        f"them closer to it: {pick(undoes, 'it undoes much of the jitter', 'it does not undo the jitter')}."
    )


def confidence_verdict(proposal_iou: Sequence[float], class_prob: Sequence[float]) -> str:
    """Whether f_cls's probability of the class falls as proposals drift off the object (rank
    correlation of the proposal's IoU with the box and the probability)."""
    iou, prob = np.asarray(proposal_iou, float), np.asarray(class_prob, float)
    rho = _spearman(iou, prob)
    return (
        f"The class head's probability of the class and the proposal's IoU with the box have a rank "
        f"correlation of {rho:.2f}: f_cls "
        f"{pick(rho > 0.1, 'loses', 'does not lose')} confidence as the proposal drifts off the object."
    )


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2:
        return 0.0
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    c = np.corrcoef(rx, ry)[0, 1]
    return 0.0 if np.isnan(c) else float(c)


def positives_verdict(per_object: Sequence[Mapping[str, float]], n_proposals: int) -> str:
    """Chapter 3's summary: positives per object, and how far positives' own proposals are from the
    box. Each row: ``positives``, ``min_positive_iou`` (the lowest proposal IoU among its positives,
    NaN without positives)."""
    pos = np.array([r["positives"] for r in per_object], float)
    lows = np.array([r["min_positive_iou"] for r in per_object], float)
    lows = lows[~np.isnan(lows)]
    none = int((pos == 0).sum())
    text = (
        f"Of {n_proposals} jittered proposals per object, a median of {np.median(pos):.0f} are "
        f"positives; {none} of {len(pos)} objects have none."
    )
    if len(lows):
        text += (
            f" Positives include proposals that overlap the box only moderately: the least overlapping "
            f"positive of an object has a median IoU of {np.median(lows):.2f} with the box."
        )
    return text


def rejection_verdict(shares: Mapping[str, float]) -> str:
    """Exercise 3.1: which head's test removes most proposals (mean shares: ``f_cls: background``,
    ``f_cls: another class``, ``right class, IoU <= 0.8``)."""
    cls = shares["f_cls: background"] + shares["f_cls: another class"]
    box = shares["right class, IoU <= 0.8"]
    return (
        f"For this detector the class head's test removes {cls:.1%} of the proposals (background or "
        f"another class) and the box head's a further {box:.1%}: "
        f"{pick(cls > box, 'the class test removes most', 'the box test removes most')}."
    )


def cascade_verdict(ends: Mapping[float, int], top: float = 0.9) -> str:
    """Exercise 3.2: where the authors' threshold cascade (from ``top`` down) ends: objects per
    threshold."""
    n = sum(ends.values())
    parts = ", ".join(f"{t} for {ends[t]}" for t in sorted(ends, reverse=True) if ends[t])
    return f"The cascade ends at {parts} of {n} objects: " + pick(
        ends.get(top, 0) > n / 2,
        f"the box head is precise enough to stop at {top} for most objects.",
        f"most objects need a lower threshold than {top}.",
    )


def size_trend_verdict(rho: float, iou_small: float, iou_large: float) -> str:
    """Exercise 3.3: whether the proposals' IoU depends on size (it should not) and the rank
    correlation of the share of positives with the object's size."""
    same = abs(iou_small - iou_large) < 0.05
    if rho > 0.2:
        trend = "larger objects get more positives"
    elif rho < -0.2:
        trend = "smaller objects get more positives"
    else:
        trend = "no clear trend with size"
    return (
        f"The proposals' mean IoU with the box is {iou_small:.3f} for the smallest third and "
        f"{iou_large:.3f} for the largest: {pick(same, 'about the same, as predicted', 'not the same')}. "
        f"The share of positives has a rank correlation of {rho:.2f} with the object's size: {trend}."
    )


# ---------------------------------------------------------------------- chapter 4: box baselines
def baseline_table(
    quality: Mapping[tuple[str, str], Mapping[str, float]],
    names: Mapping[str, str],
    paper: Mapping[str, Mapping[str, float]],
) -> Table:
    """Chapter 4's table: per box baseline (``names``: method -> title), this run's label quality in
    percent for labels from the true boxes (NoTrain-GT) and the detector's (NoTrain-Det), then
    Box2Seg's Table 1 label mIoU on VOC val (percent; ``paper`` as
    :func:`bbam_lite.pseudo.methods.paper_numbers`), a dash where Box2Seg has no such row.
    ``quality[method, boxes]`` holds ``miou``, ``ignore_fraction`` and ``mean_instance_iou``
    (fractions)."""
    rows, columns = [], [("method", "method", "")]
    metrics = (
        ("miou", "mIoU (%)"),
        ("ignore_fraction", "ignored pixels (%)"),
        ("mean_instance_iou", "mean instance IoU (%)"),
    )
    for key, head in metrics:
        columns += [(f"{key}_{b}", f"{head}, {s}", ".1f") for b, s in SETTINGS.items()]
    suffix = {"gt": "notrain_gt", "detector": "notrain_det"}
    columns += [(f"paper_{b}", f"Box2Seg, VOC val: mIoU (%), {s}", ".1f") for b, s in SETTINGS.items()]
    for method, title in names.items():
        row: dict[str, Any] = {"method": title}
        for key, _ in metrics:
            for b in SETTINGS:
                row[f"{key}_{b}"] = 100 * quality[method, b][key]
        for b in SETTINGS:
            row[f"paper_{b}"] = paper.get(f"{method}_{suffix[b]}", {}).get("miou")
        rows.append(row)
    return Table(
        rows,
        columns,
        caption="Labels scored without training a network; Box2Seg: its Table 1 (-: no such row there)",
    )


def baseline_verdict(
    quality: Mapping[tuple[str, str], Mapping[str, float]],
    names: Mapping[str, str],
    ignoring: Sequence[str],
    floor: str = "box",
) -> str:
    """Chapter 4's reading of its table (labels from the true boxes): the place of ``floor`` (Box),
    what colour and edges gain over it, what ignoring pixels buys and costs, and what the
    detector's boxes cost. ``ignoring`` are the methods that leave pixels unlabelled."""
    gt = {m: quality[m, "gt"] for m in names}
    miou = {m: q["miou"] for m, q in gt.items()}
    inst = {m: q["mean_instance_iou"] for m, q in gt.items()}
    labelling = [m for m in names if m not in ignoring]
    lines = []
    if floor in names:
        lowest = min(labelling, key=lambda m: miou[m])
        lines.append(
            f"{names[floor]} has {pick(lowest == floor, 'the lowest', 'not the lowest')} mIoU of the methods "
            f"that label every pixel ({100 * miou[floor]:.1f}%)"
            + "; "
            + ", ".join(
                f"{names[m]} {fmt_change(100 * (miou[m] - miou[floor]), 1)} points over it"
                for m in labelling
                if m != floor
            )
            + "."
        )
    if ignoring and labelling:
        best_labelling = max(labelling, key=lambda m: miou[m])
        parts = []
        for m in ignoring:
            higher = miou[m] > miou[best_labelling]
            parts.append(
                f"{names[m]} ignores {gt[m]['ignore_fraction']:.0%} of the pixels and scores "
                f"{pick(higher, 'a higher', 'a lower')} mIoU ({100 * miou[m]:.1f}%) than the best method "
                f"that labels every pixel ({names[best_labelling]}, {100 * miou[best_labelling]:.1f}%), "
                f"with a mean instance IoU of {100 * inst[m]:.1f}% against "
                f"{100 * inst[best_labelling]:.1f}%"
            )
        lines.append("; ".join(parts) + ".")
    drops = {m: quality[m, "gt"]["miou"] - quality[m, "detector"]["miou"] for m in names}
    lose = [m for m in names if drops[m] > 0]
    who = pick(len(lose) == len(names), "every method loses", f"{len(lose)} of {len(names)} methods lose")
    lines.append(
        f"With the detector's boxes {who} "
        f"mIoU: from {100 * min(drops.values()):.1f} to {100 * max(drops.values()):.1f} points."
    )
    return "\n".join(f"* {line}" for line in lines)


def order_verdict(smaller_share: float) -> str:
    """Exercise 4.1: how often the smaller box's object owns the contested object pixels."""
    return (
        f"Here {smaller_share:.0%} of the shared object pixels are on the smaller box's object: the rule "
        f"is right {pick(smaller_share > 0.5, 'more often than not', 'less often than not')}."
    )


def centre_verdict(medians: Mapping[str, Mapping[str, float]]) -> str:
    """Exercise 4.2: the median precision and recall of the whole box and of Box^i's centre
    (``medians[region]["precision" | "recall"]``, regions ``"box"`` and ``"centre (Box^i)"``)."""
    box, centre = medians["box"], medians["centre (Box^i)"]
    return (
        f"Here the centre's median precision is {centre['precision']:.2f} against the box's "
        f"{box['precision']:.2f} ({pick(centre['precision'] > box['precision'], 'higher', 'not higher')}), "
        f"and its median recall {centre['recall']:.2f} against {box['recall']:.2f}."
    )


def box_inner_verdict(box_inner: Mapping[str, float], box: Mapping[str, float]) -> str:
    """Exercise 4.2: Box^i's mIoU and mean instance IoU against Box's (label quality dicts with
    ``miou`` and ``mean_instance_iou``)."""
    higher = box_inner["miou"] > box["miou"]
    lower = box_inner["mean_instance_iou"] < box["mean_instance_iou"]
    return (
        f"In the table, Box^i's mIoU is {pick(higher, 'higher', 'not higher')} than Box's "
        f"({100 * box_inner['miou']:.1f}% against {100 * box['miou']:.1f}%) and its mean instance IoU "
        f"{pick(lower, 'lower', 'not lower')} ({100 * box_inner['mean_instance_iou']:.1f}% against "
        f"{100 * box['mean_instance_iou']:.1f}%)."
    )
