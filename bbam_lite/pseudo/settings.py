"""The settings of a labels folder: which method, from which boxes, with which post-processing."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bbam_lite.attribution.bbam import BBAMConfig, get_preset
from bbam_lite.pseudo.crf import CRFParams
from bbam_lite.pseudo.options import resolve
from bbam_lite.utils.profiles import profile_name

#: The paper's settings are for VOC images (shorter side about 375 px, detector input 800 px).
PAPER_IMAGE_SIDE = 375.0

#: The BBAM preset used where none is named: the authors' code, which their published numbers were
#: made with and which wins at every difficulty and seed here; ``paper`` is the paper's literal text.
DEFAULT_PRESET = "official"

#: The lite profile's BBAM settings, each beside the paper's value in the book and README.
LITE_BBAM: dict[str, Any] = {
    "stride_reference_side": PAPER_IMAGE_SIDE,  # strides scaled by image side / 375 (paper: absolute px)
    "iterations": 150,  # paper: 300
    "n_jitter": 100,  # paper: not given (authors' code: 1000)
    "max_positives": 24,  # paper: all positives (authors' code: at most 100)
}


#: The fields read only by the methods that list them in their ``settings`` (the others: method,
#: boxes, profile, detector_score, are read by every method or by the labelling loop).
METHOD_FIELDS = ("preset", "theta_fg", "theta_bg", "crf", "refine", "mcg_dir", "bbam", "maps_from")


@dataclass(frozen=True)
class PseudoLabelSettings:
    """Everything that determines a labels folder. ``method`` names a registered method
    (:mod:`bbam_lite.pseudo.methods`); the fields after ``profile`` are read by the methods that
    list them in their ``settings``."""

    method: str = "bbam"
    boxes: str = "gt"  # gt | detector
    preset: str = DEFAULT_PRESET  # BBAM preset: official (authors' code) | paper (the paper's text)
    profile: str = "full"  # full: the paper's pixel values | lite: strides and CRF widths scaled to the image
    theta_fg: float = 0.8
    theta_bg: float = 0.2
    crf: bool = True
    detector_score: float = 0.5  # score threshold for --boxes detector
    refine: str = "none"  # none | proposals (Eq. 4): MCG files from mcg_dir if given, else grouping proposals
    mcg_dir: str | None = None
    bbam: dict = field(default_factory=dict)  # BBAMConfig overrides
    # a labels folder of the same method made with the same boxes and map settings: reuse its stored
    # maps and redo only the post-processing (thresholds, CRF, refinement), minutes instead of hours
    maps_from: str | None = None
    # the options the method declares (bbam_lite.pseudo.options): given values, defaults filled in
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from bbam_lite.pseudo.registry import get_method

        method = get_method(self.method)
        object.__setattr__(self, "profile", profile_name(self.profile, ("full", "lite")))  # paper: full
        object.__setattr__(self, "options", resolve(self.method, method.options, self.options))
        if self.boxes not in ("gt", "detector"):
            raise ValueError(f"--boxes must be gt or detector, got {self.boxes!r}")
        if self.profile not in ("full", "lite"):
            raise ValueError(f"unknown profile {self.profile!r}; choose full (or paper) or lite")
        if self.refine not in ("none", "proposals"):
            raise ValueError(f"--refine must be none or proposals, got {self.refine!r}")
        if self.maps_from and not method.stores_maps:
            raise ValueError(f"--maps-from reuses stored maps: --method {self.method} stores none")

    @property
    def method_obj(self):
        """The registered :class:`~bbam_lite.pseudo.methods.Method` these settings name."""
        from bbam_lite.pseudo.registry import get_method

        return get_method(self.method)

    def record(self) -> dict:
        """The settings as stored in ``settings.json`` and cache keys: the fields every method reads
        and those its method lists in ``settings`` (``maps_from`` only when set, so folders made
        before it existed keep their keys), and ``options`` for methods that declare options."""
        read = self.method_obj.settings
        d = {k: v for k, v in asdict(self).items() if k not in METHOD_FIELDS or k in read}
        if d.get("maps_from") is None:
            d.pop("maps_from", None)
        if not self.method_obj.options:
            d.pop("options")
        return d

    @property
    def uses_detector(self) -> bool:
        """Whether the labels depend on the detector (its maps or its boxes)."""
        return self.method_obj.needs_detector or self.boxes == "detector"

    @property
    def needs_detector(self) -> bool:
        """Whether labelling runs the detector (stored maps carry their boxes)."""
        return not self.maps_from and self.uses_detector

    def without_postprocessing(self) -> PseudoLabelSettings:
        """The settings whose stored maps these settings can reuse: the same map, the default
        post-processing (``self`` when that is already the case)."""
        base = PseudoLabelSettings()
        return replace(
            self,
            theta_fg=base.theta_fg,
            theta_bg=base.theta_bg,
            crf=base.crf,
            refine=base.refine,
            mcg_dir=base.mcg_dir,
            maps_from=None,
        )

    def bbam_config(self) -> BBAMConfig:
        overrides = dict(LITE_BBAM) if self.profile == "lite" else {}
        overrides.update(self.bbam)
        return get_preset(self.preset, **overrides)

    def crf_params(self, height: int, width: int) -> CRFParams:
        return crf_params(self.profile, height, width)


def crf_params(profile: str, height: int, width: int) -> CRFParams:
    """The dense CRF's parameters: the paper's (profile full) or widths scaled to the image (lite)."""
    params = CRFParams()
    return params.scaled(image_scale(profile, height, width)) if profile == "lite" else params


def image_scale(profile: str, height: int, width: int) -> float:
    """Paper pixel lengths (VOC images) times this are this image's (lite profile; 1 at full)."""
    return min(height, width) / PAPER_IMAGE_SIDE if profile == "lite" else 1.0
