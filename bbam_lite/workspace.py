"""The run folder that notebooks share: data, detector, pseudo labels and analysis results, each
cached under a key made from the settings that produced it.

A notebook starts with ``ws = Workspace.from_parameters(profile, dataset, data_root, device, seed,
run_dir)`` and then asks for what it needs (``ws.data("train")``, ``ws.detector()``,
``ws.labels("bbam", theta_fg=0.8)``, ``ws.cached_json("stride-study", settings, compute)``). The first
notebook that needs an artefact makes it; later notebooks (and reruns) reuse it. Layout::

    RUN/data/synthetic-<key>/       generated dataset (synthetic only)
    RUN/detector/<key>/             a detector trained here (VOC/COCO; synthetic uses the shipped one)
    RUN/labels/<method>-<key>/      a pseudo-label folder (resumable, see bbam_lite.pseudo.generate)
    RUN/results/<name>-<key>.json   an analysis result

Every folder records its settings; everything is written atomically, so an interrupted notebook
leaves nothing a rerun would trust. Each artefact is made under its lock in ``RUN/locks`` (see
:func:`bbam_lite.utils.run_folder.made_once`): chapters running at the same time (``bbam-lite book
run --jobs N``) that ask for the same artefact make it once, the others wait and read it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from bbam_lite.data import BoxDataset, load_dataset, reader_names
from bbam_lite.utils.io import atomic_write_json, file_digest
from bbam_lite.utils.profiles import profile_name
from bbam_lite.utils.run_folder import made_once


class ParameterError(ValueError):
    """A notebook parameter of the wrong type or value, in one line."""


@dataclass(frozen=True)
class NotebookProfile:
    """How much work a notebook does. ``full`` is the paper's scale (VOC/COCO on a GPU)."""

    name: str
    n_train: int  # synthetic training images generated (ignored for VOC/COCO)
    n_val: int  # synthetic validation images generated
    label_images: int | None  # training images that get pseudo labels (None: all)
    study_images: int  # images whose objects per-object analyses look at
    bbam_iterations: int | None  # None: the labels profile's value (lite 150, full 300)
    labels_profile: str  # PseudoLabelSettings.profile: lite (scaled) | full (paper values)
    sweep: bool  # whether parameter sweeps use every value or a short list
    extra: dict = field(default_factory=dict)


PROFILES: dict[str, NotebookProfile] = {
    "smoke": NotebookProfile("smoke", 6, 4, 3, 2, 10, "lite", False),
    "lite": NotebookProfile("lite", 800, 200, 60, 12, None, "lite", True),
    "full": NotebookProfile("full", 800, 200, None, 200, None, "full", True),
}


