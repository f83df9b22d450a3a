"""What each head of the detector looks at (Fig. 4, Fig. 6 of the paper).

* Fig. 4: BBAM with the box head only (1_box = 1, 1_cls = 0), the cls head only, or both; the
  pseudo labels of each are compared (:data:`HEADS` are the switches, read by
  :func:`~bbam_lite.analysis.study.bbam_labels`).
* Fig. 6a/b: the relative position R of a pixel x in an object mask with centroid x_c and contour
  C: r1 = |x - x_c|, r2 = min_{c in C} |x - c|, theta the angle of x - x_c with the x axis, and
  R = r1 / (r1 + r2) (cos theta, sin theta). |R| = 0 at the centroid and 1 on the contour. The paper
  plots R for the pixels whose attribution exceeds 0.9: box head near the boundary, cls head inside.
  R is defined for pixels inside the mask; high-attribution pixels outside it are counted apart.
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


def relative_position(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R of every pixel of ``mask`` (Fig. 6a): returns (R (H, W, 2) as (x, y), |R| (H, W)); NaN outside.

    Coordinates are pixel centres, y pointing down as in the image. The centroid is the mask's mean
    pixel position; r2 is the distance to the nearest contour pixel (0 on the contour, so |R| = 1).
    """
    mask = np.asarray(mask, bool)
    h, w = mask.shape
    R = np.full((h, w, 2), np.nan, np.float64)
    norm = np.full((h, w), np.nan, np.float64)
    if not mask.any():
        return R, norm
    ys, xs = np.nonzero(mask)
    yc, xc = ys.mean(), xs.mean()
    c = contour(mask)
    r2 = ndimage.distance_transform_edt(~c)[ys, xs]
    dx, dy = xs - xc, ys - yc
    r1 = np.hypot(dx, dy)
    denom = r1 + r2
    rel = np.divide(r1, denom, out=np.zeros_like(r1), where=denom > 0)
    theta = np.arctan2(dy, dx)
    R[ys, xs, 0] = rel * np.cos(theta)
    R[ys, xs, 1] = rel * np.sin(theta)
    norm[ys, xs] = rel
    return R, norm


def high_pixel_positions(bbam: np.ndarray, gt: np.ndarray, threshold: float = 0.9) -> dict[str, Any]:
    """R of the pixels with attribution above ``threshold`` inside the mask, and the counts."""
    R, norm = relative_position(gt)
    high = bbam > threshold
    inside = high & gt
    return {
        "R": R[inside],  # (N, 2)
        "norm": norm[inside],  # (N,)
        "all_norm": norm[gt],  # |R| of every mask pixel: what a map without preference would give
        "n_high": int(high.sum()),
        "n_high_outside_mask": int((high & ~gt).sum()),
        "n_mask": int(gt.sum()),
    }


def position_summary(
    maps: Sequence[ObjectMap], threshold: float = 0.9, max_points: int = 4000, seed: int = 0
) -> dict[str, Any]:
    """Fig. 6b for one head: R of the high pixels of all objects (subsampled to ``max_points`` for
    plotting), a histogram of |R|, and the same histogram for all mask pixels as the reference."""
    pts, norms, ref = [], [], []
    n_high = n_out = n_mask = 0
    for m in maps:
        r = high_pixel_positions(m.bbam, m.obj.gt, threshold)
        pts.append(r["R"])
        norms.append(r["norm"])
        ref.append(r["all_norm"])
        n_high += r["n_high"]
        n_out += r["n_high_outside_mask"]
        n_mask += r["n_mask"]
    P = np.concatenate(pts) if pts else np.zeros((0, 2))
    N = np.concatenate(norms) if norms else np.zeros(0)
    A = np.concatenate(ref) if ref else np.zeros(0)
    rng = np.random.default_rng(seed)
    keep = rng.choice(len(P), size=min(len(P), max_points), replace=False) if len(P) else np.zeros(0, int)
    edges = np.linspace(0, 1, 11)
    hist = np.histogram(N, edges)[0]
    ref_hist = np.histogram(A, edges)[0]
    return {
        "threshold": threshold,
        "points": np.round(P[np.sort(keep)], 4).tolist(),
        "edges": edges.tolist(),
        "hist": (hist / max(hist.sum(), 1)).tolist(),
        "reference_hist": (ref_hist / max(ref_hist.sum(), 1)).tolist(),
        "median_norm": float(np.median(N)) if len(N) else float("nan"),
        "reference_median_norm": float(np.median(A)) if len(A) else float("nan"),
        "share_near_boundary": float((N > 0.8).mean()) if len(N) else float("nan"),
        "reference_share_near_boundary": float((A > 0.8).mean()) if len(A) else float("nan"),
        "n_high": n_high,
        "share_high_outside_mask": n_out / n_high if n_high else float("nan"),
        "share_of_mask_high": (n_high - n_out) / n_mask if n_mask else float("nan"),
        "objects": len(maps),
    }


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
