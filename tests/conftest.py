"""Shared fixtures. Tests run torchvision's RoIAlign eagerly: compiling it costs a minute per process."""

from __future__ import annotations

import os
import subprocess
import sys

os.environ.setdefault("BBAM_LITE_EAGER_ROI_ALIGN", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """A small synthetic dataset on disk (8 train, 4 val images of 96 px)."""
    from bbam_lite.data.synthetic import SynthSettings, synthesize

    root = tmp_path_factory.mktemp("synth") / "data"
    return synthesize(root, SynthSettings(n_train=8, n_val=4, seed=3, size=96), progress=False)


@pytest.fixture(scope="session")
def smoke_detector(tmp_path_factory):
    """A randomly initialised smoke-profile detector for the synthetic classes (BBAM then mostly
    falls back to the annotated box, which exercises that path too)."""
    import torch

    from bbam_lite.data.synthetic import CLASSES
    from bbam_lite.detector.model import build_detector, get_profile, save_detector

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("det") / "smoke.pt"
    save_detector(
        path,
        build_detector(get_profile("smoke"), len(CLASSES)),
        get_profile("smoke"),
        ["background", *CLASSES],
        {"note": "random init, tests only"},
    )
    return path


@pytest.fixture(scope="session")
def torchrun():
    """Run ``bbam-lite ARGS`` under ``torchrun --nproc-per-node N`` (gloo, one thread per process)."""

    def run(args: list[str], n: int = 2, timeout: int = 300) -> subprocess.CompletedProcess:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}"]
        return subprocess.run(
            [*launcher, "-m", "bbam_lite", "--quiet", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )

    return run


_BROWSER: list[tuple[str, str, str]] = []


def pytest_runtest_logreport(report):
    """Collect the browser tests' outcomes (skips are reported at setup, passes at call)."""
    if "browser" in report.keywords and (report.when == "call" or report.skipped):
        reason = report.longrepr[2] if report.skipped and isinstance(report.longrepr, tuple) else ""
        _BROWSER.append((report.nodeid, report.outcome, reason))


def pytest_terminal_summary(terminalreporter):
    """Say whether the browser test ran: CI's log must show it passed, not only that it was skipped."""
    for nodeid, outcome, reason in _BROWSER:
        terminalreporter.write_line(f"browser test {outcome}: {nodeid}" + (f" ({reason})" if reason else ""))


_SUBREAPER: list[bool] = []


def pytest_sessionstart(session):
    """Adopt orphaned descendants, so that a process a test leaves behind is found at the end."""
    from processes import become_subreaper

    _SUBREAPER.append(become_subreaper())


def _own_helpers() -> set[int]:
    """This process's own long-lived helpers: multiprocessing's forkserver and resource tracker
    (they end with it) and torch's compile workers."""
    import multiprocessing.forkserver as fs
    import multiprocessing.resource_tracker as rt

    from processes import command, descendants

    own = {getattr(fs._forkserver, "_forkserver_pid", None), getattr(rt._resource_tracker, "_pid", None)}
    own |= {p for p in descendants(os.getpid()) if "compile_worker" in command(p)}
    return {p for p in own if p}


def pytest_sessionfinish(session, exitstatus):
    """Fail the run when a test left a process running (after a grace of 10 s), and end them."""
    if not (_SUBREAPER and _SUBREAPER[0]):
        return
    import signal

    from processes import command, descendants, reap, wait_gone

    reap()
    own = _own_helpers()
    left = wait_gone([p for p in descendants(os.getpid()) if p not in own], 10.0)
    left = [p for p in left if p not in own and p not in {q for o in own for q in descendants(o)}]
    reap()
    if left:
        lines = [f"  {p}: {command(p)[:160]}" for p in left]
        sys.stderr.write("processes left running by the tests (now killed):\n" + "\n".join(lines) + "\n")
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        reap()
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
