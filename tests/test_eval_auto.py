"""sam2-eval --prompt auto: the exact assignment, DAVIS-unsupervised scoring with stub trackers, the
real model end to end on a tiny generated video, and the demo's --prompt auto."""

import itertools
import json

import numpy as np
import pytest
from PIL import Image

from sam2_model import demo
from sam2_model.train.procedural import ProceduralConfig, generate_video, write_davis
from sam2_ros.evaluation import cli, davis
from sam2_ros.evaluation.matching import max_weight_assignment
from sam2_ros.evaluation.metrics import boundary_f, region_similarity
from sam2_ros.evaluation.runner import FramePrediction, InProcessRunner
from sam2_ros.evaluation.scoring import score_auto
from sam2_ros.evaluation.sequence import Frame, Sequence
from sam2_ros.evaluation.sequence import object_ids_in
from sam2_ros.evaluation.synthetic import synthetic_sequence

from eval_stubs import PerfectTracker


# ----------------------------------------------------------------------------- matching
def brute_force_best(weights: np.ndarray) -> float:
    """The largest total over every one-to-one assignment of min(rows, cols) pairs."""
    rows, cols = weights.shape
    if rows <= cols:
        return max(sum(weights[i, c] for i, c in enumerate(p)) for p in itertools.permutations(range(cols), rows))
    return max(sum(weights[r, j] for j, r in enumerate(p)) for p in itertools.permutations(range(rows), cols))


def test_assignment_matches_brute_force_on_random_matrices():
    rng = np.random.default_rng(21)
    for trial in range(200):
        rows, cols = (int(n) for n in rng.integers(1, 7, size=2))
        weights = rng.random((rows, cols))
        if trial % 3 == 0:  # ties, and zeros as for tracks that never overlap an object
            weights = np.round(weights, 1) * (rng.random((rows, cols)) > 0.4)
        pairs = max_weight_assignment(weights)
        assert len(pairs) == min(rows, cols)
        assert len({r for r, _ in pairs}) == len(pairs) == len({c for _, c in pairs})
        assert sum(weights[r, c] for r, c in pairs) == pytest.approx(brute_force_best(weights), abs=1e-12)


def test_assignment_empty_and_bad_input():
    assert max_weight_assignment(np.zeros((0, 3))) == []
    assert max_weight_assignment(np.zeros((2, 0))) == []
    with pytest.raises(ValueError, match="2-D"):
        max_weight_assignment(np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        max_weight_assignment(np.array([[np.nan]]))


# ----------------------------------------------------------------------------- scoring with stubs
class ReplayTracker(PerfectTracker):
    """Tracks a prompt mask that is an object's true mask as that object (perfectly), and any other
    prompt mask as a blob that stays where it was given."""

    def __init__(self, labels_per_frame):
        super().__init__(labels_per_frame)
        self.stands_for = {}  # track id -> true object id, or the fixed mask

    def predict(self, obj_id):
        target = self.stands_for[obj_id]
        return target if isinstance(target, np.ndarray) else self.truth(target)

    def add_prompt(self, obj_id, points=None, labels=None, box=None, mask=None, clear_old_points=True):
        assert mask is not None and points is None and box is None
        frame_labels = self.labels[self.t]
        same = [i for i in np.unique(frame_labels) if i and np.array_equal(frame_labels == i, mask)]
        self.stands_for[obj_id] = int(same[0]) if same else mask.copy()
        self.obj_ids.append(obj_id)
        return self.result()


BLOB = (slice(0, 4), slice(0, 4))  # a corner the synthetic objects never reach


def stub_runner(sequence, discover_every):
    """Discovery that finds every true object not yet tracked, plus one spurious blob on frame 0."""
    frames = list(sequence)
    labels_of = {f.image.tobytes(): f.gt_labels for f in frames}

    def discover(image, tracked, limit):
        labels = labels_of[image.tobytes()]
        covered = np.zeros(labels.shape, bool) if tracked is None else tracked.any(axis=0)
        found = [labels == i for i in object_ids_in(labels, 255) if not (covered & (labels == i)).any()]
        if tracked is None:
            blob = np.zeros(labels.shape, bool)
            blob[BLOB] = True
            found.append(blob)
        return found

    return InProcessRunner(lambda: ReplayTracker([f.gt_labels for f in frames]), description="stub",
                           discoverer=discover, discover_every=discover_every)


@pytest.fixture
def synthetic_davis(tmp_path):
    # Objects 1 and 2 from frame 0, object 3 from frame 3; every frame annotated.
    seq = synthetic_sequence(num_frames=8, occluded=(), unannotated=(), name="shapes")
    assert not any((f.gt_labels[BLOB] != 0).any() for f in seq)
    davis.write_sequence(tmp_path / "davis", "shapes", seq, image_format="png")
    return tmp_path / "davis", seq


def test_first_frame_discovery_misses_the_late_object_and_reports_the_blob(tmp_path, synthetic_davis, capsys):
    root, seq = synthetic_davis
    out = tmp_path / "out"
    assert cli.main(["--davis", str(root), "--prompt", "auto", "--out", str(out), "--no-progress"],
                    runner=stub_runner(seq, 0)) == 0
    results = json.loads((out / "results.json").read_text())
    (sequence,) = results["sequences"]
    # As many tracks as objects, so DAVIS pads nothing: the late object is assigned the leftover
    # blob (track 3) and scored with its masks, though the blob never touches it.
    assert sequence["discovery"] == {"found": 2, "missed": 1, "spurious": 1, "tracks": 3,
                                     "matches": {"1": 1, "2": 2, "3": 3}}
    assert results["discovery"] == {"found": 2, "missed": 1, "spurious": 1, "tracks": 3}
    frames = list(seq)
    by_id = {o["obj_id"]: o for o in sequence["objects"]}
    assert by_id[1]["J_per_frame"] == [1.0] * len(frames) == by_id[2]["J_per_frame"]
    blob = np.zeros(frames[0].size, bool)
    blob[BLOB] = True
    expected_j = [region_similarity(blob, f.gt_labels == 3) for f in frames]
    expected_f = [boundary_f(blob, f.gt_labels == 3) for f in frames]
    assert by_id[3]["J_per_frame"] == pytest.approx(expected_j)
    assert by_id[3]["F_per_frame"] == pytest.approx(expected_f)
    assert results["summary"]["num_objects"] == 3
    assert "discovery: 2 of 3 object(s) found, 1 missed, 1 spurious track(s) of 3" in capsys.readouterr().out
    report = (out / "report.md").read_text()
    assert "Discovery: 2 found, 1 missed, 1 spurious" in report
    # The report's method text follows the protocol that scored the run: every annotated frame.
    assert "scored on every annotated frame, the first and the last included" in report
    assert "leaving out the sequence's last annotated frame" not in report
    assert all(len(o["frames"]) == len(frames) for o in sequence["objects"])


# ----------------------------------------------------------------------------- the assignment's weight
SIZE = 64
SQUARE_A = np.zeros((SIZE, SIZE), bool)
SQUARE_A[8:28, 8:28] = True
SQUARE_B = np.zeros((SIZE, SIZE), bool)
SQUARE_B[36:56, 36:56] = True


def outline(mask):
    """The mask's one-pixel outline: on its boundary (F high), a fifth of its area (J low)."""
    inside = mask.copy()
    inside[1:-1, 1:-1] = mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:] & mask[1:-1, 1:-1]
    return mask & ~inside


