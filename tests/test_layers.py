"""Layers point down: import-linter's contracts in pyproject.toml (layers, no cycles, nothing but
the command line imports bbam_lite.cli) hold for the package, and a violation breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the repository's contracts on the package found under ``root``."""
    assert LINT_IMPORTS.is_file(), f"{LINT_IMPORTS}: import-linter is not installed (make setup)"
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contracts_are_kept() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_library_module_that_imports_the_cli_or_an_upper_layer_breaks_them(tmp_path) -> None:
    copy = tmp_path / "bbam_lite"
    shutil.copytree(REPO / "bbam_lite", copy, ignore=shutil.ignore_patterns("__pycache__", "*.pt"))
    with (copy / "segment" / "runs.py").open("a") as f:
        f.write("\n\ndef _cli():\n    from bbam_lite.cli import main\n\n    return main\n")
    with (copy / "data" / "records.py").open("a") as f:
        f.write("\n\ndef _up():\n    from bbam_lite.pseudo import folder\n\n    return folder\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "bbam_lite.segment.runs -> bbam_lite.cli" in result.stdout
    assert "bbam_lite.data is not allowed to import bbam_lite.pseudo" in result.stdout
    assert "No cycles are allowed in bbam_lite." in result.stdout  # data -> pseudo -> data
