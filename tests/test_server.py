"""sam2-server as real processes: a client's results equal an in-process TrackingSession's bit for bit,
streams stay apart, bad input is answered or dropped and counted, silent streams are freed, memory
stays flat, CURVE keeps strangers out, and a dead or restarted server is noticed."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
import zmq.auth

import sam2_model
from sam2_model.discovery import DISCOVERY_GENERATOR_OPTIONS, DiscoveryOptions
from sam2_model.tracking_session import Outputs, PromptSpec, TrackingSession
from sam2_server import protocol
from sam2_server.client import ServerError, ServerUnavailable, TrackerClient
from sam2_server.security import CurveClientKeys

from server_harness import REPO, ServerProcess, running_server, torch_threads_as_the_server  # noqa: F401
from session_checks import assert_same_frame, centre_click, first_target_box, model, scene  # noqa: F401

pytestmark = pytest.mark.usefixtures("torch_threads_as_the_server")

ALL = Outputs(crops=True, labels=True, tinted=True)
VANISHED_STREAM_TIMEOUT_S = 3.0
TIMEOUT_S = 20.0  # generous: three test processes share two cores


def _local(model, **options) -> TrackingSession:
    return TrackingSession(sam2_model.StreamingTracker(model, **options),
                           sam2_model.AutomaticMaskGenerator(model, DISCOVERY_GENERATOR_OPTIONS))


def _script(frames, labels):
    """Every kind of call, in the order a node could make them: (name, args) with the session API."""
    return [
        ("track", (frames[0], Outputs())),
        ("add_prompt", (1, PromptSpec(points=centre_click(labels[0], 1), labels=[1]), ALL)),
        ("add_prompt", (2, PromptSpec(box=first_target_box(labels[0], 2)), Outputs(crops=False))),
        ("track", (frames[1], ALL)),
        ("add_prompt", (1, PromptSpec(points=centre_click(labels[1], 1), labels=[0], clear_old_points=False), ALL)),
        ("add_prompt", (7, PromptSpec(mask=labels[1] == 2), ALL)),
        ("add_prompt", (3, PromptSpec(points=centre_click(labels[1], 2), labels=[1],
                                      box=first_target_box(labels[1], 2)), ALL)),
        ("track", (frames[2], Outputs(crops=False, labels=True))),
        ("remove_object", (2,)),
        ("current", (ALL,)),
        ("track", (frames[3], ALL)),
        ("discover", ({}, None, 0, 8, ALL)),
        ("track", (frames[4], ALL)),
        ("reset", ()),
        ("track", (frames[5], ALL)),
        ("discover", ({"order": "score"}, (0, 0, 64, 128), 1, 1, ALL)),
    ]


def _call(target, name, args):
    if name == "discover" and isinstance(target, TrackingSession):
        options, *rest = args
        return target.discover(DiscoveryOptions(**options), *rest)
    return getattr(target, name)(*args)


def _compare(got, expected, where):
    if hasattr(expected, "object_ids"):  # a discovery
        assert (got.object_ids, got.generated, got.full) == (expected.object_ids, expected.generated, expected.full)
        assert_same_frame(got.frame, expected.frame, where)
    elif expected is not None:
        assert_same_frame(got, expected, where)


def test_client_import_loads_no_torch():
    code = ("import sys, sam2_server.client, sam2_server.protocol, sam2_server.security\n"
            "heavy = [m for m in ('torch', 'rclpy', 'sam2_model.tracker') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def test_every_call_through_the_server_equals_the_in_process_session(tmp_path, model):
    frames, labels = scene()
    local = _local(model)
    with running_server(tmp_path) as server:
        with TrackerClient(server.endpoint, "cam", {}, timeout_s=TIMEOUT_S) as client:
            for k, (name, args) in enumerate(_script(frames, labels)):
                _compare(_call(client, name, args), _call(local, name, args), f"call {k} ({name})")
            # Refusals come back with the session's own error and kind.
            cases = [("add_prompt", (1, PromptSpec(points=[[1e5, 1]], labels=[1])), "prompt", sam2_model.PromptError),
                     ("remove_object", (42,), "unknown_object", sam2_model.UnknownObjectError),
                     ("discover", ({}, None, -1, 1), "discovery", ValueError),
                     ("discover", ({"bogus": 1}, None, 0, 1), "bad_request", TypeError)]
            for name, args, kind, error_type in cases:
                with pytest.raises(ServerError) as remote:
                    _call(client, name, args)
                assert remote.value.kind == kind
                with pytest.raises(error_type) as here:
                    _call(local, name, args)
                if kind != "bad_request":
                    assert str(remote.value) == str(here.value)
            with pytest.raises(ServerError, match="H x W x 3 uint8") as bad_frame:
                client.track(np.zeros((4, 4), np.uint8))
            assert bad_frame.value.kind == "frame"
            client.reset()
            with pytest.raises(ServerError, match="no image yet") as early:
                client.add_prompt(1, PromptSpec(points=[[1, 1]], labels=[1]))
            assert early.value.kind == "tracking"


def test_streams_keep_their_own_state_and_options(tmp_path, model):
    frames, labels = scene()
    other_frames, other_labels = scene(seed=4)
    options_b = {"fill_hole_area": 0, "max_objects": 4}
    local_a, local_b = _local(model), _local(model, **options_b)
    with running_server(tmp_path) as server:
        a = TrackerClient(server.endpoint, "front", {}, timeout_s=TIMEOUT_S)
        b = TrackerClient(server.endpoint, "rear", options_b, timeout_s=TIMEOUT_S)
        a.connect()
        b.connect()
        assert a.stream_epoch != b.stream_epoch
        script_a, script_b = _script(frames, labels)[:10], _script(other_frames, other_labels)[:10]
        for k, (step_a, step_b) in enumerate(zip(script_a, script_b)):  # interleaved, one request at a time
            _compare(_call(a, *step_a), _call(local_a, *step_a), f"front call {k}")
            _compare(_call(b, *step_b), _call(local_b, *step_b), f"rear call {k}")
        assert sorted(a.stats()["streams"]) == ["front", "rear"]
        b.close()
        assert a.stats()["streams"] == ["front"]
        _compare(a.track(frames[5], ALL), local_a.track(frames[5], ALL), "front after rear closed")
        a.close()


@pytest.mark.parametrize("execution", ["batched", "threaded"])
def test_frames_of_waiting_streams_are_computed_together_and_none_starves(tmp_path, model, execution,
                                                                          torch_threads_as_the_server):
    """Three streams at once: ``batched`` encodes their waiting frames together (agreeing with one
    stream alone to float rounding); ``threaded`` tracks each on its own lane with one intra-op
    thread (exactly the in-process result at that thread count)."""
    frames, labels = scene()
    names = ["cam0", "cam1", "cam2"]
    results = {name: [] for name in names}
    with running_server(tmp_path, "--execution", execution) as server:
        clients = [TrackerClient(server.endpoint, name, {}, timeout_s=TIMEOUT_S) for name in names]
        for client in clients:
            client.connect()
            client.track(frames[0])
            client.add_prompt(1, PromptSpec(points=centre_click(labels[0], 1), labels=[1]))
        start = threading.Barrier(len(clients))

        def run(client):
            start.wait()
            for t in range(1, 6):
                results[client.stream].append(client.track(frames[t], ALL))

        threads = [threading.Thread(target=run, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        stats = clients[0].stats()
        for client in clients:
            client.close()
    batched = sum(n for key, n in stats["counts"].items() if key.startswith("batch_size_") and key != "batch_size_1")
    assert stats["execution"] == execution
    if execution == "batched":
        assert batched > 0, f"no frames were encoded together: {stats['counts']}"
    else:
        assert batched == 0 and stats["counts"]["frames_tracked"] == 3 * 6, stats["counts"]
    # Every stream got every frame answered, in order; batched encoding agrees with one frame at a
    # time to float32 rounding (exact equality holds for single frames, see the parity test).
    local = _local(model)
    local.track(frames[0])
    local.add_prompt(1, PromptSpec(points=centre_click(labels[0], 1), labels=[1]))
    expected = [local.track(frames[t], ALL) for t in range(1, 6)]
    for name in names:
        assert [s.frame_index for s in results[name]] == [1, 2, 3, 4, 5]
        for t, (got, want) in enumerate(zip(results[name], expected), start=1):
            assert [o.object_id for o in got.objects] == [1]
            if execution == "threaded":
                assert_same_frame(got, want, f"{name} frame {t}")
                continue
            a, b = got.objects[0].frame_mask((got.height, got.width)), want.objects[0].frame_mask((want.height,
                                                                                                   want.width))
            assert (a != b).sum() <= max(10, 0.01 * b.sum())


def test_requests_pipelined_behind_a_frame_on_a_lane_wait_for_it(tmp_path, model):
    """Threaded execution starts frames on lanes and takes more work meanwhile: a stream's prompt
    and next frame sent right behind its frame (no waiting for answers) are answered after it, in
    order, and computed on its result, while another stream tracks alongside."""
    frames, labels = scene()
    with running_server(tmp_path, "--execution", "threaded") as server:
        busy = TrackerClient(server.endpoint, "busy", {}, timeout_s=TIMEOUT_S)
        busy.connect()
        busy.track(frames[0])
        busy.add_prompt(1, PromptSpec(points=centre_click(labels[0], 1), labels=[1]))
        client = TrackerClient(server.endpoint, "cam", {}, timeout_s=TIMEOUT_S)
        client.connect()
        client.track(frames[0])
        client.add_prompt(1, PromptSpec(points=centre_click(labels[0], 1), labels=[1]))
        stop = threading.Event()

        def keep_busy():
            t = 1
            while not stop.is_set():
                busy.track(frames[t % len(frames)])
                t += 1

        other = threading.Thread(target=keep_busy)
        other.start()
        sock = _raw_dealer(server.endpoint)
        try:
            prompt_fields, prompt_arrays = protocol.prompt_to_wire(PromptSpec(box=first_target_box(labels[1], 2)))
            wire_all = protocol.outputs_to_wire(ALL)
            sock.send_multipart(protocol.encode({"op": "track", "id": 1, "stream": "cam", "outputs": wire_all},
                                                {"frame": frames[1]}))
            sock.send_multipart(protocol.encode({"op": "prompt", "id": 2, "stream": "cam", "object_id": 2,
                                                 "outputs": wire_all, **prompt_fields}, prompt_arrays))
            sock.send_multipart(protocol.encode({"op": "track", "id": 3, "stream": "cam", "outputs": wire_all},
                                                {"frame": frames[2]}))
            replies = []
            while len(replies) < 3 and sock.poll(int(TIMEOUT_S * 1000)):
                replies.append(protocol.decode(sock.recv_multipart()))
        finally:
            stop.set()
            other.join(timeout=60)
            sock.close()
            busy.close()
            client.close()
    assert [r.header["id"] for r in replies] == [1, 2, 3] and all(r.header["ok"] for r in replies), \
        [r.header for r in replies]
    local = _local(model)
    local.track(frames[0])
    local.add_prompt(1, PromptSpec(points=centre_click(labels[0], 1), labels=[1]))
    expected = [local.track(frames[1], ALL), local.add_prompt(2, PromptSpec(box=first_target_box(labels[1], 2)), ALL),
                local.track(frames[2], ALL)]
    for reply, want, where in zip(replies, expected, ["frame 1", "prompt on frame 1", "frame 2"]):
        assert_same_frame(protocol.frame_state_from_wire(reply), want, where)


def test_a_newer_frame_replaces_a_waiting_one(tmp_path):
    """Latest frame wins per stream: frames pipelined behind a slow request (a discovery) are replaced
    by the newest; the replaced ones are answered "superseded" and counted."""
    frames, _ = scene()
    with running_server(tmp_path) as server:
        client = TrackerClient(server.endpoint, "cam", {}, timeout_s=TIMEOUT_S)
        client.connect()
        client.track(frames[0])
        sock = _raw_dealer(server.endpoint)
        sock.send_multipart(protocol.encode({"op": "discover", "id": 1, "stream": "cam", "max_new": 0,
                                             "first_id": 1}))
        for k in (2, 3, 4):
            sock.send_multipart(protocol.encode({"op": "track", "id": k, "stream": "cam"}, {"frame": frames[k]}))
        replies = {}
        while len(replies) < 4 and sock.poll(int(TIMEOUT_S * 1000)):
            message = protocol.decode(sock.recv_multipart())
            replies[message.header["id"]] = message.header
        sock.close()
        assert sorted(replies) == [1, 2, 3, 4]
        assert replies[1]["ok"] and replies[4]["ok"]
        assert [replies[k].get("kind") for k in (2, 3)] == ["superseded", "superseded"]
        assert client.stats()["counts"]["frames_superseded"] == 2
        # The stream went on from the newest frame: the second frame it tracked, after the discovery.
        assert replies[4]["frame"]["frame_index"] == 1
        assert [o[0] for o in replies[4]["frame"]["objects"]] == replies[1]["object_ids"]
        client.close()


def _raw_dealer(endpoint: str):
    """A bare DEALER socket on the server: requests a TrackerClient would never send."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(endpoint)
    return sock


