"""The StreamingTracker reproduces the official video predictor on the reference sessions."""

import pytest

from parity_sessions import EXTRA_SESSION_FILES, LOGIT_TOLERANCE, SCORE_TOLERANCE, STREAM_FILES, load_session, replay


def test_reference_sessions_exist():
    assert len(STREAM_FILES) == 3, f"expected the three parity sessions, found {STREAM_FILES}"
    assert len(EXTRA_SESSION_FILES) == 3, f"expected the three extra sessions in tests/data, found {EXTRA_SESSION_FILES}"


@pytest.mark.parametrize("path", STREAM_FILES + EXTRA_SESSION_FILES, ids=lambda p: p.name.split(".pt")[0])
def test_stream_session_matches_official(path):
    comparisons = replay(load_session(path))
    assert comparisons, "session has no events"
    for c in comparisons:
        where = f"event {c.event_index} ({c.event['type']} frame {c.event.get('frame')})"
        assert c.same_ids, f"{where}: object ids differ"
        assert c.same_presence, f"{where}: present/absent decision differs"
        assert c.max_logit_diff <= LOGIT_TOLERANCE, f"{where}: logits differ by {c.max_logit_diff}"
        assert c.max_score_diff <= SCORE_TOLERANCE, f"{where}: object scores differ by {c.max_score_diff}"
