"""Proposal refinement of a pseudo mask (Eq. 4), from MCG proposals or an offline generator.

    T_r = union of m_i over S,  S = {i : m_i inside T} U {argmax_i IoU(m_i, T)}

Mask proposals come from either

* the precomputed MCG proposals of Pont-Tuset et al. when the user has them: one ``<image>.mat``
  per image with ``superpixels`` (H x W ids), ``labels`` (a cell array: the superpixel ids of each
  proposal) and ``scores``, as published for VOC 2012 and COCO; or
* :func:`grouping_proposals`: an offline, unsupervised stand-in (Felzenszwalb segmentations at
  several scales and their selective-search-style hierarchical grouping), used when MCG files are
  absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bbam_lite.data.records import DataError


def read_mcg(path: Path, top_k: int | None = None) -> np.ndarray:
    """Masks (K, H, W) bool of one image's MCG proposals, best-scored first."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: MCG proposal file not found")
    try:
        mat = loadmat(path)
        sp = np.asarray(mat["superpixels"])
        labels = [np.asarray(v).ravel() for v in np.asarray(mat["labels"], dtype=object).ravel()]
        scores = np.asarray(mat.get("scores", np.zeros(len(labels)))).ravel()
    except Exception as exc:  # scipy raises MatReadError, ValueError, KeyError, ... on foreign files
        raise DataError(f"{path}: not an MCG proposal file with superpixels/labels ({exc})") from None
    order = np.argsort(-scores, kind="stable") if len(scores) == len(labels) else np.arange(len(labels))
    if top_k is not None:
        order = order[:top_k]
    return np.array([np.isin(sp, labels[i]) for i in order], bool).reshape(-1, *sp.shape)


def hierarchical_grouping(image: np.ndarray, segments: np.ndarray) -> list[np.ndarray]:
    """Selective-search-style grouping: starting from ``segments``, repeatedly merge the adjacent
    pair with the most similar mean colour (small regions first), recording every merged region."""
    h, w = segments.shape
    n = int(segments.max()) + 1
    flat = segments.ravel()
    size = np.bincount(flat, minlength=n).astype(np.float64)
    colour = np.stack(
        [np.bincount(flat, weights=image[..., c].ravel().astype(np.float64), minlength=n) for c in range(3)],
        1,
    )
    masks = {i: segments == i for i in range(n)}
    pairs = np.concatenate(
        [
            np.stack([segments[:, :-1].ravel(), segments[:, 1:].ravel()], 1),
            np.stack([segments[:-1, :].ravel(), segments[1:, :].ravel()], 1),
        ]
    )
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    neigh: dict[int, set[int]] = {i: set() for i in range(n)}
    for a, b in np.unique(np.sort(pairs, axis=1), axis=0):
        neigh[int(a)].add(int(b))
        neigh[int(b)].add(int(a))
    size = list(size)
    colour = list(colour)
    total = float(h * w)

    def sim(a: int, b: int) -> float:
        d = np.linalg.norm(colour[a] / size[a] - colour[b] / size[b]) / 441.7
        return -(d + (size[a] + size[b]) / total)

    out = []
    alive = set(range(n))
    while len(alive) > 1:
        cands = [(sim(a, b), a, b) for a in alive for b in neigh[a] if a < b]
        if not cands:
            break
        _, a, b = max(cands)
        new = len(size)
        size.append(size[a] + size[b])
        colour.append(colour[a] + colour[b])
        masks[new] = masks.pop(a) | masks.pop(b)
        neigh[new] = (neigh.pop(a) | neigh.pop(b)) - {a, b}
        for k in neigh[new]:
            neigh[k] -= {a, b}
            neigh[k].add(new)
        alive -= {a, b}
        alive.add(new)
        out.append(masks[new])
    return out


def grouping_proposals(
    image: np.ndarray, scales: tuple[float, ...] = (100, 300), min_size: int = 20
) -> np.ndarray:
    """Unsupervised mask proposals (an offline stand-in for MCG): Felzenszwalb segments at several
    scales and every region of their hierarchical grouping. Returns (K, H, W) bool."""
    from skimage.segmentation import felzenszwalb

    h, w = image.shape[:2]
    size_factor = np.sqrt(h * w) / 400.0  # the scales are for images of about 400 x 400 px
    masks: list[np.ndarray] = []
    for scale in scales:
        seg = felzenszwalb(
            image, scale=scale * size_factor, sigma=0.8, min_size=max(int(min_size * size_factor), 5)
        )
        masks += [seg == i for i in range(int(seg.max()) + 1)]
        masks += hierarchical_grouping(image, seg)
    return np.array(masks, bool).reshape(-1, h, w)


def refine_with_proposals(
    mask: np.ndarray,
    proposals: np.ndarray,
    containment: float = 1.0,
    box: np.ndarray | None = None,
    best_inside_box: float | None = None,
) -> np.ndarray:
    """Eq. 4: the union of proposals inside ``mask`` (fraction inside >= ``containment``) and the
    proposal of highest IoU with ``mask``. With ``box``, the result is clipped to the box.

    The authors' code (``containment=0.95, best_inside_box=0.95``) takes the best-IoU proposal only
    among proposals at least 95% inside the box.
    """
    if not mask.any() or len(proposals) == 0:
        return mask.copy()
    from bbam_lite.pseudo.labels import box_region

    flat = proposals.reshape(len(proposals), -1)
    m = mask.ravel()
    inter = flat[:, m].sum(1).astype(np.float64)
    area = flat.sum(1).astype(np.float64)
    iou = inter / np.maximum(area + m.sum() - inter, 1)
    inside = (area > 0) & (inter >= containment * area - 1e-9)
    region = box_region(box, *mask.shape).ravel() if box is not None else None
    if best_inside_box is not None and region is not None:
        in_box = flat[:, region].sum(1) >= best_inside_box * area - 1e-9
        iou = np.where(in_box, iou, -1.0)
    chosen = inside.copy()
    if iou.max() > 0:
        chosen[int(np.argmax(iou))] = True
    out = flat[chosen].any(0)
    if region is not None:
        out &= region
    return out.reshape(mask.shape)


def mask_proposals(image: np.ndarray, image_path: Path, mcg_dir: str | Path | None) -> np.ndarray:
    """The mask proposals of one image: its MCG file ``MCG_DIR/<image stem>.mat`` when ``mcg_dir``
    is given, else :func:`grouping_proposals`."""
    if mcg_dir:
        return read_mcg(Path(mcg_dir) / f"{Path(image_path).stem}.mat")
    return grouping_proposals(image)
