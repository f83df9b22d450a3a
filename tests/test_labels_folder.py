"""The labels folder type: round trip, refusal of other settings, and its faults (a damaged
per-image file, a zero-byte instances.json, a full disk) handled in one line with nothing lost."""

from __future__ import annotations

import errno
import json

import numpy as np
import pytest

from bbam_lite.cli import main
from bbam_lite.data.synthetic import read_synthetic
from bbam_lite.pseudo.folder import ImageLabels, LabelsFolder, LabelsFolderError
from bbam_lite.pseudo.labels import InstanceLabel
from bbam_lite.utils.run_folder import RunSettingsError


def test_round_trip(tmp_path, tiny_synth) -> None:
    rec = list(read_synthetic(tiny_synth, "train"))[0]
    folder = LabelsFolder(tmp_path / "labels")
    h, w = rec.height, rec.width
    fg = np.zeros((h, w), bool)
    fg[5:20, 6:30] = True
    ign = np.zeros((h, w), bool)
    ign[3:5, 6:30] = True
    insts = [InstanceLabel(2, np.array([1, 2, 40, 30], np.float32), fg, ign, 0.75, {"stride": 3.5})]
    maps = np.random.default_rng(0).random((1, h, w)).astype(np.float16)
    sem = np.where(fg, 2, np.where(ign, 255, 0)).astype(np.uint8)
    folder.write_image(rec, ImageLabels(insts, [{"stride": 3.5}], {"bbam": maps}), sem)
    back, info = folder.read_image(rec.image_id)
    assert info == [{"stride": 3.5}] and back[0].label == 2 and back[0].score == 0.75
    assert (back[0].fg == fg).all() and (back[0].ignore == ign).all() and (back[0].box == insts[0].box).all()
    assert (folder.read_semantic(rec) == sem).all()
    assert (folder.read_maps(rec.image_id) == maps.astype(np.float32)).all()
    assert folder.finished() == [rec.image_id] and folder.pending([rec]) == []
    assert folder.quality() is None  # not finished
    with pytest.raises(LabelsFolderError, match="no stored maps"):
        folder.read_maps(rec.image_id + 1)


def test_a_folder_made_with_other_settings_is_refused(tmp_path) -> None:
    folder = LabelsFolder(tmp_path / "labels")
    folder.check_settings({"settings": {"method": "box"}, "limit": 3})
    folder.check_settings({"settings": {"method": "box"}, "limit": 3})
    with pytest.raises(RunSettingsError, match="differs in limit"):
        folder.check_settings({"settings": {"method": "box"}, "limit": 4})


def _labels(argv, out, capsys) -> tuple[int, str]:
    status = main(["--quiet", "pseudo-labels", *argv, "--out", str(out)])
    return status, capsys.readouterr().err


def _outputs(folder) -> dict:
    inst = json.loads((folder / "instances.json").read_text())
    pngs = {p.name: p.read_bytes() for p in sorted((folder / "semantic").glob("*.png"))}
    return {
        "annotations": inst["annotations"],
        "pngs": pngs,
        "quality": json.loads((folder / "quality.json").read_text())["miou"],
    }


def test_damaged_files_are_reported_and_recomputed(tmp_path, tiny_synth, capsys) -> None:
    argv = ["--data", str(tiny_synth), "--method", "box_crf", "--limit", "3"]
    assert _labels(argv, tmp_path / "ref", capsys)[0] == 0
    out = tmp_path / "labels"
    assert _labels(argv, out, capsys)[0] == 0
    ids = LabelsFolder(out).finished()
    truncated = LabelsFolder(out).result_path(ids[0])
    truncated.write_bytes(truncated.read_bytes()[:40])  # a killed copy, a bad disk
    LabelsFolder(out).result_path(ids[1]).write_bytes(b"not a zip at all")
    (out / "instances.json").write_bytes(b"")  # zero bytes
    status, err = _labels(argv, out, capsys)
    assert status == 0
    lines = err.strip().splitlines()  # one line per damaged file, naming it; both images redone
    assert len(lines) == 2 and all("warning: " in ln and "labelling image" in ln for ln in lines), err
    assert f"{truncated}: damaged per-image result" in lines[0] and "not a zip archive" in lines[1]
    assert _outputs(out) == _outputs(tmp_path / "ref")
    # a damaged maps file named in one line by the readers
    maps = LabelsFolder(tmp_path / "m").maps_path(1)
    maps.parent.mkdir(parents=True)
    maps.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(LabelsFolderError, match="damaged maps file"):
        LabelsFolder(tmp_path / "m").read_maps(1)


def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(
    tmp_path, tiny_synth, capsys, monkeypatch
) -> None:
    from PIL import Image

    real = Image.Image.save
    calls = {"n": 0}

    def full_disk(self, fp, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second image's class map
            with open(fp, "wb") as f:
                f.write(b"\x89PNG half")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", full_disk)
    out = tmp_path / "labels"
    # --workers 1: the images are written in this process, where PIL is patched
    argv = ["--data", str(tiny_synth), "--method", "box", "--limit", "3", "--workers", "1"]
    status, err = _labels(argv, out, capsys)
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert str(out) in err and "No space left on device" in err and "semantic/" in err
    folder = LabelsFolder(out)
    assert len(folder.finished()) == 1  # the first image; the second left nothing under a final name
    assert len(list((out / "semantic").glob("*.png"))) == 1 and not list(out.rglob("*.tmp"))
    assert not (out / "instances.json").exists() and not (out / "quality.json").exists()
    monkeypatch.setattr(Image.Image, "save", real)
    assert _labels(argv, out, capsys)[0] == 0 and len(folder.finished()) == 3
