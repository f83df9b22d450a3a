"""Fixed strides against the adaptive stride s(a) = 16 + 48 sqrt(a), by object size (Fig. 7b).

The paper measures the IoU between the BBAM and the ground-truth mask on VOC val, for fixed strides
24 and 48 and for s(a): a small stride fails on large objects, a large one on small objects. Strides
are given in the paper's pixels; on smaller images the workspace's lite profile scales every stride
by (image side / 375), as it does for s(a) (see ``BBAMConfig.stride_reference_side``).

Two IoUs per object: of the raw map (BBAM > 0.5 inside the box, what the paper plots) and of the
pseudo label made from it (dense CRF, theta_fg, as everywhere else in the pipeline).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bbam_lite.analysis.study import ObjectMap, analysis_images, bbam_labels, map_iou, quality_row, read_maps

#: Fig. 7b's settings as BBAMConfig overrides (stride in the paper's pixels; None = adaptive).
STRIDES: dict[str, dict[str, Any]] = {
    "s = 24": {"stride": 24.0},
    "s = 48": {"stride": 48.0},
    "adaptive s(a)": {},
}
SIZE_NAMES = ("small", "medium", "large")


def size_edges(area_ratios: list[float]) -> tuple[float, float, float, float]:
    """Bin edges on a = box area / image area at the terciles of the objects studied.

    Terciles, not fixed edges, because datasets differ: on VOC a spans 0.001-1, on the synthetic set
    most objects lie between 0.04 and 0.3, where s(a) runs from 26 to 42 (paper px).
    """
    if not area_ratios:
        return (0.0, 1 / 3, 2 / 3, 1.0)
    q1, q2 = np.quantile(area_ratios, [1 / 3, 2 / 3])
    return (0.0, float(q1), float(q2), 1.0)


def size_bin(area_ratio: float, edges: tuple[float, ...]) -> int:
    """Index of the size bin of an object covering ``area_ratio`` of its image."""
    return int(np.clip(np.searchsorted(edges, area_ratio, side="right") - 1, 0, len(edges) - 2))


def object_rows(maps: list[ObjectMap], setting: str, label_fg: dict | None = None) -> list[dict[str, Any]]:
    """Per object: size, stride used, IoU of the raw map (> 0.5, inside the box) and of its pseudo label."""
    rows = []
    for m in maps:
        row = {
            "setting": setting,
            "image_id": m.obj.image_id,
            "object": m.obj.index,
            "area_ratio": m.obj.area_ratio,
            "stride": float(m.info.get("stride", float("nan"))),
            "fallback": m.info.get("fallback"),
            "iou_map": map_iou(m.bbam, m.obj.gt, m.obj.box, 0.5),
        }
        if label_fg is not None:
            from bbam_lite.metrics import mask_iou

            row["iou_label"] = mask_iou(label_fg[m.obj.key], m.obj.gt)
        rows.append(row)
    return rows


def _label_masks(folder) -> dict[tuple[int, int], np.ndarray]:
    from bbam_lite.pseudo.folder import LabelsFolder

    labels = LabelsFolder(folder)
    out = {}
    for image_id in labels.finished():
        insts, _ = labels.read_image(image_id)
        for k, inst in enumerate(insts):
            out[(image_id, k)] = inst.fg
    return out


def stride_study(
    ws,
    settings: dict[str, dict[str, Any]] = STRIDES,
    n_images: int | None = None,
    iterations: int | None = None,
    split: str = "train",
) -> dict[str, Any]:
    """Per-object rows for every setting, the pseudo-label quality of each, and a summary by size."""
    rows, quality = [], []
    ds = ws.data(split)
    for name, overrides in settings.items():
        folder, q = bbam_labels(ws, n_images, iterations, split, **overrides)
        n = analysis_images(ws) if n_images is None else n_images
        rows += object_rows(read_maps(folder, ds, n), name, _label_masks(folder))
        quality.append(quality_row(q, setting=name))
    edges = size_edges([r["area_ratio"] for r in rows if r["setting"] == next(iter(settings))])
    return {"rows": rows, "quality": quality, "size_edges": list(edges), "summary": summarise(rows, edges)}


def summarise(rows: list[dict[str, Any]], edges: tuple[float, ...]) -> list[dict[str, Any]]:
    """Mean IoUs per (setting, size bin), with the object count; sets each row's ``size``."""
    for r in rows:
        r["size"] = SIZE_NAMES[size_bin(r["area_ratio"], edges)]
    out = []
    for setting in dict.fromkeys(r["setting"] for r in rows):
        for size in SIZE_NAMES:
            sel = [r for r in rows if r["setting"] == setting and r["size"] == size]
            if not sel:
                continue
            out.append(
                {
                    "setting": setting,
                    "size": size,
                    "objects": len(sel),
                    "iou_map": float(np.mean([r["iou_map"] for r in sel])),
                    "iou_label": float(np.mean([r.get("iou_label", np.nan) for r in sel])),
                    "stride_px": float(np.mean([r["stride"] for r in sel])),
                }
            )
    return out


