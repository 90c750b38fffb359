"""sam2_server's parts without a model: the wire format, the stream table's scheduling, the bind rules, keygen."""

from __future__ import annotations

import threading
import time
import types

import numpy as np
import pytest

from sam2_model.frame_state import FrameState, ObjectState
from sam2_model.session_types import DiscoveryOutcome, Outputs, PromptSpec
from sam2_server import protocol
from sam2_server.client import ServerError, TrackerClient
from sam2_server.config import ServerConfig, ServerConfigError
from sam2_server.protocol import Message, ProtocolError
from sam2_server.security import SecurityError, ServerKeys, check_bind, keygen
from sam2_server.server import InferenceServer
from sam2_server.streams import Request, Stream, StreamTable


def _frame_state() -> FrameState:
    rng = np.random.default_rng(0)
    crop = rng.random((3, 5)) > 0.5
    objects = [ObjectState(4, True, 0.1 + 1e-12, 0.7234567891234567, (2, 1, 5, 3), int(crop.sum()), crop),
               ObjectState(300, False, 1e-30, float("nan"), (0, 0, 0, 0), 0, np.zeros((0, 0), bool),
                           predicted_bbox=(1, 2, 3, 4)),  # memory_policy robust: hidden, box predicted
               ObjectState(9, True, 0.5, 0.25, (0, 0, 1, 1), 1, None)]
    labels = rng.integers(0, 400, (6, 8)).astype(np.int32)
    tinted = rng.integers(0, 255, (6, 8, 3)).astype(np.uint8)
    return FrameState(17, 6, 8, objects, labels, tinted)


def _round_trip(header, arrays):
    parts = protocol.encode(header, arrays)
    return protocol.decode([bytes(p) for p in parts])


def test_frame_state_survives_the_wire_exactly():
    state = _frame_state()
    back = protocol.frame_state_from_wire(_round_trip(*protocol.frame_state_to_wire(state)))
    assert (back.frame_index, back.height, back.width) == (17, 6, 8)
    for a, b in zip(back.objects, state.objects):
        assert (a.object_id, a.visible, a.bbox, a.area) == (b.object_id, b.visible, b.bbox, b.area)
        assert a.predicted_bbox == b.predicted_bbox
        assert a.visibility == b.visibility and (a.iou_score == b.iou_score or np.isnan(b.iou_score))
        assert (a.mask is None) == (b.mask is None)
        if b.mask is not None:
            assert a.mask.dtype == bool and np.array_equal(a.mask, b.mask)
    assert back.labels.dtype == np.int32 and np.array_equal(back.labels, state.labels)
    assert np.array_equal(back.tinted, state.tinted)
    outcome = DiscoveryOutcome([5, 6], 11, 12.5, True, state)
    again = protocol.discovery_from_wire(_round_trip(*protocol.discovery_to_wire(outcome)))
    assert (again.object_ids, again.generated, again.duration_ms, again.full) == ([5, 6], 11, 12.5, True)
    assert again.frame.frame_index == 17


def test_prompts_and_outputs_survive_the_wire():
    mask = np.eye(4, dtype=bool)
    fields, arrays = protocol.prompt_to_wire(PromptSpec(points=[[1, 2.5]], labels=[1], box=None, mask=mask,
                                                        clear_old_points=False))
    back = protocol.prompt_from_wire(_round_trip({"op": "prompt", **fields}, arrays))
    assert back.points == [[1.0, 2.5]] and back.labels == [1] and back.box is None
    assert np.array_equal(back.mask, mask) and back.clear_old_points is False
    every = Outputs(crops=False, labels=True, tinted=True)
    assert protocol.outputs_from_wire(protocol.outputs_to_wire(every)) == every
    with pytest.raises(ProtocolError, match="booleans"):
        protocol.outputs_from_wire({"crops": 1})


