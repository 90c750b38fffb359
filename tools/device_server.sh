#!/usr/bin/env bash
# The inference server's GPU measurement in one device call (issue 22): STREAMS tracker streams
# through one sam2-server with their frames encoded together (--max-batch STREAMS) against the
# same streams one frame at a time (--max-batch 1), then the added latency of one stream over ipc.
#
#   bash tools/device_server.sh            # on the GPU machine, from the checkout
#
# Writes $OUT/device_server.json (rewritten after each part, so a run cut short keeps what it
# measured) and prints a summary. Settings by environment, so the same script runs on a CPU with
# tiny settings (tests/test_device_server.py does):
#   DEVICE (cuda)  MODEL (sam2.1_hiera_tiny; random weights: timing does not depend on them)
#   CHECKPOINT ()  STREAMS (4)  FRAMES (30 per stream)  SIZE (640x480)  PARTS (batching,latency)
#   REPEATS (2: batched/sequential pairs taken in turn)  EXECUTION (auto: batched on CUDA; threaded to compare)
#   MINUTES (8: hard limit)  PYTHON (python3)  OUT (./out)
# Nothing to install beyond torch, numpy, pyyaml, pyzmq and Pillow.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
OUT="${OUT:-$ROOT/out}"
MINUTES="${MINUTES:-8}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"

args=(--parts "${PARTS:-batching,latency}" --model "${MODEL:-sam2.1_hiera_tiny}" --device "${DEVICE:-cuda}"
      --streams "${STREAMS:-4}" --frames "${FRAMES:-30}" --size "${SIZE:-640x480}" --repeats "${REPEATS:-2}"
      --execution "${EXECUTION:-auto}"
      --json "$OUT/device_server.json")
if [[ -n "${CHECKPOINT:-}" ]]; then
  args+=(--checkpoint "$CHECKPOINT")
fi
if [[ "${DEVICE:-cuda}" == cuda* ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
limit=$("$PYTHON" -c "import sys; print(max(10, int(float(sys.argv[1]) * 60)))" "$MINUTES")
status=0
timeout "$limit" "$PYTHON" -m sam2_server.benchmark "${args[@]}" || status=$?
(( status == 0 )) || echo "sam2_server.benchmark exited with status $status; $OUT/device_server.json holds what it measured" >&2
exit "$status"
