"""What chapter 12's run shows, in sentences made from its numbers (:mod:`bbam_lite.book.claims`).

Each function takes the result of :func:`~bbam_lite.experiments.networks.book_comparison` (or the
rows of Tables 5 and 6) and returns Markdown whose wording is chosen by the numbers, so that a
re-executed chapter cannot keep a sentence its new numbers contradict. Scores are printed in
percent, as in the chapter's tables.
"""

from __future__ import annotations

import json
from pathlib import Path
from statistics import mean
from typing import Any

from bbam_lite.analysis.tables import fmt_change
from bbam_lite.experiments.networks import chain, title
from bbam_lite.pseudo.methods import variants

#: A network this far below Box on AP50 (as a fraction of Box's) has collapsed, not merely lost.
COLLAPSE = 0.5
#: Spread (points) within which the paper calls a sweep flat (BBAM Tables 5 and 6: about 5 AP).
PAPER_FLAT = 5.0


def score(result: dict, name: str, task: str, key: str, crf: bool = False) -> float | None:
    """Row ``name``'s ``task`` score ``key`` in percent (after the CRF with ``crf``), None if absent."""
    s = result["rows"].get(name, {}).get(task, {})
    s = s.get("crf", {}) if crf else s
    return None if s.get(key) is None else 100 * s[key]


def trained(result: dict) -> list[str]:
    """The rows with a network (not the NoTrain rows), in the table's order."""
    return [
        n
        for n, r in result["rows"].items()
        if any("train_seconds" in r.get(t, {}) for t in ("semantic", "instance"))
    ]


def label_mious(result: dict) -> dict[str, float]:
    """Each trained row's label mIoU (%) on its training images, from its labels folder's
    ``quality.json`` (absent for full supervision and for folders without one)."""
    out = {}
    for name, row in result["rows"].items():
        q = Path(row.get("labels", "gt")) / "quality.json"
        if row.get("labels") != "gt" and not row.get("notrain") and q.exists():
            out[name] = 100 * json.loads(q.read_text(encoding="utf-8"))["miou"]
    return out


def order_verdict(result: dict, bbam: str = "bbam") -> str:
    """Whether the paper's order full > BBAM > GrabCut > Box holds for the ``bbam`` row on instance
    AP50, AP and semantic mIoU, with the values."""
    lines = []
    for task, key, label in (
        ("instance", "ap50", "AP50"),
        ("instance", "ap", "AP"),
        ("semantic", "miou", "mIoU"),
    ):
        c = result.get("expected_order", {}).get(f"{task}/{key}/{bbam}")
        if c is None:
            continue
        verb = "holds" if c["holds"] else "does not hold"
        values = [100 * v for v in c["values"]]
        lines.append(f"{label}: {verb} ({chain(c['rows'], values)})")
    if not lines:
        return f"The paper's order cannot be checked: a row of it was not trained ({title(bbam)})."
    return f"The paper's order full > BBAM > GrabCut > Box with {title(bbam)}: " + "; ".join(lines) + "."


def best_instance_row(result: dict, key: str = "ap50") -> tuple[str, float] | None:
    """The pseudo-label row whose Mask R-CNN scores highest on ``key`` (full supervision aside)."""
    scores = {n: score(result, n, "instance", key) for n in trained(result) if n != "full"}
    scores = {n: v for n, v in scores.items() if v is not None}
    return max(scores.items(), key=lambda x: x[1]) if scores else None


def same_recipe(row: str, other: str) -> bool:
    """Whether two rows' labels come from the same registered method with the same preset (the
    registry's variants say; a refinement step on top does not change the recipe)."""
    known = variants()
    if row not in known or other not in known:
        return row == other
    a, b = known[row], known[other]
    return a.method == b.method and a.settings.get("preset") == b.settings.get("preset")


def rival_verdict(result: dict, labels: dict[str, float] | None = None, bbam: str = "bbam") -> str:
    """Which pseudo labels give the best Mask R-CNN on AP50 here and, where it is not BBAM, by how
    much it beats BBAM, whether AP75 and the labels' own mIoU (``labels``, %) agree, and what may
    explain it at this scale (the paper finds BBAM above the box baselines)."""
    best = best_instance_row(result)
    ours = score(result, bbam, "instance", "ap50")
    if best is None or ours is None:
        return ""
    name, value = best
    if same_recipe(name, bbam):  # bbam's own row, or it with proposal refinement
        best_row = f"{title(name)}'s ({value:.1f} AP50)"
        return f"The best Mask R-CNN trained on pseudo labels is {best_row}, as in the paper."
    text = (
        f"**Against the paper, {title(name)} gives a better Mask R-CNN than BBAM on AP50** "
        f"({value:.1f} against {ours:.1f} for {title(bbam)})"
    )
    a75, b75 = score(result, name, "instance", "ap75"), score(result, bbam, "instance", "ap75")
    if a75 is not None and b75 is not None:
        text += f", {'and' if a75 > b75 else 'but not'} on AP75 ({a75:.1f} against {b75:.1f})"
    labels = labels or {}
    if name in labels and bbam in labels:
        better = labels[bbam] > labels[name]
        text += (
            f". Its labels {'do not explain it' if better else 'explain part of it'}: BBAM's score "
            f"{labels[bbam]:.1f} mIoU on the training images against {labels[name]:.1f} "
            "(chapters 4 and 6)"
        )
    return text + (
        ". Two things differ at this scale. BBAM's labels leave an ignore band at each object's edge, "
        "which the label mIoU does not score and where the mask head gets no loss, so the network must "
        "guess the edge; labels without a band teach it the whole extent. And BBAM's lite maps are "
        "coarser than the paper's (fewer iterations, strides scaled to small images: chapters 9 and "
        "11). The lite schedule is short, too: a few points are within its noise. On VOC the paper's "
        "Table 1 puts BBAM (63.7 AP50 with proposals) well above the box baselines it compares "
        "(M∩G+: 44.8)."
    )


