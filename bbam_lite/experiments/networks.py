"""The comparison the paper's tables make: segmentation networks trained on each kind of label.

For every labels folder (``gt`` = full supervision) :func:`compare` trains DeepLab-v2 and/or Mask
R-CNN into ``OUT/TASK-LABELS`` and scores it on the val split (mIoU; AP25, AP50, AP70, AP75, AP,
ABO) with :mod:`bbam_lite.segment.runs` (what ``bbam-lite train-seg`` and ``bbam-lite evaluate``
do). Every NoTrain labels folder (made on the val split: ``bbam-lite pseudo-labels --split val
--method grabcut --boxes gt|detector``) is scored directly as predictions: Box2Seg's
GrabCut-NoTrain-GT / -Det rows. The paper's numbers (VOC val)
go beside ours. Resumable: runs continue from their checkpoints, finished evaluations are read back.
Rows, in the papers' order: full, every variant of every registered pseudo-label method
(:func:`bbam_lite.pseudo.methods.variants`: box, box_crf, grabcut, bbam (the authors' code),
bbam_paper (the paper's text), and both BBAM presets with proposal refinement), then the NoTrain rows;
:func:`book_sensitivity` adds the networks of Tables 5 and 6
(thresholds and seed growing; lambda). A network is named for its task, labels folder and
training switches, so two tables that need the same network share it.
``scripts/seg_comparison.py`` is the command-line front end.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from bbam_lite.analysis.pseudo_labels import chapter_images
from bbam_lite.pseudo.methods import paper_numbers, variants
from bbam_lite.segment.runs import evaluate_labels_folder, evaluate_run, train_network
from bbam_lite.utils.run_folder import hardware

#: The rows, in the papers' order: full supervision, every registered pseudo-label variant
#: (:mod:`bbam_lite.pseudo.methods`), then Box2Seg's GrabCut-NoTrain rows.
ROWS = {
    "full": "Full supervision (ground-truth masks)",
    **{name: v.title for name, v in variants().items()},
    "grabcut_notrain_gt": "GrabCut-NoTrain-GT (no network)",
    "grabcut_notrain_det": "GrabCut-NoTrain-Det (no network)",
}

#: PASCAL VOC 2012 val, percent: BBAM Tables 1, 3 and 4 (instance AP25/50/70/75, ABO; semantic mIoU;
#: AP with and without proposal refinement) and Box2Seg's Table 1 (the GrabCut rows, mIoU); each
#: method's own numbers come from its registry entry.
PAPER = {
    "full": {"miou": 76.8, "ap25": 77.3, "ap50": 69.1, "ap70": 49.9, "ap75": 41.9, "abo": 65.8},
    **paper_numbers(),
}
INSTANCE_KEYS = ("ap25", "ap50", "ap70", "ap75", "ap", "abo")
#: The order the paper's tables show: full > BBAM > GrabCut > Box (checked for each BBAM row present).
EXPECTED_ORDER = ("full", "bbam", "grabcut", "box")
#: Every variant of the method in BBAM's place of that order.
BBAM_ROWS = tuple(n for n, v in variants().items() if v.method == EXPECTED_ORDER[1])

#: Table 5's trained rows as (theta_bg, theta_fg, seed growing), in the paper's order.
TABLE5_ROWS = (
    (0.2, 0.2, "off"),
    (0.5, 0.5, "off"),
    (0.8, 0.8, "off"),
    (0.3, 0.7, "off"),
    (0.3, 0.7, "on"),
    (0.2, 0.8, "off"),
    (0.2, 0.8, "on"),
)

#: The rows chapter 12 trains at the lite and full profiles: full supervision and every variant.
MAIN_ROWS = ("full", *variants())

#: The rows chapter 12 trains at the lite profile (see :data:`BOOK_SCHEDULES`).
LITE_ROWS = ("full", "box", "box_inner", "box_crf", "grabcut", "bbam", "bbam_paper", "bbam_refined")

#: Schedules of the book's chapter 12 per notebook profile: train-seg profile, iterations (semantic,
#: instance; None = that profile's), val images scored (None = all), tasks also scored after a CRF,
#: rows trained, Table 5's rows (instance networks) and Table 6's lambdas (both networks).
BOOK_SCHEDULES: dict[str, dict] = {
    "smoke": {
        "profile": "smoke",
        "iterations": (2, 2),
        "val_limit": 4,
        "crf": ("semantic",),
        "rows": ("full", "box", "bbam"),
        "table5": ((0.5, 0.5, "off"), (0.2, 0.8, "on")),
        "table6": (0.007, 0.02),
    },
    # sized for a class (issue: the whole lite book in an hour on 2 cores): chapter 6's training
    # images and BBAM labels (analysis.pseudo_labels.chapter_images: lite 12; paper: 10,582), the
    # rows of the paper's order plus Box^i (whose network collapses) and one refinement row; the
    # instance CRF columns, M∩G+ and the paper-text BBAM with proposals only at full
    "lite": {
        "profile": "lite",
        "iterations": (150, 120),  # lite train-seg profile: 1500 / 600; paper: 24,000 / 20,000
        "val_limit": 40,  # paper: all 1,449 VOC val images
        "crf": ("semantic",),  # paper: CRF on both
        "rows": LITE_ROWS,
        "table5": ((0.5, 0.5, "off"), (0.2, 0.8, "off"), (0.2, 0.8, "on")),  # paper: TABLE5_ROWS (7)
        "table6": (0.001, 0.007),  # paper: 0.001, 0.003, 0.005, 0.007, 0.01, 0.02
    },
    "full": {
        "profile": "paper",
        "iterations": (None, None),
        "val_limit": None,
        "crf": ("semantic", "instance"),
        "rows": MAIN_ROWS,
        "table5": TABLE5_ROWS,
        "table6": (0.001, 0.003, 0.005, 0.007, 0.01, 0.02),
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
    jobs: int = 1  # networks trained at a time on a CPU, one thread each (see train_all)


@dataclass(frozen=True)
class Row:
    """One row of a comparison: the labels a network learns from, or that are scored as they are."""

    title: str
    labels: str  # labels folder, or "gt" (full supervision)
    tasks: tuple[str, ...] | None = None  # None: the comparison's tasks
    grow: str = "on"  # instance seed growing (train-seg --grow): on (the default) | off
    notrain: bool = False  # a labels folder made on the val split, scored as predictions

    def network(self, task: str) -> str:
        """The folder name of this row's ``task`` network (shared by rows that train the same one)."""
        grow = "-grow-off" if task == "instance" and self.grow == "off" else ""
        return f"{task}-{Path(self.labels).name}{grow}"


