"""The comparison the paper's tables make: segmentation networks trained on each kind of label.

For every labels folder (``gt`` = full supervision) :func:`compare` trains DeepLab-v2 and/or Mask
R-CNN with ``bbam-lite train-seg`` into ``OUT/NAME-TASK`` and scores it with ``bbam-lite evaluate``
on the val split (mIoU; AP25, AP50, AP70, AP75, AP, ABO). Every NoTrain labels folder (made on the
val split: ``bbam-lite pseudo-labels --split val --method grabcut --boxes gt|detector``) is scored
directly as predictions: Box2Seg's GrabCut-NoTrain-GT / -Det rows. The paper's numbers (VOC val)
go beside ours. Resumable: runs continue from their checkpoints, finished evaluations are read back.
Rows, in the papers' order: full, box, box_crf, grabcut, bbam, bbam_official (the authors' preset),
bbam_refined, then the NoTrain rows.
``scripts/seg_comparison.py`` is the command-line front end.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from bbam_lite.experiments import hardware

ROWS = {
    "full": "Full supervision (ground-truth masks)",
    "box": "Box",
    "box_crf": "Box + CRF",
    "grabcut": "GrabCut",
    "bbam": "BBAM (no proposal refinement)",
    "bbam_official": "BBAM, authors' code (no proposal refinement)",
    "bbam_refined": "BBAM (with proposal refinement)",
    "grabcut_notrain_gt": "GrabCut-NoTrain-GT (no network)",
    "grabcut_notrain_det": "GrabCut-NoTrain-Det (no network)",
}

#: PASCAL VOC 2012 val, percent: BBAM Tables 1, 3 and 4 (instance AP25/50/70/75, ABO; semantic mIoU;
#: AP with and without proposal refinement) and Box2Seg's Table 1 (the GrabCut rows, mIoU).
PAPER = {
    "full": {"miou": 76.8, "ap25": 77.3, "ap50": 69.1, "ap70": 49.9, "ap75": 41.9, "abo": 65.8},
    "bbam_refined": {
        "miou": 73.7,
        "ap25": 76.8,
        "ap50": 63.7,
        "ap70": 39.5,
        "ap75": 31.8,
        "ap": 33.4,
        "abo": 63.0,
    },
    "bbam": {"ap": 29.6, "ap50": 61.9, "ap75": 25.8},
    "grabcut": {"miou": 72.7},
    "grabcut_notrain_gt": {"miou": 71.6},
    "grabcut_notrain_det": {"miou": 68.5},
}
INSTANCE_KEYS = ("ap25", "ap50", "ap70", "ap75", "ap", "abo")
#: The order the paper's tables show: full > BBAM > GrabCut > Box (checked for each BBAM row present).
EXPECTED_ORDER = ("full", "bbam", "grabcut", "box")
BBAM_ROWS = ("bbam", "bbam_official", "bbam_refined")

#: Schedules of the book's chapter 12 per notebook profile: train-seg profile, iterations (semantic,
#: instance; None = that profile's), val images scored (None = all), rows trained.
BOOK_SCHEDULES: dict[str, dict] = {
    "smoke": {"profile": "smoke", "iterations": (2, 2), "val_limit": 4, "rows": ("full", "box", "bbam")},
    "lite": {
        "profile": "lite",
        "iterations": (200, 150),  # lite train-seg profile: 1500 / 600; paper: 2.4e4 / 2e4
        "val_limit": 60,
        "rows": ("full", "box", "box_crf", "grabcut", "bbam", "bbam_official"),
    },
    "full": {
        "profile": "paper",
        "iterations": (None, None),
        "val_limit": None,
        "crf": ("semantic", "instance"),
        "rows": ("full", "box", "box_crf", "grabcut", "bbam", "bbam_official", "bbam_refined"),
    },
}


@dataclass(frozen=True)
class ComparisonSettings:
    """How every network of the comparison is trained and scored (the same for all rows)."""

    data: Path
    out: Path
    tasks: tuple[str, ...] = ("semantic", "instance")
    profile: str = "lite"
    limit: int | None = None  # first N training images
    val_limit: int | None = None  # first N val images
    semantic_iterations: int | None = None  # None: the profile's
    instance_iterations: int | None = None
    crf: tuple[str, ...] = ()  # tasks also scored after dense-CRF post-processing
    seed: int = 0
    quiet: bool = True
    device: str = "cpu"


def _run(argv: list[str]) -> None:
    from bbam_lite.cli import main

    status = main(argv)
    if status != 0:
        raise RuntimeError(f"bbam-lite {' '.join(argv)} failed with status {status}")


def train_and_evaluate(s: ComparisonSettings, name: str, labels: str, task: str) -> dict:
    """Train (or resume) one network on ``labels`` and score it; returns its metrics and minutes."""
    run = Path(s.out) / f"{name}-{task}"
    quiet = ["--quiet"] if s.quiet else []
    iterations = s.semantic_iterations if task == "semantic" else s.instance_iterations
    argv = [*quiet, "train-seg", "--task", task, "--data", str(s.data), "--labels", str(labels)]
    argv += ["--out", str(run), "--profile", s.profile, "--seed", str(s.seed), "--eval-images", "0"]
    argv += ["--device", s.device]
    argv += ["--iterations", str(iterations)] if iterations else []
    argv += ["--limit", str(s.limit)] if s.limit else []
    if not (run / "model.pt").exists():
        _run(argv)
    metrics_path = run / "metrics.json"
    if not metrics_path.exists():
        ev = [*quiet, "evaluate", "--run", str(run), "--device", s.device]
        ev += ["--crf"] if task in s.crf else []
        _run(ev + (["--limit", str(s.val_limit)] if s.val_limit else []))
    m = json.loads(metrics_path.read_text(encoding="utf-8"))
    out = {
        "train_seconds": m["train_seconds"],
        "train_cpu_seconds": m.get("train_cpu_seconds"),
        "eval_images": m["images"],
        **m["metrics"],
    }
    out.pop("per_class_iou", None)
    if m.get("crf"):
        out["crf"] = {k: m["crf"][k] for k in ("miou", *INSTANCE_KEYS) if k in m["crf"]}
    return out


def score_notrain(s: ComparisonSettings, folder: str) -> dict:
    """A labels folder made on the val split, scored as predictions (``FOLDER/metrics-val.json``)."""
    out = Path(folder) / "metrics-val.json"
    if not out.exists():
        argv = ["--quiet", "evaluate", "--labels", str(folder), "--data", str(s.data), "--split", "val"]
        argv += ["--device", s.device]
        _run(argv + (["--limit", str(s.val_limit)] if s.val_limit else []) + ["--json", str(out)])
    r = json.loads(out.read_text(encoding="utf-8"))
    return {
        "semantic": {"miou": r["semantic"]["miou"], "eval_images": r["semantic"]["images"]},
        "instance": {k: r["instance"][k] for k in (*INSTANCE_KEYS, "ap_s", "ap_m", "ap_l")},
    }


def order_check(rows: dict, task: str, key: str, bbam: str = "bbam") -> dict | None:
    """Whether full > BBAM > GrabCut > Box holds for ``key`` among the rows that exist, with the
    BBAM row ``bbam`` (one of :data:`BBAM_ROWS`)."""
    order = [bbam if n == "bbam" else n for n in EXPECTED_ORDER]
    present = [(n, rows[n][task][key]) for n in order if n in rows and task in rows[n]]
    if len(present) < 2:
        return None
    values = [v for _, v in present]
    return {
        "rows": [n for n, _ in present],
        "values": values,
        "holds": all(a > b for a, b in zip(values, values[1:], strict=False)),
    }


def compare(s: ComparisonSettings, labels: dict[str, str], notrain: dict[str, str] | None = None) -> dict:
    """Run every row (``labels``: row name -> labels folder or ``gt``; ``notrain``: row name -> val
    labels folder) and return the result: rows, the expected-order checks, the paper's numbers."""
    notrain = notrain or {}
    unknown = sorted((set(labels) | set(notrain)) - set(ROWS))
    if unknown:
        raise ValueError(f"unknown comparison rows {unknown}; choose from {sorted(ROWS)}")
    t0 = time.perf_counter()
    rows: dict[str, dict] = {}
    for name in ROWS:
        if name in labels:
            rows[name] = {"labels": str(labels[name])}
            for task in s.tasks:
                rows[name][task] = train_and_evaluate(s, name, labels[name], task)
        elif name in notrain:
            rows[name] = {"labels": str(notrain[name]), **score_notrain(s, notrain[name])}
    return {
        "date": date.today().isoformat(),
        "hardware": hardware(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(s).items()},
        "rows": rows,
        "expected_order": {
            f"{task}/{key}/{b}": order_check(rows, task, key, b)
            for task, keys in (("semantic", ("miou",)), ("instance", ("ap50", "ap", "abo")))
            for key in keys
            for b in BBAM_ROWS
            if b in rows
        },
        "paper_voc_val_percent": PAPER,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def markdown_table(result: dict) -> str:
    """Our rows (percent), then the paper's."""

    def f(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}"

    lines = [
        "| labels | mIoU | mIoU + CRF | AP25 | AP50 | AP70 | AP75 | AP | ABO | train CPU min (sem / inst) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in result["rows"].items():
        sem, inst = row.get("semantic", {}), row.get("instance", {})
        minutes = [
            f"{row[t]['train_cpu_seconds'] / 60:.1f}" if row.get(t, {}).get("train_cpu_seconds") else "-"
            for t in ("semantic", "instance")
        ]
        cells = [f(sem.get("miou")), f(sem.get("crf", {}).get("miou"))]
        cells += [f(inst.get(k)) for k in INSTANCE_KEYS]
        lines.append(f"| {ROWS[name]} | " + " | ".join(cells) + f" | {' / '.join(minutes)} |")
    lines += ["", "Paper (PASCAL VOC 2012 val, %):", ""]
    lines += ["| labels | mIoU | AP25 | AP50 | AP70 | AP75 | AP | ABO |", "| --- " * 8 + "|"]
    for name, p in PAPER.items():
        cells = [str(p.get(k, "-")) for k in ("miou", *INSTANCE_KEYS)]
        lines.append(f"| {ROWS[name]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def book_comparison(ws, schedule: dict | None = None) -> dict:
    """Chapter 12: every row of the profile's schedule, trained on the workspace's pseudo labels
    (shared with the other chapters) and scored on its val split, plus the GrabCut-NoTrain rows.

    ``ws`` is a :class:`bbam_lite.workspace.Workspace`. Networks go to ``RUN/segmentation/<key>``
    (resumable); the finished result is cached in the run folder like any analysis.
    """
    from bbam_lite.experiments import VARIANTS
    from bbam_lite.workspace import settings_key

    sched = schedule or BOOK_SCHEDULES[ws.profile.name]
    # labels no other chapter makes come first, so that a parallel run of the other chapters
    # (bbam-lite book run --only ...) makes the shared ones meanwhile
    shared = {"box", "box_crf", "grabcut", "bbam"}
    made = {}
    for name in sorted((n for n in sched["rows"] if n != "full"), key=lambda n: n in shared):
        fields = dict(VARIANTS[name])  # the demo's and the method comparison's registry
        made[name] = str(ws.labels(fields.pop("method"), **fields)[0])
    labels = {name: "gt" if name == "full" else made[name] for name in sched["rows"]}
    notrain = {
        name: str(ws.labels("grabcut", split="val", limit=sched["val_limit"], boxes=boxes)[0])
        for name, boxes in (("grabcut_notrain_gt", "gt"), ("grabcut_notrain_det", "detector"))
    }
    ident = {
        "schedule": {k: list(v) if isinstance(v, tuple) else v for k, v in sched.items()},
        "labels": {k: Path(v).name for k, v in {**labels, **notrain}.items()},
        "label_images": ws.profile.label_images,
    }
    settings = ComparisonSettings(
        data=ws.data_path(),
        out=ws.run_dir / "segmentation" / settings_key({**ident, "seed": ws.seed, "dataset": ws.dataset}),
        profile=sched["profile"],
        limit=ws.profile.label_images if "full" in labels else None,
        val_limit=sched["val_limit"],
        semantic_iterations=sched["iterations"][0],
        instance_iterations=sched["iterations"][1],
        crf=tuple(sched.get("crf", ())),
        seed=ws.seed,
        device=ws.device,
    )
    return ws.cached_json("segmentation-comparison", ident, lambda: compare(settings, labels, notrain))
