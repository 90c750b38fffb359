"""Writes an evaluation's results: results.json, report.md and PNG plots.

Plots use matplotlib's object-oriented API on the Agg canvas, so importing this
module never changes the process-wide backend and needs no display.
results.json is written last: its presence marks a complete evaluation.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Collection

import numpy as np

from sam2_model.visualization import tint_masks

from .metrics import SeriesStats
from .scoring import DiscoveryCounts, ObjectResult, SequenceResult, Summary, VisibilityCounts, WorstFrame

# Bumped only for changes that break readers; new keys (e.g. the visibility scores) keep it.
RESULTS_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class RunInfo:
    """How the evaluation was run; echoed into results.json and the report."""

    source: str  # the bag or DAVIS folder
    prompt: str
    runner: str  # the runner's description
    bound_th: float
    max_frames: int | None = None
    image_topic: str | None = None  # bag input only
    gt_topic: str | None = None
    model: str | None = None  # the in-process SAM 2 model; None for other runners
    checkpoint: str | None = None
    device: str | None = None
    dtype: str | None = None
    memory_policy: str | None = None  # the in-process tracker's; None for other runners


@dataclass(frozen=True)
class ReportFiles:
    results_json: Path
    report_md: Path
    plots: list[Path]


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "sequence"


def _stats_dict(stats: SeriesStats | None) -> dict[str, Any] | None:
    return None if stats is None else asdict(stats)


def _object_dict(obj: ObjectResult) -> dict[str, Any]:
    return {
        "obj_id": obj.obj_id,
        "prompt_frame": obj.prompt_frame,
        "JF_mean": obj.jf_mean,
        "J": _stats_dict(obj.j_stats),
        "F": _stats_dict(obj.f_stats),
        **obj.visibility.as_dict(),
        "frames": obj.frames,
        "J_per_frame": obj.j,
        "F_per_frame": obj.f,
        "frame_outcomes": "".join(outcome.value for outcome in obj.outcomes),  # a letter per frame of "frames"
        "position_error_m": _stats_dict(obj.position_error),
        "position_error_frames": obj.position_frames,
        "position_error_per_frame_m": obj.position_errors,
    }


def _sequence_dict(seq: SequenceResult) -> dict[str, Any]:
    return {
        "name": seq.name,
        "source": seq.source,
        "num_frames": seq.num_frames,
        "num_annotated_frames": seq.num_annotated,
        "JF_mean": seq.jf_mean,
        "J_mean": seq.j_mean,
        "F_mean": seq.f_mean,
        **seq.visibility.as_dict(),
        "timing_ms": asdict(seq.timing),
        "objects": [_object_dict(o) for o in seq.objects],
        "worst_frames": [
            {"frame": w.frame_index, "obj_id": w.obj_id, "J": w.j, "F": w.f, "JF": w.jf} for w in seq.worst
        ],
        **_discovery_dict(seq),
    }


def _discovery_dict(seq: SequenceResult) -> dict[str, Any]:
    """--prompt auto only: the counts and which track stands for which ground-truth object."""
    if seq.discovery is None:
        return {}
    return {"discovery": {**seq.discovery.as_dict(), "matches": {str(k): v for k, v in seq.matches.items()}}}


def discovery_total(sequences: list[SequenceResult]) -> DiscoveryCounts | None:
    """The sequences' discovery counts added up; None unless the run was --prompt auto."""
    counts = [s.discovery for s in sequences if s.discovery is not None]
    return sum(counts, DiscoveryCounts()) if counts else None


