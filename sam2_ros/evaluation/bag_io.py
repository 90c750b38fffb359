"""Read and write evaluation bags (ROS 2, MCAP or sqlite3) with ``rosbags``: no ROS install needed.

An evaluation bag has an image topic (sensor_msgs/Image or sensor_msgs/CompressedImage)
and a ground-truth topic of label images (pixel = object id; mono8/mono16 Image, or
a PNG CompressedImage), paired by header stamp. Images without ground truth are
tracked but not scored; ground truth whose stamp matches no image is an error.
Optionally a depth topic aligned to the images (paired by exact stamp) and the colour
camera's camera_info (``depth_io``), for the 3D position error.
"""

from __future__ import annotations

import bisect
import io
import shutil
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .. import image_codec
from ..image_codec import ImageConversionError
from sam2_model.object_3d import PinholeIntrinsics

from .depth_io import (CAMERA_INFO, DEFAULT_CAMERA_INFO_TOPIC, DEFAULT_DEPTH_TOPIC, decode_depth_msg,  # noqa: F401
                       encode_camera_info, encode_depth, intrinsics_from_info)
from .errors import EvaluationInputError
from .sequence import DAVIS_VOID_LABEL, Frame, Sequence

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
SUPPORTED_TYPES = (IMAGE, COMPRESSED_IMAGE)
DEFAULT_IMAGE_TOPIC = "/camera/image_raw"
DEFAULT_GT_TOPIC = "/camera/gt_labels"

@lru_cache(maxsize=1)
def typestore():
    """ROS 2 message types for reading bags without embedded definitions and for writing.

    sensor_msgs/Image and CompressedImage are identical from Humble to Jazzy, so bags
    written with these definitions play on either.
    """
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


def stamp_to_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def format_stamp(stamp_ns: int) -> str:
    return f"{stamp_ns // 1_000_000_000}.{stamp_ns % 1_000_000_000:09d} s"


# ---------------------------------------------------------------- decoding


@contextmanager
def _decoding(where: str) -> Iterator[None]:
    """The shared decoder's errors, as evaluation input errors that say which message."""
    try:
        yield
    except ImageConversionError as error:
        raise EvaluationInputError(f"{where}: {error}") from None


def decode_image(msg: Any, msgtype: str, where: str) -> np.ndarray:
    """An Image or CompressedImage message as HxWx3 uint8 RGB (the node's decoder)."""
    with _decoding(where):
        if msgtype == COMPRESSED_IMAGE:
            return image_codec.decode_compressed(msg.data, str(msg.format))
        return image_codec.decode_raw(msg.encoding, int(msg.height), int(msg.width), int(msg.step), msg.data,
                                      bool(msg.is_bigendian))


def decode_labels(msg: Any, msgtype: str, where: str) -> np.ndarray:
    """A ground-truth label image message as an HxW uint8/uint16 array (pixel = object id)."""
    with _decoding(where):
        if msgtype == COMPRESSED_IMAGE:
            return image_codec.decode_compressed_labels(msg.data, str(msg.format))
        return image_codec.decode_raw_labels(msg.encoding, int(msg.height), int(msg.width), int(msg.step),
                                             msg.data, bool(msg.is_bigendian))


# ---------------------------------------------------------------- encoding


def _header(stamp_ns: int, frame_id: str) -> Any:
    ts = typestore()
    Time = ts.types["builtin_interfaces/msg/Time"]
    Header = ts.types["std_msgs/msg/Header"]
    return Header(stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000), frame_id=frame_id)


def _png_bytes(img: Image.Image) -> np.ndarray:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return np.frombuffer(buf.getvalue(), dtype=np.uint8)


def encode_image(rgb: np.ndarray, stamp_ns: int, frame_id: str, compressed: bool) -> tuple[Any, str]:
    """(message, msgtype) for an RGB frame: rgb8 Image, or JPEG CompressedImage (quality 95)."""
    ts = typestore()
    header = _header(stamp_ns, frame_id)
    if compressed:
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="JPEG", quality=95)
        msg = ts.types[COMPRESSED_IMAGE](
            header=header, format="rgb8; jpeg compressed bgr8", data=np.frombuffer(buf.getvalue(), dtype=np.uint8)
        )
        return msg, COMPRESSED_IMAGE
    h, w = rgb.shape[:2]
    msg = ts.types[IMAGE](
        header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=3 * w,
        data=np.ascontiguousarray(rgb, dtype=np.uint8).reshape(-1),
    )
    return msg, IMAGE