def _assert_refused(sock, cases) -> None:
    """Each case (name -> (message parts, error kind, words of the message)) is answered, refused as that
    kind, with a message naming the problem."""
    for name, (parts, kind, words) in cases.items():
        reply = _raw_request(sock, parts)
        assert reply is not None, f"{name}: no reply"
        assert (reply["ok"], reply["kind"]) == (False, kind), f"{name}: {reply}"
        assert words in reply["message"], f"{name}: {reply['message']}"


def _raw_request(sock, parts, timeout_s=TIMEOUT_S):
    sock.send_multipart(parts)
    if not sock.poll(int(timeout_s * 1000)):
        return None
    return protocol.decode(sock.recv_multipart()).header


def test_bad_messages_are_refused_or_dropped_counted_and_the_server_carries_on(tmp_path):
    frames, _ = scene()
    limit_mb = 1
    with running_server(tmp_path, "--max-message-mb", str(limit_mb)) as server:
        good = TrackerClient(server.endpoint, "cam", {}, timeout_s=TIMEOUT_S)
        good.connect()
        sock = _raw_dealer(server.endpoint)
        prefix = struct.pack("!4sH", protocol.MAGIC, protocol.VERSION)

        def header(fields):
            return prefix + json.dumps(fields).encode()

        cases = {
            "garbage": ([b"\x00\xffnot a message at all"], "bad_request", "not a sam2_server message"),
            "bad json": ([prefix + b"{not json"], "bad_request", "not valid JSON"),
            "json bomb": ([prefix + b"[" * 60000], "bad_request", "nested too deeply"),
            "wrong version": ([struct.pack("!4sH", protocol.MAGIC, protocol.VERSION + 1) + b"{}"], "version",
                              "version 2 is not supported"),
            "truncated": ([header({"op": "track", "id": 1, "stream": "cam",
                                   "arrays": [{"name": "frame", "dtype": "uint8", "shape": [64, 64, 3]}]})],
                          "bad_request", "truncated"),
            "short buffer": ([header({"op": "track", "id": 2, "stream": "cam",
                                      "arrays": [{"name": "frame", "dtype": "uint8", "shape": [64, 64, 3]}]}),
                              b"\x00" * 100], "bad_request", "needs 12288 bytes"),
            "oversized": ([header({"op": "ping", "id": 3, "stream": "cam", "arrays": []}),
                           *[b"\x00" * (600 * 1024)] * 2], "bad_request", "exceeds the limit"),
            "unknown stream": (protocol.encode({"op": "track", "id": 4, "stream": "nobody"},
                                               {"frame": frames[0]}), "unknown_stream", "no stream 'nobody'"),
            "unknown op": (protocol.encode({"op": "explode", "id": 5, "stream": "cam"}), "bad_request",
                           "unknown operation"),
            "no id": (protocol.encode({"op": "ping", "stream": "cam"}), "bad_request", "'id'"),
            "long stream name": (protocol.encode({"op": "open", "id": 8, "stream": "x" * 5000}), "bad_request",
                                 "stream names have"),
            "wrong field type": (protocol.encode({"op": "remove", "id": 6, "stream": "cam", "object_id": "one"}),
                                 "bad_request", "must be int"),
            "bad dtype": (protocol.encode({"op": "track", "id": 7, "stream": "cam"},
                                          {"frame": frames[0].astype(np.float32)}), "frame", "uint8"),
        }
        _assert_refused(sock, cases)
        # One part above the limit: ZeroMQ drops it (and that connection) before the server sees it.
        assert _raw_request(sock, [b"x" * (limit_mb * 2 ** 20 + 1)], timeout_s=1.0) is None
        sock.close()
        stats = good.stats()
        assert stats["errors"].get("bad_request", 0) >= 8 and stats["errors"]["version"] == 1
        assert stats["errors"]["unknown_stream"] == 1 and stats["errors"]["frame"] == 1
        # Still serving, the good stream untouched.
        assert good.track(frames[0]).frame_index == 0
        good.close()


