"""The context crop against the exact engine, on the same small objects (issue 16, item 5).

    python scripts/bench_crop.py --out runs/crop [--profile lite|paper] [--images 30] [--json RESULT.json]

Objects of the default synthetic set whose box covers less than ``crop_max_area`` of the image are
explained three ways, with the inputs of ``scripts/bench_bbam.py`` (lite: the shipped detector at
160 px; paper: a ResNet-50-FPN at 800 px on images resized to VOC's size) and the default preset:
the exact engine on the full image, the same on the image plus N(0, 1e-6) noise (BBAM's own noise
floor: it amplifies rounding), and the context crop. Reported per size bin (box area / image
area): the engine time per object (process CPU time on the CPU, synchronised wall time on CUDA),
the speed-up, the agreement of each object's pseudo label (``PostProcess`` of the default preset)
with the exact engine's, beside the noise floor's, and the mean IoU of the labels with the true
masks.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import torch

from bbam_lite.attribution.bbam import ObjectTask, explain, task_generator
from bbam_lite.data.synthetic import SynthSettings, ensure_synthetic
from bbam_lite.detector.evaluate import image_tensor
from bbam_lite.metrics import mask_iou
from bbam_lite.pseudo.postprocess import PostProcess
from bbam_lite.pseudo.settings import DEFAULT_PRESET
from bbam_lite.utils.io import atomic_write_json
from bbam_lite.utils.run_folder import hardware

BINS = ((0.0, 0.02), (0.02, 0.05), (0.05, 0.1))


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return time.process_time()


def _bench():
    """scripts/bench_bbam.py as a module: its inputs (profiles, VOC-sized images) are reused here."""
    spec = importlib.util.spec_from_file_location("bench_bbam", Path(__file__).with_name("bench_bbam.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for the generated data")
    p.add_argument("--profile", choices=["lite", "paper"], default="lite")
    p.add_argument("--images", type=int, default=30, help="first N training images of the default set")
    p.add_argument("--image-size", default="375x500", help="paper profile: HxW the images are resized to")
    p.add_argument("--iterations", type=int, default=None, help="override the profile's BBAM iterations")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--margin", type=float, default=None, help="crop_margin (default: BBAMConfig's)")
    p.add_argument("--min-context", type=float, default=None, help="crop_min_context, detector-input px")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    args.data = ensure_synthetic(
        args.out / "data", SynthSettings(n_train=args.images, n_val=0), progress=False
    )
    args.split, args.detector, args.preset, args.seed = "train", None, DEFAULT_PRESET, 0
    _, det, mean, cfg, settings, items = _bench().load_inputs(args, device)
    overrides = {"crop_margin": args.margin, "crop_min_context": args.min_context}
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    post = PostProcess.of(settings)
    objects = []
    for rec, image, boxes, labels, masks in items:
        h, w = image.shape[:2]
        tensor = image_tensor(image, device)
        for k, (b, c) in enumerate(zip(boxes, labels, strict=True)):
            area = float((b[2] - b[0]) * (b[3] - b[1])) / (h * w)
            if area < cfg.crop_max_area:
                task = ObjectTask(tensor, torch.as_tensor(b), int(c), (rec.image_id, k))
                objects.append({"task": task, "image": image, "gt": masks[k], "box": b, "area": area})
    print(
        f"{len(objects)} objects under {cfg.crop_max_area:.0%} of the image in {len(items)} images; "
        f"{args.profile} profile, {cfg.preset} preset, {cfg.iterations} iterations"
    )

    def noisy(task: ObjectTask) -> ObjectTask:
        g = task_generator(cfg.seed + 1, task.key)
        noise = torch.randn(task.image.shape, generator=g).to(device) * 1e-6
        return replace(task, image=(task.image + noise).clamp(0, 1))

    rows = []
    for lo, hi in BINS:
        group = [o for o in objects if lo <= o["area"] < hi]
        if not group:
            continue
        tasks = [o["task"] for o in group]
        runs, seconds = {}, {}
        for name, run_cfg, run_tasks in (
            ("exact", cfg, tasks),
            ("noise", cfg, [noisy(t) for t in tasks]),
            ("crop", replace(cfg, context_crop=True), tasks),
        ):
            t0 = _clock(device)
            runs[name] = explain(det, run_tasks, run_cfg, mean, batch_size=args.batch_size)
            seconds[name] = (_clock(device) - t0) / len(tasks)
        labels = {
            name: [
                post.label(o["image"], r.bbam, o["box"], r.stride, failed=r.failed)[0]
                for o, r in zip(group, res, strict=True)
            ]
            for name, res in runs.items()
        }
        row = {
            "area_from": lo,
            "area_to": hi,
            "objects": len(group),
            "exact_s_per_object": seconds["exact"],
            "crop_s_per_object": seconds["crop"],
            "speedup": seconds["exact"] / seconds["crop"],
            "label_agreement_crop": float(
                np.mean([mask_iou(a, b) for a, b in zip(labels["exact"], labels["crop"], strict=True)])
            ),
            "label_agreement_noise_floor": float(
                np.mean([mask_iou(a, b) for a, b in zip(labels["exact"], labels["noise"], strict=True)])
            ),
        }
        for name in ("exact", "crop"):
            ious = [mask_iou(f, o["gt"]) for f, o in zip(labels[name], group, strict=True)]
            row[f"label_iou_gt_{name}"] = float(np.mean(ious))
        row["label_iou_gap_points"] = 100 * (row["label_iou_gt_crop"] - row["label_iou_gt_exact"])
        rows.append(row)
        print(
            f"area [{lo:.2f}, {hi:.2f}): {len(group)} objects, exact {seconds['exact']:.2f} s/object, "
            f"crop {seconds['crop']:.2f} ({row['speedup']:.2f}x); label agreement with the exact engine "
            f"{row['label_agreement_crop']:.3f} (noise floor {row['label_agreement_noise_floor']:.3f}); "
            f"IoU with the true masks exact {row['label_iou_gt_exact']:.3f}, "
            f"crop {row['label_iou_gt_crop']:.3f}"
        )
    keys = ("exact_s_per_object", "crop_s_per_object")
    total = {k: sum(r[k] * r["objects"] for r in rows) for k in keys}
    result = {
        "date": date.today().isoformat(),
        "hardware": hardware(),
        "device": str(device),
        "profile": args.profile,
        "images": len(items),
        "objects": len(objects),
        "preset": cfg.preset,
        "iterations": cfg.iterations,
        "crop": {k: getattr(cfg, k) for k in ("crop_margin", "crop_min_context", "crop_max_area")},
        "batch_size": args.batch_size,
        "bins": rows,
        "speedup_all": total["exact_s_per_object"] / total["crop_s_per_object"] if rows else None,
    }
    if args.json:
        atomic_write_json(args.json, result, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
