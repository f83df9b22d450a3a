#!/usr/bin/env bash
# One prepared GPU check of the BBAM engine (issue 16, item 7), from a fresh checkout.
#
#   scripts/gpu_check.sh OUTDIR [--wheels DIR] [--device cuda|cpu] [--small]
#
# Runs on a machine that has PyTorch but may have no network: the package is installed over the
# machine's PyTorch with `pip install -e .` (scripts/gpu_env.sh), what else is missing (pycocotools,
# pydensecrf2, captum, ...) from --wheels DIR (built beforehand for that machine's Python; see
# docs/benchmarks.md); the install stops if it would replace torch or torchvision. Writes
# OUTDIR/gpu_check.log and one JSON per step, and prints a short table last:
#
#   1. the paper-profile benchmark: reference loop vs engine, with the noise floor and the verdict
#      of scripts/bench_bbam.py's agreement_verdict, a torch.profiler table of the top kernels;
#   2. the engine alone by batch size, and with torch.compile of the backbone;
#   3. the context crop against the exact engine and its noise floor, by object size;
#   4. bbam-lite pseudo-labels --device cuda --batch-objects auto on the synthetic set;
#   5. the same under a one-process torchrun (NCCL on CUDA, gloo on the CPU);
#   6. pseudo-labels end to end at the paper profile (--profile full) on VOC-sized synthetic images
#      (432 x 432 px, VOC's pixel count) with the default --workers (the per-image CPU work in worker
#      processes) and step 1's detector, its objects per second beside the engine's of step 1.
#
# --device cpu --small is the dry run this project's CPU machines can do (minutes, tiny sizes).
set -euo pipefail

usage() { echo "usage: scripts/gpu_check.sh OUTDIR [--wheels DIR] [--device cuda|cpu] [--small]" >&2; exit 2; }
[ $# -ge 1 ] || usage
OUT=$1; shift
WHEELS=""; DEVICE=cuda; SMALL=0
while [ $# -gt 0 ]; do
  case $1 in
    --wheels) WHEELS=${2:?--wheels needs a folder}; shift 2 ;;
    --device) DEVICE=${2:?--device needs cuda or cpu}; shift 2 ;;
    --small) SMALL=1; shift ;;
    *) usage ;;
  esac
