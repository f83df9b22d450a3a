"""The per-image CPU work of pseudo labelling, in worker processes fed as the device batches finish.

:func:`bbam_lite.pseudo.generate.generate` runs a method's device stage (BBAM's attribution maps;
nothing for the box baselines) in its own process and hands each image to :class:`ImageWorkers` as
an :class:`ImageJob`: the image, its boxes and its device payload, no more. :func:`run_job` does
the rest for that one image -- the method's CPU stage (dense CRF, thresholds, GrabCut, proposal
refinement), the class map, and the labels folder's atomic writes -- in a worker process, or inline
when there is one worker. The same function runs either way, each image's files depend on that
image alone, and the aggregate files are written afterwards in image order, so the labels folder
does not depend on the number of workers.

At most ``2 x workers`` images are in flight (submitted, not yet written): the device stage waits
for the CPU when the CPU is behind, and memory stays bounded. Workers run one thread each (torch,
OpenCV, OpenMP / BLAS), ignore Ctrl-C (the main process stops them) and end with the main process
however it ends (SIGKILL included: :func:`watch_parent`). A worker that dies (killed,
out of memory) becomes one :class:`WorkerError` line; its image has no result file and is labelled
again by a rerun, like any image a killed run did not finish.

Workers are forked from a forkserver that imported their modules once (spawned where there is no
forkserver). As in any program that starts processes so, a script that calls ``generate(...,
workers=N)`` needs the ``if __name__ == "__main__":`` guard: each worker imports the script.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pkgutil
import select
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bbam_lite.data.records import ImageRecord
from bbam_lite.pseudo.methods.base import ImageBoxes, LabelContext

#: The most workers the default picks (each holds its imports, ~0.25 GB, and one image's work).
MAX_DEFAULT_WORKERS = 8

#: Thread settings of the worker processes: one each, set before their libraries load.
_ONE_THREAD = {
    name: "1"
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
}


class WorkerError(ValueError):
    """A worker process that died, or a bad number of workers (one line)."""


def available_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_workers(world_size: int = 1) -> int:
    """``--workers``' default: this process's share of the cores (all of them for one process,
    ``cores / N`` under ``torchrun --nproc-per-node N``), at least 1, at most :data:`MAX_DEFAULT_WORKERS`."""
    return max(1, min(available_cores() // max(world_size, 1), MAX_DEFAULT_WORKERS))


def check_workers(workers: int) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise WorkerError(f"--workers must be a positive integer, got {workers!r}")
    return workers


@dataclass
class ImageJob:
    """One image's CPU work: what a worker needs, and nothing of the rest of the dataset."""

    method: str
    ctx: LabelContext  # LabelContext.for_worker(): the settings only
    folder: str
    item: ImageBoxes
    staged: Any  # the method's device-stage payload for this image
    #: for an image labelled at a reduced scale (``item`` is the downscaled copy): the image's own
    #: record and boxes, and the scale (bbam_lite.pseudo.memory)
    full: tuple[ImageRecord, np.ndarray, float] | None = None

    @classmethod
    def of(
        cls,
        method: str,
        ctx: LabelContext,
        folder: Path,
        item: ImageBoxes,
        staged: Any,
        full: tuple[ImageRecord, np.ndarray, float] | None = None,
    ) -> ImageJob:
        # the record without its mask loader (a closure over the dataset; the worker needs no masks)
        item = replace(item, record=replace(item.record, mask_loader=None))
        if full is not None:
            full = (replace(full[0], mask_loader=None), *full[1:])
        return cls(method, ctx.for_worker(), str(folder), item, staged, full)


def run_job(job: ImageJob) -> int:
    """Label one image and write its files (result last); returns its id."""
    from bbam_lite.pseudo.folder import LabelsFolder
    from bbam_lite.pseudo.methods import get_method

    method = get_method(job.method)
    rec = job.item.record
    labels = method.cpu_stage(job.ctx, job.item, job.staged)
    if job.full is not None:  # labelled at a reduced scale: back to the image's size
        from bbam_lite.pseudo.memory import upscale

        rec, boxes, scale = job.full
        labels = upscale(labels, job.item, rec, boxes, scale)
    sem, _ = method.semantic(job.ctx.settings, labels.instances, rec.height, rec.width)
    LabelsFolder(job.folder).write_image(rec, labels, sem)
    return rec.image_id


def _run_in_worker(job: ImageJob) -> tuple[int, list[tuple[str, type[Warning]]]]:
    """:func:`run_job` in a worker: its warnings go back to the main process, which reports them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        image_id = run_job(job)
    return image_id, [(str(w.message), w.category) for w in caught]


def _started() -> None:
    """A worker's first job: none (it makes the pool start every worker at once)."""


