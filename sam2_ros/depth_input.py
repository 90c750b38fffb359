"""The tracker node's depth input (``use_depth``): holds depth images and the camera model as they
arrive, and gives each tracked frame its objects' 3D, or the reason it has none.

Subscription callbacks only store messages (``put_depth``, ``put_camera_info``); the node's worker
calls ``estimate`` after summarizing a frame: pair by stamp (``stamp_pairing``), decode the
partner (``depth_conversion``), check it against the colour image and the intrinsics, and run
``sam2_model.object_3d``. Any problem (no partner, wrong size, unknown encoding, zero focal
length) leaves that frame without 3D and is counted and reported here; tracking goes on as
without depth. Statistics feed a second DiagnosticStatus in the node's /diagnostics.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, replace
from typing import List, Optional, Tuple

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from sam2_model.frame_state import FrameState
from sam2_model.object_3d import DepthError, DepthOptions, Object3D, check_depth, estimate_objects

from .depth_codec import DepthConversionError
from .depth_conversion import depth_to_metres, intrinsics_from_camera_info
from .diagnostics import EventWindow
from .stamp_pairing import PARTNER_WAIT_S, StampPairing, stamp_ns


@dataclass(frozen=True)
class DepthSettings:
    """What the depth input needs from the node's parameters."""

    options: DepthOptions
    max_age_s: float       # depth_max_age: nearest depth stamp accepted this far from the colour frame's
    scale: float           # depth_scale: metres per unit; 0 = the encoding's convention
    points_stride: int     # ~/points: every N-th pixel per axis


@dataclass
class DepthFrame:
    """One frame's 3D: an estimate per object, or none and the reason."""

    objects: Optional[List[Object3D]]
    problem: str = ""


class DepthInput:
    """Depth and camera_info for the worker; thread-safe."""

    def __init__(self, settings: DepthSettings, depth_topic: str, info_topic: str, window_s: float = 5.0):
        """Args:
            settings: the geometry options, pairing tolerance, depth scale and cloud density.
            depth_topic: the resolved depth topic (raw or compressedDepth), for messages.
            info_topic: the resolved camera_info topic, for messages.
            window_s: the diagnostics' window (rates, WARN while problems are recent).
        """
        self.settings = settings
        self.depth_topic, self.info_topic = depth_topic, info_topic
        self._depths = StampPairing(settings.max_age_s)
        self._camera_info = None
        self._lock = threading.Lock()
        self.window_s = window_s
        self.with_3d = EventWindow(window_s)
        self.without_3d = EventWindow(window_s)
        self.depth_received = EventWindow(window_s)
        self.with_3d_total = 0
        self.without_3d_total = 0
        self.last_problem = ""
        self.last_problem_at: Optional[float] = None

    # ------------------------------------------------------------------ subscription side
    def put_depth(self, msg) -> None:
        self.depth_received.add()
        self._depths.put(stamp_ns(msg.header.stamp), msg)

    def put_camera_info(self, msg) -> None:
        with self._lock:
            self._camera_info = msg

    def clear(self) -> None:
        self._depths.clear()

    # ------------------------------------------------------------------ worker side
    def estimate(self, frame: FrameState, header, points: bool, wait_s: float = PARTNER_WAIT_S) -> DepthFrame:
        """The 3D of every object of ``frame`` (the colour image's ``header``); ``points``: keep
        each object's sampled points for ~/points."""
        found, problem = self._estimate(frame, header, points, wait_s)
        with self._lock:
            if found is None:
                self.without_3d_total += 1
                self.last_problem, self.last_problem_at = problem, time.monotonic()
            else:
                self.with_3d_total += 1
        (self.without_3d if found is None else self.with_3d).add()
        return DepthFrame(found, problem)

    def _estimate(self, frame: FrameState, header, points: bool, wait_s: float
                  ) -> Tuple[Optional[List[Object3D]], str]:
        pairing = self._depths.pair(stamp_ns(header.stamp), wait_s)
        if pairing.item is None:
            return None, f"no depth for the colour frame: {pairing.reason} (depth topic {self.depth_topic})"
        with self._lock:
            info = self._camera_info
        if info is None:
            return None, f"no camera_info received yet on {self.info_topic}"
        settings = self.settings
        try:
            depth_m = depth_to_metres(pairing.item, settings.scale)
            intrinsics = intrinsics_from_camera_info(info)
            check_depth(depth_m, intrinsics, (frame.height, frame.width))
        except (DepthConversionError, DepthError) as error:
            return None, str(error)
        stride = settings.points_stride if points else 0
        return estimate_objects(frame.objects, depth_m, intrinsics, settings.options, stride), ""

    # ------------------------------------------------------------------ diagnostics
    def status(self, name: str) -> DiagnosticStatus:
        """WARN while frames went without 3D in the last window (naming the latest reason), else OK."""
        now = time.monotonic()
        without, with_3d = self.without_3d.count(now), self.with_3d.count(now)
        with self._lock:
            problem, totals = self.last_problem, (self.with_3d_total, self.without_3d_total)
        if without:
            level, message = DiagnosticStatus.WARN, f"{without} frame(s) without 3D in {self.window_s:.0f} s: {problem}"
        else:
            level = DiagnosticStatus.OK
            message = f"3D on {with_3d} frame(s) in {self.window_s:.0f} s" if with_3d else "no frames yet"
        values = [("depth topic", self.depth_topic), ("camera_info topic", self.info_topic),
                  ("depth rate (Hz)", f"{self.depth_received.rate(now):.2f}"),
                  ("frames with 3D (total)", str(totals[0])), ("frames without 3D (total)", str(totals[1])),
                  ("last problem", problem or "none")]
        return DiagnosticStatus(level=level, name=name, message=message, hardware_id="depth",
                                values=[KeyValue(key=k, value=v) for k, v in values])


class ProblemThrottle:
    """Each kind of problem is warned about at once, then at most every ``period_s``: a new kind
    (a wrong size after a missing partner) is not hidden behind the last one's throttle. Kinds are
    the messages with their numbers blanked (offsets and sizes change from frame to frame)."""

    def __init__(self, period_s: float, max_kinds: int = 64):
        """Args:
            period_s: least time between two warnings of one kind.
            max_kinds: kinds remembered (then forgotten all at once, so memory stays bounded).
        """
        self.period_s, self.max_kinds = period_s, max_kinds
        self._last: dict = {}

    def should_warn(self, problem: str, now: Optional[float] = None) -> bool:
        now = time.monotonic() if now is None else now
        kind = re.sub(r"[-+]?\d+(\.\d+)?", "#", problem)
        last = self._last.get(kind)
        if last is not None and now - last < self.period_s:
            return False
        if len(self._last) >= self.max_kinds:
            self._last.clear()
        self._last[kind] = now
        return True


def without_masks(frame: FrameState) -> FrameState:
    """The frame with its objects' mask crops dropped: crops computed for depth only are not
    published when publish_masks is off (or nobody receives ~/objects' masks)."""
    return replace(frame, objects=[replace(o, mask=None) for o in frame.objects])