def test_requests_that_used_to_go_unanswered_are_refused_by_name(tmp_path):
    """Each of these once raised past the server's refusals: the client got no reply at all."""
    frames, _ = scene()
    with running_server(tmp_path) as server:
        good = TrackerClient(server.endpoint, "cam", {}, timeout_s=TIMEOUT_S)
        good.connect()
        good.track(frames[0])
        sock = _raw_dealer(server.endpoint)
        impossible = protocol.encode({"op": "track", "id": 1, "stream": "cam"}, {"frame": np.zeros((0, 4), np.uint8)})
        impossible[0] = impossible[0].replace(b"[0,4]", b"[0,%d]" % 10 ** 20)

        def open_with(k, options):
            return protocol.encode({"op": "open", "id": k, "stream": f"new{k}", "options": options})

        def discover(k, **fields):
            return protocol.encode({"op": "discover", "id": k, "stream": "cam", "max_new": 0, "first_id": 1,
                                    **fields})

        cases = {
            "impossible shape": (impossible, "bad_request", "is not possible"),
            "robust_options": (open_with(2, {"memory_policy": "robust", "robust_options": {"kalman": False}}),
                               "bad_request", "name the robust policy's components and thresholds in memory_policy"),
            "huge grid": (open_with(3, {"generator": {"points_per_side": 10 ** 6}}), "bad_request",
                          "points_per_side 1000000 is above the limit"),
            "float batch": (open_with(4, {"generator": {"points_per_batch": 2.0}}), "bad_request",
                            "points_per_batch must be an integer, got 2.0"),
            "text area": (discover(5, options={"min_area": "x"}), "discovery", "min_area must be a number, got 'x'"),
            "bool region": (discover(6, region=[True, 0, 5, 5]), "bad_request", "region must be [x, y, width, height]"),
        }
        _assert_refused(sock, cases)
        sock.close()
        stats = good.stats()
        assert stats["streams"] == ["cam"]   # none of the refused opens left a stream behind
        assert stats["errors"] == {"bad_request": 5, "discovery": 1}
        assert good.track(frames[1]).frame_index == 1
        good.close()


