"""Execute the chapter notebooks with papermill, in order or several at a time, resumably.

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
or by the chapters executed before it or, with ``--jobs N``, alongside it (``after``). The record
keeps the last cold run in ``cold`` (seconds, CPU seconds, hardware, threads, jobs, date, commit,
cache hits, after); a run that is not cold carries the previous record's ``cold`` over when the
parameters other than ``run_dir`` are the same, so a cached rerun never overwrites the cold figure.
Records without ``cold`` (written before it existed) read as "not measured".

Parallel batches (``--jobs N``, N > 1). Up to N chapters run at the same time, each in its own
process and kernel, started in chapter order as slots free up. Artefacts they share (dataset,
detector, labels folders, analysis results) are made once: each is made under its lock in the run
folder (:func:`bbam_lite.utils.run_folder.made_once`), a chapter asking for one that another is
making waits and then reads it. Every kernel runs one thread (``OMP_NUM_THREADS=1`` and the like),
so a chapter's results do not depend on N; ``--jobs 1`` executes the chapters one after another in
this process with the threads the environment gives (the torch default: every core), as before
``--jobs`` existed; set ``OMP_NUM_THREADS=1`` for the parallel batches' numbers. The record's
``threads`` and ``hardware`` say how many threads the kernel had, ``jobs`` the batch's N. In a
parallel cold batch a chapter's ``after`` lists the chapters that ran before it *or alongside it*
(started before it finished): any of them may have made what it reused. A killed parallel batch
resumes like a sequential one: finished chapters are skipped, and the artefacts they or the killed
ones finished are reused (each is written atomically; a dead process's lock is released by the OS).

A notebook that fails is reported with the cell that failed; its executed copy is kept as
``OUT/.book-run/NN-slug.failed.ipynb`` and the other notebooks still run.
"""

from __future__ import annotations

import fcntl
import json
import logging
import multiprocessing
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
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


def chapters_in(folder: Path) -> list[Path]:
    """The chapter notebooks ``NN-slug.ipynb`` of ``folder``, in chapter order (none if it is absent)."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if NOTEBOOK_NAME.match(p.name)) if folder.is_dir() else []


def discover(folder: Path) -> list[Path]:
    """The chapter notebooks ``NN-slug.ipynb`` of ``folder``, in chapter order; an error where there
    are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no notebooks folder (run from the repository root or pass --notebooks)")
    found = chapters_in(folder)
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


def check_jobs(jobs: Any) -> int:
    """``--jobs``: a positive integer (one line otherwise)."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"--jobs must be a positive integer, got {jobs!r}")
    return jobs


def default_jobs(n_notebooks: int) -> int:
    """``--jobs``' default: the cores this process may use, at most one per selected notebook."""
    from bbam_lite.pseudo.workers import available_cores

    return max(1, min(available_cores(), n_notebooks))


