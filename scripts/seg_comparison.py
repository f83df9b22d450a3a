"""Command-line front end of :mod:`bbam_lite.experiments.networks` (the paper's tables at any scale).

    python scripts/seg_comparison.py --data DATA --out OUT \\
        --labels full=gt box=L/box box_crf=L/box_crf grabcut=L/grabcut bbam=L/bbam bbam_refined=L/bbam-mcg \\
        --notrain grabcut_notrain_gt=L/val-grabcut-gt grabcut_notrain_det=L/val-grabcut-det \\
        [--tasks semantic instance] [--profile lite] [--limit N] [--val-limit N] \\
        [--semantic-iterations N] [--instance-iterations N] [--crf semantic instance]
        [--json RESULT.json] [--markdown TABLE.md]

``--labels NAME=FOLDER`` trains both networks on a labels folder (``gt``: full supervision);
``--notrain NAME=FOLDER`` scores a labels folder made on the val split directly. Rows not given are
left out. Resumable: rerun the same command after an interruption.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bbam_lite.experiments.networks import ROWS, ComparisonSettings, compare, main_rows, markdown_table
from bbam_lite.utils.io import atomic_path, atomic_write_json


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or name not in ROWS:
            raise SystemExit(f"{flag} {item!r}: expected NAME=FOLDER with NAME one of {sorted(ROWS)}")
        out[name] = folder
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--labels", nargs="*", default=[], help="NAME=FOLDER (FOLDER gt: ground truth)")
    parser.add_argument("--notrain", nargs="*", default=[], help="NAME=FOLDER labels on the val split")
    parser.add_argument(
        "--tasks", nargs="+", default=["semantic", "instance"], choices=["semantic", "instance"]
    )
    parser.add_argument("--profile", default="lite")
    parser.add_argument("--limit", type=int, default=None, help="first N training images")
    parser.add_argument("--val-limit", type=int, default=None, help="first N val images")
    parser.add_argument("--semantic-iterations", type=int, default=None)
    parser.add_argument("--instance-iterations", type=int, default=None)
    parser.add_argument(
        "--crf", nargs="*", default=[], choices=["semantic", "instance"], help="tasks also scored after a CRF"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--note", default=None, help="stored with the results: how they were made")
    parser.add_argument("--verbose", action="store_true", help="progress bars")
    args = parser.parse_args()

    settings = ComparisonSettings(
        data=args.data,
        out=args.out,
        tasks=tuple(args.tasks),
        profile=args.profile,
        limit=args.limit,
        val_limit=args.val_limit,
        semantic_iterations=args.semantic_iterations,
        instance_iterations=args.instance_iterations,
        crf=tuple(args.crf),
        seed=args.seed,
        quiet=not args.verbose,
    )
    rows = main_rows(_pairs(args.labels, "--labels"), _pairs(args.notrain, "--notrain"))
    result = compare(settings, rows)
    if args.note:
        result = {"note": args.note, **result}
    table = markdown_table(result)
    print(table)
    if args.json:
        atomic_write_json(args.json, result, indent=2)
    if args.markdown:
        with atomic_path(args.markdown) as tmp:
            tmp.write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
