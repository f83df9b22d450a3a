"""Reliability as a user meets it: runs killed with SIGKILL resume to the same outputs, oversized and
odd inputs give one-line errors, and the mask/box utilities hold their properties on random input."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bbam_lite.cli import main
from bbam_lite.data.coco import decode_rle, encode_rle, mask_bbox, read_coco
from bbam_lite.data.records import DataError, load_rgb


def _kill_when(argv: list[str], ready, timeout: float = 120.0) -> None:
    """Run ``bbam-lite ARGV`` in a subprocess and SIGKILL it as soon as ``ready()`` is true."""
    env = {**os.environ, "BBAM_LITE_EAGER_ROI_ALIGN": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bbam_lite", "--quiet", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + timeout
    while proc.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()[-500:]!r}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_killed_detector_training_resumes_to_the_same_weights(tiny_synth, tmp_path):
    from bbam_lite.detector.model import load_detector

    argv = ["train-detector", "--data", str(tiny_synth), "--profile", "smoke", "--iterations", "12"]
    assert main(["--quiet", *argv, "--out", str(tmp_path / "full")]) == 0

    cut = tmp_path / "cut"
    _kill_when([*argv, "--out", str(cut)], lambda: (cut / "checkpoint.pt").exists())
    assert not (cut / "detector.pt").exists() and not (cut / "detector_metrics.json").exists()
    assert main(["--quiet", *argv, "--out", str(cut)]) == 0  # resumes from checkpoint.pt

    a = load_detector(tmp_path / "full" / "detector.pt").model.state_dict()
    b = load_detector(cut / "detector.pt").model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def _label_outputs(folder: Path) -> dict:
    inst = json.loads((folder / "instances.json").read_text())
    quality = json.loads((folder / "quality.json").read_text())
    return {
        "annotations": inst["annotations"],
        "pngs": {p.name: p.read_bytes() for p in sorted((folder / "semantic").glob("*.png"))},
        "maps": {p.name: dict(np.load(p)) for p in sorted((folder / "bbam").glob("*.npz"))},
        "miou": quality["miou"],
    }


def test_killed_bbam_pseudo_labels_resume_to_the_same_labels(tiny_synth, smoke_detector, tmp_path):
    """Also the determinism check for pseudo labels on the CPU: a separate process, killed and resumed,
    gives the labels of an uninterrupted run byte for byte."""
    argv = [
        "pseudo-labels", "--data", str(tiny_synth), "--method", "bbam", "--detector", str(smoke_detector),
        "--iterations", "8", "--batch-images", "1", "--limit", "4",
    ]  # fmt: skip
    assert main(["--quiet", *argv, "--out", str(tmp_path / "full")]) == 0

    cut = tmp_path / "cut"
    _kill_when([*argv, "--out", str(cut)], lambda: len(list((cut / "images").glob("*.npz"))) >= 1)
    done = len(list((cut / "images").glob("*.npz")))
    assert 1 <= done < 4 and not (cut / "instances.json").exists()
    assert main(["--quiet", *argv, "--out", str(cut)]) == 0

    a, b = _label_outputs(tmp_path / "full"), _label_outputs(cut)
    assert a["annotations"] == b["annotations"] and a["pngs"] == b["pngs"] and a["miou"] == b["miou"]
    assert a["maps"].keys() == b["maps"].keys()
    for name in a["maps"]:
        for k in a["maps"][name]:
            np.testing.assert_array_equal(a["maps"][name][k], b["maps"][name][k])


# ------------------------------------------------------------------------------------- odd inputs


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that declares ``width`` x ``height`` (the pixel data is cut short)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)))


def test_far_larger_image_than_expected_is_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    for width, height in ((9_000, 8_000), (40_000, 30_000)):  # over our limit; also over Pillow's
        _png_header_only(path, width, height)
        with pytest.raises(DataError, match=r"huge\.png: image is .*larger than the limit") as err:
            load_rgb(path)
        assert "\n" not in str(err.value)


def test_sixteen_bit_images_keep_their_brightness(tmp_path):
    from PIL import Image

    dark = np.full((8, 8), 257 * 40, np.uint16)  # a dark 16-bit image must stay dark, not be stretched
    Image.fromarray(dark).save(tmp_path / "dark.png")
    assert np.all(load_rgb(tmp_path / "dark.png") == 40)


def test_cli_one_line_error_for_an_image_that_is_not_an_image(tiny_synth, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_synth, data)
    first = sorted((data / "images" / "train").iterdir())[0]
    first.write_bytes(b"this is not a JPEG")
    code = main(
        ["--quiet", "pseudo-labels", "--data", str(data), "--method", "box", "--out", str(tmp_path / "l")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and first.name in err and "cannot read image" in err and "\n" not in err
    assert not (tmp_path / "l" / "instances.json").exists()


# ----------------------------------------------------------------------------- property-based checks


@st.composite
def masks(draw):
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**31 - 1))
    density = draw(st.sampled_from([0.0, 0.05, 0.5, 1.0]))
    return np.random.default_rng(seed).random((h, w)) < density


@settings(max_examples=200, deadline=None)
@given(masks())
def test_rle_round_trip_and_tight_box(mask):
    rle = encode_rle(mask)
    assert json.loads(json.dumps(rle)) == rle  # JSON-ready
    np.testing.assert_array_equal(decode_rle(rle), mask)
    box = mask_bbox(mask)
    if not mask.any():
        assert box is None
        return
    x, y, w, h = box
    ys, xs = np.nonzero(mask)
    assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


_number = st.one_of(
    st.floats(-300, 300, allow_nan=False),
    st.just(float("nan")),
    st.just(float("inf")),
    st.integers(-300, 300),
    st.none(),
    st.text(max_size=3),
)


@settings(max_examples=30, deadline=None)
@given(
    anns=st.lists(
        st.tuples(st.lists(_number, min_size=3, max_size=5), st.sampled_from([1, 2, 5, "1", None])),
        max_size=6,
    )
)
def test_coco_reader_never_lets_a_bad_box_through(tmp_path_factory, anns):
    """Whatever the annotation file holds, the reader returns clean boxes inside the image, or says in
    one line (DataError) what is wrong; it never fails deeper down."""
    from PIL import Image

    root = tmp_path_factory.mktemp("coco")
    (root / "images").mkdir()
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(root / "images" / "a.png")
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
        "annotations": [
            {"id": i + 1, "image_id": 1, "category_id": cat, "bbox": bbox, "iscrowd": 0}
            for i, (bbox, cat) in enumerate(anns)
        ],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }
    (root / "ann.json").write_text(json.dumps(data))
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = read_coco(root / "ann.json", root / "images")
    except DataError as exc:
        assert "\n" not in str(exc) and "ann.json" in str(exc)
        return
    for rec in ds:
        assert rec.boxes.dtype == np.float32 and np.all(np.isfinite(rec.boxes))
        assert (
            np.all(rec.boxes[:, :2] >= 0) and np.all(rec.boxes[:, 2] <= 40) and np.all(rec.boxes[:, 3] <= 30)
        )
        assert np.all(rec.boxes[:, 2:] > rec.boxes[:, :2])
        assert set(rec.labels.tolist()) <= {1, 2}
