#!/usr/bin/env bash
# Fine-tune the bundled default model on generated videos for a fixed wall-clock time, in one call
# on a borrowed GPU machine, and leave the weights where the call brings files back.
#
#   bash tools/device_train.sh MINUTES [sam2-train options...]
#
# Made for short GPU leases (minutes, not hours): nothing to install (sam2_model needs only torch,
# numpy and pyyaml, run from the checkout), generated data drawn by worker processes, and a run
# length chosen from the measured speed so that the learning-rate schedule ends on time:
#   1. a probe of PROBE_STEPS steps, all inside the warm-up (whose learning rates do not depend on
#      the run's length), measures seconds per step;
#   2. the same run resumes with --steps set so that it ends MINUTES after the script started; a
#      run stopped by the time guard still leaves its last checkpoint's weights.
# Writes into $OUT (default ./out): model.pt (official format, weights only), log.jsonl and
# summary.txt. Options after MINUTES are passed to sam2-train and override the defaults below
# (the last occurrence of an option wins; keep --warmup above PROBE_STEPS). PYTHON (default
# python3) runs it; DEVICE (default cuda) picks the device, so the same script can be tried on a
# CPU with tiny settings. GPUS (default: every GPU the machine has, 1 on a CPU) > 1 trains with
# that many processes under torchrun (DistributedDataParallel, one GPU each, NCCL; gloo on a
# CPU), each taking 32 clips of every step (the global batch grows with the GPUs).
set -euo pipefail

MINUTES="${1:?usage: bash tools/device_train.sh MINUTES [sam2-train options...]}"
shift
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
OUT="${OUT:-$ROOT/out}"
PROBE_STEPS="${PROBE_STEPS:-20}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
RUN="$WORK/run"
START=$SECONDS
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"

if [[ -z "${GPUS:-}" ]]; then
  GPUS=1
  [[ "$DEVICE" == cuda* ]] && GPUS=$("$PYTHON" -c "import torch; print(max(1, torch.cuda.device_count()))")
fi
launcher=("$PYTHON")
(( GPUS > 1 )) && launcher=("$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$GPUS")
# The data workers share the cores left over by the training processes.
workers=$(( ($(nproc) - 2) / GPUS )); (( workers < 1 )) && workers=1
# Defaults sized for a GPU: many clips per step (a small model is launch-bound, so a larger
# batch costs little more per step), the recipe of docs/benchmarks.md otherwise.
train=("${launcher[@]}" -m sam2_model.train --config default --device "$DEVICE" --procedural --events
       --video-frames 24 --clip-length 16 --clips-per-step $(( 32 * GPUS )) --image-step-probability 0.2
       --images-per-step $(( 64 * GPUS )) --click-probability 0.3 --box-probability 0.2 --lr 2e-4
       --warmup "$(( PROBE_STEPS * 2 ))" --focal-weight 2 --dice-weight 5 --max-feature-rms 1
       --checkpoint-every 100 --data-workers "$workers" --no-progress --out "$RUN" "$@")

"${train[@]}" --steps "$PROBE_STEPS"
steps=$("$PYTHON" - "$RUN/log.jsonl" "$PROBE_STEPS" "$MINUTES" "$(( SECONDS - START ))" <<'EOF'
import json, sys
log, probe, minutes, spent = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
entries = [json.loads(line) for line in open(log)]
steps_timed = {e["step"]: e["seconds"] + e["data_seconds"] for e in entries if "losses" in e}
# The first step pays for start-up (kernels, workers): time the later ones where there are any.
timed = [seconds for step, seconds in steps_timed.items() if step > 1] or list(steps_timed.values())
per_step = sum(timed) / len(timed)
left = minutes * 60 - spent - 30  # the second start-up and the export
steps = max(probe + 1, probe + int(left / per_step))
print(f"probe: {per_step:.3f} s per step; running to step {steps}", file=sys.stderr)
print(steps)
EOF
)
rm "$RUN/model.pt"  # the probe's export: only the full run's (or its last checkpoint) may come back
left=$(( ${MINUTES%.*} * 60 + 60 - (SECONDS - START) ))
(( left < 10 )) && left=10  # never 0: to timeout, 0 means no limit
status=0
timeout --signal=INT "$left" "${train[@]}" --steps "$steps" --resume || status=$?

# An interrupted run exports nothing: take the weights of its last checkpoint.
"$PYTHON" - "$RUN" "$OUT/model.pt" <<'EOF'
import os, sys, torch
from sam2_model.checkpoint import read_checkpoint
run, out = sys.argv[1], sys.argv[2]
source = os.path.join(run, "model.pt")
if not os.path.exists(source):
    source = os.path.join(run, "checkpoint_last.pt")
torch.save({"model": read_checkpoint(source)}, out)
EOF
cp "$RUN/log.jsonl" "$OUT/log.jsonl"
device_name=$("$PYTHON" -c "import sys, torch; d = torch.device(sys.argv[1])
print(torch.cuda.get_device_name(d) if d.type == 'cuda' else d)" "$DEVICE")
{
  echo "device: $device_name, processes: $GPUS"
  echo "minutes asked: $MINUTES, seconds used: $(( SECONDS - START )), steps planned: $steps, exit status: $status"
  tail -n 1 "$RUN/log.jsonl"
} > "$OUT/summary.txt"
cat "$OUT/summary.txt"
