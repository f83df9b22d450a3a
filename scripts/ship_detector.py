"""Copy a trained detector run into the package as the shipped detector, with its card.

    python scripts/ship_detector.py RUN --command "bbam-lite train-detector ..." [--commit SHA]

Weights are stored in float16 (half the size; they load into the float32 model unchanged in
behaviour up to rounding); the card records the command, seed, hardware, training time and the
validation AP measured on the float16 weights.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from datetime import date
from pathlib import Path

import torch

from bbam_lite.data.synthetic import read_synthetic
from bbam_lite.detector.evaluate import evaluate_detector
from bbam_lite.detector.model import load_detector
from bbam_lite.utils.io import atomic_save, atomic_write_json
from bbam_lite.utils.run_folder import hardware
from bbam_lite.weights import DEFAULT_DETECTOR


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="run folder of bbam-lite train-detector")
    parser.add_argument("--command", required=True, help="the exact command that trained it")
    parser.add_argument("--commit", default=None, help="git commit the run was trained at")
    args = parser.parse_args()

    payload = torch.load(args.run / "detector.pt", map_location="cpu", weights_only=True)
    payload["state_dict"] = {
        k: v.half() if v.is_floating_point() else v for k, v in payload["state_dict"].items()
    }
    atomic_save(DEFAULT_DETECTOR, lambda tmp: torch.save(payload, tmp))

    metrics = json.loads((args.run / "detector_metrics.json").read_text())
    data = payload["meta"]["data"]
    val = read_synthetic(Path(data["root"]), "val")
    shipped = evaluate_detector(load_detector(DEFAULT_DETECTOR).model, val, progress=False)
    commit = (
        args.commit
        or subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    )
    card = {
        "command": args.command,
        "seed": payload["meta"]["seed"],
        "profile": payload["config"]["profile"],
        "iterations": metrics["iterations"],
        "train_seconds": metrics["train_seconds"],
        "hardware": hardware(),
        "date": date.today().isoformat(),
        "commit": commit,
        "data": data,
        "box_ap50": shipped["box_ap50"],
        "box_ap": shipped["box_ap"],
        "val_images": len(val),
        "box_ap50_fp32": metrics["box_ap50"],
        "box_ap_fp32": metrics["box_ap"],
        "training_log": metrics["log"],
        "size_bytes": DEFAULT_DETECTOR.stat().st_size,
    }
    atomic_write_json(DEFAULT_DETECTOR.with_suffix(".json"), card, indent=2)
    print(json.dumps({k: card[k] for k in ("box_ap50", "box_ap", "train_seconds", "size_bytes")}))


if __name__ == "__main__":
    main()
