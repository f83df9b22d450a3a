"""The memory a method's per-image CPU work needs, and the budget that bounds it.

Each method declares ``memory_per_pixel`` (bytes per image pixel of its CPU stage, measured with
``scripts/bench_memory.py``: GrabCut 213, Box + CRF 233, Box 42 at the lite profile, 2026-12-04,
AMD EPYC; MCG + GrabCut about 1000; the process's own ~0.35 GB of imports are not counted) and 8
more bytes per pixel per object
(its masks and map). :func:`plan` compares each image's estimate with the budget (``pseudo-labels
--memory-budget``, default half the memory available when the run starts; a method may refine
its estimate in ``memory_bytes``): an image above it is
labelled at a reduced scale and its labels resized back to the image (nearest neighbour; a
one-line warning names the images, and each object's info records ``"scale"``), and no more
workers run at once than the budget holds. Images within the budget are labelled as before, byte for
byte.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

#: Bytes per pixel per object (fg and ignore masks, a float map) on top of the method's own.
PER_OBJECT_PIXEL = 8.0

_UNITS = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def parse_size(text: str | int | float) -> int:
    """Bytes from ``4G``, ``500M``, ``1.5G`` or a plain number; one-line ``ValueError`` otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", str(text), flags=re.I)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"--memory-budget must be a size such as 4G or 500M, got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable`` on Linux; physical memory elsewhere)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 10**9


def default_budget() -> int:
    """Half the memory available when the run starts."""
    return available_memory() // 2


def gigabytes(n: float) -> str:
    """A size for messages: ``1.5 GB``, ``230 MB``."""
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.3g} MB"


@dataclass
class MemoryPlan:
    """Per image id the scale it is labelled at (only those below 1), and the workers at once."""

    budget: int
    workers: int
    scales: dict[int, float] = field(default_factory=dict)
    largest: int = 0  # the largest estimate of an image at the scale it is labelled at


def plan(settings, recs, budget: int, workers: int) -> MemoryPlan:
    """Scales and workers for ``recs`` labelled with ``settings`` within ``budget`` bytes (see the
    module docstring)."""
    method = settings.method_obj

    def estimate(h: int, w: int, n: int) -> int:
        return method.memory_bytes(settings, h, w, n)

    scales, largest = {}, 0
    for rec in recs:
        need = estimate(rec.height, rec.width, len(rec.boxes))
        if need > budget:
            s = max(math.floor(math.sqrt(budget / need) * 64) / 64, 1 / 64)  # pixels: its square
            while (
                s > 1 / 64 and estimate(round(rec.height * s), round(rec.width * s), len(rec.boxes)) > budget
            ):
                s -= 1 / 64  # rounding the size up may cross the budget
            scales[rec.image_id] = s
            need = estimate(round(rec.height * s), round(rec.width * s), len(rec.boxes))
        largest = max(largest, need)
    if scales and (settings.mcg_dir or settings.maps_from):
        given = "--mcg-dir (MCG proposal files)" if settings.mcg_dir else "--maps-from (stored maps)"
        raise ValueError(
            f"{len(scales)} images need more than --memory-budget {gigabytes(budget)} and would be "
            f"labelled at a reduced scale, which {given} does not allow; raise --memory-budget"
        )
    at_once = max(1, min(workers, budget // max(largest, 1)))
    return MemoryPlan(budget, int(at_once), scales, largest)


def downscale(item, scale: float):
    """The image and its boxes at ``scale`` (area interpolation), the record's size with them."""
    import cv2

    h, w = item.shape
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    image = cv2.resize(item.image, (sw, sh), interpolation=cv2.INTER_AREA)
    fx, fy = sw / w, sh / h
    boxes = (np.asarray(item.boxes, np.float32).reshape(-1, 4) * np.float32([fx, fy, fx, fy])).astype(
        np.float32
    )
    record = replace(item.record, width=sw, height=sh, boxes=boxes)
    return replace(item, record=record, image=image, boxes=boxes)


def upscale(labels, small, full_record, full_boxes: np.ndarray, scale: float):
    """``labels`` of the downscaled ``small`` image resized back to ``full_record``'s size: masks
    by nearest neighbour, maps linearly, boxes the image's own; each object's info gets ``scale``."""
    import cv2

    size = (full_record.width, full_record.height)

    def mask(m: np.ndarray) -> np.ndarray:
        return cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)

    instances = []
    fh, fw = full_record.height / small.shape[0], full_record.width / small.shape[1]
    for k, inst in enumerate(labels.instances):
        box = full_boxes[k] if len(labels.instances) == len(full_boxes) else inst.box * [fw, fh, fw, fh]
        info = {**inst.info, "scale": scale}
        instances.append(
            replace(
                inst, box=np.asarray(box, np.float32), fg=mask(inst.fg), ignore=mask(inst.ignore), info=info
            )
        )
    info = [{**i, "scale": scale} for i in labels.info]
    maps = {
        k: np.stack(
            [cv2.resize(m.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) for m in v]
        ).astype(v.dtype)
        if len(v)
        else v.reshape(0, full_record.height, full_record.width)
        for k, v in labels.maps.items()
    }
    return replace(labels, instances=instances, info=info, maps=maps)
