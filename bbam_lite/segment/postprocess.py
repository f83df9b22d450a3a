"""Dense-CRF post-processing of segmentation predictions (the CRF of :mod:`bbam_lite.pseudo.crf`).

The pairwise widths are the pseudo labels' (the authors' values for VOC-sized images: Gaussian
sxy 1 weight 3, bilateral sxy 80 srgb 3 weight 4, 10 iterations), scaled to the image's shorter
side over 375 px in the lite profile, exactly as the pseudo labels' lite profile does.
"""

from __future__ import annotations

import numpy as np

from bbam_lite.pseudo.crf import CRFParams, crf_foreground, crf_marginals
from bbam_lite.pseudo.settings import crf_params


def crf_params_for(height: int, width: int, scaled: bool) -> CRFParams:
    """The CRF's parameters for an image: the paper's, or scaled to its size (lite profiles), as
    the pseudo labels' profiles choose them."""
    return crf_params("lite" if scaled else "full", height, width)


def crf_semantic(image: np.ndarray, probs: np.ndarray, scaled: bool) -> np.ndarray:
    """Refined class probabilities (C, H, W) of a semantic prediction."""
    return crf_marginals(image, probs, crf_params_for(*probs.shape[1:], scaled))


def crf_instance(image: np.ndarray, prob: np.ndarray, scaled: bool) -> np.ndarray:
    """Refined foreground probability (H, W) of one predicted instance mask."""
    return crf_foreground(image, prob, crf_params_for(*prob.shape, scaled))
