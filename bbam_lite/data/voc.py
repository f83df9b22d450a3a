"""PASCAL VOC 2012 (and the SBD ``train_aug`` list) read into a :class:`BoxDataset`.

Boxes come from ``Annotations/<id>.xml`` (1-based inclusive corners, converted to 0-based
x1, y1, x2, y2 pixel edges); class ids are VOC's own (1..20, 0 background). Instance masks come
from ``SegmentationObject/<id>.png`` where it exists: instance k is the k-th ``<object>`` of the
XML and value 255 (the void boundary) belongs to no instance. Images without that PNG (the
SBD-only images of ``train_aug``) are boxes only. ``difficult`` objects are kept.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bbam_lite.data.records import (
    BoxDataset,
    DataError,
    ImageRecord,
    ItemTally,
    check_data_root,
    check_unique_ids,
    clean_boxes,
)
from bbam_lite.data.registry import DatasetReader, register_reader

VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)

_VOC_ID = re.compile(r"^(\d{4})_(\d{6})$")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def voc_palette() -> list[int]:
    """The standard VOC colour map: 256 RGB triples flattened to 768 ints (for ``putpalette``)."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def _check_name(name: str, where: str, what: str = "image id") -> str:
    if not name or name == "." or "/" in name or "\\" in name or ".." in name:
        raise DataError(f"{where}: {what} {name!r} points outside the data root")
    return name


def read_id_list(list_file: Path) -> list[str]:
    """VOC ids from a list file: one id per line, or SBD lines ``/JPEGImages/<id>.jpg /...png``."""
    list_file = Path(list_file)
    if not list_file.is_file():
        raise DataError(f"{list_file}: image list not found")
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{list_file}: image list is not a text file ({exc})") from None
    ids = []
    for lineno, line in enumerate(lines, 1):
        tokens = line.split()
        if not tokens:
            continue
        token = tokens[0]
        if token.lower().endswith(_IMAGE_SUFFIXES):
            token = Path(token.replace("\\", "/")).stem
        ids.append(_check_name(token, f"{list_file} (line {lineno})"))
    return ids


def voc_image_id(voc_id: str, row: int) -> int:
    """``YYYY_NNNNNN`` -> YYYY * 1_000_000 + NNNNNN; other ids get ``row + 1``."""
    m = _VOC_ID.match(voc_id)
    return int(m.group(1)) * 1_000_000 + int(m.group(2)) if m else row + 1


def _text_number(elem: ET.Element, tag: str, where: str) -> float:
    child = elem.find(tag)
    try:
        return float(child.text)  # type: ignore[union-attr, arg-type]
    except (AttributeError, TypeError, ValueError):
        raise DataError(f"{where}: <{tag}> missing or not a number") from None


def parse_voc_xml(xml_file: Path) -> tuple[int, int, list[str], np.ndarray, list[str]]:
    """Width, height, object class names, (N, 4) boxes (0-based x1, y1, x2, y2) and the boxes as the
    XML writes them (``"xmin 1, ymin 2, xmax 30, ymax 40"``) of a VOC XML."""
    xml_file = Path(xml_file)
    if not xml_file.is_file():
        raise DataError(f"{xml_file}: annotation file not found")
    try:
        root = ET.parse(xml_file).getroot()
    except ET.ParseError as exc:
        raise DataError(f"{xml_file}: XML does not parse ({exc})") from None
    size = root.find("size")
    objects = root.findall("object")
    if root.tag != "annotation" or size is None or not objects:
        raise DataError(f"{xml_file}: not a VOC annotation (needs <annotation> with <size> and <object>)")
    width = _text_number(size, "width", f"{xml_file} <size>")
    height = _text_number(size, "height", f"{xml_file} <size>")
    if width != int(width) or height != int(height) or width <= 0 or height <= 0:
        raise DataError(f"{xml_file}: image size {width}x{height} is not a positive integer size")
    names, boxes, written = [], [], []
    for k, obj in enumerate(objects):
        where = f"{xml_file} (object {k + 1})"
        name = (obj.findtext("name") or "").strip()
        if name not in VOC_CLASSES:
            raise DataError(f"{where}: unknown class name {name!r}")
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise DataError(f"{where}: object has no <bndbox>")
        corners = ("xmin", "ymin", "xmax", "ymax")
        xmin, ymin, xmax, ymax = (_text_number(bndbox, t, where) for t in corners)
        names.append(name)
        boxes.append([xmin - 1.0, ymin - 1.0, xmax, ymax])
        written.append(", ".join(f"{t} {(bndbox.findtext(t) or '').strip()}" for t in corners))
    boxes_array = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    return int(width), int(height), names, boxes_array, written