def main_rows(labels: dict[str, str], notrain: dict[str, str] | None = None) -> dict[str, Row]:
    """The paper's rows (:data:`ROWS` names) from ``name -> labels folder`` (``gt``: ground truth)
    and ``name -> val labels folder`` for the NoTrain rows."""
    notrain = notrain or {}
    unknown = sorted((set(labels) | set(notrain)) - set(ROWS))
    if unknown:
        raise ValueError(f"unknown comparison rows {unknown}; choose from {sorted(ROWS)}")
    return {
        name: Row(ROWS[name], str(labels.get(name, notrain.get(name))), notrain=name in notrain)
        for name in ROWS
        if name in labels or name in notrain
    }


def train_and_evaluate(s: ComparisonSettings, row: Row, task: str) -> dict:
    """Train (or resume) ``row``'s ``task`` network and score it; returns its metrics and minutes."""
    run = Path(s.out) / row.network(task)
    iterations = s.semantic_iterations if task == "semantic" else s.instance_iterations
    if not (run / "model.pt").exists():
        train_network(
            s.data,
            row.labels,
            task,
            run,
            profile=s.profile,
            seed=s.seed,
            limit=s.limit or None,
            iterations=iterations or None,
            eval_images=0,  # scored once, below
            grow=row.grow if task == "instance" else None,
            device=s.device,
            progress=not s.quiet,
        )
    metrics_path = run / "metrics.json"
    stale = metrics_path.exists() and task in s.crf and not json.loads(metrics_path.read_text())["crf"]
    if not metrics_path.exists() or stale:  # (also when the CRF scores were asked for since)
        evaluate_run(run, crf=task in s.crf, limit=s.val_limit or None, device=s.device, progress=not s.quiet)
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
        evaluate_labels_folder(folder, s.data, split="val", limit=s.val_limit or None, json_path=out)
    r = json.loads(out.read_text(encoding="utf-8"))
    return {
        "semantic": {"miou": r["semantic"]["miou"], "eval_images": r["semantic"]["images"]},
        "instance": {k: r["instance"][k] for k in (*INSTANCE_KEYS, "ap_s", "ap_m", "ap_l")},
    }