done
case $DEVICE in cuda|cpu) ;; *) echo "gpu_check: --device must be cuda or cpu, got $DEVICE" >&2; exit 2 ;; esac
[ -z "$WHEELS" ] || [ -d "$WHEELS" ] || { echo "gpu_check: --wheels $WHEELS: no such folder" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
PY=${PYTHON:-python3}
export BBAM_LITE_EAGER_ROI_ALIGN=${BBAM_LITE_EAGER_ROI_ALIGN:-1}
echo "gpu_check $(date -u +%FT%TZ) device=$DEVICE small=$SMALL commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"

# --- the package over the machine's PyTorch, the rest from the wheels folder ------------------------
# shellcheck source=scripts/gpu_env.sh
. "$ROOT/scripts/gpu_env.sh"
gpu_install
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"

if [ "$SMALL" = 1 ]; then
  N_TRAIN=2; IMAGES=1; OBJECTS=2; ITER=(--iterations 2); SIZE=(--image-size 96x128); BATCHES=(2); LIMIT=2
  CROP_IMAGES=2; VOC_IMAGES=2; VOC_SIZE=96
else
  N_TRAIN=16; IMAGES=6; OBJECTS=16; ITER=(); SIZE=(); BATCHES=(8 16 24); LIMIT=16; CROP_IMAGES=12
  VOC_IMAGES=24; VOC_SIZE=432
fi
DATA="$OUT/data"
[ -f "$DATA/dataset.json" ] || "$PY" -m bbam_lite --quiet data synth --out "$DATA" --n-train "$N_TRAIN" --n-val 0

step() { echo; echo "=== $1 ($(date -u +%T))"; }

step "1. paper profile: reference vs engine, noise floor, profiler"
"$PY" "$ROOT/scripts/bench_bbam.py" --profile paper --data "$DATA" --images "$IMAGES" --objects "$OBJECTS" \
  --batch-size "${BATCHES[0]}" --device "$DEVICE" --noise-floor --trace 3 "${ITER[@]}" "${SIZE[@]}" \
  --json "$OUT/bench-paper.json"

step "2. the engine by batch size, and with torch.compile"
for b in "${BATCHES[@]}"; do
  "$PY" "$ROOT/scripts/bench_bbam.py" --profile paper --data "$DATA" --images "$IMAGES" --objects "$OBJECTS" \
    --batch-size "$b" --device "$DEVICE" --no-labels "${ITER[@]}" "${SIZE[@]}" --json "$OUT/engine-batch$b.json"
done
"$PY" "$ROOT/scripts/bench_bbam.py" --profile paper --data "$DATA" --images "$IMAGES" --objects "$OBJECTS" \
  --batch-size "${BATCHES[-1]}" --device "$DEVICE" --no-labels --compile default "${ITER[@]}" "${SIZE[@]}" \
  --json "$OUT/engine-compiled.json" || echo "gpu_check: the compiled run failed (see above); continuing"

step "3. the context crop against the exact engine (paper profile, small objects)"
"$PY" "$ROOT/scripts/bench_crop.py" --profile paper --out "$OUT/crop" --images "$CROP_IMAGES" --device "$DEVICE" \
  --batch-size "${BATCHES[0]}" "${ITER[@]}" "${SIZE[@]}" --json "$OUT/crop.json"

step "4. pseudo-labels --device $DEVICE on the synthetic set"
BATCH_OBJECTS=auto; [ "$DEVICE" = cpu ] && BATCH_OBJECTS=8
BBAM_ITER=(); [ "$SMALL" = 1 ] && BBAM_ITER=(--iterations 2)
/usr/bin/env time -p "$PY" -m bbam_lite --quiet pseudo-labels --data "$DATA" --method bbam --out "$OUT/labels" \
  --limit "$LIMIT" --device "$DEVICE" --batch-objects "$BATCH_OBJECTS" "${BBAM_ITER[@]}" 2> >(tee "$OUT/labels.time" >&2)

step "5. the same under torchrun (one process)"
"$PY" -m torch.distributed.run --standalone --nproc-per-node=1 -m bbam_lite --quiet pseudo-labels --data "$DATA" \
  --method bbam --out "$OUT/labels-torchrun" --limit "$LIMIT" --device "$DEVICE" --batch-objects "$BATCH_OBJECTS" \
  "${BBAM_ITER[@]}"

step "6. pseudo-labels end to end, paper profile, VOC-sized images, default --workers"
DATA_VOC="$OUT/data-voc"
[ -f "$DATA_VOC/dataset.json" ] || "$PY" -m bbam_lite --quiet data synth --out "$DATA_VOC" --n-train "$VOC_IMAGES" \
  --n-val 0 --size "$VOC_SIZE"
# the detector of step 1 (paper-r50, as scripts/bench_bbam.py builds it), so the objects/s compare
[ -f "$OUT/paper-r50.pt" ] || "$PY" - "$OUT/paper-r50.pt" <<'EOF'
import sys

from bbam_lite.data.synthetic import CLASSES
from bbam_lite.detector.model import build_detector, get_profile, save_detector

cfg = get_profile("paper-r50")
save_detector(sys.argv[1], build_detector(cfg, len(CLASSES)), cfg, ["background", *CLASSES], {"note": "gpu_check"})
EOF
t0=$(date +%s.%N)
"$PY" -m bbam_lite --quiet pseudo-labels --data "$DATA_VOC" --method bbam --out "$OUT/labels-voc" --profile full \
  --detector "$OUT/paper-r50.pt" --device "$DEVICE" --batch-objects "$BATCH_OBJECTS" "${BBAM_ITER[@]}"
t1=$(date +%s.%N)
"$PY" -c "import json, os, sys; json.dump({'wall_s': float(sys.argv[2]) - float(sys.argv[1]), 'cores': len(os.sched_getaffinity(0))}, open(sys.argv[3], 'w'))" \
  "$t0" "$t1" "$OUT/labels-voc.wall.json"

step "summary"
"$PY" - "$OUT" <<'EOF'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
rows = []
bench = json.loads((out / "bench-paper.json").read_text())
v = bench["agreement_verdict"]
rows.append(("device", bench["hardware"]))
rows.append(("reference s/object", f"{bench['reference_s_per_object']:.3f}"))
rows.append(("engine s/object (speedup)", f"{bench['engine_s_per_object']:.3f} ({bench['speedup']:.2f}x)"))
rows.append(("engine / FLOP floor", f"{bench['engine_over_floor']:.1f}x"))
rows.append(("agreement maps / labels", f"{bench['agreement_map_iou']:.3f} / {bench.get('agreement_label_miou', float('nan')):.3f}"))
rows.append(("noise floor maps / labels", f"{bench.get('noise_floor_map_iou', float('nan')):.3f} / {bench.get('noise_floor_label_miou', float('nan')):.3f}"))
rows.append(("engine passes", {True: "yes", False: "NO"}.get(v["passes"], "undecided: " + "; ".join(v["undecided_because"]))))
for path in sorted(out.glob("engine-*.json")):
    r = json.loads(path.read_text())
    rows.append((path.stem, f"{r['engine_s_per_object']:.3f} s/object, batch {r['batch_size']}"))
crop = out / "crop.json"
if crop.exists():
    c = json.loads(crop.read_text())
    for b in c["bins"]:
        rows.append((
            f"crop, area {b['area_from']:.2f}-{b['area_to']:.2f} ({b['objects']} objects)",
            f"{b['speedup']:.2f}x, labels agree {b['label_agreement_crop']:.3f} "
            f"(noise floor {b['label_agreement_noise_floor']:.3f}), IoU gap {b['label_iou_gap_points']:+.1f} points",
        ))
for name in ("labels", "labels-torchrun"):
    q = out / name / "quality.json"
    if q.exists():
        d = json.loads(q.read_text())
        rows.append((f"pseudo-labels ({name})", f"{d['objects']} objects, mIoU {d.get('miou', float('nan')):.3f}, {d['seconds_this_run']} s"))
voc = out / "labels-voc" / "quality.json"
if voc.exists():
    d, wall = json.loads(voc.read_text()), json.loads((out / "labels-voc.wall.json").read_text())
    engine = 1 / bench["engine_s_per_object"]
    rows.append((
        "end to end, paper profile, VOC-sized",
        f"{d['objects'] / wall['wall_s']:.2f} objects/s wall ({d['objects'] / max(d['seconds_this_run'], 0.1):.2f} "
        f"labelling only; engine alone {engine:.2f}); {d['objects']} objects in {wall['wall_s']:.0f} s, "
        f"{wall['cores']} cores",
    ))
width = max(len(a) for a, _ in rows)
print("\n".join(f"{a:<{width}}  {b}" for a, b in rows))
EOF
