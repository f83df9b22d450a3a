"""Pseudo labels for a dataset split, resumable, with their quality against ground truth.

Layout of a labels folder ``LABELS``::

    settings.json           what the labels were made with; a rerun with other settings is refused
    images/<image_id>.npz   one finished image (instances, masks, per-object info), written atomically
    semantic/<name>.png     VOC-style class map, 255 = ignore
    bbam/<image_id>.npz     BBAM maps (float16), for reuse by analyses (method bbam only)
    instances.json          COCO instances with RLE masks and ``ignore`` RLEs (written at the end)
    quality.json            miou, mean_instance_iou, ignore fraction, counts (when masks exist)

An image is finished when its ``images/<id>.npz`` exists; a rerun after a kill skips finished
images and redoes the rest, so the final outputs equal those of an uninterrupted run.

Several processes (``torchrun --nproc-per-node N -m bbam_lite pseudo-labels ...``) share the work:
the split is cut into blocks of ``batch_images`` images (BBAM; one image for the other methods) and
rank r of N labels blocks r, r + N, r + 2N, ... (see :func:`shard`), records what it did in
``ranks/<r>-of-<N>.json``, and after a barrier rank 0 alone merges everything into
``instances.json`` and ``quality.json``.

An object whose BBAM hits a numerical fault (NaN or inf, see
:func:`bbam_lite.attribution.bbam.explain`) is marked failed: its box becomes an ignore region with
no foreground, its info says ``"fallback": "numerical-fault:box-ignored"`` and the fault, and
``quality.json`` counts it (``failed_objects``).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from bbam_lite.attribution.bbam import BBAMConfig, ObjectResult, ObjectTask, explain, get_preset
from bbam_lite.attribution.engine import EngineOptions
from bbam_lite.baselines import box_crf_instances, box_instances, grabcut_instances
from bbam_lite.data.records import BoxDataset, ImageRecord
from bbam_lite.detector.evaluate import image_tensor
from bbam_lite.detector.heads import detect
from bbam_lite.metrics import ConfusionMatrix, best_match_ious
from bbam_lite.pseudo.crf import CRFParams
from bbam_lite.pseudo.labels import (
    InstanceLabel,
    box_region,
    compose_overwrite,
    instances_to_semantic,
    refine_official,
    refine_paper,
)
from bbam_lite.pseudo.refine import grouping_proposals, read_mcg, refine_with_proposals
from bbam_lite.pseudo.writers import annotation, coco_instances, write_coco_json, write_semantic_png
from bbam_lite.utils.io import atomic_save, atomic_write_json

METHODS = ("box", "box_crf", "grabcut", "bbam")

#: The fallback label of an object whose BBAM hit a numerical fault.
FAULT_FALLBACK = "numerical-fault:box-ignored"

#: The paper's settings are for VOC images (shorter side about 375 px, detector input 800 px).
PAPER_IMAGE_SIDE = 375.0


class PseudoLabelWarning(UserWarning):
    """Objects that needed a fallback (no positive proposal, GrabCut could not run, ...)."""


@dataclass(frozen=True)
class PseudoLabelSettings:
    """Everything that determines a labels folder."""

    method: str = "bbam"
    boxes: str = "gt"  # gt | detector
    preset: str = "paper"  # BBAM preset: paper | official
    profile: str = "full"  # full: the paper's pixel values | lite: strides and CRF widths scaled to the image
    theta_fg: float = 0.8
    theta_bg: float = 0.2
    crf: bool = True
    detector_score: float = 0.5  # score threshold for --boxes detector
    refine: str = "none"  # none | proposals (Eq. 4): MCG files from mcg_dir if given, else grouping proposals
    mcg_dir: str | None = None
    bbam: dict = field(default_factory=dict)  # BBAMConfig overrides
    # a BBAM labels folder made with the same boxes and BBAM settings: reuse its stored maps and
    # redo only the post-processing (thresholds, CRF, refinement), minutes instead of hours
    maps_from: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {METHODS}")
        if self.boxes not in ("gt", "detector"):
            raise ValueError(f"--boxes must be gt or detector, got {self.boxes!r}")
        if self.profile not in ("full", "lite"):
            raise ValueError(f"unknown profile {self.profile!r}; choose full or lite")
        if self.refine not in ("none", "proposals"):
            raise ValueError(f"--refine must be none or proposals, got {self.refine!r}")
        if self.maps_from and self.method != "bbam":
            raise ValueError(f"--maps-from reuses BBAM maps: it needs --method bbam, not {self.method}")

    def record(self) -> dict:
        """The settings as stored in ``settings.json`` and cache keys (``maps_from`` only when set,
        so folders made before it existed keep their keys)."""
        d = asdict(self)
        if d["maps_from"] is None:
            del d["maps_from"]
        return d

    @property
    def needs_detector(self) -> bool:
        """Whether labelling runs the detector (stored maps carry their boxes)."""
        return not self.maps_from and (self.method == "bbam" or self.boxes == "detector")

    def without_postprocessing(self) -> PseudoLabelSettings:
        """The settings whose stored maps these settings can reuse: the same map, the default
        post-processing (``self`` when that is already the case)."""
        base = PseudoLabelSettings()
        return replace(
            self,
            theta_fg=base.theta_fg,
            theta_bg=base.theta_bg,
            crf=base.crf,
            refine=base.refine,
            mcg_dir=base.mcg_dir,
            maps_from=None,
        )

    def bbam_config(self) -> BBAMConfig:
        overrides = dict(LITE_BBAM) if self.profile == "lite" else {}
        overrides.update(self.bbam)
        return get_preset(self.preset, **overrides)

    def crf_params(self, height: int, width: int) -> CRFParams:
        params = CRFParams()
        return params.scaled(min(height, width) / PAPER_IMAGE_SIDE) if self.profile == "lite" else params


#: The lite profile's BBAM settings, each beside the paper's value in the book and README.
LITE_BBAM: dict[str, Any] = {
    "stride_reference_side": PAPER_IMAGE_SIDE,  # strides scaled by image side / 375 (paper: absolute px)
    "iterations": 150,  # paper: 300
    "n_jitter": 100,  # paper: not given (authors' code: 1000)
    "max_positives": 24,  # paper: all positives (authors' code: at most 100)
}


def _box_source(
    rec: ImageRecord, image: np.ndarray, settings: PseudoLabelSettings, detector, device
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if settings.boxes == "gt":
        return rec.boxes.astype(np.float32), rec.labels.astype(np.int64), np.ones(len(rec.boxes), np.float32)
    out = detect(detector, [image_tensor(image, device)], settings.detector_score)[0]
    return (
        out["boxes"].cpu().numpy(),
        out["labels"].cpu().numpy().astype(np.int64),
        out["scores"].cpu().numpy(),
    )


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    atomic_save(path, write)


def _save_image_result(path: Path, instances: list[InstanceLabel], info: list[dict]) -> None:
    _save_npz(
        path,
        {
            "labels": np.array([i.label for i in instances], np.int64),
            "boxes": np.array([i.box for i in instances], np.float32).reshape(-1, 4),
            "scores": np.array([i.score for i in instances], np.float32),
            "fg": np.array([i.fg for i in instances], bool),
            "ignore": np.array([i.ignore for i in instances], bool),
            "info": np.array(json.dumps(info)),
        },
    )


def load_image_result(path: Path) -> tuple[list[InstanceLabel], list[dict]]:
    with np.load(path, allow_pickle=False) as z:
        info = json.loads(str(z["info"]))
        insts = [
            InstanceLabel(int(c), b, f, g, float(s), inf)
            for c, b, f, g, s, inf in zip(
                z["labels"], z["boxes"], z["fg"], z["ignore"], z["scores"], info, strict=True
            )
        ]
    return insts, info


def stored_results(
    folder: Path, rec: ImageRecord
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], list[ObjectResult]]:
    """The boxes (boxes, labels, scores) and BBAM results of one image as a BBAM labels folder stored
    them. The coarse masks are not stored: ``mask`` is empty."""
    maps_path = Path(folder) / "bbam" / f"{rec.image_id}.npz"
    result_path = Path(folder) / "images" / f"{rec.image_id}.npz"
    if not (maps_path.is_file() and result_path.is_file()):
        raise FileNotFoundError(
            f"{maps_path}: no stored BBAM maps for image {rec.image_id} ({rec.path.name}); "
            "make the maps first (bbam-lite pseudo-labels --method bbam on the same images)"
        )
    insts, info = load_image_result(result_path)
    with np.load(maps_path, allow_pickle=False) as z:
        maps = z["bbam"].astype(np.float32)
    if len(maps) != len(insts):
        raise ValueError(f"{maps_path}: {len(maps)} maps for {len(insts)} objects")
    source = (
        np.array([i.box for i in insts], np.float32).reshape(-1, 4),
        np.array([i.label for i in insts], np.int64),
        np.array([i.score for i in insts], np.float32),
    )
    results = []
    for k, (m, obj) in enumerate(zip(maps, info, strict=True)):
        failed = bool(obj.get("failed"))
        results.append(
            ObjectResult(
                key=(rec.image_id, k),
                mask=np.zeros((0, 0), np.float32),
                bbam=m,
                stride=float(obj["stride"]),
                n_positives=int(obj["n_positives"]),
                n_candidates=int(obj.get("n_candidates", 0)),
                iou_threshold=float(obj["iou_threshold"]),
                fallback=obj.get("positives_fallback") if failed else obj.get("fallback"),
                final_box_loss=float(obj["box_loss"]),
                final_cls_loss=float(obj["cls_loss"]),
                fault=obj.get("fault") or ("stored-as-failed" if failed else None),
                retried=bool(obj.get("retried_fp32")),
            )
        )
    return source, results


def check_maps_source(settings: PseudoLabelSettings, dataset: BoxDataset) -> dict:
    """The ``settings.json`` of ``settings.maps_from``, after checking that its maps are the ones
    ``settings`` would make (same BBAM settings, boxes and images); one-line errors otherwise."""
    folder = Path(str(settings.maps_from))
    path = folder / "settings.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: --maps-from needs a BBAM labels folder (no settings.json)")
    src = json.loads(path.read_text(encoding="utf-8"))
    try:
        made = PseudoLabelSettings(**src["settings"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a pseudo-labels settings file ({e})") from None
    if made.method != "bbam":
        raise ValueError(f"{folder}: made with --method {made.method}; --maps-from needs BBAM maps")
    mine, theirs = asdict(settings.without_postprocessing()), asdict(made.without_postprocessing())
    diff = [k for k, v in mine.items() if theirs[k] != v]
    if asdict(settings.bbam_config()) != asdict(made.bbam_config()):
        diff.append("BBAM settings")
    if diff:
        raise ValueError(f"{folder}: its maps were made with other settings ({', '.join(sorted(set(diff)))})")
    if src.get("root") != str(dataset.root):
        raise ValueError(f"{folder}: its maps are of {src.get('root')}, not of {dataset.root}")
    return src


class PseudoLabeler:
    """Turns images into instance pseudo labels with one method; used by :func:`generate`."""

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
        self.detector = detector
        self.device = device
        self.mean = mean if mean is not None else torch.tensor([0.485, 0.456, 0.406])
        self.batch_objects = batch_objects
        self.engine = engine
        self.cfg = settings.bbam_config() if settings.method == "bbam" else None

    def label_images(self, recs: Sequence[ImageRecord]) -> list[tuple[list[InstanceLabel], list[dict], dict]]:
        """Instances, per-object info and BBAM maps ({} for other methods) of several images."""
        images = [r.load_image() for r in recs]
        if self.s.maps_from:
            stored = [stored_results(Path(self.s.maps_from), r) for r in recs]
            return [
                self.instances_from_maps(r, im, src, res)
                for r, im, (src, res) in zip(recs, images, stored, strict=True)
            ]
        sources = [
            _box_source(r, im, self.s, self.detector, self.device) for r, im in zip(recs, images, strict=True)
        ]
        if self.s.method != "bbam":
            return [self._baseline(im, *src) for im, src in zip(images, sources, strict=True)]
        tasks = [
            ObjectTask(image_tensor(im, self.device), torch.as_tensor(b), int(c), key=(r.image_id, k))
            for r, im, (boxes, labels, _) in zip(recs, images, sources, strict=True)
            for k, (b, c) in enumerate(zip(boxes, labels, strict=True))
        ]
        results = explain(
            self.detector, tasks, self.cfg, self.mean, batch_size=self.batch_objects, engine=self.engine
        )
        by_key = {r.key: r for r in results}
        return [
            self.instances_from_maps(r, im, src, [by_key[(r.image_id, k)] for k in range(len(src[0]))])
            for r, im, src in zip(recs, images, sources, strict=True)
        ]

    def instances_from_maps(
        self,
        rec: ImageRecord,
        image: np.ndarray,
        source: tuple[np.ndarray, np.ndarray, np.ndarray],
        results: Sequence[ObjectResult],
    ) -> tuple[list[InstanceLabel], list[dict], dict]:
        """Instances, per-object info and maps of one image from its objects' BBAM results."""
        boxes, labels, scores = source
        h, w = image.shape[:2]
        crf = self.s.crf_params(h, w) if self.s.crf else None
        insts, info, maps = [], [], []
        proposals = self._proposals(rec, image) if self.s.refine == "proposals" else None
        for b, c, sc, res in zip(boxes, labels, scores, results, strict=True):
            if res.failed:
                fg = np.zeros((h, w), bool)
                ign, extra = box_region(np.asarray(b, np.float64), h, w), {}
            elif self.s.preset == "official":
                fg, ign, extra = refine_official(
                    image, res.bbam, b, res.stride, crf or self.s.crf_params(h, w)
                )
            else:
                fg, ign, _ = refine_paper(image, res.bbam, b, crf, self.s.theta_fg, self.s.theta_bg)
                extra = {}
            if proposals is not None and not res.failed:
                fg, extra["refined"] = self._refine(fg, proposals, b, h, w)
                ign &= ~fg
            obj = {
                "stride": res.stride,
                "n_positives": res.n_positives,
                "n_candidates": res.n_candidates,
                "iou_threshold": res.iou_threshold,
                "fallback": FAULT_FALLBACK if res.failed else res.fallback,
                "box_loss": res.final_box_loss,
                "cls_loss": res.final_cls_loss,
                **extra,
            }
            if res.failed:
                obj.update(failed=True, fault=res.fault, positives_fallback=res.fallback)
            if res.retried:
                obj["retried_fp32"] = True
            insts.append(InstanceLabel(int(c), np.asarray(b, np.float32), fg, ign, float(sc), obj))
            info.append(obj)
            maps.append(res.bbam)
        return insts, info, {"bbam": np.array(maps, np.float16).reshape(-1, h, w)}

    def _proposals(self, rec: ImageRecord, image: np.ndarray) -> np.ndarray:
        if self.s.mcg_dir:
            return read_mcg(Path(self.s.mcg_dir) / f"{rec.path.stem}.mat")
        return grouping_proposals(image)

    def _refine(
        self, fg: np.ndarray, proposals: np.ndarray, box: np.ndarray, h: int, w: int
    ) -> tuple[np.ndarray, bool]:
        if self.s.preset == "official":
            min_side = 32 * (min(h, w) / PAPER_IMAGE_SIDE if self.s.profile == "lite" else 1.0)
            if min(box[2] - box[0], box[3] - box[1]) < min_side:
                return fg, False
            return refine_with_proposals(fg, proposals, 0.95, box, best_inside_box=0.95), True
        return refine_with_proposals(fg, proposals, 1.0, box), True

    def _baseline(self, image, boxes, labels, scores) -> tuple[list[InstanceLabel], list[dict], dict]:
        h, w = image.shape[:2]
        if self.s.method == "box":
            insts = box_instances(boxes, labels, h, w)
        elif self.s.method == "box_crf":
            insts = box_crf_instances(image, boxes, labels, self.s.crf_params(h, w))
        else:
            insts = grabcut_instances(image, boxes, labels)
        for inst, sc in zip(insts, scores, strict=True):
            inst.score = float(sc)
        return insts, [dict(i.info) for i in insts], {}

    def semantic(
        self, instances: list[InstanceLabel], height: int, width: int
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The class map, and each instance's foreground as it appears in it.

        Box, Box + CRF and GrabCut compose as Box2Seg's Algorithm 1 (large to small, overwriting);
        BBAM as the paper (pixels claimed by two classes, and ignore bands, become 255)."""
        if self.s.method == "bbam":
            return instances_to_semantic(instances, height, width, self.s.preset == "official"), [
                i.fg for i in instances
            ]
        return compose_overwrite(instances, height, width)


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


def generate(
    dataset: BoxDataset,
    settings: PseudoLabelSettings,
    out: Path,
    detector=None,
    mean: torch.Tensor | None = None,
    device: str = "cpu",
    limit: int | None = None,
    batch_images: int = 4,
    provenance: dict | None = None,
    progress: bool = True,
    rank: int = 0,
    world_size: int = 1,
    barrier: Callable[[], None] | None = None,
    batch_objects: int | str = 8,
    engine: EngineOptions | None = None,
) -> dict:
    """Label ``dataset`` (its first ``limit`` images) into ``out``; returns the quality dict.

    With ``world_size`` > 1 this is one of several processes (``barrier`` synchronises them): it
    labels its :func:`shard`, and rank 0 merges all shards once every rank is through; other ranks
    return a summary of their own work.
    """
    from bbam_lite.detector.train import check_run_settings

    out = Path(out)
    if settings.needs_detector and detector is None:
        raise ValueError(f"method {settings.method} with --boxes {settings.boxes} needs a detector")
    if world_size > 1 and barrier is None:
        raise ValueError("several processes need a barrier")
    sync = barrier or (lambda: None)
    recs = list(dataset)[: limit if limit is not None else None]
    run_settings = {
        "settings": settings.record(),
        "dataset": dataset.name,
        "root": str(dataset.root),
        "limit": limit,
        **(provenance or {}),
    }
    if settings.maps_from:
        source = check_maps_source(settings, dataset)
        run_settings["maps"] = {k: v for k, v in source.items() if k != "settings"}
    if rank == 0:  # writes settings.json on a fresh run; the others check against it afterwards
        check_run_settings(out, run_settings)
    sync()
    if rank != 0:
        check_run_settings(out, run_settings)
    labeler = PseudoLabeler(settings, detector, mean, device, batch_objects, engine)
    chunk = batch_images if settings.method == "bbam" else 1
    mine = shard(recs, rank, world_size, chunk)
    todo = [r for r in mine if not (out / "images" / f"{r.image_id}.npz").exists()]
    t0 = time.perf_counter()
    bar = tqdm(
        total=len(mine),
        initial=len(mine) - len(todo),
        desc=f"pseudo labels ({settings.method})" + (f" rank {rank}/{world_size}" if world_size > 1 else ""),
        unit="img",
        disable=not progress,
    )
    for start in range(0, len(todo), chunk):
        group = todo[start : start + chunk]
        for rec, (insts, info, maps) in zip(group, labeler.label_images(group), strict=True):
            sem, _ = labeler.semantic(insts, rec.height, rec.width)
            write_semantic_png(out / "semantic" / f"{rec.path.stem}.png", sem)
            if maps:
                _save_npz(out / "bbam" / f"{rec.image_id}.npz", maps)
            _save_image_result(
                out / "images" / f"{rec.image_id}.npz", insts, info
            )  # last: marks the image done
            bar.update(1)
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
        atomic_write_json(out / "ranks" / f"{rank}-of-{world_size}.json", own)
    sync()
    if rank != 0:
        return own
    n_done = len(todo)
    if world_size > 1:
        n_done = sum(
            len(json.loads((out / "ranks" / f"{r}-of-{world_size}.json").read_text())["done_this_run"])
            for r in range(world_size)
        )
    quality = finalise(dataset, recs, labeler, out, time.perf_counter() - t0, n_done)
    return quality


def finalise(
    dataset: BoxDataset,
    recs: list[ImageRecord],
    labeler: PseudoLabeler,
    out: Path,
    seconds: float,
    n_done: int,
) -> dict:
    """Merge per-image results into ``instances.json`` and compute ``quality.json``."""
    images, anns = [], []
    conf = ConfusionMatrix(len(dataset.class_names))
    conf_strict = ConfusionMatrix(len(dataset.class_names))
    inst_ious: list[float] = []
    fallbacks: dict[str, int] = {}
    n_objects = n_failed = 0
    has_masks = all(r.has_masks for r in recs) and len(recs) > 0
    for rec in recs:
        insts, info = load_image_result(out / "images" / f"{rec.image_id}.npz")
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
            gt_masks = rec.load_masks()
            gt_sem = np.zeros((rec.height, rec.width), np.uint8)
            for m, c in zip(gt_masks, rec.labels, strict=True):
                gt_sem[m] = c
            conf.update(gt_sem, sem)
            conf_strict.update(gt_sem, np.where(sem == 255, 0, sem).astype(np.uint8))
            inst_ious += best_match_ious(gt_masks, rec.labels, visible, [i.label for i in insts])
    write_coco_json(out / "instances.json", coco_instances(images, anns, dataset.class_names))
    quality: dict[str, Any] = {
        "method": labeler.s.method,
        "boxes": labeler.s.boxes,
        "preset": labeler.s.preset,
        "profile": labeler.s.profile,
        "images": len(recs),
        "objects": n_objects,
        "fallbacks": fallbacks,
        "failed_objects": n_failed,
        "seconds_this_run": round(seconds, 1),
        "images_this_run": n_done,
    }
    if has_masks:
        quality.update(
            {
                "miou": conf.miou(),
                "ignore_fraction": conf.ignore_fraction,
                "miou_ignore_as_background": conf_strict.miou(),
                "mean_instance_iou": float(np.mean(inst_ious)) if inst_ious else 0.0,
                "per_class_iou": {
                    n: (None if np.isnan(v) else float(v))
                    for n, v in zip(dataset.class_names, conf.iou(), strict=True)
                },
            }
        )
    if fallbacks:
        warnings.warn(f"{out}: fallbacks used: {fallbacks}", PseudoLabelWarning, stacklevel=2)
    atomic_write_json(out / "quality.json", quality, indent=2)
    return quality
