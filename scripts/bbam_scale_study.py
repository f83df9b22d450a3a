"""Why BBAM masks collapse at lambda = 0.007 on small images, and what fixes it.

    python scripts/bbam_scale_study.py --data DIR --out study.json [--detector PATH ...] [--images 8]

Runs raw BBAM (no CRF, no thresholds) on the same objects under settings that separate the three
suspects named in calibration.md: the scale of the L1 term (the paper's strides in pixels on a
160-px image give few mask cells; strides scaled with the image give the paper's cell count), the
initialisation (ones vs the authors' union of regressed boxes), and the detector's strength (give
several checkpoints). Writes per-object rows and a summary per (detector, setting).
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from bbam_lite.attribution.bbam import BBAMConfig, ObjectTask, explain, get_preset
from bbam_lite.data.images import image_tensor
from bbam_lite.data.records import BoxDataset
from bbam_lite.data.stats import channel_mean
from bbam_lite.data.synthetic import read_synthetic
from bbam_lite.detector.model import load_detector
from bbam_lite.metrics import mask_iou
from bbam_lite.pseudo.labels import box_region
from bbam_lite.pseudo.settings import LITE_BBAM
from bbam_lite.utils.io import atomic_write_json
from bbam_lite.utils.run_folder import hardware


def bbam_object_study(
    dataset: BoxDataset,
    detector: torch.nn.Module,
    configs: dict[str, BBAMConfig],
    n_images: int = 8,
    device: str = "cpu",
    batch_size: int = 8,
) -> list[dict]:
    """Per-object statistics of raw BBAMs under several settings (no CRF, no thresholds):
    mean map inside / outside the box, IoU with the ground-truth mask at 0.5, whether the map
    collapsed (max < 0.5), positives and final head losses. One row per (setting, object)."""
    mean = channel_mean(dataset)
    recs = list(dataset)[:n_images]
    tasks, truth = [], {}
    for rec in recs:
        img = image_tensor(rec.load_image(), device)
        masks = rec.load_masks()
        for k, (b, c) in enumerate(zip(rec.boxes, rec.labels, strict=True)):
            tasks.append(ObjectTask(img, torch.as_tensor(b), int(c), key=(rec.image_id, k)))
            truth[(rec.image_id, k)] = (masks[k], b)
    rows = []
    for name, cfg in configs.items():
        for res in explain(detector, tasks, cfg, mean, batch_size=batch_size):
            gt, box = truth[res.key]
            inside = box_region(box, *gt.shape)
            rows.append(
                {
                    "setting": name,
                    "image_id": res.key[0],
                    "object": res.key[1],
                    "area_ratio": float(inside.mean()),
                    "stride": res.stride,
                    "cells": int(res.mask.size),
                    "n_positives": res.n_positives,
                    "fallback": res.fallback,
                    "mean_in_box": float(res.bbam[inside].mean()),
                    "mean_outside": float(res.bbam[~inside].mean()),
                    "max": float(res.bbam.max()),
                    "collapsed": bool(res.bbam.max() < 0.5),
                    "iou_at_0.5": mask_iou(res.bbam > 0.5, gt),
                    "box_loss": res.final_box_loss,
                    "cls_loss": res.final_cls_loss,
                }
            )
    return rows


def settings(iterations: int) -> dict:
    common = {k: v for k, v in LITE_BBAM.items() if k != "stride_reference_side"}
    common["iterations"] = iterations
    return {
        "paper-px, init ones": get_preset("paper", **common),
        "paper-px, init boxes": get_preset("paper", init="boxes", **common),
        "scaled, init ones": get_preset("paper", stride_reference_side=375.0, **common),
        "scaled, init boxes": get_preset("paper", stride_reference_side=375.0, init="boxes", **common),
        "scaled, init ones, lambda 0.001": get_preset(
            "paper", stride_reference_side=375.0, lam=0.001, **common
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--detector", type=Path, nargs="+", required=True)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=LITE_BBAM["iterations"])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    ds = read_synthetic(args.data, args.split)
    t0 = time.perf_counter()
    rows, summary = [], []
    for path in args.detector:
        det = load_detector(path, class_names=ds.class_names)
        ap50 = det.meta.get("val_metrics", {}).get("box_ap50")
        for r in bbam_object_study(ds, det.model, settings(args.iterations), n_images=args.images):
            rows.append({"detector": str(path), "detector_ap50": ap50, **r})
        for name in settings(args.iterations):
            sel = [r for r in rows if r["detector"] == str(path) and r["setting"] == name]
            summary.append(
                {
                    "detector": path.name,
                    "detector_ap50": ap50,
                    "setting": name,
                    "objects": len(sel),
                    "mean_cells": float(np.mean([r["cells"] for r in sel])),
                    "collapsed": float(np.mean([r["collapsed"] for r in sel])),
                    "mean_in_box": float(np.mean([r["mean_in_box"] for r in sel])),
                    "iou_at_0.5": float(np.mean([r["iou_at_0.5"] for r in sel])),
                    "fallbacks": int(sum(bool(r["fallback"]) for r in sel)),
                }
            )
            s = summary[-1]
            print(
                f"{path.name:>28} | {name:<32} | cells {s['mean_cells']:6.1f} | "
                f"collapsed {s['collapsed']:.2f} | "
                f"in-box {s['mean_in_box']:.2f} | IoU {s['iou_at_0.5']:.3f} | fallbacks {s['fallbacks']}"
            )
    atomic_write_json(
        args.out,
        {
            "summary": summary,
            "rows": rows,
            "hardware": hardware(),
            "date": date.today().isoformat(),
            "seconds": round(time.perf_counter() - t0, 1),
            "images": args.images,
            "iterations": args.iterations,
        },
        indent=2,
    )


if __name__ == "__main__":
    main()
