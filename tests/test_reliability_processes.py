"""Worker processes never outlive the run that started them: ``pseudo-labels --workers 2`` whose main
process is killed with SIGKILL (as the out-of-memory killer does) leaves no forkserver, worker or
resource tracker behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from processes import command, descendants, wait_gone

from bbam_lite.pseudo.workers import watch_parent

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_sigkill_of_the_main_process_leaves_no_process(tiny_synth, tmp_path) -> None:
    argv = [sys.executable, "-m", "bbam_lite", "--quiet", "pseudo-labels", "--data", str(tiny_synth)]
    argv += ["--method", "bbam", "--profile", "lite", "--workers", "2", "--out", str(tmp_path / "l")]
    main = subprocess.Popen(argv, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        end = time.monotonic() + 120
        while main.poll() is None and time.monotonic() < end:
            tree = descendants(main.pid)
            workers = [p for p in tree if "forkserver" in command(p)]
            if len(workers) >= 3:  # the forkserver and its two workers
                break
            time.sleep(0.2)
        assert main.poll() is None, "the run ended before its workers could be seen"
        tree = descendants(main.pid)
        assert any("resource_tracker" in command(p) for p in tree), [command(p) for p in tree]
        os.kill(main.pid, signal.SIGKILL)
        main.wait()
        left = wait_gone(tree, 10.0)
        assert not left, [command(p) for p in left]
    finally:
        if main.poll() is None:
            main.kill()
            main.wait()


def test_watch_parent_ends_the_child_with_its_parent() -> None:
    """The watcher in a child of a process that is then killed (a small tree: parent -> child)."""
    code = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import os, sys, time; from bbam_lite.pseudo.workers import watch_parent; "
        "watch_parent(int(sys.argv[1])); print(os.getpid(), flush=True); time.sleep(60)', "
        "str(os.getpid())], stdout=sys.stdout)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert not wait_gone([child], 5.0)
    finally:
        parent.kill()
        parent.wait()
    assert watch_parent  # imported: the function the workers' initializer calls
