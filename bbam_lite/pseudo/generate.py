"""Pseudo labels for a dataset split with any registered method, resumable, with their quality.

:func:`generate` labels a split's images into a :class:`~bbam_lite.pseudo.folder.LabelsFolder`
(its layout and faults are described there) with the method its
:class:`~bbam_lite.pseudo.settings.PseudoLabelSettings` names (:mod:`bbam_lite.pseudo.methods`),
then merges the per-image results into ``instances.json`` and scores them against ground truth
(``quality.json``, :class:`~bbam_lite.metrics.LabelQuality`). A rerun after a kill skips finished
images and redoes the rest, so the final outputs equal those of an uninterrupted run.

Several processes (``torchrun --nproc-per-node N -m bbam_lite pseudo-labels ...``) share the work:
the split is cut into blocks of ``batch_images`` images (methods that batch images; one image for
the others) and rank r of N labels blocks r, r + N, r + 2N, ... (see :func:`shard`), records what it
did in ``ranks/<r>-of-<N>.json``, and after a barrier rank 0 alone merges everything.

Within a process, ``workers`` processes do the per-image CPU work while the method's device stage
(BBAM's maps) goes on with the next batch (:mod:`bbam_lite.pseudo.workers`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from bbam_lite.attribution.engine import EngineOptions
from bbam_lite.data.images import image_tensor
from bbam_lite.data.records import BoxDataset, DataError, ImageRecord
from bbam_lite.detector.heads import detect
from bbam_lite.metrics import LabelQuality
from bbam_lite.pseudo.folder import LabelsFolder, LabelsFolderError
from bbam_lite.pseudo.identity import record_identity
from bbam_lite.pseudo.job import LabelJob
from bbam_lite.pseudo.memory import MemoryPlan, default_budget, downscale, gigabytes, plan
from bbam_lite.pseudo.methods import ImageBoxes, LabelContext, get_method
from bbam_lite.pseudo.settings import PseudoLabelSettings
from bbam_lite.pseudo.workers import ImageJob, ImageWorkers, check_workers
from bbam_lite.pseudo.writers import annotation, coco_instances


class PseudoLabelWarning(UserWarning):
    """Objects that needed a fallback (no positive proposal, GrabCut could not run, ...)."""


def check_maps_source(settings: PseudoLabelSettings, dataset: BoxDataset) -> dict:
    """The ``settings.json`` of ``settings.maps_from``, after checking that its maps are the ones
    ``settings`` would make (same method, map settings, boxes and images); one-line errors otherwise."""
    folder = LabelsFolder(str(settings.maps_from))
    src = folder.settings()
    made = folder.label_settings()
    if made.method != settings.method or not made.method_obj.stores_maps:
        raise ValueError(
            f"{folder.root}: made with --method {made.method}; --maps-from needs {settings.method} maps"
        )
    mine, theirs = asdict(settings.without_postprocessing()), asdict(made.without_postprocessing())
    diff = [k for k, v in mine.items() if theirs[k] != v]
    if asdict(settings.bbam_config()) != asdict(made.bbam_config()):
        diff.append("BBAM settings")
    if diff:
        raise ValueError(
            f"{folder.root}: its maps were made with other settings ({', '.join(sorted(set(diff)))})"
        )
    if src.get("root") != str(dataset.root):
        raise ValueError(f"{folder.root}: its maps are of {src.get('root')}, not of {dataset.root}")
    return src


class PseudoLabeler:
    """Turns images into instance pseudo labels with one registered method; used by :func:`generate`."""

    def __init__(
        self,
        settings: PseudoLabelSettings,
        detector=None,
        mean: torch.Tensor | None = None,
        device: str = "cpu",
        batch_objects: int | str = 8,
        engine: EngineOptions | None = None,
    ) -> None:
        self.s = settings
        self.method = get_method(settings.method)
        self.ctx = LabelContext(settings, detector, mean, device, batch_objects, engine)

    def boxes(self, rec: ImageRecord, image: np.ndarray) -> ImageBoxes:
        """The image and the boxes to label: ground truth, the detector's, or those of the folder
        whose maps are reused."""
        s = self.s
        if s.maps_from:
            source = LabelsFolder(s.maps_from)
            if not source.is_done(rec.image_id):
                raise LabelsFolderError(
                    f"{source.root}: no stored maps for image {rec.image_id} ({rec.path.name}); make them "
                    f"first (bbam-lite pseudo-labels --method {s.method} on the same images)"
                )
            insts, _ = source.read_image(rec.image_id)
            return ImageBoxes(
                rec,
                image,
                np.array([i.box for i in insts], np.float32).reshape(-1, 4),
                np.array([i.label for i in insts], np.int64),
                np.array([i.score for i in insts], np.float32),
            )
        if s.boxes == "gt":
            return ImageBoxes(
                rec,
                image,
                rec.boxes.astype(np.float32),
                rec.labels.astype(np.int64),
                np.ones(len(rec.boxes), np.float32),
            )
        out = detect(self.ctx.detector, [image_tensor(image, self.ctx.device)], s.detector_score)[0]
        return ImageBoxes(
            rec,
            image,
            out["boxes"].cpu().numpy(),
            out["labels"].cpu().numpy().astype(np.int64),
            out["scores"].cpu().numpy(),
        )

    def jobs(
        self, recs: Sequence[ImageRecord], folder: LabelsFolder, scales: dict[int, float] | None = None
    ) -> list[ImageJob]:
        """The method's device stage on several images (one batch of the method's), and each image's
        CPU work as a job for :class:`~bbam_lite.pseudo.workers.ImageWorkers`. An image in ``scales``
        is labelled at that scale (its memory plan) and its labels resized back in the job."""
        scales = scales or {}
        items, full = [], []
        for r in recs:
            item = self.boxes(r, r.load_image())
            s = scales.get(r.image_id)
            full.append((r, item.boxes, s) if s else None)
            items.append(downscale(item, s) if s else item)
        staged = self.method.device_stage(self.ctx, items)
        return [
            ImageJob.of(self.s.method, self.ctx, folder.root, it, st, f)
            for it, st, f in zip(items, staged, full, strict=True)
        ]

    def semantic(self, instances, height: int, width: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """The class map, and each instance's foreground as it appears in it (the method's composition)."""
        return self.method.semantic(self.s, instances, height, width)


def shard(recs: Sequence[ImageRecord], rank: int, world_size: int, block: int = 1) -> list[ImageRecord]:
    """The records rank ``rank`` of ``world_size`` labels: the blocks of ``block`` consecutive records
    whose block index is ``rank`` modulo ``world_size``. Disjoint, together complete, independent of
    what earlier runs finished; with ``block`` = the images BBAM optimises together, every batch is the
    one a single process would form, so the labels do not depend on the number of processes."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
    if block < 1:
        raise ValueError(f"block must be positive, got {block}")
    return [r for i, r in enumerate(recs) if (i // block) % world_size == rank]


def generate(job: LabelJob) -> dict:
    """Label ``job.dataset`` (its first ``job.limit`` images) into ``job.out``; returns the quality
    dict. Build ``job`` with :meth:`~bbam_lite.pseudo.job.LabelJob.make`.

    ``job.workers`` > 1 does each image's CPU work (the method's CPU stage and the image's files) in
    that many worker processes while this process runs the next batches' device stage
    (:mod:`bbam_lite.pseudo.workers`); the labels folder is the same, byte for byte, for any number.

    With ``job.ranks.world_size`` > 1 this is one of several processes (synchronised by the ranks'
    barrier): it labels its :func:`shard`, and rank 0 merges all shards once every rank is through;
    other ranks return a summary of their own work.
    """
    dataset, settings, workers, limit = job.dataset, job.settings, job.workers, job.limit
    rank, world_size = job.ranks.rank, job.ranks.world_size
    folder = LabelsFolder(job.out)
    method = get_method(settings.method)
    check_workers(workers)
    sync = job.ranks.barrier
    recs = list(dataset)[: limit if limit is not None else None]
    run_settings = {
        "settings": settings.record(),
        "dataset": dataset.name,
        "root": str(dataset.root),
        "limit": limit,
        **job.provenance,
    }
    if settings.maps_from:
        source = check_maps_source(settings, dataset)
        run_settings["maps"] = {k: v for k, v in source.items() if k != "settings"}
    if not recs:
        raise DataError(f"{dataset.name} ({dataset.root}): no images to label (limit {limit})")
    if rank == 0:  # writes settings.json on a fresh run; the others check against it afterwards
        folder.check_settings(run_settings)
        record_identity(folder, dataset, recs)
        folder.remove_temporaries()  # of a killed run; nobody writes before the barrier
    sync()
    if rank != 0:
        folder.check_settings(run_settings)
    labeler = PseudoLabeler(settings, job.detector, job.mean, job.device, job.batch_objects, job.engine)
    chunk = job.batch_images if method.batch_images else 1
    mine = shard(recs, rank, world_size, chunk)
    todo = folder.pending(mine)
    t0 = time.perf_counter()
    bar = tqdm(
        total=len(mine),
        initial=len(mine) - len(todo),
        desc=f"pseudo labels ({settings.method})" + (f" rank {rank}/{world_size}" if world_size > 1 else ""),
        unit="img",
        disable=not job.progress,
    )
    budget = job.memory_budget if job.memory_budget is not None else default_budget()
    memory = plan(settings, todo, budget, workers)
    warn_memory(memory, workers, folder)
    # no more workers than images: a worker costs its start (imports) before its first image
    at_once = max(1, min(memory.workers, len(todo)))
    with ImageWorkers(at_once, done=lambda image_id: bar.update(1)) as pool:
        for start in range(0, len(todo), chunk):
            for image_job in labeler.jobs(todo[start : start + chunk], folder, memory.scales):
                pool.submit(image_job)
        pool.finish()
    bar.close()
    seconds = time.perf_counter() - t0
    own = {
        "rank": rank,
        "world_size": world_size,
        "images": [r.image_id for r in mine],
        "done_this_run": [r.image_id for r in todo],
        "seconds_this_run": round(seconds, 1),
    }
    if world_size > 1:
        folder.write_rank(rank, world_size, own)
    sync()
    if rank != 0:
        return own
    n_done = len(todo)
    if world_size > 1:
        n_done = sum(len(folder.read_rank(r, world_size)["done_this_run"]) for r in range(world_size))
    return finalise(dataset, recs, labeler, folder, time.perf_counter() - t0, n_done)


def warn_memory(memory: MemoryPlan, workers: int, folder: LabelsFolder) -> None:
    """One warning line per way the memory budget changed the run (none when it did not)."""
    budget = gigabytes(memory.budget)
    if memory.scales:
        ids = list(memory.scales)
        shown = ", ".join(f"{i} (scale {memory.scales[i]:.3g})" for i in ids[:5])
        more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""
        warnings.warn(
            f"{folder.root}: {len(ids)} images need more memory than --memory-budget {budget} and are "
            f"labelled at a reduced scale, their labels resized back: image {shown}{more}",
            PseudoLabelWarning,
            stacklevel=3,
        )
    if memory.workers < workers:
        warnings.warn(
            f"--workers {workers}: --memory-budget {budget} holds {memory.workers} at once "
            f"(the largest image needs about {gigabytes(memory.largest)})",
            PseudoLabelWarning,
            stacklevel=3,
        )


def finalise(
    dataset: BoxDataset,
    recs: list[ImageRecord],
    labeler: PseudoLabeler,
    folder: LabelsFolder,
    seconds: float,
    n_done: int,
) -> dict:
    """Merge per-image results into ``instances.json`` and compute ``quality.json``."""
    images, anns = [], []
    scorer = LabelQuality(len(dataset.class_names))
    fallbacks: dict[str, int] = {}
    n_objects = n_failed = 0
    has_masks = all(r.has_masks for r in recs) and len(recs) > 0
    for rec in recs:
        insts, info = folder.read_image(rec.image_id)
        n_objects += len(insts)
        for obj in info:
            if obj.get("fallback"):
                fallbacks[obj["fallback"]] = fallbacks.get(obj["fallback"], 0) + 1
            n_failed += bool(obj.get("failed"))
            if obj.get("grabcut_ran") is False:
                fallbacks["grabcut-could-not-run"] = fallbacks.get("grabcut-could-not-run", 0) + 1
        images.append(
            {"id": rec.image_id, "file_name": rec.path.name, "width": rec.width, "height": rec.height}
        )
        sem, visible = labeler.semantic(insts, rec.height, rec.width)
        for inst, fg in zip(insts, visible, strict=True):
            anns.append(
                annotation(len(anns) + 1, rec.image_id, inst.label, fg, inst.ignore, inst.score, inst.box)
            )
        if has_masks:
            scorer.add(rec.load_masks(), rec.labels, sem, visible, [i.label for i in insts])
    folder.write_instances(coco_instances(images, anns, dataset.class_names))
    s = labeler.s
    quality: dict[str, Any] = {
        "method": s.method,
        "boxes": s.boxes,
        **({"preset": s.preset} if "preset" in labeler.method.settings else {}),
        "profile": s.profile,
        "images": len(recs),
        "objects": n_objects,
        "fallbacks": fallbacks,
        "failed_objects": n_failed,
        "seconds_this_run": round(seconds, 1),
        "images_this_run": n_done,
    }
    if has_masks:
        quality.update(scorer.result(dataset.class_names))
    if fallbacks:
        warnings.warn(f"{folder.root}: fallbacks used: {fallbacks}", PseudoLabelWarning, stacklevel=2)
    folder.write_quality(quality)
    return quality
