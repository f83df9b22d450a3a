"""One vocabulary of profile names: ``paper`` and ``full`` name the paper's scale on every command
(detector, labels, segmentation networks, notebooks), each accepted where the other is."""

from __future__ import annotations

import json

import pytest

from bbam_lite.cli import main
from bbam_lite.detector.model import get_profile
from bbam_lite.pseudo.settings import PseudoLabelSettings
from bbam_lite.segment.instance import get_instance_profile
from bbam_lite.segment.semantic import get_semantic_profile
from bbam_lite.utils.profiles import profile_name
from bbam_lite.workspace import ParameterError, check_parameters


def test_profile_name_maps_between_the_two_spellings_only() -> None:
    assert profile_name("full", ("smoke", "lite", "paper")) == "paper"
    assert profile_name("paper", ("lite", "full")) == "full"
    assert profile_name("paper-r50", ("lite", "full")) == "paper-r50"  # unknown: left to the caller
    assert profile_name("lite", ("lite", "full")) == "lite"


@pytest.mark.parametrize("get", [get_profile, get_semantic_profile, get_instance_profile])
def test_networks_take_full_for_paper(get) -> None:
    assert get("full") == get("paper") and get("full").profile == "paper"
    with pytest.raises(ValueError, match="unknown .*profile 'huge'"):
        get("huge")


def test_labels_take_paper_for_full_with_the_same_folder_key() -> None:
    paper = PseudoLabelSettings(method="box", profile="paper")
    assert (
        paper.profile == "full"
        and paper.record() == PseudoLabelSettings(method="box", profile="full").record()
    )
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        PseudoLabelSettings(method="box", profile="huge")


def test_notebooks_take_paper_for_full(tmp_path) -> None:
    check_parameters("paper", "synthetic", None, "cpu", 0, str(tmp_path))
    with pytest.raises(ParameterError, match="unknown profile"):
        check_parameters("huge", "synthetic", None, "cpu", 0, str(tmp_path))


def test_pseudo_labels_command_takes_paper_and_resumes_a_full_folder(tmp_path, tiny_synth, capsys) -> None:
    out = tmp_path / "labels"
    argv = ["--quiet", "pseudo-labels", "--data", str(tiny_synth), "--method", "box", "--out", str(out)]
    argv += ["--limit", "1"]
    assert main([*argv, "--profile", "full"]) == 0
    settings = (out / "settings.json").read_bytes()
    assert json.loads(settings)["settings"]["profile"] == "full"
    assert main([*argv, "--profile", "paper"]) == 0  # the same settings: resumed, not refused
    assert (out / "settings.json").read_bytes() == settings
    assert main([*argv, "--profile", "lite"]) == 2  # another scale: refused
    assert "error:" in capsys.readouterr().err