def title(name: str) -> str:
    """A row's name in a sentence: its table title (full supervision in lower case)."""
    return "full supervision" if name == "full" else ROWS.get(name, name)


def chain(names: list[str], values: list[float]) -> str:
    """``"full 63.2 > BBAM 59.3 < GrabCut 60.1"``: the values in the given order, each pair joined
    by the sign it really has (so an order that fails is visible where it fails)."""
    parts = [f"{title(names[0])} {values[0]:.1f}"]
    for prev, (n, v) in zip(values, zip(names[1:], values[1:], strict=True), strict=False):
        sign = ">" if round(prev, 1) > round(v, 1) else "<" if round(prev, 1) < round(v, 1) else "="
        parts.append(f"{sign} {title(n)} {v:.1f}")
    return " ".join(parts)


def order_check(rows: dict, task: str, key: str, bbam: str = "bbam") -> dict | None:
    """Whether full > BBAM > GrabCut > Box holds for ``key`` among the rows that exist, with the
    BBAM row ``bbam`` (one of :data:`BBAM_ROWS`)."""
    order = [bbam if i == 1 else n for i, n in enumerate(EXPECTED_ORDER)]  # the BBAM row in BBAM's slot
    present = [(n, rows[n][task][key]) for n in order if n in rows and task in rows[n]]
    if len(present) < 2:
        return None
    values = [v for _, v in present]
    return {
        "rows": [n for n, _ in present],
        "values": values,
        "holds": all(a > b for a, b in zip(values, values[1:], strict=False)),
    }


def train_all(s: ComparisonSettings, todo: dict[str, tuple[Row, str]]) -> dict[str, dict]:
    """Train (or resume) and score every network of ``todo`` (folder name -> a row that trains it
    and the task) once: in order in this process when ``s.jobs`` is 1, else ``s.jobs`` at a time
    in processes of one thread each. A network's numbers depend on its settings and the threads it
    trains with, not on the order or on the other networks, so ``jobs`` changes no result where
    this process runs one thread too (``book run`` runs chapters so)."""
    if s.jobs <= 1 or len(todo) <= 1:
        return {net: train_and_evaluate(s, row, task) for net, (row, task) in todo.items()}
    from bbam_lite.pseudo.workers import init_worker, one_thread_environment

    context = multiprocessing.get_context("spawn")
    with (
        one_thread_environment(),
        ProcessPoolExecutor(
            min(s.jobs, len(todo)),
            mp_context=context,
            initializer=init_worker,
            initargs=(os.getpid(),),
        ) as pool,
    ):
        futures = {net: pool.submit(train_and_evaluate, s, row, task) for net, (row, task) in todo.items()}
        return {net: future.result() for net, future in futures.items()}


