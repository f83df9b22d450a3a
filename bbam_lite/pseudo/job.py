"""One labelling job: what :func:`~bbam_lite.pseudo.generate.generate` labels, with what, and how.

:meth:`LabelJob.make` is the one place that decides, from the settings, whether the detector and
BBAM's channel mean are needed and what the labels folder records about the detector
(``settings.json``'s ``"detector"``, part of what resume and the workspace's caches compare).
What is recorded is the :class:`DetectorRef`'s ``provenance``; its constructors name the ways the
callers record a detector (a checkpoint's path, the data it was trained on, a model's digest).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from bbam_lite.attribution.engine import EngineOptions
from bbam_lite.data.records import BoxDataset
from bbam_lite.pseudo.settings import PseudoLabelSettings
from bbam_lite.utils.distributed import Ranks

if TYPE_CHECKING:
    from bbam_lite.detector.model import LoadedDetector


@dataclass(frozen=True)
class DetectorRef:
    """A detector and what labels folders that depend on it record about it.

    ``model`` is the network (torchvision's Faster R-CNN layout) or a function returning it, called
    only when labelling runs the detector. ``provenance`` holds the keys ``settings.json`` records
    about it (``"detector"`` and, for a torchvision model, ``"detector_classes"``); empty: nothing.
    """

    model: Any
    provenance: dict = field(default_factory=dict)

    @classmethod
    def checkpoint(cls, path: str | Path, model: Any, resolve: bool = True) -> DetectorRef:
        """A checkpoint file recorded by its path: resolved (the CLI) or as given (the workspace)."""
        return cls(model, {"detector": str(Path(path).resolve() if resolve else path)})

    @classmethod
    def loaded(cls, loaded: LoadedDetector) -> DetectorRef:
        """What :func:`~bbam_lite.detector.model.load_detector` returned, recorded as it says
        (a checkpoint by its resolved path, a torchvision model by its spec and matched classes)."""
        return cls(loaded.model, dict(loaded.provenance))

    @classmethod
    def trained_on(cls, loaded: LoadedDetector) -> DetectorRef:
        """A loaded checkpoint recorded by the data it was trained on (the demo's folders)."""
        return cls(loaded.model, {"detector": loaded.meta.get("data", {})})

    @classmethod
    def in_memory(cls, model: torch.nn.Module) -> DetectorRef:
        """A model without a file (e.g. a torchvision one built in Python), recorded by its weights."""
        return cls(model, {"detector": {"state_dict_sha256": state_dict_digest(model)}})

    def load(self) -> Any:
        """The model (loading it if ``model`` is a function)."""
        lazy = callable(self.model) and not isinstance(self.model, torch.nn.Module)
        return self.model() if lazy else self.model


def state_dict_digest(model: torch.nn.Module) -> str:
    """SHA-256 of a model's state dict (names, dtypes, shapes and values, in key order)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@dataclass(frozen=True)
class LabelJob:
    """Everything :func:`~bbam_lite.pseudo.generate.generate` needs; build it with :meth:`make`.

    ``provenance`` holds the keys ``settings.json`` records besides the settings, the dataset, its
    root and ``limit``. The rest are runtime options: they do not change the labels.
    """

    dataset: BoxDataset
    settings: PseudoLabelSettings
    out: Path
    detector: Any = None  # the model, when labelling runs it
    mean: torch.Tensor | None = None  # BBAM's channel mean, when the method runs the detector
    provenance: dict = field(default_factory=dict)
    limit: int | None = None
    device: str = "cpu"
    batch_images: int = 4
    batch_objects: int | str = 8
    engine: EngineOptions | None = None
    workers: int = 1
    progress: bool = True
    ranks: Ranks = field(default_factory=Ranks)
    memory_budget: int | None = None  # bytes for the images in flight; None: half of what is available

    @classmethod
    def make(
        cls,
        dataset: BoxDataset,
        settings: PseudoLabelSettings,
        out: str | Path,
        detector: DetectorRef | torch.nn.Module | Callable[[], DetectorRef] | None = None,
        mean: torch.Tensor | Callable[[], torch.Tensor] | None = None,
        **runtime: Any,
    ) -> LabelJob:
        """The job of labelling ``dataset`` with ``settings`` into ``out``.

        ``detector``: a :class:`DetectorRef` (or a function returning one, called only when the
        labels depend on the detector), or a bare model (recorded as nothing). The model is loaded
        only when labelling runs it, and its provenance is recorded when the labels depend on it
        (``settings.uses_detector``, also for labels made from another folder's stored maps).
        ``mean`` (a tensor or a function returning one) is used only when the method runs the
        detector; None: ``dataset``'s channel mean. ``runtime``: the fields after ``provenance``.
        """
        ref = detector
        if isinstance(ref, torch.nn.Module):
            ref = DetectorRef(ref)
        elif callable(ref):  # a function returning the DetectorRef: called only if the labels use it
            ref = ref() if settings.uses_detector else None
        if settings.needs_detector and ref is None:
            raise ValueError(f"method {settings.method} with --boxes {settings.boxes} needs a detector")
        runs_detector = settings.needs_detector and settings.method_obj.needs_detector
        if runs_detector and mean is None:
            from bbam_lite.data.stats import channel_mean

            mean = channel_mean(dataset)
        provenance = dict(ref.provenance) if ref is not None and settings.uses_detector else {}
        return cls(
            dataset,
            settings,
            Path(out),
            ref.load() if ref is not None and settings.needs_detector else None,
            (mean() if callable(mean) else mean) if runs_detector else None,
            provenance,
            **runtime,
        )