def crf_gains(result: dict) -> list[tuple[float, float, str]]:
    """(mIoU, CRF gain, row) in points for each semantic network scored with and without the CRF,
    weakest first."""
    out = []
    for n in trained(result):
        before, after = score(result, n, "semantic", "miou"), score(result, n, "semantic", "miou", crf=True)
        if before is not None and after is not None:
            out.append((before, after - before, n))
    return sorted(out)


def crf_verdict(result: dict) -> str:
    """Whether the CRF on the networks' predictions lifts the weaker or the stronger half of the
    rows more, and whether it narrows or widens the spread between rows (semantic mIoU)."""
    gains = crf_gains(result)
    if len(gains) < 4:
        return "Too few rows were scored with the CRF to compare halves."
    half = len(gains) // 2
    low, high = mean(g for _, g, _ in gains[:half]), mean(g for _, g, _ in gains[-half:])
    spread_before = gains[-1][0] - gains[0][0]
    spread_after = max(m + g for m, g, _ in gains) - min(m + g for m, g, _ in gains)
    more = "weaker" if low > high else "stronger"
    narrows = spread_after < spread_before
    return (
        f"The CRF lifts the **{more}** half of the rows more (mean gain {low:+.1f} points for the "
        f"weaker half, {high:+.1f} for the stronger) and {'narrows' if narrows else 'widens'} the spread "
        f"of the semantic networks from {spread_before:.1f} to {spread_after:.1f} points of mIoU."
        + (
            ""
            if more == "weaker"
            else " A CRF can only sharpen a mask that is already near the object: a network that "
            "failed (predicting background, or blobs far from the edges) gives it nothing to snap."
        )
    )


def semantic_verdict(result: dict, labels: dict[str, float] | None = None) -> str:
    """How far apart the semantic networks trained on pseudo labels lie, against full supervision
    and against the spread of their labels' own mIoU; GrabCut against BBAM."""
    rows = [n for n in trained(result) if n != "full" and score(result, n, "semantic", "miou") is not None]
    if len(rows) < 2:
        return ""
    vals = {n: score(result, n, "semantic", "miou") for n in rows}
    lo, hi = min(vals, key=vals.get), max(vals, key=vals.get)
    full = score(result, "full", "semantic", "miou")
    text = (
        f"Semantic networks trained on pseudo labels score between {vals[lo]:.1f} ({title(lo)}) "
        f"and {vals[hi]:.1f} ({title(hi)}) mIoU"
        + (f", against {full:.1f} with the true masks" if full is not None else "")
        + "."
    )
    if full is not None and full <= vals[hi]:
        text += (
            " **The true masks do not give the best semantic network here**, so the semantic rows do not "
            "rank the labels: DeepLab starts from the detector's backbone only and must learn the "
            "classes from the few training images of this schedule, where Mask R-CNN starts from the "
            "whole detector, classes included. Read the instance rows for the labels."
        )
    labels = {n: v for n, v in (labels or {}).items() if n in vals}
    if len(labels) >= 2:
        net = max(vals[n] for n in labels) - min(vals[n] for n in labels)
        lab = max(labels.values()) - min(labels.values())
        text += (
            f" Their spread ({net:.1f} points) is {'narrower' if net < lab else 'wider'} than that of "
            f"their labels' own mIoU ({lab:.1f} points, chapters 4 and 6)."
        )
    g, b = vals.get("grabcut"), vals.get("bbam")
    if g is not None and b is not None:
        text += (
            f" GrabCut ({g:.1f}) {'beats' if g > b else 'trails' if g < b else 'ties'} BBAM ({b:.1f}) here."
        )
    return text


def paper_text_verdict(result: dict) -> str:
    """BBAM as the paper's text states it against the authors' code and Box."""
    p, o, b = (score(result, n, "instance", "ap50") for n in ("bbam_paper", "bbam", "box"))
    pm, om, bm = (score(result, n, "semantic", "miou") for n in ("bbam_paper", "bbam", "box"))
    if None in (p, o, pm, om):
        return ""
    fails = b is not None and bm is not None and p < b and pm < bm
    head = (
        "**BBAM as the paper's text states it fails at this scale**: below Box on both scores"
        if fails
        else "BBAM as the paper's text states it "
        + ("trails" if p < o else "matches or beats")
        + " the authors' code"
    )
    return (
        f"{head} ({pm:.1f} mIoU and {p:.1f} AP50, against {om:.1f} and {o:.1f} for the authors' code"
        + (f", {bm:.1f} and {b:.1f} for Box" if b is not None and bm is not None else "")
        + "): the networks learn what the labels tell them (chapter 6 shows why the presets' labels differ)."
    )


