"""Device paths of the chapters, checked on the CPU: helper tensors made on the CPU meet an image on
another device (the ``meta`` device stands in for a GPU: mixing it with CPU tensors fails as CUDA
does), random draws stay on the CPU so every device sees the same ones, and what reaches numpy and
the figures is CPU float32 also where the engine ran in bf16."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bbam_lite.analysis.probe import HeadProbe, probe_heads
from bbam_lite.attribution.bbam import ObjectTask, explain, get_preset, perturb, task_generator
from bbam_lite.attribution.engine import EngineOptions
from bbam_lite.attribution.proposals import jitter_boxes
from bbam_lite.detector.heads import roi_head_outputs
from bbam_lite.detector.model import load_detector
from bbam_lite.weights import default_detector_path

OTHER = torch.device("meta")  # a device that is not the CPU


@pytest.fixture(scope="module")
def detector():
    return load_detector(default_detector_path(), "cpu").model


def test_the_stand_in_device_refuses_cpu_tensors_as_cuda_does() -> None:
    with pytest.raises(RuntimeError):
        torch.ones(3, 4, 4, device=OTHER) * torch.ones(4, 4)


def test_perturb_moves_a_cpu_mask_and_mean_to_the_image_device() -> None:
    mask, mean = torch.rand(8, 10), torch.tensor([0.4, 0.5, 0.6])
    out = perturb(torch.rand(3, 8, 10, device=OTHER), mask, mean)
    assert out.device == OTHER and out.shape == (3, 8, 10)
    image = torch.rand(3, 8, 10)  # on the CPU: the formula, bit for bit
    assert torch.equal(perturb(image, mask, mean), image * mask + mean.view(3, 1, 1) * (1 - mask))


class _Pool(torch.nn.Module):
    """torchvision's pooler, whose level mapping the meta device cannot run: records the devices."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[set] = []

    def forward(self, features, boxes, sizes):
        self.seen.append({b.device for b in boxes} | {f.device for f in features.values()})
        channels = next(iter(features.values())).shape[1]
        return torch.zeros(sum(len(b) for b in boxes), channels, 7, 7, device=OTHER)


def test_roi_head_outputs_moves_cpu_proposals_to_the_images_device() -> None:
    model = load_detector(default_detector_path(), "cpu").model.to(OTHER).eval()
    model.roi_heads.box_roi_pool = pool = _Pool()
    props = torch.tensor([[10.0, 12.0, 90.0, 100.0], [30.0, 20.0, 120.0, 140.0]])
    out = roi_head_outputs(model, torch.rand(1, 3, 160, 160, device=OTHER), [props])
    assert pool.seen == [{OTHER}]
    assert out.boxes.device == OTHER and out.probs.shape[0] == 2


def _jitter_before(box, n, amount, height, width, generator):
    """jitter_boxes as it was before the draws followed the generator's device (CPU reference)."""
    x1, y1, x2, y2 = box.tolist()
    w, h = x2 - x1, y2 - y1
    u = torch.rand(n, 4, generator=generator, dtype=torch.float64) * 2 - 1
    out = torch.tensor([x1, y1, x2, y2], dtype=torch.float64) + u * torch.tensor(
        [w, h, w, h], dtype=torch.float64
    ) * amount
    out[:, [0, 2]] = out[:, [0, 2]].clamp(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clamp(0, height)
    out[:, 2] = torch.maximum(out[:, 2], out[:, 0] + 1).clamp(max=width)
    out[:, 0] = torch.minimum(out[:, 0], out[:, 2] - 1)
    out[:, 3] = torch.maximum(out[:, 3], out[:, 1] + 1).clamp(max=height)
    out[:, 1] = torch.minimum(out[:, 1], out[:, 3] - 1)
    return out.float()


def test_jitter_boxes_draws_on_the_cpu_and_returns_cpu_proposals() -> None:
    box = torch.tensor([20.0, 30.0, 100.0, 120.0])
    got = jitter_boxes(box, 50, 0.3, 160, 160, task_generator(0, (3, 1)))
    assert got.device.type == "cpu"
    assert torch.equal(got, _jitter_before(box, 50, 0.3, 160, 160, task_generator(0, (3, 1))))
    torch.manual_seed(5)
    a = jitter_boxes(box, 10, 0.3, 160, 160)  # no generator: the global CPU stream, as before
    torch.manual_seed(5)
    assert torch.equal(a, _jitter_before(box, 10, 0.3, 160, 160, None))


def test_probe_heads_returns_cpu_numpy(detector) -> None:
    image = torch.rand(3, 160, 160)
    box = torch.tensor([20.0, 30.0, 100.0, 120.0], dtype=torch.float64)
    probe = probe_heads(detector, image, box, 1, n=12, generator=torch.Generator().manual_seed(0))
    assert isinstance(probe, HeadProbe)
    for name in ("box", "proposals", "proposal_iou", "regressed", "regressed_iou", "class_prob",
                 "predicted", "positive"):
        assert isinstance(getattr(probe, name), np.ndarray), name
    again = probe_heads(detector, image, box, 1, n=12, generator=torch.Generator().manual_seed(0))
    assert np.array_equal(probe.proposals, again.proposals)


def test_bbam_results_are_cpu_float32_numpy_when_the_engine_runs_in_bf16(detector) -> None:
    torch.manual_seed(0)
    task = ObjectTask(torch.rand(3, 96, 96), torch.tensor([10.0, 12.0, 70.0, 80.0]), 1, key=(0, 0))
    cfg = get_preset("paper", iterations=2, n_jitter=20)
    (r,) = explain(
        detector,
        [task],
        cfg,
        torch.tensor([0.5, 0.5, 0.5]),
        engine=EngineOptions(precision="bf16"),
        record=("losses", "snapshots", "proposals"),
        snapshot_every=1,
    )
    assert r.precision == "bf16" or r.retried
    for arr in (r.mask, r.bbam, *(s for _, s in r.history["snapshots"])):
        assert isinstance(arr, np.ndarray) and arr.dtype == np.float32
    for arr in r.history["proposals"].values():
        assert isinstance(arr, np.ndarray) and arr.dtype == np.float32
    for name in ("box", "cls", "l1", "tv"):
        assert all(isinstance(v, float) for v in r.history[name])
    assert isinstance(r.final_box_loss, float) and isinstance(r.final_cls_loss, float)
