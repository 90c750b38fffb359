"""Overload: images at 100 Hz while tracking one takes longer than 10 ms.

The node must keep latency bounded (the newest frame wins, nothing queues), count and report
the dropped frames, keep answering services, and keep its memory flat.
"""

import threading
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus

from node_harness import model_files, prompt_msg, start_node  # noqa: F401 - fixture

pytestmark = pytest.mark.ros

RATE_HZ = 100.0
DURATION_S = 6.0
BOX = [128.0, 133.12, 212.48, 199.68]


@pytest.fixture(scope="module")
def running(model_files, tmp_path_factory):  # noqa: F811
    node = start_node(tmp_path_factory.mktemp("overload"), model_files.params(diagnostics_period=0.5))
    yield node
    node.close()


def _publish_at_rate(client, frames, count, rate_hz, first_index):
    """Publish `count` frames on a fixed schedule (no drift), from a thread."""
    period = 1.0 / rate_hz
    start = time.monotonic()
    for number in range(count):
        delay = start + number * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        client.publish_frame(frames[number % len(frames)], first_index + number)


def test_latency_stays_bounded_and_drops_are_reported_under_overload(running, model_files):  # noqa: F811
    client = running.client
    frames = model_files.frames()
    client.track(frames[0], 0)
    for box in (BOX, [20, 20, 120, 100]):
        assert client.add_object(prompt_msg(box=box)).success
    for index in range(1, 4):  # warm-up
        client.track(frames[index], index)
    client.objects.clear()
    count_before = len(client.diagnostics)
    client.wait_until(lambda: len(client.diagnostics) > count_before, 5, "diagnostics before the burst")
    before_burst = client.latest_diagnostics()
    baseline = {key: int(before_burst[f"{key} frames (total)"]) for key in ("received", "processed", "dropped")}

    count = int(RATE_HZ * DURATION_S)
    publisher = threading.Thread(target=_publish_at_rate, args=(client, frames, count, RATE_HZ, 100))
    started = time.monotonic()
    publisher.start()

    # Services still answer while the worker is saturated (they wait for one frame at most).
    time.sleep(DURATION_S / 3)
    asked = time.monotonic()
    response = client.add_object(prompt_msg(points=[[200, 60]], labels=[1]))
    service_s = time.monotonic() - asked
    assert response.success, response.message
    assert client.latest_diagnostics()["state"] == "active"  # while saturated, not only after

    publisher.join()
    sent_s = time.monotonic() - started
    assert sent_s < DURATION_S * 1.5, f"the test itself could not publish at {RATE_HZ} Hz ({sent_s:.1f} s)"
    time.sleep(1.0)  # the last frame, and a diagnostics message after it
    count_before = len(client.diagnostics)
    client.wait_until(lambda: len(client.diagnostics) > count_before + 1, 5, "diagnostics after the burst")
    diagnostics = client.latest_diagnostics()

    arrivals = np.array([t for t, _ in client.objects.arrivals])  # when each output reached the test
    outputs = list(client.objects.by_stamp.values())
    latencies = np.array([o.latency_ms for o in outputs])
    processed = len(outputs)
    assert processed >= 10, f"only {processed} frames processed in {sent_s:.1f} s"
    assert processed < 0.9 * count, "each frame should take longer than the publishing period here"
    # Every output is for one of the published frames, in order: nothing was processed twice.
    stamps = [(o.header.stamp.sec, o.header.stamp.nanosec) for o in outputs]
    assert stamps == sorted(set(stamps))

    # Latency: frame k arrived after frame k-1 was taken (or it would have replaced it), that is
    # after frame k-2 was published; so it is out within the two processing periods since then.
    # Checked frame by frame, which holds however the machine's load varies during the test.
    two_periods_ms = (arrivals[2:] - arrivals[:-2]) * 1000.0
    steady = latencies[2:]
    periods_ms = np.diff(arrivals) * 1000.0
    report = (f"processed {processed}/{count} frames; period median {np.median(periods_ms):.0f} ms, "
              f"p95 {np.percentile(periods_ms, 95):.0f} ms; latency median {np.median(steady):.0f} ms, "
              f"p95 {np.percentile(steady, 95):.0f} ms, max {steady.max():.0f} ms")
    print(report)
    # (The slack covers the test's own receive jitter on a loaded machine. That jitter can also
    # hand the test two or three outputs within a few milliseconds, which shrinks one frame's
    # bound to nearly nothing: a frame or two in 20 may miss it. A queue would miss it on every
    # frame after the first few, its latency growing by a period each time.)
    late = np.flatnonzero(steady > two_periods_ms + np.maximum(25.0, 0.15 * two_periods_ms))
    assert late.size <= max(1, steady.size // 20), \
        f"{report}; over two periods: {[(steady[i], two_periods_ms[i]) for i in late[:5]]}"
    assert np.median(steady) < 2 * np.median(periods_ms), report
    assert service_s < 5.0, f"add_object took {service_s:.1f} s under overload"

    # Drops are counted and reported; every received frame is accounted for.
    received, done, dropped = (int(diagnostics[f"{key} frames (total)"]) - baseline[key]
                               for key in ("received", "processed", "dropped"))
    # The node keeps taking frames while its worker is busy (the newest replaces the waiting one),
    # so it receives many more than it processes. How many of the 100 Hz frames reach it at all
    # depends on the machine: on 2 busy cores a best-effort reader that keeps one sample loses
    # those that come while the executor waits for the CPU (seen: 235 of 600).
    assert received >= 3 * processed, f"received {received} of {count}, processed {processed}"
    assert dropped > 0 and done + dropped == received, diagnostics
    # Each processed frame was published once. The outputs are reliable but keep-last 5 (a live
    # node must not block on a slow reader), so a reader starved of CPU by its own 100 Hz
    # publishing can miss a few (seen: 3 of 110); it can never see more than were published.
    missed = done - processed
    assert 0 <= missed <= max(2, done // 20), f"node processed {done}, the test received {processed}"
    assert diagnostics["state"] == "active"
    warn = [d for d in client.diagnostics if d.status[0].level == DiagnosticStatus.WARN]
    assert any("falling behind" in d.status[0].message for d in warn), "no WARN while falling behind"

    # Memory stays flat. The process: frames queued anywhere (600 were sent) would show here.
    rss_before, rss_after = (float(d["process memory (MiB)"]) for d in (before_burst, diagnostics))
    assert rss_after - rss_before < 40, f"process memory grew from {rss_before} to {rss_after} MiB"
    # The tracker's memory bank: once every object's bank is full (7 frames; tracked one at a time,
    # so each is counted, whatever the machine's load did to the burst), more frames add nothing.
    def tracker_mib_after(frames_to_track: int, first_index: int) -> float:
        for number in range(frames_to_track):
            client.track(frames[number % len(frames)], first_index + number)
        count_before = len(client.diagnostics)
        client.wait_until(lambda: len(client.diagnostics) > count_before, 5, "diagnostics after tracking")
        return float(client.latest_diagnostics()["tracker memory (MiB)"])
    full_bank = tracker_mib_after(8, 100 + count + 10)
    later = tracker_mib_after(8, 100 + count + 30)
    assert later == pytest.approx(full_bank, rel=0.05), (full_bank, later)
