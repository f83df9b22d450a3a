"""Detector: head access (f_box, f_cls), checkpoints, resumable training, evaluation."""

from __future__ import annotations

import json

import pytest
import torch

from bbam_lite.data import load_dataset
from bbam_lite.detector.evaluate import coco_box_ap, image_tensor
from bbam_lite.detector.heads import frozen, roi_head_outputs
from bbam_lite.detector.model import (
    CheckpointError,
    build_detector,
    get_profile,
    load_detector,
    save_detector,
)
from bbam_lite.detector.train import (
    ImageCache,
    batch_indices,
    make_batch,
    train_detector,
)
from bbam_lite.utils.distributed import Ranks
from bbam_lite.utils.run_folder import RunSettingsError


@pytest.fixture(scope="module")
def smoke_model():
    torch.manual_seed(0)
    model = build_detector(get_profile("smoke"), num_classes=6)
    return model.eval()


def _proposals() -> list[torch.Tensor]:
    return [
        torch.tensor([[10.0, 12.0, 60.0, 70.0], [5.0, 5.0, 30.0, 40.0]]),
        torch.tensor([[20.0, 20.0, 90.0, 80.0]]),
    ]


def test_head_outputs_reach_pixels_without_weight_gradients(smoke_model) -> None:
    images = torch.rand(2, 3, 96, 96, requires_grad=True)
    with frozen(smoke_model) as model:
        out = roi_head_outputs(model, images, _proposals())
        assert out.deltas.shape == (3, 7, 4) and out.probs.shape == (3, 7) and out.boxes.shape == (3, 7, 4)
        torch.testing.assert_close(out.probs.sum(-1), torch.ones(3))
        (out.deltas[:, 2].abs().sum() + out.probs[:, 2].sum()).backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    # only the pixels the proposals see can matter; each image's gradient is its own
    assert images.grad[0].abs().sum() > 0 and images.grad[1].abs().sum() > 0
    assert all(p.grad is None for p in smoke_model.parameters())
    assert all(p.requires_grad for p in smoke_model.parameters()), "frozen() must restore requires_grad"


def test_head_outputs_match_the_detectors_own_roi_heads(smoke_model, monkeypatch) -> None:
    images = torch.rand(2, 3, 96, 96)
    proposals = _proposals()
    captured = {}

    def fixed_rpn(image_list, features, targets=None):
        return [p.clone() for p in proposals], {}

    monkeypatch.setattr(smoke_model.rpn, "forward", fixed_rpn)
    hook = smoke_model.roi_heads.box_predictor.register_forward_hook(
        lambda mod, inp, out: captured.update(logits=out[0], regression=out[1])
    )
    try:
        with torch.no_grad():
            smoke_model(list(images))
            ours = roi_head_outputs(smoke_model, images, proposals)
    finally:
        hook.remove()
    torch.testing.assert_close(ours.logits, captured["logits"])
    torch.testing.assert_close(ours.deltas, captured["regression"].reshape(3, 7, 4))
    decoded = smoke_model.roi_heads.box_coder.decode(captured["regression"], proposals).reshape(3, 7, 4)
    torch.testing.assert_close(ours.boxes, decoded.clamp(0, 96))


def test_checkpoint_round_trip_and_bad_checkpoints(smoke_model, tmp_path) -> None:
    names = ["background", *"abcdef"]
    path = tmp_path / "det.pt"
    save_detector(path, smoke_model, get_profile("smoke"), names, {"note": "test"})
    loaded = load_detector(path, class_names=names)
    for (k, a), b in zip(smoke_model.state_dict().items(), loaded.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert loaded.meta == {"note": "test"} and loaded.config.profile == "smoke"
    with pytest.raises(CheckpointError, match="trained for 6 classes"):
        load_detector(path, class_names=["background", "x", "y"])
    broken = tmp_path / "broken.pt"
    broken.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="a damaged or truncated PyTorch file; expected a bbam-lite"):
        load_detector(broken)
    with pytest.raises(CheckpointError, match="not found"):
        load_detector(tmp_path / "missing.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(
        CheckpointError, match="a PyTorch file of another kind; expected a bbam-lite detector"
    ):
        load_detector(tmp_path / "other.pt")


def test_batch_order_is_a_function_of_seed_and_iteration() -> None:
    a = [batch_indices(10, 4, 0, it).tolist() for it in range(6)]
    assert a == [batch_indices(10, 4, 0, it).tolist() for it in range(6)]
    assert a != [batch_indices(10, 4, 1, it).tolist() for it in range(6)]
    assert sorted(a[0] + a[1]) == sorted(set(a[0] + a[1]))  # no repeats inside an epoch