def test_decode_names_what_is_wrong():
    good = protocol.encode({"op": "ping", "id": 1}, {"a": np.zeros(3, np.float32)})
    with pytest.raises(ProtocolError) as version:
        protocol.decode([b"S2TP\x00\x09{}"])
    assert version.value.kind == "version"
    for parts, words in [([], "empty"), ([b"hello"], "not a sam2_server"), ([good[0]], "truncated"),
                         ([good[0], b"123"], "needs 12 bytes"),
                         ([good[0], *good[1:], b"x"], r"1 array\(s\) but 2 buffer"),
                         ([good[0][:6] + b"[1]"], "JSON object")]:
        with pytest.raises(ProtocolError, match=words) as error:
            protocol.decode(parts)
        assert error.value.kind == "bad_request"
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        protocol.decode([good[0], b"x" * 2000], max_message_bytes=1024)
    with pytest.raises(ValueError, match="cannot be sent"):
        protocol.encode({}, {"a": np.zeros(2, np.float64)})
    assert Message({"n": True}).value("n", bool) is True
    # A zero-sized shape passes the byte count whatever its other sides; numpy cannot make it.
    impossible = protocol.encode({"op": "track", "id": 1}, {"frame": np.zeros((0, 4), np.uint8)})
    impossible[0] = impossible[0].replace(b"[0,4]", b"[0,%d]" % 10 ** 20)
    with pytest.raises(ProtocolError, match=r"array 'frame': shape \[0, 100000000000000000000\] is not possible") \
            as error:
        protocol.decode(impossible)
    assert error.value.kind == "bad_request"
    with pytest.raises(ProtocolError, match="must be int"):
        Message({"n": True}).value("n", int)


def _request(op: str, k: int = 0) -> Request:
    return Request(b"client", Message({"op": op, "id": k}), time.monotonic())


def _streams(table: StreamTable, names):
    made = {}
    for name in names:
        made[name] = Stream(name, len(made) + 1, None, {}, time.monotonic())
        table.put(made[name])
    return made


def test_rounds_take_one_request_per_stream_in_order_and_rotate():
    table = StreamTable(max_streams=8, timeout_s=10, max_batch=2)
    s = _streams(table, ["a", "b", "c"])
    for name in "abc":
        table.submit(s[name], _request("track", 1))
    table.submit(s["a"], _request("prompt", 2))      # after a's frame: must wait for it
    first = table.take_round(0)
    assert [x[0].name for x in first.frames] == ["a", "b"] and first.others == []
    second = table.take_round(0)                      # c was left waiting: it goes first now
    assert [x[0].name for x in second.frames] == ["c"] and [x[0].name for x in second.others] == ["a"]
    assert table.take_round(0) is None


def test_a_round_gathers_the_frames_expected_from_the_last_round():
    """Clients send their next frame just after their answer: a round waits (up to gather_s) for the
    streams whose frames ran last round, so they stay batched; a stream that misses the wait is not
    waited for again until its next frame runs."""
    table = StreamTable(max_streams=8, timeout_s=10, max_batch=8, gather_s=0.4)
    s = _streams(table, ["a", "b", "c"])
    assert table.take_round(0) is None                     # nothing expected, nothing queued: no wait
    for name in "abc":
        table.submit(s[name], _request("track"))
    assert len(table.take_round(0).frames) == 3            # all three now expected
    table.submit(s["a"], _request("track"))
    late = threading.Timer(0.05, lambda: [table.submit(s[name], _request("track")) for name in "bc"])
    late.start()
    started = time.monotonic()
    gathered = table.take_round(0)
    waited = time.monotonic() - started
    late.join()
    assert sorted(x[0].name for x in gathered.frames) == ["a", "b", "c"] and 0.04 < waited < 0.4
    table.submit(s["a"], _request("track"))                # b and c stop sending
    started = time.monotonic()
    assert [x[0].name for x in table.take_round(0).frames] == ["a"]
    assert time.monotonic() - started >= 0.4 and not s["b"].expected and not s["c"].expected
    table.submit(s["a"], _request("track"))
    started = time.monotonic()
    assert [x[0].name for x in table.take_round(0).frames] == ["a"]
    assert time.monotonic() - started < 0.2                # only a is expected, and it is here
    with pytest.raises(ServerConfigError, match="batch_wait_ms"):
        ServerConfig(batch_wait_ms=-1).check()


