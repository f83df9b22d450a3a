"""Training a segmentation network: one resumable loop for DeepLab-v2 and Mask R-CNN.

The rules are the detector's (:mod:`bbam_lite.detector.train`, whose helpers this reuses): every
``checkpoint_every`` iterations the model, optimiser and iteration go atomically to
``RUN/checkpoint.pt`` and a rerun of the same command continues from there; the batch order, the
augmentation and the RoI sampling are functions of (seed, iteration), so a resumed run ends with the
same weights as an uninterrupted one; ``RUN/settings.json`` refuses a rerun with other settings.
The result is ``RUN/model.pt`` (:mod:`.checkpoint`) and ``RUN/train_summary.json``.

What differs between the two networks lives in a job (:class:`SemanticJob`, :class:`InstanceJob`):
the network, one iteration's loss, the learning-rate schedule (DeepLab's poly decay; the
detector's warm-up + cosine for Mask R-CNN) and the periodic validation.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from bbam_lite.data.records import BoxDataset
from bbam_lite.detector.train import ImageCache, batch_indices, load_training_checkpoint
from bbam_lite.detector.train import lr_at as detector_lr_at
from bbam_lite.segment.batches import instance_batch, semantic_batch
from bbam_lite.segment.checkpoint import build_model, save_segmenter
from bbam_lite.segment.evaluate import evaluate_instance_model, evaluate_semantic_model
from bbam_lite.segment.instance import InstanceConfig, load_detector_weights
from bbam_lite.segment.semantic import SemanticConfig, semantic_loss
from bbam_lite.segment.targets import TrainingLabels
from bbam_lite.utils.io import atomic_path, atomic_save, atomic_write_json, make_folder
from bbam_lite.utils.run_folder import check_run_settings, finished_run


def poly_lr(cfg: SemanticConfig, iteration: int) -> float:
    """DeepLab's poly decay, lr * (1 - it / iterations) ** power, after a linear warm-up."""
    if iteration < cfg.warmup:
        return cfg.lr * (0.1 + 0.9 * iteration / max(cfg.warmup, 1))
    return cfg.lr * (1 - min(iteration, cfg.iterations - 1) / cfg.iterations) ** cfg.poly_power


class SemanticJob:
    """DeepLab-v2 on class maps."""

    task = "semantic"

    def __init__(
        self,
        cfg: SemanticConfig,
        labels: TrainingLabels,
        device: torch.device,
        seed: int,
        init: Path | None = None,
    ) -> None:
        self.cfg, self.labels, self.device, self.seed = cfg, labels, device, seed
        self.model = build_model("semantic", cfg, labels.dataset.num_classes)
        if init is not None:
            from bbam_lite.detector.model import load_detector

            det = load_detector(init, class_names=labels.dataset.class_names)
            self.model.load_detector_backbone(det.model.state_dict(), str(init))
        self.model.to(device)
        self.growing = cfg.seed_growing()

    def param_groups(self) -> list[dict]:
        return self.model.param_groups(self.cfg.head_lr_mult)

    def lr_at(self, iteration: int) -> float:
        return poly_lr(self.cfg, iteration)

    def loss(self, iteration: int, cache: ImageCache) -> tuple[torch.Tensor, dict]:
        idx = batch_indices(len(self.labels.records), self.cfg.batch_size, self.seed, iteration)
        images, target = semantic_batch(
            self.labels,
            idx,
            cache,
            self.cfg.crop_size,
            self.cfg.scale_range,
            self.seed,
            iteration,
            self.device,
        )
        grow = self.growing if self.growing.active(iteration, self.cfg.iterations) else None
        loss, stats = semantic_loss(self.model(images), target, grow)
        return loss, stats

    def validate(self, val: BoxDataset) -> dict:
        m = evaluate_semantic_model(self.model, val, self.device, progress=False)
        self.model.train()
        return {"miou": m["miou"]}


class InstanceJob:
    """Mask R-CNN on instance masks with ignore regions."""

    task = "instance"

    def __init__(
        self,
        cfg: InstanceConfig,
        labels: TrainingLabels,
        device: torch.device,
        seed: int,
        init: Path | None = None,
    ) -> None:
        self.cfg, self.labels, self.device, self.seed = cfg, labels, device, seed
        self.model = build_model("instance", cfg, labels.dataset.num_classes)
        if init is not None:
            from bbam_lite.detector.model import load_detector

            det = load_detector(init, class_names=labels.dataset.class_names)
            load_detector_weights(self.model, det.model.state_dict(), str(init))
        self.model.to(device)
        self.growing = cfg.seed_growing()

    def param_groups(self) -> list[dict]:
        return [{"params": [p for p in self.model.parameters() if p.requires_grad], "lr_mult": 1.0}]

    def lr_at(self, iteration: int) -> float:
        return detector_lr_at(self.cfg, iteration)

    def loss(self, iteration: int, cache: ImageCache) -> tuple[torch.Tensor, dict]:
        idx = batch_indices(len(self.labels.records), self.cfg.batch_size, self.seed, iteration)
        images, targets = instance_batch(self.labels, idx, cache, self.seed, iteration, self.device)
        heads = self.model.roi_heads
        heads.growing = self.growing if self.growing.active(iteration, self.cfg.iterations) else None
        losses = self.model(images, targets)
        return sum(losses.values()), {k: v.item() for k, v in losses.items()} | heads.last_stats

    def validate(self, val: BoxDataset) -> dict:
        m = evaluate_instance_model(self.model, val, self.device, progress=False)
        self.model.train()
        return {k: m[k] for k in ("ap50", "ap", "abo")}


