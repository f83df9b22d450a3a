"""Would `pip install -e .` replace a machine's own PyTorch? Asks pip, without installing anything.

A GPU machine comes with its own torch and torchvision (a CUDA build, often from PyTorch's index,
say torch 2.11.0+cu128). This script builds a stand-in for that machine:

1. two stub wheels, ``torch`` and ``torchvision`` at the given versions (a few hundred bytes each,
   written here with :mod:`zipfile`; the torchvision stub requires ``torch==<its version>`` as the
   real one does), installed with ``--no-index`` into a fresh virtual environment;
2. ``pip install --dry-run --report report.json -e PROJECT`` in that environment, PROJECT being a
   copy of this repository's ``pyproject.toml``, ``README.md`` and ``bbam_lite/`` (the copy keeps
   pip's metadata build out of the working tree). pip resolves every other dependency against its
   index (PyPI unless ``--index-url`` says otherwise), so this needs the network.

It prints pip's plan (every distribution it would install) and exits 1 if the plan contains torch
or torchvision, i.e. if pip would replace the machine's PyTorch. Your pip configuration (config
files, ``PIP_*`` variables other than ``PIP_CERT``) is ignored so that only the project decides.

    python scripts/check_install_over_torch.py                      # torch 2.11.0, torchvision 0.26.0
    python scripts/check_install_over_torch.py --torch 2.11.0+cu128 --torchvision 0.26.0+cu128
    python scripts/check_install_over_torch.py --pyproject OLD.toml # e.g. the former exact pins (control)

Measured output: docs/measurements/install-over-torch-2026-11-28.txt.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def stub_wheel(out_dir: Path, name: str, version: str, requires: list[str]) -> Path:
    """Write a pure-Python wheel ``name==version`` whose package only holds ``__version__``."""
    dist = f"{name}-{version}"
    info = f"{dist}.dist-info"
    files = {
        f"{name}/__init__.py": f'__version__ = "{version}"\n',
        f"{info}/METADATA": "Metadata-Version: 2.1\n"
        f"Name: {name}\nVersion: {version}\nSummary: stub standing in for an installed {name}\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: check_install_over_torch\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    wheel = out_dir / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


def isolated_env(index_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k == "PIP_CERT"}
    env["PIP_CONFIG_FILE"] = os.devnull  # no pip.conf: no extra indexes, find-links or constraints
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if index_url:
        env["PIP_INDEX_URL"] = index_url
    return env


def run(cmd: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    return proc.stdout


def offline_install(wheels: Path, planned: dict[str, str], pip: list[str], target: str, env: dict) -> None:
    """Fill ``wheels`` with pip's plan and install ``target`` from it with ``--no-index``."""
    wheels = wheels.resolve()
    wheels.mkdir(parents=True, exist_ok=True)
    reqs = [f"{n}=={v}" for n, v in sorted(planned.items()) if n != "bbam-lite"]
    t0 = time.perf_counter()
    run(pip + ["wheel", "-q", "--no-deps", "-w", str(wheels), *reqs, "setuptools>=68", "wheel"], env)
    files = sorted(p.name for p in wheels.glob("*.whl"))
    size = sum(p.stat().st_size for p in wheels.glob("*.whl")) / 2**20
    print(f"wheels folder {wheels}: {len(files)} wheels, {size:.0f} MiB ({time.perf_counter() - t0:.0f} s)")
    t0 = time.perf_counter()
    run(pip + ["install", "-q", "--no-index", "--find-links", str(wheels), "-e", target], env)
    listed = json.loads(run(pip + ["list", "--format", "json"], env))
    after = {canonicalize_name(d["name"]): d["version"] for d in listed}
    missing = [n for n in planned if canonicalize_name(n) not in after]
    print(f"pip install --no-index --find-links WHEELS -e PROJECT: {time.perf_counter() - t0:.0f} s; "
          f"bbam-lite {after.get('bbam-lite')}, torch {after.get('torch')}, torchvision "
          f"{after.get('torchvision')}; planned but not installed: {missing or 'none'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--torch", default="2.11.0", help="version of the machine's torch (default 2.11.0)")
    ap.add_argument("--torchvision", default="0.26.0", help="version of its torchvision (default 0.26.0)")
    ap.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml",
                    help="the pyproject.toml to test (default: the repository's)")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the temporary venv")
    ap.add_argument("--index-url", default=None, help="package index (default: pip's, i.e. PyPI)")
    ap.add_argument("--extras", default="", help="extras to ask for too, e.g. dev")
    ap.add_argument("--wheels", type=Path, default=None,
                    help="also put a wheel of everything in pip's plan into this folder (binary wheels "
                    "where the index has them, else built here, e.g. pydensecrf2), plus setuptools and "
                    "wheel, then install offline from it (--no-index) to show that the folder is enough")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder and print it")
    args = ap.parse_args(argv)

    env = isolated_env(args.index_url)
    tmp = Path(tempfile.mkdtemp(prefix="install-over-torch-"))
    try:
        wheels = tmp / "wheels"
        wheels.mkdir()
        stub_wheel(wheels, "torch", args.torch, [])
        stub_wheel(wheels, "torchvision", args.torchvision, [f"torch=={args.torch}"])

        project = tmp / "project"
        project.mkdir()
        shutil.copy(args.pyproject, project / "pyproject.toml")
        shutil.copy(ROOT / "README.md", project / "README.md")
        shutil.copytree(ROOT / "bbam_lite", project / "bbam_lite",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pt"))

        venv = tmp / "venv"
        run([args.python, "-m", "venv", str(venv)], env)
        pip = [str(venv / "bin" / "python"), "-m", "pip"]
        pip_version = run(pip + ["--version"], env).split()[1]
        run(pip + ["install", "-q", "--no-index", "--find-links", str(wheels), "torch", "torchvision"], env)
        before = run(pip + ["list", "--format", "json"], env)
        installed = {d["name"].lower(): d["version"] for d in json.loads(before)}

        report = tmp / "report.json"
        t0 = time.perf_counter()
        target = str(project) + (f"[{args.extras}]" if args.extras else "")
        run(pip + ["install", "-q", "--dry-run", "--report", str(report), "-e", target], env)
        seconds = time.perf_counter() - t0
        plan = json.loads(report.read_text())["install"]
        planned = {p["metadata"]["name"].lower(): p["metadata"]["version"] for p in plan}

        deps = tomllib.loads(args.pyproject.read_text())["project"]["dependencies"]
        declared = [d for d in deps if Requirement(d).name in ("torch", "torchvision")]
        print(f"python {platform.python_version()} ({args.python}), pip {pip_version}, "
              f"index {args.index_url or 'PyPI (pip default)'}, pip configuration ignored")
        print(f"pyproject: {args.pyproject}; declares: {', '.join(str(Requirement(d)) for d in declared)}")
        print(f"installed before (stubs): torch {installed.get('torch')}, "
              f"torchvision {installed.get('torchvision')}")
        print(f"pip install --dry-run --report -e PROJECT: {seconds:.1f} s, "
              f"{len(planned)} distributions to install:")
        for name in sorted(planned):
            print(f"  {name}=={planned[name]}")
        replaced = sorted(n for n in ("torch", "torchvision") if n in planned)
        if replaced:
            print("RESULT: pip WOULD REPLACE the machine's "
                  + ", ".join(f"{n} {installed.get(n)} -> {planned[n]}" for n in replaced))
            return 1
        print(f"RESULT: pip keeps the machine's torch {installed.get('torch')} and "
              f"torchvision {installed.get('torchvision')} (neither is in its plan)")
        if args.wheels:
            offline_install(args.wheels, planned, pip, target, env)
        return 0
    finally:
        if args.keep:
            print(f"kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
