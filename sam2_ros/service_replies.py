"""Service replies that are not lost to a client that has only just appeared.

Fast DDS (rmw_fastrtps) writes a reply only once the service's reply writer has matched the
client's reply reader, and waits for that no longer than the writer's ``max_blocking_time``
(100 ms by default). The client's side may be ready (``service_is_ready``) before ours has matched:
discovery is done by each side separately. On a busy machine (a node loading torch, a robot's
computer at full load) the request is then served, the node's state changes, and the reply is
dropped with only a ``RuntimeWarning: failed to send response (timeout)``. The client waits for an
answer that never comes, or sends again a request that is not idempotent (``add_object``).

``keep_replies`` makes a service send such a reply again, each try waiting that match time again,
for up to ``RESEND_FOR_S``. A client that has gone away is not waited for: the rmw answers at
once. Used on every service of the tracker node (its own, the lifecycle's and the parameters').
"""

from __future__ import annotations

import functools
import threading
import time
import warnings
from typing import Any, Callable

# How long a reply is retried. Discovery under load takes hundreds of milliseconds; a client
# that is still unmatched after this is not coming.
RESEND_FOR_S = 3.0

# The text of the warning that rclpy raises when the rmw drops a reply (rcl's RCL_RET_TIMEOUT).
_DROPPED_REPLY = "failed to send response (timeout)"

# warnings.catch_warnings changes process-wide state: one sender at a time records warnings.
# (Another thread entering catch_warnings meanwhile would have its filters restored in the wrong
# order; neither this package nor torch's inference paths use it.)
_recording = threading.Lock()


def _send_once(send: Callable[[Any, Any], None], response: Any, header: Any) -> bool:
    """Send; True unless the rmw dropped the reply. Other threads' warnings caught meanwhile are
    shown again as they would have been."""
    with _recording:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            send(response, header)
    dropped = False
    for warning in caught:
        if issubclass(warning.category, RuntimeWarning) and str(warning.message).startswith(_DROPPED_REPLY):
            dropped = True
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return not dropped


def keep_replies(service: Any, resend_for_s: float = RESEND_FOR_S,
                 on_lost: Callable[[str], None] = lambda message: None) -> Any:
    """Make ``service`` (an rclpy Service) resend a reply the rmw dropped for an unmatched client.

    rclpy's executor sends a service's reply through ``service.send_response``; this replaces it on
    the instance (once: a service already changed is returned as it is). ``on_lost`` is told when a
    reply could not be sent within ``resend_for_s``.
    """
    if getattr(service, "keeps_replies", False):
        return service
    send = service.send_response

    @functools.wraps(send)
    def send_response(response: Any, header: Any) -> None:
        deadline = time.monotonic() + resend_for_s
        while not _send_once(send, response, header):
            if time.monotonic() >= deadline:
                on_lost(f"{service.srv_name}: the client's reply reader was not matched within "
                        f"{resend_for_s:.1f} s; its reply is lost")
                return
            time.sleep(0.01)  # the rmw itself waits for the match; this only bounds a busy loop

    service.send_response = send_response
    service.keeps_replies = True
    return service
