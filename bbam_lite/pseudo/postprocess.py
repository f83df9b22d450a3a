"""The one path from an object's attribution map to its pseudo label.

Thresholds with an ignore band (the paper's text) or area quantiles with a blur (the authors' code),
the dense CRF, and the proposal refinement of Eq. 4: :class:`PostProcess` says which, and
:meth:`PostProcess.label` applies them to one object. The label generator (BBAM's method) and the
ablations of chapters 6 and 11 (:mod:`bbam_lite.pseudo.ablation`) both go through it, so a
post-processing setting means the same thing in a labels folder and in a table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bbam_lite.pseudo.crf import CRFParams
from bbam_lite.pseudo.labels import box_region, refine_official, refine_paper
from bbam_lite.pseudo.refine import refine_with_proposals
from bbam_lite.pseudo.settings import PseudoLabelSettings, crf_params, image_scale

#: The authors' code refines only boxes whose shorter side is at least this many paper pixels.
REFINE_MIN_SIDE = 32.0

RULES = ("values", "quantiles")


@dataclass(frozen=True)
class PostProcess:
    """How a map becomes a label.

    ``rule`` ``values``: theta_fg / theta_bg on the (CRF-refined) map's values, as the paper states
    it; ``quantiles``: the authors' code (area quantiles 0.85 / 0.2, blur, its own CRF; the thetas are
    not used). ``refine``: Eq. 4 with mask proposals, as the paper (every proposal wholly inside the
    mask) under ``values`` and as the authors' code (95% inside, the best proposal 95% inside the
    box, boxes with a side under 32 paper pixels left alone) under ``quantiles``. ``profile`` lite
    scales the CRF's widths and that minimum side to the image.
    """

    rule: str = "values"
    crf: bool = True
    theta_fg: float = 0.8
    theta_bg: float = 0.2
    refine: bool = False
    profile: str = "full"

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"post-processing rule must be one of {RULES}, got {self.rule!r}")
        if not 0 <= self.theta_bg <= self.theta_fg <= 1:
            raise ValueError(f"need 0 <= theta_bg <= theta_fg <= 1, got {self.theta_bg}, {self.theta_fg}")

    @classmethod
    def of(cls, settings: PseudoLabelSettings) -> PostProcess:
        """The post-processing a labels folder's settings ask for (the BBAM preset picks the rule)."""
        return cls(
            rule="quantiles" if settings.preset == "official" else "values",
            crf=settings.crf,
            theta_fg=settings.theta_fg,
            theta_bg=settings.theta_bg,
            refine=settings.refine == "proposals",
            profile=settings.profile,
        )

    @property
    def contained_wins(self) -> bool:
        """The authors' composition: an instance whose box lies inside another's keeps the overlap."""
        return self.rule == "quantiles"

    def crf_params(self, height: int, width: int) -> CRFParams:
        return crf_params(self.profile, height, width)

    def label(
        self,
        image: np.ndarray,
        prob: np.ndarray,
        box: np.ndarray,
        stride: float | None = None,
        proposals: np.ndarray | None = None,
        failed: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, dict]:
        """(foreground, ignore, extra info) of one object from its map ``prob`` (H, W) in [0, 1].

        ``stride`` (the object's BBAM stride) is the quantile rule's blur kernel; ``proposals``
        (K, H, W) are needed when ``refine``; a ``failed`` object (numerical fault) becomes an
        ignore region over its box with no foreground.
        """
        h, w = prob.shape
        if failed:
            return np.zeros((h, w), bool), box_region(np.asarray(box, np.float64), h, w), {}
        if self.rule == "quantiles":
            if stride is None:
                raise ValueError("the quantile rule needs the object's stride (its blur kernel)")
            fg, ignore, extra = refine_official(image, prob, box, float(stride), self.crf_params(h, w))
        else:
            crf = self.crf_params(h, w) if self.crf else None
            fg, ignore, _ = refine_paper(image, prob, box, crf, self.theta_fg, self.theta_bg)
            extra = {}
        if self.refine:
            if proposals is None:
                raise ValueError("proposal refinement needs mask proposals")
            fg, extra["refined"] = self._refine(fg, proposals, box, h, w)
            ignore &= ~fg
        return fg, ignore, extra

    def refined_map(self, image: np.ndarray, prob: np.ndarray, box: np.ndarray) -> np.ndarray:
        """The ``values`` rule's map before its thresholds: ``prob`` inside the box, CRF-refined
        when ``crf`` (one refinement serves a sweep of thresholds, Table 5)."""
        if self.rule != "values":
            raise ValueError("only the values rule (the paper's text) thresholds a refined map")
        h, w = prob.shape
        crf = self.crf_params(h, w) if self.crf else None
        return refine_paper(image, prob, box, crf, self.theta_fg, self.theta_bg)[2]

    def _refine(
        self, fg: np.ndarray, proposals: np.ndarray, box: np.ndarray, h: int, w: int
    ) -> tuple[np.ndarray, bool]:
        if self.rule == "values":
            return refine_with_proposals(fg, proposals, 1.0, box), True
        if min(box[2] - box[0], box[3] - box[1]) < REFINE_MIN_SIDE * image_scale(self.profile, h, w):
            return fg, False
        return refine_with_proposals(fg, proposals, 0.95, box, best_inside_box=0.95), True
