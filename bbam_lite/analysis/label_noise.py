"""Robustness to noisy box labels (Fig. 7a): boxes expanded or contracted by up to 20%.

Noise level ``p`` (a signed fraction): every side of every box moves by ``u * |p| / 2`` of the box's
width (left, right) or height (top, bottom), ``u ~ U(0, 1)`` drawn per side, outwards for ``p > 0``
and inwards for ``p < 0``. A box's width and height therefore change by up to ``|p|``: at
``p = +0.2`` a box is up to 20% wider and taller than the tight box, at ``p = -0.2`` up to 20%
narrower and shorter. Expanded boxes are clipped to the image; contracted ones keep at least one
pixel. The noise of an object depends only on ``(seed, image id, box index)``, so every method and
every level sees the same draw ``u`` (levels differ only in their scale).

Pseudo labels are then made from the noisy boxes by each method and compared with the exact
masks, as the paper compares instance segmentation trained on them (we stop at the pseudo labels).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bbam_lite.analysis.tables import fmt_change
from bbam_lite.data.records import BoxDataset

#: The paper's range (Fig. 7a extends Hsu et al.'s +-15% to +-20%).
LEVELS = (-0.2, -0.1, 0.0, 0.1, 0.2)
#: The two ends and the clean boxes: enough for the direction of each side, in minutes on a CPU.
LEVELS_SHORT = (-0.2, 0.0, 0.2)


def study_levels(profile: str) -> tuple[float, ...]:
    """Fig. 7a's noise levels for a profile: the paper's five at ``full``, the two ends and the
    clean boxes otherwise (each level is a BBAM run)."""
    return LEVELS if profile == "full" else LEVELS_SHORT


#: Fig. 7a's methods here: BBAM against the two box baselines of Box2Seg.
FIG7A_METHODS = ("box", "grabcut", "bbam")


def perturb_boxes(
    boxes: np.ndarray, level: float, height: int, width: int, draws: np.ndarray | None = None
) -> np.ndarray:
    """Boxes (N, 4) with every side moved by ``draws * |level| / 2`` of the box's size (see above).

    ``draws`` (N, 4) in [0, 1] are the per-side uniforms; all ones gives the extreme box of the level.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    u = np.ones_like(boxes) if draws is None else np.asarray(draws, np.float64).reshape(-1, 4)
    if not -1.0 < level < 1.0:
        raise ValueError(f"noise level must lie in (-1, 1), got {level}")
    size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, 1)  # w, h, w, h
    outward = np.array([-1.0, -1.0, 1.0, 1.0]) * np.sign(level)
    out = boxes + outward * u * abs(level) / 2 * size
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    # a contracted box keeps at least one pixel around its centre
    for a, b in ((0, 2), (1, 3)):
        thin = out[:, b] - out[:, a] < 1
        centre = (boxes[thin, a] + boxes[thin, b]) / 2
        out[thin, a], out[thin, b] = centre - 0.5, centre + 0.5
    return out.astype(np.float32)


def side_draws(seed: int, image_id: int, n_boxes: int) -> np.ndarray:
    """The per-side uniforms of one image's boxes: a function of the seed and the image only."""
    return np.random.default_rng([seed, int(image_id)]).uniform(0, 1, size=(n_boxes, 4))


def noisy_dataset(
    dataset: BoxDataset, level: float, seed: int = 0, n_images: int | None = None
) -> BoxDataset:
    """The first ``n_images`` records of ``dataset`` with noisy boxes (masks, images unchanged)."""
    recs = list(dataset)[: n_images if n_images is not None else None]
    noisy = [
        replace(
            r,
            boxes=perturb_boxes(
                r.boxes, level, r.height, r.width, side_draws(seed, r.image_id, len(r.boxes))
            ),
        )
        for r in recs
    ]
    return BoxDataset(noisy, dataset.class_names, f"{dataset.name}+box-noise{level:+.2f}", dataset.root)


