"""``pseudo-labels --workers N``: the per-image CPU work in worker processes writes the same labels
folder, byte for byte, as one process; a run killed with its workers resumes to that folder; a
dead worker and a bad ``--workers`` are one-line errors (exit status 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from bbam_lite.cli import main
from bbam_lite.data import load_dataset
from bbam_lite.pseudo import workers as workers_module
from bbam_lite.pseudo.folder import label_bytes
from bbam_lite.pseudo.generate import generate
from bbam_lite.pseudo.job import LabelJob
from bbam_lite.pseudo.methods import ImageBoxes, LabelContext
from bbam_lite.pseudo.settings import PseudoLabelSettings
from bbam_lite.pseudo.workers import ImageJob, ImageWorkers, WorkerError, check_workers, default_workers

TINY_BBAM = {"iterations": 2, "n_jitter": 16, "max_positives": 4}


def test_default_workers_and_bad_values(monkeypatch) -> None:
    monkeypatch.setattr(workers_module, "available_cores", lambda: 64)
    assert default_workers() == 8 and default_workers(world_size=16) == 4
    monkeypatch.setattr(workers_module, "available_cores", lambda: 2)
    assert default_workers() == 2 and default_workers(world_size=4) == 1
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(WorkerError, match="--workers must be a positive integer"):
            check_workers(bad)


def test_bad_workers_is_one_line_and_exit_2(tiny_synth, tmp_path, capsys) -> None:
    out = tmp_path / "labels"
    argv = ["--quiet", "pseudo-labels", "--data", str(tiny_synth), "--method", "box", "--out", str(out)]
    assert main([*argv, "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "bbam-lite pseudo-labels: error: --workers must be a positive integer, got 0"
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["box_crf", "grabcut", "bbam"])
def test_workers_write_the_same_folder_byte_for_byte(method, tiny_synth, smoke_detector, tmp_path) -> None:
    from bbam_lite.detector.model import load_detector

    ds = load_dataset("synthetic", tiny_synth, "train")
    s = PseudoLabelSettings(method=method, profile="lite", bbam=TINY_BBAM if method == "bbam" else {})
    det = load_detector(smoke_detector, class_names=ds.class_names).model if s.needs_detector else None
    folders = {}
    for n in (1, 2):
        folders[n] = tmp_path / f"workers{n}"
        generate(LabelJob.make(ds, s, folders[n], det, limit=3, batch_images=2, progress=False, workers=n))
    one, two = label_bytes(folders[1]), label_bytes(folders[2])
    assert len(one) >= 3 * 2 + 3  # settings, instances, quality; per image a result and a class map
    assert one.keys() == two.keys() and [k for k in one if one[k] != two[k]] == []


@pytest.mark.slow
def test_a_run_killed_with_its_workers_resumes_to_the_same_folder(
    tiny_synth, smoke_detector, tmp_path
) -> None:
    """SIGKILL to the whole process group (main process, forkserver, workers) once an image is
    written; a rerun labels the rest, removes the killed run's temporary files, and the folder
    equals one written by a single process without interruption. (The killed run inherits this
    process's environment: BBAM's maps on the CPU depend on torch's thread count, which
    ``--workers`` leaves alone in the main process.)"""
    argv = ["pseudo-labels", "--data", str(tiny_synth), "--method", "bbam", "--detector", str(smoke_detector)]
    argv += ["--iterations", "2", "--batch-images", "1", "--limit", "3"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main(["--quiet", *argv, "--out", str(full), "--workers", "1"]) == 0

    cmd = [sys.executable, "-m", "bbam_lite", "--quiet", *argv, "--out", str(cut), "--workers", "2"]
    proc = subprocess.Popen(cmd, start_new_session=True, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    try:
        while not list((cut / "images").glob("*.npz")):
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "the run wrote no image in 120 s"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    done = len(list((cut / "images").glob("*.npz")))
    assert 1 <= done < 3 and not (cut / "instances.json").exists()
    assert main(["--quiet", *argv, "--out", str(cut), "--workers", "2"]) == 0
    assert json.loads((cut / "quality.json").read_text())["images_this_run"] == 3 - done
    one, two = label_bytes(full), label_bytes(cut)
    assert one.keys() == two.keys() and [k for k in one if one[k] != two[k]] == []


def test_a_dead_worker_is_one_line(tiny_synth) -> None:
    """A worker killed mid-image: WorkerError (a ValueError, so the CLI prints one line, status 2)."""
    rec = load_dataset("synthetic", tiny_synth, "train").records[0]
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (900, 900, 3), np.uint8)  # GrabCut takes seconds on it
    item = ImageBoxes(
        rec, image, np.array([[50, 50, 850, 850]], np.float32), np.array([1]), np.ones(1, np.float32)
    )
    job = ImageJob.of("grabcut", LabelContext(PseudoLabelSettings(method="grabcut")), "unused", item, None)
    with pytest.raises(WorkerError) as err, ImageWorkers(2) as pool:
        pool.submit(job)
        for _ in range(600):  # the worker is up once the pool lists it
            if pool._pool._processes:
                break
            time.sleep(0.05)
        for pid in list(pool._pool._processes):
            os.kill(pid, signal.SIGKILL)
        pool.finish()
    assert "a worker process died while labelling image" in str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_methods_that_use_the_detector_do_so_in_their_device_stage() -> None:
    """A worker's context has no detector: methods that need it override ``device_stage``."""
    from bbam_lite.pseudo.methods import Method, methods

    users = [m for m in methods() if m.needs_detector]
    assert users and all(type(m).device_stage is not Method.device_stage for m in users)


def test_a_job_carries_one_image_and_the_settings_only(tiny_synth) -> None:
    import pickle

    ds = load_dataset("synthetic", tiny_synth, "train")
    rec = ds.records[0]
    assert rec.has_masks
    image = rec.load_image()
    item = ImageBoxes(rec, image, rec.boxes, rec.labels, np.ones(len(rec.boxes), np.float32))
    ctx = LabelContext(PseudoLabelSettings(method="box"), detector=object(), mean=np.zeros(3), device="cuda")
    job = ImageJob.of("box", ctx, "labels", item, None)
    assert job.ctx == LabelContext(ctx.settings) and not job.item.record.has_masks
    assert len(pickle.dumps(job)) < image.nbytes + 4096
