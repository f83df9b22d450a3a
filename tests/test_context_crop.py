"""The context crop (issue 16, item 5): small objects explained on a crop around them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from bbam_lite.attribution.bbam import CROP_ROUNDING, ObjectTask, crop_window, explain, get_preset
from bbam_lite.attribution.engine import input_scale
from bbam_lite.data.stats import channel_mean
from bbam_lite.data.synthetic import read_synthetic
from bbam_lite.detector.evaluate import image_tensor
from bbam_lite.detector.model import load_detector
from bbam_lite.weights import default_detector_path


def test_crop_window_holds_the_box_and_its_context_inside_the_image() -> None:
    cfg = get_preset("official", context_crop=True)
    box = (100.0, 120.0, 130.0, 140.0)  # 30 x 20 in a 375 x 500 image, detector scale 2.0
    x0, y0, x1, y1 = crop_window(box, 375, 500, cfg, scale=2.0)
    assert x0 <= 100 - 30 and x1 >= 130 + 30 and y0 <= 120 - 32 and y1 >= 140 + 32  # margin, min context
    assert 0 <= x0 and 0 <= y0 and x1 <= 500 and y1 <= 375
    assert ((x1 - x0) * 2) % CROP_ROUNDING == 0 and ((y1 - y0) * 2) % CROP_ROUNDING == 0
    corner = crop_window((0.0, 0.0, 20.0, 20.0), 375, 500, cfg, scale=2.0)
    assert corner[:2] == (0, 0)  # shifted inside the image, not cut
    assert crop_window((0.0, 0.0, 300.0, 200.0), 375, 500, cfg, scale=2.0) is None  # a large object
    assert (
        crop_window(box, 100, 100, get_preset("official", context_crop=True, crop_min_context=500), 1.0)
        is None
    )


def test_a_small_object_on_its_crop_keeps_the_full_images_stride_and_map_frame(tiny_synth) -> None:
    ds = read_synthetic(tiny_synth, "train")
    det = load_detector(default_detector_path(), class_names=ds.class_names).model
    rec = min(ds, key=lambda r: min((b[2] - b[0]) * (b[3] - b[1]) for b in r.boxes))
    k = int(np.argmin([(b[2] - b[0]) * (b[3] - b[1]) for b in rec.boxes]))
    task = ObjectTask(
        image_tensor(rec.load_image()), torch.as_tensor(rec.boxes[k]), int(rec.labels[k]), (rec.image_id, k)
    )
    cfg = get_preset(
        "official",
        iterations=3,
        n_jitter=16,
        max_positives=4,
        stride_reference_side=375.0,
        crop_max_area=0.5,  # 96-px images: small context so that the crop is not the whole image
        crop_margin=0.25,
        crop_min_context=4.0,
    )
    mean = channel_mean(ds)
    full = explain(det, [task], cfg, mean)[0]
    cropped = explain(det, [task], replace(cfg, context_crop=True), mean)[0]
    h, w = rec.height, rec.width
    window = crop_window(rec.boxes[k].tolist(), h, w, cfg, input_scale(det, h, w))
    assert window is not None, "the fixture's smallest object should be cropped"
    x0, y0, x1, y1 = window
    assert cropped.bbam.shape == full.bbam.shape == (h, w)
    outside = np.ones((h, w), bool)
    outside[y0:y1, x0:x1] = False
    assert not cropped.bbam[outside].any() and cropped.bbam[~outside].max() > 0
    # the stride rule reads the full image (the positives, and so the mean regressed box, differ a little)
    assert abs(cropped.stride - full.stride) < 0.05 * full.stride
    crop_relative = cfg.stride_for(
        float((rec.boxes[k][2] - rec.boxes[k][0]) * (rec.boxes[k][3] - rec.boxes[k][1]))
        / ((x1 - x0) * (y1 - y0)),
        y1 - y0,
        x1 - x0,
    )
    assert abs(crop_relative - full.stride) > 0.05 * full.stride  # what reading the crop would give


def test_pseudo_labels_command_takes_the_context_crop(tiny_synth, tmp_path) -> None:
    import json

    from bbam_lite.cli import main

    out = tmp_path / "labels"
    argv = ["--quiet", "pseudo-labels", "--data", str(tiny_synth), "--method", "bbam", "--out", str(out)]
    assert main([*argv, "--limit", "1", "--iterations", "2", "--context-crop"]) == 0
    made = json.loads((out / "settings.json").read_text())["settings"]
    assert made["bbam"] == {"iterations": 2, "context_crop": True}  # part of the folder's key
