"""The wire format between ``sam2_server`` and its clients (torch-free: numpy and the standard library).

A message is a ZeroMQ multipart message:

    part 0   b"S2TP" + version (uint16, big endian) + a UTF-8 JSON object (the header)
    part 1.. one raw buffer per array the header lists under "arrays" ({name, dtype, shape}),
             in order: frames, masks, label maps travel as their bytes, never as JSON

Every request carries ``op`` (what to do) and ``id`` (echoed in the reply, so a client drops a
late reply to a request it gave up on). Replies carry ``ok``; a refused request gets
``ok: false`` with ``kind`` (one of ``ERROR_KINDS``) and a ``message`` naming the problem.
``docs/server.md`` lists the operations and their fields.

Decoding checks everything a peer can get wrong (magic, version, sizes, JSON, array
descriptions against the buffers) and raises ``ProtocolError`` with the kind to answer.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from sam2_model.frame_state import FrameState, ObjectState
from sam2_model.session_types import DiscoveryOutcome, Outputs, PromptSpec

MAGIC = b"S2TP"
VERSION = 1
_PREFIX = struct.Struct("!4sH")

# Limits a peer cannot exceed (the server's message limit is configurable, see ServerConfig).
MAX_HEADER_BYTES = 64 * 1024
MAX_ARRAYS = 8
MAX_ARRAY_DIMS = 4
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a 4K RGB frame is 25 MB
ARRAY_DTYPES = ("uint8", "bool", "int32", "float32")

OPS = ("open", "close", "ping", "stats", "track", "current", "prompt", "remove", "reset", "discover")
# What went wrong, as ``ServerError.kind``.
ERROR_KINDS = ("prompt", "unknown_object", "tracking", "frame", "discovery", "bad_request", "full",
               "unknown_stream", "version", "superseded", "internal")


class ProtocolError(ValueError):
    """A message that cannot be taken; ``kind`` is the error kind to answer with."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass
class Message:
    """A decoded message: the JSON header and the named arrays (read-only views on the received buffers)."""

    header: Dict[str, Any]
    arrays: Dict[str, np.ndarray] = field(default_factory=dict)

    def value(self, name: str, kind: type, required: bool = True, default: Any = None) -> Any:
        """A header field of the given type (bool is not an int here), or ProtocolError."""
        if name not in self.header:
            if required:
                raise ProtocolError("bad_request", f"request field {name!r} is missing")
            return default
        value = self.header[name]
        wrong_bool = kind is not bool and isinstance(value, bool)
        if not isinstance(value, kind) or wrong_bool:
            raise ProtocolError("bad_request", f"request field {name!r} must be {kind.__name__}, got {value!r}")
        return value


# ---------------------------------------------------------------------- framing
def encode(header: Mapping[str, Any], arrays: Optional[Mapping[str, np.ndarray]] = None) -> List[Any]:
    """A header and named arrays -> the parts to send. Arrays go as buffers of their own memory
    (contiguous ones without a copy; send with ``copy=False``)."""
    header = dict(header)
    parts: List[Any] = []
    described = []
    for name, array in (arrays or {}).items():
        array = np.ascontiguousarray(array)
        dtype = array.dtype.name
        if dtype not in ARRAY_DTYPES:
            raise ValueError(f"array {name!r}: dtype {dtype} cannot be sent (only {', '.join(ARRAY_DTYPES)})")
        described.append({"name": name, "dtype": dtype, "shape": list(array.shape)})
        parts.append(memoryview(array.reshape(-1).view(np.uint8)) if array.size else b"")
    header["arrays"] = described
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return [_PREFIX.pack(MAGIC, VERSION) + text, *parts]


def _part_bytes(part) -> memoryview:
    """A received part (zmq.Frame, bytes or memoryview) as a memoryview, without copying."""
    buffer = getattr(part, "buffer", part)
    return memoryview(buffer)


