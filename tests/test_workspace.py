"""The notebooks' shared run folder: parameter checks and caching by settings."""

from __future__ import annotations

import pytest

from bbam_lite.workspace import ParameterError, Workspace, check_parameters, settings_key


@pytest.mark.parametrize(
    "args, message",
    [
        (("tiny", "synthetic", None, "cpu", 0, "r"), "unknown profile"),
        ((3, "synthetic", None, "cpu", 0, "r"), "expected a string"),
        (("smoke", "kitti", None, "cpu", 0, "r"), "dataset='kitti'"),
        (("smoke", "voc", None, "cpu", 0, "r"), "needs the path"),
        (("smoke", "synthetic", None, "cpu", "0", "r"), "seed='0': expected an integer"),
        (("smoke", "synthetic", None, "cpu", True, "r"), "expected an integer"),
        (("smoke", "synthetic", None, "tpu", 0, "r"), "device='tpu'"),
        (("smoke", "synthetic", None, "cpu", 0, 5), "run_dir=5"),
    ],
)
def test_bad_parameters_get_one_line_errors(args, message):
    with pytest.raises(ParameterError, match=message) as err:
        check_parameters(*args)
    assert "\n" not in str(err.value)


def test_settings_key_is_stable_and_order_free():
    assert settings_key({"a": 1, "b": [1, 2]}) == settings_key({"b": [1, 2], "a": 1})
    assert settings_key({"a": 1}) != settings_key({"a": 2})


def test_workspace_caches_data_labels_and_results(tmp_path):
    ws = Workspace.from_parameters("smoke", "synthetic", None, "cpu", 0, str(tmp_path))
    assert len(ws.data("train")) == ws.profile.n_train
    folder, q = ws.labels("box")
    assert q["images"] == ws.profile.label_images
    # a second workspace on the same folder reuses the labels instead of recomputing them
    stamp = (folder / "quality.json").stat().st_mtime_ns
    folder2, q2 = Workspace(tmp_path, "smoke").labels("box")
    assert folder2 == folder and q2 == q and (folder / "quality.json").stat().st_mtime_ns == stamp
    # other settings, other folder; a setting the method does not read names the same folder
    assert Workspace(tmp_path, "smoke").labels("box", detector_score=0.7)[0] != folder
    assert Workspace(tmp_path, "smoke").labels("box", theta_fg=0.7)[0] == folder
    calls = []
    compute = lambda: calls.append(1) or {"value": 3}  # noqa: E731
    assert ws.cached_json("study", {"x": 1}, compute) == {"value": 3}
    assert ws.cached_json("study", {"x": 1}, compute) == {"value": 3}
    assert len(calls) == 1


def test_cached_results_are_keyed_by_the_detector(tmp_path, monkeypatch):
    ws = Workspace.from_parameters("smoke", "synthetic", None, "cpu", 0, str(tmp_path))
    calls = []
    compute = lambda: calls.append(1) or {"value": len(calls)}  # noqa: E731
    assert ws.cached_json("study", {"x": 1}, compute) == {"value": 1}
    assert ws.cached_json("study", {"x": 1}, compute, uses_detector=False) == {"value": 2}
    other = Workspace(tmp_path, "smoke")
    monkeypatch.setattr(other, "detector_digest", lambda: "another-checkpoint")
    assert other.cached_json("study", {"x": 1}, compute) == {"value": 3}  # not the old detector's result
    assert other.cached_json("study", {"x": 1}, compute, uses_detector=False) == {"value": 2}


def test_workspace_with_another_detector(tmp_path, smoke_detector):
    ws = Workspace.from_parameters(
        "smoke", "synthetic", None, "cpu", 0, str(tmp_path), detector=str(smoke_detector)
    )
    assert ws.detector_path() == smoke_detector
    assert ws.detector_digest() != Workspace(tmp_path, "smoke").detector_digest()  # the shipped one's
    with pytest.raises(ParameterError, match="no-such.pt': no such checkpoint file") as err:
        Workspace(tmp_path, "smoke", detector=tmp_path / "no-such.pt")
    assert "\n" not in str(err.value)


def test_labels_folders_from_the_detector_are_keyed_by_its_checksum(tmp_path, monkeypatch):
    ws = Workspace(tmp_path, "smoke")
    bbam, box = ws.label_settings("bbam"), ws.label_settings("box")
    det_box = ws.label_settings("box", boxes="detector")
    before = [ws.labels_dir(s, "train", 2) for s in (bbam, box, det_box)]
    noisy = ws.labels_dir(bbam, "train", 2, tag="-noise+0.10", level=0.1)
    assert noisy.name.startswith("bbam-noise+0.10-") and noisy != ws.labels_dir(
        bbam, "train", 2, "-noise+0.10", level=0.2
    )
    monkeypatch.setattr(ws, "detector_digest", lambda: "another-checkpoint")
    after = [ws.labels_dir(s, "train", 2) for s in (bbam, box, det_box)]
    assert [a == b for a, b in zip(before, after, strict=True)] == [False, True, False]
    assert ws.labels_dir(bbam, "train", 2, tag="-noise+0.10", level=0.1) != noisy


def test_chapter_12_networks_are_keyed_by_the_detector(tmp_path, monkeypatch):
    from bbam_lite.experiments.networks import BOOK_SCHEDULES, book_settings

    ws = Workspace(tmp_path, "smoke")
    first = book_settings(ws, BOOK_SCHEDULES["smoke"]).out
    assert book_settings(ws, BOOK_SCHEDULES["smoke"]).out == first
    monkeypatch.setattr(ws, "detector_digest", lambda: "another-checkpoint")  # they start from it
    assert book_settings(ws, BOOK_SCHEDULES["smoke"]).out != first
