"""``bbam-lite train-seg`` and ``bbam-lite evaluate``: segmentation networks on pseudo labels.

The commands parse their arguments, call :mod:`bbam_lite.segment.runs` and print one line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bbam_lite.segment.runs import INIT_AUTO, evaluate_labels_folder, evaluate_run, train_network


def cmd_train_seg(args: argparse.Namespace) -> int:
    summary = train_network(
        args.data,
        args.labels,
        args.task,
        args.out,
        dataset=args.dataset,
        profile=args.profile,
        train_split=args.train_split,
        val_split=args.val_split,
        limit=args.limit,
        iterations=args.iterations,
        lr=args.lr,
        batch_size=args.batch_size,
        eval_images=args.eval_images,
        grow=args.grow,
        grow_start=args.grow_start,
        grow_theta_fg=args.grow_theta_fg,
        grow_theta_bg=args.grow_theta_bg,
        init=args.init,
        device=args.device,
        seed=args.seed,
        progress=not args.quiet,
    )
    last = summary["log"][-1] if summary["log"] else {}
    shown = ", ".join(f"{k} {last[k]:.3f}" for k in ("miou", "ap50", "ap", "abo") if k in last)
    print(
        f"{args.out}/model.pt: {args.task}, {summary['train_images']} training images, "
        f"{summary['iterations']} iterations, {summary['train_seconds'] / 60:.1f} min"
        + (f"; {shown} on {last['val_images']} val images" if shown else "")
    )
    return 0


def _format(task: str, m: dict) -> str:
    keys = ("miou",) if task == "semantic" else ("ap25", "ap50", "ap70", "ap75", "ap", "abo")
    return " ".join(f"{k} {m[k]:.3f}" if m.get(k) is not None else f"{k} -" for k in keys)


def cmd_evaluate(args: argparse.Namespace) -> int:
    if (args.run is None) == (args.labels is None):
        raise ValueError(
            "give exactly one of --run RUN (a trained network) or --labels LABELS (labels as predictions)"
        )
    if args.labels is not None:
        if args.data is None:
            raise ValueError(
                "--labels needs --data (the dataset whose ground truth the labels are scored against)"
            )
        split = args.split or "val"
        out = args.json or args.labels / f"metrics-{split}.json"
        result = evaluate_labels_folder(
            args.labels,
            args.data,
            dataset=args.dataset,
            split=split,
            limit=args.limit,
            json_path=out,
            progress=not args.quiet,
        )
        print(
            f"{args.labels} as predictions on {result['instance']['images']} {split} images: "
            f"{_format('semantic', result['semantic'])} {_format('instance', result['instance'])}; "
            f"wrote {out}"
        )
        return 0

    out = args.json or args.run / "metrics.json"
    result = evaluate_run(
        args.run,
        data=args.data,
        dataset=args.dataset,
        split=args.split,
        crf=args.crf,
        limit=args.limit,
        device=args.device,
        json_path=out,
        progress=not args.quiet,
    )
    line = _format(result["task"], result["metrics"])
    if result["crf"]:
        line += f"; with CRF: {_format(result['task'], result['crf'])}"
    print(f"{args.run}: {line} on {result['images']} images; wrote {out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train-seg`` and ``evaluate`` to the ``bbam-lite`` command."""
    from bbam_lite.data.arguments import add_data_args, add_dataset_arg

    tr = subparsers.add_parser(
        "train-seg",
        help="train DeepLab-v2 (semantic) or Mask R-CNN (instance) on pseudo labels (resumable)",
        description="Train a segmentation network on a labels folder (bbam-lite pseudo-labels) or on "
        "the ground truth (--labels gt). Rerun the same command to resume; writes OUT/model.pt.",
    )
    add_data_args(tr)
    tr.add_argument("--task", required=True, choices=["semantic", "instance"])
    tr.add_argument(
        "--labels",
        required=True,
        help="labels folder from 'bbam-lite pseudo-labels', or gt (full supervision)",
    )
    tr.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, model.pt)")
    tr.add_argument("--profile", default="lite", help="lite (CPU, default) | smoke | paper (or full)")
    tr.add_argument("--train-split", default="train")
    tr.add_argument("--val-split", default="val")
    tr.add_argument("--limit", type=int, default=None, help="only the first N training images")
    tr.add_argument("--iterations", type=int, default=None, help="override the profile's iteration count")
    tr.add_argument("--lr", type=float, default=None, help="override the profile's base learning rate")
    tr.add_argument("--batch-size", type=int, default=None, help="override the profile's batch size")
    tr.add_argument(
        "--eval-images",
        type=int,
        default=None,
        help="val images scored during training (default: the profile's; 0: none, use 'evaluate')",
    )
    tr.add_argument(
        "--grow",
        choices=["on", "off"],
        default=None,
        help="seed growing into ignored pixels (default: on for instance, off for semantic)",
    )
    tr.add_argument(
        "--grow-start", type=float, default=None, help="fraction of iterations before growing (0.2)"
    )
    tr.add_argument(
        "--grow-theta-fg", type=float, default=None, help="object-class confidence to grow (0.99)"
    )
    tr.add_argument("--grow-theta-bg", type=float, default=None, help="background confidence to grow (0.85)")
    tr.add_argument(
        "--init",
        default=INIT_AUTO,
        help="box detector to start from (instance: all but the mask branch; semantic: the backbone); "
        "auto (default) = the shipped detector for synthetic data in the lite profile; none = without",
    )
    tr.add_argument("--device", default="cpu")
    tr.add_argument("--seed", type=int, default=0)
    tr.set_defaults(func=cmd_train_seg)

    ev = subparsers.add_parser(
        "evaluate",
        help="mIoU, mask AP25/50/70/75/AP/AP_S/M/L and ABO of a train-seg run (or of a labels folder)",
        description="Evaluate a train-seg run on its validation split and write RUN/metrics.json; "
        "or, with --labels, score a labels folder as predictions (the NoTrain rows).",
    )
    ev.add_argument("--run", type=Path, default=None, help="train-seg run folder")
    ev.add_argument("--labels", type=Path, default=None, help="labels folder to score as predictions")
    ev.add_argument("--data", type=Path, default=None, help="dataset root (default: the run's)")
    add_dataset_arg(ev)
    ev.add_argument("--split", default=None, help="split to evaluate (default: the run's val split; val)")
    ev.add_argument("--crf", action="store_true", help="also score after dense-CRF post-processing")
    ev.add_argument("--limit", type=int, default=None, help="only the first N images")
    ev.add_argument("--json", type=Path, default=None, help="where to write (default RUN/metrics.json)")
    ev.add_argument("--device", default="cpu")
    ev.set_defaults(func=cmd_evaluate)
