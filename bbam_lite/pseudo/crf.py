"""Dense CRF (Kraehenbuehl & Koltun) through pydensecrf2, for a foreground probability map.

One function serves BBAM's refinement, the Box + CRF baseline and the authors' fallback, so the
baselines and BBAM are refined by exactly the same CRF.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pydensecrf.densecrf as dcrf
from pydensecrf.utils import unary_from_softmax


@dataclass(frozen=True)
class CRFParams:
    """Pairwise terms in pixels of the paper's VOC images (shorter side about 375 px).

    The defaults are the authors' code's (10 iterations, Gaussian sxy 1 weight 3, bilateral sxy 80,
    srgb 3, weight 4); :meth:`scaled` rescales the spatial widths to another image size.
    """

    iterations: int = 10
    gauss_sxy: float = 1.0
    gauss_weight: float = 3.0
    bilateral_sxy: float = 80.0
    bilateral_srgb: float = 3.0
    bilateral_weight: float = 4.0

    def scaled(self, factor: float) -> CRFParams:
        return replace(
            self, gauss_sxy=max(self.gauss_sxy * factor, 0.5), bilateral_sxy=self.bilateral_sxy * factor
        )


def crf_foreground(
    image: np.ndarray, prob: np.ndarray, params: CRFParams = CRFParams(), eps: float = 1e-5
) -> np.ndarray:
    """Refined foreground marginal Q(fg) of a two-label dense CRF with unary [P(fg), 1 - P(fg)].

    ``image`` is uint8 RGB (H, W, 3); ``prob`` float (H, W) in [0, 1].
    """
    p = np.clip(prob.astype(np.float32), eps, 1 - eps)
    return crf_marginals(image, np.stack([1 - p, p]), params, eps)[1]


def crf_marginals(
    image: np.ndarray, probs: np.ndarray, params: CRFParams = CRFParams(), eps: float = 1e-5
) -> np.ndarray:
    """Marginals Q (C, H, W) of a C-label dense CRF whose unary is -log ``probs`` (C, H, W).

    Used for the post-processing of a segmentation network's softmax output (DeepLab's CRF).
    """
    c, h, w = probs.shape
    p = np.clip(probs.astype(np.float32), eps, 1.0)
    crf = dcrf.DenseCRF2D(w, h, c)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(p)))
    crf.addPairwiseGaussian(sxy=params.gauss_sxy, compat=params.gauss_weight)
    crf.addPairwiseBilateral(
        sxy=params.bilateral_sxy,
        srgb=params.bilateral_srgb,
        rgbim=np.ascontiguousarray(image[..., :3].astype(np.uint8)),
        compat=params.bilateral_weight,
    )
    return np.array(crf.inference(params.iterations), dtype=np.float32).reshape(c, h, w)
