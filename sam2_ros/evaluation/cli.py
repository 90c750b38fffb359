"""``sam2-eval``: measure SAM 2 tracking accuracy and speed on a bag or a DAVIS-format folder.

    sam2-eval --bag recording_bag --out eval_out   # the bundled default model
    sam2-eval --bag recording_bag --model sam2.1_hiera_tiny \\
        --checkpoint sam2.1_hiera_tiny.pt --out eval_out
    sam2-eval --davis DAVIS --sequence bear --prompt click --out eval_out

Every object is prompted on its first ground-truth frame (mask, box or one click),
tracked over every frame, and scored with the DAVIS J, F and J&F, and with how
well the tracker reports hidden objects absent and finds them again. Writes
results.json, report.md and plots/ into --out. Bad input is reported with exit
status 2 before anything is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sam2_model.tracker_options import TrackerOptions, option_choices, option_help, option_names, option_types

from .bag_io import (DEFAULT_CAMERA_INFO_TOPIC, DEFAULT_DEPTH_TOPIC, DEFAULT_GT_TOPIC, DEFAULT_IMAGE_TOPIC,
                     list_topics, read_bag)
from .davis import list_sequences, read_sequence
from .errors import EvaluationInputError, run_command
from .metrics import DEFAULT_BOUND_TH
from .model import DTYPES
from .prompts import PromptKind
from .report import (RunInfo, discovery_total, identity_phrase, position_error_phrase, predicted_box_phrase,
                     visibility_phrases, write_report)
from .runner import Runner
from .scoring import SequenceResult, Summary, evaluate_sequence, summarize
from .sequence import DAVIS_VOID_LABEL, Sequence

PROG = "sam2-eval"
DEFAULT_MODEL = "default"  # sam2_model's bundled small model (sam2_model.build_model loads its weights)
DESCRIPTION = """\
Measure SAM 2 tracking accuracy (DAVIS J, F, J&F; whether hidden objects are
reported absent and found again when they return) and speed on a ROS 2 bag or a
DAVIS-format folder. Each object is prompted on its first ground-truth frame.
Writes results.json, report.md and plots/ into --out."""
EXAMPLES = """examples:
  sam2-eval --bag run_bag --out eval    # the bundled default model
  sam2-eval --bag run_bag --model sam2.1_hiera_tiny --checkpoint sam2.1_hiera_tiny.pt --device cuda --out eval
  sam2-eval --davis DAVIS --sequence bear --prompt click --out eval_bear