def results_dict(
    run: RunInfo, summary: Summary, sequences: list[SequenceResult], live: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The content of results.json (with a ``live`` section for evaluations against the node)."""
    out = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "run": asdict(run),
        "summary": asdict(summary),
        "sequences": [_sequence_dict(s) for s in sequences],
    }
    discovery = discovery_total(sequences)
    if discovery is not None:
        out["discovery"] = discovery.as_dict()
    if live is not None:
        out["live"] = live
    return out


# ---------------------------------------------------------------- plots


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def plot_per_frame(path: Path, seq: SequenceResult) -> None:
    """Per-frame J (top) and F (bottom) of every object; triangles mark prompt frames."""
    fig = _figure(9, 5.5)
    axes = fig.subplots(2, 1, sharex=True)
    for ax, label, pick in ((axes[0], "J (region IoU)", "j"), (axes[1], "F (boundary)", "f")):
        for obj in seq.objects:
            line = ax.plot(obj.frames, getattr(obj, pick), marker=".", linewidth=1.2, label=f"object {obj.obj_id}")[0]
            ax.plot([obj.prompt_frame], [1.02], marker="v", color=line.get_color(), linestyle="none")
        ax.set_ylim(-0.02, 1.06)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[1].set_xlabel("frame")
    axes[1].set_xlim(-0.5, max(seq.num_frames - 0.5, 0.5))
    axes[0].set_title(f"{seq.name}: per-frame scores (J&F {seq.jf_mean:.3f}; ▼ = prompt frame)")
    axes[0].legend(loc="lower left", fontsize="small", ncol=min(4, max(1, len(seq.objects))))
    fig.tight_layout()
    fig.savefig(path)


def worst_frame_panels(item: WorstFrame) -> tuple[np.ndarray, np.ndarray]:
    """Truth and prediction of one worst frame, each tinted and outlined in the object's colour (the
    colour the node and the demo draw it in)."""
    def panel(mask: np.ndarray) -> np.ndarray:
        return tint_masks(item.image, {item.obj_id: mask}, outline_px=1)

    return panel(item.gt_mask), panel(item.pred_mask)


def contact_sheet(path: Path, seq: SequenceResult, per_row: int = 2) -> None:
    """The worst (object, frame) pairs: truth beside prediction."""
    worst: list[WorstFrame] = seq.worst
    rows = max(1, -(-len(worst) // per_row))
    fig = _figure(4.2 * per_row, 2.3 * rows + 0.4)
    axes = np.atleast_2d(fig.subplots(rows, 2 * per_row, squeeze=False))
    for ax in axes.flat:
        ax.set_axis_off()
    for i, item in enumerate(worst):
        ax_truth, ax_pred = axes[i // per_row, 2 * (i % per_row)], axes[i // per_row, 2 * (i % per_row) + 1]
        truth, prediction = worst_frame_panels(item)
        ax_truth.imshow(truth)
        ax_truth.set_title(f"frame {item.frame_index}, object {item.obj_id}: truth", fontsize=8)
        ax_pred.imshow(prediction)
        ax_pred.set_title(f"prediction J {item.j:.3f} F {item.f:.3f}", fontsize=8)
    if not worst:
        axes[0, 0].text(0, 0.5, "no scored frames", fontsize=10)
    fig.suptitle(f"{seq.name}: worst frames by J&F (truth left, prediction right)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


# ---------------------------------------------------------------- markdown


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


VISIBILITY_HEADER = (
    "hidden frames | reported absent | absent accuracy | return frames | found again | redetection rate "
    "| returns on the target "
    "| visible frames | missed | miss rate | visible on the target | predicted frames | identity switches | switch rate |"
)


def _visibility_cells(v: VisibilityCounts) -> str:
    return (
        f"{v.hidden_frames} | {v.hidden_correct} | {_fmt(v.absent_accuracy)} "
        f"| {v.return_frames} | {v.return_found} | {_fmt(v.redetection_rate)} | {v.return_on_target} "
        f"| {v.visible_frames} | {v.visible_missed} | {_fmt(v.miss_rate)} | {v.visible_on_target} "
        f"| {v.predicted_frames} | {v.identity_switches} | {_fmt(v.identity_switch_rate)} |"
    )


def count_and_percent(part: int, whole: int) -> str:
    return f"{part}/{whole} ({part / whole:.0%})" if whole else f"{part}/{whole} (n/a)"


def visibility_phrases(v: VisibilityCounts, missing: Collection[str] = ()) -> tuple[str, str, str]:
    """The console's words for hidden frames, returns and visible frames (sam2-eval,
    sam2-eval-compare); ``missing``: the on-the-target counts (``return_on_target``,
    ``visible_on_target``) a results.json older than them lacks, left unsaid."""
    returns = f"returns found {count_and_percent(v.return_found, v.return_frames)}"
    if "return_on_target" not in missing:
        returns += f" ({v.return_on_target} on the target)"
    visible = f"visible frames reported absent {count_and_percent(v.visible_missed, v.visible_frames)}"
    if "visible_on_target" not in missing:
        visible += f", on the target {count_and_percent(v.visible_on_target, v.visible_frames)}"
    return (
        f"hidden frames reported absent {count_and_percent(v.hidden_correct, v.hidden_frames)}",
        returns,
        visible,
    )


def identity_phrase(v: VisibilityCounts) -> str:
    """The console's words for identity switches (sam2-eval, sam2-eval-compare)."""
    return f"identity switches {count_and_percent(v.identity_switches, v.predicted_frames)} of predicted frames"