def noisy_labels(
    ws,
    method: str,
    level: float,
    n_images: int | None = None,
    iterations: int | None = None,
    split: str = "train",
) -> tuple[Path, dict]:
    """Pseudo labels of ``method`` made from the boxes of the workspace's ``split`` at noise ``level``.

    Cached under ``RUN/labels/<method>-noise<level>-<key>`` (``Workspace.labels_dir``: BBAM's key
    holds the detector's checksum); resumable like every labels folder. ``iterations`` overrides
    the profile's BBAM iterations.
    """
    from bbam_lite.analysis.study import analysis_images
    from bbam_lite.pseudo.generate import generate
    from bbam_lite.pseudo.job import LabelJob

    n = analysis_images(ws) if n_images is None else n_images
    bbam = {"iterations": int(iterations)} if iterations is not None else {}
    settings = ws.label_settings(method, bbam=bbam)  # drops ``bbam`` for methods without it
    if level == 0:  # the clean boxes: the workspace's own labels, shared with the other chapters
        return ws.labels(method, split=split, limit=n, bbam=settings.bbam)
    out = ws.labels_dir(settings, split, n, tag=f"-noise{level:+.2f}", level=level)
    if (out / "quality.json").exists():
        import json

        return out, json.loads((out / "quality.json").read_text())
    ds = noisy_dataset(ws.data(split), level, ws.seed, n)
    job = LabelJob.make(ds, settings, out, ws.detector_ref, ws.mean, device=ws.device, progress=False)
    quality = generate(job)
    return out, quality


def noise_study(
    ws,
    levels: tuple[float, ...] = LEVELS,
    methods: tuple[str, ...] = FIG7A_METHODS,
    n_images: int | None = None,
    iterations: int | None = None,
    split: str = "train",
) -> list[dict[str, Any]]:
    """One row per (method, level): pseudo-label mIoU, mean instance IoU, ignored share, fallbacks."""
    from bbam_lite.analysis.study import quality_row

    rows = []
    for method in methods:
        for level in levels:
            _, q = noisy_labels(ws, method, level, n_images, iterations, split)
            rows.append(quality_row(q, method=method, level=level))
    return rows


def degradation(rows: list[dict[str, Any]], metric: str = "miou") -> dict[str, dict[str, float]]:
    """Per method, the change of ``metric`` from clean boxes to the most expanded / contracted ones."""
    out: dict[str, dict[str, float]] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = {r["level"]: r[metric] for r in rows if r["method"] == method}
        if 0.0 not in mine:
            continue
        lo, hi = min(mine), max(mine)
        out[method] = {
            "clean": mine[0.0],
            "expanded": mine[hi] - mine[0.0] if hi > 0 else float("nan"),
            "contracted": mine[lo] - mine[0.0] if lo < 0 else float("nan"),
        }
    return out


def least_hurt(rows: list[dict[str, Any]], side: str, metric: str = "miou") -> str | None:
    """The method whose ``metric`` changes least for the worse on ``side`` (contracted | expanded)."""
    deg = {m: d[side] for m, d in degradation(rows, metric).items() if not np.isnan(d[side])}
    return max(deg, key=deg.get) if deg else None


def noise_verdict(
    rows: list[dict[str, Any]], levels, titles: dict[str, str] | None = None, subject: str = "bbam"
) -> str:
    """What this run's Fig. 7a shows, in words chosen by its numbers: each method's mIoU change
    on each side, which method is hurt least there, which side hurts each method more, and the
    fallbacks of ``subject`` (the method the chapter studies)."""
    titles = titles or {}
    name = lambda m: titles.get(m, m)  # noqa: E731
    deg = degradation(rows, "miou")
    parts = []
    for side, level in (("contracted", min(levels)), ("expanded", max(levels))):
        changes = {m: d[side] for m, d in deg.items() if not np.isnan(d[side])}
        if not changes:
            continue
        best = least_hurt(rows, side)
        ordered = sorted(changes.items(), key=lambda x: -x[1])
        listed = "; ".join(f"{name(m)} {fmt_change(v)}" for m, v in ordered)
        parts.append(
            f"**{side.capitalize()} boxes ({100 * level:+.0f}%)**, mIoU: {listed}. "
            f"{name(best)} {'is hurt least' if changes[best] < 0 else 'is not hurt at all'}."
        )
    by_side: dict[str, list[str]] = {"contracted": [], "expanded": []}
    for m, d in deg.items():
        if not (np.isnan(d["contracted"]) or np.isnan(d["expanded"])):
            by_side["contracted" if d["contracted"] < d["expanded"] else "expanded"].append(name(m))
    said = [
        f"{' and '.join(v)} {'loses' if len(v) == 1 else 'lose'} more to {k} boxes"
        for k, v in by_side.items()
        if v
    ]
    if said:
        parts.append(f"On mIoU, {'; '.join(said)}.")
    fallbacks = {r["level"]: r.get("fallbacks") for r in rows if r["method"] == subject}
    if fallbacks and all(v is not None for v in fallbacks.values()):
        counts = ", ".join(f"{int(v)} at {100 * k:+.0f}%" for k, v in sorted(fallbacks.items()))
        parts.append(f"{name(subject)}'s objects without a positive proposal: {counts}.")
    return " ".join(parts)


