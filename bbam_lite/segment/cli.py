"""``bbam-lite train-seg`` and ``bbam-lite evaluate``: segmentation networks on pseudo labels."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from bbam_lite.utils.io import file_digest

INIT_AUTO, INIT_NONE = "auto", "none"


def _data_info(root: Path, kind: str, train_split: str, val_split: str) -> dict:
    from bbam_lite.data.synthetic import read_metadata

    info = {"kind": kind, "root": str(root.resolve()), "train_split": train_split, "val_split": val_split}
    if kind == "synthetic":
        meta = read_metadata(root)
        info.update(generator_version=meta["generator_version"], settings=meta["settings"])
    return info


def _config(args: argparse.Namespace):
    from bbam_lite.segment.instance import get_instance_profile
    from bbam_lite.segment.semantic import get_semantic_profile

    overrides = {
        k: v
        for k, v in {
            "iterations": args.iterations,
            "lr": args.lr,
            "batch_size": args.batch_size,
            "eval_images": args.eval_images,
            "grow_start": args.grow_start,
            "grow_theta_fg": args.grow_theta_fg,
            "grow_theta_bg": args.grow_theta_bg,
        }.items()
        if v is not None
    }
    if args.grow is not None:
        overrides["grow"] = args.grow == "on"
    get = get_semantic_profile if args.task == "semantic" else get_instance_profile
    if args.iterations is not None:  # keep the checkpoint / validation cadence inside the schedule
        profile = get(args.profile)
        overrides["checkpoint_every"] = min(args.iterations, profile.checkpoint_every)
        overrides["eval_every"] = min(args.iterations, profile.eval_every)
    cfg = get(args.profile, **overrides)
    cfg.seed_growing()  # validates the growing settings
    return cfg


def _init_weights(args: argparse.Namespace, kind: str) -> Path | None:
    """The box detector a network starts from: ``auto`` = the shipped one for synthetic data in the
    lite profile (trained on box labels only: Mask R-CNN takes all but its mask branch, DeepLab its
    backbone), else none; ``none`` = from scratch (or ImageNet weights where the profile has them)."""
    from bbam_lite.weights import default_detector_path

    if args.init == INIT_NONE:
        return None
    if args.init == INIT_AUTO:
        return default_detector_path() if kind == "synthetic" and args.profile == "lite" else None
    return Path(args.init)


def cmd_train_seg(args: argparse.Namespace) -> int:
    import torch

    from bbam_lite.cli import _device, _load, dataset_kind
    from bbam_lite.segment.targets import TrainingLabels
    from bbam_lite.segment.train import InstanceJob, SemanticJob, train_segmentation

    cfg = _config(args)
    kind = dataset_kind(args.data, args.dataset)
    train = _load(args.data, kind, args.train_split)
    if args.limit is not None:
        train = train.subset(range(min(args.limit, len(train))))
    val = _load(args.data, kind, args.val_split)
    labels = TrainingLabels(train, args.labels, args.task)
    device = torch.device(_device(args.device))
    init = _init_weights(args, kind)
    torch.manual_seed(args.seed)
    job_class = SemanticJob if args.task == "semantic" else InstanceJob
    job = job_class(cfg, labels, device, args.seed, init)
    settings = {
        "task": args.task,
        "config": asdict(cfg),
        "seed": args.seed,
        "class_names": train.class_names,
        "data": {**_data_info(args.data, kind, args.train_split, args.val_split), "limit": args.limit},
        "labels": labels.describe(),
        "init": str(init.resolve()) if init else None,
        # by content too: resuming after the file at that path was replaced is refused
        "init_sha256": file_digest(init) if init else None,
    }
    if init and not args.quiet:
        part = "backbone" if args.task == "semantic" else "network but its mask branch"
        print(f"starting from the {part} of the box detector {init}")
    summary = train_segmentation(job, val, args.out, settings, progress=not args.quiet)
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
    from bbam_lite.cli import _device, _load, dataset_kind
    from bbam_lite.segment.checkpoint import load_segmenter
    from bbam_lite.segment.evaluate import evaluate_instance_model, evaluate_labels, evaluate_semantic_model
    from bbam_lite.utils.io import atomic_write_json

    if (args.run is None) == (args.labels is None):
        raise ValueError(
            "give exactly one of --run RUN (a trained network) or --labels LABELS (labels as predictions)"
        )
    t0 = time.perf_counter()
    if args.labels is not None:
        if args.data is None:
            raise ValueError(
                "--labels needs --data (the dataset whose ground truth the labels are scored against)"
            )
        split = args.split or "val"
        ds = _load(args.data, args.dataset, split)
        ds = ds.subset(range(min(args.limit, len(ds)))) if args.limit else ds
        result = {"split": split, **evaluate_labels(args.labels, ds, progress=not args.quiet)}
        result["seconds"] = round(time.perf_counter() - t0, 1)
        out = args.json or args.labels / f"metrics-{split}.json"
        atomic_write_json(out, result, indent=2)
        print(
            f"{args.labels} as predictions on {result['instance']['images']} {split} images: "
            f"{_format('semantic', result['semantic'])} {_format('instance', result['instance'])}; "
            f"wrote {out}"
        )
        return 0

    settings_path = args.run / "settings.json"
    if not settings_path.is_file():
        raise ValueError(f"{args.run}: not a train-seg run folder (no settings.json)")
    settings = json.loads(settings_path.read_text(encoding="utf-8"))
    data = settings.get("data", {})
    root = args.data or Path(data.get("root", ""))
    kind = dataset_kind(root, args.dataset if args.data else data.get("kind", args.dataset))
    loaded = load_segmenter(args.run / "model.pt", _device(args.device))
    ds = _load(root, kind, args.split or data.get("val_split", "val"))
    if ds.class_names != loaded.class_names:
        raise ValueError(
            f"{args.run}/model.pt: trained for classes {loaded.class_names[1:]}, "
            f"{root} has {ds.class_names[1:]}"
        )
    ds = ds.subset(range(min(args.limit, len(ds)))) if args.limit else ds
    scaled = loaded.config.profile != "paper"
    evaluate = evaluate_semantic_model if loaded.task == "semantic" else evaluate_instance_model
    metrics = evaluate(loaded.model, ds, args.device, args.crf, scaled, progress=not args.quiet)
    result = {
        "task": loaded.task,
        "profile": loaded.config.profile,
        "split": args.split or data.get("val_split", "val"),
        "data": str(Path(root).resolve()),
        "images": len(ds),
        "train_seconds": loaded.meta.get("train_seconds"),
        "train_cpu_seconds": loaded.meta.get("train_cpu_seconds"),
        "labels": settings.get("labels"),
        "metrics": {k: v for k, v in metrics.items() if k != "crf"},
        "crf": metrics.get("crf"),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out = args.json or args.run / "metrics.json"
    atomic_write_json(out, result, indent=2)
    line = _format(loaded.task, result["metrics"])
    if result["crf"]:
        line += f"; with CRF: {_format(loaded.task, result['crf'])}"
    print(f"{args.run}: {line} on {len(ds)} images; wrote {out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train-seg`` and ``evaluate`` to the ``bbam-lite`` command."""
    from bbam_lite.cli import _add_data_args

    tr = subparsers.add_parser(
        "train-seg",
        help="train DeepLab-v2 (semantic) or Mask R-CNN (instance) on pseudo labels (resumable)",
        description="Train a segmentation network on a labels folder (bbam-lite pseudo-labels) or on "
        "the ground truth (--labels gt). Rerun the same command to resume; writes OUT/model.pt.",
    )
    _add_data_args(tr)
    tr.add_argument("--task", required=True, choices=["semantic", "instance"])
    tr.add_argument(
        "--labels",
        required=True,
        help="labels folder from 'bbam-lite pseudo-labels', or gt (full supervision)",
    )
    tr.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, model.pt)")
    tr.add_argument("--profile", default="lite", help="lite (CPU, default) | smoke | paper")
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
    ev.add_argument("--dataset", choices=["auto", "synthetic", "voc", "coco"], default="auto")
    ev.add_argument("--split", default=None, help="split to evaluate (default: the run's val split; val)")
    ev.add_argument("--crf", action="store_true", help="also score after dense-CRF post-processing")
    ev.add_argument("--limit", type=int, default=None, help="only the first N images")
    ev.add_argument("--json", type=Path, default=None, help="where to write (default RUN/metrics.json)")
    ev.add_argument("--device", default="cpu")
    ev.set_defaults(func=cmd_evaluate)