exit status: 0 done, 2 bad input (nothing written), 130 interrupted"""


def _void_label(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer label or 'none', got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_argument_group("input")
    which = source.add_mutually_exclusive_group(required=True)
    which.add_argument("--bag", type=Path, metavar="PATH", help="ROS 2 bag: a directory, .mcap or .db3")
    which.add_argument("--davis", type=Path, metavar="DIR", help="DAVIS-format folder (JPEGImages/, Annotations/)")
    source.add_argument(
        "--sequence", action="append", metavar="NAME", help="DAVIS sequence to evaluate (repeatable; default: all)"
    )
    source.add_argument(
        "--image-topic", default=DEFAULT_IMAGE_TOPIC, metavar="TOPIC", help="camera images (default: %(default)s)"
    )
    source.add_argument(
        "--gt-topic", default=DEFAULT_GT_TOPIC, metavar="TOPIC", help="label images (default: %(default)s)"
    )
    source.add_argument(
        "--depth-topic",
        metavar="TOPIC",
        help="depth aligned to the images (16UC1 mm, 32FC1 m, compressedDepth), for the 3D position error "
        f"(default: {DEFAULT_DEPTH_TOPIC} when the bag has it and its camera_info; a DAVIS folder's depth is "
        "its Depth/<sequence>/ folder)",
    )
    source.add_argument(
        "--camera-info-topic",
        default=DEFAULT_CAMERA_INFO_TOPIC,
        metavar="TOPIC",
        help="the colour camera's sensor_msgs/CameraInfo, with --depth-topic (default: %(default)s)",
    )
    source.add_argument(
        "--void-label",
        type=_void_label,
        default=DAVIS_VOID_LABEL,
        metavar="ID",
        help="label of ignored pixels, or 'none' (default: %(default)s)",
    )
    source.add_argument("--max-frames", type=int, metavar="N", help="evaluate only the first N frames")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="CONFIG",
        help="released name, 'default' (bundled small model, default), or official YAML",
    )
    model.add_argument(
        "--checkpoint",
        type=Path,
        metavar="PT",
        help="official checkpoint (omit: bundled weights for 'default', random weights otherwise)",
    )
    model.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    model.add_argument(
        "--dtype", default="float32", choices=DTYPES, help="model precision (default: %(default)s)"
    )
    _add_tracker_options(model)
    model.add_argument(
        "--variant",
        action="append",
        metavar="POLICY",
        help="score this memory policy (official, robust, robust:<components>); repeat to score several "
        "variants on the same frames in one run, each frame's image features computed once and shared "
        "(exact); each variant's report goes to OUT/<policy>/, ':' and '/' in the policy written '_' "
        "(robust:kalman -> OUT/robust_kalman/); excludes --memory-policy",
    )
    scoring = parser.add_argument_group("scoring")
    scoring.add_argument(
        "--prompt",
        choices=[k.value for k in PromptKind],
        default=PromptKind.MASK.value,
        help="from each object's first true mask: the mask, its box, or one click at its most "
        "interior pixel; or auto: no prompts, objects discovered as the node's ~/discover does and "
        "matched to the truth as in DAVIS unsupervised (default: %(default)s)",
    )
    scoring.add_argument(
        "--discover-every",
        type=int,
        default=0,
        metavar="N",
        help="with --prompt auto, discover new objects again every N frames; 0 = first frame only "
        "(default: %(default)s)",
    )
    scoring.add_argument(
        "--discover-points-per-side",
        type=int,
        default=None,
        metavar="N",
        help="with --prompt auto, the generator's clicks per side (default: the node's "
        "discover_points_per_side)",
    )
    scoring.add_argument(
        "--bound-th",
        type=float,
        default=DEFAULT_BOUND_TH,
        metavar="T",
        help="F boundary tolerance: fraction of the diagonal, or pixels if >= 1 (default: %(default)s)",
    )
    scoring.add_argument(
        "--worst", type=int, default=8, metavar="K", help="frames on the contact sheet (default: %(default)s)"
    )
    live = parser.add_argument_group("live (evaluate the running tracker node over ROS; model options ignored)")
    live.add_argument(
        "--live", action="store_true", help="play the input into the running tracker node and score what it publishes"
    )
    live.add_argument(
        "--node", default="/tracker_node", metavar="NAME", help="the tracker node's full name (default: %(default)s)"
    )
    live.add_argument(
        "--rate",
        choices=["recorded", "max"],
        default="recorded",
        help="publish at the recorded rate, or each frame once the previous one's result arrived "
        "(default: %(default)s)",
    )
    live.add_argument(
        "--live-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds to wait for a frame's result before counting it dropped (default: %(default)s)",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--out", type=Path, default=Path("sam2_eval"), metavar="DIR", help="output folder (default: %(default)s)"
    )
    output.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def open_sequences(args: argparse.Namespace) -> list[Sequence]:
    """Open and validate every input sequence before any tracking starts."""
    if args.bag is not None:
        if args.sequence:
            raise EvaluationInputError("--sequence selects DAVIS sequences; a bag is one sequence")
        depth_topic = args.depth_topic
        if depth_topic is None and {DEFAULT_DEPTH_TOPIC, args.camera_info_topic} <= set(list_topics(args.bag)):
            depth_topic = DEFAULT_DEPTH_TOPIC  # the data has depth: use it
        sequences = [read_bag(args.bag, args.image_topic, args.gt_topic, void_label=args.void_label,
                              depth_topic=depth_topic, camera_info_topic=args.camera_info_topic)]
    else:
        names = args.sequence or list_sequences(args.davis)
        sequences = [read_sequence(args.davis, name, void_label=args.void_label) for name in names]
    sequences = [s.truncated(args.max_frames) for s in sequences]
    for seq in sequences:
        if not seq.annotated:
            raise EvaluationInputError(f"{seq.name}: no ground truth within the first {seq.num_frames} frames")
    return sequences


def evaluate(
    runner: Runner,
    sequences: list[Sequence],
    prompt: PromptKind,
    bound_th: float,
    worst_k: int,
    show_progress: bool,
) -> list[SequenceResult]:
    """Run and score each sequence, with a progress bar per sequence."""
    from tqdm import tqdm

    results = []
    for seq in sequences:
        with tqdm(total=len(seq), desc=seq.name, unit="frame", disable=not show_progress, file=sys.stderr) as bar:
            results.append(evaluate_sequence(runner, seq, prompt, bound_th, worst_k, progress=bar.update))
    return results


def visibility_line(summary: Summary) -> str:
    """The console summary's visibility part: misses and identity switches always, hidden frames
    and returns when an object is hidden on a scored frame, predicted boxes when a missed frame had one."""
    hidden, returns, missed = visibility_phrases(summary.visibility)
    boxes = predicted_box_phrase(summary.visibility)
    phrases = [hidden, returns] if summary.hidden_frames else []
    phrases += [missed] + ([boxes] if boxes else []) + [identity_phrase(summary.visibility)]
    return "; " + ", ".join(phrases)


def _add_tracker_options(group) -> None:
    """One flag per TrackerOptions field (its type, help and unset default come from there)."""
    types, helps, choices = option_types(), option_help(), option_choices()
    for name in option_names():
        flag = "--" + name.replace("_", "-")
        if types[name] is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=helps[name])
        elif name in choices:
            group.add_argument(flag, choices=choices[name], default=None, help=helps[name])
        else:
            default = getattr(TrackerOptions(), name)
            shown = "" if default is None else f" (default: {default})"
            metavar = "NAME" if types[name] is str else "N"
            group.add_argument(flag, type=types[name], default=None, metavar=metavar, help=helps[name] + shown)


def _tracker_options(args: argparse.Namespace) -> TrackerOptions:
    return TrackerOptions().overridden_by(**{name: getattr(args, name) for name in option_names()})


def run_variants(args: argparse.Namespace, sequences: list[Sequence]) -> int:
    """``--variant``: every memory policy on the same frames (shared image features), one report each."""
    from .model import ModelSpec, build_variant_runners
    from .variants import variant_folder_name

    if args.live or args.prompt == PromptKind.AUTO.value:
        raise EvaluationInputError("--variant runs in-process with ground-truth prompts "
                                   "(not --live, not --prompt auto)")
    policies = list(dict.fromkeys(args.variant))
    spec = ModelSpec(args.model, args.checkpoint, args.device, args.dtype, _tracker_options(args))
    runners = build_variant_runners(spec, policies)
    prompt = PromptKind(args.prompt)
    results: dict[str, list[SequenceResult]] = {policy: [] for policy in policies}
    for seq in sequences:  # sequences outside, variants inside: the cache holds one sequence
        for policy in policies:
            results[policy].append(evaluate_sequence(runners[policy], seq, prompt, args.bound_th, args.worst))
    for policy in policies:
        summary = summarize(results[policy])
        info = RunInfo(source=str(args.bag if args.bag is not None else args.davis), prompt=prompt.value,
                       runner=runners[policy].description, bound_th=args.bound_th, max_frames=args.max_frames,
                       image_topic=args.image_topic if args.bag is not None else None,
                       gt_topic=args.gt_topic if args.bag is not None else None, model=spec.config,
                       checkpoint=None if spec.checkpoint is None else str(spec.checkpoint), device=spec.device,
                       dtype=spec.dtype, memory_policy=policy)
        files = write_report(args.out / variant_folder_name(policy), info, summary, results[policy])
        print(f"{policy}: J&F {summary.jf_mean:.3f} (J {summary.j_mean:.3f}, F {summary.f_mean:.3f}) over "
              f"{summary.num_objects} object(s) in {summary.num_sequences} sequence(s); "
              f"{summary.track_ms_mean:.1f} ms/frame" + visibility_line(summary) + f"; results: {files.results_json}")
    return 0


def run(args: argparse.Namespace, runner: Runner | None = None) -> int:
    """The whole evaluation; runner defaults to the in-process SAM 2 tracker built from args."""
    sequences = open_sequences(args)
    if args.variant and runner is None:
        if args.out.exists() and not args.out.is_dir():
            raise EvaluationInputError(f"--out {args.out} exists and is not a folder")
        return run_variants(args, sequences)
    if args.out.exists() and not args.out.is_dir():
        raise EvaluationInputError(f"--out {args.out} exists and is not a folder")
    if args.live and args.prompt == PromptKind.AUTO.value:
        raise EvaluationInputError("--prompt auto runs in-process only; the live node discovers through ~/discover")
    if runner is None and args.live:
        from .live import LiveNodeRunner

        runner = LiveNodeRunner(args.node, args.rate, args.live_timeout)
    if runner is None and args.checkpoint is not None and not args.checkpoint.is_file():
        raise EvaluationInputError(f"checkpoint not found: {args.checkpoint}")
    # With a runner from outside (tests, a live runner) the model options do not apply.
    model_spec = None
    if runner is None:
        from .model import ModelSpec, build_runner

        model_spec = ModelSpec(args.model, args.checkpoint, args.device, args.dtype, _tracker_options(args))
        auto = args.prompt == PromptKind.AUTO.value  # discovery settings only matter then
        runner = build_runner(
            model_spec,
            **({"discover_every": args.discover_every, "discover_points_per_side": args.discover_points_per_side}
               if auto else {}),
        )
    prompt = PromptKind(args.prompt)
    results = evaluate(runner, sequences, prompt, args.bound_th, args.worst, not args.no_progress)
    summary = summarize(results)
    info = RunInfo(
        source=str(args.bag if args.bag is not None else args.davis),
        prompt=prompt.value,
        runner=runner.description,
        bound_th=args.bound_th,
        max_frames=args.max_frames,
        image_topic=args.image_topic if args.bag is not None else None,
        gt_topic=args.gt_topic if args.bag is not None else None,
        model=None if model_spec is None else model_spec.config,
        checkpoint=None if model_spec is None or model_spec.checkpoint is None else str(model_spec.checkpoint),
        device=None if model_spec is None else model_spec.device,
        dtype=None if model_spec is None else model_spec.dtype,
        memory_policy=None if model_spec is None else model_spec.tracking.memory_policy,
    )
    live = runner.live_summary() if args.live and hasattr(runner, "live_summary") else None
    files = write_report(args.out, info, summary, results, live=live)
    print(
        f"J&F {summary.jf_mean:.3f} (J {summary.j_mean:.3f}, F {summary.f_mean:.3f}) over "
        f"{summary.num_objects} object(s) in {summary.num_sequences} sequence(s); "
        f"{summary.track_ms_mean:.1f} ms/frame" + visibility_line(summary)
    )
    if summary.position_error is not None:
        print("3D position error: " + position_error_phrase(summary.position_error))
    discovery = discovery_total(results)
    if discovery is not None:
        print(
            f"discovery: {discovery.found} of {discovery.found + discovery.missed} object(s) found, "
            f"{discovery.missed} missed, {discovery.spurious} spurious track(s) of {discovery.tracks}"
        )
    if live is not None:
        p50, p99 = live["latency_ms_p50"], live["latency_ms_p99"]
        print(
            f"live: {live['frames_published']} frames published, {live['frames_received']} received, "
            f"{live['frames_dropped']} dropped; latency p50 "
            + ("n/a" if p50 is None else f"{p50:.1f} ms, p99 {p99:.1f} ms")
        )
    print(f"report: {files.report_md}  results: {files.results_json}")
    return 0


def main(argv: list[str] | None = None, runner: Runner | None = None) -> int:
    """Entry point of sam2-eval. runner replaces the SAM 2 tracker (tests, a live runner)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.max_frames is not None and args.max_frames < 1:
        parser.error("--max-frames must be at least 1")
    if args.bound_th <= 0:
        parser.error("--bound-th must be positive")
    if args.live_timeout <= 0:
        parser.error("--live-timeout must be positive")
    if args.discover_every < 0:
        parser.error("--discover-every must be >= 0 (0 = first frame only)")
    if args.discover_points_per_side is not None and args.discover_points_per_side < 1:
        parser.error("--discover-points-per-side must be at least 1")
    if args.variant and args.memory_policy is not None:
        parser.error("--memory-policy and --variant exclude each other: --variant names every policy to run")
    # A sequence named twice would be scored twice, counting its objects twice in every mean.
    repeated = sorted({name for name in args.sequence or [] if args.sequence.count(name) > 1})
    if repeated:
        parser.error(f"--sequence {', '.join(repeated)} given more than once (each sequence is scored once)")
    return run_command(PROG, lambda: run(args, runner), "no results written")


if __name__ == "__main__":
    raise SystemExit(main())
