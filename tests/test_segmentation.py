"""Segmentation networks on pseudo labels: ignore-aware losses, seed growing, AP / ABO on hand-made
cases, smoke training of both networks through the CLI, resume after an interruption."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bbam_lite.cli import main
from bbam_lite.data import load_dataset
from bbam_lite.data.records import BoxDataset, DataError, ImageRecord
from bbam_lite.segment.evaluate import InstanceScorer
from bbam_lite.segment.instance import ignore_aware_mask_loss, project_on_boxes
from bbam_lite.segment.seed_growing import IGNORE, SeedGrowing, grow_seeds
from bbam_lite.segment.semantic import semantic_loss

# --------------------------------------------------------------------------------------------
# Losses: ignored pixels get no gradient.


def test_semantic_loss_gives_ignored_pixels_no_gradient() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 6, 7, requires_grad=True)
    target = torch.randint(0, 4, (2, 6, 7))
    target[0, :3] = IGNORE
    target[1, :, 5:] = IGNORE
    loss, stats = semantic_loss(logits, target)
    loss.backward()
    ignored = (target == IGNORE)[:, None].expand_as(logits)
    assert stats == {"ignored": int((target == IGNORE).sum()), "grown": 0}
    assert torch.all(logits.grad[ignored] == 0)
    assert torch.all(logits.grad[~ignored].abs().reshape(-1, 4).sum(-1) > 0)
    # the loss is the mean cross-entropy over the labelled pixels only
    keep = target != IGNORE
    expected = F.cross_entropy(logits.permute(0, 2, 3, 1)[keep], target[keep])
    torch.testing.assert_close(loss, expected)
    everything = torch.full_like(target, IGNORE)
    zero, _ = semantic_loss(logits, everything)
    assert zero.item() == 0.0


def test_mask_loss_skips_ignored_cells_and_matches_plain_bce_on_the_rest() -> None:
    torch.manual_seed(1)
    size = 8
    # one 8x8 image whose mask grid equals its pixel grid: the RoI is the whole image
    gt = torch.zeros(1, size, size, dtype=torch.uint8)
    gt[0, 2:6, 1:5] = 1
    gt[0, :, 6:] = IGNORE
    box = torch.tensor([[0.0, 0.0, float(size), float(size)]])
    logits = torch.randn(1, 3, size, size, requires_grad=True)  # 3 classes; the object is class 2
    loss, stats = ignore_aware_mask_loss(logits, [box], [gt], [torch.tensor([2])], [torch.tensor([0])])
    loss.backward()
    assert stats["ignored"] == size * 2
    grad = logits.grad[0, 2]
    assert torch.all(grad[:, 6:] == 0) and torch.all(grad[:, :6] != 0)
    assert torch.all(logits.grad[0, :2] == 0)  # other classes' masks are not trained
    keep = gt[0] != IGNORE
    expected = F.binary_cross_entropy_with_logits(logits[0, 2][keep], (gt[0][keep] == 1).float())
    torch.testing.assert_close(loss, expected)


def test_projection_on_boxes_crops_and_resamples_the_matched_mask() -> None:
    masks = torch.zeros(2, 1, 20, 20)
    masks[1, 0, 4:12, 8:16] = 1
    out = project_on_boxes(
        masks, torch.tensor([[8.0, 4.0, 16.0, 12.0], [0.0, 0.0, 4.0, 4.0]]), torch.tensor([1, 1]), 4
    )
    assert out.shape == (2, 1, 4, 4)
    torch.testing.assert_close(out[0, 0, 1:3, 1:3], torch.ones(2, 2))  # inside the object
    assert out[1].max() == 0  # a box away from the object


# --------------------------------------------------------------------------------------------
# Seed growing.


def test_seed_growing_follows_dsrg_rules() -> None:
    # one row: object seed at 0, background seed at 5; the network's P(object) per pixel
    labels = torch.tensor([[[1, IGNORE, IGNORE, IGNORE, IGNORE, 0, IGNORE, IGNORE]]])
    p_obj = torch.tensor([[[0.999, 0.995, 0.995, 0.6, 0.995, 0.01, 0.01, 0.995]]])
    probs = torch.stack([1 - p_obj, p_obj], 1)
    grown = grow_seeds(labels, probs, SeedGrowing().thresholds(2))
    # 1, 2: confident, connected to the object seed -> object; 3: not confident enough;
    # 4: confident object but cut off from object seeds; 6: confident background next to the
    # background seed; 7: confident object, but touches only background -> stays undecided
    assert grown.tolist() == [[[1, 1, 1, IGNORE, IGNORE, 0, 0, IGNORE]]]
    # decided pixels never change, however confident the network is otherwise
    against = torch.stack([p_obj, 1 - p_obj], 1)
    assert grow_seeds(labels, against, SeedGrowing().thresholds(2))[0, 0, [0, 5]].tolist() == [1, 0]
    # a lower object threshold lets pixel 3 through, and then pixel 4 too
    loose = SeedGrowing(theta_fg=0.55).thresholds(2)
    assert grow_seeds(labels, probs, loose).tolist() == [[[1, 1, 1, 1, 1, 0, 0, IGNORE]]]


def test_seed_growing_schedule_and_thresholds() -> None:
    g = SeedGrowing(start=0.2)
    assert [g.active(it, 100) for it in (0, 19, 20, 99)] == [False, False, True, True]
    assert not SeedGrowing(enabled=False).active(99, 100)
    assert SeedGrowing(start=0.0).active(0, 100)
    torch.testing.assert_close(SeedGrowing().thresholds(3), torch.tensor([0.85, 0.99, 0.99]))
    with pytest.raises(ValueError, match="theta_fg"):
        SeedGrowing(theta_fg=0.3)
    with pytest.raises(ValueError, match="start"):
        SeedGrowing(start=1.5)


def test_growing_in_the_semantic_loss_labels_confident_ignored_pixels() -> None:
    logits = torch.zeros(1, 2, 1, 4)
    logits[0, 1] = torch.tensor([8.0, 8.0, 8.0, -8.0])  # confident object, then confident background
    logits.requires_grad_(True)
    target = torch.tensor([[[1, IGNORE, IGNORE, IGNORE]]])
    loss, stats = semantic_loss(logits, target, SeedGrowing(start=0.0))
    loss.backward()
    assert stats == {"ignored": 3, "grown": 2}  # pixel 3 touches no background seed
    assert logits.grad[0, :, 0, 3].abs().sum() == 0 and logits.grad[0, :, 0, 1].abs().sum() > 0


# --------------------------------------------------------------------------------------------
# AP and ABO on hand-made cases.


def _one_image_dataset(gt_masks: np.ndarray, labels: list[int]) -> BoxDataset:
    boxes = []
    for m in gt_masks:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    rec = ImageRecord(
        1,
        Path("img.jpg"),
        gt_masks.shape[2],
        gt_masks.shape[1],
        np.array(boxes, np.float32),
        np.array(labels),
        lambda: gt_masks,
    )
    return BoxDataset([rec], ["background", "a", "b"])


def _score(ds: BoxDataset, masks: list[np.ndarray], labels: list[int], scores: list[float]) -> dict:
    scorer = InstanceScorer(ds)
    rec = ds[0]
    pred = np.array(masks, bool).reshape(-1, rec.height, rec.width)
    scorer.add(rec.image_id, rec.load_masks(), pred, labels, scores)
    return scorer.result()


@pytest.fixture(scope="module")
def square() -> tuple[BoxDataset, np.ndarray]:
    gt = np.zeros((1, 40, 40), bool)
    gt[0, 10:20, 10:20] = True  # 100 px: a COCO "small" object
    return _one_image_dataset(gt, [1]), gt[0]


def test_ap_is_one_for_a_perfect_mask(square) -> None:
    ds, gt = square
    r = _score(ds, [gt], [1], [0.9])
    for k in ("ap25", "ap50", "ap70", "ap75", "ap", "ap_s"):
        assert r[k] == pytest.approx(1.0), k
    assert r["ap_m"] is None and r["ap_l"] is None  # no medium or large objects to find
    assert r["abo"] == pytest.approx(1.0) and r["instances"] == 1 and r["predictions"] == 1


def test_ap_at_each_threshold_for_a_mask_of_iou_062(square) -> None:
    ds, gt = square
    pred = np.zeros_like(gt)
    pred[10:16, 10:20] = True
    pred[16, 10:12] = True  # 62 of the 100 object pixels, nothing outside: IoU 0.62
    r = _score(ds, [pred], [1], [0.9])
    assert r["ap25"] == pytest.approx(1.0) and r["ap50"] == pytest.approx(1.0)
    assert r["ap70"] == 0.0 and r["ap75"] == 0.0
    assert r["ap"] == pytest.approx(0.3)  # matched at 0.5, 0.55 and 0.6 of the ten thresholds
    assert r["abo"] == pytest.approx(0.62) and r["best_match_area_ratio"] == pytest.approx(0.62)


def test_a_higher_scored_false_positive_halves_ap_and_class_does_not_matter_to_abo(square) -> None:
    ds, gt = square
    elsewhere = np.zeros_like(gt)
    elsewhere[25:35, 25:35] = True
    r = _score(ds, [elsewhere, gt], [1, 1], [0.9, 0.5])
    assert r["ap50"] == pytest.approx(0.5) and r["abo"] == pytest.approx(1.0)
    wrong_class = _score(ds, [gt], [2], [0.9])
    assert wrong_class["ap50"] == 0.0 and wrong_class["abo"] == pytest.approx(1.0)
    nothing = _score(ds, [], [], [])
    assert nothing["ap50"] == 0.0 and nothing["abo"] == 0.0 and nothing["ap_m"] is None


# --------------------------------------------------------------------------------------------
# Targets, CLI smoke runs, resume.


@pytest.fixture(scope="module")
def box_labels(tiny_synth, tmp_path_factory) -> Path:
    """Box pseudo labels of the tiny set, with an ignore band added to every object."""
    from bbam_lite.data.coco import decode_rle, encode_rle

    out = tmp_path_factory.mktemp("labels") / "box"
    assert (
        main(["--quiet", "pseudo-labels", "--data", str(tiny_synth), "--method", "box", "--out", str(out)])
        == 0
    )
    path = out / "instances.json"
    data = json.loads(path.read_text())
    for ann in data["annotations"]:
        fg = decode_rle(ann["segmentation"])
        below, above = np.pad(fg, 2)[4:, 2:-2], np.pad(fg, 2)[:-4, 2:-2]
        ring = fg & ~(below & above)  # the top and bottom two rows of each object
        ann["segmentation"], ann["ignore"] = encode_rle(fg & ~ring), encode_rle(ring)
    path.write_text(json.dumps(data))
    return out


def test_training_labels_from_a_folder_and_from_ground_truth(tiny_synth, box_labels) -> None:
    from bbam_lite.segment.targets import TrainingLabels

    train = load_dataset("synthetic", tiny_synth, "train")
    lab = TrainingLabels(train, box_labels, "instance")
    t = lab.instances(train[0])
    assert t.masks.shape == (len(train[0].boxes), train[0].height, train[0].width)
    assert set(np.unique(t.masks)) == {0, 1, IGNORE}
    np.testing.assert_allclose(np.sort(t.boxes, 0), np.sort(train[0].boxes, 0))  # the boxes it came from
    gt = TrainingLabels(train, "gt", "semantic").semantic(train[0])
    assert gt.shape == (train[0].height, train[0].width) and gt.max() <= train.num_classes
    assert len(TrainingLabels(train.subset(range(3)), box_labels, "semantic").records) == 3
    with pytest.raises(DataError, match="labels folder not found"):
        TrainingLabels(train, box_labels / "nope", "semantic")


@pytest.mark.parametrize("task", ["semantic", "instance"])
def test_train_seg_and_evaluate_through_the_cli(task, tiny_synth, box_labels, tmp_path, capsys) -> None:
    run = tmp_path / task
    argv = ["--quiet", "train-seg", "--task", task, "--data", str(tiny_synth), "--labels", str(box_labels)]
    assert main([*argv, "--out", str(run), "--profile", "smoke", "--grow-start", "0"]) == 0
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["iterations"] == summary["log"][-1]["iteration"] and summary["train_images"] == 8
    assert summary["labels"]["made_with"]["settings"]["method"] == "box"
    crf = ["--crf"] if task == "semantic" else []
    assert main(["--quiet", "evaluate", "--run", str(run), *crf]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    keys = ["miou"] if task == "semantic" else ["ap25", "ap50", "ap70", "ap75", "ap", "abo"]
    for k in keys:
        assert 0.0 <= metrics["metrics"][k] <= 1.0
    if task == "semantic":
        assert 0.0 <= metrics["crf"]["miou"] <= 1.0 and metrics["images"] == 4
    assert "wrote" in capsys.readouterr().out
    # the same folder with other settings is refused, in one line, exit status 2
    assert main([*argv, "--out", str(run), "--profile", "smoke", "--iterations", "3"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_train_seg_refuses_to_resume_after_its_init_checkpoint_was_replaced(
    tiny_synth, box_labels, smoke_detector, tmp_path, capsys
) -> None:
    import shutil

    from bbam_lite.data.synthetic import CLASSES
    from bbam_lite.detector.model import build_detector, get_profile, save_detector
    from bbam_lite.utils.io import file_digest

    det, run = tmp_path / "det.pt", tmp_path / "run"
    shutil.copy(smoke_detector, det)
    argv = ["--quiet", "train-seg", "--task", "instance", "--data", str(tiny_synth)]
    argv += ["--labels", str(box_labels), "--out", str(run), "--profile", "smoke", "--iterations", "1"]
    argv += ["--init", str(det)]
    assert main(argv) == 0
    assert json.loads((run / "settings.json").read_text())["init_sha256"] == file_digest(det)
    torch.manual_seed(1)  # another detector under the same file name
    cfg = get_profile("smoke")
    save_detector(det, build_detector(cfg, len(CLASSES)), cfg, ["background", *CLASSES], {"note": "other"})
    assert main(argv) == 2
    assert "differs in init_sha256" in capsys.readouterr().err


def test_labels_folder_scored_as_predictions(tiny_synth, box_labels, tmp_path, capsys) -> None:
    out = tmp_path / "m.json"
    data = ["--data", str(tiny_synth), "--split", "train"]
    assert main(["--quiet", "evaluate", "--labels", str(box_labels), *data, "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert 0.3 < r["semantic"]["miou"] < 1.0 and r["instance"]["ap25"] > 0.5 and r["instance"]["images"] == 8


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train-seg", "--task", "semantic", "--labels", "NOPE"], "labels folder not found"),
        (["evaluate"], "exactly one of --run"),
        (["evaluate", "--run", "NOPE"], "not a train-seg run folder"),
        (["train-seg", "--task", "semantic", "--labels", "gt", "--init", "NOPE"], "checkpoint not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, tiny_synth, tmp_path, capsys) -> None:
    argv = [a.replace("NOPE", str(tmp_path / "nope")) for a in argv]
    if argv[0] == "train-seg":
        argv += ["--data", str(tiny_synth), "--out", str(tmp_path / "run"), "--profile", "smoke"]
    assert main(["--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("task", ["semantic", "instance"])
def test_interrupted_training_resumes_to_the_same_weights(
    task, tiny_synth, box_labels, tmp_path, monkeypatch
):
    import bbam_lite.segment.train as train_mod
    from bbam_lite.segment.checkpoint import load_segmenter
    from bbam_lite.segment.instance import get_instance_profile
    from bbam_lite.segment.semantic import get_semantic_profile
    from bbam_lite.segment.targets import TrainingLabels

    train = load_dataset("synthetic", tiny_synth, "train")
    val = load_dataset("synthetic", tiny_synth, "val").subset(range(1))
    get = get_semantic_profile if task == "semantic" else get_instance_profile
    cfg = get("smoke", iterations=4, checkpoint_every=2, eval_every=4, eval_images=1, grow_start=0.0)
    labels = TrainingLabels(train, box_labels, task)

    def fit(run: Path) -> None:
        torch.manual_seed(0)
        job = (train_mod.SemanticJob if task == "semantic" else train_mod.InstanceJob)(cfg, labels, "cpu", 0)
        train_mod.train_segmentation(job, val, run, {"task": task, "cfg": repr(cfg)}, progress=False)

    fit(tmp_path / "full")
    name = "semantic_batch" if task == "semantic" else "instance_batch"
    real = getattr(train_mod, name)

    def dies_at_3(*args, **kwargs):
        if args[6 if task == "semantic" else 4] == 3:  # the iteration argument
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, name, dies_at_3)
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path / "cut")
    assert (tmp_path / "cut" / "checkpoint.pt").exists() and not (tmp_path / "cut" / "model.pt").exists()
    monkeypatch.setattr(train_mod, name, real)
    fit(tmp_path / "cut")
    a = load_segmenter(tmp_path / "full" / "model.pt").model.state_dict()
    b = load_segmenter(tmp_path / "cut" / "model.pt").model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_comparison_order_check_and_table() -> None:
    from bbam_lite.experiments.networks import markdown_table, order_check

    def row(miou: float, ap50: float, abo: float) -> dict:
        return {"semantic": {"miou": miou, "train_cpu_seconds": 60}, "instance": {"ap50": ap50, "abo": abo}}

    rows = {
        "full": row(0.8, 0.5, 0.6),
        "grabcut": row(0.7, 0.55, 0.5),
        "box": row(0.6, 0.3, 0.4),
        "grabcut_notrain_gt": {"semantic": {"miou": 0.65}, "instance": {"ap50": 0.4}},
    }
    assert order_check(rows, "semantic", "miou")["holds"]
    broken = order_check(rows, "instance", "ap50")
    assert not broken["holds"] and broken["rows"] == ["full", "grabcut", "box"]
    rows["bbam_paper"] = row(0.75, 0.6, 0.55)
    with_bbam = order_check(rows, "semantic", "miou", "bbam_paper")
    assert with_bbam["rows"] == ["full", "bbam_paper", "grabcut", "box"] and with_bbam["holds"]
    assert order_check(rows, "instance", "ap50", "bbam_paper")["holds"] is False  # 0.5 < 0.6
    table = markdown_table({"rows": rows})
    assert "| Box + CRF" not in table and "| GrabCut-NoTrain-GT (no network) | 65.0 |" in table
    full = (
        "| Full supervision (ground-truth masks) | 80.0 | - | - | 50.0 | - | - | - | 60.0 | - | - | 1.0 / - |"
    )
    assert full in table


def test_comparison_rows_name_their_networks_and_refuse_clashes(tmp_path) -> None:
    from bbam_lite.experiments.networks import ComparisonSettings, Row, compare, main_rows

    grow_off = Row("a", "runs/x/bbam-123", ("instance",), "off")
    assert grow_off.network("instance") == "instance-bbam-123-grow-off"
    assert grow_off.network("semantic") == "semantic-bbam-123"
    assert Row("b", "runs/x/bbam-123", grow="on").network("instance") == "instance-bbam-123"  # the default
    rows = main_rows({"bbam": "L/bbam-1", "full": "gt"}, {"grabcut_notrain_gt": "V/grabcut-2"})
    assert list(rows) == ["full", "bbam", "grabcut_notrain_gt"]  # the papers' order
    assert rows["grabcut_notrain_gt"].notrain and rows["full"].labels == "gt"
    with pytest.raises(ValueError, match="unknown comparison rows"):
        main_rows({"bbbam": "x"})
    clash = {"a": Row("a", "one/bbam"), "b": Row("b", "two/bbam")}
    with pytest.raises(ValueError, match="share the name bbam"):
        compare(ComparisonSettings(tmp_path, tmp_path), clash)


def test_comparison_trains_and_scores_through_the_library_as_the_cli_does(
    tiny_synth, box_labels, tmp_path, monkeypatch
) -> None:
    from dataclasses import replace

    import bbam_lite.cli
    from bbam_lite.experiments.networks import ComparisonSettings, Row, compare

    # the run folder the command makes for the comparison's first row ...
    cli_run = tmp_path / "cli"
    argv = ["--quiet", "train-seg", "--task", "semantic", "--data", str(tiny_synth)]
    argv += ["--labels", str(box_labels), "--out", str(cli_run), "--profile", "smoke", "--seed", "0"]
    assert main([*argv, "--eval-images", "0", "--device", "cpu", "--iterations", "1"]) == 0
    assert main(["--quiet", "evaluate", "--run", str(cli_run), "--crf", "--limit", "2"]) == 0
    val = tmp_path / "val-box"
    made = ["--quiet", "pseudo-labels", "--data", str(tiny_synth), "--split", "val", "--method", "box"]
    assert main([*made, "--out", str(val)]) == 0

    def no_cli(argv=None):
        raise AssertionError(f"the comparison ran the command {argv}")

    monkeypatch.setattr(bbam_lite.cli, "main", no_cli)
    s = ComparisonSettings(tiny_synth, tmp_path / "nets", ("semantic",), "smoke", val_limit=2)
    s = replace(s, semantic_iterations=1, crf=("semantic",))
    rows = {"box": Row("Box", str(box_labels)), "grabcut_notrain_gt": Row("val", str(val), notrain=True)}
    result = compare(s, rows)
    # ... is the one the library makes: same settings (resumable either way), same scores
    run = tmp_path / "nets" / "semantic-box"
    assert (run / "settings.json").read_text() == (cli_run / "settings.json").read_text()
    ours, theirs = (json.loads((r / "metrics.json").read_text()) for r in (run, cli_run))
    timing = ("seconds", "train_seconds", "train_cpu_seconds")
    assert list(ours) == list(theirs)
    assert {k: v for k, v in ours.items() if k not in timing} == {
        k: v for k, v in theirs.items() if k not in timing
    }
    sem = result["rows"]["box"]["semantic"]
    assert sem["miou"] == theirs["metrics"]["miou"] and sem["crf"]["miou"] == theirs["crf"]["miou"]
    notrain = json.loads((val / "metrics-val.json").read_text())
    assert notrain["split"] == "val" and notrain["semantic"]["images"] == 2
    assert result["rows"]["grabcut_notrain_gt"]["semantic"]["miou"] == notrain["semantic"]["miou"]


def test_deeplab_backbone_starts_from_a_detector_backbone() -> None:
    from bbam_lite.detector.model import build_detector, get_profile
    from bbam_lite.segment.semantic import build_semantic_model, get_semantic_profile

    det = build_detector(get_profile("lite"), 6).state_dict()
    deeplab = build_semantic_model(get_semantic_profile("lite"), 6)
    deeplab.load_detector_backbone(det, "det.pt")
    mine = deeplab.backbone.state_dict()
    for k in ("stem.0.weight", "stages.3.1.conv2.weight", "stages.2.0.skip.1.bias"):
        torch.testing.assert_close(mine[k], det[f"backbone.{k}"])
    assert deeplab.backbone.stages[3][0].conv1.dilation == (4, 4)  # same weights, dilated
    smoke = build_semantic_model(get_semantic_profile("smoke"), 6)
    with pytest.raises(ValueError, match="det.pt: detector backbone does not fit"):
        smoke.load_detector_backbone(det, "det.pt")


def test_comparison_trains_networks_in_parallel_with_the_same_numbers(
    tiny_synth, box_labels, tmp_path
) -> None:
    from dataclasses import replace

    from bbam_lite.experiments.networks import ComparisonSettings, Row, compare

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers run one thread: so does this process, as book run's chapters
    try:
        s = ComparisonSettings(tiny_synth, tmp_path / "one", ("semantic", "instance"), "smoke", val_limit=2)
        s = replace(s, semantic_iterations=1, instance_iterations=1)
        rows = {"box": Row("Box", str(box_labels)), "again": Row("Box again", str(box_labels))}
        one = compare(s, rows)
        two = compare(replace(s, out=tmp_path / "two", jobs=2), rows)
    finally:
        torch.set_num_threads(threads)
    timing = ("train_seconds", "train_cpu_seconds")

    def scores(result: dict) -> dict:
        return {
            n: {t: {k: v for k, v in r[t].items() if k not in timing} for t in ("semantic", "instance")}
            for n, r in result["rows"].items()
        }

    assert scores(one) == scores(two) and scores(two)["box"] == scores(two)["again"]
    # the network the two rows share is trained once
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        f"instance-{box_labels.name}",
        f"semantic-{box_labels.name}",
    ]