def stride_table(cfg, height: int, width: int, ratios=(0.01, 0.05, 0.1, 0.2, 0.4)):
    """The strides of Fig. 7b's settings for objects covering ``ratios`` of an image of ``height``
    x ``width`` px: s(a) in the paper's pixels, and each setting's stride on this image (scaled by
    its side, see ``BBAMConfig.stride_for``). ``cfg`` is the run's BBAMConfig; returns a Table."""
    from dataclasses import replace

    from bbam_lite.analysis.tables import Table

    rows = []
    for a in ratios:
        row = {
            "a": a,
            "adaptive (paper px)": 16 + 48 * a**0.5,
            "adaptive (this run, px)": cfg.stride_for(a, height, width),
        }
        for name, o in STRIDES.items():
            if "stride" in o:
                row[f"{name} (this run, px)"] = replace(cfg, **o).stride_for(a, height, width)
        rows.append(row)
    cols = [("a", "a = box area / image area", ".2f")] + [(k, k, ".1f") for k in list(rows[0])[1:]]
    scale = f"{min(height, width)} / {cfg.stride_reference_side or min(height, width)}"
    caption = f"images of {width} x {height} px; stride scale {scale}"
    return Table(rows, cols, caption=caption)


def example_grid(maps: dict[str, list[ObjectMap]], by: str = "adaptive s(a)") -> list[dict[str, Any]]:
    """Rows for :func:`bbam_lite.analysis.plots.attribution_grid`: the smallest, the middle and the
    largest object (by a) of ``maps`` (setting -> the same objects' maps), each with every
    setting's BBAM."""
    ref = maps[by]
    order = sorted(range(len(ref)), key=lambda i: ref[i].obj.area_ratio)
    pick = [order[0], order[len(order) // 2], order[-1]] if len(order) >= 3 else order
    return [
        {
            "image": ref[i].obj.image,
            "box": ref[i].obj.box,
            "gt": ref[i].obj.gt,
            **{name: m[i].bbam for name, m in maps.items()},
        }
        for i in pick
    ]


# -- what this run shows, in words chosen by its numbers (the chapter's generated sentences) --

ADAPTIVE = "adaptive s(a)"
_SCORE = {"iou_map": "raw-map IoU (BBAM > 0.5)", "iou_label": "pseudo-label IoU"}


def paper_pattern(summary: list[dict[str, Any]], key: str = "iou_map") -> tuple[list[str], list[str]]:
    """The parts of the paper's Fig. 7b pattern that hold on ``key`` and those that do not: s = 24
    below s(a) on large objects, s = 48 below it on small ones, s(a) best in every group."""

    def mean(size: str, setting: str) -> float:
        return next((r[key] for r in summary if r["size"] == size and r["setting"] == setting), float("nan"))

    groups = {r["size"] for r in summary}
    best_of = {
        g: max((r for r in summary if r["size"] == g), key=lambda r: r[key])["setting"] for g in groups
    }
    checks = {
        "s = 24 below s(a) on large objects": mean("large", "s = 24") < mean("large", ADAPTIVE),
        "s = 48 below s(a) on small objects": mean("small", "s = 48") < mean("small", ADAPTIVE),
        "s(a) best in every group": bool(best_of) and all(b == ADAPTIVE for b in best_of.values()),
    }
    return [k for k, v in checks.items() if v], [k for k, v in checks.items() if not v]


def summary(res: dict[str, Any]) -> str:
    """The chapter's summary bullets about this run (Markdown): the best labels, and how much of the
    paper's Fig. 7b pattern holds on the raw maps and on the labels."""
    bullets = [f"* {quality_verdict(res['quality'])}"]
    for key, what in (("iou_map", "the raw maps"), ("iou_label", "the pseudo labels")):
        held, _ = paper_pattern(res["summary"], key)
        n = len(held)
        bullets.append(
            f"* On {what}, {n} of the paper's three parts of Fig. 7b "
            f"{'holds' if n == 1 else 'hold'} ({'; '.join(held)})."
            if held
            else f"* On {what}, none of the paper's three parts of Fig. 7b holds."
        )
    return "\n".join(bullets)


def size_verdict(summary: list[dict[str, Any]], key: str = "iou_map") -> str:
    """Fig. 7b in this run (``summary`` of :func:`summarise`), one score: the best setting per size
    group, and the paper's three-part pattern (s = 24 below s(a) on large objects, s = 48 below it
    on small ones, s(a) best in every group), saying which parts hold."""
    lines, best_of = [], {}
    for size in SIZE_NAMES:
        sel = {r["setting"]: r[key] for r in summary if r["size"] == size}
        if not sel:
            continue
        best_of[size] = max(sel, key=sel.__getitem__)
        listed = ", ".join(f"{s} {v:.3f}" for s, v in sel.items())
        lines.append(f"{size}: {listed} (best {best_of[size]})")
    text = f"{_SCORE[key][0].upper()}{_SCORE[key][1:]} by size: " + "; ".join(lines) + "."

    held, failed = paper_pattern(summary, key)
    if not failed:
        return f"{text} All three parts of the paper's pattern hold: {'; '.join(held)}."
    if not held:
        return f"{text} None of the paper's pattern holds on this score ({'; '.join(failed)}: not here)."
    words = {1: "one part", 2: "two parts"}
    return (
        f"{text} Of the paper's three-part pattern, {words[len(held)]} "
        f"{'holds' if len(held) == 1 else 'hold'} ({'; '.join(held)}) and {words[len(failed)]} "
        f"{'does' if len(failed) == 1 else 'do'} not ({'; '.join(failed)})."
    )


def quality_verdict(quality: list[dict[str, Any]]) -> str:
    """The pseudo labels of each stride over all objects (``quality`` of :func:`stride_study`): the
    ranking by mIoU, and whether s(a), the paper's choice, leads."""
    ranked = sorted(quality, key=lambda r: -r["miou"])
    listed = ", ".join(f"{r['setting']} {r['miou']:.3f}" for r in ranked)
    lead = ranked[0]["setting"]
    return f"Pseudo-label mIoU over all objects: {listed}; " + (
        "s(a), the paper's choice, gives the best labels."
        if lead == ADAPTIVE
        else f"{lead} gives the best labels, not s(a), the paper's choice."
    )


def reading(res: dict[str, Any], cfg) -> str:
    """The run's side of "Reading the result against the paper": the range of object sizes studied
    and the strides s(a) gives them, the objects per size group, and the raw maps' level."""
    ratios = [r["area_ratio"] for r in res["rows"] if r["setting"] == ADAPTIVE]
    counts = sorted({r["objects"] for r in res["summary"]})
    maps = [r["iou_map"] for r in res["summary"]]
    if not ratios:
        return "No object was studied."
    lo, hi = min(ratios), max(ratios)
    s_lo, s_hi = (16 + 48 * np.sqrt(a) for a in (lo, hi))
    group = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    text = (
        f"The objects studied here cover {lo:.0%} to {hi:.0%} of the image, where s(a) lies between "
        f"{s_lo:.0f} and {s_hi:.0f} paper pixels; {group} objects per size group, so one object moves "
        f"a group's mean by up to {1 / max(counts[0], 1):.2f} of its IoU. "
    )
    low = max(maps) < 0.5
    text += f"The raw-map IoU ranges from {min(maps):.3f} to {max(maps):.3f} across groups and settings" + (
        f": low for every setting, so an absolute cut at 0.5 keeps little of the object (the "
        f"{cfg.preset} preset starts the mask from the positives' boxes, and its maps can settle "
        "mostly below 0.5); the pseudo labels read the map's order, not its values."
        if low and cfg.preset == "official"
        else "."
    )
    return text


def sign_test(wins: int, n: int) -> float:
    """Two-sided exact sign test: the chance of a split at least as uneven as ``wins`` of ``n``."""
    from math import comb

    if n == 0:
        return 1.0
    k = max(wins, n - wins)
    return min(1.0, 2 * sum(comb(n, i) for i in range(k, n + 1)) / 2**n)


def paired_comparison(rows: list[dict[str, Any]], key: str = "iou_label") -> list[dict[str, Any]]:
    """Exercise 9.3: per size group and fixed stride, on how many objects s(a) beats it (ties left
    out), the mean paired difference of ``key`` and the two-sided sign test's p."""
    iou = {(r["image_id"], r["object"], r["setting"]): r[key] for r in rows}
    out = []
    for size in SIZE_NAMES:
        group = [r for r in rows if r["setting"] == ADAPTIVE and r["size"] == size]
        for other in (s for s in STRIDES if s != ADAPTIVE):
            diffs = [
                r[key] - iou[r["image_id"], r["object"], other]
                for r in group
                if (r["image_id"], r["object"], other) in iou
            ]
            if not diffs:
                continue
            wins, losses = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
            out.append(
                {
                    "size": size,
                    "other": other,
                    "wins": wins,
                    "n": len(diffs),
                    "mean": float(np.mean(diffs)),
                    "p": sign_test(wins, wins + losses),
                }
            )
    return out


def paired_verdict(pairs: list[dict[str, Any]], alpha: float = 0.05) -> str:
    """Exercise 9.3's answer in this run: which paired comparisons a sign test decides."""
    decided = [p for p in pairs if p["p"] < alpha]
    if not pairs:
        return "No paired comparison: no object was studied."
    if not decided:
        n = max(p["n"] for p in pairs)
        return (
            f"No comparison is decided here: the sign test's p is at least {min(p['p'] for p in pairs):.2f} "
            f"everywhere (with {n} objects, even {n} wins of {n} give p = {sign_test(n, n):.2f}), so the "
            "order the lines suggest is not supported by the counts."
        )
    said = "; ".join(
        f"{p['size']}: s(a) {'beats' if p['mean'] > 0 else 'loses to'} {p['other']} ({p['wins']} of "
        f"{p['n']}, p = {p['p']:.3f})"
        for p in decided
    )
    return f"Decided at p < {alpha}: {said}; the other {len(pairs) - len(decided)} comparisons are not."


def cells_across(maps: dict[str, list[ObjectMap]], pooled: int = 7) -> list[dict[str, Any]]:
    """Exercise 9.2: for the smallest and the largest object (by a), each setting's stride as BBAM
    used it and the mask cells across the box's width and height, and per pooled cell."""
    objs = maps.get(ADAPTIVE, [])
    order = sorted(range(len(objs)), key=lambda i: objs[i].obj.area_ratio)
    out = []
    for which, i in (("smallest", order[0]), ("largest", order[-1])) if objs else ():
        x1, y1, x2, y2 = (float(v) for v in objs[i].obj.box)
        for name in maps:
            s = float(maps[name][i].info.get("stride", float("nan")))
            out.append(
                {
                    "object": which,
                    "area_ratio": objs[i].obj.area_ratio,
                    "box": (x2 - x1, y2 - y1),
                    "setting": name,
                    "stride": s,
                    "cells": ((x2 - x1) / s, (y2 - y1) / s),
                    "per_pooled": (x2 - x1) / s / pooled,
                }
            )
    return out


def cells_verdict(cells: list[dict[str, Any]], pooled: int = 7) -> str:
    """Exercise 9.2's answer in this run: does s = 48 leave the smallest object fewer cells across
    than the pooled grid, does s = 24 give the largest more than one cell per pooled cell, and does
    s(a) narrow the range of cells per pooled cell between the two?"""
    at = {(c["object"], c["setting"]): c for c in cells}
    if not at:
        return "No object was studied."
    few = min(at["smallest", "s = 48"]["cells"])
    many = at["largest", "s = 24"]["per_pooled"]
    spread = {s: at["largest", s]["per_pooled"] / at["smallest", s]["per_pooled"] for s in STRIDES}
    fixed = max(v for s, v in spread.items() if s != ADAPTIVE)
    return (
        f"Here s = 48 leaves the smallest object {few:.1f} cells across its shorter side, "
        + ("fewer" if few < pooled else "not fewer")
        + f" than the pooled grid's {pooled}; s = 24 gives the largest {many:.2f} cells per pooled cell"
        + (" (more than one)" if many > 1 else " (not more than one)")
        + f"; from the smallest to the largest object the cells per pooled cell grow {spread[ADAPTIVE]:.1f}x "
        f"under s(a) against {fixed:.1f}x under a fixed stride: s(a) "
        + ("narrows" if spread[ADAPTIVE] < fixed else "does not narrow")
        + " the range."
    )
