"""The chapter notebooks: every one executes at the smoke profile through ``bbam-lite book run``; a
batch killed with SIGKILL resumes and ends with the outputs of an uninterrupted run; failures are
reported with their cell; bad parameters cost one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from book_helpers import (
    NOTEBOOKS,
    REPO,
    book_env,
    book_run_command,
    error_outputs,
    notebook_outputs,
    smoke_book,
)

from bbam_lite.book.params import parse_value
from bbam_lite.book.runner import NOTEBOOK_NAME, discover, select
from bbam_lite.cli import main

pytestmark = pytest.mark.slow
ALL = [p.stem for p in discover(NOTEBOOKS)]
COMMON = ("profile", "dataset", "data_root", "device", "seed", "run_dir")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    base = tmp_path_factory.getbasetemp() / "smoke-book"
    return base, smoke_book(base)


# --------------------------------------------------------------------------------- conventions
@pytest.mark.parametrize("stem", ALL)
def test_notebook_follows_the_book_conventions(stem):
    nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), "first code cell must be tagged parameters"
    for name in COMMON:
        assert f"{name} = " in code[0].source, f"parameters cell lacks {name}"
    assert "Workspace.from_parameters(profile, dataset, data_root, device, seed, run_dir)" in code[1].source
    assert all(not c.get("outputs") for c in code), "source notebooks are committed without outputs"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


# ------------------------------------------------------------------------------ the smoke run
def test_book_run_reports_every_notebook(smoke):
    base, done = smoke
    lines = done.stdout.strip().splitlines()
    for stem in ALL:
        finished = [ln for ln in lines if stem in ln and (" done in " in ln or " skipped " in ln)]
        assert finished, f"{stem}: {done.stdout}"
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[IPKernelApp]" not in done.stderr


@pytest.mark.parametrize("stem", ALL)
def test_notebook_executes_at_smoke(smoke, stem):
    base, done = smoke
    out = base / "chapters" / f"{stem}.ipynb"
    assert out.is_file(), f"{stem} did not finish: {done.stdout[-2000:]}"
    assert error_outputs(out) == []
    marker = json.loads((base / "chapters" / ".book-run" / f"{stem}.json").read_text())
    assert marker["parameters"]["profile"] == "smoke"
    nb = nbformat.read(out, as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "profile smoke" in text, "the chapter must print ws.describe()"


# ----------------------------------------------------------------------------- kill and resume
def test_killed_batch_resumes_with_the_outputs_of_an_uninterrupted_run(smoke, tmp_path):
    base, _ = smoke
    out, run = tmp_path / "chapters", tmp_path / "run"
    cmd = book_run_command(out, run, "--only", "01", "02", "--jobs", "1")  # 01 finishes before 02 starts
    proc = subprocess.Popen(cmd, cwd=REPO, env=book_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip
    partial = out / ".book-run" / "02-data.partial.ipynb"
    deadline = time.monotonic() + 300
    while not partial.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)  # inside 02: its kernel is starting or generating the data
    assert proc.poll() is None, "the batch finished before it could be killed: " + proc.stdout.read()
    os.kill(proc.pid, signal.SIGKILL)  # kill -9 of bbam-lite book run itself
    proc.wait()
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # and the kernel it left behind
    except ProcessLookupError:
        pass
    assert (out / "01-why-boxes.ipynb").is_file()
    assert not (out / "02-data.ipynb").exists(), "a killed notebook must not appear under its final name"

    again = subprocess.run(cmd, cwd=REPO, env=book_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "01-why-boxes" in again.stdout and "skipped" in again.stdout.splitlines()[0]
    assert "02-data" in again.stdout.splitlines()[1] and "done in" in again.stdout.splitlines()[1]
    for stem in ("01-why-boxes", "02-data"):
        reference = notebook_outputs(base / "chapters" / f"{stem}.ipynb")
        assert notebook_outputs(out / f"{stem}.ipynb") == reference, stem


# ------------------------------------------------------------------------------- failures
def _tiny_notebook(path: Path, body: str, extra_params: str = "") -> None:
    nb = nbformat.v4.new_notebook()
    params = 'profile = "lite"\ndataset = "synthetic"\ndata_root = None\ndevice = "cpu"\nseed = 0\n'
    params += 'run_dir = "runs/book"\n' + extra_params
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_failed_notebook_is_reported_with_its_cell_and_the_others_still_run(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _tiny_notebook(nbs / "01-fails.ipynb", "1 / 0")
    _tiny_notebook(nbs / "02-works.ipynb", "print(profile, width)", "width = 3\n")
    cmd = [sys.executable, "-m", "bbam_lite", "book", "run", "--profile", "smoke", "--notebooks", str(nbs),
           "--out", str(tmp_path / "out"), "-p", "width", "4"]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, env=book_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    failed = next(ln for ln in done.stdout.splitlines() if "01-fails" in ln)
    assert "FAILED" in failed and "cell 3" in failed and "1 / 0" in failed and "ZeroDivisionError" in failed
    assert (tmp_path / "out" / ".book-run" / "01-fails.failed.ipynb").is_file()
    assert not (tmp_path / "out" / "01-fails.ipynb").exists()
    nb = nbformat.read(tmp_path / "out" / "02-works.ipynb", as_version=4)
    assert nb.cells[-1].outputs[0]["text"] == "smoke 4\n"  # -p width 4 reached the notebook as an int
    assert "1 done, 0 skipped, 1 failed (01-fails)" in done.stdout


# ---------------------------------------------------------------------------- bad parameters
@pytest.mark.parametrize(
    "args, message",
    [
        (["--profile", "tiny"], "profile='tiny': unknown profile"),
        (["--profile", "smoke", "-p", "seed", '"1"'], "seed='1': expected an integer"),
        (["--profile", "smoke", "-p", "seed", "1.5"], "seed=1.5: expected an integer"),
        (["--profile", "smoke", "-p", "device", "tpu"], "device='tpu'"),
        (["--profile", "smoke", "-p", "dataset", "voc"], "needs the path of its data root"),
        (["--profile", "smoke", "-p", "no_such_parameter", "3"], "no selected notebook declares it"),
        (["--profile", "smoke", "--only", "99"], "--only 99: no such notebook"),
        (["--profile", "smoke", "-p", "profile", "lite"], "give the profile with --profile"),
    ],
)
def test_bad_parameters_give_one_line_errors(args, message, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["book", "run", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_notebook_specific_parameter_types_are_checked(tmp_path, capsys):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _tiny_notebook(nbs / "01-a.ipynb", "pass", "lam = 0.007\n")
    assert main(["book", "run", "--profile", "smoke", "--notebooks", str(nbs), "-p", "lam", "big"]) == 2
    err = capsys.readouterr().err
    assert "lam='big': expected float like its default 0.007 in 01-a, got str" in err
    assert err.count("\n") == 1


def test_a_notebook_checks_its_own_parameters(tmp_path):
    """Run directly with papermill (no runner checks), a chapter stops at its workspace cell."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from bbam_lite.book.runner import ensure_kernel

    with pytest.raises(PapermillExecutionError) as err:
        papermill.execute_notebook(
            str(NOTEBOOKS / "01-why-boxes.ipynb"),
            str(tmp_path / "out.ipynb"),
            parameters={"profile": "tiny", "run_dir": str(tmp_path)},
            kernel_name=ensure_kernel(),
            progress_bar=False,
            cwd=str(REPO),
        )
    assert err.value.ename == "ParameterError"
    assert "unknown profile" in err.value.evalue and "\n" not in err.value.evalue


