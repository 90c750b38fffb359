#!/usr/bin/env bash
# The GPU check of the tracker in one call on a borrowed GPU machine, within MINUTES:
#
#   bash tools/device_check.sh MINUTES [device_check options...]
#
# Parity with the official implementation on CUDA in float32 (the worst difference and the
# tolerance), bfloat16 autocast against float32 (mask IoU), the tracker benchmark for
# sam2.1_hiera_tiny and _small at 1, 4 and 16 objects, eager and torch.compile'd, and the node's
# latency behind a synthetic 30 Hz camera (docs/benchmarks.md says what each part measures).
# Nothing to install: sam2_model needs only torch, numpy and pyyaml, run from the checkout.
#
# Writes $OUT/device_check.json and $OUT/device_check.md (default ./out), rewritten after every
# measurement, so a run stopped by its time guard (or killed) still returns what it measured; a
# summary goes to stdout. The reference sessions are read from SAM2_PARITY_DIR (default: .parity
# in the checkout, an ignored folder a device call can carry, else shared/parity in the checkout,
# else ../shared/parity beside it); those shipped in tests/data are always replayed. Options
# after MINUTES are passed to `python -m sam2_ros.device_check`
# (see its --help; the last occurrence of an option wins). PYTHON (default python3) runs it;
# DEVICE (default cuda) picks the device, so the same script can be tried on a CPU with tiny
# settings.
set -euo pipefail

MINUTES="${1:?usage: bash tools/device_check.sh MINUTES [device_check options...]}"
shift
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
OUT="${OUT:-$ROOT/out}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"

# The check keeps its own time (an alarm at MINUTES); this is the backstop for a step stuck
# where no signal reaches Python (a hung CUDA call): killed 30 s after MINUTES.
limit=$("$PYTHON" -c "import sys; print(max(10, int(float(sys.argv[1]) * 60) + 30))" "$MINUTES")
status=0
timeout --signal=KILL "$limit" "$PYTHON" -m sam2_ros.device_check --minutes "$MINUTES" --device "$DEVICE" \
  --out "$OUT" "$@" || status=$?
(( status == 0 )) || echo "device_check exited with status $status; $OUT holds what it measured" >&2
exit "$status"
