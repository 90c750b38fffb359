"""The micro parity session and its model as module fixtures, for the tests that track on it
(import both names: ``from micro_session import model, session  # noqa: F401``)."""

from __future__ import annotations

import pytest

from parity_sessions import MICRO_SESSION, build_session_model, load_session


@pytest.fixture(scope="module")
def session():
    return load_session(MICRO_SESSION)


@pytest.fixture(scope="module")
def model(session):
    return build_session_model(session)
