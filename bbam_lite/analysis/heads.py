"""What each head of the detector looks at (Fig. 4, Fig. 6 of the paper).

* Fig. 4: BBAM with the box head only (1_box = 1, 1_cls = 0), the cls head only, or both; the
  pseudo labels of each are compared (:data:`HEADS` are the switches, read by
  :func:`~bbam_lite.analysis.study.bbam_labels`).
* Fig. 6a/b: the relative position R of a pixel x in an object mask with centroid x_c and contour
  C: r1 = |x - x_c|, r2 = min_{c in C} |x - c|, theta the angle of x - x_c with the x axis, and
  R = r1 / (r1 + r2) (cos theta, sin theta). |R| = 0 at the centroid and 1 on the contour. The paper
  plots R for the pixels whose attribution exceeds 0.9: box head near the boundary, cls head inside.
  High pixels can lie outside the object (the box head needs the background at the object's edge):
  there we continue R with r1 / (r1 - r2), which equals r / rho on a disc, as inside.
* Fig. 6c: the loss of each head while only the other head is optimised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from bbam_lite.analysis.study import ObjectMap, StudyObject
from bbam_lite.attribution.bbam import BBAMConfig, explain

#: BBAMConfig switches of Fig. 4: which heads' losses the mask must preserve.
HEADS: dict[str, dict[str, bool]] = {
    "box head only": {"use_box": True, "use_cls": False},
    "cls head only": {"use_box": False, "use_cls": True},
    "both heads": {"use_box": True, "use_cls": True},
}


def contour(mask: np.ndarray) -> np.ndarray:
    """The mask's contour C: its pixels with a 4-neighbour outside the mask (or on the image border)."""
    mask = np.asarray(mask, bool)
    interior = ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(2, 1), border_value=0)
    return mask & ~interior


#: |R| beyond which pixels are drawn (and counted) at this value: twice the way to the contour.
R_MAX = 2.0


