"""One labelling job: LabelJob.make decides when the detector and the mean are used and what the
labels folder records about the detector, the same way for every caller."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bbam_lite.data import load_dataset
from bbam_lite.pseudo.generate import generate
from bbam_lite.pseudo.job import DetectorRef, LabelJob, state_dict_digest
from bbam_lite.pseudo.settings import PseudoLabelSettings

BOX = PseudoLabelSettings(method="box", profile="lite")
BOX_DET = PseudoLabelSettings(method="box", boxes="detector", profile="lite")
BBAM = PseudoLabelSettings(method="bbam", profile="lite")


class Calls:
    """A lazy detector that counts its loads."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> torch.nn.Module:
        self.n += 1
        return torch.nn.Linear(1, 1)


@pytest.fixture(scope="module")
def ds(tiny_synth):
    return load_dataset("synthetic", tiny_synth, "train")


def test_detector_loaded_and_recorded_only_when_the_labels_use_it(ds, tmp_path) -> None:
    load = Calls()
    ref = DetectorRef.checkpoint("some/det.pt", load, resolve=False)
    job = LabelJob.make(ds, BOX, tmp_path, ref)
    assert job.detector is None and job.mean is None and job.provenance == {} and load.n == 0
    job = LabelJob.make(ds, BOX_DET, tmp_path, ref)  # detector boxes: loaded, recorded, no mean
    assert job.provenance == {"detector": "some/det.pt"} and load.n == 1 and job.mean is None
    job = LabelJob.make(ds, BBAM, tmp_path, ref, mean=lambda: torch.zeros(3))
    assert job.mean.tolist() == [0, 0, 0] and load.n == 2
    assert LabelJob.make(ds, BBAM, tmp_path, ref).mean.shape == (3,)  # the dataset's channel mean
    # stored maps: the detector is not run, but the labels still depend on it
    maps = PseudoLabelSettings(method="bbam", profile="lite", maps_from=str(tmp_path))
    job = LabelJob.make(ds, maps, tmp_path, ref)
    assert job.detector is None and job.mean is None and job.provenance == {"detector": "some/det.pt"}
    assert load.n == 3  # not for the stored maps
    # a function returning the ref is called only when the labels depend on the detector
    assert LabelJob.make(ds, BOX, tmp_path, lambda: 1 / 0).provenance == {}


def test_provenance_kinds(ds, tmp_path) -> None:
    model = torch.nn.Linear(2, 2)
    assert LabelJob.make(ds, BOX_DET, tmp_path, model).provenance == {}  # a bare model: nothing
    resolved = LabelJob.make(ds, BOX_DET, tmp_path, DetectorRef.checkpoint("d.pt", model)).provenance
    assert resolved == {"detector": str(Path("d.pt").resolve())}
    digest = LabelJob.make(ds, BOX_DET, tmp_path, DetectorRef.in_memory(model)).provenance
    assert digest == {"detector": {"state_dict_sha256": state_dict_digest(model)}}
    other = torch.nn.Linear(2, 2)
    with torch.no_grad():
        other.weight.copy_(model.weight)
        other.bias.copy_(model.bias + 1)
    assert state_dict_digest(other) != state_dict_digest(model)
    with pytest.raises(ValueError, match="needs a detector"):
        LabelJob.make(ds, BOX_DET, tmp_path)


def test_generate_records_the_jobs_provenance(ds, tmp_path) -> None:
    job = LabelJob.make(ds, BOX, tmp_path / "a", limit=2, progress=False)
    q = generate(job)
    assert q["images"] == 2 and q["method"] == "box"
    recorded = json.loads((tmp_path / "a" / "settings.json").read_text())
    assert recorded == {"settings": BOX.record(), "dataset": ds.name, "root": str(ds.root), "limit": 2}
    assert job.memory_budget is None and job.ranks.world_size == 1 and job.workers == 1
