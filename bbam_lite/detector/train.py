"""Training a detector on box labels: a plain loop in the style of torchvision's references.

Resumable: every ``checkpoint_every`` iterations the model, optimiser, schedule and iteration are
written atomically to ``RUN/checkpoint.pt``; a rerun of the same command continues from there. The
order of images, the flips and the RPN/RoI sampling are functions of (seed, iteration), so a resumed
run sees the same batches as an uninterrupted one and ends with the same weights.

Data parallel: under ``torchrun --nproc-per-node N`` each process takes every N-th image of the
iteration's batch and DistributedDataParallel averages the gradients, so N CPU cores (or GPUs) train
one model with the same batches, up to N times faster (1.3x on two CPU cores: docs/benchmarks.md);
rank 0 evaluates and writes the files. The number of processes is not part of the run's settings:
a run started alone can be resumed with N processes.

``RUN/settings.json`` records what the run was started with, and a rerun with other settings is
refused rather than mixed in.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from bbam_lite.data.images import image_tensor
from bbam_lite.data.records import BoxDataset, ImageRecord
from bbam_lite.detector.evaluate import evaluate_detector
from bbam_lite.detector.model import DetectorConfig, build_detector, save_detector
from bbam_lite.utils.checkpoints import read_checkpoint
from bbam_lite.utils.distributed import Ranks
from bbam_lite.utils.io import atomic_path, atomic_save, atomic_write_json, make_folder
from bbam_lite.utils.run_folder import check_run_settings, finished_run

#: A process that trains on its own (no torchrun).
ALONE = Ranks()


class ImageCache:
    """Decoded training images kept in memory up to a byte budget (small sets fit entirely)."""

    def __init__(self, budget_bytes: int = 1 << 30) -> None:
        self.budget = budget_bytes
        self.used = 0
        self.store: dict[int, np.ndarray] = {}

    def get(self, rec: ImageRecord, load: Callable[[ImageRecord], np.ndarray] | None = None) -> np.ndarray:
        """The record's image (or what ``load`` makes of the record, e.g. its label map)."""
        img = self.store.get(rec.image_id)
        if img is None:
            img = load(rec) if load is not None else rec.load_image()
            if self.used + img.nbytes <= self.budget:
                self.store[rec.image_id] = img
                self.used += img.nbytes
        return img