def test_silent_streams_are_freed_and_heartbeats_keep_them(tmp_path):
    frames, _ = scene()
    with running_server(tmp_path, "--stream-timeout", "1.0") as server:
        quiet = TrackerClient(server.endpoint, "quiet", {}, timeout_s=TIMEOUT_S)
        beating = TrackerClient(server.endpoint, "beating", {}, timeout_s=TIMEOUT_S)
        for client in (quiet, beating):
            client.connect()
            client.track(frames[0])
        until = time.monotonic() + 2.5
        while time.monotonic() < until:
            assert beating.heartbeat()
            time.sleep(0.3)
        assert beating.stats()["streams"] == ["beating"] and not beating.stream_lost
        assert beating.track(frames[1]).frame_index == 1
        with pytest.raises(ServerError) as lost:
            quiet.track(frames[1])
        assert lost.value.kind == "unknown_stream" and quiet.stream_lost
        old_epoch = quiet.stream_epoch
        quiet.connect()
        assert quiet.stream_epoch != old_epoch and not quiet.stream_lost
        assert quiet.track(frames[1]).frame_index == 0
        assert beating.stats()["counts"]["streams_expired"] == 1
        quiet.close()
        beating.close()


def test_server_memory_is_flat_over_100_connect_track_disconnect_cycles(tmp_path):
    frames, labels = scene()
    small = frames[:, :64, :64]
    click = PromptSpec(points=[[10.0, 10.0]], labels=[1])

    def cycle(k):
        client = TrackerClient(server.endpoint, f"cam{k}", {}, timeout_s=TIMEOUT_S)
        client.connect()
        client.track(small[0])
        client.add_prompt(1, click)
        client.track(small[1], ALL)
        if k % 2:
            client.close()   # a polite node
        else:                # a node that vanished: only the stream timeout frees it
            client._calls.close()
            client._pings.close()

    # The timeout must outlast the gaps between one cycle's calls on a loaded machine (0.5 s did not).
    with running_server(tmp_path, "--stream-timeout", str(VANISHED_STREAM_TIMEOUT_S), "--max-streams", "200") as server:
        # Warm-up (allocator pools, caches) at least twice the timeout long: vanished streams live
        # that long, so only then are as many alive at once as during the measured cycles.
        warm_up, started = 0, time.monotonic()
        while warm_up < 20 or time.monotonic() - started < 2 * VANISHED_STREAM_TIMEOUT_S:
            cycle(warm_up)
            warm_up += 1
        time.sleep(VANISHED_STREAM_TIMEOUT_S + 1.0)
        before = server.rss_bytes()
        for k in range(warm_up, warm_up + 100):
            cycle(k)
        time.sleep(VANISHED_STREAM_TIMEOUT_S + 1.5)
        after = server.rss_bytes()
        probe = TrackerClient(server.endpoint, "probe", {}, timeout_s=TIMEOUT_S)
        stats = probe.stats()
    opened = warm_up + 100
    assert stats["streams"] == [] and stats["counts"]["streams_opened"] == opened
    assert stats["counts"]["streams_expired"] + stats["counts"]["streams_closed"] == opened
    growth = after - before
    assert growth < 8 * 2 ** 20, f"server RSS grew by {growth / 2 ** 20:.1f} MiB over 100 cycles"


