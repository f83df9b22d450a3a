"""BBAM side by side: the paper's loop written plainly versus the package's engine.

On the same images, boxes, proposals and detector weights, in one run and interleaved (batch by
batch, alternating which goes first), this times

(a) the reference: one object at a time, fp32, default autograd (the detector's weights require
    gradients, so every backward also computes weight gradients), the detector's own modules;
(b) the engine: :func:`bbam_lite.attribution.bbam.explain`, i.e. objects in batches, frozen
    weights, the engine's RoIAlign, and on CUDA bf16 autocast and channels-last.

It prints a table and writes JSON (``--json``) with the times per object, the speedup, peak memory,
the agreement of the two (mean IoU of the maps binarised at 0.5; mIoU between their pseudo labels,
with the ignore label as a class of its own), each one's pseudo-label mIoU against the ground truth,
and the floor: FLOPs of one iteration (forward + input-gradient backward, counted with
``torch.utils.flop_counter.FlopCounterMode``, matrix operations only) times the iterations, over the
device's measured matrix rate (a GEMM in bf16 on CUDA, fp32 on the CPU).

Profiles: ``lite`` (the shipped CPU detector, the synthetic images, the lite BBAM settings:
150 iterations) and ``paper`` (a random-init ResNet-50-FPN at 800 px, synthetic images resized to
VOC's 375 x 500, 300 iterations; a random-init detector has no positives, so the first
``--positives`` jittered proposals stand in for them, the same for both sides).

    python scripts/bench_bbam.py --profile lite --data DATA --images 6 --json bench.json
    python scripts/bench_bbam.py --profile paper --data DATA --images 1 --iterations 3 --json p.json
"""

from __future__ import annotations

import argparse
import copy
import datetime
import math
import os
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bbam_lite.attribution.bbam import (
    PRESETS,
    BBAMConfig,
    ObjectResult,
    ObjectTask,
    explain,
    init_mask,
    prepare,
    task_generator,
)
from bbam_lite.attribution.engine import EngineOptions
from bbam_lite.attribution.loss import bbam_objective, head_terms, object_means
from bbam_lite.attribution.proposals import Positives, jitter_boxes
from bbam_lite.data import load_dataset
from bbam_lite.data.stats import channel_mean
from bbam_lite.detector.evaluate import image_tensor
from bbam_lite.detector.heads import frozen, roi_head_outputs
from bbam_lite.detector.model import build_detector, get_profile, load_detector
from bbam_lite.metrics import IGNORE, ConfusionMatrix, LabelQuality, mask_iou
from bbam_lite.pseudo.generate import PseudoLabeler
from bbam_lite.pseudo.methods import ImageBoxes
from bbam_lite.pseudo.settings import DEFAULT_PRESET, PseudoLabelSettings
from bbam_lite.utils.io import atomic_write_json
from bbam_lite.utils.run_folder import git_commit
from bbam_lite.weights import default_detector_path

VOC_TRAIN_AUG_OBJECTS = 10_582 * 2.8

#: The engine agrees with the reference when each agreement is at most this far below the
#: reference's agreement with itself under rounding-sized noise (BBAM amplifies rounding).
AGREEMENT_MARGIN = 0.03
#: ... and its label mIoU against the ground truth within this many points of the reference's
#: (or of the reference's own change under that noise, plus this).
LABEL_MIOU_POINTS = 0.5
#: Fewer objects decide nothing: the gap swings by several points on 15 objects.
MIN_OBJECTS = {"cpu": 40, "cuda": 16}