def summary(
    rows: list[dict[str, Any]], levels, titles: dict[str, str] | None = None, subject: str = "bbam"
) -> str:
    """The chapter's summary bullet about this run (Markdown): the method hurt least on each side,
    and whether ``subject`` is hurt least on both (the paper: BBAM degrades less on both)."""
    titles = titles or {}
    sides = {side: least_hurt(rows, side) for side in ("contracted", "expanded")}
    said = "; ".join(
        f"{side} boxes ({100 * level:+.0f}%): {titles.get(m, m)}"
        for (side, m), level in zip(sides.items(), (min(levels), max(levels)), strict=True)
        if m is not None
    )
    won = [side for side, m in sides.items() if m == subject]
    name = titles.get(subject, subject)
    verdict = (
        f"{name} is hurt least on both sides"
        if len(won) == 2
        else f"{name} is hurt least on {won[0]} boxes only"
        if won
        else f"{name} is hurt least on neither side"
    )
    return (
        f"* Least loss of mIoU to noisy boxes: {said}. {verdict} (the paper: BBAM's networks degrade "
        "less than Hsu et al.'s on both sides)."
    )


def paper_comparison(
    rows: list[dict[str, Any]], titles: dict[str, str] | None = None, subject: str = "bbam"
) -> str:
    """This run against the paper's Fig. 7a finding (``subject``, BBAM, degrades less on both
    sides), with the reason each method's design gives (its ``box_noise``) where another method is
    hurt less."""
    from bbam_lite.pseudo.registry import get_method

    titles = titles or {}
    name = lambda m: titles.get(m, m)  # noqa: E731
    if subject not in {r["method"] for r in rows}:
        return f"{name(subject)} is not among this run's methods."
    least = {side: least_hurt(rows, side) for side in ("contracted", "expanded")}
    wins = [side for side, m in least.items() if m == subject]
    if len(wins) == 2:
        head = f"agrees with the paper: {name(subject)}'s mIoU is hurt least on both sides."
    elif wins:
        other = "expanded" if wins[0] == "contracted" else "contracted"
        head = (
            f"agrees with the paper on {wins[0]} boxes only: {name(subject)}'s mIoU is hurt "
            f"least there, not on {other} ones."
        )
    else:
        head = f"goes against the paper: on neither side is {name(subject)}'s mIoU hurt least."
    why = []
    for side, m in least.items():
        if m is not None and m != subject:
            reason = get_method(m).box_noise.get(side)
            if reason:
                why.append(f"{name(m)} is hurt least by {side} boxes because {reason}")
            own = get_method(subject).box_noise.get(f"{side} weakness")
            if own:
                why.append(f"while {name(subject)}: {own}")
    clean = {r["method"]: r["miou"] for r in rows if r["level"] == 0.0}
    ranking = ", ".join(f"{name(m)} {v:.3f}" for m, v in sorted(clean.items(), key=lambda x: -x[1]))
    text = f"This run {head} Clean-box label mIoU: {ranking}."
    if why:
        text += " Why: " + "; ".join(why) + "."
    text += " The paper compares trained networks with Hsu et al.'s, not pseudo labels with box baselines."
    return text
