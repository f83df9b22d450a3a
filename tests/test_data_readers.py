"""COCO and VOC readers on tiny fixture datasets written in the real formats, and the bad-input policy."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils

from bbam_lite.data.coco import read_coco
from bbam_lite.data.records import DataError, DataWarning, ImageRecord, ItemTally, clean_boxes, load_rgb
from bbam_lite.data.voc import VOC_CLASSES, read_voc, voc_palette

W, H = 40, 30
RNG = np.random.default_rng(0)


def _noise(h: int = H, w: int = W, channels: int = 3) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, channels), dtype=np.uint8)


def _write_rgb(path: Path, h: int = H, w: int = W) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = _noise(h, w)
    Image.fromarray(arr).save(path)
    return arr


def _rect(x1: int, y1: int, x2: int, y2: int, h: int = H, w: int = W) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[y1:y2, x1:x2] = True
    return m


def _compressed_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _uncompressed_rle(mask: np.ndarray) -> dict:
    flat = mask.astype(np.uint8).flatten(order="F")
    counts, value, run = [], 0, 0
    for v in flat:
        if v == value:
            run += 1
        else:
            counts.append(run)
            value, run = int(v), 1
    counts.append(run)
    return {"counts": counts, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def _bbox_of(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1 - xs.min()), float(ys.max() + 1 - ys.min())]


# ----------------------------------------------------------------------------------------------- COCO

POLYGON = [[5.0, 5.0, 20.0, 5.0, 20.0, 15.0, 5.0, 15.0]]
MASK_RLE = _rect(22, 8, 35, 25)
MASK_URLE = _rect(3, 10, 18, 28)
MASK_CROWD = _rect(25, 2, 38, 12)


def _write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _coco_image(i: int, file_name: str, w: int = W, h: int = H) -> dict:
    return {"id": i, "file_name": file_name, "width": w, "height": h}


def _coco_ann(i: int, image_id: int, cat: int, bbox, segmentation=None, iscrowd: int = 0) -> dict:
    ann = {"id": i, "image_id": image_id, "category_id": cat, "bbox": bbox, "iscrowd": iscrowd}
    if segmentation is not None:
        ann["segmentation"] = segmentation
    return ann


def make_coco(tmp_path: Path, images=None, annotations=None) -> tuple[Path, Path]:
    """Three images (two PNG, one JPEG), categories 3 and 7, every kind of segmentation."""
    image_dir = tmp_path / "images"
    for name in ("a.png", "b.png", "c.jpg"):
        _write_rgb(image_dir / name)
    if images is None:
        images = [_coco_image(11, "a.png"), _coco_image(12, "b.png"), _coco_image(13, "c.jpg")]
    if annotations is None:
        annotations = [
            _coco_ann(1, 11, 7, [5, 5, 15, 10], POLYGON),
            _coco_ann(2, 11, 3, _bbox_of(MASK_RLE), _compressed_rle(MASK_RLE)),
            _coco_ann(3, 12, 3, _bbox_of(MASK_URLE), _uncompressed_rle(MASK_URLE)),
            _coco_ann(4, 12, 7, _bbox_of(MASK_CROWD), _uncompressed_rle(MASK_CROWD), iscrowd=1),
            _coco_ann(5, 13, 7, [1.5, 2.5, 10, 20], [[1.5, 2.5, 11.5, 2.5, 11.5, 22.5]]),
        ]
    data = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
    }
    return _write_json(tmp_path / "instances.json", data), image_dir


def test_coco_reads_boxes_labels_and_masks(tmp_path):
    ann_file, image_dir = make_coco(tmp_path)
    with pytest.warns(DataWarning, match="1 crowd annotations left out"):
        ds = read_coco(ann_file, image_dir)
    assert ds.class_names == ["background", "cat", "dog"]  # category ids 3, 7 -> labels 1, 2
    assert ds.num_classes == 2
    assert [r.image_id for r in ds] == [11, 12, 13]

    a, b, c = ds.records
    np.testing.assert_array_equal(a.boxes, np.array([[5, 5, 20, 15], [22, 8, 35, 25]], dtype=np.float32))
    np.testing.assert_array_equal(a.labels, [2, 1])
    assert a.boxes.dtype == np.float32 and a.labels.dtype == np.int64
    masks = a.load_masks()
    poly = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(POLYGON, H, W))).astype(bool)
    assert masks.shape == (2, H, W) and masks.dtype == bool
    np.testing.assert_array_equal(masks[0], poly)
    assert poly[6:15, 6:20].all() and not poly[20:].any()
    np.testing.assert_array_equal(masks[1], MASK_RLE)

    np.testing.assert_array_equal(b.boxes, [[3, 10, 18, 28]])  # the crowd annotation is not an object
    np.testing.assert_array_equal(b.labels, [1])
    np.testing.assert_array_equal(b.load_masks(), MASK_URLE[None])

    np.testing.assert_allclose(c.boxes, [[1.5, 2.5, 11.5, 22.5]])
    assert c.path.suffix == ".jpg" and c.load_image().shape == (H, W, 3)
    assert a.load_image().dtype == np.uint8
    np.testing.assert_array_equal(a.load_image(), np.asarray(Image.open(image_dir / "a.png")))


def test_coco_without_segmentation_has_no_masks(tmp_path):
    ann_file, image_dir = make_coco(tmp_path, annotations=[_coco_ann(1, 11, 3, [1, 1, 5, 5])])
    with pytest.warns(DataWarning, match="2 images without objects skipped"):
        ds = read_coco(ann_file, image_dir)
    assert len(ds) == 1 and not ds[0].has_masks and ds[0].load_masks() is None


# ------------------------------------------------------------------------------------------------ VOC


def _voc_xml(voc_id: str, w: int, h: int, objects) -> str:
    parts = [
        f"<annotation><folder>VOC2012</folder><filename>{voc_id}.jpg</filename>",
        f"<size><width>{w}</width><height>{h}</height><depth>3</depth></size><segmented>1</segmented>",
    ]
    for name, (xmin, ymin, xmax, ymax), difficult in objects:
        parts.append(
            f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
            f"<difficult>{difficult}</difficult><bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin>"
            f"<xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>"
            # a person's parts carry their own <name>/<bndbox>; they are not objects
            f"<part><name>head</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax>"
            f"</bndbox></part></object>"
        )
    parts.append("</annotation>")
    return "\n".join(parts)


def _write_palette_png(path: Path, arr: np.ndarray) -> None:
    """A VOC-style PNG: mode 'P', pixel values are palette indices, the VOC colour map."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    im = Image.frombytes("P", (arr.shape[1], arr.shape[0]), arr.tobytes())
    im.putpalette(voc_palette())
    im.save(path)