def decode(parts: Sequence[Any], max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Message:
    """Parts received -> Message, or ProtocolError naming what is wrong."""
    if not parts:
        raise ProtocolError("bad_request", "empty message")
    views = [_part_bytes(p) for p in parts]
    total = sum(v.nbytes for v in views)
    if total > max_message_bytes:
        raise ProtocolError("bad_request", f"message of {total} bytes exceeds the limit of {max_message_bytes} bytes")
    first = views[0]
    if first.nbytes < _PREFIX.size or bytes(first[:4]) != MAGIC:
        raise ProtocolError("bad_request", "not a sam2_server message (its first part must start with b'S2TP')")
    _, version = _PREFIX.unpack(bytes(first[:_PREFIX.size]))
    if version != VERSION:
        raise ProtocolError("version", f"protocol version {version} is not supported: this side speaks version "
                                       f"{VERSION} (update the older of client and server)")
    if first.nbytes - _PREFIX.size > MAX_HEADER_BYTES:
        raise ProtocolError("bad_request", f"header of {first.nbytes - _PREFIX.size} bytes exceeds the limit "
                                           f"of {MAX_HEADER_BYTES}")
    try:
        header = json.loads(bytes(first[_PREFIX.size:]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ProtocolError("bad_request", f"header is not valid JSON: {error}") from None
    except RecursionError:
        raise ProtocolError("bad_request", "header JSON is nested too deeply") from None
    if not isinstance(header, dict):
        raise ProtocolError("bad_request", "header must be a JSON object")
    return Message(header, _arrays(header.get("arrays", []), views[1:]))


def _arrays(described: Any, buffers: Sequence[memoryview]) -> Dict[str, np.ndarray]:
    if not isinstance(described, list) or len(described) > MAX_ARRAYS:
        raise ProtocolError("bad_request", f"'arrays' must be a list of at most {MAX_ARRAYS} descriptions")
    if len(described) != len(buffers):
        hint = " (a truncated message?)" if len(buffers) < len(described) else ""
        raise ProtocolError("bad_request", f"header lists {len(described)} array(s) but {len(buffers)} buffer(s) "
                                           f"came with it{hint}")
    arrays = {}
    for item, buffer in zip(described, buffers):
        if not isinstance(item, dict):
            raise ProtocolError("bad_request", "each array description must be an object {name, dtype, shape}")
        name, dtype, shape = item.get("name"), item.get("dtype"), item.get("shape")
        if not isinstance(name, str) or name in arrays:
            raise ProtocolError("bad_request", f"array name {name!r} must be a unique string")
        if dtype not in ARRAY_DTYPES:
            raise ProtocolError("bad_request", f"array {name!r}: dtype {dtype!r} is not one of {ARRAY_DTYPES}")
        if (not isinstance(shape, list) or len(shape) > MAX_ARRAY_DIMS
                or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
            raise ProtocolError("bad_request", f"array {name!r}: shape {shape!r} must be a list of at most "
                                               f"{MAX_ARRAY_DIMS} non-negative integers")
        expected = math.prod(shape) * np.dtype(dtype).itemsize
        if expected != buffer.nbytes:
            raise ProtocolError("bad_request", f"array {name!r}: {dtype} {shape} needs {expected} bytes, "
                                               f"its buffer has {buffer.nbytes}")
        try:
            arrays[name] = np.frombuffer(buffer, dtype=np.uint8).view(dtype).reshape(shape)
        except (ValueError, OverflowError) as error:
            # A zero-sized shape passes the byte count whatever its other sides; numpy refuses
            # sides beyond what an array can index (e.g. [0, 10**20]).
            raise ProtocolError("bad_request", f"array {name!r}: shape {shape} is not possible: {error}") from None
    return arrays


def error_header(request_id: Any, kind: str, message: str, **extra: Any) -> Dict[str, Any]:
    return {"id": request_id, "ok": False, "kind": kind, "message": message, **extra}


# ---------------------------------------------------------------------- payloads
def outputs_to_wire(outputs: Outputs) -> Dict[str, bool]:
    return {"crops": bool(outputs.crops), "labels": bool(outputs.labels), "tinted": bool(outputs.tinted)}


def outputs_from_wire(value: Any) -> Outputs:
    if value is None:
        return Outputs()
    if not isinstance(value, dict) or set(value) - {"crops", "labels", "tinted"} \
            or not all(isinstance(v, bool) for v in value.values()):
        raise ProtocolError("bad_request", f"outputs must be an object of booleans crops/labels/tinted, got {value!r}")
    return Outputs(**value)


def prompt_to_wire(prompt: PromptSpec) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    def plain(value):
        return None if value is None else np.asarray(value, dtype=np.float64).tolist()

    fields = {"points": plain(prompt.points), "labels": None if prompt.labels is None else
              [int(v) for v in np.asarray(prompt.labels).reshape(-1)],
              "box": plain(prompt.box), "clear_old_points": bool(prompt.clear_old_points)}
    arrays = {} if prompt.mask is None else {"mask": np.asarray(prompt.mask).astype(bool, copy=False)}
    return fields, arrays


def prompt_from_wire(message: Message) -> PromptSpec:
    """The prompt of a request; shapes and values are the tracker's to check (PromptError)."""
    header = message.header
    for name in ("points", "labels", "box"):
        value = header.get(name)
        if value is not None and not isinstance(value, list):
            raise ProtocolError("bad_request", f"prompt field {name!r} must be a list or null, got {value!r}")
    mask = message.arrays.get("mask")
    return PromptSpec(points=header.get("points"), labels=header.get("labels"), box=header.get("box"),
                      mask=mask, clear_old_points=message.value("clear_old_points", bool, False, True))


def frame_state_to_wire(frame: FrameState) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    """A FrameState -> JSON fields (numbers per object) and arrays (crops packed into one buffer,
    the label map, the tinted picture). Floats go as JSON's shortest round-trip text: exact."""
    objects = []
    crops = []
    for o in frame.objects:
        objects.append([o.object_id, o.visible, o.visibility, o.iou_score, *[int(v) for v in o.bbox], o.area,
                        None if o.mask is None else list(o.mask.shape),
                        None if o.predicted_bbox is None else [int(v) for v in o.predicted_bbox]])
        if o.mask is not None and o.mask.size:
            crops.append(np.ascontiguousarray(o.mask, dtype=bool).reshape(-1))
    arrays = {}
    if crops:
        arrays["crops"] = np.concatenate(crops)
    if frame.labels is not None:
        arrays["labels"] = frame.labels
    if frame.tinted is not None:
        arrays["tinted"] = frame.tinted
    fields = {"frame_index": frame.frame_index, "height": frame.height, "width": frame.width, "objects": objects}
    return {"frame": fields}, arrays


def frame_state_from_wire(message: Message) -> FrameState:
    try:
        fields = message.header["frame"]
        packed = message.arrays.get("crops")
        offset = 0
        objects = []
        # The trailing predicted box (memory_policy robust) may be missing from an older server.
        for object_id, visible, visibility, iou, x, y, w, h, area, mask_shape, *predicted in fields["objects"]:
            mask = None
            if mask_shape is not None:
                rows, cols = mask_shape
                mask = packed[offset:offset + rows * cols].reshape(rows, cols) if rows * cols else \
                    np.zeros((rows, cols), bool)
                offset += rows * cols
            box = predicted[0] if predicted else None
            objects.append(ObjectState(int(object_id), bool(visible), float(visibility), float(iou),
                                       (int(x), int(y), int(w), int(h)), int(area), mask,
                                       None if box is None else tuple(int(v) for v in box)))
        return FrameState(int(fields["frame_index"]), int(fields["height"]), int(fields["width"]), objects,
                          message.arrays.get("labels"), message.arrays.get("tinted"))
    except (KeyError, TypeError, ValueError) as error:
        raise ProtocolError("bad_request", f"malformed frame state in reply: {error!r}") from None


def discovery_to_wire(outcome: DiscoveryOutcome) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    fields: Dict[str, Any] = {"object_ids": list(outcome.object_ids), "generated": outcome.generated,
                              "duration_ms": outcome.duration_ms, "full": outcome.full}
    arrays: Dict[str, np.ndarray] = {}
    if outcome.frame is not None:
        frame_fields, arrays = frame_state_to_wire(outcome.frame)
        fields.update(frame_fields)
    return fields, arrays


def discovery_from_wire(message: Message) -> DiscoveryOutcome:
    header = message.header
    frame = frame_state_from_wire(message) if "frame" in header else None
    return DiscoveryOutcome([int(i) for i in header["object_ids"]], int(header["generated"]),
                            float(header["duration_ms"]), bool(header["full"]), frame)
