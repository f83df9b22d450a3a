"""Labels that belong to other images are refused, empty inputs are named, and a rerun of
``pseudo-labels`` repairs a damaged class map: each through the command, one line, exit status 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bbam_lite.cli import main
from bbam_lite.pseudo.folder import label_bytes


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(["--quiet", *argv])
    out = capsys.readouterr()
    return status, out.out, out.err.strip()


def _one_error(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and ": error: " in lines[0], err
    return lines[0]


@pytest.fixture(scope="module")
def labels(tiny_synth, tmp_path_factory) -> dict[str, Path]:
    """Box labels of the tiny set's val split, of its first 3 train images, and of the train
    split of another seed of the synthetic set (same ids and file names, other images)."""
    from bbam_lite.data.synthetic import SynthSettings, synthesize

    root = tmp_path_factory.mktemp("labels")
    other = synthesize(root / "seed4", SynthSettings(n_train=8, n_val=4, seed=4, size=96), progress=False)
    out = {"val": root / "val", "limit3": root / "limit3", "seed4": root / "seed4-labels"}
    made = [
        (tiny_synth, ["--split", "val"], out["val"]),
        (tiny_synth, ["--limit", "3"], out["limit3"]),
        (other, ["--limit", "3"], out["seed4"]),
    ]
    for data, extra, folder in made:
        argv = ["--quiet", "pseudo-labels", "--data", str(data), "--method", "box", *extra]
        assert main([*argv, "--workers", "1", "--out", str(folder)]) == 0
    return out


def _train_seg(tiny_synth, folder, out, split: str = "train") -> list[str]:
    return ["train-seg", "--task", "semantic", "--data", str(tiny_synth), "--labels", str(folder),
            "--out", str(out), "--profile", "smoke", "--iterations", "1", "--eval-images", "0",
            "--init", "none", "--train-split", split]  # fmt: skip


def test_labels_of_another_split_are_refused(tiny_synth, labels, tmp_path, capsys) -> None:
    status, _, err = _run(capsys, *_train_seg(tiny_synth, labels["val"], tmp_path / "run"))
    line = _one_error(err)
    assert status == 2 and str(labels["val"]) in line
    assert "labels synthetic-val (4 images" in line and "not synthetic-train (8 images" in line
    assert not (tmp_path / "run").exists()
    status, _, err = _run(capsys, "evaluate", "--labels", str(labels["val"]), "--data", str(tiny_synth),
                          "--split", "train")  # fmt: skip
    assert status == 2 and "labels synthetic-val" in _one_error(err)


def test_labels_of_another_seed_of_the_dataset_are_refused(tiny_synth, labels, tmp_path, capsys) -> None:
    status, _, err = _run(capsys, *_train_seg(tiny_synth, labels["seed4"], tmp_path / "run"))
    line = _one_error(err)
    assert status == 2 and "other images under the same ids and names" in line
    other = labels["seed4"].parent / "seed4"
    assert str(Path(tiny_synth).resolve()) in line and str(other.resolve()) in line


def test_a_subset_is_used_with_a_warning_and_an_old_folder_is_checked_by_its_settings(
    tiny_synth, labels, tmp_path, capsys
) -> None:
    status, out, err = _run(capsys, *_train_seg(tiny_synth, labels["limit3"], tmp_path / "run"))
    assert status == 0 and "3 training images" in out, err
    assert err.count("warning") == 1 and "labels 3 of the 8 images of synthetic-train" in err

    old = tmp_path / "old"  # a folder made before identity.json: its settings.json decides
    shutil.copytree(labels["limit3"], old)
    (old / "identity.json").unlink()
    status, _, err = _run(capsys, "evaluate", "--labels", str(old), "--data", str(tiny_synth),
                          "--split", "train")  # fmt: skip
    assert status == 0 and err.count("\n") == 0 and "made before labels folders recorded" in err
    old_val = tmp_path / "old-val"
    shutil.copytree(labels["val"], old_val)
    (old_val / "identity.json").unlink()
    status, _, err = _run(capsys, *_train_seg(tiny_synth, old_val, tmp_path / "run2"))
    assert status == 2 and "another split or dataset (its settings.json)" in _one_error(err)


def test_pseudo_labels_refuses_to_add_other_images_to_a_folder(tiny_synth, labels, tmp_path, capsys) -> None:
    folder = tmp_path / "l"
    shutil.copytree(labels["limit3"], folder)
    identity = json.loads((folder / "identity.json").read_text())
    identity["digest"] = "0" * 16  # as if the dataset under that root had been generated again
    (folder / "identity.json").write_text(json.dumps(identity))
    status, _, err = _run(capsys, "pseudo-labels", "--data", str(tiny_synth), "--method", "box",
                          "--limit", "3", "--workers", "1", "--out", str(folder))  # fmt: skip
    assert status == 2 and "use another --out" in _one_error(err)


# ----------------------------------------------------------------------------------- empty inputs


@pytest.fixture(scope="module")
def empty_val(tiny_synth, tmp_path_factory) -> Path:
    """The tiny set with an empty val split."""
    data = tmp_path_factory.mktemp("empty") / "data"
    shutil.copytree(tiny_synth, data)
    path = data / "annotations" / "val.json"
    ann = json.loads(path.read_text())
    path.write_text(json.dumps({**ann, "images": [], "annotations": []}))
    return data


def test_empty_splits_are_one_line_each(empty_val, tmp_path, capsys) -> None:
    data = ["--data", str(empty_val)]
    out = ["--out", str(tmp_path / "out")]
    cases = [
        (["train-detector", *data, *out, "--train-split", "val"], "to train on (--train-split val)"),
        (["pseudo-labels", *data, *out, "--split", "val", "--method", "box"], "to label (--split val)"),
        (["eval-detector", *data], "to score (--split val)"),
        (["evaluate", "--labels", str(tmp_path), *data], "to score (--split val)"),
    ]
    for argv, what in cases:
        status, _, err = _run(capsys, *argv)
        line = _one_error(err)
        assert status == 2 and f"synthetic-val ({empty_val / 'images' / 'val'}) has no images {what}" in line
        assert not (tmp_path / "out").exists()


def test_an_empty_val_split_is_not_scored(empty_val, tmp_path, capsys) -> None:
    out = tmp_path / "det"
    status, stdout, err = _run(capsys, "train-detector", "--data", str(empty_val), "--profile", "smoke",
                               "--iterations", "1", "--out", str(out))  # fmt: skip
    assert status == 0, err
    assert "not scored: synthetic-val has no images (--val-split val)" in stdout and "AP" not in stdout
    assert (out / "detector.pt").is_file()


def test_an_empty_labels_folder_says_what_is_missing(tiny_synth, labels, tmp_path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    status, _, err = _run(capsys, *_train_seg(tiny_synth, empty, tmp_path / "run"))
    line = _one_error(err)
    assert status == 2 and f"{empty}: empty folder, no labels (no settings.json, no semantic/)" in line
    unfinished = tmp_path / "unfinished"  # a labels folder whose run labelled no image yet
    shutil.copytree(labels["val"], unfinished)
    shutil.rmtree(unfinished / "semantic")
    status, _, err = _run(capsys, *_train_seg(tiny_synth, unfinished, tmp_path / "run", "val"))
    line = _one_error(err)
    assert status == 2 and f"{unfinished}: labels folder holds no semantic labels" in line
    assert "not a bbam-lite labels folder" not in line


# ------------------------------------------------------------------------- a damaged class map


def test_a_rerun_recomputes_a_truncated_class_map(tiny_synth, labels, tmp_path, capsys) -> None:
    folder = tmp_path / "l"
    shutil.copytree(labels["limit3"], folder)
    png = sorted((folder / "semantic").glob("*.png"))[1]
    png.write_bytes(png.read_bytes()[:60])
    status, _, err = _run(capsys, "pseudo-labels", "--data", str(tiny_synth), "--method", "box",
                          "--limit", "3", "--workers", "1", "--out", str(folder))  # fmt: skip
    assert status == 0 and err.count("\n") == 0 and f"{png}: damaged class map" in err
    assert "labelling image" in err
    one, two = label_bytes(labels["limit3"]), label_bytes(folder)
    assert one.keys() == two.keys() and [k for k in one if one[k] != two[k]] == []
