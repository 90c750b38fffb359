"""A reply the rmw dropped because the client was not matched yet is sent again
(sam2_ros.service_replies), on every service of the tracker node."""

import time
import warnings

import pytest

from sam2_ros.service_replies import keep_replies

from node_harness import model_files, node_in_this_process  # noqa: F401 - fixture


class FlakyService:
    """Stands in for an rclpy Service whose rmw drops the first ``drops`` replies, warning as rclpy
    does (rclpy turns rcl's RCL_RET_TIMEOUT into this RuntimeWarning and returns normally)."""

    def __init__(self, drops: int):
        self.srv_name = "/tracker_node/add_object"
        self.drops = drops
        self.tries = 0
        self.delivered = []

    def send_response(self, response, header):
        self.tries += 1
        if self.tries <= self.drops:
            warnings.warn("failed to send response (timeout): client will not receive response, "
                          "at rmw_response.cpp:164", RuntimeWarning)
            return
        self.delivered.append((response, header))


def test_a_dropped_reply_is_sent_again_until_the_client_is_matched():
    service = keep_replies(FlakyService(drops=3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the dropped-reply warnings are consumed, not shown
        service.send_response("reply", "header")
    assert service.tries == 4
    assert service.delivered == [("reply", "header")]


def test_a_reply_sent_at_once_is_sent_once():
    service = keep_replies(FlakyService(drops=0))
    service.send_response("reply", "header")
    assert service.tries == 1 and service.delivered == [("reply", "header")]


def test_a_client_never_matched_is_given_up_with_a_message_naming_the_service():
    lost = []
    service = keep_replies(FlakyService(drops=10**9), resend_for_s=0.2, on_lost=lost.append)
    started = time.monotonic()
    service.send_response("reply", "header")
    assert time.monotonic() - started < 2.0
    assert service.delivered == [] and service.tries >= 2
    assert len(lost) == 1 and "/tracker_node/add_object" in lost[0] and "lost" in lost[0]


def test_other_warnings_raised_while_sending_still_reach_the_user():
    class WarnsOtherwise(FlakyService):
        def send_response(self, response, header):
            warnings.warn("something else", UserWarning)
            super().send_response(response, header)

    service = keep_replies(WarnsOtherwise(drops=1))
    with pytest.warns(UserWarning, match="something else"):
        service.send_response("reply", "header")
    assert service.delivered == [("reply", "header")]


def test_a_service_is_changed_once():
    service = keep_replies(FlakyService(drops=1))
    changed = service.send_response
    assert keep_replies(service).send_response is changed


def test_every_service_of_the_tracker_node_keeps_its_replies(model_files):  # noqa: F811
    with node_in_this_process(model_files.params(autostart=False)) as node:
        node.trigger_configure()
        names = {service.srv_name: getattr(service, "keeps_replies", False) for service in node.services}
    for expected in ("get_state", "change_state", "set_parameters", "add_object", "remove_object",
                     "reset", "discover"):
        assert any(name.endswith(f"/{expected}") for name in names), (expected, sorted(names))
    assert all(names.values()), sorted(name for name, kept in names.items() if not kept)