def settings_key(settings: dict) -> str:
    """A short stable hash of a JSON-able settings dict."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _check_type(name: str, value: Any, types: tuple[type, ...], what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, types):
        raise ParameterError(f"parameter {name}={value!r}: expected {what}, got {type(value).__name__}")


def check_parameters(
    profile: Any, dataset: Any, data_root: Any, device: Any, seed: Any, run_dir: Any
) -> None:
    """Validate the common notebook parameters; raises :class:`ParameterError` in one line."""
    _check_type("profile", profile, (str,), "a string")
    if profile_name(profile, PROFILES) not in PROFILES:
        raise ParameterError(
            f"parameter profile={profile!r}: unknown profile; choose one of {sorted(PROFILES)}"
        )
    _check_type("dataset", dataset, (str,), "a string")
    if dataset not in reader_names():
        raise ParameterError(f"parameter dataset={dataset!r}: choose one of {list(reader_names())}")
    if data_root is not None:
        _check_type("data_root", data_root, (str, Path), "a path string or None")
    if dataset != "synthetic" and not data_root:
        raise ParameterError(f"parameter data_root: dataset={dataset!r} needs the path of its data root")
    _check_type("device", device, (str,), "a string such as 'cpu' or 'cuda'")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ParameterError(f"parameter device={device!r}: expected 'cpu', 'cuda' or 'cuda:N'")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ParameterError(f"parameter device={device!r}: CUDA is not available on this machine")
    _check_type("seed", seed, (int,), "an integer")
    _check_type("run_dir", run_dir, (str, Path), "a path string")


class Workspace:
    """Artefacts of one run folder, made on first request and reused afterwards."""

    def __init__(
        self,
        run_dir: Path,
        profile: str = "lite",
        dataset: str = "synthetic",
        data_root: Path | None = None,
        device: str = "cpu",
        seed: int = 0,
        difficulty: float = 0.5,
        detector: str | Path | None = None,
    ) -> None:
        check_parameters(
            profile, dataset, None if data_root is None else str(data_root), device, seed, run_dir
        )
        if detector is not None:
            _check_type("detector", detector, (str, Path), "a checkpoint path or None")
            if not Path(detector).is_file():
                raise ParameterError(f"parameter detector={str(detector)!r}: no such checkpoint file")
        self.run_dir = Path(run_dir)
        self.profile = PROFILES[profile_name(profile, PROFILES)]  # paper: full
        self.dataset = dataset
        self.data_root = Path(data_root) if data_root else None
        self.device = device
        self.seed = seed
        self.difficulty = difficulty
        self.detector_file = Path(detector) if detector is not None else None
        self._cache: dict[Any, Any] = {}

    @classmethod
    def from_parameters(
        cls,
        profile: str,
        dataset: str,
        data_root: str | None,
        device: str,
        seed: int,
        run_dir: str,
        difficulty: float = 0.5,
        detector: str | None = None,
    ) -> Workspace:
        """The workspace of a notebook's ``parameters`` cell (validated first)."""
        check_parameters(profile, dataset, data_root, device, seed, run_dir)
        root = Path(data_root) if data_root else None
        return cls(Path(run_dir), profile, dataset, root, device, seed, difficulty, detector)

    # ---------------------------------------------------------------------------------- data
    def synth_settings(self):
        from bbam_lite.data.synthetic import SynthSettings

        return SynthSettings(
            n_train=self.profile.n_train, n_val=self.profile.n_val, seed=self.seed, difficulty=self.difficulty
        )

    def data_path(self) -> Path:
        """The dataset root (generated on first use for synthetic data)."""
        if self.dataset != "synthetic":
            return self.data_root
        from bbam_lite.data.synthetic import ensure_synthetic

        s = self.synth_settings()
        root = self.run_dir / "data" / f"synthetic-{settings_key(asdict(s))}"
        if ("made", root) not in self._cache:  # one lookup per workspace, not one per call
            with made_once(self.run_dir, "data", root, (root / "dataset.json").exists):
                self._cache[("made", root)] = ensure_synthetic(root, s, progress=False)
        return self._cache[("made", root)]

    def data(self, split: str = "train") -> BoxDataset:
        """A split of the workspace's dataset (synthetic splits: train | val)."""
        key = ("data", split)
        if key not in self._cache:
            if self.dataset == "voc" and split == "train":
                split = (
                    "train_aug"
                    if (self.data_root / "ImageSets/Segmentation/train_aug.txt").exists()
                    else split
                )
            self._cache[key] = load_dataset(self.dataset, self.data_path(), split)
        return self._cache[key]

    def mean(self) -> torch.Tensor:
        """BBAM's mu: the training set's per-channel mean."""
        from bbam_lite.data.stats import channel_mean

        if "mean" not in self._cache:
            self._cache["mean"] = channel_mean(self.data("train"))
        return self._cache["mean"]

    # ------------------------------------------------------------------------------ detector
    def detector_path(self) -> Path:
        """The workspace's ``detector`` if given; else the shipped detector for synthetic data, or
        one trained here (paper profile, cached) for VOC / COCO. Every cache key that depends on
        the detector holds its checksum, so several detectors can share one run folder."""
        if self.detector_file is not None:
            return self.detector_file
        if self.dataset == "synthetic":
            from bbam_lite.weights import default_detector_path

            return default_detector_path()
        from bbam_lite.detector.model import get_profile
        from bbam_lite.detector.train import train_detector

        cfg = get_profile("paper" if self.profile.name == "full" else "lite")
        info = {"kind": self.dataset, "root": str(self.data_root), "train_split": "train", "val_split": "val"}
        run = (
            self.run_dir / "detector" / settings_key({"config": asdict(cfg), "data": info, "seed": self.seed})
        )
        if ("made", run) not in self._cache:
            with made_once(self.run_dir, "detector", run, (run / "detector.pt").exists) as finished:
                if not finished:
                    train_detector(
                        self.data("train"), self.data("val"), run, cfg, self.device, self.seed, info
                    )
            self._cache[("made", run)] = True
        return run / "detector.pt"

    def detector_digest(self) -> str:
        """A hash of the detector checkpoint's bytes: part of every cache key that depends on it."""
        key = ("digest", str(self.detector_path()))
        if key not in self._cache:
            self._cache[key] = file_digest(self.detector_path())
        return self._cache[key]

    def detector(self):
        """The :class:`~bbam_lite.detector.model.LoadedDetector` for this workspace's data."""
        from bbam_lite.detector.model import load_detector

        if "detector" not in self._cache:
            names = self.data("train").class_names
            self._cache["detector"] = load_detector(self.detector_path(), self.device, class_names=names)
        return self._cache["detector"]

    def detector_ref(self):
        """The detector as labelling jobs take it: loaded when used, recorded by its path."""
        from bbam_lite.pseudo.job import DetectorRef

        return DetectorRef.checkpoint(self.detector_path(), lambda: self.detector().model, resolve=False)

    # --------------------------------------------------------------------------- pseudo labels
    def label_settings(self, method: str, **overrides: Any):
        """Pseudo-label settings of this profile for ``method`` (overrides as in PseudoLabelSettings)."""
        from bbam_lite.pseudo.settings import PseudoLabelSettings

        s = PseudoLabelSettings(method=method, profile=self.profile.labels_profile)
        bbam = dict(overrides.pop("bbam", {}))
        if self.profile.bbam_iterations is not None:
            bbam.setdefault("iterations", self.profile.bbam_iterations)
        s = replace(s, **overrides)
        if "bbam" not in s.method_obj.settings:
            return s
        # BBAM overrides equal to the preset's own value are dropped: the same settings, one folder
        base = s.bbam_config()
        unknown = sorted(k for k in bbam if not hasattr(base, k))
        if unknown:
            raise ValueError(f"unknown BBAM setting(s) {unknown}; see bbam_lite.attribution.bbam.BBAMConfig")
        return replace(s, bbam={k: v for k, v in bbam.items() if getattr(base, k) != v})

    def labels_dir(self, settings, split: str, limit: int | None, tag: str = "", **extra: Any) -> Path:
        """``RUN/labels/<method><tag>-<key>``, the folder of labels made with ``settings`` (a
        :class:`~bbam_lite.pseudo.settings.PseudoLabelSettings`) from ``split``'s first ``limit``
        images. The key holds the settings, split, limit, seed, ``extra`` and, for labels that
        come from the detector (BBAM, or detector boxes), the checkpoint's bytes: a new detector
        under the same file name never reuses old labels."""
        ident = {"settings": settings.record(), "split": split, "limit": limit, "seed": self.seed, **extra}
        if settings.uses_detector:
            ident["detector"] = self.detector_digest()
        return self.run_dir / "labels" / f"{settings.method}{tag}-{settings_key(ident)}"

    def labels(
        self, method: str, split: str = "train", limit: int | None = -1, **overrides: Any
    ) -> tuple[Path, dict]:
        """Pseudo labels of ``method`` for the profile's label images: (folder, quality dict).

        ``limit=-1`` uses the profile's ``label_images``. A rerun returns the cached folder. BBAM
        labels with other post-processing than the default (thresholds, CRF, refinement) reuse the
        maps of the default's folder (made first if needed) instead of optimising again.
        """
        from bbam_lite.pseudo.generate import generate
        from bbam_lite.pseudo.job import LabelJob

        settings = self.label_settings(method, **overrides)
        limit = self.profile.label_images if limit == -1 else limit
        if settings.method_obj.stores_maps and not settings.maps_from:
            base = settings.without_postprocessing()
            if base != settings:
                fields = _overrides_of(base, self.label_settings(method))
                base_dir, _ = self.labels(method, split, limit, **fields)
                settings = replace(settings, maps_from=str(base_dir))
        out = self.labels_dir(settings, split, limit)
        quality = out / "quality.json"
        with made_once(self.run_dir, "labels", out, quality.exists) as finished:
            if finished:
                return out, json.loads(quality.read_text())
            ds, ref = self.data(split), self.detector_ref  # the detector: loaded only if the labels need it
            job = LabelJob.make(
                ds, settings, out, ref, self.mean, device=self.device, limit=limit, progress=False
            )
            return out, generate(job)

    # ---------------------------------------------------------------------------- analyses
    def cached_json(
        self, name: str, settings: dict, compute: Callable[[], Any], uses_detector: bool = True
    ) -> Any:
        """``compute()``'s JSON-able result, stored under RUN/results keyed by ``settings`` (and by
        the detector checkpoint's bytes unless ``uses_detector`` is False, so a newly shipped or
        retrained detector never reuses an old result)."""
        full = {
            "settings": settings,
            "profile": self.profile.name,
            "dataset": self.dataset,
            "seed": self.seed,
        }
        if uses_detector:
            full["detector"] = self.detector_digest()
        path = self.run_dir / "results" / f"{name}-{settings_key(full)}.json"
        with made_once(self.run_dir, "result", path, path.exists) as finished:
            if finished:
                return json.loads(path.read_text())["result"]
            result = compute()
            atomic_write_json(path, {"settings": full, "result": result}, indent=1)
            return result

    def describe(self) -> str:
        """One line for a chapter's header: profile, data, device and hardware."""
        from bbam_lite.utils.run_folder import hardware

        data = (
            f"synthetic ({self.profile.n_train}/{self.profile.n_val} images)"
            if self.dataset == "synthetic"
            else (f"{self.dataset} at {self.data_root}")
        )
        return (
            f"profile {self.profile.name}, data {data}, device {self.device}, seed {self.seed}; {hardware()}"
        )


def _overrides_of(settings, default) -> dict:
    """The fields of ``settings`` that differ from ``default`` (to rebuild it with ``label_settings``)."""
    d = asdict(default)
    return {k: v for k, v in asdict(settings).items() if d[k] != v}