def predicted_box_phrase(v: VisibilityCounts) -> str | None:
    """The console's words for the predicted boxes (sam2-eval, sam2-eval-compare): of the visible
    frames reported absent with a predicted box, those whose box held the object; None when there
    was no such frame (memory_policy official gives no boxes), so those runs read as before."""
    if not v.predicted_box_frames:
        return None
    return (f"predicted box on the object {count_and_percent(v.predicted_box_hits, v.predicted_box_frames)} "
            "of visible frames reported absent with a box")


def _visibility_separator(leading_columns: int = 0) -> str:
    return "|" + "---|" * (VISIBILITY_HEADER.count("|") + leading_columns)


def _summary_visibility_lines(summary: Summary) -> list[str]:
    if not summary.hidden_frames:
        return ["No object is hidden on a scored frame, so absent accuracy and redetection rate do not apply; "
                f"visible frames reported absent (missed): {summary.visible_missed} of {summary.visible_frames}, "
                f"on the target {summary.visible_on_target} of {summary.visible_frames}; "
                f"{identity_phrase(summary.visibility)}.", ""]
    return [
        "Visibility (all objects; the tracker reports an object not visible with an empty mask):",
        "",
        "| " + VISIBILITY_HEADER,
        _visibility_separator(),
        "| " + _visibility_cells(summary.visibility),
        "",
    ]


def _summary_predicted_box_lines(summary: Summary) -> list[str]:
    """Run-wide predicted-box hits; nothing when no missed frame had a box (official runs)."""
    if not summary.predicted_box_frames:
        return []
    return [f"Predicted boxes: on {summary.predicted_box_frames} of the {summary.visible_missed} visible frames "
            "reported absent the tracker gave a box where it predicts the object; the box held the object's "
            f"centre on {count_and_percent(summary.predicted_box_hits, summary.predicted_box_frames)} of them.", ""]


def _sequence_predicted_box_lines(seq: SequenceResult) -> list[str]:
    """Per object, the objects that had a predicted box on a missed frame; nothing when none did."""
    if not seq.visibility.predicted_box_frames:
        return []
    counts = [(obj.obj_id, obj.visibility) for obj in seq.objects if obj.visibility.predicted_box_frames]
    per_object = ", ".join(f"object {obj_id} {count_and_percent(v.predicted_box_hits, v.predicted_box_frames)}"
                           for obj_id, v in counts)
    return [f"Predicted box on the object, of the visible frames reported absent with a box: {per_object}.", ""]


def _sequence_visibility_lines(seq: SequenceResult) -> list[str]:
    if not seq.visibility.hidden_frames:
        return []
    lines = ["| object | " + VISIBILITY_HEADER, _visibility_separator(leading_columns=1)]
    lines += [f"| {obj.obj_id} | " + _visibility_cells(obj.visibility) for obj in seq.objects]
    lines += ["| all | " + _visibility_cells(seq.visibility), ""]
    return lines


def _checkpoint_cell(run: RunInfo) -> str:
    if run.checkpoint:
        return f"`{run.checkpoint}`"
    return "bundled weights" if run.model == "default" else "none (random weights)"


def _live_lines(live: dict[str, Any]) -> list[str]:
    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f} ms"

    return [
        "## Live run against the node",
        "",
        f"Node `{live['node']}`, images on `{live['image_topic']}`, rate {live['rate']}. "
        f"{live['frames_published']} frames published, {live['frames_received']} results received, "
        f"{live['frames_dropped']} dropped (no result within {live['timeout_s']} s; scored as empty masks). "
        f"End-to-end latency (publish to receive): p50 {ms(live['latency_ms_p50'])}, "
        f"p99 {ms(live['latency_ms_p99'])}.",
        "",
    ]


def position_error_phrase(stats) -> str:
    """``"median 1.2 cm, p90 3.4 cm, max 9.0 cm over 40 frames"``."""
    return (f"median {stats.median * 100:.1f} cm, mean {stats.mean * 100:.1f} cm, p90 {stats.p90 * 100:.1f} cm, "
            f"max {stats.max * 100:.1f} cm over {stats.num_frames} object-frame(s)")


