"""Shared fixtures. Tests run torchvision's RoIAlign eagerly: compiling it costs a minute per process."""

from __future__ import annotations

import os

os.environ.setdefault("BBAM_LITE_EAGER_ROI_ALIGN", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """A small synthetic dataset on disk (8 train, 4 val images of 96 px)."""
    from bbam_lite.data.synthetic import SynthSettings, synthesize

    root = tmp_path_factory.mktemp("synth") / "data"
    return synthesize(root, SynthSettings(n_train=8, n_val=4, seed=3, size=96), progress=False)
