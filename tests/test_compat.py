"""The PyTorch NMS registered when torchvision's compiled ops do not load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bbam_lite import compat

tv = compat.import_torchvision()


def brute_force_nms(boxes: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    """Greedy NMS written as plainly as possible: O(N^2), Python loops, stable tie order."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # sorted() is stable
    keep: list[int] = []
    for i in order:
        ok = True
        for j in keep:
            xx1, yy1 = max(boxes[i, 0], boxes[j, 0]), max(boxes[i, 1], boxes[j, 1])
            xx2, yy2 = min(boxes[i, 2], boxes[j, 2]), min(boxes[i, 3], boxes[j, 3])
            inter = max(xx2 - xx1, 0.0) * max(yy2 - yy1, 0.0)
            a_i = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
            a_j = (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1])
            union = a_i + a_j - inter
            if union > 0 and inter / union > thr:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


def random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 50, (n, 2))
    wh = rng.uniform(1, 30, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
def test_nms_matches_brute_force(seed: int, thr: float) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 120))
    boxes = random_boxes(rng, n)
    # quantised scores make many exact ties; duplicated boxes make IoU exactly 1
    scores = rng.integers(0, 6, n).astype(np.float64) / 5
    boxes[: n // 4] = boxes[0]
    got = tv.ops.nms(torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores, dtype=torch.float32), thr)
    want = brute_force_nms(boxes.astype(np.float32).astype(np.float64), scores, thr)
    assert got.tolist() == want


def test_nms_all_tied_scores_keep_input_order() -> None:
    boxes = torch.tensor(
        [[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30], [1, 1, 11, 11]], dtype=torch.float32
    )
    scores = torch.ones(4)
    assert tv.ops.nms(boxes, scores, 0.5).tolist() == [0, 2]


def test_nms_empty_and_batched() -> None:
    empty = tv.ops.nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert empty.dtype == torch.int64 and empty.numel() == 0
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10]], dtype=torch.float32)
    keep = tv.ops.batched_nms(boxes, torch.tensor([0.9, 0.8]), torch.tensor([0, 1]), 0.5)
    assert sorted(keep.tolist()) == [0, 1]  # different classes never suppress each other


def test_fallback_only_when_compiled_ops_fail() -> None:
    # torchvision's own loader tells whether its compiled library loaded; the fallback is used iff not.
    assert compat.USING_FALLBACK_NMS == (not tv.extension._has_ops())
    assert torch._C._dispatch_has_kernel_for_dispatch_key(
        "torchvision::nms", "CompositeExplicitAutograd"
    ) == (compat.USING_FALLBACK_NMS)


def test_package_imports_torchvision_only_through_compat() -> None:
    import pathlib
    import re

    pkg = pathlib.Path(compat.__file__).parent
    offenders = []
    for path in pkg.rglob("*.py"):
        if path.name == "compat.py":
            continue
        text = path.read_text()
        for m in re.finditer(r"^(import torchvision|from torchvision)", text, re.M):
            before = text[: m.start()]
            if "import_torchvision()" not in before:
                offenders.append(f"{path.name}: {text[m.start() :].splitlines()[0]}")
    assert not offenders, offenders