def relative_position(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R of every pixel relative to ``mask`` (Fig. 6a): returns (R (H, W, 2) as (x, y), |R| (H, W)).

    Inside the mask, the paper's definition: |R| = r1 / (r1 + r2), 0 at the centroid and 1 on the
    contour. Outside it (the paper plots only high pixels, which can lie outside the object), the
    continuation |R| = r1 / (r1 - r2): 1 on the contour and growing outwards; for a disc of radius
    rho both give r / rho at distance r from the centre. Where r1 <= r2 outside the mask (possible
    only for shapes whose centroid lies outside them) |R| is NaN. Coordinates are pixel centres, y
    pointing down as in the image; the centroid is the mask's mean pixel position and r2 the distance
    to the nearest contour pixel. Everything is NaN for an empty mask.
    """
    mask = np.asarray(mask, bool)
    h, w = mask.shape
    R = np.full((h, w, 2), np.nan, np.float64)
    norm = np.full((h, w), np.nan, np.float64)
    if not mask.any():
        return R, norm
    ys, xs = np.nonzero(mask)
    yc, xc = ys.mean(), xs.mean()
    r2 = ndimage.distance_transform_edt(~contour(mask))
    yy, xx = np.mgrid[:h, :w]
    dx, dy = xx - xc, yy - yc
    r1 = np.hypot(dx, dy)
    inside_den = r1 + r2
    outside_den = r1 - r2
    rel = np.where(
        mask,
        np.divide(r1, inside_den, out=np.zeros_like(r1), where=inside_den > 0),
        np.divide(r1, outside_den, out=np.full_like(r1, np.nan), where=outside_den > 0),
    )
    theta = np.arctan2(dy, dx)
    R[..., 0] = rel * np.cos(theta)
    R[..., 1] = rel * np.sin(theta)
    return R, rel


def high_pixel_positions(
    bbam: np.ndarray, gt: np.ndarray, box: np.ndarray, threshold: float = 0.9, relative: bool = False
) -> dict[str, Any]:
    """R of the pixels of the object's box with attribution above ``threshold``, and the counts.

    The box is the region a pseudo label is cut from; high pixels elsewhere in the image (context
    the detector also uses) are counted, not placed. ``relative`` compares ``threshold`` with the
    map divided by its maximum inside the box instead of the map itself (BBAM's values are not
    calibrated across settings: a short optimisation or a large lambda can leave no pixel above an
    absolute 0.9)."""
    from bbam_lite.pseudo.labels import box_region

    R, norm = relative_position(gt)
    region = box_region(box, *gt.shape)
    if relative:
        top = float(bbam[region].max()) if region.any() else 0.0
        bbam = bbam / top if top > 0 else bbam
    high = bbam > threshold
    placed = high & region & np.isfinite(norm)
    return {
        "R": R[placed],  # (N, 2)
        "norm": norm[placed],  # (N,)
        "all_norm": norm[region & np.isfinite(norm)],  # every box pixel: a map without preference
        "n_high": int(high.sum()),
        "n_high_in_box": int((high & region).sum()),
        "n_high_in_mask": int((high & gt).sum()),
        "n_mask": int(gt.sum()),
        "n_box": int(region.sum()),
    }


def _clip_norm(P: np.ndarray, r_max: float) -> np.ndarray:
    n = np.hypot(P[:, 0], P[:, 1])
    scale = np.where(n > r_max, r_max / np.maximum(n, 1e-12), 1.0)
    return P * scale[:, None]


def position_summary(
    maps: Sequence[ObjectMap],
    threshold: float = 0.9,
    relative: bool = False,
    max_points: int = 4000,
    seed: int = 0,
) -> dict[str, Any]:
    """Fig. 6b for one head: R of the high pixels in the objects' boxes (subsampled to ``max_points``
    for plotting, |R| clipped at :data:`R_MAX`), a histogram of |R|, and the histogram of all box
    pixels as the reference a map without preference would give."""
    pts, norms, ref = [], [], []
    n_high = n_box_high = n_mask_high = n_mask = n_box = 0
    for m in maps:
        r = high_pixel_positions(m.bbam, m.obj.gt, m.obj.box, threshold, relative)
        pts.append(r["R"])
        norms.append(r["norm"])
        ref.append(r["all_norm"])
        n_high += r["n_high"]
        n_box_high += r["n_high_in_box"]
        n_mask_high += r["n_high_in_mask"]
        n_mask += r["n_mask"]
        n_box += r["n_box"]
    P = np.concatenate(pts) if pts else np.zeros((0, 2))
    N = np.minimum(np.concatenate(norms), R_MAX) if norms else np.zeros(0)
    A = np.minimum(np.concatenate(ref), R_MAX) if ref else np.zeros(0)
    rng = np.random.default_rng(seed)
    keep = rng.choice(len(P), size=min(len(P), max_points), replace=False) if len(P) else np.zeros(0, int)
    edges = np.linspace(0, R_MAX, 21)
    hist = np.histogram(N, edges)[0]
    ref_hist = np.histogram(A, edges)[0]

    def near(x: np.ndarray) -> float:
        return float(((x > 0.8) & (x <= 1.25)).mean()) if len(x) else float("nan")

    return {
        "threshold": threshold,
        "relative": relative,
        "points": np.round(_clip_norm(P[np.sort(keep)], R_MAX), 4).tolist(),
        "edges": edges.tolist(),
        "hist": (hist / max(hist.sum(), 1)).tolist(),
        "reference_hist": (ref_hist / max(ref_hist.sum(), 1)).tolist(),
        "median_norm": float(np.median(N)) if len(N) else float("nan"),
        "reference_median_norm": float(np.median(A)) if len(A) else float("nan"),
        "share_near_boundary": near(N),  # 0.8 < |R| <= 1.25: a band around the contour
        "reference_share_near_boundary": near(A),
        "share_inside_mask": float((N <= 1).mean()) if len(N) else float("nan"),
        "reference_share_inside_mask": float((A <= 1).mean()) if len(A) else float("nan"),
        "n_high": n_high,
        "share_high_outside_box": (n_high - n_box_high) / n_high if n_high else float("nan"),
        "share_of_box_high": n_box_high / n_box if n_box else float("nan"),
        "share_of_mask_high": n_mask_high / n_mask if n_mask else float("nan"),
        "objects": len(maps),
    }


#: Objects whose loss curves Fig. 6c follows, per profile (each is three BBAM optimisations).
CURVE_OBJECTS = {"smoke": 1, "lite": 3}


def curve_objects(profile: str) -> int:
    """How many objects Fig. 6c follows at a profile (6 at ``full``)."""
    return CURVE_OBJECTS.get(profile, 6)


def loss_curves(
    model: torch.nn.Module,
    objects: Sequence[StudyObject],
    cfg: BBAMConfig,
    mean: torch.Tensor,
    device: str = "cpu",
    heads: dict[str, dict[str, bool]] = HEADS,
) -> dict[str, dict[str, Any]]:
    """Fig. 6c: per head setting, both heads' perturbation losses per iteration, averaged over objects.

    ``optimise`` computes both losses even for the head that is switched off, so the curve of the
    head left out shows what happens to its output while the other head's mask is optimised.
    """
    tasks = [o.task(device) for o in objects]
    out = {}
    for name, switches in heads.items():
        results = explain(model, tasks, replace(cfg, **switches), mean, record=("losses",))
        box = np.mean([r.history["box"] for r in results], 0)
        cls = np.mean([r.history["cls"] for r in results], 0)
        l1 = np.mean([np.asarray(r.history["l1"]) / r.mask.size for r in results], 0)
        out[name] = {
            "box": box.tolist(),
            "cls": cls.tolist(),
            "mask_mean": l1.tolist(),  # |M|_1 / cells: the mean mask value
            "objects": len(results),
            "fallbacks": sum(r.fallback is not None for r in results),
        }
    return out


def left_out_losses(curves: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Fig. 6c's claim in numbers: each head's final loss when its own term is optimised, when only
    the other head's term is, and when both are, and the ratio left-out / optimised (> 1: the mask
    that keeps the other head's output changes this head's output more). The heads' losses have
    different scales (4 deltas against C + 1 probabilities), so each is compared with itself."""
    own = {"box": "box head only", "cls": "cls head only"}
    other = {"box": "cls head only", "cls": "box head only"}
    rows = []
    for head in ("box", "cls"):
        opt, left = curves[own[head]][head][-1], curves[other[head]][head][-1]
        rows.append(
            {
                "head": head,
                "optimised": float(opt),
                "left_out": float(left),
                "both": float(curves["both heads"][head][-1]) if "both heads" in curves else float("nan"),
                "ratio": float(left / opt) if opt > 0 else float("inf"),
            }
        )
    return rows


