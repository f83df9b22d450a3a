"""Pseudo labels over several processes: torchrun with 2 CPU processes (gloo) shards the images,
a rerun resumes, rank 0 merges the one COCO JSON, and the result equals a single-process run."""

from __future__ import annotations

import json
import shutil

import pytest

from bbam_lite.data import load_dataset
from bbam_lite.pseudo.generate import generate, shard
from bbam_lite.pseudo.job import LabelJob
from bbam_lite.pseudo.settings import PseudoLabelSettings


def test_shards_are_disjoint_complete_and_stable() -> None:
    items = list(range(11))
    parts = [shard(items, r, 3) for r in range(3)]
    assert sorted(sum(parts, [])) == items
    assert all(set(a).isdisjoint(b) for i, a in enumerate(parts) for b in parts[i + 1 :])
    assert parts[1] == [1, 4, 7, 10] and shard(items, 0, 1) == items
    blocks = [shard(items, r, 2, block=4) for r in range(2)]  # BBAM: whole batches of images
    assert blocks == [[0, 1, 2, 3, 8, 9, 10], [4, 5, 6, 7]]
    with pytest.raises(ValueError):
        shard(items, 3, 3)


def test_torchrun_two_processes_resume_shards_and_merge(tiny_synth, tmp_path, torchrun) -> None:
    """One process labels everything; a copy that lost 3 images' outputs and the merge is finished by
    ``torchrun --nproc-per-node 2``: each rank redoes only its own missing images, rank 0 merges,
    and the COCO JSON equals the single-process one byte for byte."""
    ds = load_dataset("synthetic", tiny_synth, "train")
    one, two = tmp_path / "one", tmp_path / "two"
    q1 = generate(
        LabelJob.make(ds, PseudoLabelSettings(method="box_crf", profile="lite"), one, progress=False)
    )
    shutil.copytree(one, two)
    lost = [r.image_id for r in ds][1:4]  # positions 1, 2, 3: both ranks have work
    for image_id in lost:
        (two / "images" / f"{image_id}.npz").unlink()
    (two / "instances.json").unlink()
    (two / "quality.json").unlink()

    run = torchrun(
        ["pseudo-labels", "--data", str(tiny_synth), "--method", "box_crf", "--out", str(two)],
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("8 images") == 1  # only rank 0 merges and reports
    ranks = [json.loads((two / "ranks" / f"{r}-of-2.json").read_text()) for r in range(2)]
    ids = [r.image_id for r in ds]
    assert [r["images"] for r in ranks] == [ids[0::2], ids[1::2]]  # disjoint, complete, by position
    assert sorted(ranks[0]["done_this_run"] + ranks[1]["done_this_run"]) == sorted(lost)
    assert ranks[0]["done_this_run"] == [lost[1]] and ranks[1]["done_this_run"] == [lost[0], lost[2]]
    assert (two / "instances.json").read_bytes() == (one / "instances.json").read_bytes()
    q2 = json.loads((two / "quality.json").read_text())
    assert q2["miou"] == q1["miou"] and q2["images_this_run"] == 3 and q2["images"] == 8


def test_ranks_from_the_environment(monkeypatch) -> None:
    from bbam_lite.utils.distributed import env_ranks

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert env_ranks().world_size == 1 and env_ranks().is_main
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    r = env_ranks()
    assert (r.rank, r.world_size, r.device("cuda"), r.device("cpu")) == (1, 4, "cuda:1", "cpu")
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="RANK=4"):
        env_ranks()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ValueError, match="not an integer"):
        env_ranks()


def test_bad_engine_options_are_one_line_errors(tiny_synth, capsys) -> None:
    from bbam_lite.cli import main

    argv = ["--quiet", "pseudo-labels", "--data", str(tiny_synth), "--method", "bbam", "--out", "unused"]
    assert main([*argv, "--batch-objects", "0"]) == 2
    assert "--batch-objects must be a positive integer or auto" in capsys.readouterr().err
