"""The dataset reader registry: detection, the commands' --dataset choices and loading derive from
it, so a reader registered in one module is usable everywhere."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bbam_lite.cli import build_parser
from bbam_lite.data import DatasetReader, dataset_kind, load_dataset, reader_names, register_reader, registry
from bbam_lite.data.coco import read_coco
from bbam_lite.data.registry import annotation_splits


def test_the_shipped_readers_and_their_detection(tmp_path) -> None:
    assert reader_names() == ("synthetic", "voc", "coco")  # detection order, the fallback last
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "dataset.json").write_text("{}")
    (tmp_path / "v" / "Annotations").mkdir(parents=True)
    (tmp_path / "c").mkdir()
    assert [dataset_kind(tmp_path / k) for k in "svc"] == ["synthetic", "voc", "coco"]
    assert dataset_kind(tmp_path / "s", "coco") == "coco"  # a named kind is not second-guessed
    with pytest.raises(ValueError, match="unknown dataset kind 'nope'; choose one of synthetic, voc, coco"):
        dataset_kind(tmp_path / "s", "nope")


@pytest.fixture
def flat_reader(monkeypatch):
    """A new kind, ``flat``: a folder with a FLAT marker and the synthetic set's COCO layout."""

    def read(root: Path, split: str):
        return read_coco(
            root / "annotations" / f"{split}.json", root / "images" / split, name=f"flat-{split}"
        )

    reader = DatasetReader(
        name="flat",
        read=read,
        split_files=lambda root, split: [root / "annotations" / f"{split}.json"],
        available_splits=annotation_splits,
        detect=lambda root: (root / "FLAT").exists(),
        detected_by="DATA/FLAT exists",
        order=5,
    )
    registry.readers()  # the shipped readers first, so that the new one is removed afterwards
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_reader(reader)
    return reader


def test_a_registered_reader_is_detected_loaded_and_offered_by_every_command(
    flat_reader, tiny_synth, tmp_path
) -> None:
    root = tmp_path / "flat"
    shutil.copytree(tiny_synth / "annotations", root / "annotations")
    shutil.copytree(tiny_synth / "images", root / "images")
    (root / "FLAT").touch()
    assert "flat" in reader_names() and dataset_kind(root) == "flat"
    ds = load_dataset("auto", root, "val")
    assert (
        ds.name == "flat-val"
        and len(ds) == json.loads((tiny_synth / "dataset.json").read_text())["splits"]["val"]["images"]
    )
    with pytest.raises(Exception, match=r"no split 'test' .*splits here: train, val.*--split"):
        load_dataset("flat", root, "test", split_option="--split")

    parser = build_parser()
    out = str(tmp_path / "out")
    for argv in (
        ["train-detector", "--data", str(root), "--out", out],
        ["pseudo-labels", "--data", str(root), "--out", out, "--method", "box"],
        ["train-seg", "--data", str(root), "--out", out, "--task", "semantic", "--labels", "gt"],
        ["evaluate", "--run", out],
    ):
        assert parser.parse_args([*argv, "--dataset", "flat"]).dataset == "flat"
    assert "DATA/FLAT exists" in parser._subparsers._group_actions[0].choices["train-seg"].format_help()