def agreement_verdict(result: dict) -> dict:
    """Whether the engine passes against the method's own noise (issue 16, item 6): each agreement
    (maps, labels) at most :data:`AGREEMENT_MARGIN` below its noise floor, and the engine's label
    mIoU against the ground truth within :data:`LABEL_MIOU_POINTS` points of the reference's (or of
    the reference's own change under the noise, plus that), over at least :data:`MIN_OBJECTS`
    objects. ``passes`` is None where the run cannot decide (no noise floor, too few objects)."""
    device = "cuda" if str(result.get("device", "cpu")).startswith("cuda") else "cpu"
    needed = MIN_OBJECTS[device]
    checks: dict[str, bool] = {}
    if "noise_floor_map_iou" in result:
        checks["maps"] = result["agreement_map_iou"] >= result["noise_floor_map_iou"] - AGREEMENT_MARGIN
    if "noise_floor_label_miou" in result:
        checks["labels"] = (
            result["agreement_label_miou"] >= result["noise_floor_label_miou"] - AGREEMENT_MARGIN
        )
    if "label_miou_gap_points" in result:
        allowed = LABEL_MIOU_POINTS + abs(result.get("noise_floor_miou_gap_points", 0.0))
        checks["label_miou_vs_gt"] = abs(result["label_miou_gap_points"]) <= allowed
    why = []
    if result["objects"] < needed:
        why.append(f"{result['objects']} objects, fewer than the {needed} that decide on {device}")
    if "maps" not in checks:
        why.append("no noise floor (run with --noise-floor)")
    passes = all(checks.values()) if not why else None
    return {"passes": passes, "checks": checks, "min_objects": needed, "undecided_because": why}


# ----------------------------------------------------------------------------------------------
# (a) The reference: the paper's loop, one object at a time, written plainly.