def init_worker(parent: int | None = None) -> None:
    """One thread per worker (the label workers, chapter 12's network workers); Ctrl-C is the main
    process's to handle; the worker ends when ``parent`` (the process that started the pool) does,
    however that ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent is not None:
        watch_parent(parent)
    os.environ.update(_ONE_THREAD)
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def watch_parent(pid: int, poll: float = 0.5) -> threading.Thread:
    """End this process (exit status 1, no clean-up) as soon as process ``pid`` has ended.

    A worker blocks on the pool's queue, whose pipe it holds both ends of, so a main process killed
    with SIGKILL (the out-of-memory killer) would leave it, the forkserver that forked it and the
    resource tracker waiting forever. A daemon thread waits on a pidfd of ``pid`` (Linux; polls
    ``pid`` elsewhere) and ends the worker; the forkserver and the resource tracker then see their
    pipes close and end too.
    """

    def exit_now() -> None:
        os._exit(1)

    def wait_pidfd(fd: int) -> None:
        select.select([fd], [], [])
        exit_now()

    def poll_pid() -> None:
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                exit_now()
            except PermissionError:
                pass  # alive, owned by another user
            time.sleep(poll)

    try:
        target, args = wait_pidfd, (os.pidfd_open(pid),)
    except ProcessLookupError:
        exit_now()
    except (AttributeError, OSError):  # no pidfd (not Linux, or an old kernel)
        target, args = poll_pid, ()
    thread = threading.Thread(target=target, args=args, name="watch-parent", daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def one_thread_environment() -> Iterator[None]:
    """One thread (torch, OpenMP / BLAS) for the processes started inside the block (they read the
    variables as their libraries load): the label workers, ``book run --jobs N``'s chapters; this
    process's libraries are loaded already and keep their threads."""
    old = {k: os.environ.get(k) for k in _ONE_THREAD}
    os.environ.update(_ONE_THREAD)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _context(start_method: str | None) -> multiprocessing.context.BaseContext:
    """Forkserver where the OS has it (a server that imported the workers' modules once forks each
    worker: a pool starts in the time of one import, and later pools of this process at once),
    spawn elsewhere; never plain fork (this process may hold threads, torch's among them)."""
    if start_method is None:
        forkserver = "forkserver" in multiprocessing.get_all_start_methods()
        start_method = "forkserver" if forkserver else "spawn"
    ctx = multiprocessing.get_context(start_method)
    if start_method == "forkserver":  # no effect once this process's forkserver runs
        from bbam_lite.pseudo import methods

        registry = [f"{methods.__name__}.{m.name}" for m in pkgutil.iter_modules(methods.__path__)]
        ctx.set_forkserver_preload(["cv2", "torch", __name__, *registry])
    return ctx


class ImageWorkers:
    """Runs :func:`run_job` on images: inline with one worker, else in a process pool with at most
    ``max_in_flight`` (default ``2 x workers``) images submitted and not yet written.

    ``done(image_id)`` is called in this process for every written image. Use as a context manager;
    :meth:`finish` waits for the images in flight. An error in a job (a worker's exception, or a
    worker that died) is raised here; the images still queued are dropped, those running finish.
    """

    def __init__(
        self,
        workers: int,
        done: Callable[[int], Any] = lambda image_id: None,
        max_in_flight: int | None = None,
        start_method: str | None = None,
    ) -> None:
        self.workers = check_workers(workers)
        self.done = done
        self.max_in_flight = max_in_flight or 2 * workers
        self.start_method = start_method
        self._pool: ProcessPoolExecutor | None = None
        self._env: contextlib.ExitStack | None = None
        self._in_flight: dict[Future, int] = {}

    def __enter__(self) -> ImageWorkers:
        if self.workers > 1:
            self._env = contextlib.ExitStack()
            self._env.enter_context(one_thread_environment())
            self._pool = ProcessPoolExecutor(
                self.workers,
                _context(self.start_method),
                initializer=init_worker,
                initargs=(os.getpid(),),
            )
            for _ in range(self.workers):  # start them now: their imports overlap the first device batch
                self._pool.submit(_started)
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            # running images finish (whole files); queued ones are dropped
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._env is not None:
            self._env.close()
            self._env = None

    def submit(self, job: ImageJob) -> None:
        """Label ``job``'s image: now (one worker) or in a worker, after waiting for a free slot."""
        if self._pool is None:
            self.done(run_job(job))
            return
        while len(self._in_flight) >= self.max_in_flight:
            self._collect(FIRST_COMPLETED)
        try:
            future = self._pool.submit(_run_in_worker, job)
        except BrokenProcessPool:
            self._collect(FIRST_COMPLETED)  # raises the error of the job that broke it
            raise self._died(job.item.record.image_id) from None
        self._in_flight[future] = job.item.record.image_id

    def finish(self) -> None:
        """Wait until every submitted image is written."""
        while self._in_flight:
            self._collect(FIRST_COMPLETED)

    def _collect(self, when: str) -> None:
        finished, _ = wait(list(self._in_flight), return_when=when)
        for future in sorted(finished, key=lambda f: self._in_flight[f]):
            image_id = self._in_flight.pop(future)
            try:
                written, caught = future.result()
            except BrokenProcessPool:
                raise self._died(image_id) from None
            for message, category in caught:
                warnings.warn(message, category, stacklevel=2)
            self.done(written)

    def _died(self, image_id: int) -> WorkerError:
        return WorkerError(
            f"a worker process died while labelling image {image_id} (killed, or out of memory?); "
            "rerun the same command to resume, with fewer --workers if memory is short"
        )