def _load_object_masks(png: Path, keep: np.ndarray, height: int, width: int) -> np.ndarray:
    try:
        with Image.open(png) as im:
            if im.mode not in ("P", "L"):
                raise DataError(f"{png}: instance PNG has mode {im.mode}, expected a palette ('P') image")
            obj = np.asarray(im)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{png}: cannot read instance PNG ({type(exc).__name__}: {exc})") from None
    if obj.shape != (height, width):
        raise DataError(f"{png}: mask is {obj.shape[1]}x{obj.shape[0]}, the annotation says {width}x{height}")
    # instance k (1-based, XML order) is obj == k; the void value 255 never equals an index <= 254
    return obj[None, :, :] == (np.asarray(keep, dtype=np.int64) + 1)[:, None, None]


def read_voc(
    root: Path, split: str = "train", image_list: Path | None = None, name: str | None = None
) -> BoxDataset:
    """Read the ``VOC2012`` folder ``root`` for the ids in ``image_list``, else in
    ``ImageSets/Segmentation/<split>.txt`` (``train_aug`` included, when that list is there)."""
    root = check_data_root(root, "VOC")
    if image_list is None:
        _check_name(split, str(root), "split")
        list_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    else:
        list_file = Path(image_list)
    voc_ids = read_id_list(list_file)
    image_ids = [voc_image_id(v, row) for row, v in enumerate(voc_ids)]
    check_unique_ids(image_ids, str(list_file))
    tally = ItemTally(str(list_file))
    label_of = {c: i + 1 for i, c in enumerate(VOC_CLASSES)}

    records = []
    for voc_id, image_id in zip(voc_ids, image_ids, strict=True):
        xml_file = root / "Annotations" / f"{voc_id}.xml"
        width, height, names, xyxy, written = parse_voc_xml(xml_file)
        path = root / "JPEGImages" / f"{voc_id}.jpg"
        if not path.is_file():
            raise DataError(f"{path}: image file not found (listed in {list_file})")
        objects = [f"object {k + 1}" for k in range(len(names))]  # as parse_voc_xml's messages count
        boxes, keep = clean_boxes(xyxy, width, height, str(xml_file), tally, objects, written, xml_file.name)
        if len(keep) == 0:
            tally.add("images without objects skipped", items=[xml_file.name])
            continue
        labels = np.array([label_of[names[i]] for i in keep], dtype=np.int64)
        png = root / "SegmentationObject" / f"{voc_id}.png"
        loader = None
        if png.is_file():

            def loader(png=png, keep=keep, height=height, width=width):
                return _load_object_masks(png, keep, height, width)

        records.append(ImageRecord(image_id, path, width, height, boxes, labels, loader))
    tally.warn()
    return BoxDataset(records, ["background", *VOC_CLASSES], name or f"voc2012_{list_file.stem}", root)


def _voc_split_files(root: Path, split: str) -> list[Path]:
    return [Path(root) / "ImageSets" / "Segmentation" / f"{split}.txt"]


def _voc_splits(root: Path) -> list[str]:
    return sorted(p.stem for p in (Path(root) / "ImageSets" / "Segmentation").glob("*.txt"))


register_reader(
    DatasetReader(
        name="voc",
        read=read_voc,
        split_files=_voc_split_files,
        available_splits=_voc_splits,
        detect=lambda root: (root / "Annotations").is_dir(),
        detected_by="DATA/Annotations exists",
        order=20,
    )
)