def encode_labels(labels: np.ndarray, stamp_ns: int, frame_id: str, compressed: bool) -> tuple[Any, str]:
    """(message, msgtype) for a label image: mono8 (mono16 when an id exceeds 255), or PNG."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() > 65535):
        raise EvaluationInputError("label ids must lie in 0..65535")
    wide = labels.size > 0 and labels.max() > 255
    pixels = labels.astype(np.uint16 if wide else np.uint8)
    ts = typestore()
    header = _header(stamp_ns, frame_id)
    if compressed:
        encoding = "mono16" if wide else "mono8"
        msg = ts.types[COMPRESSED_IMAGE](
            header=header, format=f"{encoding}; png compressed {encoding}", data=_png_bytes(Image.fromarray(pixels))
        )
        return msg, COMPRESSED_IMAGE
    h, w = labels.shape
    msg = ts.types[IMAGE](
        header=header, height=h, width=w, encoding="mono16" if wide else "mono8", is_bigendian=0,
        step=w * pixels.itemsize, data=np.ascontiguousarray(pixels).view(np.uint8).reshape(-1),
    )
    return msg, IMAGE


# ---------------------------------------------------------------- reading


@contextmanager
def _open_bag(path: Path):
    from rosbags.highlevel import AnyReader

    try:
        reader = AnyReader([path], default_typestore=typestore())
        reader.open()
    except Exception as exc:  # rosbags raises several unrelated types for unreadable bags
        raise EvaluationInputError(f"cannot read bag {path}: {exc}") from None
    try:
        yield reader
    finally:
        reader.close()


def _topic_connections(reader: Any, topic: str, role: str, path: Path) -> list:
    connections = [c for c in reader.connections if c.topic == topic]
    if not connections:
        available = sorted({f"{c.topic} ({c.msgtype})" for c in reader.connections})
        raise EvaluationInputError(
            f"bag {path} has no {role} topic {topic!r}; topics in the bag: {', '.join(available) or 'none'}"
        )
    bad = sorted({c.msgtype for c in connections if c.msgtype not in SUPPORTED_TYPES})
    if bad:
        raise EvaluationInputError(
            f"{role} topic {topic!r} in {path} has type {', '.join(bad)}; expected {' or '.join(SUPPORTED_TYPES)}"
        )
    return connections


def _deserialize(reader: Any, rawdata: bytes, msgtype: str, where: str) -> Any:
    try:
        return reader.deserialize(rawdata, msgtype)
    except Exception as exc:
        raise EvaluationInputError(f"{where}: cannot deserialize {msgtype}: {exc}") from None


@dataclass(frozen=True)
class _StoredLabels:
    """A ground-truth message kept from the first pass until its image is read.

    Raw label images are kept zlib-compressed (labels compress very well), so long
    bags with matching ground truth do not need the label images in memory decoded.
    """

    msgtype: str
    payload: bytes
    compressed: bool


def read_bag(
    path: Path,
    image_topic: str = DEFAULT_IMAGE_TOPIC,
    gt_topic: str = DEFAULT_GT_TOPIC,
    name: str | None = None,
    void_label: int | None = DAVIS_VOID_LABEL,
    depth_topic: str | None = None,
    camera_info_topic: str | None = None,
) -> Sequence:
    """Open an evaluation bag as a Sequence, validating topics and stamps before any frame is used.

    Frames are in the bag's order of the image topic. Errors name the bag, topic and stamp.
    With ``depth_topic`` (and then ``camera_info_topic``), frames carry the depth with their
    stamp and the sequence the camera of the first camera_info.
    """
    path = Path(path)
    if not path.exists():
        raise EvaluationInputError(f"bag not found: {path}")
    if depth_topic is not None and not camera_info_topic:
        raise EvaluationInputError("a depth topic needs the camera_info topic of the colour camera")
    with _open_bag(path) as reader:
        image_conns = _topic_connections(reader, image_topic, "image", path)
        gt_conns = _topic_connections(reader, gt_topic, "ground-truth", path)
        depth_by_stamp, intrinsics = _read_depth(reader, path, depth_topic, camera_info_topic)
        labels_by_stamp: dict[int, _StoredLabels] = {}
        for conn, _, raw in reader.messages(connections=gt_conns):
            msg = _deserialize(reader, raw, conn.msgtype, f"{gt_topic} in {path}")
            stamp = stamp_to_ns(msg.header.stamp)
            if stamp in labels_by_stamp:
                raise EvaluationInputError(
                    f"ground-truth topic {gt_topic!r} has two messages stamped {format_stamp(stamp)}"
                )
            raw_image = conn.msgtype == IMAGE
            payload = zlib.compress(bytes(raw), 1) if raw_image else bytes(raw)
            labels_by_stamp[stamp] = _StoredLabels(conn.msgtype, payload, raw_image)
        if not labels_by_stamp:
            raise EvaluationInputError(f"ground-truth topic {gt_topic!r} in {path} has no messages")
        image_stamps = [
            stamp_to_ns(_deserialize(reader, raw, conn.msgtype, f"{image_topic} in {path}").header.stamp)
            for conn, _, raw in reader.messages(connections=image_conns)
        ]
    if not image_stamps:
        raise EvaluationInputError(f"image topic {image_topic!r} in {path} has no messages")
    _check_stamps(image_stamps, labels_by_stamp, image_topic, gt_topic)
    annotated = tuple(i for i, s in enumerate(image_stamps) if s in labels_by_stamp)

    def load() -> Iterator[Frame]:
        with _open_bag(path) as reader:
            conns = [c for c in reader.connections if c.topic == image_topic]
            for index, (conn, _, raw) in enumerate(reader.messages(connections=conns)):
                where = f"{image_topic} message {index} in {path}"
                msg = _deserialize(reader, raw, conn.msgtype, where)
                stamp = stamp_to_ns(msg.header.stamp)
                image = decode_image(msg, conn.msgtype, f"{where} (stamp {format_stamp(stamp)})")
                labels = None
                stored = labels_by_stamp.get(stamp)
                if stored is not None:
                    gt_where = f"{gt_topic} at {format_stamp(stamp)} in {path}"
                    gt_raw = zlib.decompress(stored.payload) if stored.compressed else stored.payload
                    gt_msg = _deserialize(reader, gt_raw, stored.msgtype, gt_where)
                    labels = decode_labels(gt_msg, stored.msgtype, gt_where)
                    if labels.shape != image.shape[:2]:
                        raise EvaluationInputError(
                            f"{gt_where}: label image is {labels.shape[1]}x{labels.shape[0]} "
                            f"but the image is {image.shape[1]}x{image.shape[0]}"
                        )
                depth = None
                stored_depth = depth_by_stamp.get(stamp)
                if stored_depth is not None:
                    depth_where = f"{depth_topic} at {format_stamp(stamp)} in {path}"
                    depth_msg = _deserialize(reader, zlib.decompress(stored_depth.payload), stored_depth.msgtype,
                                             depth_where)
                    depth = decode_depth_msg(depth_msg, stored_depth.msgtype, depth_where)
                yield Frame(index=index, image=image, stamp_ns=stamp, gt_labels=labels, depth_m=depth)

    return Sequence(
        name=name or path.stem or path.name,
        num_frames=len(image_stamps),
        annotated=annotated,
        load=load,
        source=f"{path} ({image_topic}, {gt_topic}{', ' + depth_topic if depth_topic else ''})",
        void_label=void_label,
        intrinsics=intrinsics,
    )


def _read_depth(reader: Any, path: Path, depth_topic: str | None, info_topic: str | None
                ) -> tuple[dict[int, _StoredLabels], PinholeIntrinsics | None]:
    """Depth messages by stamp (kept zlib-compressed until their image is read) and the camera."""
    if depth_topic is None:
        return {}, None
    depth_conns = _topic_connections(reader, depth_topic, "depth", path)
    info_conns = [c for c in reader.connections if c.topic == info_topic]
    if not info_conns:
        raise EvaluationInputError(f"camera_info topic {info_topic!r} not in {path} (the depth needs the camera)")
    if any(c.msgtype != CAMERA_INFO for c in info_conns):
        raise EvaluationInputError(f"topic {info_topic!r} in {path} is not {CAMERA_INFO}")
    intrinsics = None
    for conn, _, raw in reader.messages(connections=info_conns):
        intrinsics = intrinsics_from_info(_deserialize(reader, raw, conn.msgtype, f"{info_topic} in {path}"),
                                          f"{info_topic} in {path}")
        break
    if intrinsics is None:
        raise EvaluationInputError(f"camera_info topic {info_topic!r} in {path} has no messages")
    by_stamp: dict[int, _StoredLabels] = {}
    for conn, _, raw in reader.messages(connections=depth_conns):
        msg = _deserialize(reader, raw, conn.msgtype, f"{depth_topic} in {path}")
        by_stamp[stamp_to_ns(msg.header.stamp)] = _StoredLabels(conn.msgtype, zlib.compress(bytes(raw), 1), True)
    return by_stamp, intrinsics


def _check_stamps(image_stamps: list[int], labels_by_stamp: dict, image_topic: str, gt_topic: str) -> None:
    image_set = set(image_stamps)
    unmatched = sorted(s for s in labels_by_stamp if s not in image_set)
    if unmatched:
        ordered = sorted(image_set)
        first = unmatched[0]
        i = bisect.bisect_left(ordered, first)
        nearest = min((ordered[j] for j in (i - 1, i) if 0 <= j < len(ordered)), key=lambda s: abs(s - first))
        raise EvaluationInputError(
            f"{len(unmatched)} of {len(labels_by_stamp)} ground-truth messages on {gt_topic!r} have a header "
            f"stamp that matches no image on {image_topic!r} (first: {format_stamp(first)}; the nearest image "
            f"is {(nearest - first) / 1e6:+.3f} ms away). Ground truth must carry its image's exact stamp."
        )
    seen: set[int] = set()
    for stamp in image_stamps:
        if stamp in seen and stamp in labels_by_stamp:
            raise EvaluationInputError(
                f"two images on {image_topic!r} are stamped {format_stamp(stamp)}; "
                "their ground truth cannot be matched to one of them"
            )
        seen.add(stamp)


def list_topics(path: Path) -> dict[str, str]:
    """topic -> message type of a bag."""
    with _open_bag(Path(path)) as reader:
        return {c.topic: c.msgtype for c in reader.connections}


# ---------------------------------------------------------------- writing


@dataclass(frozen=True)
class BagWriteSummary:
    path: Path
    num_images: int
    num_labels: int
    storage: str
    num_depth: int = 0


STORAGES = ("mcap", "sqlite3")


def write_bag(
    path: Path,
    frames: Iterable[Frame],
    image_topic: str = DEFAULT_IMAGE_TOPIC,
    gt_topic: str = DEFAULT_GT_TOPIC,
    compressed: bool = False,
    storage: str = "mcap",
    frame_id: str = "camera",
    progress: Callable[[int], object] | None = None,
    depth_topic: str = DEFAULT_DEPTH_TOPIC,
    camera_info_topic: str = DEFAULT_CAMERA_INFO_TOPIC,
    intrinsics: PinholeIntrinsics | None = None,
) -> BagWriteSummary:
    """Write frames as an evaluation bag (a new rosbag2 directory at path).

    Each frame's image and labels share its stamp, used both as header stamp and as
    the bag's receive time. Frames with depth also get it on ``depth_topic`` (16UC1 mm) and
    ``intrinsics`` as a CameraInfo on ``camera_info_topic``, same stamp. On any error the
    partly written bag is removed.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    if storage not in STORAGES:
        raise EvaluationInputError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    if image_topic == gt_topic:
        raise EvaluationInputError(f"the image and ground-truth topics must differ (both {image_topic!r})")
    path = Path(path)
    if path.exists():
        raise EvaluationInputError(f"{path} exists already; choose a new bag path (rosbag2 bags are directories)")
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    # Version 8 (Jazzy's) is the oldest rosbags writes; MCAP files carry their own message
    # definitions, so any ROS 2 distribution and Foxglove can read them.
    writer = Writer(path, version=8, storage_plugin=plugin)
    num_images = num_labels = num_depth = 0
    try:
        writer.open()
        connections: dict[tuple[str, str], Any] = {}

        def write(topic: str, msg: Any, msgtype: str, stamp_ns: int) -> None:
            key = (topic, msgtype)
            if key not in connections:
                connections[key] = writer.add_connection(topic, msgtype, typestore=typestore())
            writer.write(connections[key], stamp_ns, typestore().serialize_cdr(msg, msgtype))

        for frame in frames:
            write(image_topic, *encode_image(frame.image, frame.stamp_ns, frame_id, compressed), frame.stamp_ns)
            num_images += 1
            if frame.gt_labels is not None:
                write(gt_topic, *encode_labels(frame.gt_labels, frame.stamp_ns, frame_id, compressed), frame.stamp_ns)
                num_labels += 1
            if frame.depth_m is not None:
                if intrinsics is None:
                    raise EvaluationInputError(f"frame {frame.index} has depth but no camera intrinsics were given")
                header = _header(frame.stamp_ns, frame_id)
                write(depth_topic, *encode_depth(frame.depth_m, header, typestore()), frame.stamp_ns)
                write(camera_info_topic, *encode_camera_info(intrinsics, header, typestore()), frame.stamp_ns)
                num_depth += 1
            if progress is not None:
                progress(1)
        if num_images == 0:
            raise EvaluationInputError("no frames to write")
        writer.close()
    except BaseException:
        try:
            if writer.storage is not None:
                writer.close()
        except Exception:
            pass
        shutil.rmtree(path, ignore_errors=True)  # nothing partial left behind
        raise
    return BagWriteSummary(path=path, num_images=num_images, num_labels=num_labels, storage=storage,
                           num_depth=num_depth)