def collapse_verdict(result: dict, labels: dict[str, float] | None = None, name: str = "box_inner") -> str:
    """Whether the Mask R-CNN trained on ``name``'s labels (Box^i) collapses on AP50 although its
    labels score high, and why: the labels' mIoU counts only the pixels they label."""
    ap50, ap25 = (score(result, name, "instance", k) for k in ("ap50", "ap25"))
    box = score(result, "box", "instance", "ap50")
    if ap50 is None or box is None:
        return ""
    lab = (labels or {}).get(name)
    quality = f"from labels of {lab:.1f} mIoU " if lab is not None else ""
    if ap50 >= COLLAPSE * box:
        return (
            f"{title(name)}'s Mask R-CNN reaches {ap50:.1f} AP50 {quality}(Box: {box:.1f}): no collapse here."
        )
    return (
        f"**{title(name)}'s Mask R-CNN collapses**: {ap50:.1f} AP50 {quality}against "
        f"{box:.1f} for Box, although its AP25 is {ap25:.1f}. Its labels mark only the box's central "
        "20% as the object and ignore the rest of the box, and the label mIoU counts only labelled "
        "pixels, so it is high; the network learns to predict that central core, which overlaps the "
        "object by more than 25% but rarely by 50%. Seed growing could fill the ignored ring, but "
        "only with confident predictions, which a short schedule does not give. Simple Does It "
        "trains Box^i recursively, relabelling from the network's output, which this chapter does not."
    )


def spread(values: list[float | None]) -> float | None:
    """max - min of the values present (None when fewer than two)."""
    v = [x for x in values if x is not None]
    return max(v) - min(v) if len(v) >= 2 else None


def table5_verdict(t5: list[dict[str, Any]]) -> str:
    """Table 5 here: the spread of AP50 over the threshold rows against the paper's, and what seed
    growing adds for each pair trained both ways."""
    ours, paper = spread([r["ap50"] for r in t5]), spread([r.get("paper_ap50") for r in t5])
    if ours is None:
        return ""
    text = (
        f"Over Table 5's {len(t5)} rows AP50 spans {ours:.1f} points here"
        + (f" ({paper:.1f} in the paper)" if paper is not None else "")
        + (
            ": as flat as the paper finds (within about 5)."
            if ours <= PAPER_FLAT
            else ": less flat than the paper finds."
        )
    )
    by = {(r["theta_bg"], r["theta_fg"], r["grow"]): r for r in t5}
    for bg, fg, grow in by:
        if grow == "on" and (bg, fg, "off") in by:
            d = by[(bg, fg, "on")]["ap50"] - by[(bg, fg, "off")]["ap50"]
            text += f" Seed growing at {bg:g} / {fg:g} {fmt_change(d, 1)} AP50"
            p_on, p_off = by[(bg, fg, "on")].get("paper_ap50"), by[(bg, fg, "off")].get("paper_ap50")
            text += (
                f" (paper: {fmt_change(p_on - p_off, 1)})." if p_on is not None and p_off is not None else "."
            )
    return text


def table6_verdict(t6: list[dict[str, Any]], default: float = 0.007) -> str:
    """Table 6 here: the best lambda on AP50, the spread against the paper's, the paper's default."""
    rows = [r for r in t6 if r.get("ap50") is not None]
    if len(rows) < 2:
        return ""
    best = max(rows, key=lambda r: r["ap50"])
    ours, paper = spread([r["ap50"] for r in rows]), spread([r.get("paper_ap50") for r in rows])
    lams = ", ".join(f"{r['lam']:g}" for r in rows)
    text = f"Over λ = {lams}, AP50 spans {ours:.1f} points here"
    text += f" ({paper:.1f} in the paper)" if paper is not None else ""
    text += f"; the best λ here is {best['lam']:g} ({best['ap50']:.1f} AP50)"
    text += (
        ", the paper's default."
        if best["lam"] == default
        else f", not the paper's {default:g}: with strides and images scaled down, the balance "
        "the paper tuned moves (chapter 11)."
    )
    if ours > PAPER_FLAT:
        text += " The table is not flat here, where the paper finds every λ within a few points."
    return text


def summary(result: dict, sens: dict | None = None, t5=None, t6=None) -> str:
    """Chapter 12's "what this run shows": one bullet per finding, each made by the functions above."""
    labels = label_mious(result)
    bullets = [
        order_verdict(result),
        rival_verdict(result, labels),
        semantic_verdict(result, labels),
        paper_text_verdict(result),
        collapse_verdict(result, labels),
        crf_verdict(result),
    ]
    if t5:
        bullets.append(table5_verdict(t5))
    if t6:
        bullets.append(table6_verdict(t6))
    return "\n".join(f"* {b}" for b in bullets if b)
