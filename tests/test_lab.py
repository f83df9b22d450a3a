"""``make lab`` (``bbam-lite book lab``): JupyterLab started headless on the notebooks, a chapter
opened through its server and a cell of it executed with the project's kernel, then shut down with
nothing left running."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from processes import descendants, wait_gone

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _execute(ws, code: str, timeout: float = 120) -> str:
    """Run ``code`` on the kernel's websocket; its printed output."""
    msg_id = uuid.uuid4().hex
    ws.send(
        json.dumps(
            {
                "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": uuid.uuid4().hex,
                           "username": "test", "version": "5.3"},  # fmt: skip
                "parent_header": {},
                "metadata": {},
                "content": {"code": code, "silent": False, "store_history": False,
                            "user_expressions": {}, "allow_stdin": False},  # fmt: skip
                "channel": "shell",
            }
        )
    )
    out, end = [], time.monotonic() + timeout
    while time.monotonic() < end:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg["header"]["msg_type"]
        if kind == "stream":
            out.append(msg["content"]["text"])
        elif kind == "error":
            raise AssertionError(f"{msg['content']['ename']}: {msg['content']['evalue']}")
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(out)
    raise AssertionError("the kernel did not answer")


def test_lab_opens_a_chapter_and_runs_it_with_the_project_kernel(tmp_path) -> None:
    requests = pytest.importorskip("requests")
    websocket = pytest.importorskip("websocket")
    port, token = _free_port(), uuid.uuid4().hex
    argv = [sys.executable, "-m", "bbam_lite", "book", "lab", "--", f"--port={port}",
            f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0"]  # fmt: skip
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    lab = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"token {token}"}
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end:
            assert lab.poll() is None, lab.stdout.read()
            try:
                if requests.get(f"{base}/api/status", headers=auth, timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        listing = requests.get(f"{base}/api/contents", headers=auth, timeout=10).json()
        names = sorted(item["name"] for item in listing["content"])
        assert "05-bbam-step-by-step.ipynb" in names and "13-exercises.ipynb" in names
        chapter = requests.get(f"{base}/api/contents/05-bbam-step-by-step.ipynb", headers=auth, timeout=10)
        cells = chapter.json()["content"]["cells"]
        params = next(c["source"] for c in cells if "parameters" in c["metadata"].get("tags", []))
        page = requests.get(f"{base}/lab", headers=auth, timeout=10)
        assert page.ok and "JupyterLab" in page.text
        kernel = requests.post(f"{base}/api/kernels", headers=auth, json={"name": "bbam-lite"}, timeout=30)
        assert kernel.ok, kernel.text
        kid = kernel.json()["id"]
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}/api/kernels/{kid}/channels?token={token}", timeout=120
        )
        try:
            code = "\nimport bbam_lite, sys\nprint(profile, bbam_lite.__file__, sys.executable)"
            out = _execute(ws, params + code)
        finally:
            ws.close()
        assert out.startswith("lite ") and str(REPO / "bbam_lite") in out, out
        assert requests.delete(f"{base}/api/kernels/{kid}", headers=auth, timeout=30).status_code == 204
    finally:
        tree = descendants(lab.pid)
        lab.send_signal(signal.SIGINT)
        try:
            lab.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if lab.poll() is None:  # JupyterLab asks to confirm a first Ctrl-C: a second one stops it
            lab.send_signal(signal.SIGINT)
            try:
                lab.wait(timeout=20)
            except subprocess.TimeoutExpired:
                lab.kill()
                lab.wait()
        assert not wait_gone(tree, 10.0)