def _optimizer(cfg, groups: list[dict]) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose sgd or adamw")


def train_segmentation(
    job: SemanticJob | InstanceJob,
    val: BoxDataset,
    run: Path,
    settings: dict,
    progress: bool = True,
) -> dict:
    """Train (or resume) ``job`` in ``run``; writes ``model.pt`` and ``train_summary.json``.

    ``settings`` (the job's config, seed, data, labels, initial weights) is what the run folder is
    bound to: a rerun with other settings is refused.
    """
    run = Path(run)
    make_folder(run)
    check_run_settings(run, settings)
    cfg, model, seed = job.cfg, job.model, job.seed
    optimizer = _optimizer(cfg, job.param_groups())
    start, elapsed, cpu, val_seconds = 0, 0.0, 0.0, 0.0
    ckpt_path, log_path = run / "checkpoint.pt", run / "train_log.jsonl"
    if ckpt_path.exists():
        ckpt = load_training_checkpoint(ckpt_path)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start, elapsed = int(ckpt["iteration"]), float(ckpt["elapsed"])
        cpu, val_seconds = float(ckpt.get("cpu_seconds", 0.0)), float(ckpt.get("val_seconds", 0.0))
        if start >= cfg.iterations and (summary := finished_run(run, "model.pt", "train_summary.json")):
            return summary  # finished: nothing to train or write
        if progress:
            print(f"resuming {run} from iteration {start}")
    log = []
    if log_path.exists():
        with open(log_path, encoding="utf-8") as f:
            log = [e for e in map(json.loads, f) if e["iteration"] <= start]

    cache = ImageCache()
    model.train()
    bar = tqdm(total=cfg.iterations, initial=start, desc=f"train {job.task}", unit="it", disable=not progress)
    t0 = time.perf_counter() - elapsed  # wall clock of all sessions of the run
    c0 = time.process_time() - cpu  # CPU time of this process, likewise (the honest cost on a shared CPU)
    running: list[float] = []
    ignored = grown = 0
    for it in range(start, cfg.iterations):
        base = job.lr_at(it)
        for g in optimizer.param_groups:
            g["lr"] = base * g.get("lr_mult", 1.0)
        torch.manual_seed(seed * 1_000_003 + it)  # RPN/RoI sampling: a function of (seed, iteration)
        loss, stats = job.loss(it, cache)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"iteration {it}: {job.task} loss is {loss.item()} ({stats})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        running.append(loss.item())
        ignored += stats.get("ignored", 0)
        grown += stats.get("grown", 0)
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(running[-20:]):.3f}")
        done = it + 1
        n = min(cfg.eval_images, len(val))  # eval_images 0: no periodic validation
        if n and (done % cfg.eval_every == 0 or done == cfg.iterations):
            v0 = time.perf_counter()
            metrics = job.validate(val.subset(range(n)))
            val_seconds += time.perf_counter() - v0
            log.append(
                {
                    "iteration": done,
                    "seconds": round(time.perf_counter() - t0, 1),
                    "loss": float(np.mean(running[-cfg.eval_every :])) if running else None,
                    "grown_fraction": grown / ignored if ignored else 0.0,
                    "val_images": n,
                    **metrics,
                }
            )
            ignored = grown = 0
            bar.write(
                f"iteration {done}: "
                + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items())
                + f" on {n} val images ({log[-1]['seconds'] / 60:.1f} min)"
            )
        if done % cfg.checkpoint_every == 0 or done == cfg.iterations:
            payload = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "iteration": done,
                "elapsed": time.perf_counter() - t0,
                "cpu_seconds": time.process_time() - c0,
                "val_seconds": val_seconds,
            }
            atomic_save(ckpt_path, lambda tmp, p=payload: torch.save(p, tmp))
            with atomic_path(log_path) as tmp, open(tmp, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(e) + "\n" for e in log)
    bar.close()
    seconds = time.perf_counter() - t0 - val_seconds  # training only: periodic validation excluded
    meta = {
        "iterations": cfg.iterations,
        "train_seconds": round(seconds, 1),
        "train_cpu_seconds": round(time.process_time() - c0, 1),  # validation included
        "val_seconds": round(val_seconds, 1),
        "seed": seed,
        "device": str(next(model.parameters()).device),
        "labels": settings.get("labels"),
        "data": settings.get("data"),
    }
    save_segmenter(run / "model.pt", job.task, model, cfg, job.labels.dataset.class_names, meta)
    summary = {
        "task": job.task,
        "profile": cfg.profile,
        "config": asdict(cfg),
        **meta,
        "train_images": len(job.labels.records),
        "log": log,
    }
    atomic_write_json(run / "train_summary.json", summary, indent=2)
    return summary