def checkerboard(mask):
    """Half the mask's pixels, every other one (J 0.5, but boundaries everywhere inside: F low)."""
    rows, cols = np.indices(mask.shape)
    return mask & ((rows + cols) % 2 == 0)


def two_object_scene(tracks):
    """Objects A (1) and B (2) on frame 0; on frame 1 only A (B hidden). Each track keeps its
    mask on both frames; all tracks start on frame 0."""
    labels_0 = SQUARE_A * 1 + SQUARE_B * 2
    labels_1 = SQUARE_A * 1
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    frames = [Frame(i, image, i, labels.astype(np.uint8)) for i, labels in enumerate((labels_0, labels_1))]
    sequence = Sequence.from_frames("scene", frames)
    predictions = [FramePrediction(f, dict(tracks), tuple(tracks) if f.index == 0 else (), 1.0, 0.0)
                   for f in frames]
    return sequence, frames, predictions


def best_assignment(weight, objects, tracks):
    """Brute force: the object -> track map with the largest total weight (as many tracks as objects)."""
    best = max(itertools.permutations(tracks, len(objects)),
               key=lambda chosen: sum(weight(o, t) for o, t in zip(objects, chosen)))
    return dict(zip(objects, best))


def test_tracks_are_assigned_by_mean_j_and_f_and_a_track_that_never_touches_its_object_scores_it():
    tracks = {1: checkerboard(SQUARE_A), 2: outline(SQUARE_A)}
    sequence, frames, predictions = two_object_scene(tracks)

    def mean_over_frames(metric, obj, track):
        return np.mean([metric(tracks[track], f.gt_labels == obj) for f in frames])

    def j_and_f(obj, track):
        return (mean_over_frames(region_similarity, obj, track) + mean_over_frames(boundary_f, obj, track)) / 2

    by_j = best_assignment(lambda o, t: mean_over_frames(region_similarity, o, t), [1, 2], [1, 2])
    by_j_and_f = best_assignment(j_and_f, [1, 2], [1, 2])
    assert by_j != by_j_and_f  # the scene separates the two weights
    result = score_auto(sequence, predictions)
    assert result.matches == by_j_and_f
    # B's track never overlaps it (mean J 0): it still scores B, as DAVIS does, J and F 0 on both
    # frames, where an empty prediction would have scored 1 on the frame B is hidden.
    (b_track,) = [t for o, t in by_j_and_f.items() if o == 2]
    b = next(o for o in result.objects if o.obj_id == 2)
    assert b.j == pytest.approx([region_similarity(tracks[b_track], f.gt_labels == 2) for f in frames])
    assert b.f == pytest.approx([boundary_f(tracks[b_track], f.gt_labels == 2) for f in frames])
    assert region_similarity(np.zeros((SIZE, SIZE), bool), frames[1].gt_labels == 2) == 1.0
    assert mean_over_frames(region_similarity, 2, b_track) == 0
    assert result.discovery.as_dict() == {"found": 1, "missed": 1, "spurious": 1, "tracks": 2}


