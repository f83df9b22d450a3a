"""COCO-style instance annotations (COCO 2017, and every set written in that format).

Boxes come from ``bbox`` (x, y, w, h); masks from ``segmentation`` (polygons, uncompressed or
compressed RLE) through pycocotools. Category ids, which need not be contiguous (COCO's run
1..90), are mapped to contiguous ids 1..K in increasing category-id order. ``iscrowd`` annotations
are not objects (as in COCO's own evaluation) and are left out, counted.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from bbam_lite.data.records import (
    BoxDataset,
    DataError,
    ImageRecord,
    ItemTally,
    check_unique_ids,
    clean_boxes,
)
from bbam_lite.data.registry import DatasetReader, annotation_splits, register_reader


def load_coco_json(ann_file: Path) -> dict:
    """Parse and shape-check a COCO instances file; one-line :class:`DataError` otherwise."""
    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise DataError(f"{ann_file}: annotation file not found")
    try:
        with open(ann_file, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{ann_file}: not a JSON file ({exc})") from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise DataError(
            f"{ann_file}: not a COCO instances file (needs lists 'images', 'annotations', 'categories')"
        )
    return data


def encode_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE of a boolean mask, JSON-ready (counts as str)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: dict) -> np.ndarray:
    """Inverse of :func:`encode_rle`."""
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)


def mask_bbox(mask: np.ndarray) -> list[float] | None:
    """Tight COCO box (x, y, w, h) of a boolean mask's pixels; None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1 - xs.min()), float(ys.max() + 1 - ys.min())]


def safe_join(root: Path, relative: str, where: str) -> Path:
    """``root / relative``, refusing absolute paths and paths that climb out of ``root``."""
    rel = Path(relative)
    if rel.is_absolute() or ".." in rel.parts:
        raise DataError(f"{where}: file name {relative!r} points outside the data root")
    return root / rel


def _decode_masks(anns: list[dict], height: int, width: int, where: str) -> np.ndarray:
    masks = np.zeros((len(anns), height, width), dtype=bool)
    for k, ann in enumerate(anns):
        seg = ann["segmentation"]
        try:
            if isinstance(seg, list):
                rles = mask_utils.frPyObjects(seg, height, width)
                rle = mask_utils.merge(rles)
            elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):
                rle = mask_utils.frPyObjects(seg, *seg["size"])
            else:
                rle = seg
            if list(rle["size"]) != [height, width]:
                raise DataError(
                    f"{where}: mask of annotation {ann.get('id')} is {rle['size'][1]}x{rle['size'][0]}, "
                    f"image is {width}x{height}"
                )
            masks[k] = mask_utils.decode(rle).astype(bool)
        except DataError:
            raise
        except Exception as exc:  # pycocotools raises bare TypeError/ValueError on malformed input
            raise DataError(f"{where}: cannot decode mask of annotation {ann.get('id')} ({exc})") from None
    return masks


def _bbox(ann: dict, where: str) -> list[float]:
    """An annotation's ``bbox`` as 4 floats (None becomes NaN, so that clean_boxes reports it)."""
    bbox = ann.get("bbox", [None] * 4)
    try:
        if len(bbox) != 4:
            raise ValueError
        return [np.nan if v is None else float(v) for v in bbox]
    except (TypeError, ValueError):
        raise DataError(f"{where}: annotation {ann.get('id')} has bbox {bbox!r}, not 4 numbers") from None