def test_a_held_stream_waits_for_its_frame_and_free_lanes_bound_a_round():
    """Threaded execution: a frame taken with hold=True runs on a lane while the model thread takes
    more work; its stream's next request (a frame, or a prompt that must see that frame's result)
    waits until release, other streams go on, and a round starts no more frames than lanes are free."""
    table = StreamTable(max_streams=8, timeout_s=1.0, max_batch=8)
    s = _streams(table, ["a", "b", "c"])
    for name in "abc":
        table.submit(s[name], _request("track", 1))
    first = table.take_round(0, max_frames=2, hold=True)
    assert [x[0].name for x in first.frames] == ["a", "b"] and s["a"].held and s["b"].held and not s["c"].held
    table.submit(s["a"], _request("prompt", 2))
    table.submit(s["b"], _request("track", 2))
    assert table.take_round(0, max_frames=0, hold=True) is None     # no lane free; a and b held
    second = table.take_round(0, max_frames=1, hold=True)
    assert [x[0].name for x in second.frames] == ["c"] and second.others == []
    s["a"].last_seen = time.monotonic() - 5
    assert table.expire() == []                                     # a frame in flight is not silence
    table.release(s["a"])
    third = table.take_round(0, max_frames=0, hold=True)            # a's prompt needs no lane
    assert third.frames == [] and [x[0].name for x in third.others] == ["a"]
    table.release(s["b"])
    assert [x[0].name for x in table.take_round(0, max_frames=1, hold=True).frames] == ["b"]


def test_wake_ends_a_wait_for_work_and_is_not_lost():
    table = StreamTable(max_streams=8, timeout_s=10, max_batch=8)
    _streams(table, ["a"])
    table.wake()                                   # before the wait: the next take_round does not wait
    started = time.monotonic()
    assert table.take_round(5.0) is None and time.monotonic() - started < 1.0
    waker = threading.Timer(0.05, table.wake)
    waker.start()
    started = time.monotonic()
    assert table.take_round(5.0) is None
    waker.join()
    assert 0.04 < time.monotonic() - started < 1.0


def test_device_auto_is_the_gpu_when_there_is_one_and_a_missing_gpu_is_named():
    import torch

    from sam2_model import resolve_device

    assert ServerConfig().device == "auto" and ServerConfig(device="cuda:1").check().device == "cuda:1"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA GPU \\(use cpu or auto\\)"):
            resolve_device("cuda")
    with pytest.raises(ServerConfigError, match="device 'gpu' must be auto, cpu, cuda or cuda:N"):
        ServerConfig(device="gpu").check()


def test_execution_is_batched_on_a_gpu_and_threaded_on_a_cpu_unless_chosen():
    import torch

    from sam2_server.engine import resolve_execution

    assert resolve_execution("auto", torch.device("cpu")) == "threaded"
    assert resolve_execution("auto", torch.device("cuda", 0)) == "batched"
    assert resolve_execution("batched", torch.device("cpu")) == "batched"
    with pytest.raises(ServerConfigError, match="execution 'lanes' must be one of auto, batched, threaded"):
        ServerConfig(execution="lanes").check()


def test_latest_frame_wins_but_other_requests_keep_their_place():
    table = StreamTable(max_streams=8, timeout_s=10, max_batch=8)
    s = _streams(table, ["a"])["a"]
    assert table.submit(s, _request("track", 1)) is None
    replaced = table.submit(s, _request("track", 2))
    assert replaced.request_id == 1 and s.frames_superseded == 1
    table.submit(s, _request("reset", 3))
    assert table.submit(s, _request("track", 4)) is None   # a frame after a reset is not merged across it
    assert [r.request_id for r in s.queue] == [2, 3, 4]


def test_silent_streams_expire_unless_work_is_queued():
    table = StreamTable(max_streams=8, timeout_s=1.0, max_batch=8)
    s = _streams(table, ["idle", "busy", "fresh"])
    s["idle"].last_seen = s["busy"].last_seen = time.monotonic() - 5
    table.submit(s["busy"], _request("track"))
    assert [x.name for x in table.expire()] == ["idle"]
    assert table.names() == ["busy", "fresh"]


def test_binding_off_loopback_needs_curve():
    for endpoint in ("ipc:///tmp/x.sock", "tcp://127.0.0.1:5555", "tcp://localhost:5555", "tcp://[::1]:5555"):
        check_bind(endpoint, curve=False)
    for endpoint in ("tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://8.8.8.8:5555"):
        with pytest.raises(SecurityError, match="without CURVE"):
            check_bind(endpoint, curve=False)
        check_bind(endpoint, curve=True)
    with pytest.raises(SecurityError, match="ipc://PATH or tcp://"):
        check_bind("udp://x:1", curve=True)
    with pytest.raises(ServerConfigError, match="max_streams"):
        ServerConfig(max_streams=0).check()