def _say(line: str) -> None:
    print(line, flush=True)


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
        jobs: int | None = None,
    ) -> None:
        self.notebooks = list(notebooks)
        self.out_dir = Path(out_dir)
        self.state = self.out_dir / STATE_DIR
        self.kernel = kernel
        self.cwd = Path(cwd) if cwd else Path.cwd()
        self.log = log or _say
        self.jobs = default_jobs(len(self.notebooks)) if jobs is None else check_jobs(jobs)
        self.declared = {p.stem: declared_parameters(p) for p in self.notebooks}
        check_declared(parameters, self.declared)
        self.common = check_common(parameters)
        self.given = parameters

    def __getstate__(self) -> dict[str, Any]:  # what a chapter's process gets: no log function
        return {**self.__dict__, "log": None}

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
        """Run one notebook and record it; ``cold_after`` (not None in a batch that started from an
        empty run folder) lists the chapters executed before it in that batch, and makes the run cold."""
        outcome, this = self.run_notebook(notebook)
        if this is not None:
            self.write_record(notebook, this, cold_after)
        return outcome

    def run_notebook(self, notebook: Path) -> tuple[Outcome, dict[str, Any] | None]:
        """Execute one notebook into its final name (``.failed.ipynb`` if it fails); returns the
        outcome and, if it finished, how it ran (seconds, CPU, hardware, threads, date, commit,
        cache hits) for :meth:`write_record`."""
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
            return Outcome(notebook.stem, "failed", seconds, _failure_message(exc), cpu), None
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
            "threads": torch.get_num_threads(),  # the kernel's: it inherits this process's settings
            "jobs": self.jobs,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "commit": git_commit(self.cwd, ("bbam_lite", "notebooks")),
            "cache_hits": hits,
        }
        return Outcome(notebook.stem, "done", seconds, cpu_seconds=cpu), this

    def write_record(self, notebook: Path, this: dict[str, Any], cold_after: list[str] | None) -> None:
        """Write ``OUT/.book-run/NN-slug.json`` for a finished run (atomically); ``cold_after`` as
        in :meth:`execute`."""
        output = self.out_dir / notebook.name
        record = {**self.record(notebook), "output": notebook.name, "output_sha256": file_sha256(output)}
        record.update(this, device=self.common["device"])
        previous = self.previous_record(notebook)
        if cold_after is not None:
            record["cold"] = {**this, "after": list(cold_after)}
        elif isinstance(previous.get("cold"), dict) and same_settings(previous, record):
            record["cold"] = previous["cold"]
        atomic_write_json(self.state / f"{notebook.stem}.json", record, indent=1)

    def run(self, force: bool = False) -> list[Outcome]:
        """Execute every notebook (skipping finished ones unless ``force``): in order, or up to
        ``jobs`` at a time."""
        logging.getLogger("papermill").setLevel(logging.WARNING)
        n = len(self.notebooks)
        outcomes: dict[str, Outcome] = {}
        t0 = time.perf_counter()
        run_dir = self.cwd / self.common["run_dir"]
        cold = run_folder_empty(run_dir)  # then every run of this batch is recorded as cold
        heads = {nb.stem: f"[{i:>2}/{n}] {nb.stem:<28}" for i, nb in enumerate(self.notebooks, 1)}
        todo = []
        for nb in self.notebooks:
            if not force and self.is_finished(nb):
                outcomes[nb.stem] = Outcome(
                    nb.stem, "skipped", 0.0, "finished earlier with the same parameters"
                )
                self.log(
                    f"{heads[nb.stem]} skipped ({outcomes[nb.stem].message}; --force reruns it, "
                    "--out DIR writes elsewhere)"
                )
            else:
                todo.append(nb)
        if self.jobs > 1 and todo:
            self.log(
                f"{len(todo)} to execute, up to {self.jobs} at a time, one thread per kernel "
                "(--jobs 1: one after another)"
            )
            done = self._run_parallel(todo, cold)
        else:
            done = self._run_sequential(todo, cold)
        for outcome in done:
            outcomes[outcome.name] = outcome
            head = heads[outcome.name]
            if outcome.status == "done":
                self.log(
                    f"{head} done in {outcome.seconds:.1f} s (kernel CPU {outcome.cpu_seconds:.1f} s"
                    + ("; cold: the run folder was empty at the start)" if cold else ")")
                )
            else:
                where = self.state / f"{outcome.name}.failed.ipynb"
                self.log(f"{head} FAILED after {outcome.seconds:.1f} s: {outcome.message} (see {where})")
        ordered = [outcomes[nb.stem] for nb in self.notebooks]
        counts = {s: sum(o.status == s for o in ordered) for s in ("done", "skipped", "failed")}
        failed = [o.name for o in ordered if o.status == "failed"]
        self.log(
            f"{n} notebooks in {(time.perf_counter() - t0) / 60:.1f} min: {counts['done']} done, "
            f"{counts['skipped']} skipped, {counts['failed']} failed"
            + (f" ({', '.join(failed)})" if failed else "")
            + f"; executed copies in {self.out_dir}"
        )
        return ordered

    def _run_sequential(self, todo: list[Path], cold: bool) -> Iterator[Outcome]:
        executed: list[str] = []
        for nb in todo:
            outcome = self.execute(nb, list(executed) if cold else None)
            executed.append(nb.stem)
            yield outcome

    def start_order(self, todo: list[Path]) -> list[Path]:
        """The chapters of a parallel batch in the order they start: the longest first, by the
        time of their last cold run (else of their last run) in their records, chapter order among
        equals and unknowns, so that a long chapter never starts last and keeps one core busy
        alone at the end. What they compute does not depend on it."""

        def seconds(nb: Path) -> float:
            record = self.previous_record(nb)
            cold = record.get("cold")
            value = cold.get("seconds") if isinstance(cold, dict) else record.get("seconds")
            return float(value) if isinstance(value, (int, float)) else 0.0

        return sorted(todo, key=lambda nb: -seconds(nb))

    def _run_parallel(self, todo: list[Path], cold: bool) -> Iterator[Outcome]:
        """Up to ``jobs`` chapters at a time, each in a process of its own (spawned with one thread
        per library), the longest first (:meth:`start_order`); yields each outcome as its chapter ends."""
        from multiprocessing.connection import wait

        from bbam_lite.pseudo.workers import one_thread_environment

        context = multiprocessing.get_context("spawn")
        pending = self.start_order(todo)
        started: list[str] = []
        running: dict[Any, tuple[Path, Any, Any, float]] = {}  # sentinel: notebook, process, pipe, start
        try:
            while pending or running:
                while pending and len(running) < self.jobs:
                    nb = pending.pop(0)
                    receive, send = context.Pipe(duplex=False)
                    proc = context.Process(
                        target=_chapter_process, args=(self, nb, os.getpid(), send), name=f"book-{nb.stem}"
                    )
                    with one_thread_environment():  # the process and its kernel read them as they start
                        proc.start()
                    send.close()
                    running[proc.sentinel] = (nb, proc, receive, time.perf_counter())
                    started.append(nb.stem)
                for sentinel in wait(list(running)):
                    nb, proc, receive, t_start = running.pop(sentinel)
                    result = receive.recv() if receive.poll() else None
                    receive.close()
                    proc.join()
                    if result is None:
                        seconds = time.perf_counter() - t_start
                        why = f"its process ended with exit status {proc.exitcode} before it reported"
                        yield Outcome(nb.stem, "failed", seconds, why)
                        continue
                    outcome, this = result
                    if this is not None:
                        # ran before or alongside it: every chapter started before it finished
                        after = [s for s in started if s != nb.stem]
                        self.write_record(nb, this, after if cold else None)
                    yield outcome
        finally:
            for _, proc, receive, _ in running.values():  # interrupted: stop the chapters still running
                proc.terminate()
                proc.join()
                receive.close()


def _chapter_process(run: BookRun, notebook: Path, parent: int, conn: Any) -> None:
    """A parallel batch's process for one chapter: runs it, sends back (outcome, how it ran). It
    ignores Ctrl-C (the batch stops it) and ends when the batch's process does, however it ends."""
    from bbam_lite.pseudo.workers import watch_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch_parent(parent)
    conn.send(run.run_notebook(notebook))
    conn.close()
