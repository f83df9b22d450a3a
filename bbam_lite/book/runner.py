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

Run times. The record's ``seconds`` are those of the run that made the page, which may have reused
the run folder's artefacts (``cache_hits`` counts them). A run is *cold* when the run folder was
empty or absent when its batch started: everything it reused was made in the same batch, by itself
or by the chapters executed before it (``after``). The record keeps the last cold run in ``cold``
(seconds, CPU seconds, hardware, threads, date, commit, cache hits, after); a run that is not cold
carries the previous record's ``cold`` over when the parameters other than ``run_dir`` are the
same, so a cached rerun never overwrites the cold figure. Records without ``cold`` (written before
it existed) read as "not measured".

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


def run_folder_empty(folder: Path) -> bool:
    """Whether ``folder`` is absent or holds nothing: a batch that starts so is cold."""
    folder = Path(folder)
    return not folder.exists() or (folder.is_dir() and not any(folder.iterdir()))


def same_settings(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two records ran a notebook with the same parameters, the run folder aside."""

    def strip(params: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in params.items() if k != "run_dir"}

    return strip(a.get("parameters", {})) == strip(b.get("parameters", {}))


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

    def previous_record(self, notebook: Path) -> dict[str, Any]:
        """The notebook's record before this run ({} if absent or unreadable)."""
        try:
            saved = json.loads((self.state / f"{notebook.stem}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return saved if isinstance(saved, dict) else {}

    def execute(self, notebook: Path, cold_after: list[str] | None = None) -> Outcome:
        """Run one notebook; ``cold_after`` (not None in a batch that started from an empty run
        folder) lists the chapters executed before it in that batch, and makes the run cold."""
        import papermill
        import torch

        from bbam_lite.utils.run_folder import CACHE_LOG_ENV, cache_hits, git_commit, hardware

        self.state.mkdir(parents=True, exist_ok=True)
        partial = self.state / f"{notebook.stem}.partial.ipynb"
        failed = self.state / f"{notebook.stem}.failed.ipynb"
        cache_log = self.state / f"{notebook.stem}.cache.log"
        cache_log.unlink(missing_ok=True)
        output = self.out_dir / notebook.name
        before = os.environ.get(CACHE_LOG_ENV)
        os.environ[CACHE_LOG_ENV] = str(cache_log.resolve())  # the kernel inherits it
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
        finally:
            if before is None:
                os.environ.pop(CACHE_LOG_ENV, None)
            else:
                os.environ[CACHE_LOG_ENV] = before
        seconds, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
        hits = cache_hits(cache_log)
        cache_log.unlink(missing_ok=True)
        os.replace(partial, output)
        failed.unlink(missing_ok=True)
        this = {
            "seconds": round(seconds, 1),
            "cpu_seconds": round(cpu, 1),
            "hardware": hardware(),
            "threads": torch.get_num_threads(),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "commit": git_commit(self.cwd, ("bbam_lite", "notebooks")),
            "cache_hits": hits,
        }
        record = {**self.record(notebook), "output": notebook.name, "output_sha256": file_sha256(output)}
        record.update(this, device=self.common["device"])
        previous = self.previous_record(notebook)
        if cold_after is not None:
            record["cold"] = {**this, "after": list(cold_after)}
        elif isinstance(previous.get("cold"), dict) and same_settings(previous, record):
            record["cold"] = previous["cold"]
        atomic_write_json(self.state / f"{notebook.stem}.json", record, indent=1)
        return Outcome(notebook.stem, "done", seconds, cpu_seconds=cpu)

    def run(self, force: bool = False) -> list[Outcome]:
        """Execute every notebook in order (skipping finished ones unless ``force``)."""
        logging.getLogger("papermill").setLevel(logging.WARNING)
        n = len(self.notebooks)
        outcomes = []
        t0 = time.perf_counter()
        run_dir = self.cwd / self.common["run_dir"]
        cold = run_folder_empty(run_dir)  # then every run of this batch is recorded as cold
        executed: list[str] = []
        for i, nb in enumerate(self.notebooks, 1):
            head = f"[{i:>2}/{n}] {nb.stem:<28}"
            if not force and self.is_finished(nb):
                outcome = Outcome(nb.stem, "skipped", 0.0, "finished earlier with the same parameters")
                self.log(f"{head} skipped ({outcome.message}; --force reruns it, --out DIR writes elsewhere)")
            else:
                outcome = self.execute(nb, list(executed) if cold else None)
                executed.append(nb.stem)
                if outcome.status == "done":
                    self.log(
                        f"{head} done in {outcome.seconds:.1f} s (kernel CPU {outcome.cpu_seconds:.1f} s"
                        + ("; cold: the run folder was empty at the start)" if cold else ")")
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
