"""A method declares its own options: registering a method with one option adds the pseudo-labels
flag, the value in the settings and in the labels folder's key; nothing else changes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bbam_lite.cli import build_parser, main
from bbam_lite.pseudo.labels import InstanceLabel, box_region
from bbam_lite.pseudo.methods import method_names, methods
from bbam_lite.pseudo.methods.base import ImageBoxes, LabelContext, Method
from bbam_lite.pseudo.options import Option
from bbam_lite.pseudo.registry import _REGISTRY, register
from bbam_lite.pseudo.settings import PseudoLabelSettings


class Shrunk(Method):
    """The box shrunk by ``margin`` of its side on every edge; the rim is ignored."""

    name = "test_shrunk"
    title = "Shrunk box"
    summary = "the box shrunk by --margin, its rim ignored"
    options = (Option("margin", float, 0.0, "share of the box side cut from each edge"),)

    def label(self, ctx: LabelContext, item: ImageBoxes) -> list[InstanceLabel]:
        m = ctx.settings.options["margin"]
        out = []
        for b, c in zip(item.boxes, item.labels, strict=True):
            dx, dy = m * (b[2] - b[0]), m * (b[3] - b[1])
            inner = box_region(np.array([b[0] + dx, b[1] + dy, b[2] - dx, b[3] - dy]), *item.shape)
            out.append(InstanceLabel(int(c), b.copy(), inner, box_region(b, *item.shape) & ~inner))
        return out


@pytest.fixture
def shrunk():
    register(Shrunk)
    yield Shrunk
    del _REGISTRY[Shrunk.name]


def pseudo_labels_parser():
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return sub.choices["pseudo-labels"]


def test_registering_adds_the_flag_and_the_key(shrunk) -> None:
    assert "test_shrunk" in method_names()
    text = " ".join(pseudo_labels_parser().format_help().split())
    assert "--margin" in text and "--method test_shrunk; default 0.0" in text
    s = PseudoLabelSettings(method="test_shrunk")
    assert s.options == {"margin": 0.0} and s.record()["options"] == {"margin": 0.0}
    assert PseudoLabelSettings(method="test_shrunk", options={"margin": 1}).options == {"margin": 1.0}
    assert PseudoLabelSettings(method="test_shrunk", options={"margin": 0.0}) == s  # one folder
    with pytest.raises(ValueError, match="--margin must be float"):
        PseudoLabelSettings(method="test_shrunk", options={"margin": "x"})
    with pytest.raises(ValueError, match="method box has no option"):
        PseudoLabelSettings(method="box", options={"margin": 0.1})
    # methods without options keep their settings.json as before: no "options" key
    assert all(
        "options" not in PseudoLabelSettings(method=m.name).record() for m in methods() if not m.options
    )


def test_bad_declarations_are_refused() -> None:
    with pytest.raises(ValueError, match="must be float"):
        Option("margin", float, "wide")
    with pytest.raises(ValueError, match="type must be"):
        Option("margin", list, [])

    class Clash(Method):
        name = "test_clash"
        title = summary = "clash"
        options = (Option("theta_fg", float, 0.5),)

    with pytest.raises(ValueError, match="theta_fg"):
        register(Clash)
    assert "test_clash" not in _REGISTRY


def test_the_flag_through_the_cli(shrunk, tiny_synth, tmp_path, capsys) -> None:
    def run(out, *extra):
        argv = ["--quiet", "pseudo-labels", "--data", str(tiny_synth), "--out", str(tmp_path / out)]
        return main([*argv, "--limit", "2", "--workers", "1", *extra])

    assert run("default", "--method", "test_shrunk") == 0
    assert run("wide", "--method", "test_shrunk", "--margin", "0.25") == 0
    settings = [
        json.loads((tmp_path / n / "settings.json").read_text())["settings"] for n in ("default", "wide")
    ]
    assert [s["options"] for s in settings] == [{"margin": 0.0}, {"margin": 0.25}]
    inst = [json.loads((tmp_path / n / "instances.json").read_text()) for n in ("default", "wide")]
    assert inst[0]["annotations"] != inst[1]["annotations"]  # the option reached the method
    assert run("wide", "--method", "test_shrunk", "--margin", "0.3") == 2  # other settings, refused
    capsys.readouterr()
    assert run("box", "--method", "box", "--margin", "0.25") == 2  # another method's option
    err = capsys.readouterr().err.strip()
    assert err.endswith("--margin: not an option of --method box") and "\n" not in err
