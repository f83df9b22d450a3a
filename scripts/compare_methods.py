"""Pseudo-label quality of every registered method across seeds and difficulty levels.

    python scripts/compare_methods.py --out runs/compare [--seeds 0 1 2] [--difficulties easy medium hard]
                                      [--images 16] [--methods box grabcut bbam bbam_paper ...]
                                      [--json results.json]

The methods (default: every variant of :func:`bbam_lite.pseudo.methods.variants` that the demo shows)
come from the method registry.

For each (difficulty, seed) a fresh synthetic training subset is generated (the first N training
images of that seed and difficulty), every method labels it with ground-truth boxes, using the
shipped detector for BBAM, and the mIoU and mean instance IoU are collected. Resumable: finished
(difficulty, seed, method) runs are read back, not recomputed; the JSON is rewritten after each
(difficulty, seed). Prints Markdown tables: mean over seeds with each seed's value.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

import numpy as np

from bbam_lite.analysis import tables
from bbam_lite.data.synthetic import SynthSettings, ensure_synthetic, parse_difficulty, read_synthetic
from bbam_lite.detector.model import load_detector
from bbam_lite.experiments import compare_methods, demo_variants
from bbam_lite.pseudo.methods import variants
from bbam_lite.utils.io import atomic_write_json
from bbam_lite.utils.run_folder import hardware
from bbam_lite.weights import default_detector_path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--difficulties", nargs="+", default=["easy", "medium", "hard"])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--methods", nargs="+", default=list(demo_variants()), choices=sorted(variants()))
    parser.add_argument("--detector", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    t0 = time.perf_counter()
    methods = tuple(args.methods)
    rows: list[dict] = []
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
                train, det, args.out / f"d{d}-s{seed}" / "labels", methods, "lite", progress=not args.quiet
            )
            for m in methods:
                rows.append(
                    {
                        "difficulty": diff,
                        "d": d,
                        "seed": seed,
                        "method": m,
                        "miou": q[m]["miou"],
                        "miou_ignore_as_background": q[m]["miou_ignore_as_background"],
                        "mean_instance_iou": q[m]["mean_instance_iou"],
                        "ignore_fraction": q[m]["ignore_fraction"],
                        "objects": q[m]["objects"],
                        "fallbacks": q[m]["fallbacks"],
                    }
                )
            tables = {
                key: markdown_table(rows, methods, key)
                for key in ("miou", "miou_ignore_as_background", "mean_instance_iou")
            }
            result = {
                "rows": rows,
                "tables_markdown": tables,
                "images_per_run": args.images,
                "seeds": args.seeds,
                "difficulties": args.difficulties,
                "methods": list(methods),
                "hardware": hardware(),
                "date": date.today().isoformat(),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            if args.json:
                atomic_write_json(args.json, result, indent=2)
    for key, table in tables.items():
        print(f"\n{key} (mean over seeds; each seed in brackets)\n{table}")


def markdown_table(rows: list[dict], methods: tuple[str, ...], key: str) -> str:
    """Difficulty x method: the mean of ``key`` over seeds, each seed's value in brackets, best in bold."""
    table = []
    for diff in dict.fromkeys(r["difficulty"] for r in rows):
        vals = {m: [r[key] for r in rows if r["difficulty"] == diff and r["method"] == m] for m in methods}
        best = max(methods, key=lambda m: np.mean(vals[m]))
        row = {"difficulty": diff}
        for m in methods:
            cell = f"{np.mean(vals[m]):.3f}"
            seeds = ", ".join(f"{x:.3f}" for x in vals[m])
            row[m] = (f"**{cell}**" if m == best else cell) + f" ({seeds})"
        table.append(row)
    return tables.markdown_table(table, [(c, c, "") for c in ("difficulty", *methods)])


if __name__ == "__main__":
    main()