def test_a_second_server_does_not_take_the_address_of_a_running_one(tmp_path):
    with running_server(tmp_path) as server:
        second = subprocess.run([sys.executable, "-m", "sam2_server", "--bind", server.endpoint], cwd=REPO,
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and "another sam2-server answers" in second.stderr
        port = _free_port()
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", port))
            taken.listen()
            third = subprocess.run([sys.executable, "-m", "sam2_server", "--bind", f"tcp://127.0.0.1:{port}"],
                                   cwd=REPO, capture_output=True, text=True, timeout=120)
        assert third.returncode == 2 and "cannot bind" in third.stderr, third.stderr[-2000:]
        client = TrackerClient(server.endpoint, "cam", {}, timeout_s=TIMEOUT_S)
        client.connect()    # the first server still has its address
        client.close()


def test_a_second_server_does_not_take_the_ipc_path_of_a_curve_server(tmp_path):
    """The heartbeat probe cannot reach a CURVE server (the second server holds no client secret),
    so the check used to be skipped and the second server silently took the path."""
    keys = tmp_path / "keys"
    made = subprocess.run([sys.executable, "-m", "sam2_server", "keygen", str(keys), "--client", "robot1"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    authorized = CurveClientKeys.load(str(keys / "server.key"), str(keys / "clients" / "robot1.key_secret"))
    endpoint = f"ipc://{tmp_path}/curve.sock"
    server = ServerProcess(endpoint, ["--curve-keys", str(keys)], tmp_path / "curve.log").start(curve=authorized)
    try:
        for extra in (["--curve-keys", str(keys)], []):
            second = subprocess.run([sys.executable, "-m", "sam2_server", "--bind", endpoint, *extra], cwd=REPO,
                                    capture_output=True, text=True, timeout=120)
            assert second.returncode == 2 and "another program listens at" in second.stderr, second.stderr[-2000:]
        with TrackerClient(endpoint, "robot1", {}, timeout_s=TIMEOUT_S, curve=authorized) as client:
            assert client.heartbeat()   # the first server still has its path
        assert server.alive
        server.kill()                   # a crash leaves its socket file behind
    finally:
        if server.alive:
            server.stop()
    assert Path(endpoint[len("ipc://"):]).exists()
    # Nothing listens on a stale file: it is free to take again.
    again = ServerProcess(endpoint, ["--curve-keys", str(keys)], tmp_path / "again.log").start(curve=authorized)
    assert again.stop() == 0


def test_max_streams_is_enforced(tmp_path):
    with running_server(tmp_path, "--max-streams", "2") as server:
        clients = [TrackerClient(server.endpoint, f"cam{k}", {}, timeout_s=TIMEOUT_S) for k in range(3)]
        clients[0].connect()
        clients[1].connect()
        with pytest.raises(ServerError) as full:
            clients[2].connect()
        assert full.value.kind == "full" and "--max-streams" in str(full.value)
        clients[1].connect()   # re-opening an existing stream is not a new one
        with pytest.raises(ServerError) as bad:
            TrackerClient(server.endpoint, "cam0", {"max_objects": 0}, timeout_s=TIMEOUT_S).connect()
        assert bad.value.kind == "bad_request" and "max_objects" in str(bad.value)
        for client in clients:
            client.close()


def test_no_server_raises_unavailable_within_the_timeout(tmp_path):
    client = TrackerClient(f"ipc://{tmp_path}/nobody.sock", "cam", {}, timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(ServerUnavailable):
        client.connect()
    assert time.monotonic() - started < 1.0
    started = time.monotonic()
    assert not client.heartbeat() and not client.server_alive
    assert time.monotonic() - started < 1.0
    client.close()


def test_a_killed_and_restarted_server_is_noticed(tmp_path):
    frames, labels = scene()
    endpoint = f"ipc://{tmp_path}/sam2.sock"
    first = ServerProcess(endpoint, [], tmp_path / "first.log").start()
    client = TrackerClient(endpoint, "cam", {}, timeout_s=1.0)
    try:
        client.connect()
        client.track(frames[0])
        client.add_prompt(1, PromptSpec(points=centre_click(labels[0], 1), labels=[1]))
        epoch = client.stream_epoch
        first.kill()
        started = time.monotonic()
        with pytest.raises(ServerUnavailable):
            client.track(frames[1])
        assert not client.heartbeat()
        assert time.monotonic() - started < 2.5   # the node notices within 2 s of its next call
        second = ServerProcess(endpoint, [], tmp_path / "second.log").start()
        try:
            assert client.heartbeat() and client.server_alive and client.stream_lost
            with pytest.raises(ServerError) as lost:
                client.track(frames[1])
            assert lost.value.kind == "unknown_stream"
            client.connect()
            assert client.stream_epoch != epoch and not client.stream_lost
            client.track(frames[1])
            state = client.add_prompt(1, PromptSpec(mask=labels[1] == 1))   # the node re-seeds, same id
            assert [o.object_id for o in state.objects] == [1]
        finally:
            client.close()
            second.stop()
    finally:
        if first.alive:
            first.kill()


def test_curve_lets_authorized_clients_in_and_strangers_get_nothing(tmp_path):
    frames, _ = scene()
    keys = tmp_path / "keys"
    made = subprocess.run([sys.executable, "-m", "sam2_server", "keygen", str(keys), "--client", "robot1"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert (keys / "server.key").is_file() and (keys / "authorized_clients" / "robot1.key").is_file()
    stranger_dir = tmp_path / "stranger"
    stranger_dir.mkdir()
    zmq.auth.create_certificates(str(stranger_dir), "stranger")
    authorized = CurveClientKeys.load(str(keys / "server.key"), str(keys / "clients" / "robot1.key_secret"))
    stranger = CurveClientKeys.load(str(keys / "server.key"), str(stranger_dir / "stranger.key_secret"))
    # Off loopback without keys: refused before anything is bound.
    refused = subprocess.run([sys.executable, "-m", "sam2_server", "--bind", "tcp://0.0.0.0:45557"], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "without CURVE" in refused.stderr
    port = _free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    server = ServerProcess(endpoint, ["--curve-keys", str(keys)], tmp_path / "curve.log").start(curve=authorized)
    try:
        for keys_used in (stranger, None):
            outsider = TrackerClient(endpoint, "intruder", {}, timeout_s=1.0, curve=keys_used)
            with pytest.raises(ServerUnavailable):
                outsider.connect()
            assert not outsider.heartbeat()
            outsider.close()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:   # not even ZeroMQ
            raw.sendall(b"GET / HTTP/1.1\r\nHost: robot\r\n\r\n" + bytes(range(256)) * 64)
            time.sleep(0.3)
        with TrackerClient(endpoint, "robot1", {}, timeout_s=TIMEOUT_S, curve=authorized) as client:
            assert client.track(frames[0]).frame_index == 0
            stats = client.stats()
            assert stats["streams"] == ["robot1"]
            # Each stranger's attempts and the raw connection failed their handshakes, counted.
            assert stats["counts"].get("handshakes_failed", 0) >= 2, stats["counts"]
        assert server.alive
    finally:
        server.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_heartbeats_are_answered_while_the_model_is_busy(tmp_path):
    """The node's timer calls heartbeat() while its worker waits on a slow request (a discovery):
    the server's I/O thread answers at once, and the client's two sockets do not block each other."""
    frames, _ = scene()
    with running_server(tmp_path) as server:
        client = TrackerClient(server.endpoint, "cam", {}, timeout_s=TIMEOUT_S)
        client.connect()
        client.track(frames[0])
        outcome = []
        slow = threading.Thread(target=lambda: outcome.append(client.discover({}, None, 0, 1)))
        slow.start()
        time.sleep(0.2)                      # the discovery is on the model thread now
        beats = []
        while slow.is_alive() and len(beats) < 5:
            started = time.monotonic()
            assert client.heartbeat()
            beats.append(time.monotonic() - started)
        slow.join(timeout=120)
        assert outcome and beats, "the discovery ended before a heartbeat could overlap it"
        assert max(beats) < 1.0, f"heartbeats took {beats} s while the model was busy"
        client.close()