def test_fewer_tracks_than_objects_are_padded_with_empty_masks():
    # One track, on B's outline. The padding is an empty mask, which scores 1 on the frame B is
    # hidden: DAVIS's weights give B the padding and A the track, though the track never touches A.
    tracks = {7: outline(SQUARE_B)}
    sequence, frames, predictions = two_object_scene(tracks)
    empty = np.zeros((SIZE, SIZE), bool)

    def j_and_f(obj, mask):
        return np.mean([region_similarity(mask, f.gt_labels == obj) + boundary_f(mask, f.gt_labels == obj)
                        for f in frames]) / 2

    options = {2: j_and_f(2, tracks[7]) + j_and_f(1, empty), 1: j_and_f(1, tracks[7]) + j_and_f(2, empty)}
    given_track = max(options, key=options.get)
    padded = 3 - given_track
    assert given_track == 1  # the case above: the padding outweighs the track on B
    result = score_auto(sequence, predictions)
    assert result.matches == {given_track: 7}
    by_id = {o.obj_id: o for o in result.objects}
    assert by_id[padded].j == pytest.approx([region_similarity(empty, f.gt_labels == padded) for f in frames])
    assert by_id[given_track].j == pytest.approx(
        [region_similarity(tracks[7], f.gt_labels == given_track) for f in frames])
    assert result.discovery.as_dict() == {"found": 0, "missed": 2, "spurious": 1, "tracks": 1}


def test_discover_every_finds_the_late_object(tmp_path, synthetic_davis):
    root, seq = synthetic_davis
    out = tmp_path / "out"
    assert cli.main(["--davis", str(root), "--prompt", "auto", "--discover-every", "3", "--out", str(out),
                     "--no-progress"], runner=stub_runner(seq, 3)) == 0
    (sequence,) = json.loads((out / "results.json").read_text())["sequences"]
    assert sequence["discovery"] == {"found": 3, "missed": 0, "spurious": 1, "tracks": 4,
                                     "matches": {"1": 1, "2": 2, "3": 4}}


def test_ground_truth_prompts_write_no_discovery(tmp_path, synthetic_davis):
    root, seq = synthetic_davis
    out = tmp_path / "out"
    runner = InProcessRunner(lambda: PerfectTracker([f.gt_labels for f in seq]))
    assert cli.main(["--davis", str(root), "--out", str(out), "--no-progress"], runner=runner) == 0
    results = json.loads((out / "results.json").read_text())
    assert "discovery" not in results and "discovery" not in results["sequences"][0]


def test_auto_refuses_live_and_negative_discover_every(tmp_path, synthetic_davis, capsys):
    root, _ = synthetic_davis
    assert cli.main(["--davis", str(root), "--prompt", "auto", "--live", "--out", str(tmp_path / "o")]) == 2
    assert "in-process only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--davis", str(root), "--prompt", "auto", "--discover-every", "-1"])
    assert "--discover-every must be >= 0" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the real model
def test_real_model_end_to_end_counts_are_consistent(tmp_path, capsys):
    config = ProceduralConfig(height=96, width=96, num_frames=6)
    video = generate_video(1000, config)
    write_davis(tmp_path / "set", {"gen": video})
    out = tmp_path / "out"
    assert cli.main(["--davis", str(tmp_path / "set"), "--prompt", "auto", "--discover-points-per-side", "4",
                     "--out", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    (sequence,) = results["sequences"]
    counts = sequence["discovery"]
    truth_ids = sorted({i for labels in video.labels for i in object_ids_in(labels, None)})
    assert counts["found"] + counts["missed"] == len(truth_ids)
    assert counts["found"] + counts["spurious"] == counts["tracks"]
    # Every object is assigned a track while there are enough; found ones overlap theirs.
    assert counts["found"] <= len(counts["matches"]) == min(len(truth_ids), counts["tracks"])
    assert len(set(counts["matches"].values())) == len(counts["matches"])
    assert sorted(o["obj_id"] for o in sequence["objects"]) == truth_ids
    assert results["discovery"] == {k: counts[k] for k in ("found", "missed", "spurious", "tracks")}
    assert f"discovery: {counts['found']} of {len(truth_ids)} object(s) found" in capsys.readouterr().out


def test_demo_prompt_auto_discovers_and_writes_the_gif(tmp_path, capsys):
    out = tmp_path / "demo.gif"
    assert demo.main(["--out", str(out), "--frames", "8", "--size", "96", "--seed", "5", "--prompt", "auto",
                      "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "discovered " in printed and "object(s) on frame 0" in printed
    with Image.open(out) as gif:
        assert gif.n_frames == 8
