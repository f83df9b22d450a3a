"""pyproject.toml declares ranges for torch and torchvision (so `pip install -e .` keeps a GPU
machine's own PyTorch); requirements.lock pins exact versions inside them for `make setup`.

What pip actually plans on a machine with torch 2.11 is measured by
scripts/check_install_over_torch.py (needs the network; docs/measurements/install-over-torch-*.txt).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]


def declared() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
    return {canonicalize_name(r.name): r for r in reqs}


def pins(path: Path) -> dict[str, Version]:
    """`name==version` lines of a requirements file (or environment.yml's pip list)."""
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^\s*(?:-\s+)?([A-Za-z0-9_.\-]+)==([^\s#;]+)", line)
        if m:
            out[canonicalize_name(m.group(1))] = Version(m.group(2))
    return out


@pytest.mark.parametrize(
    "name, version, ok",
    [
        ("torch", "2.11.0", True),
        ("torch", "2.11.0+cu128", True),  # PyTorch's own CUDA wheels carry a local version
        ("torch", "2.12.1", True),
        ("torch", "2.13.0", True),
        ("torch", "2.13.0+cpu", True),
        ("torch", "2.10.0", False),
        ("torch", "2.14.0", False),
        ("torch", "3.0.0", False),  # bounded above: never "the newest torch"
        ("torchvision", "0.26.0", True),
        ("torchvision", "0.26.0+cu128", True),
        ("torchvision", "0.27.1", True),
        ("torchvision", "0.28.0", True),
        ("torchvision", "0.25.0", False),
        ("torchvision", "0.29.0", False),
    ],
)
def test_torch_ranges(name, version, ok):
    req = declared()[name]
    assert req.specifier.contains(Version(version)) is ok, f"{req} and {version}"


def test_lock_pins_satisfy_the_declared_requirements():
    lock = pins(ROOT / "requirements.lock")
    assert lock["torch"] == Version("2.13.0") and lock["torchvision"] == Version("0.28.0")
    for name, req in declared().items():
        if name in lock:
            assert req.specifier.contains(lock[name], prereleases=True), f"lock {name}=={lock[name]} vs {req}"


def test_environment_yml_pins_satisfy_the_declared_requirements():
    env_pins = pins(ROOT / "environment.yml")
    assert {"torch", "torchvision"} <= set(env_pins)
    for name, req in declared().items():
        if name in env_pins:
            pin = env_pins[name]
            assert req.specifier.contains(pin), f"environment.yml {name}=={pin} vs {req}"


def test_make_setup_installs_with_the_lock_as_constraints():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*-c requirements\.lock .*-e '\.\[dev\]'", makefile)


def test_stub_wheels_of_the_install_check_install(tmp_path):
    """The check script's stand-in torch is a wheel pip installs (offline) and Python imports."""
    spec = importlib.util.spec_from_file_location("cio", ROOT / "scripts" / "check_install_over_torch.py")
    cio = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cio)
    wheel = cio.stub_wheel(tmp_path, "torch", "2.11.0+cu128", [])
    with zipfile.ZipFile(wheel) as zf:
        assert "torch-2.11.0+cu128.dist-info/RECORD" in zf.namelist()
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(target)]
        + [str(wheel)],
        check=True,
        env={"PIP_CONFIG_FILE": "/dev/null", "PATH": "/usr/bin:/bin"},
    )
    out = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.__version__)"],
        cwd=target,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "2.11.0+cu128"
