"""The pool of appearances the synthetic generator paints objects *and* background with.

One pool serves both, so that no colour or texture statistic tells an object from the background
or one class from another: a class is only its shape and the arrangement of its parts. The pool
mixes procedural textures (smooth noise, stripes, blobs, checks, gradients) with crops of the real
photos that install with scikit-image (natural colour statistics, edges and clutter inside a
region, which is what defeats colour-model methods such as GrabCut on real images).
"""

from __future__ import annotations

import functools
import warnings

import cv2
import numpy as np

#: scikit-image sample images bundled in its wheel (no download): colour photos and texture photos.
PHOTO_NAMES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "brick",
    "grass",
    "gravel",
    "rough_wall",
    "camera",
)

KINDS = ("noise", "stripes", "blobs", "checks", "gradient", "photo")


@functools.lru_cache(maxsize=1)
def photos() -> tuple[np.ndarray, ...]:
    """The available sample photos as float32 RGB in [0, 1] (grayscale ones replicated)."""
    import skimage.data

    out = []
    for name in PHOTO_NAMES:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                img = getattr(skimage.data, name)()
        except Exception:  # a sample that needs a download is simply not in the pool
            continue
        img = np.asarray(img)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        img = img[..., :3].astype(np.float32)
        out.append(img / max(float(img.max()), 1.0))
    return tuple(out)


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """A colour drawn uniformly in HSV (saturation and value kept away from the extremes)."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(40, 230), rng.uniform(50, 240)]]], dtype=np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


def _two_tone(field: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    a, b = random_colour(rng), random_colour(rng)
    f = field[..., None]
    return (1 - f) * a + f * b


def _smooth_field(size: int, rng: np.random.Generator, cells: int) -> np.ndarray:
    low = rng.random((cells, cells)).astype(np.float32)
    field = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    field -= field.min()
    return field / max(float(field.max()), 1e-6)


def texture(size: int, rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """One texture, float32 RGB (size, size, 3) in [0, 1]; ``kind`` is drawn from :data:`KINDS` if None."""
    kind = kind or KINDS[rng.integers(len(KINDS))]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == "noise":
        field = 0.6 * _smooth_field(size, rng, int(rng.integers(3, 8))) + 0.4 * _smooth_field(
            size, rng, int(rng.integers(10, 24))
        )
        out = _two_tone(field, rng)
    elif kind == "stripes":
        theta = rng.uniform(0, np.pi)
        freq = rng.uniform(3, 14)
        phase = rng.uniform(0, 2 * np.pi)
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (np.cos(theta) * xx + np.sin(theta) * yy) + phase)
        sharp = rng.uniform(1, 6)
        out = _two_tone(np.clip((wave - 0.5) * sharp + 0.5, 0, 1), rng)
    elif kind == "blobs":
        out = np.empty((size, size, 3), np.float32)
        out[:] = random_colour(rng)
        for _ in range(int(rng.integers(6, 20))):
            c = (int(rng.integers(size)), int(rng.integers(size)))
            r = int(rng.integers(max(2, size // 30), max(3, size // 6)))
            cv2.circle(out, c, r, random_colour(rng).tolist(), -1, lineType=cv2.LINE_AA)
    elif kind == "checks":
        theta = rng.uniform(0, np.pi)
        freq = rng.uniform(3, 10)
        u = np.cos(theta) * xx + np.sin(theta) * yy
        v = -np.sin(theta) * xx + np.cos(theta) * yy
        field = ((np.floor(u * freq) + np.floor(v * freq)) % 2).astype(np.float32)
        out = _two_tone(field, rng)
    elif kind == "gradient":
        theta = rng.uniform(0, 2 * np.pi)
        field = np.cos(theta) * xx + np.sin(theta) * yy
        field = (field - field.min()) / max(float(np.ptp(field)), 1e-6)
        out = _two_tone(field, rng)
    elif kind == "photo":
        pool = photos()
        if not pool:
            return texture(size, rng, "noise")
        img = pool[int(rng.integers(len(pool)))]
        h, w = img.shape[:2]
        crop = int(rng.uniform(0.25, 0.9) * min(h, w))
        y0, x0 = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        out = cv2.resize(img[y0 : y0 + crop, x0 : x0 + crop], (size, size), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:  # recolour, so a photo's palette is no class or background cue
            grey = out.mean(axis=2)
            out = _two_tone((grey - grey.min()) / max(float(np.ptp(grey)), 1e-6), rng)
    else:
        raise ValueError(f"unknown texture kind {kind!r}; expected one of {KINDS}")
    return np.clip(out, 0, 1).astype(np.float32)