def example_object(objects: Sequence[StudyObject]) -> StudyObject:
    """The largest object whose mask does not touch the image border (its contour is then all its
    own), or the largest object when every mask touches the border."""

    def inner(o: StudyObject) -> bool:
        g = o.gt
        return not (g[0].any() or g[-1].any() or g[:, 0].any() or g[:, -1].any())

    pool = [o for o in objects if inner(o)] or list(objects)
    return max(pool, key=lambda o: int(o.gt.sum()))


# -- what this run shows, in words chosen by its numbers (the chapter's generated sentences) --

_SHORT = {
    "box head only": "the box head alone",
    "cls head only": "the class head alone",
    "both heads": "both heads",
}


def _noise_note(objects: int) -> str:
    return (
        f"With {objects} objects, one object moves a mean IoU by up to {1 / objects:.2f}, so an "
        "ordering decided by a few hundredths is not settled at this scale."
        if objects
        else ""
    )


def label_verdict(rows: list[dict[str, Any]], short: bool = False) -> str:
    """Fig. 4 in this run: which setting gives the best labels on each score, against the paper
    (both heads best on instance and semantic scores), with the reasons the design offers;
    ``short``: the verdict alone."""
    by = {r["setting"]: r for r in rows}
    both = by["both heads"]
    singles = [by[n] for n in ("box head only", "cls head only")]
    parts, wins = [], {}
    for key, title in (("miou", "mIoU"), ("mean_instance_iou", "Mean instance IoU")):
        best = max(singles, key=lambda r: r[key])
        wins[key] = both[key] > best[key]
        listed = ", ".join(f"{_SHORT[r['setting']]} {r[key]:.3f}" for r in (*singles, both))
        parts.append(
            f"{title}: {listed}; "
            + (
                f"both heads beat the best single head by {both[key] - best[key]:.3f}"
                if wins[key]
                else f"{_SHORT[best['setting']]} beats both heads by {best[key] - both[key]:.3f}"
            )
            + "."
        )
    if all(wins.values()):
        head = "This run agrees with the paper's Fig. 4: both heads together give the best labels."
    elif any(wins.values()):
        won = "mIoU" if wins["miou"] else "mean instance IoU"
        head = f"This run agrees with the paper's Fig. 4 on {won} only."
    else:
        head = "This run goes against the paper's Fig. 4: a single head gives better labels than both."
    text = f"{head} " + " ".join(parts)
    if short:
        return head
    if not all(wins.values()):
        text += (
            " Why it can: the authors' code (the default) cuts each label from area quantiles of the "
            "map inside the box and refines it with the dense CRF, so a label depends on how the "
            "map *ranks* the box's pixels, not on how much of the object it covers, which is where "
            "a second head's pixels would help; the paper also scores networks trained on VOC labels, "
            "not the labels. " + _noise_note(int(both.get("objects", 0)))
        )
    return text


