"""Bad and repaired boxes point at the input: an error names the file, the annotation (COCO id, VOC
object index) and the box as the file writes it; clip / drop / skip warnings name the first few."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bbam_lite.cli import main
from bbam_lite.data.records import DataWarning, ItemTally

W, H = 40, 30


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(path)


def coco_set(root: Path, bboxes: dict[int, list], crowd: tuple[int, ...] = ()) -> Path:
    """A COCO-style set (annotations/train.json, images/train/) of two images: annotation ``id``
    has bbox ``bboxes[id]``, on image 1 for odd ids and image 2 for even ones."""
    for name in ("a.png", "b.png"):
        _image(root / "images" / "train" / name)
    data = {
        "images": [
            {"id": i, "file_name": n, "width": W, "height": H} for i, n in ((1, "a.png"), (2, "b.png"))
        ],
        "annotations": [
            {"id": k, "image_id": 2 - k % 2, "category_id": 1, "bbox": b, "iscrowd": int(k in crowd)}
            for k, b in bboxes.items()
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "train.json").write_text(json.dumps(data))
    return root / "annotations" / "train.json"


def voc_set(root: Path, images: dict[str, list[tuple[str, str, str, str]]]) -> Path:
    """A VOC2012 folder; ``images[voc_id]`` lists each object's xmin, ymin, xmax, ymax as written."""
    for voc_id, boxes in images.items():
        objects = "".join(
            f"<object><name>cat</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax>"
            f"<ymax>{d}</ymax></bndbox></object>"
            for a, b, c, d in boxes
        )
        xml = f"<annotation><size><width>{W}</width><height>{H}</height></size>{objects}</annotation>"
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{voc_id}.xml").write_text(xml)
        _image(root / "JPEGImages" / f"{voc_id}.jpg")
    (root / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("".join(f"{v}\n" for v in images))
    return root


def _labels(data: Path, kind: str, out: Path, capsys) -> tuple[int, list[str]]:
    argv = ["--quiet", "pseudo-labels", "--data", str(data), "--dataset", kind, "--method", "box"]
    code = main([*argv, "--workers", "1", "--out", str(out)])
    return code, capsys.readouterr().err.strip().splitlines()


def test_coco_bad_box_error_names_file_annotation_and_box_as_written(tmp_path, capsys):
    ann_file = coco_set(tmp_path / "coco", {1: [2, 2, 10, 10], 7: [2, 2, 10, 10], 8: [20, 2, -10.5, 10]})
    code, err = _labels(tmp_path / "coco", "coco", tmp_path / "labels", capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0] == (
        f"bbam-lite pseudo-labels: error: {ann_file} (image id 2, b.png): annotation 8 has a negative "
        "width or height: bbox [20, 2, -10.5, 10] (x, y, w, h)"
    )
    coco_set(tmp_path / "coco", {1: [2, 2, 10, 10], 4: [2, None, 10, 10]})
    code, err = _labels(tmp_path / "coco", "coco", tmp_path / "labels", capsys)
    assert code == 2 and len(err) == 1
    assert err[0].endswith(
        "annotation 4 has a NaN or infinite coordinate: bbox [2, null, 10, 10] (x, y, w, h)"
    )


def test_voc_bad_box_error_names_xml_object_and_corners_as_written(tmp_path, capsys):
    root = voc_set(tmp_path / "VOC2012", {"2010_000001": [("2", "2", "10", "10"), ("20", "5", "9.5", "20")]})
    code, err = _labels(root, "voc", tmp_path / "labels", capsys)
    assert code == 2 and len(err) == 1, err
    xml = root / "Annotations" / "2010_000001.xml"
    assert err[0] == (
        f"bbam-lite pseudo-labels: error: {xml}: object 2 has a negative width or height: "
        "xmin 20, ymin 5, xmax 9.5, ymax 20"
    )


def test_coco_warnings_name_the_first_five_annotations(tmp_path, capsys):
    clipped = {k: [30, 2, 20, 5] for k in range(1, 14, 2)}  # 7 boxes over image 1's right edge
    bboxes = {**clipped, 20: [50, 50, 5, 5], 22: [2, 2, 5, 5], 31: [1, 1, 3, 3]}
    ann_file = coco_set(tmp_path / "coco", bboxes, crowd=(31,))
    code, err = _labels(tmp_path / "coco", "coco", tmp_path / "labels", capsys)
    assert code == 0, err
    (line,) = [e for e in err if "warning" in e]
    assert line == (
        f"bbam-lite pseudo-labels: warning: {ann_file}: "
        "7 boxes clipped to the image (annotation 1, annotation 3, annotation 5, annotation 7, "
        "annotation 9 and 2 more); 1 crowd annotations left out (annotation 31); "
        "1 empty or out-of-image boxes dropped (annotation 20)"
    )


def test_voc_warnings_name_object_and_file(tmp_path, capsys):
    root = voc_set(
        tmp_path / "VOC2012",
        {
            "2010_000001": [("2", "2", "10", "10"), ("35", "3", "60", "9")],  # object 2 clipped
            "2010_000002": [("45", "3", "60", "9")],  # its only object is outside: image skipped
        },
    )
    code, err = _labels(root, "voc", tmp_path / "labels", capsys)
    assert code == 0, err
    (line,) = [e for e in err if "warning" in e]
    assert line == (
        f"bbam-lite pseudo-labels: warning: {root / 'ImageSets/Segmentation/train.txt'}: "
        "1 boxes clipped to the image (object 2 of 2010_000001.xml); "
        "1 empty or out-of-image boxes dropped (object 1 of 2010_000002.xml); "
        "1 images without objects skipped (2010_000002.xml)"
    )


def test_tally_keeps_the_first_items_and_counts_the_rest():
    tally = ItemTally("src")
    tally.add("things fixed", 3, ["a", "b", "c"])
    tally.add("things fixed", 4, ["d", "e", "f", "g"])
    tally.add("things counted", 2)
    tally.add("nothing", 0, ["x"])
    with pytest.warns(DataWarning) as rec:
        tally.warn()
    assert str(rec[0].message) == "src: 2 things counted; 7 things fixed (a, b, c, d, e and 2 more)"