def reference_bbam(
    model: torch.nn.Module, task: ObjectTask, pos: Positives, cfg: BBAMConfig, mean: torch.Tensor
) -> ObjectResult:
    """Eq. 1-3 for one object with the detector's own modules, fp32 and default autograd."""
    image, label = task.image, task.label
    h, w = image.shape[-2:]
    props = pos.proposals
    with torch.no_grad():  # t^c and p^c: the clean image's outputs on the positives
        clean = roi_head_outputs(model, image[None], [props])
    t_deltas, t_probs = clean.deltas[:, label], clean.probs
    pb = pos.pred_boxes.mean(0)
    area = float((pb[2] - pb[0]).clamp(min=0) * (pb[3] - pb[1]).clamp(min=0)) / (h * w)
    stride = cfg.stride_for(area, h, w)
    gh, gw = math.ceil(h / stride), math.ceil(w / stride)
    mask = init_mask(cfg, pos, h, w, gh, gw, image.device).requires_grad_(True)  # ones | the boxes
    opt = torch.optim.Adam([mask], lr=cfg.lr)
    mu = mean.to(image.device).view(3, 1, 1)
    for it in range(cfg.iterations + 1):
        up = F.interpolate(mask[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        perturbed = image * up + mu * (1 - up)
        out = roi_head_outputs(model, perturbed[None], [props])
        box_rows, cls_rows = head_terms(cfg, out.deltas[:, label], out.probs, t_deltas, t_probs, label)
        box_loss, cls_loss = object_means(box_rows), object_means(cls_rows)
        loss = bbam_objective(cfg, mask, box_loss, cls_loss)  # Eq. 5, bbam_lite.attribution.loss
        if it == cfg.iterations:
            break
        opt.zero_grad()
        model.zero_grad(set_to_none=True)
        loss.backward()  # also fills every weight's .grad: the default
        opt.step()
        with torch.no_grad():
            mask.clamp_(0, 1)
    m = mask.detach()
    up = F.interpolate(m[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    return ObjectResult(
        key=task.key,
        mask=m.cpu().numpy(),
        bbam=up.clamp(0, 1).cpu().numpy().astype(np.float32),
        stride=stride,
        n_positives=0 if pos.fallback else len(props),
        n_candidates=pos.n_candidates,
        iou_threshold=pos.iou_threshold,
        fallback=pos.fallback,
        final_box_loss=float(box_loss.detach()),
        final_cls_loss=float(cls_loss.detach()),
    )


def perturbed(task: ObjectTask, seed: int, sigma: float = 1e-6) -> ObjectTask:
    """The task on its image plus N(0, sigma) noise (fixed per object): a rounding-sized change."""
    g = task_generator(seed + 1, task.key)
    noise = torch.randn(task.image.shape, generator=g).to(task.image.device) * sigma
    return replace(task, image=(task.image + noise).clamp(0, 1))


def forced_positives(n: int):
    """The first ``n`` jittered proposals as positives (targets: the clean outputs), for a
    random-init detector, whose classes and boxes would give none; strides from the proposals."""

    @torch.no_grad()
    def select(model: torch.nn.Module, task: ObjectTask, cfg: BBAMConfig) -> Positives:
        h, w = task.image.shape[-2:]
        gen = task_generator(cfg.seed, task.key)
        props = jitter_boxes(task.box, n, cfg.jitter, h, w, gen).to(task.image.device)
        out = roi_head_outputs(model, task.image[None], [props])
        return Positives(props, out.deltas[:, task.label], out.probs, props.clone(), float("nan"), n)

    return select


# ----------------------------------------------------------------------------------------------
# Measurements around the two.


def peak_rss_reset() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


class Phase:
    """Time and peak memory of one timed phase.

    ``seconds`` is wall-clock time on CUDA (synchronised) and this process's CPU time on the CPU:
    the CPU runs are single-threaded on a core other jobs share, where wall time measures the
    neighbours as much as the code; ``wall`` is kept beside it.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds = self.wall = 0.0
        self.peak = 0

    def __enter__(self) -> Phase:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            peak_rss_reset()
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.wall = time.perf_counter() - self.t0
        self.seconds = self.wall if self.device.type == "cuda" else time.process_time() - self.c0
        self.peak = torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else peak_rss()


def matmul_rate(device: torch.device) -> tuple[float, str]:
    """Measured dense matrix-multiply rate (FLOP/s): bf16 on CUDA, fp32 on the CPU."""
    if device.type == "cuda":
        n, dtype, reps = 8192, torch.bfloat16, 20
    else:
        n, dtype, reps = 1024, torch.float32, 10
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(3):
        with Phase(device) as ph:
            for _ in range(reps):
                a @ b
        best = min(best, ph.seconds)
    return 2 * n**3 * reps / best, str(dtype).replace("torch.", "")


def iteration_flops(
    model: torch.nn.Module, task: ObjectTask, pos: Positives, mean: torch.Tensor, weight_grads: bool
) -> int:
    """FLOPs (matrix ops) of one BBAM iteration for one object: forward and backward to the mask
    (and, with ``weight_grads``, to every weight, as the reference does)."""
    from torch.utils.flop_counter import FlopCounterMode

    h, w = task.image.shape[-2:]
    mask = torch.ones(math.ceil(h / 16), math.ceil(w / 16), device=task.image.device, requires_grad=True)
    ctx = frozen(model) if not weight_grads else torch.enable_grad()
    with ctx, FlopCounterMode(display=False) as counter:
        up = F.interpolate(mask[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        x = task.image * up + mean.to(task.image.device).view(3, 1, 1) * (1 - up)
        out = roi_head_outputs(model, x[None], [pos.proposals])
        (out.deltas.abs().sum() + out.probs.abs().sum()).backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def engine_profile(
    model: torch.nn.Module, tasks: list[ObjectTask], cfg: BBAMConfig, mean, options, select, iterations: int
) -> list[dict]:
    """torch.profiler over one engine batch of ``iterations`` iterations: the top operators by self
    CPU time, as shares of the total (what bounds the engine)."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if tasks[0].image.is_cuda else [])
    with profile(activities=acts) as prof:
        explain(model, tasks, replace(cfg, iterations=iterations), mean, len(tasks), options, select)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
    return [{"op": e.key, "calls": e.count, "self_cpu_share": e.self_cpu_time_total / total} for e in top]


def semantic_agreement(ref: list[np.ndarray], eng: list[np.ndarray], n_classes: int) -> float:
    """mIoU of the engine's label maps against the reference's, ignore (255) as a class of its own."""
    conf = ConfusionMatrix(n_classes + 1)
    for r, e in zip(ref, eng, strict=True):
        conf.update(np.where(r == IGNORE, n_classes, r).astype(np.int64), np.where(e == IGNORE, n_classes, e))
    return conf.miou()



def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {torch.get_num_threads()} thread(s), affinity {sorted(os.sched_getaffinity(0))}"


# ----------------------------------------------------------------------------------------------


def load_inputs(args, device: torch.device):
    """Detector, BBAM settings, label settings, records and their images/boxes for the profile."""
    ds = load_dataset("synthetic", args.data, args.split)
    mean = channel_mean(ds)
    if args.profile == "lite":
        det = load_detector(args.detector or default_detector_path(), device, class_names=ds.class_names)
        model, settings = det.model, PseudoLabelSettings(profile="lite", preset=args.preset)
        size = None
    else:
        torch.manual_seed(args.seed)
        model = build_detector(get_profile("paper-r50"), len(ds.class_names) - 1).to(device).eval()
        settings = PseudoLabelSettings(profile="full", preset=args.preset)
        size = tuple(int(v) for v in args.image_size.lower().split("x"))
    cfg = settings.bbam_config()
    if args.iterations is not None:
        cfg = replace(cfg, iterations=args.iterations)
    recs = list(ds)[: args.images]
    items = []  # (record, image, boxes, labels, masks)
    for rec in recs:
        img = rec.load_image()
        masks = rec.load_masks() if rec.has_masks else None
        boxes = rec.boxes.astype(np.float32)
        if size is not None:  # VOC-sized: resize image, boxes and masks
            import cv2

            sy, sx = size[0] / img.shape[0], size[1] / img.shape[1]
            img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
            boxes = boxes * np.array([sx, sy, sx, sy], np.float32)
            if masks is not None:
                masks = np.array(
                    [
                        cv2.resize(m.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
                        > 0
                        for m in masks
                    ]
                )
        items.append((rec, img, boxes, rec.labels.astype(np.int64), masks))
    if args.profile == "paper":
        calibrate_batchnorm(model, [image_tensor(it[1], device) for it in items])
    return ds, model, mean, cfg, settings, items


@torch.no_grad()
def calibrate_batchnorm(model: torch.nn.Module, images: list[torch.Tensor]) -> None:
    """A random-init backbone's BatchNorm layers get the statistics of ``images`` (cumulative
    average over one pass each), so activations stay in a sane range through 50 layers."""
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    for img in images:
        image_list, _ = model.transform([img])
        model.backbone(image_list.tensors)
    for m in bns:
        m.eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", choices=["lite", "paper"], default="lite")
    p.add_argument("--data", type=Path, required=True, help="a synthetic dataset (bbam-lite data synth)")
    p.add_argument("--split", default="train")
    p.add_argument("--images", type=int, default=4, help="first N images of the split")
    p.add_argument("--objects", type=int, default=None, help="at most N objects")
    p.add_argument("--iterations", type=int, default=None, help="override the profile's BBAM iterations")
    p.add_argument("--batch-size", default="8", help="engine objects per batch, or auto (CUDA)")
    p.add_argument(
        "--positives", type=int, default=None, help="forced positives per object (paper default 50)"
    )
    p.add_argument("--image-size", default="375x500", help="paper profile: HxW the images are resized to")
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=DEFAULT_PRESET,
        help=f"BBAM preset (default {DEFAULT_PRESET}; measurements before 2026-11-28 used paper)",
    )
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    p.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto")
    p.add_argument("--compile", default=None, help="torch.compile mode for the engine's backbone")
    p.add_argument("--detector", type=Path, default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--no-labels", action="store_true", help="skip the CRF pseudo labels (maps only)")
    p.add_argument(
        "--noise-floor",
        action="store_true",
        help="also run the reference on each image + N(0, 1e-6) noise (untimed): how far the method "
        "itself moves under rounding-sized changes, to judge the agreement figures against",
    )
    p.add_argument(
        "--trace", type=int, default=0, help="also profile N engine iterations (torch.profiler summary)"
    )
    args = p.parse_args(argv)
    device = torch.device(args.device)

    ds, model, mean, cfg, settings, items = load_inputs(args, device)
    n_forced = args.positives or (50 if args.profile == "paper" else None)
    ref_select = forced_positives(n_forced) if n_forced else prepare  # the detector's own modules
    eng_select = forced_positives(n_forced) if n_forced else None  # None: the engine's own (explain)
    engine_model = copy.deepcopy(model)  # the engine may change the backbone's memory format
    options = EngineOptions(
        precision=args.precision,
        channels_last=None if args.channels_last == "auto" else args.channels_last == "on",
        compile=args.compile,
    ).resolve(device)
    batch_size = args.batch_size if args.batch_size == "auto" else int(args.batch_size)
    tasks = [
        ObjectTask(image_tensor(img, device), torch.as_tensor(b), int(c), key=(rec.image_id, k))
        for rec, img, boxes, labels, _ in items
        for k, (b, c) in enumerate(zip(boxes, labels, strict=True))
    ][: args.objects]
    print(
        f"{args.profile}: {len(tasks)} objects from {len(items)} images {tuple(tasks[0].image.shape[-2:])}, "
        f"{cfg.iterations} iterations, device {device}, engine {options}",
        flush=True,
    )

    # Warm-up (lazy compilation, allocator, caches) on the first object, 2 iterations, untimed.
    warm = replace(cfg, iterations=2)
    with frozen(model):
        pos0 = ref_select(model, tasks[0], warm)
    reference_bbam(model, tasks[0], pos0, warm, mean)
    explain(engine_model, tasks[:1], warm, mean, batch_size=1, engine=options, select=eng_select)

    if batch_size == "auto":
        from bbam_lite.attribution.bbam import probe_batch_size

        batch_size = probe_batch_size(engine_model, tasks[0], cfg, mean, options)
        print(f"auto batch size: {batch_size}", flush=True)
    ref_results: dict = {}
    eng_results: dict = {}
    noisy: dict = {}
    ref_time = eng_time = ref_wall = eng_wall = 0.0
    ref_peak = eng_peak = 0
    batches = [tasks[i : i + batch_size] for i in range(0, len(tasks), batch_size)]
    for bi, batch in enumerate(batches):
        for side in ("ref", "eng") if bi % 2 == 0 else ("eng", "ref"):
            if side == "ref":
                for t in batch:
                    with Phase(device) as ph:
                        with frozen(model):
                            pos = ref_select(model, t, cfg)
                        ref_results[t.key] = reference_bbam(model, t, pos, cfg, mean)
                    ref_time += ph.seconds
                    ref_wall += ph.wall
                    ref_peak = max(ref_peak, ph.peak)
                    if args.noise_floor:  # untimed: the reference on the image + N(0, 1e-6) noise
                        noisy[t.key] = reference_bbam(model, perturbed(t, args.seed), pos, cfg, mean)
            else:
                with Phase(device) as ph:
                    res = explain(
                        engine_model,
                        batch,
                        cfg,
                        mean,
                        batch_size=batch_size,
                        engine=options,
                        select=eng_select,
                    )
                eng_time += ph.seconds
                eng_wall += ph.wall
                eng_peak = max(eng_peak, ph.peak)
                eng_results.update({r.key: r for r in res})
        done = sum(len(b) for b in batches[: bi + 1])
        print(
            f"  {done}/{len(tasks)} objects: reference {ref_time / done:.2f} s/object, "
            f"engine {eng_time / done:.2f} s/object",
            flush=True,
        )
    n = len(tasks)
    keys = [t.key for t in tasks]
    map_ious = [mask_iou(ref_results[k].bbam > 0.5, eng_results[k].bbam > 0.5) for k in keys]
    sets = {"reference": ref_results, "engine": eng_results}
    noise_stats: dict = {}
    if noisy:
        sets["reference_noisy"] = noisy
        floor_ious = [mask_iou(ref_results[k].bbam > 0.5, noisy[k].bbam > 0.5) for k in keys]
        noise_stats = {
            "noise_floor_map_iou": float(np.mean(floor_ious)),
            "noise_floor_map_iou_min": float(np.min(floor_ious)),
            "map_iou_per_object": [round(v, 4) for v in map_ious],
            "noise_floor_map_iou_per_object": [round(v, 4) for v in floor_ious],
        }

    # Pseudo labels from each set of maps, through the package's own label pipeline.
    label_stats: dict = {}
    if not args.no_labels:
        labeler = PseudoLabeler(settings, None, mean)
        sems: dict[str, list[np.ndarray]] = {name: [] for name in sets}
        quality = {name: LabelQuality(len(ds.class_names)) for name in sets}
        for rec, img, boxes, labels, masks in items:
            ks = [(rec.image_id, k) for k in range(len(boxes)) if (rec.image_id, k) in ref_results]
            if len(ks) != len(boxes):
                continue  # --objects cut this image
            item = ImageBoxes(rec, img, boxes, labels, np.ones(len(boxes), np.float32))
            h, w = img.shape[:2]
            for name, results in sets.items():
                insts = labeler.method.from_maps(settings, item, [results[k] for k in ks]).instances
                sem, visible = labeler.semantic(insts, h, w)
                sems[name].append(sem)
                if masks is not None:
                    quality[name].add(masks, labels, sem, visible, [i.label for i in insts])
        if sems["reference"]:
            n_cls = len(ds.class_names)
            label_stats = {
                "agreement_label_miou": semantic_agreement(sems["reference"], sems["engine"], n_cls),
                "label_images": len(sems["reference"]),
                **{f"{name}_label_miou_gt": quality[name].result()["miou"] for name in sets},
            }
            label_stats["label_miou_gap_points"] = 100 * (
                label_stats["engine_label_miou_gt"] - label_stats["reference_label_miou_gt"]
            )
            if noisy:
                label_stats["noise_floor_label_miou"] = semantic_agreement(
                    sems["reference"], sems["reference_noisy"], n_cls
                )
                label_stats["noise_floor_miou_gap_points"] = 100 * (
                    label_stats["reference_noisy_label_miou_gt"] - label_stats["reference_label_miou_gt"]
                )

    # The floor: FLOPs of one iteration x iterations / measured matrix rate.
    with frozen(model):
        pos0 = ref_select(model, tasks[0], cfg)
    flops = iteration_flops(model, tasks[0], pos0, mean, weight_grads=False)
    flops_ref = iteration_flops(model, tasks[0], pos0, mean, weight_grads=True)
    rate, rate_dtype = matmul_rate(device)
    floor = flops * cfg.iterations / rate
    eng_s = eng_time / n
    # what a real run does; --iterations only shortens the timing (per-object setup: a few percent)
    profile_iterations = settings.bbam_config().iterations
    per_object_scale = profile_iterations / cfg.iterations
    result = {
        "profile": args.profile,
        "preset": args.preset,
        "date": datetime.date.today().isoformat(),
        "commit": git_commit(),
        "device": str(device),
        "hardware": hardware(device),
        "torch": torch.__version__,
        "engine_options": asdict(options),
        "batch_size": batch_size,
        "images": len(items),
        "objects": n,
        "image_size": list(tasks[0].image.shape[-2:]),
        "iterations": cfg.iterations,
        "positives": f"forced: first {n_forced} jittered proposals"
        if n_forced
        else "Eq. 3 (select_positives)",
        "mean_positives": float(np.mean([r.n_positives or 1 for r in eng_results.values()])),
        "timing_clock": "wall clock, synchronised" if device.type == "cuda" else "process CPU time",
        "reference_s_per_object": ref_time / n,
        "engine_s_per_object": eng_s,
        "speedup": ref_time / eng_time,
        "reference_wall_s_per_object": ref_wall / n,
        "engine_wall_s_per_object": eng_wall / n,
        "wall_speedup": ref_wall / eng_wall,
        "peak_memory_bytes": eng_peak,
        "reference_peak_memory_bytes": ref_peak,
        "peak_memory_kind": "CUDA allocator peak"
        if device.type == "cuda"
        else "process peak RSS (VmHWM), per phase",
        "flops_per_iteration": flops,
        "reference_flops_per_iteration": flops_ref,
        "matmul_flops_per_s": rate,
        "matmul_dtype": rate_dtype,
        "floor_s_per_object": floor,
        "engine_over_floor": eng_s / floor if floor > 0 else None,
        "agreement_map_iou": float(np.mean(map_ious)),
        "agreement_map_iou_min": float(np.min(map_ious)),
        **noise_stats,
        **label_stats,
        "profile_iterations": profile_iterations,
        "engine_s_per_object_at_profile_iterations": eng_s * per_object_scale,
        "floor_s_per_object_at_profile_iterations": floor * per_object_scale,
        "projected_voc_train_aug_hours": eng_s * per_object_scale * VOC_TRAIN_AUG_OBJECTS / 3600,
        "engine_faults": sum(r.failed for r in eng_results.values()),
    }
    result["agreement_verdict"] = agreement_verdict(result)
    if args.trace:
        result["engine_profile"] = engine_profile(
            engine_model, tasks[:batch_size], cfg, mean, options, eng_select, args.trace
        )
        print("engine profile (self CPU time share):")
        for row in result["engine_profile"]:
            print(f"  {row['self_cpu_share']:6.1%}  {row['op']} ({row['calls']} calls)")
    rows = [
        ("reference s/object", f"{result['reference_s_per_object']:.3f}"),
        ("engine s/object", f"{eng_s:.3f}"),
        (
            "speedup",
            f"{result['speedup']:.2f}x ({result['timing_clock']}; wall clock {result['wall_speedup']:.2f}x)",
        ),
        (
            "floor s/object",
            f"{floor:.3f} ({flops / 1e9:.2f} GFLOP/iteration at {rate / 1e9:.0f} GFLOP/s {rate_dtype})",
        ),
        ("engine / floor", f"{result['engine_over_floor']:.1f}x"),
        ("peak memory (engine / reference)", f"{eng_peak / 2**20:.0f} / {ref_peak / 2**20:.0f} MiB"),
        (
            "agreement: map IoU (mean / min)",
            f"{result['agreement_map_iou']:.3f} / {result['agreement_map_iou_min']:.3f}",
        ),
    ]
    if noise_stats:
        rows.append(
            (
                "noise floor: reference vs itself, image + 1e-6 noise (map IoU mean / min)",
                f"{noise_stats['noise_floor_map_iou']:.3f} / {noise_stats['noise_floor_map_iou_min']:.3f}",
            )
        )
    if label_stats.get("noise_floor_label_miou") is not None:
        rows.append(
            (
                "noise floor: label mIoU, gap vs GT",
                f"{label_stats['noise_floor_label_miou']:.3f}, "
                f"{label_stats['noise_floor_miou_gap_points']:+.2f} points",
            )
        )
    if label_stats:
        rows += [
            ("agreement: label mIoU", f"{label_stats['agreement_label_miou']:.3f}"),
            (
                "label mIoU vs GT (reference / engine)",
                f"{label_stats['reference_label_miou_gt']:.4f} / {label_stats['engine_label_miou_gt']:.4f}",
            ),
        ]
    verdict = result["agreement_verdict"]
    rows.append(
        (
            "engine agrees within the noise floor",
            {True: "yes", False: "NO"}.get(
                verdict["passes"], "undecided: " + "; ".join(verdict["undecided_because"])
            )
            + (
                f" ({', '.join(f'{k} {v}' for k, v in verdict['checks'].items())})"
                if verdict["checks"]
                else ""
            ),
        )
    )
    rows.append(
        (
            f"projected VOC train_aug (29,630 objects, {profile_iterations} iterations each)",
            f"{result['projected_voc_train_aug_hours']:.1f} h",
        )
    )
    width = max(len(r[0]) for r in rows)
    print("\n".join(f"{a:<{width}}  {b}" for a, b in rows))
    if args.json:
        atomic_write_json(args.json, result, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
