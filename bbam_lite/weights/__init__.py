"""The shipped detector: trained by ``bbam-lite train-detector`` on the default synthetic set.

``detector_synthetic.json`` beside the checkpoint records the command, seed, hardware, training
time and validation AP it was made with.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent
DEFAULT_DETECTOR = WEIGHTS_DIR / "detector_synthetic.pt"


def default_detector_path() -> Path:
    """Path of the shipped detector for the default synthetic data."""
    if not DEFAULT_DETECTOR.is_file():
        raise FileNotFoundError(f"{DEFAULT_DETECTOR}: the shipped detector is missing from this install")
    return DEFAULT_DETECTOR