def read_coco(ann_file: Path, image_dir: Path, name: str | None = None) -> BoxDataset:
    """Read a COCO instances JSON and the folder its ``file_name`` entries are relative to."""
    ann_file, image_dir = Path(ann_file), Path(image_dir)
    data = load_coco_json(ann_file)
    if not image_dir.is_dir():
        raise DataError(f"{image_dir}: image folder not found")
    tally = ItemTally(str(ann_file))

    cats = sorted(data["categories"], key=lambda c: c["id"])
    cat_to_label = {c["id"]: i + 1 for i, c in enumerate(cats)}
    class_names = ["background"] + [str(c["name"]) for c in cats]

    check_unique_ids([img["id"] for img in data["images"]], str(ann_file))
    by_image: dict[int, list[dict]] = {img["id"]: [] for img in data["images"]}
    for ann in data["annotations"]:
        if ann.get("image_id") not in by_image:
            raise DataError(
                f"{ann_file}: annotation {ann.get('id')} refers to unknown image id {ann.get('image_id')}"
            )
        if ann.get("category_id") not in cat_to_label:
            raise DataError(
                f"{ann_file}: annotation {ann.get('id')} has category id {ann.get('category_id')}, "
                f"not in the category list {sorted(cat_to_label)}"
            )
        if ann.get("iscrowd", 0):
            tally.add("crowd annotations left out", items=[f"annotation {ann.get('id')}"])
            continue
        by_image[ann["image_id"]].append(ann)

    records = []
    for img in data["images"]:
        where = f"{ann_file} (image id {img['id']}, {img.get('file_name')})"
        try:
            width, height = int(img["width"]), int(img["height"])
            file_name = str(img["file_name"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{where}: image entry needs file_name, width and height") from None
        path = safe_join(image_dir, file_name, where)
        if not path.is_file():
            raise DataError(f"{path}: image file not found (listed in {ann_file})")
        anns = by_image[img["id"]]
        xywh = np.array([_bbox(a, where) for a in anns], dtype=np.float64).reshape(-1, 4)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        names = [f"annotation {a.get('id')}" for a in anns]
        written = [f"bbox {json.dumps(a.get('bbox'))} (x, y, w, h)" for a in anns]
        boxes, keep = clean_boxes(xyxy, width, height, where, tally, names, written)
        if len(keep) == 0:
            tally.add("images without objects skipped", items=[f"image id {img['id']} ({file_name})"])
            continue
        kept = [anns[i] for i in keep]
        labels = np.array([cat_to_label[a["category_id"]] for a in kept], dtype=np.int64)
        loader = None
        if all(a.get("segmentation") for a in kept):

            def loader(kept=kept, height=height, width=width, where=where):
                return _decode_masks(kept, height, width, where)

        records.append(ImageRecord(int(img["id"]), path, width, height, boxes, labels, loader))
    tally.warn()
    return BoxDataset(records, class_names, name or ann_file.stem, image_dir)


def coco_ground_truth(dataset: BoxDataset, use_masks: bool = False):
    """A pycocotools ``COCO`` object built in memory from a dataset (for COCOeval)."""
    from pycocotools.coco import COCO

    images, anns = [], []
    for rec in dataset:
        images.append(
            {"id": rec.image_id, "width": rec.width, "height": rec.height, "file_name": rec.path.name}
        )
        masks = rec.load_masks() if use_masks else None
        for k, (box, label) in enumerate(zip(rec.boxes, rec.labels, strict=True)):
            x1, y1, x2, y2 = (float(v) for v in box)
            ann = {
                "id": len(anns) + 1,
                "image_id": rec.image_id,
                "category_id": int(label),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1),
                "iscrowd": 0,
            }
            if masks is not None:
                ann["segmentation"] = encode_rle(masks[k])
                ann["area"] = float(masks[k].sum())
            anns.append(ann)
    cats = [{"id": i, "name": n} for i, n in enumerate(dataset.class_names) if i > 0]
    coco = COCO()
    coco.dataset = {"images": images, "annotations": anns, "categories": cats}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _coco_split_files(root: Path, split: str) -> list[Path]:
    root = Path(root)
    return [root / "annotations" / f"instances_{split}2017.json", root / "annotations" / f"{split}.json"]


def _read_coco_split(root: Path, split: str) -> BoxDataset:
    """The COCO 2017 root (``annotations/instances_{split}2017.json``, images in ``{split}2017/``),
    or any folder laid out like the synthetic one (``annotations/{split}.json``, ``images/{split}/``)."""
    official = root / "annotations" / f"instances_{split}2017.json"
    if official.exists():
        return read_coco(official, root / f"{split}2017", name=f"coco-{split}")
    return read_coco(root / "annotations" / f"{split}.json", root / "images" / split, name=f"coco-{split}")


register_reader(
    DatasetReader(
        name="coco",
        read=_read_coco_split,
        split_files=_coco_split_files,
        available_splits=annotation_splits,
        order=90,
    )
)