def position_verdict(box: dict[str, Any], cls: dict[str, Any], short: bool = False) -> str:
    """Fig. 6b in this run: where the box head's and the class head's strongest pixels lie
    (:func:`position_summary` of each), against the paper (box head at the contour, class head
    inside), with the reasons the design offers where it goes against it; ``short``: the verdict
    with the two medians."""
    b, c, ref = box["median_norm"], cls["median_norm"], box["reference_median_norm"]
    if np.isnan(b) or np.isnan(c):
        return "A head's maps have no pixel above the threshold in any box: Fig. 6b cannot be read here."
    closer, inner = abs(b - 1) < abs(c - 1), c < b
    numbers = (
        f"Median ‖R‖ of the strongest pixels: box head {b:.2f}, class head {c:.2f}, all box pixels "
        f"{ref:.2f}; inside the object: {box['share_inside_mask']:.0%} of the box head's strongest "
        f"pixels, {cls['share_inside_mask']:.0%} of the class head's "
        f"({box['reference_share_inside_mask']:.0%} of all box pixels)."
    )
    if short:
        numbers = f"Median ‖R‖ of the strongest pixels: box head {b:.2f}, class head {c:.2f}."
    if closer and inner:
        return (
            f"{numbers} As in the paper's Fig. 6b, the box head's strongest pixels lie closer to the "
            "contour and the class head's further inside the object."
        )
    if inner:
        verdict = (
            "the class head's strongest pixels lie further inside than the box head's, as in the "
            "paper, but the box head's are not nearer the contour: they lie beyond it, outside the object"
        )
    elif closer:
        verdict = (
            "the box head's strongest pixels lie nearer the contour, as in the paper, but the class "
            "head's lie beyond it, outside the object, not in its interior"
        )
    else:
        verdict = (
            "the box head's strongest pixels lie further inside the object than the class head's, "
            "the reverse of the paper's finding"
        )
    if short:
        return f"{numbers} This goes against the paper's Fig. 6b: {verdict}."
    return (
        f"{numbers} This goes against the paper's Fig. 6b: {verdict}. Why it can: the synthetic "
        "objects are flat-coloured shapes, so their class is carried by their outline and colour, "
        "not by discriminative interior parts as on VOC; and the strongest pixels are "
        f"{box['share_of_box_high']:.1%} and {cls['share_of_box_high']:.1%} of the box pixels of "
        f"{box['objects']} objects, a sample in which a few objects decide the medians."
    )


