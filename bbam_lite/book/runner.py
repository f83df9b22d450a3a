"""Execute the chapter notebooks with papermill, in order, resumably.

Each ``notebooks/NN-slug.ipynb`` runs in a fresh kernel (the venv's, registered as ``bbam-lite``)
with the working directory of the command, and its executed copy is written to ``OUT/NN-slug.ipynb``
(``book/chapters`` by default, which the book renders). Resumability:

* papermill writes to ``OUT/.book-run/NN-slug.partial.ipynb``; only a notebook that finished is
  renamed to its final name, so a killed run leaves no half-executed chapter under a final name;
* after the rename, ``OUT/.book-run/NN-slug.json`` records the parameters, the source notebook's
  hash, the output's hash, the time, the machine, the device and the commit (written atomically;
  the book's "Execution statistics" page is made from these records);
* a rerun skips a notebook whose record matches (same source, parameters and kernel, output
  present and unchanged) and executes the rest.

A notebook that fails is reported with the cell that failed; its executed copy is kept as
``OUT/.book-run/NN-slug.failed.ipynb`` and the other notebooks still run.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bbam_lite.book.params import check_common, check_declared
from bbam_lite.utils.io import atomic_write_json, file_digest

KERNEL = "bbam-lite"
NOTEBOOK_NAME = re.compile(r"^(\d\d)-[a-z0-9][a-z0-9-]*\.ipynb$")
STATE_DIR = ".book-run"


@dataclass
class Outcome:
    """What happened to one notebook in a batch."""

    name: str
    status: str  # done | skipped | failed
    seconds: float
    message: str = ""
    cpu_seconds: float = 0.0  # CPU time of the notebook's kernel (its user + system time)


def discover(folder: Path) -> list[Path]:
    """The chapter notebooks ``NN-slug.ipynb`` of ``folder``, in chapter order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no notebooks folder (run from the repository root or pass --notebooks)")
    found = sorted(p for p in folder.iterdir() if NOTEBOOK_NAME.match(p.name))
    if not found:
        raise ValueError(f"{folder}: holds no chapter notebooks named NN-slug.ipynb")
    return found


def select(notebooks: Sequence[Path], only: Sequence[str] | None) -> list[Path]:
    """The notebooks named by ``only`` (chapter numbers like ``5`` / ``05``, or stems), in order."""
    if not only:
        return list(notebooks)
    wanted = []
    for item in only:
        key = item.removesuffix(".ipynb")
        hits = [
            p
            for p in notebooks
            if p.stem == key or (key.isdigit() and int(NOTEBOOK_NAME.match(p.name)[1]) == int(key))
        ]
        if not hits:
            names = ", ".join(p.stem for p in notebooks)
            raise ValueError(f"--only {item}: no such notebook (have: {names})")
        wanted += hits
    return [p for p in notebooks if p in wanted]


