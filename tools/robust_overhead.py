"""ms/frame of the robust memory policy against the official one, on the same frames (issue 25).

    python tools/robust_overhead.py --videos 4 --frames 48 --seed 7300
    python tools/robust_overhead.py --policy robust+appearance_memory   # any memory_policy string

Each frame is encoded once (timed apart); the official and the robust tracker then track it from
the same features, in alternating order, so that load on the machine hits both alike. Prints the
median ms/frame of the encoder and of each policy's tracking step, and the robust policy's extra
time as a share of a whole frame (encoder + tracking), the figure the issue bounds at 10 %.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import sam2_model
from sam2_model.train.procedural import ProceduralConfig, generate_with_events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=7300)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--policy", default="robust", help="the memory_policy timed against official")
    args = parser.parse_args()
    model = sam2_model.build_model("default", device=args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    times = {"encode": [], "official": [], "robust": []}
    for index in range(args.videos):
        config = ProceduralConfig(height=args.size, width=args.size, num_frames=args.frames)
        video = generate_with_events(args.seed + index, config)
        trackers = {"official": sam2_model.StreamingTracker(model, memory_policy="official"),
                    "robust": sam2_model.StreamingTracker(model, memory_policy=args.policy)}
        for t, frame in enumerate(video.frames):
            start = time.perf_counter()
            prepared = trackers["official"].prepare_frame(frame)
            features = trackers["official"].encode([prepared])[0]
            sync()
            times["encode"].append(time.perf_counter() - start)
            order = ("official", "robust") if t % 2 == 0 else ("robust", "official")
            for policy in order:
                start = time.perf_counter()
                result = trackers[policy].track_encoded(prepared, features)
                result.masks.cpu()
                times[policy].append(time.perf_counter() - start)
                if t == 0:
                    for obj_id in range(1, video.num_targets + 1):
                        trackers[policy].add_prompt(obj_id, mask=video.labels[0] == obj_id)
    ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    whole = ms["encode"] + ms["official"]
    print(f"{len(times['encode'])} frames ({args.videos} videos of {args.frames}, {args.size}px, {args.device}): "
          f"encoder {ms['encode']:.1f} ms, tracking official {ms['official']:.1f} ms, {args.policy} "
          f"{ms['robust']:.1f} ms (median); {args.policy} adds {ms['robust'] - ms['official']:+.1f} ms = "
          f"{100 * (ms['robust'] - ms['official']) / whole:+.1f} % of a whole frame ({whole:.1f} ms)")


if __name__ == "__main__":
    main()
