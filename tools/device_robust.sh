#!/usr/bin/env bash
# The robust memory policy's cost on a GPU in one device call (issue 25 bounds it at 10 % more time
# per frame than `official`): python -m sam2_model.policy_benchmark for each model in MODELS, in
# float32 and with bfloat16 autocast, at 1, 4 and 16 objects, official and robust tracking the same
# encoded frames in turn.
#
#   bash tools/device_robust.sh            # on the GPU machine, from the checkout
#
# Writes $OUT/device_robust_<model>_<float32|bf16>.json (each rewritten after every object count,
# so a run cut short keeps what it measured) and prints one line per count. Settings by environment,
# so the same script runs on a CPU with tiny settings (tests/test_policy_benchmark.py does):
#   DEVICE (cuda)  MODELS (sam2.1_hiera_tiny,sam2.1_hiera_small; random weights: the numbers are a
#   cost)  CHECKPOINT_DIR (official checkpoints <model>.pt there, if any)  POLICY (robust)
#   OBJECTS (1,4,16)  VIDEOS (2)  FRAMES (32 per video)  SIZE (512: generated frames' side)
#   PRECISIONS (float32,bf16)  MINUTES (6: hard limit)  PYTHON (python3)  OUT (./out)
# Nothing to install beyond torch, numpy and pyyaml.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
OUT="${OUT:-$ROOT/out}"
DEVICE="${DEVICE:-cuda}"
MINUTES="${MINUTES:-6}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"

if [[ "$DEVICE" == cuda* ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
deadline=$(( $(date +%s) + $("$PYTHON" -c "import sys; print(max(10, int(float(sys.argv[1]) * 60)))" "$MINUTES") ))
status=0
IFS=, read -r -a models <<< "${MODELS:-sam2.1_hiera_tiny,sam2.1_hiera_small}"
IFS=, read -r -a precisions <<< "${PRECISIONS:-float32,bf16}"
for model in "${models[@]}"; do
  for precision in "${precisions[@]}"; do
    left=$(( deadline - $(date +%s) ))
    if (( left < 10 )); then
      echo "out of time (MINUTES=$MINUTES): $model $precision not run" >&2
      status=124
      continue
    fi
    args=(--model "$model" --device "$DEVICE" --policy "${POLICY:-robust}" --objects "${OBJECTS:-1,4,16}"
          --videos "${VIDEOS:-2}" --frames "${FRAMES:-32}" --size "${SIZE:-512}"
          --json "$OUT/device_robust_${model}_${precision}.json")
    case "$precision" in
      float32) ;;
      bf16) args+=(--bf16) ;;
      *) echo "PRECISIONS: unknown '$precision' (float32 or bf16)" >&2; exit 2 ;;
    esac
    if [[ -n "${CHECKPOINT_DIR:-}" && -f "$CHECKPOINT_DIR/$model.pt" ]]; then
      args+=(--checkpoint "$CHECKPOINT_DIR/$model.pt")
    fi
    echo "== $model, $precision"
    timeout "$left" "$PYTHON" -m sam2_model.policy_benchmark "${args[@]}" || {
      code=$?
      echo "$model $precision exited with status $code; its json holds what it measured" >&2
      status=$code
    }
  done
done
exit "$status"