def ensure_kernel(name: str = KERNEL) -> str:
    """Register this interpreter as the Jupyter kernel ``name`` (``--sys-prefix``) unless a kernel of
    that name already runs this interpreter; returns the name."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    def current() -> str | None:
        try:
            return KernelSpecManager().get_kernel_spec(name).argv[0]
        except NoSuchKernel:
            return None

    here = sys.executable
    if current() == here:
        return name
    # two book runs started together (the test suite does) must not install at the same time
    lock_dir = Path(sys.prefix) / "share" / "jupyter"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f".{name}-kernel.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if current() != here:
            cmd = [here, "-m", "ipykernel", "install", "--sys-prefix", "--name", name]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise ValueError(f"could not register the Jupyter kernel {name!r}: {last}")
    if current() != here:
        raise ValueError(
            f"the Jupyter kernel {name!r} runs {current()}, not {here}: another kernelspec of that name "
            "shadows the one just installed (see `jupyter kernelspec list`)"
        )
    return name


def file_sha256(path: Path) -> str:
    return file_digest(path, 64)


def declared_parameters(notebook: Path) -> dict[str, str]:
    """A notebook's parameters-cell names and their default source text (papermill's inspection)."""
    import papermill

    return {name: info["default"] for name, info in papermill.inspect_notebook(str(notebook)).items()}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _failure_message(exc: BaseException) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        first = next((ln.strip() for ln in (exc.source or "").splitlines() if ln.strip()), "")
        if len(first) > 70:
            first = first[:67] + "..."
        value = (str(exc.evalue).strip().splitlines() or [""])[0]
        return (
            f"cell {exc.cell_index} (execution count {exc.exec_count}, `{first}`) raised {exc.ename}: {value}"
        )
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}"


class BookRun:
    """One batch: which notebooks, with which parameters, written where."""

    def __init__(
        self,
        notebooks: Sequence[Path],
        out_dir: Path,
        parameters: dict[str, Any],
        kernel: str = KERNEL,
        cwd: Path | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.notebooks = list(notebooks)
        self.out_dir = Path(out_dir)
        self.state = self.out_dir / STATE_DIR
        self.kernel = kernel
        self.cwd = Path(cwd) if cwd else Path.cwd()
        self.log = log or (lambda line: print(line, flush=True))
        self.declared = {p.stem: declared_parameters(p) for p in self.notebooks}
        check_declared(parameters, self.declared)
        self.common = check_common(parameters)
        self.given = parameters
        self.cold = False  # whether this batch started from an empty run folder (set by run())
        self.ran: list[str] = []  # the chapters this batch executed so far

    def run_folder_empty(self) -> bool:
        """Whether the run folder holds no file yet (a cold start: every artefact is computed)."""
        folder = self.cwd / self.common["run_dir"]
        return not folder.exists() or not any(p.is_file() for p in folder.rglob("*"))

    def cold_record(self, notebook: Path, run: dict[str, Any]) -> dict[str, Any] | None:
        """The chapter's cold run: this one when the batch started from an empty run folder (its
        time then includes every artefact it needs that no earlier chapter of the batch made:
        ``after`` names those chapters), else the one the chapter's marker kept."""
        if self.cold:
            keep = ("seconds", "cpu_seconds", "finished", "hardware", "device", "commit")
            return {**{k: run[k] for k in keep}, "after": list(self.ran)}
        try:
            old = json.loads((self.state / f"{notebook.stem}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        same = old.get("parameters") == self.parameters_for(notebook)
        return old.get("cold") if same else None

    def parameters_for(self, notebook: Path) -> dict[str, Any]:
        """``profile`` and ``run_dir`` always; other given parameters where the notebook declares them."""
        declared = self.declared[notebook.stem]
        params = {"profile": self.common["profile"], "run_dir": self.common["run_dir"]}
        params.update({k: v for k, v in self.given.items() if k in declared})
        return params

    def record(self, notebook: Path) -> dict[str, Any]:
        """What a finished run of ``notebook`` with this batch's settings records (less output/time)."""
        return {
            "notebook": notebook.name,
            "source_sha256": file_sha256(notebook),
            "parameters": self.parameters_for(notebook),
            "kernel": self.kernel,
        }

    def is_finished(self, notebook: Path) -> bool:
        marker = self.state / f"{notebook.stem}.json"
        output = self.out_dir / notebook.name
        if not (marker.is_file() and output.is_file()):
            return False
        try:
            saved = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        want = self.record(notebook)
        return all(saved.get(k) == v for k, v in want.items()) and saved.get("output_sha256") == file_sha256(
            output
        )

    def execute(self, notebook: Path) -> Outcome:
        import papermill

        from bbam_lite.utils.run_folder import git_commit, hardware

        self.state.mkdir(parents=True, exist_ok=True)
        partial = self.state / f"{notebook.stem}.partial.ipynb"
        failed = self.state / f"{notebook.stem}.failed.ipynb"
        output = self.out_dir / notebook.name
        t0, cpu0 = time.perf_counter(), _children_cpu()
        try:
            papermill.execute_notebook(
                str(notebook),
                str(partial),
                parameters=self.parameters_for(notebook),
                kernel_name=self.kernel,
                cwd=str(self.cwd),
                progress_bar=False,
                log_output=False,
                start_timeout=300,
                # ipykernel warns on every start that its TCP transport is unencrypted (it listens
                # on localhost only); keep the batch's output to one line per notebook
                extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
            )
        except Exception as exc:  # papermill's errors, a dead kernel, a cell timeout, ...
            if partial.exists():
                os.replace(partial, failed)
            seconds, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
            return Outcome(notebook.stem, "failed", seconds, _failure_message(exc), cpu)
        seconds, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
        os.replace(partial, output)
        failed.unlink(missing_ok=True)
        run = {
            "seconds": round(seconds, 1),
            "cpu_seconds": round(cpu, 1),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "hardware": hardware(),
            "device": self.common["device"],
            "commit": git_commit(self.cwd, ("bbam_lite", "notebooks")),
        }
        record = {**self.record(notebook), "output": notebook.name, "output_sha256": file_sha256(output)}
        cold = self.cold_record(notebook, run)
        atomic_write_json(
            self.state / f"{notebook.stem}.json",
            {**record, **run, **({"cold": cold} if cold else {})},
            indent=1,
        )
        self.ran.append(notebook.stem)
        return Outcome(notebook.stem, "done", seconds, cpu_seconds=cpu)

    def run(self, force: bool = False) -> list[Outcome]:
        """Execute every notebook in order (skipping finished ones unless ``force``)."""
        logging.getLogger("papermill").setLevel(logging.WARNING)
        self.cold, self.ran = self.run_folder_empty(), []
        n = len(self.notebooks)
        outcomes = []
        t0 = time.perf_counter()
        for i, nb in enumerate(self.notebooks, 1):
            head = f"[{i:>2}/{n}] {nb.stem:<28}"
            if not force and self.is_finished(nb):
                outcome = Outcome(nb.stem, "skipped", 0.0, "finished earlier with the same parameters")
                self.log(f"{head} skipped ({outcome.message})")
            else:
                outcome = self.execute(nb)
                if outcome.status == "done":
                    self.log(
                        f"{head} done in {outcome.seconds:.1f} s (kernel CPU {outcome.cpu_seconds:.1f} s)"
                    )
                else:
                    where = self.state / f"{nb.stem}.failed.ipynb"
                    self.log(f"{head} FAILED after {outcome.seconds:.1f} s: {outcome.message} (see {where})")
            outcomes.append(outcome)
        counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
        failed = [o.name for o in outcomes if o.status == "failed"]
        self.log(
            f"{n} notebooks in {(time.perf_counter() - t0) / 60:.1f} min: {counts['done']} done, "
            f"{counts['skipped']} skipped, {counts['failed']} failed"
            + (f" ({', '.join(failed)})" if failed else "")
            + f"; executed copies in {self.out_dir}"
        )
        return outcomes
