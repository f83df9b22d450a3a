"""The synthetic generator: determinism, exact masks and tight boxes, the on-disk formats."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from bbam_lite.data import load_dataset
from bbam_lite.data.records import DataError
from bbam_lite.data.synthetic import (
    CLASSES,
    SynthSettings,
    ensure_synthetic,
    image_rng,
    parse_difficulty,
    render_scene,
    synthesize,
)


def _digest(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_images(tmp_path) -> None:
    s = SynthSettings(n_train=3, n_val=2, seed=11, size=80)
    a = _digest(synthesize(tmp_path / "a", s, progress=False))
    b = _digest(synthesize(tmp_path / "b", s, progress=False))
    assert a == b
    c = _digest(
        synthesize(tmp_path / "c", SynthSettings(n_train=3, n_val=2, seed=12, size=80), progress=False)
    )
    assert a["images/train/000000.jpg"] != c["images/train/000000.jpg"]


def test_image_stream_independent_of_split_size() -> None:
    first = render_scene(image_rng(5, "val", 0), 80, 0.5).image
    again = render_scene(image_rng(5, "val", 0), 80, 0.5).image
    other = render_scene(image_rng(5, "train", 0), 80, 0.5).image
    assert np.array_equal(first, again) and not np.array_equal(first, other)


@pytest.mark.parametrize("difficulty", [0.0, 0.5, 1.0])
def test_scene_masks_disjoint_boxes_tight(difficulty: float) -> None:
    for i in range(6):
        scene = render_scene(image_rng(1, "train", i), 96, difficulty)
        assert scene.image.shape == (96, 96, 3) and scene.image.dtype == np.uint8
        assert 1 <= len(scene.labels) <= 5
        assert set(scene.labels.tolist()) <= set(range(1, len(CLASSES) + 1))
        assert (scene.masks.sum(axis=0) <= 1).all(), "visible masks of different objects overlap"
        assert (scene.masks.reshape(len(scene.masks), -1).sum(1) >= 16).all()


def test_written_dataset_reads_back_through_coco_reader(tiny_synth) -> None:
    ds = load_dataset("synthetic", tiny_synth, "train")
    assert len(ds) == 8 and ds.class_names == ["background", *CLASSES]
    meta = json.loads((tiny_synth / "dataset.json").read_text())
    assert meta["settings"]["size"] == 96 and len(meta["mean_rgb"]) == 3
    for rec in ds:
        masks = rec.load_masks()
        image = rec.load_image()
        assert image.shape == (96, 96, 3)
        cls_png = np.asarray(
            Image.open(tiny_synth / "SegmentationClass" / "train" / rec.path.with_suffix(".png").name)
        )
        obj_png = np.asarray(
            Image.open(tiny_synth / "SegmentationObject" / "train" / rec.path.with_suffix(".png").name)
        )
        for k, (mask, box, label) in enumerate(zip(masks, rec.boxes, rec.labels, strict=True)):
            ys, xs = np.nonzero(mask)
            # the box is the tight box of the visible mask
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            assert (cls_png[mask] == label).all() and (obj_png[mask] == k + 1).all()
        assert (cls_png[~masks.any(0)] == 0).all()


def test_difficulty_names_and_bounds() -> None:
    assert parse_difficulty("easy") < parse_difficulty("medium") < parse_difficulty("hard")
    assert parse_difficulty("0.3") == 0.3
    for bad in ("extreme", "1.5", "-0.1"):
        with pytest.raises(ValueError, match="difficulty"):
            parse_difficulty(bad)


def test_difficulty_scales_clutter_and_noise() -> None:
    def roughness(d: float) -> float:
        imgs = [render_scene(image_rng(0, "train", i), 96, d).image.astype(float) for i in range(8)]
        return float(np.mean([np.abs(np.diff(im, axis=1)).mean() for im in imgs]))

    assert roughness(1.0) > roughness(0.0)


def test_refuses_to_overwrite_and_to_mix_settings(tiny_synth, tmp_path) -> None:
    with pytest.raises(FileExistsError):
        synthesize(tiny_synth, SynthSettings(n_train=8, n_val=4, seed=3, size=96), progress=False)
    assert ensure_synthetic(tiny_synth, SynthSettings(n_train=8, n_val=4, seed=3, size=96)) == tiny_synth
    with pytest.raises(DataError, match="other settings"):
        ensure_synthetic(tiny_synth, SynthSettings(n_train=8, n_val=4, seed=4, size=96))


def test_no_partial_dataset_left_after_failure(tmp_path, monkeypatch) -> None:
    import bbam_lite.data.synthetic as synth

    calls = {"n": 0}
    real = synth.render_scene

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synth, "render_scene", flaky)
    with pytest.raises(KeyboardInterrupt):
        synthesize(tmp_path / "out", SynthSettings(n_train=4, n_val=1, size=64), progress=False)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.iterdir()), "the partial folder was not cleaned up"