def _position_error_lines(summary: Summary, sequences: list[SequenceResult]) -> list[str]:
    """With depth: the 3D position error, run-wide and per object (position_error.py says what it is)."""
    if summary.position_error is None:
        return []
    overall = position_error_phrase(summary.position_error)
    lines = [f"3D position error (tracked vs ground-truth mask, same depth): {overall}.",
             "", "| sequence | object | median (cm) | p90 (cm) | max (cm) | frames |", "|---|---|---|---|---|---|"]
    for seq in sequences:
        for obj in seq.objects:
            stats = obj.position_error
            if stats is not None:
                lines.append(f"| {seq.name} | {obj.obj_id} | {stats.median * 100:.1f} | {stats.p90 * 100:.1f} "
                             f"| {stats.max * 100:.1f} | {stats.num_frames} |")
    return lines + [""]


def markdown_report(
    run: RunInfo,
    summary: Summary,
    sequences: list[SequenceResult],
    plot_dir: str,
    live: dict[str, Any] | None = None,
) -> str:
    lines = [
        "# SAM 2 tracking evaluation",
        "",
        "| setting | value |",
        "|---|---|",
        f"| source | `{run.source}` |",
    ]
    if run.image_topic:
        lines.append(f"| topics | image `{run.image_topic}`, ground truth `{run.gt_topic}` |")
    if run.model is not None:
        lines += [
            f"| model | `{run.model}` |",
            f"| checkpoint | {_checkpoint_cell(run)} |",
            f"| device | {run.device} ({run.dtype}) |",
        ]
    if run.memory_policy is not None:
        lines.append(f"| memory policy | `{run.memory_policy}` |")
    lines += [
        f"| runner | {run.runner} |",
        f"| prompt | {run.prompt}, from each object's first ground-truth frame |"
        if run.prompt != "auto"
        else "| prompt | auto: objects discovered by the tracker, matched to the truth (DAVIS unsupervised) |",
        f"| boundary tolerance | bound_th = {run.bound_th} |",
    ]
    if run.max_frames is not None:
        lines.append(f"| frames | first {run.max_frames} of each sequence |")
    lines += [
        "",
        "## Summary",
        "",
        "| J&F | J mean | J recall | J decay | F mean | F recall | F decay | objects | ms/frame |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| **{summary.jf_mean:.3f}** | {summary.j_mean:.3f} | {summary.j_recall:.3f} | {summary.j_decay:.3f} "
        f"| {summary.f_mean:.3f} | {summary.f_recall:.3f} | {summary.f_decay:.3f} | {summary.num_objects} "
        f"| {summary.track_ms_mean:.1f} |",
        "",
    ]
    lines += _summary_visibility_lines(summary)
    lines += _summary_predicted_box_lines(summary)
    lines += _position_error_lines(summary, sequences)
    discovery = discovery_total(sequences)
    if discovery is not None:
        lines += [
            f"Discovery: {discovery.found} object(s) found, {discovery.missed} missed (scored with a track "
            f"that never overlaps them, or an empty prediction when the tracks ran out), {discovery.spurious} "
            f"spurious track(s) of {discovery.tracks}.",
            "",
        ]
    if live is not None:
        lines += _live_lines(live)
    for seq in sequences:
        t = seq.timing
        name = _safe_name(seq.name)
        lines += [
            f"## Sequence `{seq.name}`",
            "",
            f"{seq.num_frames} frames, {seq.num_annotated} with ground truth. J&F **{_fmt(seq.jf_mean)}** "
            f"(J {_fmt(seq.j_mean)}, F {_fmt(seq.f_mean)}).",
            "",
            f"Tracking: {t.track_ms_mean:.1f} ms/frame mean ({t.fps:.1f} FPS), median {t.track_ms_median:.1f}, "
            f"p95 {t.track_ms_p95:.1f}, max {t.track_ms_max:.1f} ms; "
            f"prompts took {t.prompt_ms_total:.1f} ms in all.",
            "",
            "| object | prompt frame | scored frames | J&F | J mean | J recall | J decay "
            "| F mean | F recall | F decay |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for obj in seq.objects:
            j, f = obj.j_stats, obj.f_stats
            lines.append(
                f"| {obj.obj_id} | {obj.prompt_frame} | {len(obj.frames)} | {_fmt(obj.jf_mean)} "
                f"| {_fmt(j and j.mean)} | {_fmt(j and j.recall)} | {_fmt(j and j.decay)} "
                f"| {_fmt(f and f.mean)} | {_fmt(f and f.recall)} | {_fmt(f and f.decay)} |"
            )
        lines.append("")
        if seq.discovery is not None:
            matched = ", ".join(f"object {k} = track {v}" for k, v in seq.matches.items()) or "none"
            lines += [
                f"Discovery: {seq.discovery.found} found, {seq.discovery.missed} missed, "
                f"{seq.discovery.spurious} spurious of {seq.discovery.tracks} track(s); {matched}.",
                "",
            ]
        lines += _sequence_visibility_lines(seq)
        lines += _sequence_predicted_box_lines(seq)
        lines += [
            f"![per-frame scores of {seq.name}]({plot_dir}/{name}_per_frame.png)",
            "",
            f"![worst frames of {seq.name}]({plot_dir}/{name}_worst_frames.png)",
            "",
        ]
    # boundary_radius: a bound_th of 1 or more is a pixel count, below 1 a fraction of the diagonal.
    tolerance = (f"{run.bound_th:g} pixels" if run.bound_th >= 1
                 else f"ceil({run.bound_th} x image diagonal) pixels")
    if run.prompt == "auto":  # score_auto: the DAVIS unsupervised protocol
        frames = ("Each ground-truth object is scored on every annotated frame, the first and the last "
                  "included (the DAVIS unsupervised protocol), with the masks of the track assigned to it. ")
    else:
        frames = ("Each object is scored on the annotated frames after the one it was prompted on, leaving "
                  "out the sequence's last annotated frame (as the DAVIS and SA-V evaluators leave out the "
                  "first and last frames). ")
    lines += [
        "## How the numbers are computed",
        "",
        "DAVIS definitions: J is the mask IoU (1 when truth and prediction are both empty); F is the "
        f"F-measure of boundary precision and recall, one-pixel boundaries matched within {tolerance}. "
        "Recall is the fraction of frames above 0.5; decay is the first quarter's mean minus the last "
        "quarter's. " + frames + "Means are over objects; J&F = (J + F) / 2. "
        "ms/frame is the wall time of tracking one frame until its masks are on the host (prompting excluded).",
        "",
        "Visibility, on the same frames: an object is *hidden* on a frame where its true mask is empty, and "
        "*reported absent* where the predicted mask is empty (an object the tracker did not output counts as "
        "empty). Absent accuracy = hidden frames reported absent / hidden frames. A *return* frame is one where "
        "the object is in the truth again after an earlier hidden frame; redetection rate = return frames with "
        "a non-empty prediction / return frames; a return found *on the target* is one whose prediction "
        "overlaps the object's true mask and is no identity switch. *Missed* = frames where the object is in "
        "the truth (visible frames) but reported absent; miss rate = missed / visible frames. An *identity "
        "switch* is a frame with a non-empty prediction that covers more pixels of another true object than of "
        "its own (the mask jumped to a look-alike or a neighbour); switch rate = identity switches / predicted "
        "frames (frames with a non-empty prediction). Sequence and run figures add up the counts over objects.",
        "",
    ]
    if summary.predicted_box_frames:
        lines += [
            "Predicted boxes (memory_policy robust): on a visible frame reported absent the tracker may give "
            "the box its motion filter predicts for the object, a hint where to look for it. Such a frame "
            "counts as a hit when the box, bounds included, holds the centre (mean column, mean row) of the "
            "object's true mask.",
            "",
        ]
    if summary.position_error is not None:
        lines += [
            "3D position error, on the same frames where the data has depth: the distance in metres between "
            "the object's position from the predicted mask (or the one the live node published) and from the "
            "true mask, both on that frame's depth; a position is the per-axis median of the mask's valid depth "
            "points, its border eroded by 2 pixels, back-projected with the camera's intrinsics (as the node's "
            "use_depth computes it).",
            "",
        ]
    return "\n".join(lines)


def write_report(
    out_dir: Path,
    run: RunInfo,
    summary: Summary,
    sequences: list[SequenceResult],
    live: dict[str, Any] | None = None,
) -> ReportFiles:
    """Write plots, report.md and results.json into out_dir (created if needed).

    live: the live runner's counts and latencies (``sam2-eval --live``), reported when given."""
    out_dir = Path(out_dir)
    plot_dir = out_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    plots = []
    for seq in sequences:
        name = _safe_name(seq.name)
        plots.append(plot_dir / f"{name}_per_frame.png")
        plot_per_frame(plots[-1], seq)
        plots.append(plot_dir / f"{name}_worst_frames.png")
        contact_sheet(plots[-1], seq)
    report_md = out_dir / "report.md"
    report_md.write_text(markdown_report(run, summary, sequences, "plots", live), encoding="utf-8")
    results_json = out_dir / "results.json"
    tmp = results_json.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results_dict(run, summary, sequences, live), indent=2) + "\n", encoding="utf-8")
    tmp.replace(results_json)
    return ReportFiles(results_json=results_json, report_md=report_md, plots=plots)
