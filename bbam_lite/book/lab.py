"""``make lab``: JupyterLab on the chapters' notebooks with the project's kernel, offline.

``python -m bbam_lite.book.lab [JUPYTER-LAB OPTIONS]`` registers this interpreter as the kernel
``bbam-lite`` (as ``bbam-lite book run`` does), then replaces itself with JupyterLab serving
``notebooks/`` without opening a browser. The only kernel it offers is ``bbam-lite``, so a chapter
opens with it whatever kernel its file names, and it fetches nothing from the network (no news feed,
no update check, no extension catalogue).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bbam_lite.book.runner import KERNEL, ensure_kernel

#: JupyterLab's settings that would otherwise reach the network.
OFFLINE = (
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
    "--LabApp.extension_manager=readonly",
)


def lab_command(notebook_dir: Path = Path("notebooks"), *extra: str, kernel: str = KERNEL) -> list[str]:
    """The JupyterLab command line on ``notebook_dir`` with ``kernel`` as its only kernel (as root, as
    in a container, with ``--allow-root``, which JupyterLab otherwise demands)."""
    root = ("--allow-root",) if hasattr(os, "geteuid") and os.geteuid() == 0 else ()
    return [
        sys.executable, "-m", "jupyterlab", f"--notebook-dir={notebook_dir}", "--no-browser",
        f"--KernelSpecManager.allowed_kernelspecs={kernel}",
        f"--MappingKernelManager.default_kernel_name={kernel}", *OFFLINE, *root, *extra,
    ]  # fmt: skip


def _fail(message: str) -> None:
    print(f"bbam-lite lab: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    """Register the kernel and run JupyterLab on ``notebooks/`` (run from the repository root)."""
    if not Path("notebooks").is_dir():
        _fail("notebooks: no such folder here; run `make lab` from the repository root")
    try:
        ensure_kernel()
    except ValueError as e:
        _fail(str(e))
    cmd = lab_command(Path("notebooks"), *(sys.argv[1:] if argv is None else argv))
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
