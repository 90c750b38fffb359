"""``sam2-make-bag``: build an evaluation bag from a DAVIS-format folder or a video with masks.

    sam2-make-bag --davis DAVIS --sequence bear --out bear_bag
    sam2-make-bag --video run.mp4 --masks run_masks/ --out run_bag --compressed
    sam2-make-bag --video run.mp4 --masks run_masks/ --depth run_depth/ --out run_bag

The bag (MCAP by default) has the images on --image-topic and label images
(pixel = object id) on --gt-topic, both stamped alike, ready for ``sam2-eval --bag``
or for ``ros2 bag play``. Where the data has depth (a DAVIS folder's ``Depth/<sequence>/``,
or ``--depth DIR`` for a video: 16-bit millimetre PNGs named by frame number and
``camera_info.json``, see ``sam2_model.depth_format``), the bag also has it on --depth-topic
(16UC1) with the camera on --camera-info-topic, stamped alike.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from sam2_model import depth_format
from sam2_model.object_3d import PinholeIntrinsics

from .bag_io import (DEFAULT_CAMERA_INFO_TOPIC, DEFAULT_DEPTH_TOPIC, DEFAULT_GT_TOPIC, DEFAULT_IMAGE_TOPIC, STORAGES,
                     write_bag)
from .davis import DAVIS_FPS, read_depth, read_sequence
from .errors import EvaluationInputError, run_command
from .sequence import Frame
from .video import video_frames

PROG = "sam2-make-bag"
EXAMPLES = """examples:
  sam2-make-bag --davis DAVIS --sequence bear --out bear_bag
  sam2-make-bag --video run.mp4 --masks run_masks/ --out run_bag --compressed
  sam2-make-bag --video run.mp4 --masks run_masks/ --depth run_depth/ --out run_bag

exit status: 0 done, 2 bad input (no bag left behind), 130 interrupted"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Build an evaluation bag (images + ground-truth label images, paired by stamp) "
        "from a DAVIS-format folder or a video with per-frame masks.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--davis", type=Path, metavar="DIR", help="DAVIS-format folder (JPEGImages/, Annotations/)")
    source.add_argument("--video", type=Path, metavar="FILE", help="video file (anything FFmpeg reads)")
    parser.add_argument("--sequence", metavar="NAME", help="sequence of the DAVIS folder (required with --davis)")
    parser.add_argument(
        "--masks", type=Path, metavar="DIR", help="label PNGs named by frame number (required with --video)"
    )
    parser.add_argument(
        "--depth", type=Path, metavar="DIR",
        help="with --video: depth aligned to it, 16-bit millimetre PNGs named by frame number and camera_info.json "
        "(a DAVIS folder's depth is found in its Depth/<sequence>/)",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="BAG", help="bag to create (must not exist)")
    parser.add_argument(
        "--fps", type=float, help=f"frame rate for the stamps (DAVIS: {DAVIS_FPS:g}; video: its own rate)"
    )
    parser.add_argument(
        "--image-topic", default=DEFAULT_IMAGE_TOPIC, metavar="TOPIC", help="camera images (default: %(default)s)"
    )
    parser.add_argument(
        "--gt-topic", default=DEFAULT_GT_TOPIC, metavar="TOPIC", help="label images (default: %(default)s)"
    )
    parser.add_argument(
        "--depth-topic", default=DEFAULT_DEPTH_TOPIC, metavar="TOPIC", help="depth, 16UC1 mm (default: %(default)s)"
    )
    parser.add_argument(
        "--camera-info-topic", default=DEFAULT_CAMERA_INFO_TOPIC, metavar="TOPIC",
        help="the camera, with the depth (default: %(default)s)",
    )
    parser.add_argument("--frame-id", default="camera", help="header frame_id (default: %(default)s)")
    parser.add_argument(
        "--compressed",
        action="store_true",
        help="write sensor_msgs/CompressedImage: JPEG images, PNG labels (default: raw rgb8 / mono8 Images)",
    )
    parser.add_argument("--storage", choices=STORAGES, default="mcap", help="bag storage (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _frames(args: argparse.Namespace, parser: argparse.ArgumentParser
            ) -> tuple[Iterable[Frame], int | None, PinholeIntrinsics | None]:
    """The frames to write, their count when known (for the progress bar) and the depth's camera."""
    if args.davis is not None:
        if not args.sequence:
            parser.error("--davis needs --sequence NAME")
        if args.masks is not None:
            parser.error("--masks goes with --video, not --davis")
        if args.depth is not None:
            parser.error("--depth goes with --video; a DAVIS folder's depth is its "
                         f"{depth_format.DEPTH_DIR}/<sequence>/ folder")
        sequence = read_sequence(args.davis, args.sequence, fps=args.fps or DAVIS_FPS)
        return sequence, len(sequence), sequence.intrinsics
    if args.masks is None:
        parser.error("--video needs --masks DIR")
    if args.sequence:
        parser.error("--sequence goes with --davis, not --video")
    depth = None
    if args.depth is not None:
        depth = read_depth(args.depth)
        if depth is None:
            raise EvaluationInputError(f"depth folder not found: {args.depth}")
    return video_frames(args.video, args.masks, fps=args.fps, depth=depth), None, depth.intrinsics if depth else None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.fps is not None and args.fps <= 0:
        parser.error("--fps must be positive")
    return run_command(PROG, lambda: _write(args, parser), "no bag written")


def _write(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from tqdm import tqdm

    if args.out.exists():
        raise EvaluationInputError(f"{args.out} exists already; choose a new bag path")
    frames, total, intrinsics = _frames(args, parser)
    with tqdm(total=total, unit="frame", desc="writing", disable=args.no_progress, file=sys.stderr) as bar:
        summary = write_bag(
            args.out,
            frames,
            image_topic=args.image_topic,
            gt_topic=args.gt_topic,
            compressed=args.compressed,
            storage=args.storage,
            frame_id=args.frame_id,
            progress=bar.update,
            depth_topic=args.depth_topic,
            camera_info_topic=args.camera_info_topic,
            intrinsics=intrinsics,
        )
    depth = (f", {summary.num_depth} depth images on {args.depth_topic} with camera_info on "
             f"{args.camera_info_topic}" if summary.num_depth else "")
    print(
        f"wrote {summary.path} ({summary.storage}): {summary.num_images} images on {args.image_topic}, "
        f"{summary.num_labels} label images on {args.gt_topic}{depth}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
