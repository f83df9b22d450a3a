"""Pseudo-label quality of Box, Box + CRF, GrabCut and BBAM across seeds and difficulty levels.

    python scripts/compare_methods.py --out runs/compare [--seeds 0 1 2] [--difficulties easy medium hard]
                                      [--images 16] [--json results.json]

For each (difficulty, seed) a fresh synthetic training subset is generated (the first N training
images of that seed and difficulty), all four methods label it with ground-truth boxes, using the
shipped detector for BBAM, and the mIoU and mean instance IoU are collected. Resumable: finished
(difficulty, seed, method) runs are read back, not recomputed. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

import numpy as np

from bbam_lite.data.synthetic import SynthSettings, ensure_synthetic, parse_difficulty, read_synthetic
from bbam_lite.detector.model import load_detector
from bbam_lite.experiments import compare_methods, hardware
from bbam_lite.pseudo.generate import METHODS
from bbam_lite.utils.io import atomic_write_json
from bbam_lite.weights import default_detector_path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--difficulties", nargs="+", default=["easy", "medium", "hard"])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--detector", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    t0 = time.perf_counter()
    rows = []
    for diff in args.difficulties:
        d = parse_difficulty(diff)
        for seed in args.seeds:
            root = ensure_synthetic(
                args.out / f"d{d}-s{seed}" / "data",
                SynthSettings(n_train=args.images, n_val=0, seed=seed, difficulty=d),
                progress=False,
            )
            train = read_synthetic(root, "train")
            det = load_detector(args.detector or default_detector_path(), class_names=train.class_names)
            q = compare_methods(
                train, det, args.out / f"d{d}-s{seed}" / "labels", METHODS, "lite", progress=not args.quiet
            )
            for m in METHODS:
                rows.append(
                    {
                        "difficulty": diff,
                        "d": d,
                        "seed": seed,
                        "method": m,
                        "miou": q[m]["miou"],
                        "mean_instance_iou": q[m]["mean_instance_iou"],
                        "ignore_fraction": q[m]["ignore_fraction"],
                        "objects": q[m]["objects"],
                        "fallbacks": q[m]["fallbacks"],
                    }
                )
    table = ["| difficulty | " + " | ".join(METHODS) + " |", "|---|" + "---|" * len(METHODS)]
    for diff in args.difficulties:
        cells = []
        for m in METHODS:
            v = [r["miou"] for r in rows if r["difficulty"] == diff and r["method"] == m]
            cells.append(f"{np.mean(v):.3f} ({', '.join(f'{x:.3f}' for x in v)})")
        table.append(f"| {diff} | " + " | ".join(cells) + " |")
    print("\n".join(table))
    result = {
        "rows": rows,
        "table_markdown": "\n".join(table),
        "images_per_run": args.images,
        "seeds": args.seeds,
        "hardware": hardware(),
        "date": date.today().isoformat(),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if args.json:
        atomic_write_json(args.json, result, indent=2)


if __name__ == "__main__":
    main()
