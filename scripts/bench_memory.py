"""Peak memory of pseudo labelling one large image: ``/usr/bin/time -v``'s maximum resident set size
of ``bbam-lite pseudo-labels`` on a one-image dataset of each size (a synthetic image scaled up, its
boxes with it), for the CPU methods the memory budget covers (issue: GrabCut on a 6000 x 4000 image
peaked at 5.25 GB). Results: docs/benchmarks.md ("Memory of the CPU methods") and the JSON given.

    python scripts/bench_memory.py --sizes 1500x1000 3000x2000 6000x4000 --methods grabcut \\
        --json docs/measurements/memory-YYYY-MM-DD.json [--memory-budget 2G]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def one_image_dataset(root: Path, width: int, height: int, seed: int = 0) -> Path:
    """A COCO-layout folder (annotations/train.json, images/train/) with one synthetic image scaled
    to ``width`` x ``height`` and its boxes and masks scaled with it."""
    from bbam_lite.data.coco import encode_rle
    from bbam_lite.data.synthetic import SynthSettings, synthesize

    src = synthesize(root / "src", SynthSettings(n_train=1, n_val=1, seed=seed, size=160), progress=False)
    from bbam_lite.data import load_dataset

    rec = load_dataset("synthetic", src, "train")[0]
    image = cv2.resize(rec.load_image(), (width, height), interpolation=cv2.INTER_LINEAR)
    masks = rec.load_masks()
    sx, sy = width / rec.width, height / rec.height
    out = root / f"data-{width}x{height}"
    (out / "images" / "train").mkdir(parents=True)
    (out / "annotations").mkdir()
    cv2.imwrite(str(out / "images" / "train" / "0.png"), image[:, :, ::-1])
    anns = []
    for k, (b, c) in enumerate(zip(rec.boxes, rec.labels, strict=True)):
        m = cv2.resize(masks[k].astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
        x1, y1, x2, y2 = float(b[0] * sx), float(b[1] * sy), float(b[2] * sx), float(b[3] * sy)
        anns.append(
            {
                "id": k + 1,
                "image_id": 1,
                "category_id": int(c),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": float(m.sum()),
                "iscrowd": 0,
                "segmentation": encode_rle(m.astype(bool)),
            }
        )
    names = load_dataset("synthetic", src, "train").class_names[1:]
    coco = {
        "images": [{"id": 1, "file_name": "0.png", "width": width, "height": height}],
        "annotations": anns,
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)],
    }
    (out / "annotations" / "train.json").write_text(json.dumps(coco))
    return out


def peak_rss(argv: list[str]) -> tuple[float, float, int, str]:
    """(peak resident set size in GB, wall seconds, exit status, stderr tail) of ``argv``."""
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", *argv], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    gb = int(m.group(1)) * 1024 / 1e9 if m else float("nan")
    tail = [ln for ln in p.stderr.splitlines() if "bbam-lite" in ln][-3:]
    return gb, wall, p.returncode, " / ".join(tail)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["1500x1000", "3000x2000", "6000x4000"])
    ap.add_argument("--methods", nargs="+", default=["grabcut"])
    ap.add_argument("--profile", default="lite")
    ap.add_argument("--memory-budget", default=None, help="passed to pseudo-labels")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from bbam_lite.utils.run_folder import git_commit, hardware

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            w, h = (int(v) for v in size.split("x"))
            data = one_image_dataset(Path(tmp) / size, w, h)
            for method in args.methods:
                out = Path(tmp) / f"labels-{size}-{method}"
                argv = [sys.executable, "-m", "bbam_lite", "--quiet", "pseudo-labels", "--data", str(data)]
                argv += ["--method", method, "--profile", args.profile, "--workers", "1", "--out", str(out)]
                if args.memory_budget:
                    argv += ["--memory-budget", args.memory_budget]
                gb, wall, rc, note = peak_rss(argv)
                row = {"size": size, "method": method, "peak_rss_gb": round(gb, 2), "seconds": round(wall, 1)}
                row |= {"exit_status": rc, "messages": note}
                print(json.dumps(row), flush=True)
                rows.append(row)
    result = {
        "what": "peak RSS of pseudo-labels on one image (/usr/bin/time -v)",
        "profile": args.profile,
        "memory_budget": args.memory_budget,
        "hardware": hardware(),
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%d"),
        "rows": rows,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
