"""``make lab``: JupyterLab, started headless with the command ``make lab`` runs, offers only the
project's kernel, opens a chapter through its REST API and executes the chapter's first cells with
that kernel over the kernel's websocket; in headless Chromium (where installed) the lab's page
lists the chapters without fetching anything from another host. Nothing is left running."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import psutil
import pytest
from book_helpers import NOTEBOOKS, REPO, chromium, load_pages

from bbam_lite.book.lab import lab_command
from bbam_lite.book.runner import KERNEL, ensure_kernel

pytestmark = pytest.mark.slow
CHAPTER = "03-detector.ipynb"


class Lab:
    """A JupyterLab server on a free local port with a random token."""

    def __init__(self, tmp_path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, OMP_NUM_THREADS="1", JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
        env.update(JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path))
        server_args = [
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.ip=127.0.0.1",
        ]
        cmd = lab_command(NOTEBOOKS, *server_args, f"--IdentityProvider.token={self.token}")
        self.log = open(tmp_path / "lab.log", "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.base}/api/{path}", data=data, method=method)
        req.add_header("Authorization", f"token {self.token}")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read()
        return json.loads(text) if text else {}

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            try:
                self.api("GET", "status")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.3)
        raise AssertionError(f"JupyterLab did not answer within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-3000:]

    def stop(self) -> list[psutil.Process]:
        """Shut the server down through its API (its kernels with it); returns what is left running."""
        try:
            family = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            family = []
        try:
            self.api("POST", "shutdown")
            self.proc.wait(timeout=30)
        except (urllib.error.URLError, ConnectionError, subprocess.TimeoutExpired):
            pass
        _, alive = psutil.wait_procs(family, timeout=10)
        if self.proc.poll() is None:  # never leave a server behind, even when the test fails
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        self.log.close()
        return alive


@pytest.fixture
def lab(tmp_path):
    ensure_kernel()  # what `make lab` does first
    server = Lab(tmp_path)
    try:
        server.wait_ready()
        yield server
    finally:
        left = server.stop()
        assert left == [], f"processes left running after the lab's shutdown: {left}"


def execute(lab: Lab, kernel_id: str, code: str, timeout: float = 120.0) -> tuple[dict, str]:
    """Run ``code`` in the kernel over its websocket (Jupyter's JSON protocol); its reply and stdout."""
    import websocket

    session = uuid.uuid4().hex
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{lab.port}/api/kernels/{kernel_id}/channels?session_id={session}",
        header=[f"Authorization: token {lab.token}"],
        timeout=timeout,
        suppress_origin=True,
    )
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": session}
    header.update(date=datetime.now(timezone.utc).isoformat(), version="5.3")
    content = {"code": code, "silent": False, "store_history": True, "user_expressions": {}}
    content.update(allow_stdin=False, stop_on_error=True)
    ws.send(json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": content,
                        "channel": "shell", "buffers": []}))  # fmt: skip
    reply, idle, out = None, False, []
    try:
        while reply is None or not idle:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                out.append("\n".join(msg["content"]["traceback"]))
            elif kind == "execute_reply":
                reply = msg["content"]
            elif kind == "status":
                idle = msg["content"]["execution_state"] == "idle"
    finally:
        ws.close()
    return reply, "".join(out)


def first_cells(path) -> str:
    """A chapter's parameters cell and the imports of the cell after it (not the run folder)."""
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert "parameters" in cells[0].metadata.get("tags", []), f"{path.name}: no parameters cell first"
    imports = [ln for ln in cells[1].source.splitlines() if ln.startswith(("import ", "from "))]
    assert imports, f"{path.name}: its second code cell imports nothing"
    return cells[0].source + "\n" + "\n".join(imports)


def test_lab_opens_a_chapter_and_runs_it_with_the_project_kernel(lab):
    specs = lab.api("GET", "kernelspecs")
    assert specs["default"] == KERNEL and list(specs["kernelspecs"]) == [KERNEL]
    listing = {item["name"] for item in lab.api("GET", "contents")["content"]}
    chapters = {p.name for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")}
    assert chapters <= listing, "the lab does not list every chapter"
    model = lab.api("GET", f"contents/{CHAPTER}")
    assert model["type"] == "notebook" and model["content"]["cells"][0]["source"].startswith("# 3.")
    session = lab.api("POST", "sessions", {"path": CHAPTER, "type": "notebook", "name": CHAPTER,
                                           "kernel": {"name": KERNEL}})  # fmt: skip
    assert session["kernel"]["name"] == KERNEL
    code = first_cells(NOTEBOOKS / CHAPTER) + "\nimport bbam_lite\nprint(bbam_lite.__file__, profile)"
    reply, out = execute(lab, session["kernel"]["id"], code)
    assert reply["status"] == "ok", out
    assert out.split() == [str(REPO / "bbam_lite" / "__init__.py"), "lite"], out
    lab.api("DELETE", f"sessions/{session['id']}")
    assert lab.api("GET", "kernels") == []


@pytest.mark.browser
@pytest.mark.skipif(
    chromium() is None, reason="headless Chromium is not installed (apt-get install -y chromium)"
)
def test_lab_page_lists_the_chapters_offline(lab):
    pytest.importorskip("websocket", reason="websocket-client (a Jupyter dependency) drives Chromium")
    items = 'Array.from(document.querySelectorAll(".jp-DirListing-itemText")).map(e => e.textContent)'
    (page,) = load_pages(
        [f"{lab.base}/lab?token={lab.token}"],
        timeout=60,
        settle=0.5,
        state=f"JSON.stringify({{items: {items}}})",
        until=f"{items}.some(t => t.endsWith('.ipynb'))",
    )
    assert page["loaded"]
    chapters = {p.name for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")}
    assert chapters <= set(page["items"]), page["items"]
    assert [u for u in page["requests"] if not u.startswith((lab.base, "data:", "blob:"))] == []