def _add_voc_image(root: Path, voc_id: str, objects, w: int = W, h: int = H, obj_png=None, cls_png=None):
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "Annotations" / f"{voc_id}.xml").write_text(_voc_xml(voc_id, w, h, objects))
    _write_rgb(root / "JPEGImages" / f"{voc_id}.jpg", h, w)
    if obj_png is not None:
        _write_palette_png(root / "SegmentationObject" / f"{voc_id}.png", obj_png)
    if cls_png is not None:
        _write_palette_png(root / "SegmentationClass" / f"{voc_id}.png", cls_png)


def _write_list(path: Path, lines) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def make_voc(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Two segmented images listed in train.txt, a third (boxes only) added in train_aug.txt."""
    root = tmp_path / "VOC2012"
    # image 1: aeroplane (instance 1) and a difficult person (instance 2), void boundary around both
    obj1 = np.zeros((H, W), np.uint8)
    obj1[4:21, 2:16] = 255
    obj1[5:20, 3:15] = 1
    obj1[10:26, 20:34] = 255
    obj1[11:25, 21:33] = 2
    cls1 = np.where(obj1 == 1, 1, np.where(obj1 == 2, 15, obj1)).astype(np.uint8)
    _add_voc_image(
        root,
        "2007_000032",
        [("aeroplane", (4, 6, 15, 20), 0), ("person", (22, 12, 33, 25), 1)],
        obj_png=obj1,
        cls_png=cls1,
    )
    # image 2: one dog, a different size
    obj2 = np.zeros((20, 24), np.uint8)
    obj2[2:10, 3:12] = 1
    obj2[1, 2:13] = 255
    _add_voc_image(
        root,
        "2008_000123",
        [("dog", (4, 3, 12, 10), 0)],
        w=24,
        h=20,
        obj_png=obj2,
        cls_png=np.where(obj2 == 1, 12, obj2),
    )
    # image 3: SBD only (XML + JPEG, no PNG)
    _add_voc_image(root, "2011_000007", [("tvmonitor", (1, 1, 40, 30), 0)])
    seg = root / "ImageSets" / "Segmentation"
    _write_list(seg / "train.txt", ["2007_000032", "2008_000123"])
    _write_list(
        seg / "train_aug.txt",
        [
            "/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png",
            "2008_000123",
            "",
            "/JPEGImages/2011_000007.jpg /SegmentationClassAug/2011_000007.png",
        ],
    )
    return root, {"2007_000032": obj1, "2008_000123": obj2}


def test_voc_palette():
    pal = voc_palette()
    assert len(pal) == 768 and all(0 <= v <= 255 for v in pal)
    triples = [tuple(pal[3 * i : 3 * i + 3]) for i in range(256)]
    assert triples[0] == (0, 0, 0) and triples[1] == (128, 0, 0) and triples[2] == (0, 128, 0)
    assert triples[15] == (192, 128, 128)  # person
    assert triples[255] == (224, 224, 192)  # void


def test_voc_reads_boxes_ids_and_masks(tmp_path):
    root, pngs = make_voc(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # nothing to repair in a clean set
        ds = read_voc(root, "train")
    assert ds.class_names == ["background", *VOC_CLASSES] and ds.num_classes == 20
    assert [r.image_id for r in ds] == [2007_000032, 2008_000123]
    a, b = ds.records
    assert a.path == root / "JPEGImages" / "2007_000032.jpg"
    assert (a.width, a.height, b.width, b.height) == (W, H, 24, 20)
    # 1-based inclusive corners -> 0-based pixel edges
    np.testing.assert_array_equal(a.boxes, np.array([[3, 5, 15, 20], [21, 11, 33, 25]], dtype=np.float32))
    np.testing.assert_array_equal(a.labels, [1, 15])  # the difficult person is kept
    np.testing.assert_array_equal(b.boxes, [[3, 2, 12, 10]])
    np.testing.assert_array_equal(b.labels, [VOC_CLASSES.index("dog") + 1])

    masks = a.load_masks()
    assert masks.shape == (2, H, W)
    np.testing.assert_array_equal(masks[0], pngs["2007_000032"] == 1)
    np.testing.assert_array_equal(masks[1], pngs["2007_000032"] == 2)
    assert not masks.any(axis=0)[pngs["2007_000032"] == 255].any()  # void belongs to no instance
    np.testing.assert_array_equal(b.load_masks(), (pngs["2008_000123"] == 1)[None])
    # each mask lies inside its box
    for box, m in zip(a.boxes, masks, strict=True):
        ys, xs = np.nonzero(m)
        assert xs.min() >= box[0] and xs.max() < box[2] and ys.min() >= box[1] and ys.max() < box[3]
    assert a.load_image().shape == (H, W, 3) and b.load_image().shape == (20, 24, 3)
    # the class PNG written with the VOC palette reads back as indices
    cls = np.asarray(Image.open(root / "SegmentationClass" / "2007_000032.png"))
    assert set(np.unique(cls)) == {0, 1, 15, 255}


def test_voc_train_aug_has_boxes_only_images(tmp_path):
    root, _ = make_voc(tmp_path)
    listed = read_voc(root, image_list=root / "ImageSets/Segmentation/train_aug.txt")
    for ds in (read_voc(root, "train_aug"), listed):
        assert [r.image_id for r in ds] == [2007_000032, 2008_000123, 2011_000007]
        assert [r.has_masks for r in ds] == [True, True, False]
        c = ds[2]
        assert c.load_masks() is None
        np.testing.assert_array_equal(c.boxes, [[0, 0, 40, 30]])
        np.testing.assert_array_equal(c.labels, [20])
    assert read_voc(root, "train_aug").name == "voc2012_train_aug"


def test_voc_ids_of_other_shapes_use_the_row(tmp_path):
    root = tmp_path / "VOC2012"
    _add_voc_image(root, "custom", [("cat", (2, 2, 10, 10), 0)])
    _add_voc_image(root, "2009_000001", [("cat", (2, 2, 10, 10), 0)])
    lst = _write_list(tmp_path / "mine.txt", ["2009_000001", "custom"])
    ds = read_voc(root, image_list=lst, name="mine")
    assert [r.image_id for r in ds] == [2009_000001, 2] and ds.name == "mine"


# ------------------------------------------------------------------------------------------ bad input


def test_missing_data_root(tmp_path):
    with pytest.raises(DataError, match="nowhere: VOC data root does not exist"):
        read_voc(tmp_path / "nowhere")
    ann_file, _ = make_coco(tmp_path)
    with pytest.raises(DataError, match="nowhere: image folder not found"):
        read_coco(ann_file, tmp_path / "nowhere")
    with pytest.raises(DataError, match="missing.json: annotation file not found"):
        read_coco(tmp_path / "missing.json", tmp_path / "images")


def test_missing_voc_list_and_xml(tmp_path):
    root, _ = make_voc(tmp_path)
    with pytest.raises(DataError, match="val.txt: image list not found"):
        read_voc(root, "val")
    (root / "Annotations" / "2008_000123.xml").unlink()
    with pytest.raises(DataError, match="2008_000123.xml: annotation file not found"):
        read_voc(root, "train")


@pytest.mark.filterwarnings("ignore::bbam_lite.data.records.DataWarning")
def test_a_missing_split_names_the_splits_there_and_the_option(tmp_path):
    """load_dataset: no val split is one line with the splits the folder has and the option to use."""
    from bbam_lite.data import load_dataset

    voc, _ = make_voc(tmp_path / "v")
    with pytest.raises(DataError) as err:
        load_dataset("voc", voc, "val", split_option="--val-split")
    msg = str(err.value)
    assert "no split 'val'" in msg and "ImageSets/Segmentation/val.txt not found" in msg
    assert "splits here: train, train_aug" in msg and msg.endswith("choose another with --val-split NAME")
    assert "\n" not in msg
    assert len(load_dataset("voc", voc, "train_aug", split_option="--split")) == 3  # present: no error

    coco = tmp_path / "c"
    ann_file, _ = make_coco(coco)
    (coco / "annotations").mkdir()
    ann_file.rename(coco / "annotations" / "train.json")
    (coco / "images").rename(tmp_path / "imgs")
    (coco / "images").mkdir()
    (tmp_path / "imgs").rename(coco / "images" / "train")
    assert len(load_dataset("coco", coco, "train")) == 3
    with pytest.raises(
        DataError,
        match=r"annotations/val\.json not found; splits here: train\); choose "
        r"another with --split NAME$",
    ):
        load_dataset("coco", coco, "val", split_option="--split")
    with pytest.raises(DataError, match=r"splits here: train\)$"):  # no option given: no hint
        load_dataset("coco", coco, "val")
    # the official COCO layout lists its instances_*2017 splits only
    (coco / "annotations" / "captions_train2017.json").write_text("{}")
    (coco / "annotations" / "instances_train2017.json").write_text("{}")
    with pytest.raises(
        DataError,
        match=r"instances_val2017\.json or annotations/val\.json not found; "
        r"splits here: train\)",
    ):
        load_dataset("coco", coco, "val")


def test_coco_annotation_file_not_json(tmp_path):
    _, image_dir = make_coco(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{'images': [")
    with pytest.raises(DataError, match="bad.json: not a JSON file"):
        read_coco(bad, image_dir)


def test_coco_json_not_coco(tmp_path):
    _, image_dir = make_coco(tmp_path)
    for i, data in enumerate(
        ([1, 2, 3], {"images": [], "annotations": []}, {"images": {}, "annotations": []})
    ):
        bad = _write_json(tmp_path / f"other{i}.json", data)
        with pytest.raises(DataError, match=f"other{i}.json: not a COCO instances file"):
            read_coco(bad, image_dir)


def test_voc_xml_does_not_parse(tmp_path):
    root, _ = make_voc(tmp_path)
    (root / "Annotations" / "2008_000123.xml").write_text("<annotation><size><width>3</width>")
    with pytest.raises(DataError, match="2008_000123.xml: XML does not parse"):
        read_voc(root, "train")


@pytest.mark.parametrize(
    "xml",
    [
        "<annotation><filename>x.jpg</filename></annotation>",
        "<annotation><size><width>40</width><height>30</height></size></annotation>",
        "<html><size><width>40</width><height>30</height></size><object/></html>",
    ],
)
def test_voc_xml_not_voc(tmp_path, xml):
    root, _ = make_voc(tmp_path)
    (root / "Annotations" / "2007_000032.xml").write_text(xml)
    with pytest.raises(DataError, match="2007_000032.xml: not a VOC annotation"):
        read_voc(root, "train")


def test_voc_xml_bad_coordinate(tmp_path):
    root, _ = make_voc(tmp_path)
    xml = root / "Annotations" / "2007_000032.xml"
    xml.write_text(xml.read_text().replace("<xmax>15</xmax>", "<xmax>fifteen</xmax>"))
    with pytest.raises(DataError, match=r"2007_000032.xml \(object 1\): <xmax> missing or not a number"):
        read_voc(root, "train")


def test_missing_image_file(tmp_path):
    ann_file, image_dir = make_coco(tmp_path)
    (image_dir / "b.png").unlink()
    with pytest.raises(DataError, match="b.png: image file not found"):
        read_coco(ann_file, image_dir)
    root, _ = make_voc(tmp_path)
    (root / "JPEGImages" / "2008_000123.jpg").unlink()
    with pytest.raises(DataError, match="2008_000123.jpg: image file not found"):
        read_voc(root, "train")


def _record(path: Path, w: int = W, h: int = H) -> ImageRecord:
    return ImageRecord(1, path, w, h, np.array([[1, 1, 5, 5]], np.float32), np.array([1]))


def test_zero_byte_image(tmp_path):
    root, _ = make_voc(tmp_path)
    (root / "JPEGImages" / "2008_000123.jpg").write_bytes(b"")
    ds = read_voc(root, "train")  # found; the problem shows when it is read
    with pytest.raises(DataError, match=r"2008_000123.jpg: image file is empty \(0 bytes\)"):
        ds[1].load_image()


def test_truncated_jpeg(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(_noise(64, 64)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.jpg: cannot read image"):
        _record(path, 64, 64).load_image()


def test_not_an_image(tmp_path):
    path = tmp_path / "text.png"
    path.write_text("hello")
    with pytest.raises(DataError, match="text.png: cannot read image"):
        load_rgb(path)


def test_image_size_differs_from_annotation(tmp_path):
    path = tmp_path / "small.png"
    _write_rgb(path, 10, 12)
    with pytest.raises(DataError, match="small.png: image is 12x10 but the annotations say 40x30"):
        _record(path).load_image()


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "I;16"])
def test_image_modes_load_as_uint8_rgb(tmp_path, mode):
    path = tmp_path / f"img_{mode.replace(';', '')}.png"
    rgba = _noise(channels=4)
    if mode == "I;16":
        gray16 = (RNG.integers(0, 4096, size=(H, W)) * 16).astype(np.uint16)
        Image.fromarray(gray16).save(path)
        assert Image.open(path).mode in ("I;16", "I")
        expected8 = np.round(gray16 / 257.0).astype(np.uint8)  # the 16-bit range, not the image's max
        expected = np.repeat(expected8[..., None], 3, axis=2)
    elif mode == "RGBA":
        Image.fromarray(rgba, "RGBA").save(path)
        expected = rgba[..., :3]
    else:
        im = Image.fromarray(rgba, "RGBA").convert("RGB" if mode in ("L", "P") else "RGBA").convert(mode)
        im.save(path)
        expected = np.asarray(im.convert("RGB"))
    image = _record(path).load_image()
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, expected)


def test_box_wholly_outside_dropped(tmp_path):
    anns = [_coco_ann(1, 11, 3, [2, 2, 10, 10]), _coco_ann(2, 11, 7, [45, 5, 10, 10])]
    ann_file, image_dir = make_coco(tmp_path, images=[_coco_image(11, "a.png")], annotations=anns)
    with pytest.warns(DataWarning, match="instances.json: 1 empty or out-of-image boxes dropped"):
        ds = read_coco(ann_file, image_dir)
    np.testing.assert_array_equal(ds[0].boxes, [[2, 2, 12, 12]])
    np.testing.assert_array_equal(ds[0].labels, [1])


def test_box_partly_outside_clipped(tmp_path):
    anns = [_coco_ann(1, 11, 3, [30, -5, 20, 20])]
    ann_file, image_dir = make_coco(tmp_path, images=[_coco_image(11, "a.png")], annotations=anns)
    with pytest.warns(DataWarning, match="1 boxes clipped to the image"):
        ds = read_coco(ann_file, image_dir)
    np.testing.assert_array_equal(ds[0].boxes, [[30, 0, 40, 15]])


def test_voc_box_outside_clipped_and_dropped(tmp_path):
    root = tmp_path / "VOC2012"
    objects = [("cat", (5, 5, 50, 20), 0), ("dog", (41, 1, 45, 10), 0), ("cow", (3, 3, 8, 9), 0)]
    obj = np.zeros((H, W), np.uint8)
    obj[4:20, 4:40] = 1
    obj[2:9, 2:8] = 3
    _add_voc_image(root, "2010_000001", objects, obj_png=obj)
    _write_list(root / "ImageSets/Segmentation/train.txt", ["2010_000001"])
    with pytest.warns(DataWarning) as rec:
        ds = read_voc(root)
    (msg,) = [str(w.message) for w in rec if issubclass(w.category, DataWarning)]
    assert "1 boxes clipped to the image" in msg and "1 empty or out-of-image boxes dropped" in msg
    np.testing.assert_array_equal(ds[0].boxes, [[4, 4, 40, 20], [2, 2, 8, 9]])
    np.testing.assert_array_equal(ds[0].labels, [8, 10])
    masks = ds[0].load_masks()  # still aligned: the dropped box's instance (2) is skipped
    np.testing.assert_array_equal(masks, np.stack([obj == 1, obj == 3]))


def test_zero_area_box_dropped(tmp_path):
    anns = [_coco_ann(1, 11, 3, [2, 2, 10, 10]), _coco_ann(2, 11, 7, [5, 5, 0, 10])]
    anns.append(_coco_ann(3, 11, 7, [5, 5, 3, 0]))
    ann_file, image_dir = make_coco(tmp_path, images=[_coco_image(11, "a.png")], annotations=anns)
    with pytest.warns(DataWarning, match="2 empty or out-of-image boxes dropped"):
        ds = read_coco(ann_file, image_dir)
    assert len(ds[0].boxes) == 1


def test_inverted_box(tmp_path):
    anns = [_coco_ann(1, 11, 3, [20, 2, -10, 10])]
    ann_file, image_dir = make_coco(tmp_path, images=[_coco_image(11, "a.png")], annotations=anns)
    with pytest.raises(
        DataError,
        match=r"instances.json \(image id 11, a.png\): annotation 1 has a negative width or height: "
        r"bbox \[20, 2, -10, 10\] \(x, y, w, h\)$",
    ):
        read_coco(ann_file, image_dir)
    root = tmp_path / "VOC2012"
    _add_voc_image(root, "2010_000001", [("cat", (20, 5, 10, 20), 0)])
    _write_list(root / "ImageSets/Segmentation/train.txt", ["2010_000001"])
    with pytest.raises(
        DataError,
        match="2010_000001.xml: object 1 has a negative width or height: xmin 20, ymin 5, xmax 10, ymax 20",
    ):
        read_voc(root)


@pytest.mark.parametrize("bbox", [[float("nan"), 2, 10, 10], [2, 2, None, 10], [2, 2, float("inf"), 10]])
def test_nan_box(tmp_path, bbox):
    anns = [_coco_ann(1, 11, 3, [1, 1, 4, 4]), _coco_ann(2, 11, 3, bbox)]
    ann_file, image_dir = make_coco(tmp_path, images=[_coco_image(11, "a.png")], annotations=anns)
    with pytest.raises(
        DataError, match=r"annotation 2 has a NaN or infinite coordinate: bbox \[.*(NaN|null|Infinity)"
    ):
        read_coco(ann_file, image_dir)


def test_unknown_category_id(tmp_path):
    ann_file, image_dir = make_coco(tmp_path, annotations=[_coco_ann(9, 11, 5, [1, 1, 4, 4])])
    with pytest.raises(DataError, match=r"annotation 9 has category id 5, not in the category list \[3, 7\]"):
        read_coco(ann_file, image_dir)


def test_unknown_voc_class_name(tmp_path):
    root, _ = make_voc(tmp_path)
    xml = root / "Annotations" / "2008_000123.xml"
    xml.write_text(xml.read_text().replace("<name>dog</name>", "<name>unicorn</name>"))
    with pytest.raises(DataError, match=r"2008_000123.xml \(object 1\): unknown class name 'unicorn'"):
        read_voc(root, "train")


def test_duplicate_image_ids(tmp_path):
    images = [_coco_image(11, "a.png"), _coco_image(11, "b.png")]
    ann_file, image_dir = make_coco(tmp_path, images=images, annotations=[])
    with pytest.raises(DataError, match="instances.json: duplicate image id 11"):
        read_coco(ann_file, image_dir)
    root, _ = make_voc(tmp_path)
    _write_list(root / "ImageSets/Segmentation/train.txt", ["2007_000032", "2008_000123", "2007_000032"])
    with pytest.raises(DataError, match="train.txt: duplicate image id 2007000032"):
        read_voc(root, "train")


def test_image_without_objects_skipped(tmp_path):
    anns = [_coco_ann(1, 11, 3, [2, 2, 10, 10]), _coco_ann(2, 12, 3, [50, 50, 5, 5])]
    ann_file, image_dir = make_coco(tmp_path, annotations=anns)
    with pytest.warns(DataWarning, match="2 images without objects skipped"):
        ds = read_coco(ann_file, image_dir)
    assert [r.image_id for r in ds] == [11]
    root = tmp_path / "VOC2012"
    _add_voc_image(root, "2010_000001", [("cat", (2, 2, 10, 10), 0)])
    _add_voc_image(root, "2010_000002", [("cat", (41, 31, 45, 40), 0)])
    _write_list(root / "ImageSets/Segmentation/train.txt", ["2010_000001", "2010_000002"])
    with pytest.warns(DataWarning, match="1 images without objects skipped"):
        ds = read_voc(root)
    assert [r.image_id for r in ds] == [2010_000001]


def test_mask_size_differs_from_image(tmp_path):
    anns = [_coco_ann(1, 11, 3, [2, 2, 10, 10], _compressed_rle(_rect(2, 2, 12, 12, h=20, w=20)))]
    ann_file, image_dir = make_coco(tmp_path, images=[_coco_image(11, "a.png")], annotations=anns)
    ds = read_coco(ann_file, image_dir)
    with pytest.raises(DataError, match="mask of annotation 1 is 20x20, image is 40x30"):
        ds[0].load_masks()
    root, _ = make_voc(tmp_path)
    _write_palette_png(root / "SegmentationObject" / "2008_000123.png", np.ones((H, W), np.uint8))
    ds = read_voc(root)
    with pytest.raises(DataError, match="2008_000123.png: mask is 40x30, the annotation says 24x20"):
        ds[1].load_masks()


def test_record_checks_mask_shape(tmp_path):
    rec = _record(tmp_path / "x.png")
    rec.mask_loader = lambda: np.zeros((2, H, W), bool)
    with pytest.raises(DataError, match=r"masks have shape \(2, 30, 40\), expected \(1, 30, 40\)"):
        rec.load_masks()


def test_path_outside_data_root(tmp_path):
    ann_file, image_dir = make_coco(tmp_path, images=[_coco_image(11, "../secret.png")], annotations=[])
    _write_rgb(tmp_path / "secret.png")
    with pytest.raises(DataError, match="file name '../secret.png' points outside the data root"):
        read_coco(ann_file, image_dir)
    root, _ = make_voc(tmp_path)
    for bad in ("../2007_000032", "a/b", "sub\\x", ".."):
        _write_list(root / "ImageSets/Segmentation/train.txt", ["2008_000123", bad])
        with pytest.raises(
            DataError, match=r"train.txt \(line 2\): image id .* points outside the data root"
        ):
            read_voc(root, "train")
    with pytest.raises(DataError, match="points outside the data root"):
        read_voc(root, "../train")


# ------------------------------------------------------------------------------------- clean_boxes


@st.composite
def boxes_and_size(draw):
    width = draw(st.integers(1, 300))
    height = draw(st.integers(1, 300))
    coord = st.floats(-1000, 1000, allow_nan=False, allow_infinity=False)
    extent = st.floats(0, 1000, allow_nan=False, allow_infinity=False)
    n = draw(st.integers(0, 8))
    boxes = []
    for _ in range(n):
        x1, y1, w, h = draw(coord), draw(coord), draw(extent), draw(extent)
        boxes.append([x1, y1, x1 + w, y1 + h])
    return np.array(boxes, dtype=np.float64).reshape(-1, 4), width, height


@settings(max_examples=300, deadline=None)
@given(boxes_and_size())
def test_clean_boxes_properties(case):
    boxes, width, height = case
    tally = ItemTally("prop")
    out, keep = clean_boxes(boxes, width, height, "prop", tally)
    assert out.dtype == np.float32 and out.shape == (len(keep), 4)
    assert np.all(np.diff(keep) > 0)
    assert np.all(out[:, 0] >= 0) and np.all(out[:, 1] >= 0)
    assert np.all(out[:, 2] <= width) and np.all(out[:, 3] <= height)
    assert np.all(out[:, 2] > out[:, 0]) and np.all(out[:, 3] > out[:, 1])
    clipped = boxes.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, width)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, height)
    np.testing.assert_array_equal(out, clipped[keep].astype(np.float32))
    positive = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    assert set(keep.tolist()) <= set(np.flatnonzero(positive).tolist())
    assert tally.counts["empty or out-of-image boxes dropped"] == len(boxes) - len(keep)