def compare(s: ComparisonSettings, rows: dict[str, Row]) -> dict:
    """Train and score every row (in order) and return the result: rows, the expected-order checks
    of the paper's rows, the paper's numbers."""
    folders: dict[str, str] = {}
    for row in rows.values():  # networks are named for their labels folder
        name = Path(row.labels).name
        if not row.notrain and folders.setdefault(name, row.labels) != row.labels:
            raise ValueError(
                f"labels folders {folders[name]} and {row.labels} share the name {name}; rename one"
            )
    t0 = time.perf_counter()
    todo: dict[str, tuple[Row, str]] = {}  # network folder -> the first row that trains it
    for row in rows.values():
        for task in () if row.notrain else row.tasks or s.tasks:
            todo.setdefault(row.network(task), (row, task))
    scores = train_all(s, todo)
    done: dict[str, dict] = {}
    for name, row in rows.items():
        done[name] = {"title": row.title, "labels": row.labels}
        if row.notrain:
            done[name].update(score_notrain(s, row.labels))
            continue
        tasks = row.tasks or s.tasks
        if "instance" in tasks:
            done[name]["grow"] = row.grow
        for task in tasks:
            done[name][task] = scores[row.network(task)]
    return {
        "date": date.today().isoformat(),
        "hardware": hardware(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(s).items()},
        "rows": done,
        "expected_order": {
            f"{task}/{key}/{b}": order_check(done, task, key, b)
            for task, keys in (("semantic", ("miou",)), ("instance", ("ap50", "ap", "abo")))
            for key in keys
            for b in BBAM_ROWS
            if b in done
        },
        "paper_voc_val_percent": PAPER,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def markdown_table(result: dict) -> str:
    """Our rows (percent), then the paper's."""

    def f(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}"

    lines = [
        "| labels | mIoU | mIoU + CRF | AP25 | AP50 | AP70 | AP75 | AP | ABO | AP50 + CRF | AP + CRF "
        "| train CPU min (sem / inst) |",
        "| --- " * 12 + "|",
    ]
    for name, row in result["rows"].items():
        sem, inst = row.get("semantic", {}), row.get("instance", {})
        minutes = [
            f"{row[t]['train_cpu_seconds'] / 60:.1f}" if row.get(t, {}).get("train_cpu_seconds") else "-"
            for t in ("semantic", "instance")
        ]
        cells = [f(sem.get("miou")), f(sem.get("crf", {}).get("miou"))]
        cells += [f(inst.get(k)) for k in INSTANCE_KEYS]
        cells += [f(inst.get("crf", {}).get(k)) for k in ("ap50", "ap")]
        title = row.get("title", ROWS.get(name, name))
        lines.append(f"| {title} | " + " | ".join(cells) + f" | {' / '.join(minutes)} |")
    lines += ["", "Paper (PASCAL VOC 2012 val, %):", ""]
    lines += ["| labels | mIoU | AP25 | AP50 | AP70 | AP75 | AP | ABO |", "| --- " * 8 + "|"]
    for name, p in PAPER.items():
        cells = [str(p.get(k, "-")) for k in ("miou", *INSTANCE_KEYS)]
        lines.append(f"| {ROWS[name]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def network_jobs(device: str) -> int:
    """How many networks chapter 12 trains at a time: the cores this process may use on a CPU
    (one thread each), one on a GPU."""
    from bbam_lite.pseudo.workers import available_cores

    return available_cores() if device == "cpu" else 1


def book_settings(ws, schedule: dict) -> ComparisonSettings:
    """How chapter 12 trains and scores every network at the workspace's profile. The networks live
    in ``RUN/segmentation/<key of these settings and the detector's checksum>/<network>``, shared
    by all the chapter's tables."""
    from bbam_lite.workspace import settings_key

    training = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in schedule.items()
        if k in ("profile", "iterations", "val_limit", "crf")
    }
    # the networks start from the detector's weights: a new detector trains them all again
    key = settings_key(
        {
            **training,
            "label_images": chapter_images(ws),
            "seed": ws.seed,
            "dataset": ws.dataset,
            "detector": ws.detector_digest(),
        }
    )
    return ComparisonSettings(
        data=ws.data_path(),
        out=ws.run_dir / "segmentation" / key,
        profile=schedule["profile"],
        limit=chapter_images(ws),
        val_limit=schedule["val_limit"],
        semantic_iterations=schedule["iterations"][0],
        instance_iterations=schedule["iterations"][1],
        crf=tuple(schedule.get("crf", ())),
        seed=ws.seed,
        device=ws.device,
        jobs=network_jobs(ws.device),
    )


def _ident(settings: ComparisonSettings, rows: dict[str, Row]) -> dict:
    return {
        "networks": Path(settings.out).name,
        "rows": {n: [r.title, Path(r.labels).name, r.tasks, r.grow, r.notrain] for n, r in rows.items()},
    }


def book_comparison(ws, schedule: dict | None = None) -> dict:
    """Chapter 12: every row of the profile's schedule, trained on the workspace's pseudo labels
    (shared with the other chapters) and scored on its val split, plus the GrabCut-NoTrain rows.

    ``ws`` is a :class:`bbam_lite.workspace.Workspace`. Resumable; the finished result is cached
    in the run folder like any analysis.
    """
    sched = schedule or BOOK_SCHEDULES[ws.profile.name]
    known = variants()
    fields = {
        n: {k: v for k, v in known[n].settings.items() if k != "method"} for n in sched["rows"] if n != "full"
    }

    # labels no other chapter makes come first (the others make each method at its default
    # settings), so that a parallel run of the other chapters (bbam-lite book run --only ...)
    # makes the shared ones meanwhile
    def shared(n: str) -> bool:
        method = known[n].method
        return ws.label_settings(method, **fields[n]) == ws.label_settings(method)

    made, images = {}, chapter_images(ws)  # chapter 6's images: its BBAM labels are shared
    for name in sorted(fields, key=shared):
        made[name] = str(ws.labels(known[name].method, limit=images, **fields[name])[0])
    labels = {name: "gt" if name == "full" else made[name] for name in sched["rows"]}
    notrain = {
        name: str(ws.labels("grabcut", split="val", limit=sched["val_limit"], boxes=boxes)[0])
        for name, boxes in (("grabcut_notrain_gt", "gt"), ("grabcut_notrain_det", "detector"))
    }
    settings = book_settings(ws, sched)
    rows = main_rows(labels, notrain)
    return ws.cached_json("segmentation-comparison", _ident(settings, rows), lambda: compare(settings, rows))


def book_sensitivity(ws, schedule: dict | None = None) -> dict:
    """Tables 5 and 6 as the paper makes them, with trained networks: Mask R-CNN on BBAM labels
    thresholded at each (theta_bg, theta_fg), with and without seed growing (one BBAM run: the
    labels are re-derived from its stored maps), and both networks on BBAM labels of each lambda
    (one BBAM run per value). The paper's text preset, as in the paper's tables. Returns the
    comparison result of both tables' rows (``table5/...``, ``table6/...``) with the paper's numbers.
    """
    from bbam_lite.analysis.sensitivity import PAPER_TABLE5, PAPER_TABLE5_GROWING, PAPER_TABLE6
    from bbam_lite.analysis.study import bbam_labels

    sched = schedule or BOOK_SCHEDULES[ws.profile.name]
    rows: dict[str, Row] = {}
    for bg, fg, grow in sched["table5"]:
        folder = ws.labels("bbam", limit=chapter_images(ws), preset="paper", theta_fg=fg, theta_bg=bg)[0]
        title = f"θ_bg {bg:g} / θ_fg {fg:g}, growing {grow}"
        rows[f"table5/{bg:g}-{fg:g}-{grow}"] = Row(title, str(folder), ("instance",), grow)
    for lam in sched["table6"]:
        folder = bbam_labels(ws, chapter_images(ws), preset="paper", lam=float(lam))[0]
        rows[f"table6/{lam:g}"] = Row(f"λ {lam:g}", str(folder))
    settings = book_settings(ws, sched)
    ident = _ident(settings, rows)
    result = ws.cached_json("segmentation-sensitivity", ident, lambda: compare(settings, rows))
    return {
        **result,
        "paper_table5": {
            f"{bg:g}-{fg:g}-{grow}": _lower(table[(bg, fg)])
            for grow, table in (("off", PAPER_TABLE5), ("on", PAPER_TABLE5_GROWING))
            for bg, fg in table
        },
        "paper_table6": {f"{lam:g}": _lower(p) for lam, p in PAPER_TABLE6.items()},
    }


def _lower(paper: dict) -> dict:
    """The sensitivity tables' paper numbers under this module's metric names (AP50 -> ap50)."""
    return {k.lower(): v for k, v in paper.items()}


# ------------------------------------------------------------------ chapter 12's tables (display)
def percent(v: float | None) -> float | None:
    """A score in [0, 1] as percent (None stays None: a row or metric that was not run)."""
    return None if v is None else 100 * v


#: Columns of chapter 12's comparison table: (key, header, format).
COMPARISON_COLUMNS = [
    ("labels", "labels", ""),
    ("miou", "mIoU (%)", ".1f"),
    ("ap25", "AP25 (%)", ".1f"),
    ("ap50", "AP50 (%)", ".1f"),
    ("ap70", "AP70 (%)", ".1f"),
    ("ap75", "AP75 (%)", ".1f"),
    ("ap", "AP (%)", ".1f"),
    ("abo", "ABO (%)", ".1f"),
    ("miou_crf", "mIoU + CRF (%)", ".1f"),
    ("ap50_crf", "AP50 + CRF (%)", ".1f"),
    ("sem_min", "train min (sem.)", ".1f"),
    ("inst_min", "train min (inst.)", ".1f"),
]


def schedule_table(ws, schedule: dict | None = None):
    """Chapter 12's schedule: training iterations of each network here and in the paper, with the
    train-seg profile and the numbers of training and validation images in the caption."""
    from bbam_lite.analysis.tables import Table

    sched = schedule or BOOK_SCHEDULES[ws.profile.name]
    paper_iterations = {"semantic": 24000, "instance": 20000}
    rows = [
        {
            "network": task,
            "iterations here": it if it is not None else f"profile {sched['profile']}'s",
            "paper": paper_iterations[task],
        }
        for task, it in zip(("semantic", "instance"), sched["iterations"], strict=True)
    ]
    caption = (
        f"train-seg profile {sched['profile']}; {chapter_images(ws) or 'all'} training images, "
        f"{sched['val_limit'] or 'all'} validation images scored (paper: 10,582 and 1,449 on VOC)"
    )
    columns = [
        ("network", "network", ""),
        ("iterations here", "iterations (this run)", ""),
        ("paper", "paper", ",d"),
    ]
    return Table(rows, columns, caption=caption)


def training_minutes(result: dict) -> float:
    """Minutes of network training (wall clock) in a comparison result, all rows and tasks."""
    rows = result["rows"].values()
    return sum(r[t].get("train_seconds", 0) for r in rows for t in ("semantic", "instance") if t in r) / 60


def comparison_rows(result: dict) -> list[dict]:
    """One row per labels kind of :func:`book_comparison`'s result: scores in percent (the keys
    of :data:`COMPARISON_COLUMNS`), training minutes of each network."""
    out = []
    for row in result["rows"].values():
        sem, inst = row.get("semantic", {}), row.get("instance", {})
        out.append(
            {
                "labels": row["title"],
                "miou": percent(sem.get("miou")),
                "miou_crf": percent(sem.get("crf", {}).get("miou")),
                "ap50_crf": percent(inst.get("crf", {}).get("ap50")),
                **{k: percent(inst.get(k)) for k in INSTANCE_KEYS},
                "sem_min": sem["train_seconds"] / 60 if "train_seconds" in sem else None,
                "inst_min": inst["train_seconds"] / 60 if "train_seconds" in inst else None,
            }
        )
    return out


def comparison_tables(result: dict) -> tuple:
    """Chapter 12's two tables: this run's scores (%) of every row, and the papers' numbers."""
    from bbam_lite.analysis.tables import Table

    rows = comparison_rows(result)
    ours = Table(
        rows,
        [c for c in COMPARISON_COLUMNS if any(r.get(c[0]) is not None for r in rows)],  # run's columns
        caption="Validation scores of networks trained on each kind of label (a dash: no network)",
    )
    paper_rows = [{"labels": ROWS[n], **p} for n, p in PAPER.items()]
    paper = Table(
        paper_rows,
        [c for c in COMPARISON_COLUMNS[:8] if any(r.get(c[0]) is not None for r in paper_rows)],
        caption="The papers' numbers (PASCAL VOC 2012 val, %)",
    )
    return ours, paper


def order_table(result: dict):
    """The expected-order checks of a comparison result (full > BBAM > GrabCut > Box on each score,
    for each BBAM row), one line each, with the values in percent."""
    from bbam_lite.analysis.tables import Table

    checks = [
        {
            "score": k.rsplit("/", 1)[0],
            "bbam row": ROWS[k.rsplit("/", 1)[1]],
            "order": chain(c["rows"], [100 * v for v in c["values"]]),
            "holds": "yes" if c["holds"] else "no",
        }
        for k, c in result["expected_order"].items()
        if c is not None
    ]
    columns = [
        ("score", "score", ""),
        ("bbam row", "BBAM row", ""),
        ("order", "rows in the paper's order (%, signs as measured)", ""),
        ("holds", "order holds", ""),
    ]
    return Table(checks, columns)


def table5_rows(sens: dict) -> list[dict]:
    """Table 5's rows of :func:`book_sensitivity`'s result: thresholds, seed growing, instance
    scores (%) and the paper's beside them."""
    out = []
    for name, row in sens["rows"].items():
        if name.startswith("table5/"):
            key = name.split("/", 1)[1]
            bg, fg, grow = key.split("-")
            inst, paper = row["instance"], sens["paper_table5"].get(key, {})
            out.append(
                {
                    "theta_bg": float(bg),
                    "theta_fg": float(fg),
                    "grow": grow,
                    **{k: percent(inst.get(k)) for k in ("ap", "ap50", "ap75", "abo")},
                    **{f"paper_{k}": paper.get(k) for k in ("ap", "ap50", "ap75")},
                }
            )
    return out


def table6_rows(sens: dict) -> list[dict]:
    """Table 6's rows of :func:`book_sensitivity`'s result: lambda, instance and semantic scores
    (%) and the paper's beside them."""
    out = []
    for name, row in sens["rows"].items():
        if name.startswith("table6/"):
            lam = name.split("/", 1)[1]
            paper = sens["paper_table6"].get(lam, {})
            out.append(
                {
                    "lam": float(lam),
                    **{k: percent(row["instance"].get(k)) for k in ("ap", "ap50", "ap75")},
                    "miou": percent(row["semantic"]["miou"]),
                    **{f"paper_{k}": paper.get(k) for k in ("ap", "ap50", "ap75", "miou")},
                }
            )
    return out


def sensitivity_tables(sens: dict) -> tuple:
    """Chapter 12's Tables 5 and 6 (trained networks, %) with the paper's numbers beside ours."""
    from bbam_lite.analysis.tables import Table

    ap = [("ap", "AP (%)", ".1f"), ("ap50", "AP50 (%)", ".1f"), ("ap75", "AP75 (%)", ".1f")]
    paper_ap = [(f"paper_{k}", f"paper: {h}", f) for k, h, f in ap]
    t5 = Table(
        table5_rows(sens),
        [
            ("theta_bg", "θ_bg", ".1f"),
            ("theta_fg", "θ_fg", ".1f"),
            ("grow", "growing", ""),
            *ap,
            ("abo", "ABO (%)", ".1f"),
            *paper_ap,
        ],
        caption="Table 5 with trained Mask R-CNNs (validation, %); the paper's on VOC val",
    )
    t6 = Table(
        table6_rows(sens),
        [
            ("lam", "λ", ".3f"),
            *ap,
            ("miou", "sem. mIoU (%)", ".1f"),
            *paper_ap,
            ("paper_miou", "paper: sem. mIoU (%)", ".1f"),
        ],
        caption="Table 6 with trained networks (validation, %); the paper's on VOC val",
    )
    return t5, t6
