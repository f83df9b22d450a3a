"""The one door through which bbam_lite imports torchvision.

The torchvision wheel on PyPI is built against CUDA. Paired with a CPU-only torch its compiled
library (``torchvision/_C.so``) fails to load, the failure is swallowed, and ``import torchvision``
then dies with ``operator torchvision::nms does not exist`` while it registers its meta kernels.
``roi_align`` and the other detection ops have pure-PyTorch fallbacks inside torchvision; ``nms``
has none.

:func:`import_torchvision` first tries to load the compiled library itself. Only when that fails
does it register a PyTorch implementation of ``torchvision::nms`` (and a stub ``qnms``) with
``torch.library``, imports torchvision, and lifts the "ops loaded" check in front of
``torchvision.ops.nms``. Where torch and torchvision match (any GPU
machine, or a CPU install from PyTorch's own index) the native ops load and nothing is replaced.

Every module of the package gets torchvision with ``tv = import_torchvision()``, never with a plain
``import torchvision``, so the registration always happens first.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

_FALLBACK_LIBRARY: torch.library.Library | None = None
USING_FALLBACK_NMS = False


def nms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression, the algorithm of torchvision's CPU kernel, in NumPy.

    Boxes are (x1, y1, x2, y2). Scores are visited in descending order with a stable sort (ties keep
    their input order); a box is suppressed when its IoU with a kept box is strictly greater than
    ``iou_threshold``. Returns the kept indices (int64) in visiting order, on the input's device.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    b = boxes.detach().to("cpu", torch.float64).numpy()
    s = scores.detach().to("cpu", torch.float64).numpy()
    order = np.argsort(-s, kind="stable")
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(b), dtype=bool)
    keep = []
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = order[pos + 1 :]
        rest = rest[~suppressed[rest]]
        if rest.size == 0:
            continue
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        union = areas[i] + areas[rest] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, inter / union, 0.0)
        suppressed[rest[iou > iou_threshold]] = True
    return torch.as_tensor(np.asarray(keep, dtype=np.int64), device=boxes.device)


def _compiled_ops_load() -> bool:
    """Whether torchvision's compiled library loads with the installed torch."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        raise ImportError("torchvision is not installed: pip install 'torchvision>=0.26,<0.29'")
    libs = sorted(Path(spec.origin).parent.glob("_C*.so")) + sorted(Path(spec.origin).parent.glob("_C*.pyd"))
    if not libs:
        return False
    try:
        torch.ops.load_library(str(libs[0]))
    except (OSError, RuntimeError):
        return False
    return torch._C._dispatch_has_kernel_for_dispatch_key("torchvision::nms", "CPU")


def _register_fallback_nms() -> None:
    global _FALLBACK_LIBRARY, USING_FALLBACK_NMS
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.impl("nms", nms_reference, "CompositeExplicitAutograd")

    def _qnms(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
        raise NotImplementedError("quantized NMS needs torchvision's compiled ops")

    lib.impl("qnms", _qnms, "CompositeExplicitAutograd")
    _FALLBACK_LIBRARY = lib  # keep the registration alive
    USING_FALLBACK_NMS = True


def import_torchvision() -> ModuleType:
    """Import torchvision, registering the PyTorch NMS first if its compiled ops cannot load."""
    if "torchvision" in sys.modules:
        return sys.modules["torchvision"]
    fallback = not _compiled_ops_load()
    if fallback:
        _register_fallback_nms()
    import torchvision

    if fallback:
        # torchvision.ops.nms checks a module-level "ops loaded" flag before calling the operator;
        # the operator now exists, so that check (and only that one) is lifted. roi_align keeps
        # seeing "no ops" and takes its own pure-PyTorch path.
        import torchvision.ops.boxes

        torchvision.ops.boxes._assert_has_ops = lambda: None
        if os.environ.get("BBAM_LITE_EAGER_ROI_ALIGN", "") not in ("", "0"):
            use_eager_roi_align(True)
    return torchvision


def use_eager_roi_align(eager: bool = True) -> None:
    """Run torchvision's pure-PyTorch ``roi_align`` eagerly instead of through ``torch.compile``.

    Without compiled ops, torchvision compiles its Python RoIAlign on first use (about a minute on
    2 CPU cores, then about 25% faster per training step). Short processes (tests, a few hundred
    BBAM iterations) are better off eager. Setting ``BBAM_LITE_EAGER_ROI_ALIGN=1`` does this at
    import. No effect where the compiled ops loaded.
    """
    if not USING_FALLBACK_NMS:
        return
    module = sys.modules["torchvision.ops.roi_align"]
    fn = module._roi_align
    original = getattr(fn, "__wrapped__", fn)
    if eager:
        module._roi_align = original
    elif not hasattr(fn, "__wrapped__"):
        module._roi_align = torch.compile(original, dynamic=True)
