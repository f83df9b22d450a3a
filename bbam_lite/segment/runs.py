"""Segmentation networks as library calls: what ``bbam-lite train-seg`` and ``bbam-lite evaluate`` do.

* :func:`train_network`: train (or resume) DeepLab-v2 or Mask R-CNN on a labels folder or on the
  ground truth into a run folder (``settings.json``, checkpoints, ``model.pt``);
* :func:`evaluate_run`: score a trained network on its val split, written to ``RUN/metrics.json``;
* :func:`evaluate_labels_folder`: score a labels folder as predictions (the NoTrain rows), written
  to ``LABELS/metrics-SPLIT.json``.

The command (:mod:`.cli`) parses arguments and prints one line per call; chapter 12's comparison
(:mod:`bbam_lite.experiments.networks`) calls these directly. Bad input raises a one-line
``ValueError`` / ``DataError``; nothing is printed but progress (``progress=True``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from bbam_lite.utils.device import check_device
from bbam_lite.utils.io import file_digest

TASKS = ("semantic", "instance")
INIT_AUTO, INIT_NONE = "auto", "none"
GROW_CHOICES = ("on", "off")


def _data_info(root: Path, kind: str, train_split: str, val_split: str) -> dict:
    from bbam_lite.data.synthetic import read_metadata

    info = {"kind": kind, "root": str(root.resolve()), "train_split": train_split, "val_split": val_split}
    if kind == "synthetic":
        meta = read_metadata(root)
        info.update(generator_version=meta["generator_version"], settings=meta["settings"])
    return info


def network_config(
    task: str,
    profile: str = "lite",
    *,
    iterations: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    eval_images: int | None = None,
    grow: str | None = None,
    grow_start: float | None = None,
    grow_theta_fg: float | None = None,
    grow_theta_bg: float | None = None,
):
    """The training config of a ``task`` network: the profile's, with the given overrides (None:
    the profile's). ``grow``: seed growing, ``on`` | ``off`` (None: on for instance, off for semantic)."""
    from bbam_lite.segment.instance import get_instance_profile
    from bbam_lite.segment.semantic import get_semantic_profile

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {list(TASKS)}")
    if grow is not None and grow not in GROW_CHOICES:
        raise ValueError(f"grow must be one of {list(GROW_CHOICES)} or None, got {grow!r}")
    overrides = {
        k: v
        for k, v in {
            "iterations": iterations,
            "lr": lr,
            "batch_size": batch_size,
            "eval_images": eval_images,
            "grow_start": grow_start,
            "grow_theta_fg": grow_theta_fg,
            "grow_theta_bg": grow_theta_bg,
        }.items()
        if v is not None
    }
    if grow is not None:
        overrides["grow"] = grow == "on"
    get = get_semantic_profile if task == "semantic" else get_instance_profile
    if iterations is not None:  # keep the checkpoint / validation cadence inside the schedule
        base = get(profile)
        overrides["checkpoint_every"] = min(iterations, base.checkpoint_every)
        overrides["eval_every"] = min(iterations, base.eval_every)
    cfg = get(profile, **overrides)
    cfg.seed_growing()  # validates the growing settings
    return cfg


def init_weights(init: str | Path, kind: str, profile: str) -> Path | None:
    """The box detector a network starts from: ``auto`` = the shipped one for synthetic data in the
    lite profile (trained on box labels only: Mask R-CNN takes all but its mask branch, DeepLab its
    backbone), else none; ``none`` = from scratch (or ImageNet weights where the profile has them);
    else the path of a detector checkpoint."""
    from bbam_lite.weights import default_detector_path

    if init == INIT_NONE:
        return None
    if init == INIT_AUTO:
        return default_detector_path() if kind == "synthetic" and profile == "lite" else None
    return Path(init)


