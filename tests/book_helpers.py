"""Shared by test_notebooks.py and test_book.py: one smoke run of the whole book per test session,
a normalised view of a notebook's outputs, and a headless Chromium driven over the DevTools protocol."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
CHAPTERS = REPO / "book" / "chapters"
#: The least share of its pixel width a figure may be shown at (the book's figures are made at most
#: 1.3 times the column's width: bbam_lite.plotting.figure_size), so that its text stays readable.
MIN_SHOWN = 0.6
_RUNS: dict[Path, subprocess.CompletedProcess] = {}


def book_env() -> dict[str, str]:
    """The environment of a book-run subprocess: eager RoIAlign, one thread per kernel."""
    env = dict(os.environ)
    env.setdefault("BBAM_LITE_EAGER_ROI_ALIGN", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    return env


def book_run_command(out: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "bbam_lite", "book", "run", "--profile", "smoke",
        "--out", str(out), "--run-dir", str(run_dir), *extra,
    ]  # fmt: skip


def smoke_book(base: Path) -> subprocess.CompletedProcess:
    """``bbam-lite book run --profile smoke`` of every notebook into ``base/chapters``, once per session.

    The notebooks run as two batches side by side (first half, second half; each batch with its own
    run folder, one thread per kernel), which halves the wall time on two cores; both are real
    ``book run`` invocations writing to the same chapters folder."""
    if base not in _RUNS:
        stems = [p.stem for p in sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))]
        half = (len(stems) + 1) // 2
        batches = [stems[:half], stems[half:]]
        procs = [
            subprocess.Popen(
                book_run_command(base / "chapters", base / f"run-{i}", "--jobs", "1", "--only", *batch),
                cwd=REPO,
                env=book_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i, batch in enumerate(batches)
            if batch
        ]
        outs = [p.communicate(timeout=1800) for p in procs]
        _RUNS[base] = subprocess.CompletedProcess(
            procs[0].args,
            max(p.returncode for p in procs),
            "".join(o for o, _ in outs),
            "".join(e for _, e in outs),
        )
    return _RUNS[base]


def _normalise(text: str) -> str:
    # a chapter's last line reports its run time, the only output that differs between two runs
    return "\n".join("<run time>" if "run time" in ln else ln for ln in text.splitlines())


def notebook_outputs(path: Path) -> list:
    """The outputs of every code cell (text, tables, images), without timing or metadata; the cell
    papermill injects with the parameters is left out (its run_dir differs between runs). Consecutive
    stream outputs of a cell are joined: how the kernel's stdout is split into messages depends on
    timing, not on what was printed."""
    nb = nbformat.read(path, as_version=4)
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code" or "injected-parameters" in cell.metadata.get("tags", []):
            continue
        items: list = []
        for o in cell.outputs:
            if o.output_type == "stream":
                if items and items[-1][0] == "stream" and items[-1][1] == o.name:
                    items[-1] = ("stream", o.name, items[-1][2] + o.text)
                elif o.text:  # an empty chunk is flush timing too
                    items.append(("stream", o.name, o.text))
            elif o.output_type in ("execute_result", "display_data"):
                data = {k: _normalise(v) if isinstance(v, str) else json.dumps(v) for k, v in o.data.items()}
                items.append((o.output_type, data))
            elif o.output_type == "error":
                items.append(("error", o.ename, o.evalue))
        out += [("stream", i[1], _normalise(i[2])) if i[0] == "stream" else i for i in items]
    return out


def error_outputs(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [
        f"{o.ename}: {o.evalue}"
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]


# ------------------------------------------------------------------------------- Chromium (CDP)
#: What the browser test reads from a loaded page (after opening every folded cell): its images
#: (loaded, natural width, width shown, whether a cell made it and whether it sits in a ``figure``
#: with a ``figcaption``), typeset formulas, TeX delimiters left raw in the visible text (outside
#: code), code inputs wider than their column (cut off) and search hits.
PAGE_STATE = """(() => {
  document.querySelectorAll("details").forEach(d => { d.open = true; });
  const main = document.querySelector("main") || document.body;
  const prose = main.cloneNode(true);
  prose.querySelectorAll("pre, code, script, style, mjx-container").forEach(e => e.remove());
  const inputs = Array.from(main.querySelectorAll("div.cell_input pre"))
    .filter(p => p.clientWidth > 0 && p.scrollWidth > p.clientWidth + 1)
    .map(p => p.innerText.split("\\n").reduce((a, b) => (b.length > a.length ? b : a), ""));
  return JSON.stringify({
    images: Array.from(document.images).map(i => {
      const fig = i.closest("figure");
      return {src: i.currentSrc || i.src, complete: i.complete, width: i.naturalWidth,
              shown: i.getBoundingClientRect().width, output: !!i.closest("div.cell_output, figure"),
              caption: !!(fig && fig.querySelector("figcaption") &&
                          fig.querySelector("figcaption").innerText.trim())};
    }),
    math: document.querySelectorAll("mjx-container").length,
    raw_tex: (prose.innerText.match(/\\$\\$|\\\\\\(|\\\\\\[/g) || []).length,
    cut_code: inputs,
    search_hits: document.querySelectorAll("#search-results li").length,
    title: document.title,
  });
})()"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def load_pages(
    urls: list[str],
    timeout: float = 90.0,
    settle: float = 2.0,
    state: str = PAGE_STATE,
    until: str | None = None,
) -> list[dict]:
    """Open each URL in one headless Chromium; per page: every request made, every failed load,
    and what the ``state`` expression returns (by default its images, loaded or not, with their
    natural width, and the number of typeset formulas), read once the JavaScript expression
    ``until`` is true (when given; at most ``timeout`` seconds)."""
    import websocket

    profile = tempfile.mkdtemp(prefix="bbam-chromium-")
    proc = subprocess.Popen(
        [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
            "--remote-debugging-port=0", "--window-size=1400,900", "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        start = time.monotonic()
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.monotonic() - start > timeout or proc.poll() is not None:
                raise RuntimeError("headless Chromium did not start")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as resp:
            target = next(t for t in json.load(resp) if t["type"] == "page")
        ws = websocket.create_connection(
            target["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True
        )
        counter = 0
        events: list[dict] = []

        def call(method: str, **params) -> dict:
            nonlocal counter
            counter += 1
            ws.send(json.dumps({"id": counter, "method": method, "params": params}))
            while True:
                msg = json.loads(ws.recv())
                if msg.get("id") == counter:
                    return msg.get("result", {})
                events.append(msg)

        results = []
        call("Network.enable")
        call("Page.enable")
        for url in urls:
            events.clear()
            call("Page.navigate", url=url)
            loaded, deadline = False, time.monotonic() + timeout
            while not loaded and time.monotonic() < deadline:
                ws.settimeout(max(deadline - time.monotonic(), 0.1))
                events.append(json.loads(ws.recv()))
                loaded = events[-1].get("method") == "Page.loadEventFired"
            settle_end = time.monotonic() + settle  # let MathJax typeset and fetch its fonts
            while time.monotonic() < settle_end:
                ws.settimeout(max(settle_end - time.monotonic(), 0.05))
                try:
                    events.append(json.loads(ws.recv()))
                except websocket.WebSocketTimeoutException:
                    break
            ws.settimeout(timeout)
            while until and time.monotonic() < deadline:  # e.g. a page that renders after loading
                if call("Runtime.evaluate", expression=until, returnByValue=True)["result"].get("value"):
                    break
                time.sleep(0.25)
            found = json.loads(
                call("Runtime.evaluate", expression=state, returnByValue=True)["result"]["value"]
            )
            requests = {
                e["params"]["requestId"]: e["params"]["request"]["url"]
                for e in events
                if e.get("method") == "Network.requestWillBeSent"
            }
            failed = [
                (requests.get(e["params"]["requestId"], "?"), e["params"].get("errorText"))
                for e in events
                if e.get("method") == "Network.loadingFailed"
            ]
            results.append({"url": url, "loaded": loaded, "requests": sorted(set(requests.values())),
                            "failed": failed, **found})  # fmt: skip
        ws.close()
        return results
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def remote(url: str) -> bool:
    return not re.match(r"^(file|data|blob|about):", url)
