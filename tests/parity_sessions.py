"""Where the tests find the reference sessions (official SAM 2 outputs, see ../shared/parity/README.md).

The replay itself lives in ``sam2_model.reference_sessions`` (the GPU check replays the same
sessions); its names are re-exported here for the tests.
"""

from __future__ import annotations

import os
from pathlib import Path

from sam2_model.reference_sessions import (LOGIT_TOLERANCE, SCORE_TOLERANCE, Comparison, apply_event,  # noqa: F401
                                           build_session_model, compare, load_session, make_tracker, replay)

PARITY_DIR = Path(os.environ.get("SAM2_PARITY_DIR", Path(__file__).resolve().parents[2] / "shared" / "parity"))
STREAM_FILES = sorted(PARITY_DIR.glob("*_stream.pt"))
# The smallest session: the tests that track on a real (random-weight) model use it.
MICRO_SESSION = PARITY_DIR / "sam2.1_micro_stream.pt"
# More sessions made with the official predictor (tools/oracle), shipped with the tests.
EXTRA_SESSION_FILES = sorted((Path(__file__).resolve().parent / "data").glob("*.pt.xz"))