def train_network(
    data: str | Path,
    labels: str | Path,
    task: str,
    out: str | Path,
    *,
    dataset: str = "auto",
    profile: str = "lite",
    train_split: str = "train",
    val_split: str = "val",
    limit: int | None = None,
    iterations: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    eval_images: int | None = None,
    grow: str | None = None,
    grow_start: float | None = None,
    grow_theta_fg: float | None = None,
    grow_theta_bg: float | None = None,
    init: str | Path = INIT_AUTO,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Train (or resume) a ``task`` network (``semantic``: DeepLab-v2, ``instance``: Mask R-CNN) on
    ``labels`` (a labels folder from ``bbam-lite pseudo-labels``, or ``gt``: full supervision) of
    the dataset ``data`` into the run folder ``out``; returns the training summary
    (``train_summary.json``).

    ``dataset``: synthetic | voc | coco | auto. ``limit``: only the first N training images. The
    overrides (``iterations`` ... ``grow_theta_bg``, see :func:`network_config`) default to the
    profile's; ``eval_images=0``: no validation during training. ``init``: see
    :func:`init_weights`. The run folder is bound to these settings (``out/settings.json``): a
    rerun with other settings is refused, the same settings resume from the last checkpoint.
    """
    import torch

    from bbam_lite.data import check_not_empty, dataset_kind, load_dataset
    from bbam_lite.pseudo.folder import LabelsFolder
    from bbam_lite.pseudo.identity import check_labels
    from bbam_lite.segment.targets import GT, TrainingLabels
    from bbam_lite.segment.train import InstanceJob, SemanticJob, train_segmentation

    data, out = Path(data), Path(out)
    cfg = network_config(
        task,
        profile,
        iterations=iterations,
        lr=lr,
        batch_size=batch_size,
        eval_images=eval_images,
        grow=grow,
        grow_start=grow_start,
        grow_theta_fg=grow_theta_fg,
        grow_theta_bg=grow_theta_bg,
    )
    kind = dataset_kind(data, dataset)
    split = load_dataset(kind, data, train_split, split_option="--train-split")
    check_not_empty(split, f"to train on (--train-split {train_split})")
    train = split.subset(range(min(limit, len(split)))) if limit is not None else split
    val = load_dataset(kind, data, val_split, split_option="--val-split")
    if str(labels) != GT:
        check_labels(LabelsFolder(labels), split, used=train)
    training_labels = TrainingLabels(train, labels, task)
    torch_device = torch.device(check_device(device))
    init_path = init_weights(init, kind, profile)
    torch.manual_seed(seed)
    job_class = SemanticJob if task == "semantic" else InstanceJob
    job = job_class(cfg, training_labels, torch_device, seed, init_path)
    settings = {
        "task": task,
        "config": asdict(cfg),
        "seed": seed,
        "class_names": train.class_names,
        "data": {**_data_info(data, kind, train_split, val_split), "limit": limit},
        "labels": training_labels.describe(),
        "init": str(init_path.resolve()) if init_path else None,
        # by content too: resuming after the file at that path was replaced is refused
        "init_sha256": file_digest(init_path) if init_path else None,
    }
    if init_path and progress:
        part = "backbone" if task == "semantic" else "network but its mask branch"
        print(f"starting from the {part} of the box detector {init_path}")
    return train_segmentation(job, val, out, settings, progress=progress)


def evaluate_run(
    run: str | Path,
    *,
    data: str | Path | None = None,
    dataset: str = "auto",
    split: str | None = None,
    crf: bool = False,
    limit: int | None = None,
    device: str = "cpu",
    json_path: str | Path | None = None,
    progress: bool = False,
) -> dict:
    """Score the network of the run folder ``run`` (from :func:`train_network`) and write the
    result to ``json_path`` (default ``RUN/metrics.json``); returns it.

    ``data`` / ``dataset`` / ``split`` default to the run's dataset and val split. ``crf``: also
    score after dense-CRF post-processing. ``limit``: only the first N images (0 / None: all).
    """
    from bbam_lite.data import check_not_empty, dataset_kind, load_dataset
    from bbam_lite.segment.checkpoint import load_segmenter
    from bbam_lite.segment.evaluate import evaluate_instance_model, evaluate_semantic_model
    from bbam_lite.utils.io import atomic_write_json

    t0 = time.perf_counter()
    run = Path(run)
    settings_path = run / "settings.json"
    if not settings_path.is_file():
        raise ValueError(f"{run}: not a train-seg run folder (no settings.json)")
    settings = json.loads(settings_path.read_text(encoding="utf-8"))
    info = settings.get("data", {})
    root = Path(data) if data else Path(info.get("root", ""))
    kind = dataset_kind(root, dataset if data else info.get("kind", dataset))
    loaded = load_segmenter(run / "model.pt", check_device(device))
    split = split or info.get("val_split", "val")
    ds = check_not_empty(
        load_dataset(kind, root, split, split_option="--split"), f"to score (--split {split})"
    )
    if ds.class_names != loaded.class_names:
        raise ValueError(
            f"{run}/model.pt: trained for classes {loaded.class_names[1:]}, {root} has {ds.class_names[1:]}"
        )
    ds = ds.subset(range(min(limit, len(ds)))) if limit else ds
    scaled = loaded.config.profile != "paper"
    evaluate = evaluate_semantic_model if loaded.task == "semantic" else evaluate_instance_model
    metrics = evaluate(loaded.model, ds, device, crf, scaled, progress=progress)
    result = {
        "task": loaded.task,
        "profile": loaded.config.profile,
        "split": split,
        "data": str(root.resolve()),
        "images": len(ds),
        "train_seconds": loaded.meta.get("train_seconds"),
        "train_cpu_seconds": loaded.meta.get("train_cpu_seconds"),
        "labels": settings.get("labels"),
        "metrics": {k: v for k, v in metrics.items() if k != "crf"},
        "crf": metrics.get("crf"),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    atomic_write_json(Path(json_path) if json_path else run / "metrics.json", result, indent=2)
    return result


def evaluate_labels_folder(
    labels: str | Path,
    data: str | Path,
    *,
    dataset: str = "auto",
    split: str = "val",
    limit: int | None = None,
    json_path: str | Path | None = None,
    progress: bool = False,
) -> dict:
    """Score a labels folder as predictions against the ground truth of ``data``'s ``split`` (the
    NoTrain rows) and write the result to ``json_path`` (default ``LABELS/metrics-SPLIT.json``);
    returns it. ``limit``: only the first N images (0 / None: all)."""
    from bbam_lite.data import check_not_empty, load_dataset
    from bbam_lite.pseudo.folder import LabelsFolder
    from bbam_lite.pseudo.identity import check_labels
    from bbam_lite.segment.evaluate import evaluate_labels
    from bbam_lite.utils.io import atomic_write_json

    t0 = time.perf_counter()
    labels = Path(labels)
    whole = check_not_empty(
        load_dataset(dataset, Path(data), split, split_option="--split"), f"to score (--split {split})"
    )
    ds = whole.subset(range(min(limit, len(whole)))) if limit else whole
    check_labels(LabelsFolder(labels), whole, used=ds)
    result = {"split": split, **evaluate_labels(labels, ds, progress=progress)}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(Path(json_path) if json_path else labels / f"metrics-{split}.json", result, indent=2)
    return result
