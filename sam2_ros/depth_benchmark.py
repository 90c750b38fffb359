"""What use_depth costs the tracker node per frame: ``python -m sam2_ros.depth_benchmark``.

A 640x480 scene (a wall, 3 boxes and 2 spheres between 0.8 and 2 m, ray cast with a pinhole
camera) as a 16UC1 sensor_msgs/Image; per frame, the node's depth work after tracking: decode the
depth, estimate the 5 objects' 3D from their mask crops, fill the TrackedObject fields, build the
MarkerArray and the PointCloud2 (points_stride 4). Prints ms p50/p99 over the frames, per stage
and in total (recorded in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import array
import time
from typing import Dict, List

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from sam2_model.frame_state import ObjectState
from sam2_model.object_3d import DepthOptions, PinholeIntrinsics, estimate_objects, render_box, render_sphere
from sam2_ros.msg import TrackedObject

from .depth_conversion import depth_to_metres, fill_3d, markers_msg, point_cloud_msg

CAMERA = PinholeIntrinsics(fx=615.0, fy=615.0, cx=319.5, cy=239.5, width=640, height=480)
WALL_M = 3.0


def scene(camera: PinholeIntrinsics = CAMERA):
    """(16UC1 depth Image, ObjectStates) of 3 boxes and 2 spheres in front of a wall."""
    layers = [render_box(camera, (-0.35, -0.15, 1.2), (0.25, 0.2, 0.15)),
              render_box(camera, (0.3, 0.1, 1.5), (0.4, 0.3, 0.2)),
              render_box(camera, (0.0, 0.25, 0.9), (0.15, 0.1, 0.1)),
              render_sphere(camera, (0.45, -0.3, 2.0), 0.2),
              render_sphere(camera, (-0.2, 0.15, 0.8), 0.07)]
    stack = np.stack(layers + [np.full_like(layers[0], WALL_M)])
    nearest = stack.argmin(axis=0)
    depth_mm = np.round(stack.min(axis=0) * 1000).astype("<u2")
    states = []
    for index in range(len(layers)):
        mask = nearest == index
        rows, cols = np.nonzero(mask)
        y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        states.append(ObjectState(index + 1, True, 0.9, 0.9, (int(x0), int(y0), int(x1 - x0), int(y1 - y0)),
                                  int(mask.sum()), mask[y0:y1, x0:x1].copy()))
    msg = Image(header=Header(frame_id="camera_color_optical_frame"), height=camera.height, width=camera.width,
                encoding="16UC1", is_bigendian=0, step=camera.width * 2)
    msg.data = array.array("B", depth_mm.tobytes())
    return msg, states


def run(frames: int, stride: int) -> Dict[str, List[float]]:
    msg, states = scene()
    options = DepthOptions()
    times: Dict[str, List[float]] = {k: [] for k in ("decode", "estimate", "messages", "total")}
    shown: set = set()
    for _ in range(frames):
        start = time.perf_counter()
        depth_m = depth_to_metres(msg)
        decoded = time.perf_counter()
        found = estimate_objects(states, depth_m, CAMERA, options, stride)
        estimated = time.perf_counter()
        objects = [TrackedObject(id=s.object_id) for s in states]
        fill_3d(objects, found)
        _, shown = markers_msg(found, msg.header, shown)
        point_cloud_msg(found, msg.header)
        done = time.perf_counter()
        for key, (a, b) in {"decode": (start, decoded), "estimate": (decoded, estimated),
                            "messages": (estimated, done), "total": (start, done)}.items():
            times[key].append((b - a) * 1000.0)
    assert all(f.has_position for f in found)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sam2_ros.depth_benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=200, help="frames to time (default: %(default)s)")
    parser.add_argument("--points-stride", type=int, default=4, help="~/points density (default: %(default)s)")
    args = parser.parse_args(argv)
    times = run(args.frames, args.points_stride)
    print(f"depth per frame, 640x480, 5 objects, points_stride {args.points_stride}, {args.frames} frames:")
    for key, values in times.items():
        p50, p99 = np.percentile(values, [50, 99])
        print(f"  {key:9s} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