def test_kernel_registered_by_two_runs_at_once(monkeypatch):
    """Two book runs that start together install the kernel once: the second waits for the first."""
    import shutil
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    from jupyter_client.kernelspec import KernelSpecManager

    from bbam_lite.book import runner

    installs = []
    real_run = subprocess.run

    def slow_run(cmd, *args, **kwargs):  # an install long enough for both runs to overlap
        installs.append(cmd)
        time.sleep(1.0)
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(runner.subprocess, "run", slow_run)
    name = f"bbam-lite-test-{uuid.uuid4().hex[:8]}"
    try:
        with ThreadPoolExecutor(2) as pool:
            assert list(pool.map(runner.ensure_kernel, [name, name])) == [name, name]
        assert len(installs) == 1
        assert KernelSpecManager().get_kernel_spec(name).argv[0] == sys.executable
    finally:
        shutil.rmtree(Path(sys.prefix) / "share" / "jupyter" / "kernels" / name, ignore_errors=True)
        (Path(sys.prefix) / "share" / "jupyter" / f".{name}-kernel.lock").unlink(missing_ok=True)


# ------------------------------------------------------------------------------ unit pieces
@pytest.mark.parametrize(
    "text, value",
    [("1", 1), ("0.5", 0.5), ("true", True), ("True", True), ("null", None), ("None", None),
     ("[1, 2]", [1, 2]), ('"7"', "7"), ("'7'", "7"), ("/data/VOCdevkit/VOC2012", "/data/VOCdevkit/VOC2012"),
     ("cuda:1", "cuda:1"), ("__import__('os').system('echo hi')", "__import__('os').system('echo hi')")],
)  # fmt: skip
def test_parameter_values_are_parsed_without_eval(text, value):
    assert parse_value(text) == value


def test_select_by_number_or_name():
    nbs = [Path(f"{n}.ipynb") for n in ("01-a", "02-b", "12-c")]
    assert [p.stem for p in select(nbs, ["12", "1"])] == ["01-a", "12-c"]
    assert [p.stem for p in select(nbs, ["02-b"])] == ["02-b"]
    assert select(nbs, None) == nbs
    assert NOTEBOOK_NAME.match("05-bbam-step-by-step.ipynb") and not NOTEBOOK_NAME.match("scratch.ipynb")
