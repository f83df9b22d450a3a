"""The registry of pseudo-label methods: every method runs and writes a valid labels folder, and
everything that lists methods derives from the registry."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from bbam_lite.data.coco import load_coco_json
from bbam_lite.data.synthetic import read_synthetic
from bbam_lite.detector.model import load_detector
from bbam_lite.pseudo import methods
from bbam_lite.pseudo.folder import LabelsFolder
from bbam_lite.pseudo.generate import generate
from bbam_lite.pseudo.job import LabelJob
from bbam_lite.pseudo.settings import PseudoLabelSettings

TINY_BBAM = {"iterations": 2, "n_jitter": 16, "max_positives": 4}


@pytest.fixture(scope="module")
def every_method(tiny_synth, smoke_detector, tmp_path_factory):
    """Each registered method's labels of 3 tiny images: {name: (folder, quality)}."""
    ds = read_synthetic(tiny_synth, "train")
    det = load_detector(smoke_detector, class_names=ds.class_names).model
    out = tmp_path_factory.mktemp("methods")
    done = {}
    for m in methods.methods():
        s = PseudoLabelSettings(method=m.name, profile="lite", bbam=TINY_BBAM if "bbam" in m.settings else {})
        q = generate(LabelJob.make(ds, s, out / m.name, det, limit=3, progress=False))
        done[m.name] = (out / m.name, q)
    return ds, done


def test_every_registered_method_writes_a_valid_labels_folder(every_method) -> None:
    ds, done = every_method
    assert set(done) == set(methods.method_names()) and {"box", "box_crf", "grabcut", "bbam"} <= set(done)
    recs = list(ds)[:3]
    for name, (path, q) in done.items():
        folder = LabelsFolder(path)
        assert q["method"] == name and q["images"] == 3 and 0 <= q["miou"] <= 1
        assert folder.quality() == json.loads(json.dumps(q))
        coco = load_coco_json(folder.instances_path)
        assert {im["id"] for im in coco["images"]} == {r.image_id for r in recs}
        for rec in recs:
            insts, info = folder.read_image(rec.image_id)
            assert len(insts) == len(rec.boxes) == len(info)
            for inst in insts:  # foreground, ignore and background per box: disjoint masks
                assert inst.fg.shape == (rec.height, rec.width) and not (inst.fg & inst.ignore).any()
            sem = folder.read_semantic(rec)
            assert sem.shape == (rec.height, rec.width)
            assert set(np.unique(sem)) <= set(range(len(ds.class_names))) | {255}
        assert folder.label_settings().method == name
        assert folder.finished() == sorted(r.image_id for r in recs)
        assert all(folder.has_maps(r.image_id) for r in recs) == methods.get_method(name).stores_maps


def test_everything_that_lists_methods_derives_from_the_registry() -> None:
    from bbam_lite.analysis.plots import COLOURS, METHOD_NAMES
    from bbam_lite.cli import build_parser
    from bbam_lite.experiments import demo_variants
    from bbam_lite.experiments.networks import MAIN_ROWS, ROWS

    names = methods.method_names()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    choices = next(a for a in sub.choices["pseudo-labels"]._actions if a.dest == "method").choices
    assert tuple(choices) == names
    variants = methods.variants()
    assert (
        set(demo_variants()) <= set(variants)
        and set(variants) <= set(ROWS)
        and set(variants) <= set(MAIN_ROWS)
    )
    for m in methods.methods():
        assert COLOURS[m.name] == m.colour and METHOD_NAMES[m.name]
        assert m.name in variants or any(v.method == m.name for v in variants.values())
    with pytest.raises(ValueError, match="unknown pseudo-label method 'nope'; choose one of"):
        PseudoLabelSettings(method="nope")


def test_pseudo_labels_help_lists_every_method(capsys) -> None:
    from bbam_lite.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["pseudo-labels", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert exit_.value.code == 0
    for m in methods.methods():
        assert f"{m.name}: {' '.join(m.summary.split())}" in out


def test_no_module_outside_the_registry_branches_on_a_method_name() -> None:
    """``method == "bbam"`` and friends belong in the method modules, nowhere else."""
    root = Path(__file__).resolve().parents[1] / "bbam_lite"
    names = "|".join(re.escape(n) for n in methods.method_names())
    pattern = re.compile(
        rf"""(==|!=)\s*["']({names})["']|["']({names})["']\s*(==|!=)|method\w*\s+(not\s+)?in\s*[(\[{{]"""
    )
    offenders = []
    for path in root.rglob("*.py"):
        if "pseudo/methods" in path.as_posix():
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(root)}:{i}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_settings_record_holds_what_the_method_reads() -> None:
    box = PseudoLabelSettings(method="box", profile="lite")
    assert "preset" not in box.record() and "theta_fg" not in box.record()
    assert (
        PseudoLabelSettings(method="box", preset="paper").record()
        == PseudoLabelSettings(method="box").record()
    )
    bbam = PseudoLabelSettings(method="bbam").record()
    assert bbam["preset"] == "official" and "maps_from" not in bbam  # the authors' code is the default
    with pytest.raises(ValueError, match="stores none"):
        PseudoLabelSettings(method="grabcut", maps_from="x")


def test_generator_and_ablation_share_one_post_processing_path(every_method, tmp_path) -> None:
    """The authors' rule with proposal refinement, once through the generator (stored maps reused)
    and once through chapter 6's ablation, gives the same labels (before the registry the ablation
    refined with the paper's containment 1.0 and no minimum box side)."""
    from dataclasses import replace

    from bbam_lite.pseudo.ablation import Variant, rederive

    ds, done = every_method
    base_dir, _ = done["bbam"]
    base = LabelsFolder(base_dir).label_settings()
    assert base.preset == "official"
    refined = replace(base, refine="proposals", maps_from=str(base_dir))
    q = generate(LabelJob.make(ds, refined, tmp_path / "refined", limit=3, progress=False))
    ab = rederive(ds, base_dir, {"v": Variant(rule="quantiles", refine=True)}, base, limit=3)["v"]
    for key in ("miou", "ignore_fraction", "miou_ignore_as_background", "mean_instance_iou"):
        assert ab[key] == q[key], key
