"""``bbam-lite pseudo-labels --workers N`` against ``--workers 1``: wall time and identical outputs.

Each run is a fresh ``python -m bbam_lite pseudo-labels`` process on the demo's data (the default
synthetic set's first ``--images`` training images, 160 px, the shipped detector), so the times
include what a user waits for: imports, the detector, the workers' start. The runs of one method
alternate between the worker counts (``--repeats``), so load from other processes on a shared
machine falls on both; the load average before and after each run is recorded. The labels folders
of every worker count are compared file by file with the first's (``quality.json`` without its
run facts, ``seconds_this_run`` and ``images_this_run``).

    python scripts/bench_workers.py --out runs/bench-workers --json bench-workers.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def differing(a: Path, b: Path) -> list[str]:
    from bbam_lite.pseudo.folder import label_bytes

    fa, fb = label_bytes(a), label_bytes(b)
    return sorted(set(fa) ^ set(fb)) + [k for k in fa if k in fb and fa[k] != fb[k]]


def load() -> float:
    return round(os.getloadavg()[0], 2)


def run_once(data: Path, out: Path, method: str, workers: int, extra: list[str]) -> dict:
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "bbam_lite", "--quiet", "pseudo-labels", "--data", str(data)]
    cmd += ["--method", method, "--out", str(out), "--workers", str(workers), *extra]
    before = load()
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"bench_workers: {' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    q = json.loads((out / "quality.json").read_text())
    return {
        "wall_s": round(wall, 2),
        "labelling_s": q["seconds_this_run"],
        "load_before": before,
        "load_after": load(),
        "images": q["images"],
        "objects": q["objects"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="work folder (data, labels folders)")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--methods", nargs="+", default=["box_crf", "grabcut", "bbam"])
    p.add_argument("--workers", nargs="+", type=int, default=[1, 2], help="worker counts (first: reference)")
    p.add_argument("--images", type=int, default=32, help="demo images for the baselines (default 32)")
    p.add_argument("--bbam-images", type=int, default=8, help="demo images for BBAM (default 8)")
    p.add_argument(
        "--bbam-iterations", type=int, default=None, help="BBAM iterations (default: the profile's)"
    )
    p.add_argument("--repeats", type=int, default=2, help="runs per method and worker count (default 2)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from bbam_lite.data.synthetic import SynthSettings, ensure_synthetic
    from bbam_lite.pseudo.workers import available_cores, default_workers
    from bbam_lite.utils.run_folder import git_commit, hardware

    n_data = max(args.images, args.bbam_images)
    data = ensure_synthetic(args.out / "data", SynthSettings(n_train=n_data, n_val=0), progress=False)
    rows = []
    for method in args.methods:
        n = args.bbam_images if method == "bbam" else args.images
        extra = ["--limit", str(n), "--device", args.device]
        if method == "bbam" and args.bbam_iterations:
            extra += ["--iterations", str(args.bbam_iterations)]
        runs: dict[int, list[dict]] = {w: [] for w in args.workers}
        for r in range(args.repeats):  # alternate the order, so that load falls on every count
            order = args.workers if r % 2 == 0 else args.workers[::-1]
            for w in order:
                res = run_once(data, args.out / f"{method}-w{w}-r{r}", method, w, extra)
                runs[w].append(res)
                print(f"{method} workers {w} run {r}: {res}", flush=True)
        ref = args.out / f"{method}-w{args.workers[0]}-r0"
        base = statistics.median(x["wall_s"] for x in runs[args.workers[0]])
        for w in args.workers:
            walls = [x["wall_s"] for x in runs[w]]
            labelling = [x["labelling_s"] for x in runs[w]]
            first = runs[w][0]
            rows.append(
                {
                    "method": method,
                    "workers": w,
                    "images": first["images"],
                    "objects": first["objects"],
                    "wall_s": walls,
                    "labelling_s": labelling,
                    "median_wall_s": statistics.median(walls),
                    "s_per_image": round(statistics.median(walls) / first["images"], 3),
                    "labelling_s_per_image": round(statistics.median(labelling) / first["images"], 3),
                    "speedup_vs_first": round(base / statistics.median(walls), 2),
                    "load": [(x["load_before"], x["load_after"]) for x in runs[w]],
                    "differing_files": sorted(
                        {
                            f
                            for r in range(args.repeats)
                            for f in differing(ref, args.out / f"{method}-w{w}-r{r}")
                        }
                    ),
                }
            )
    result = {
        "what": "bbam-lite pseudo-labels --workers N against --workers 1, fresh process per run",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "commit": git_commit(ROOT),
        "hardware": hardware(),
        "cores": available_cores(),
        "default_workers": default_workers(),
        "device": args.device,
        "data": "the demo's: default synthetic set (160 px), first N training images; shipped detector",
        "bbam": {"profile": "lite", "iterations": args.bbam_iterations or "profile default"},
        "rows": rows,
    }
    width = max(len(r["method"]) for r in rows)
    for r in rows:
        print(
            f"{r['method']:<{width}}  workers {r['workers']}: {r['s_per_image']:.3f} s/image "
            f"({r['speedup_vs_first']:.2f}x), identical: {not r['differing_files']}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(not r["differing_files"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