def left_out_verdict(left: list[dict[str, Any]]) -> str:
    """Fig. 6c in this run (:func:`left_out_losses`): is each head's loss larger when the mask is
    shaped for the other head only, as the paper finds?"""
    said = [
        f"the {'class' if r['head'] == 'cls' else r['head']} head's loss is {r['ratio']:.1f}x "
        + ("larger" if r["ratio"] > 1 else "its own-term value (not larger)")
        + " when it is left out of the objective"
        for r in left
    ]
    holds = [r["ratio"] > 1 for r in left]
    if all(holds):
        head = "As in the paper's Fig. 6c, the two data terms are not redundant"
    elif any(holds):
        head = "This run agrees with the paper's Fig. 6c for one head only"
    else:
        head = "This run goes against the paper's Fig. 6c: neither head's loss grows when it is left out"
    text = f"{head}: {'; '.join(said)}."
    if not all(holds):
        text += (
            " Where the ratio is not above 1, the mask kept for the other head also keeps what this "
            "head needs: on objects this simple, the pixels that fix the box may be the ones that "
            "fix the class."
        )
    return text


def _and(names: list[str]) -> str:
    return " and ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} and {names[-1]}"


def threshold_verdict(
    summaries: dict[tuple[str, bool], dict[str, Any]], low: dict[str, dict[str, Any]]
) -> str:
    """Exercise 7.2: does each head's median ‖R‖ move towards the median of all box pixels when the
    relative threshold is lowered (``low``: :func:`position_summary` at the lower threshold)?"""
    toward, away = [], []
    for name, s in low.items():
        hi = summaries[name, True]
        ref = hi["reference_median_norm"]
        (toward if abs(s["median_norm"] - ref) < abs(hi["median_norm"] - ref) else away).append(name)
    text = "Here the median moves towards that of all box pixels for " + (_and(toward) or "no setting")
    if away:
        text += f", but not for {_and(away)} (it ends as far from it or farther)"
    grew = all(low[n]["share_of_box_high"] >= summaries[n, True]["share_of_box_high"] for n in low)
    return text + (
        "; the share of box pixels selected grows for every setting, as it must."
        if grew
        else "; the share of box pixels selected does not grow for every setting."
    )


def mask_size_verdict(curves: dict[str, dict[str, Any]]) -> str:
    """Exercise 7.3: does the both-heads mask end at least as large as the larger single-head mask,
    and is the single head whose left-out partner's loss climbs most (ratio of
    :func:`left_out_losses`) the one with the smaller mask?"""
    end = {n: c["mask_mean"][-1] for n, c in curves.items()}
    singles = ("box head only", "cls head only")
    larger = max(singles, key=end.__getitem__)
    grows = end["both heads"] >= end[larger]
    text = (
        f"Here both heads end with a mean mask value of {end['both heads']:.3f}, "
        + ("at least" if grows else "less than")
        + f" the larger single-head mask ({larger}, {end[larger]:.3f}): the tendency "
        + ("holds" if grows else "does not hold")
        + "."
    )
    ratio = {r["head"]: r["ratio"] for r in left_out_losses(curves)}
    # the setting that optimises one head leaves the other out: box only leaves cls out
    climbs = "box head only" if ratio["cls"] > ratio["box"] else "cls head only"
    smaller = min(singles, key=end.__getitem__)
    return text + (
        f" The partner's loss climbs most under {climbs}, "
        + ("which is" if climbs == smaller else "which is not")
        + " the setting with the smaller mask."
    )


def summary(
    rows: list[dict[str, Any]], box: dict[str, Any], cls: dict[str, Any], left: list[dict[str, Any]]
) -> str:
    """ "What this chapter shows": the three findings of this run against the paper, as bullets."""
    return "\n".join(
        (
            f"* **Fig. 4, labels from each head.** {label_verdict(rows, short=True)}",
            f"* **Fig. 6b, where the strongest pixels lie.** {position_verdict(box, cls, short=True)}",
            f"* **Fig. 6c, the left-out head's loss.** {left_out_verdict(left)}",
        )
    )
