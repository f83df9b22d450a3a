#!/usr/bin/env bash
# Every chapter of the book at the smoke profile on one GPU, through papermill (issue 17, item 6).
#
#   scripts/gpu_book_check.sh OUTDIR [--wheels DIR] [--device cuda|cpu] [--batches N]
#
# Installs the package over the machine's PyTorch (scripts/gpu_env.sh; papermill, ipykernel and
# seaborn from --wheels DIR where the machine lacks them), then runs `bbam-lite book run --profile
# smoke -p device DEVICE` with the chapters split into N batches side by side (default 4; each batch
# has its own run folder, all write OUTDIR/chapters). Writes OUTDIR/book_check.log and
# OUTDIR/book-check.json (each chapter's status, seconds and, for a failure, the failing cell and
# its error) and prints a table. Exit status 1 when a chapter failed. --device cpu is the dry run.
set -euo pipefail

usage() { echo "usage: scripts/gpu_book_check.sh OUTDIR [--wheels DIR] [--device cuda|cpu] [--batches N]" >&2; exit 2; }
[ $# -ge 1 ] || usage
OUT=$1; shift
WHEELS=""; DEVICE=cuda; BATCHES=4
while [ $# -gt 0 ]; do
  case $1 in
    --wheels) WHEELS=${2:?--wheels needs a folder}; shift 2 ;;
    --device) DEVICE=${2:?--device needs cuda or cpu}; shift 2 ;;
    --batches) BATCHES=${2:?--batches needs a number}; shift 2 ;;
    *) usage ;;
  esac
done
case $DEVICE in cuda|cpu) ;; *) echo "gpu_book_check: --device must be cuda or cpu, got $DEVICE" >&2; exit 2 ;; esac
case $BATCHES in ''|*[!0-9]*|0) echo "gpu_book_check: --batches must be a positive integer" >&2; exit 2 ;; esac
[ -z "$WHEELS" ] || [ -d "$WHEELS" ] || { echo "gpu_book_check: --wheels $WHEELS: no such folder" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
exec > >(tee -a "$OUT/book_check.log") 2>&1
PY=${PYTHON:-python3}
echo "gpu_book_check $(date -u +%FT%TZ) device=$DEVICE batches=$BATCHES commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"

# shellcheck source=scripts/gpu_env.sh
. "$ROOT/scripts/gpu_env.sh"
extra=()
for pair in papermill:papermill ipykernel:ipykernel seaborn:seaborn pycocotools:pycocotools pydensecrf:pydensecrf2; do
  "$PY" -c "import ${pair%%:*}" 2>/dev/null || extra+=("${pair#*:}")
done
gpu_install "${extra[@]}"

cd "$ROOT"
mapfile -t stems < <(ls notebooks | sed -n 's/^\([0-9][0-9]-[a-z0-9-]*\)\.ipynb$/\1/p')
export BBAM_LITE_EAGER_ROI_ALIGN=${BBAM_LITE_EAGER_ROI_ALIGN:-1}
threads=$(( $(nproc) / BATCHES )); [ "$threads" -ge 1 ] || threads=1
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
t0=$(date +%s)
pids=()
for ((b = 0; b < BATCHES; b++)); do
  batch=()
  for ((i = b; i < ${#stems[@]}; i += BATCHES)); do batch+=("${stems[$i]}"); done  # round robin
  [ ${#batch[@]} -gt 0 ] || continue
  "$PY" -m bbam_lite book run --profile smoke --force -p device "$DEVICE" --only "${batch[@]}" \
    --out "$OUT/chapters" --run-dir "$OUT/runs-$b" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
echo "all chapters in $(( $(date +%s) - t0 )) s of wall time"

"$PY" - "$OUT" "$DEVICE" "${stems[@]}" <<'PYEOF'
import json
import sys
from pathlib import Path

import nbformat

out, device, stems = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
state = out / "chapters" / ".book-run"
rows = []
for stem in stems:
    marker, failed = state / f"{stem}.json", state / f"{stem}.failed.ipynb"
    row = {"chapter": stem, "status": "missing", "seconds": None}
    if failed.exists():
        nb = nbformat.read(failed, as_version=4)
        for i, cell in enumerate(nb.cells):
            errs = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if errs:
                first = next((ln for ln in cell.source.splitlines() if ln.strip()), "")
                row.update(status="failed", cell=i, source=first[:80], error=f"{errs[0].ename}: {errs[0].evalue}"[:300])
                break
        else:
            row.update(status="failed", error="no cell recorded an error (kernel died or timed out?)")
    elif marker.exists():
        m = json.loads(marker.read_text())
        if m.get("parameters", {}).get("device", device) == device:
            row.update(status="done", seconds=m["seconds"], hardware=m.get("hardware"))
    rows.append(row)
(out / "book-check.json").write_text(json.dumps({"device": device, "chapters": rows}, indent=1))
for r in rows:
    tail = f"{r['seconds']:.1f} s" if r["seconds"] is not None else r.get("error", "")
    where = f" (cell {r['cell']}: {r['source']})" if "cell" in r else ""
    print(f"{r['chapter']:<28} {r['status']:<8} {tail}{where}")
print(f"{sum(r['status'] == 'done' for r in rows)}/{len(rows)} chapters passed on {device}")
PYEOF
exit $status
