"""The ``bbam-lite`` command (also ``python -m bbam_lite``).

Every subcommand reports bad input, and an output it cannot write, in one line on stderr and exits
with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings
from pathlib import Path

from bbam_lite.data.arguments import add_data_args as _add_data_args
from bbam_lite.data.arguments import load_split as _load
from bbam_lite.data.registry import dataset_kind
from bbam_lite.utils.device import check_device as _device

EXIT_BAD_INPUT = 2

# Modules that add their own subcommands: each has ``register(subparsers)``, which adds a parser and
# sets ``func`` (a function of the parsed arguments returning an exit status).
COMMAND_MODULES: list[str] = ["bbam_lite.segment.cli", "bbam_lite.book.command"]


def _add_class_map_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--class-map",
        default=None,
        metavar="DATASET_NAME=DETECTOR_NAME[,...]",
        help="for a torchvision detector: the detector's class for each dataset class whose name it "
        "lacks (VOC/COCO synonyms such as aeroplane=airplane are built in)",
    )


def cmd_data_synth(args: argparse.Namespace) -> int:
    from bbam_lite.data.synthetic import SynthSettings, parse_difficulty, synthesize

    settings = SynthSettings(
        args.n_train, args.n_val, args.seed, args.size, parse_difficulty(args.difficulty)
    )
    out = synthesize(args.out, settings, progress=not args.quiet)
    meta = json.loads((out / "dataset.json").read_text())
    print(
        f"wrote {out}: {meta['splits']}, difficulty {settings.difficulty}, {settings.size} px, "
        f"seed {settings.seed}"
    )
    return 0


def cmd_train_detector(args: argparse.Namespace) -> int:
    from bbam_lite.data import check_not_empty
    from bbam_lite.data.synthetic import read_metadata
    from bbam_lite.detector.model import get_profile
    from bbam_lite.detector.train import train_detector

    overrides = {}
    if args.iterations is not None:
        overrides["iterations"] = args.iterations
    if args.lr is not None:
        overrides["lr"] = args.lr
    if args.warmup is not None:
        overrides["warmup"] = args.warmup
    cfg = get_profile(args.profile, **overrides)
    kind = dataset_kind(args.data, args.dataset)
    train = _load(args.data, kind, args.train_split, "--train-split")
    check_not_empty(train, f"to train on (--train-split {args.train_split})")
    val = _load(args.data, kind, args.val_split, "--val-split")
    info = {
        "kind": kind,
        "root": str(args.data.resolve()),
        "train_split": args.train_split,
        "val_split": args.val_split,
    }
    if kind == "synthetic":
        meta = read_metadata(args.data)
        info.update(generator_version=meta["generator_version"], settings=meta["settings"])
    from bbam_lite.utils.distributed import process_group

    backend = "cpu:gloo,cuda:nccl" if args.device.startswith("cuda") else "gloo"
    with process_group(backend) as ranks:  # torchrun: data parallel, rank 0 writes the files
        result = train_detector(
            train,
            val,
            args.out,
            cfg,
            _device(ranks.device(args.device)),
            args.seed,
            info,
            progress=not args.quiet,
            init=args.init,
            ranks=ranks,
        )
    if not ranks.is_main:
        return 0
    scored = (
        f"box AP50 {result['box_ap50']:.3f}, AP {result['box_ap']:.3f} on {result['val_images']} val images"
        if result["val_images"]
        else f"not scored: {val.name} has no images (--val-split {args.val_split})"
    )
    print(f"{args.out}/detector.pt: {scored}; {result['train_seconds'] / 60:.1f} min")
    return 0


def cmd_eval_detector(args: argparse.Namespace) -> int:
    from bbam_lite.data import check_not_empty
    from bbam_lite.detector.evaluate import evaluate_detector
    from bbam_lite.detector.model import load_detector
    from bbam_lite.utils.io import atomic_write_json
    from bbam_lite.weights import default_detector_path

    ds = check_not_empty(_load(args.data, args.dataset, args.split), f"to score (--split {args.split})")
    path = args.detector or default_detector_path()
    det = load_detector(path, _device(args.device), class_names=ds.class_names, class_map=args.class_map)
    metrics = evaluate_detector(det.model, ds, args.device, progress=not args.quiet)
    metrics = {**metrics, "images": len(ds), "detector": str(path)}
    print(" ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, float)))
    if args.json:
        atomic_write_json(args.json, metrics, indent=2)
    return 0


def cmd_pseudo_labels(args: argparse.Namespace) -> int:
    from bbam_lite.attribution.engine import EngineOptions
    from bbam_lite.data import check_not_empty
    from bbam_lite.detector.model import load_detector
    from bbam_lite.pseudo.generate import generate
    from bbam_lite.pseudo.job import DetectorRef, LabelJob
    from bbam_lite.pseudo.memory import parse_size
    from bbam_lite.pseudo.methods import get_method
    from bbam_lite.pseudo.options import options_from_args
    from bbam_lite.pseudo.settings import PseudoLabelSettings
    from bbam_lite.pseudo.workers import check_workers, default_workers
    from bbam_lite.utils.distributed import process_group
    from bbam_lite.weights import default_detector_path

    kind = dataset_kind(args.data, args.dataset)
    ds = check_not_empty(_load(args.data, kind, args.split), f"to label (--split {args.split})")
    profile = args.profile or ("lite" if kind == "synthetic" else "full")
    bbam = {k: v for k, v in {"iterations": args.iterations, "lam": args.lam}.items() if v is not None}
    if args.context_crop:
        bbam["context_crop"] = True
    settings = PseudoLabelSettings(
        method=args.method,
        boxes=args.boxes,
        preset=args.preset,
        profile=profile,
        theta_fg=args.theta_fg,
        theta_bg=args.theta_bg,
        crf=not args.no_crf,
        refine=args.refine,
        mcg_dir=str(args.mcg_dir) if args.mcg_dir else None,
        bbam=bbam,
        maps_from=str(args.maps_from) if args.maps_from else None,
        options=options_from_args(args, get_method(args.method)),
    )
    if settings.needs_detector:
        if args.detector is None and kind != "synthetic":
            raise ValueError(
                f"--method {args.method} --boxes {args.boxes} on {kind} data needs --detector PATH"
            )
    if args.batch_objects != "auto" and not (args.batch_objects.isdigit() and int(args.batch_objects) > 0):
        raise ValueError(f"--batch-objects must be a positive integer or auto, got {args.batch_objects!r}")
    budget = parse_size(args.memory_budget) if args.memory_budget is not None else None
    if args.workers is not None:
        check_workers(args.workers)
    with process_group() as ranks:  # torchrun: each rank labels its shard, rank 0 merges
        device = _device(ranks.device(args.device))
        detector = None
        if settings.needs_detector:
            path = args.detector or default_detector_path()
            loaded = load_detector(path, device, class_names=ds.class_names, class_map=args.class_map)
            detector = DetectorRef.loaded(loaded)
        batch_objects = args.batch_objects if args.batch_objects == "auto" else int(args.batch_objects)
        job = LabelJob.make(
            ds,
            settings,
            args.out,
            detector,
            device=device,
            limit=args.limit,
            batch_images=args.batch_images,
            progress=not args.quiet,
            ranks=ranks,
            batch_objects=batch_objects,
            engine=EngineOptions(precision=args.precision),
            workers=args.workers if args.workers is not None else default_workers(ranks.world_size),
            memory_budget=budget,
        )
        q = generate(job)
    if not ranks.is_main:
        return 0
    if "miou" in q:
        print(
            f"{args.out}: {q['images']} images, {q['objects']} objects; mIoU {q['miou']:.3f} "
            f"(ignored {q['ignore_fraction']:.1%}), mean instance IoU {q['mean_instance_iou']:.3f}"
        )
    else:
        print(
            f"{args.out}: {q['images']} images, {q['objects']} objects "
            "(no ground-truth masks to score against)"
        )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bbam_lite.experiments import format_table, run_demo

    summary = run_demo(args.out, args.images, _device(args.device), args.detector, progress=not args.quiet)
    print(format_table(summary))
    print(
        f"{summary['images']} images, {summary['objects']} objects, {summary['seconds'] / 60:.1f} min; "
        f"wrote {args.out}/summary.json and {args.out}/comparison.png"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bbam-lite",
        description="BBAM (Lee et al., CVPR 2021) and the Box2Seg GrabCut baselines: data, detector, "
        "pseudo labels.",
        epilog="Run 'bbam-lite COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="datasets: generate the synthetic set")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    synth = data_sub.add_parser(
        "synth",
        help="write a synthetic dataset (COCO JSON + JPEG + VOC-style PNGs)",
        description="Write a synthetic dataset; the defaults give the embedded default set.",
    )
    synth.add_argument("--out", type=Path, required=True, help="output folder (must not exist or be empty)")
    synth.add_argument("--n-train", type=int, default=800, help="training images (default 800)")
    synth.add_argument("--n-val", type=int, default=200, help="validation images (default 200)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--size", type=int, default=160, help="image side in pixels (default 160)")
    synth.add_argument(
        "--difficulty",
        default="medium",
        help="easy | medium | hard or a number in [0, 1] (default medium = 0.5)",
    )
    synth.set_defaults(func=cmd_data_synth)

    tr = sub.add_parser(
        "train-detector",
        help="train a Faster R-CNN on box labels (resumable)",
        description="Train a Faster R-CNN on the boxes of a dataset. Rerun the same command to "
        "resume an interrupted run from its last checkpoint. Data parallel over N CPU cores or GPUs: "
        "torchrun --nproc-per-node N -m bbam_lite train-detector ... (same batches, up to N times faster; "
        "a run can be resumed with another N).",
    )
    _add_data_args(tr)
    tr.add_argument("--train-split", default="train")
    tr.add_argument("--val-split", default="val")
    tr.add_argument(
        "--out", type=Path, required=True, help="run folder (checkpoints, detector.pt, detector_metrics.json)"
    )
    tr.add_argument(
        "--profile", default="lite", help="lite (CPU, default) | smoke | paper (or full) | paper-r50"
    )
    tr.add_argument("--iterations", type=int, default=None, help="override the profile's iteration count")
    tr.add_argument("--lr", type=float, default=None, help="override the profile's base learning rate")
    tr.add_argument("--warmup", type=int, default=None, help="override the profile's warm-up iterations")
    tr.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from this detector checkpoint's weights (e.g. continue a run with a new schedule)",
    )
    tr.set_defaults(func=cmd_train_detector)

    ev = sub.add_parser("eval-detector", help="box AP of a detector checkpoint (pycocotools)")
    _add_data_args(ev, split="val")
    ev.add_argument(
        "--detector",
        type=Path,
        default=None,
        help="checkpoint or torchvision:ARCH:WEIGHTS (default: the shipped synthetic detector)",
    )
    _add_class_map_arg(ev)
    ev.add_argument("--json", type=Path, default=None, help="also write the metrics to this JSON file")
    ev.add_argument("--device", default="cpu")
    ev.set_defaults(func=cmd_eval_detector)

    pl = sub.add_parser(
        "pseudo-labels",
        help="pseudo labels with BBAM or a box baseline (resumable)",
        description="Make pseudo labels for a split. Rerun the same command to resume; writes "
        "OUT/instances.json (COCO, RLE + ignore), OUT/semantic/*.png (255 = ignore) "
        "and, where ground-truth masks exist, OUT/quality.json.",
    )
    _add_data_args(pl, split="train")
    from bbam_lite.attribution.bbam import PRESETS
    from bbam_lite.pseudo.methods import methods
    from bbam_lite.pseudo.options import add_option_flags
    from bbam_lite.pseudo.settings import DEFAULT_PRESET

    pl.add_argument(
        "--method",
        required=True,
        choices=[m.name for m in methods()],
        help="; ".join(f"{m.name}: {m.summary}" for m in methods()).replace("%", "%%"),
    )
    pl.add_argument("--out", type=Path, required=True, help="labels folder")
    pl.add_argument(
        "--detector",
        type=Path,
        default=None,
        help="detector checkpoint (default for synthetic data: the shipped one) or "
        "torchvision:ARCH:WEIGHTS (a torchvision Faster R-CNN and its state-dict file, e.g. COCO's); "
        "used by bbam and --boxes detector",
    )
    _add_class_map_arg(pl)
    pl.add_argument(
        "--boxes",
        choices=["gt", "detector"],
        default="gt",
        help="ground-truth boxes (NoTrain-GT) or the detector's boxes (NoTrain-Det)",
    )
    pl.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=DEFAULT_PRESET,
        help="BBAM as in the authors' code (official, the default: area-quantile thresholds, which "
        "their published numbers were made with) or as the paper's text states it (paper: theta_fg / "
        "theta_bg on the map's values); see docs/bbam-settings.md",
    )
    pl.add_argument(
        "--profile",
        choices=["lite", "full", "paper"],
        default=None,
        help="lite: strides and CRF widths scaled to the image size, fewer iterations (default for "
        "synthetic data); full (or paper): the paper's values",
    )
    pl.add_argument("--limit", type=int, default=None, help="only the first N images")
    pl.add_argument(
        "--theta-fg", type=float, default=0.8, help="foreground threshold of --preset paper (default 0.8)"
    )
    pl.add_argument(
        "--theta-bg", type=float, default=0.2, help="ignore-band threshold of --preset paper (default 0.2)"
    )
    pl.add_argument(
        "--no-crf",
        action="store_true",
        help="--preset paper: threshold the BBAM without dense-CRF refinement (official keeps its CRF)",
    )
    pl.add_argument(
        "--refine",
        choices=["none", "proposals"],
        default="none",
        help="Eq. 4 refinement with mask proposals (MCG files from --mcg-dir, else offline grouping)",
    )
    pl.add_argument(
        "--mcg-dir",
        type=Path,
        default=None,
        help="folder of precomputed MCG .mat files, one per image (--refine proposals, mcg_grabcut); "
        "default: offline grouping proposals",
    )
    pl.add_argument(
        "--maps-from",
        type=Path,
        default=None,
        metavar="LABELS",
        help="reuse the BBAM maps stored in this labels folder (same boxes and BBAM settings) and "
        "redo only the thresholds / CRF / refinement: a Table 5 sweep in minutes",
    )
    pl.add_argument("--iterations", type=int, default=None, help="BBAM iterations (override)")
    pl.add_argument(
        "--context-crop",
        action="store_true",
        help="beyond the paper: explain objects under 10%% of the image on a crop around them (the "
        "detector's FLOPs go near the object; see docs/benchmarks.md for when it pays)",
    )
    pl.add_argument("--lam", type=float, default=None, help="BBAM lambda (override)")
    pl.add_argument(
        "--batch-images", type=int, default=4, help="images whose objects BBAM optimises together"
    )
    pl.add_argument(
        "--batch-objects",
        default="8",
        help="objects BBAM optimises in one batch; auto: as many as fit the free GPU memory (default 8)",
    )
    pl.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default="auto",
        help="BBAM engine precision; auto: bf16 autocast on CUDA, fp32 on the CPU",
    )
    pl.add_argument(
        "--device", default="cpu", help="cpu | cuda (under torchrun: cuda:LOCAL_RANK per process)"
    )
    pl.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes that do the per-image CPU work (CRF, thresholds, GrabCut, refinement, files) "
        "while this one runs the method's device work; 1: all in this process. Default: the cores "
        "(shared among torchrun's processes), at most 8. The labels do not depend on it",
    )
    pl.add_argument(
        "--memory-budget",
        default=None,
        metavar="SIZE",
        help="memory for the per-image CPU work of the images in flight, e.g. 4G (default: half the "
        "memory available at the start). An image whose estimate is above it is labelled at a "
        "reduced scale and its labels resized back (a warning names it); fewer workers run at once "
        "when the budget holds fewer",
    )
    add_option_flags(pl, methods())  # the options methods declare (bbam_lite.pseudo.options)
    pl.set_defaults(func=cmd_pseudo_labels)

    demo = sub.add_parser(
        "demo",
        help="the main job: all methods' pseudo labels on the synthetic set, scored",
        description="Synthetic data -> shipped detector -> Box, Box + CRF, GrabCut and BBAM pseudo "
        "labels for a training subset -> OUT/summary.json, a table, OUT/comparison.png.",
    )
    demo.add_argument("--out", type=Path, required=True)
    demo.add_argument("--images", type=int, default=10, help="training images to label (default 10)")
    demo.add_argument(
        "--detector", type=Path, default=None, help="detector checkpoint (default: the shipped one)"
    )
    demo.add_argument("--device", default="cpu")
    demo.set_defaults(func=cmd_demo)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from bbam_lite.data.records import DataError
    from bbam_lite.detector.model import CheckpointError
    from bbam_lite.utils.io import WriteError, check_output_folder
    from bbam_lite.utils.run_folder import RunSettingsError

    def one_line(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"bbam-lite {args.command}: warning: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = one_line  # restored when the block ends
            warnings.simplefilter("default")
            warnings.filterwarnings(
                "ignore", category=DeprecationWarning, module=r"(pycocotools|torch|torchvision)\b.*"
            )
            if getattr(args, "out", None) is not None:  # every command's --out is a folder
                check_output_folder(args.out, "--out")
            return int(args.func(args) or 0)
    except (DataError, CheckpointError, RunSettingsError, WriteError, FileExistsError, ValueError) as exc:
        print(f"bbam-lite {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"bbam-lite {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