def batch_indices(n: int, batch_size: int, seed: int, iteration: int) -> np.ndarray:
    """The dataset indices of one iteration's batch: a fresh permutation per epoch, from the seed."""
    per_epoch = max(n // batch_size, 1)
    epoch, step = divmod(iteration, per_epoch)
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return np.resize(perm, per_epoch * batch_size)[step * batch_size : (step + 1) * batch_size]


def make_batch(
    dataset: BoxDataset,
    idx: np.ndarray,
    cache: ImageCache,
    seed: int,
    iteration: int,
    device: torch.device,
    ranks: Ranks = ALONE,
) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Images and targets of this process's share (every ``world_size``-th image) of the batch."""
    flips = np.random.default_rng([seed, iteration, 7]).random(len(idx)) < 0.5
    share = slice(ranks.rank, None, ranks.world_size)
    images, targets = [], []
    for i, flip in zip(idx[share], flips[share], strict=True):
        rec = dataset[int(i)]
        img = image_tensor(cache.get(rec), device)
        boxes = torch.as_tensor(rec.boxes, dtype=torch.float32, device=device)
        if flip:
            img = img.flip(-1)
            boxes = torch.stack(
                [rec.width - boxes[:, 2], boxes[:, 1], rec.width - boxes[:, 0], boxes[:, 3]], 1
            )
        images.append(img)
        targets.append(
            {"boxes": boxes, "labels": torch.as_tensor(rec.labels, dtype=torch.int64, device=device)}
        )
    return images, targets


def lr_at(cfg: DetectorConfig, iteration: int) -> float:
    """Linear warm-up, then cosine decay to 5% of the base rate."""
    if iteration < cfg.warmup:
        return cfg.lr * (0.1 + 0.9 * iteration / max(cfg.warmup, 1))
    t = (iteration - cfg.warmup) / max(cfg.iterations - cfg.warmup, 1)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def _optimizer(cfg: DetectorConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def load_training_checkpoint(path: Path) -> dict:
    """A run's ``checkpoint.pt`` (model, optimizer, iteration); one line if it is damaged."""
    return read_checkpoint(
        path, "training", "a training checkpoint to resume from (delete it to restart the run)"
    )


def _mean_over_ranks(value: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """The mean of a scalar over all processes (itself when alone)."""
    if ranks.world_size == 1:
        return value
    import torch.distributed as dist

    total = value.clone()
    dist.all_reduce(total)
    return total / ranks.world_size


def train_detector(
    train: BoxDataset,
    val: BoxDataset,
    run: Path,
    cfg: DetectorConfig,
    device: str = "cpu",
    seed: int = 0,
    data_info: dict | None = None,
    progress: bool = True,
    init: Path | None = None,
    ranks: Ranks = ALONE,
) -> dict:
    """Train (or resume) a detector in ``run``; writes ``detector.pt`` and ``detector_metrics.json``.

    ``init``: start from the weights of a detector checkpoint (same architecture and classes), for
    example to continue a CPU run on a GPU with a fresh schedule. ``ranks``: this process's place in
    a torchrun group (see the module docstring); only rank 0 evaluates and writes files, and only
    rank 0's return value is complete.
    """
    if cfg.batch_size % ranks.world_size:
        raise ValueError(
            f"batch size {cfg.batch_size} does not split over {ranks.world_size} processes; "
            "use a process count that divides it"
        )
    run = Path(run)
    make_folder(run)
    check_run_settings(
        run,
        {
            "config": asdict(cfg),
            "seed": seed,
            "class_names": train.class_names,
            "data": data_info or {},
            "init": str(init) if init else None,
        },
    )
    dev = torch.device(device)
    torch.manual_seed(seed)
    model = build_detector(cfg, train.num_classes).to(dev)
    if init is not None:
        from bbam_lite.detector.model import load_detector

        model.load_state_dict(load_detector(init, class_names=train.class_names).model.state_dict())
    net = model
    if ranks.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    optimizer = _optimizer(cfg, model)
    progress = progress and ranks.is_main
    start, elapsed = 0, 0.0
    ckpt_path = run / "checkpoint.pt"
    log_path = run / "train_log.jsonl"
    if ckpt_path.exists():
        ckpt = load_training_checkpoint(ckpt_path)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start, elapsed = int(ckpt["iteration"]), float(ckpt["elapsed"])
        if start >= cfg.iterations and (result := finished_run(run, "detector.pt", "detector_metrics.json")):
            return result  # finished: nothing to train, evaluate or write
        if progress:
            print(f"resuming {run} from iteration {start}")
    log = []
    if log_path.exists():
        with open(log_path, encoding="utf-8") as f:
            log = [e for e in map(json.loads, f) if e["iteration"] <= start]

    cache = ImageCache()
    model.train()
    bar = tqdm(total=cfg.iterations, initial=start, desc="train detector", unit="it", disable=not progress)
    t0 = time.perf_counter() - elapsed
    running = []
    for it in range(start, cfg.iterations):
        for g in optimizer.param_groups:
            g["lr"] = lr_at(cfg, it)
        torch.manual_seed(seed * 1_000_003 + it)  # RPN/RoI sampling: a function of (seed, iteration)
        images, targets = make_batch(
            train, batch_indices(len(train), cfg.batch_size, seed, it), cache, seed, it, dev, ranks
        )
        losses = net(images, targets)
        loss = sum(losses.values())
        mean_loss = _mean_over_ranks(loss.detach(), ranks)
        if not torch.isfinite(mean_loss):  # every rank sees the mean, so every rank stops here
            raise FloatingPointError(
                f"iteration {it}: loss is {mean_loss.item()} ({ {k: v.item() for k, v in losses.items()} })"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        running.append(mean_loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(running[-20:]):.3f}")
        done = it + 1
        if not ranks.is_main:
            continue
        n = min(cfg.eval_images, len(val))  # no val images: nothing to score, no AP line
        if n and (done % cfg.eval_every == 0 or done == cfg.iterations):
            metrics = evaluate_detector(model, val.subset(range(n)), dev, progress=False)
            model.train()
            log.append(
                {
                    "iteration": done,
                    "seconds": round(time.perf_counter() - t0, 1),
                    "loss": float(np.mean(running[-cfg.eval_every :])),
                    "val_images": n,
                    **metrics,
                }
            )
            bar.write(
                f"iteration {done}: box AP50 {metrics['box_ap50']:.3f}, AP {metrics['box_ap']:.3f} "
                f"on {n} val images ({log[-1]['seconds'] / 60:.1f} min)"
            )
        if done % cfg.checkpoint_every == 0 or done == cfg.iterations:
            payload = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "iteration": done,
                "elapsed": time.perf_counter() - t0,
            }
            atomic_save(ckpt_path, lambda tmp, p=payload: torch.save(p, tmp))
            with atomic_path(log_path) as tmp, open(tmp, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(e) + "\n" for e in log)
    bar.close()
    seconds = time.perf_counter() - t0
    if not ranks.is_main:
        return {"train_seconds": round(seconds, 1), "iterations": cfg.iterations}
    metrics = evaluate_detector(model, val, dev, progress=progress) if len(val) else {}
    meta = {
        "iterations": cfg.iterations,
        "train_seconds": round(seconds, 1),
        "seed": seed,
        "device": str(dev),
        "processes": ranks.world_size,
        "data": data_info or {},
        "val_metrics": metrics,
    }
    save_detector(run / "detector.pt", model, cfg, train.class_names, meta)
    result = {
        **metrics,
        "val_images": len(val),
        "train_seconds": round(seconds, 1),
        "iterations": cfg.iterations,
        "profile": cfg.profile,
        "device": str(dev),
        "processes": ranks.world_size,
        "log": log,
    }
    atomic_write_json(run / "detector_metrics.json", result, indent=2)
    return result