def test_keygen_makes_a_server_pair_and_authorized_clients(tmp_path):
    written = keygen(str(tmp_path), "robot1")
    keygen(str(tmp_path), "robot2")           # the server pair is kept, a second client added
    keys = ServerKeys.load(str(tmp_path))
    assert len(keys.public) == 40 and sorted(p.name for p in (tmp_path / "authorized_clients").iterdir()) == \
        ["robot1.key", "robot2.key"]
    assert (tmp_path / "server.key_secret").stat().st_mode & 0o077 == 0
    assert written["client_secret"].endswith("clients/robot1.key_secret")
    with pytest.raises(SecurityError, match="already has keys"):
        keygen(str(tmp_path), "robot1")
    with pytest.raises(SecurityError, match="keygen"):
        ServerKeys.load(str(tmp_path / "nothing"))


def test_a_stream_cannot_queue_without_limit():
    from sam2_server.streams import MAX_QUEUED, QueueFull

    table = StreamTable(max_streams=8, timeout_s=10, max_batch=8)
    s = _streams(table, ["a"])["a"]
    for k in range(MAX_QUEUED):
        table.submit(s, _request("prompt", k))
    with pytest.raises(QueueFull, match="wait for answers"):
        table.submit(s, _request("prompt", 99))
    with pytest.raises(QueueFull):
        table.submit(s, _request("track", 100))
    table.take_round(0)                            # one answered: room for one more
    table.submit(s, _request("track", 101))
    replaced = table.submit(s, _request("track", 102))   # at the limit, a newer frame still replaces a waiting one
    assert replaced.request_id == 101 and len(s.queue) == MAX_QUEUED


def test_threaded_lanes_are_no_more_than_the_cores_torch_uses():
    """A frame more in flight than cores runs no sooner and holds its activations in memory."""
    import torch

    from sam2_server.engine import Engine

    threads = torch.get_num_threads()
    for asked in (1, threads, threads + 3):
        engine = Engine(None, send=lambda reply: None, on_batch=lambda size: None, execution="threaded",
                        lanes=asked)
        try:
            assert engine.free_lanes() == min(asked, threads)
            assert torch.get_num_threads() == threads  # the model thread keeps its own count
        finally:
            engine.close()
    batched = Engine(None, send=lambda reply: None, on_batch=lambda size: None, execution="batched", lanes=99)
    try:
        assert batched.free_lanes() is None  # batched rounds are bounded by max_batch alone
    finally:
        batched.close()


class _HostThatFails:
    """A model host whose sessions fail in a way nobody foresaw (a bug), on the CPU."""

    def __init__(self):
        import torch

        self.model = types.SimpleNamespace(device=torch.device("cpu"), image_size=64)

    def new_session(self, options):
        raise RuntimeError("a bug building the session")


def test_an_unforeseen_failure_is_answered_as_internal_and_the_server_carries_on(tmp_path):
    """Only refusals the server foresaw used to be answered; anything else was logged and dropped,
    and the client waited for its timeout."""
    config = ServerConfig(bind=f"ipc://{tmp_path}/s.sock", device="cpu", execution="threaded")
    server = InferenceServer(config, _HostThatFails())
    serving = threading.Thread(target=server.serve, daemon=True)
    serving.start()
    try:
        assert server.ready.wait(30)
        client = TrackerClient(config.bind, "cam", {}, timeout_s=10.0)
        with pytest.raises(ServerError) as refused:
            client.connect()
        assert refused.value.kind == "internal"
        assert str(refused.value) == "RuntimeError: a bug building the session"
        assert client.heartbeat()       # still serving
        assert client.stats()["errors"] == {"internal": 1}
        client.close()
    finally:
        server.stop()
        serving.join(30)
    assert not serving.is_alive() and not server.failed


def test_robust_options_cannot_come_over_the_wire():
    """JSON brings a dict where the tracker takes a RobustMemoryOptions; memory_policy says it all."""
    from sam2_server.engine import ModelHost

    with pytest.raises(ProtocolError, match="in memory_policy, e.g. 'robust\\+colour_trim,trim_max_distance=90'") \
            as refused:
        ModelHost(None, ServerConfig()).new_session({"memory_policy": "robust", "robust_options": {"kalman": False}})
    assert refused.value.kind == "bad_request"