def test_interrupted_training_resumes_to_the_same_weights(tiny_synth, tmp_path, monkeypatch) -> None:
    import bbam_lite.detector.train as train_mod

    train = load_dataset("synthetic", tiny_synth, "train")
    val = load_dataset("synthetic", tiny_synth, "val")
    cfg = get_profile("smoke", iterations=4, checkpoint_every=2, eval_every=4, min_size=96, max_size=96)
    full = train_detector(train, val, tmp_path / "full", cfg, progress=False)
    assert set(full) >= {"box_ap50", "box_ap"}
    saved = json.loads((tmp_path / "full" / "detector_metrics.json").read_text())
    assert saved["iterations"] == 4

    real_batch = train_mod.make_batch

    def dies_at_3(dataset, idx, cache, seed, iteration, device, *rest):
        if iteration == 3:
            raise KeyboardInterrupt
        return real_batch(dataset, idx, cache, seed, iteration, device, *rest)

    monkeypatch.setattr(train_mod, "make_batch", dies_at_3)
    with pytest.raises(KeyboardInterrupt):
        train_detector(train, val, tmp_path / "cut", cfg, progress=False)
    assert (tmp_path / "cut" / "checkpoint.pt").exists() and not (tmp_path / "cut" / "detector.pt").exists()
    monkeypatch.setattr(train_mod, "make_batch", real_batch)
    train_detector(train, val, tmp_path / "cut", cfg, progress=False)

    a = load_detector(tmp_path / "full" / "detector.pt").model.state_dict()
    b = load_detector(tmp_path / "cut" / "detector.pt").model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)

    with pytest.raises(RunSettingsError, match="other settings"):
        train_detector(train, val, tmp_path / "cut", get_profile("smoke", iterations=5), progress=False)


def test_box_ap_is_one_for_perfect_detections_and_zero_for_none(tiny_synth) -> None:
    val = load_dataset("synthetic", tiny_synth, "val")
    perfect = [
        {
            "image_id": r.image_id,
            "category_id": int(c),
            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
            "score": 1.0,
        }
        for r in val
        for b, c in zip(r.boxes.tolist(), r.labels, strict=True)
    ]
    assert coco_box_ap(val, perfect)["box_ap50"] == pytest.approx(1.0)
    wrong_class = [{**d, "category_id": d["category_id"] % 6 + 1} for d in perfect]
    assert coco_box_ap(val, wrong_class)["box_ap50"] == pytest.approx(0.0)
    assert coco_box_ap(val, [])["box_ap"] == 0.0


def test_image_tensor_layout() -> None:
    import numpy as np

    img = np.zeros((5, 7, 3), np.uint8)
    img[..., 1] = 255
    t = image_tensor(img)
    assert t.shape == (3, 5, 7) and t[1].min() == 1.0 and t[0].max() == 0.0


def test_data_parallel_shares_split_the_batch_and_its_flips(tiny_synth) -> None:
    train = load_dataset("synthetic", tiny_synth, "train")
    idx = batch_indices(len(train), 4, 0, 5)
    cache = ImageCache()
    whole = make_batch(train, idx, cache, 0, 5, torch.device("cpu"))
    shares = [make_batch(train, idx, cache, 0, 5, torch.device("cpu"), Ranks(r, 2)) for r in range(2)]
    for r, (images, targets) in enumerate(shares):
        assert len(images) == 2
        for j, (img, tgt) in enumerate(zip(images, targets, strict=True)):
            torch.testing.assert_close(img, whole[0][r + 2 * j])  # same image, same flip
            torch.testing.assert_close(tgt["boxes"], whole[1][r + 2 * j]["boxes"])
    with pytest.raises(ValueError, match="does not split over 3 processes"):
        train_detector(train, train, tiny_synth / "never", get_profile("smoke"), ranks=Ranks(0, 3))


def test_torchrun_two_processes_train_one_detector(tiny_synth, tmp_path, torchrun) -> None:
    """``torchrun --nproc-per-node 2``: the two processes train, rank 0 alone writes the checkpoint,
    the detector and the metrics, and the run records its process count."""
    run = torchrun(
        ["train-detector", "--data", str(tiny_synth), "--profile", "smoke", "--iterations", "3"]
        + ["--out", str(tmp_path / "run")]
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("detector.pt: box AP50") == 1  # printed by rank 0 only
    metrics = json.loads((tmp_path / "run" / "detector_metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["iterations"] == 3 and 0 <= metrics["box_ap50"] <= 1
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ckpt["iteration"] == 3
    trained = load_detector(tmp_path / "run" / "detector.pt")
    assert trained.meta["processes"] == 2
    torch.manual_seed(0)  # the run's seed: the weights it started from
    fresh = build_detector(get_profile("smoke"), 6).state_dict()
    moved = [k for k, v in trained.model.state_dict().items() if not torch.equal(v, fresh[k])]
    assert moved, "two-process training left the weights at their initial values"
