"""The whole book from an empty run folder in a fresh clone: wall time of ``bbam-lite book run``
and each chapter's cold record (issue: the whole lite book in an hour on a 2-core laptop, each lab
chapter in minutes). Results: docs/benchmarks.md ("The book from an empty run folder") and the
JSON given; the clone's executed chapters and records are what the book commits.

    python scripts/bench_book.py --clone /tmp/book-clone --jobs 2 \\
        --json docs/measurements/book-cold-YYYY-MM-DD.json

The clone uses this environment's Python with the clone's own package first on the path (as a
``make setup`` of the clone would), its run folder starts empty, and ``--force`` re-executes the
chapters that the committed records mark finished.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clone", type=Path, required=True, help="folder for the fresh clone (must not exist)")
    ap.add_argument("--jobs", type=int, default=None, help="book run --jobs (default: its own)")
    ap.add_argument("--profile", default="lite")
    ap.add_argument("--only", nargs="*", default=None, help="only these chapters")
    ap.add_argument("--json", type=Path, default=None, help="write the measurement here")
    args = ap.parse_args(argv)
    if args.clone.exists():
        ap.error(f"--clone {args.clone} exists; give a new folder")
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(args.clone)], check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], cwd=args.clone, capture_output=True, text=True, check=True
    ).stdout.strip()
    cmd = [sys.executable, "-m", "bbam_lite", "book", "run", "--profile", args.profile, "--force"]
    cmd += ["--jobs", str(args.jobs)] if args.jobs else []
    cmd += ["--only", *args.only] if args.only else []
    env = {**os.environ, "PYTHONPATH": str(args.clone)}
    shutil.rmtree(args.clone / "runs", ignore_errors=True)  # an empty run folder: every chapter cold
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=args.clone, env=env)
    wall = time.perf_counter() - t0
    records = {}
    for path in sorted((args.clone / "book" / "chapters" / ".book-run").glob("[0-9][0-9]-*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        cold = record.get("cold") or {}
        if str(record.get("finished", "")) >= started.isoformat(timespec="seconds")[:19]:
            records[path.stem] = {
                k: cold.get(k) for k in ("seconds", "cpu_seconds", "hardware", "threads", "jobs", "after")
            }
    result = {
        "what": f"bbam-lite book run --profile {args.profile} --force from an empty run folder, fresh clone",
        "commit": commit,
        "date": started.date().isoformat(),
        "jobs": args.jobs,
        "exit_status": done.returncode,
        "wall_seconds": round(wall, 1),
        "chapters": records,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "chapters"}, indent=1))
    for stem, r in records.items():
        print(f"{stem:32} cold {r['seconds']} s (kernel CPU {r['cpu_seconds']} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
