"""Writers for pseudo labels: instance labels as COCO JSON with RLE masks (and ignore regions),
semantic labels as VOC-style palette PNGs with 255 = ignore. Every file is written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from bbam_lite.data.coco import encode_rle, mask_bbox
from bbam_lite.data.voc import voc_palette
from bbam_lite.utils.io import atomic_save, atomic_write_json


def write_semantic_png(path: Path, class_map: np.ndarray) -> None:
    """A VOC-style palette PNG (class id per pixel, 255 = ignore)."""
    im = Image.fromarray(class_map.astype(np.uint8), mode="P")
    im.putpalette(voc_palette())
    atomic_save(Path(path), lambda tmp: im.save(tmp, format="PNG"))


def read_semantic_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im).copy()


def coco_instances(images: list[dict], annotations: list[dict], class_names: list[str]) -> dict:
    """A COCO instances dict; each annotation may carry an ``ignore`` RLE (pixels to skip in training)."""
    return {
        "info": {"description": "bbam-lite pseudo labels"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n} for i, n in enumerate(class_names) if i > 0],
    }


def annotation(
    ann_id: int, image_id: int, label: int, fg: np.ndarray, ignore: np.ndarray, score: float, box: np.ndarray
) -> dict:
    bbox = mask_bbox(fg) or [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": int(label),
        "segmentation": encode_rle(fg),
        "ignore": encode_rle(ignore),
        "area": float(fg.sum()),
        "bbox": bbox,
        "source_box": [float(v) for v in box[:4]],  # the box it was labelled from (x1, y1, x2, y2)
        "iscrowd": 0,
        "score": float(score),
    }


def write_coco_json(path: Path, data: dict) -> None:
    atomic_write_json(Path(path), data)
