"""The demo (the README's main job) and the method comparison: every variant on the same images."""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import date
from pathlib import Path

import numpy as np

from bbam_lite.data.records import BoxDataset
from bbam_lite.data.stats import channel_mean
from bbam_lite.data.synthetic import SynthSettings, ensure_synthetic, read_synthetic
from bbam_lite.detector.model import LoadedDetector, load_detector
from bbam_lite.pseudo.folder import LabelsFolder
from bbam_lite.pseudo.generate import generate
from bbam_lite.pseudo.job import DetectorRef, LabelJob
from bbam_lite.pseudo.methods import variants
from bbam_lite.pseudo.settings import PseudoLabelSettings
from bbam_lite.utils.io import atomic_write_json
from bbam_lite.utils.run_folder import hardware


def demo_variants() -> tuple[str, ...]:
    """The pseudo-label variants the demo and the method comparison put side by side: every
    registered method's variants marked for the demo (:mod:`bbam_lite.pseudo.methods`)."""
    return tuple(name for name, v in variants().items() if v.in_demo)


def compare_methods(
    dataset: BoxDataset,
    detector: LoadedDetector,
    out: Path,
    methods: tuple[str, ...] | None = None,
    profile: str = "lite",
    limit: int | None = None,
    device: str = "cpu",
    progress: bool = True,
    **settings_overrides,
) -> dict[str, dict]:
    """Pseudo labels of every variant (names of :func:`bbam_lite.pseudo.methods.variants`; default
    :func:`demo_variants`) on the same images; returns each one's quality dict."""
    known = variants()
    methods = demo_variants() if methods is None else methods
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise ValueError(f"unknown pseudo-label variant(s) {unknown}; choose from {sorted(known)}")
    mean = channel_mean(dataset)
    ref = DetectorRef.trained_on(detector)
    results = {}
    for method in methods:
        s = PseudoLabelSettings(profile=profile, **{**known[method].settings, **settings_overrides})
        # labels made without the detector do not record it, so a new detector reuses them
        job = LabelJob.make(
            dataset, s, out / method, ref, mean, device=device, limit=limit, progress=progress
        )
        q = generate(job)
        results[method] = q
    return results


def comparison_rows(dataset: BoxDataset, labels_root: Path, methods: tuple[str, ...], n: int) -> list[dict]:
    """Rows for :func:`bbam_lite.plotting.method_grid` from written semantic labels."""
    rows = []
    for rec in list(dataset)[:n]:
        gt = np.zeros((rec.height, rec.width), np.uint8)
        for m, c in zip(rec.load_masks(), rec.labels, strict=True):
            gt[m] = c
        row = {"image": rec.load_image(), "boxes": rec.boxes, "labels": rec.labels, "gt": gt}
        for method in methods:
            row[method] = LabelsFolder(labels_root / method).read_semantic(rec)
        rows.append(row)
    return rows


def run_demo(
    out: Path,
    n_images: int = 10,
    device: str = "cpu",
    detector_path: Path | None = None,
    progress: bool = True,
) -> dict:
    """The main job: synthetic data -> shipped detector -> Box, Box + CRF, GrabCut and BBAM (paper
    and authors' presets) pseudo labels for the first ``n_images`` training images -> summary.json,
    a table and a figure."""
    from bbam_lite.plotting import method_grid
    from bbam_lite.weights import default_detector_path

    t0 = time.perf_counter()
    out = Path(out)
    settings = SynthSettings(n_train=n_images, n_val=0)  # the default set's first n_images training images
    data_root = ensure_synthetic(out / "data", settings, progress=progress)
    train = read_synthetic(data_root, "train")
    detector = load_detector(detector_path or default_detector_path(), device, class_names=train.class_names)
    shown = demo_variants()
    qualities = compare_methods(train, detector, out / "labels", shown, "lite", None, device, progress)
    seconds = time.perf_counter() - t0
    label_settings = {m: PseudoLabelSettings(profile="lite", **variants()[m].settings) for m in shown}
    summary = {
        "methods": {
            m: {
                "miou": q["miou"],
                "mean_instance_iou": q["mean_instance_iou"],
                "ignore_fraction": q["ignore_fraction"],
                "miou_ignore_as_background": q["miou_ignore_as_background"],
            }
            for m, q in qualities.items()
        },
        "seconds": round(seconds, 1),
        "images": len(train),
        "objects": max(q["objects"] for q in qualities.values()),
        "data": asdict(settings),
        "bbam_settings": {  # of the variants that run BBAM
            m: s.bbam_config().__dict__ for m, s in label_settings.items() if "bbam" in s.method_obj.settings
        },
        "hardware": hardware(),
        "date": date.today().isoformat(),
    }
    atomic_write_json(out / "summary.json", summary, indent=2)
    fig = method_grid(
        comparison_rows(train, out / "labels", shown, 4),
        shown,
        train.class_names,
        out / "comparison.png",
        title="Pseudo labels on the synthetic set (shipped detector)",
    )
    import matplotlib.pyplot as plt

    plt.close(fig)
    return summary


def format_table(summary: dict) -> str:
    lines = [f"{'method':<14} {'mIoU':>7} {'inst. IoU':>10} {'ignored':>8}"]
    for m, r in summary["methods"].items():
        lines.append(
            f"{m:<14} {r['miou']:>7.3f} {r['mean_instance_iou']:>10.3f} {r['ignore_fraction']:>8.3f}"
        )
    return "\n".join(lines)
