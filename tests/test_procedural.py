"""Procedural training videos: shapes, determinism, ground-truth consistency, events, DAVIS output."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sam2_model.train import procedural as P
from sam2_model.train.procedural import (
    MIN_VISIBLE_PIXELS,
    ProceduralConfig,
    ProceduralVideo,
    generate_video,
    generate_with_events,
    main,
    write_davis,
)

# Small and quick, but long enough for hide-and-return events (12 frames are too short for one).
SMALL = ProceduralConfig(height=64, width=80, num_frames=20)


def _scene_and_rendering(seed: int, config: ProceduralConfig = ProceduralConfig()):
    scene = P._sample_scene(np.random.default_rng(seed), config)
    return scene, P._render(scene, keep_layers=True)


def _has_return_event(video: ProceduralVideo, min_hidden: int) -> bool:
    for obj_id in range(1, video.num_targets + 1):
        visible = video.visible(obj_id)
        counts = video.pixel_counts(obj_id)
        for first, last in video.hidden_spans(obj_id):
            if last - first + 1 >= min_hidden and not visible[first:last + 1].any() and visible[:first].any() \
                    and (counts[last + 1:] >= MIN_VISIBLE_PIXELS).any():
                return True
    return False


@pytest.mark.parametrize("config", [ProceduralConfig(), SMALL])
def test_shapes_and_dtypes(config):
    video = generate_video(3, config)
    t, h, w = config.num_frames, config.height, config.width
    assert video.frames.shape == (t, h, w, 3) and video.frames.dtype == np.uint8
    assert video.labels.shape == (t, h, w) and video.labels.dtype == np.uint8
    assert config.min_targets <= video.num_targets <= config.max_targets
    assert video.visible(1).shape == (t,) and video.visible(1).dtype == bool
    assert set(np.unique(video.labels)) <= set(range(video.num_targets + 1))


def test_deterministic_per_seed_and_different_across_seeds():
    a, b, c = generate_video(11), generate_video(11), generate_video(12)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.labels, b.labels)
    assert a.num_targets == b.num_targets
    assert not np.array_equal(a.frames, c.frames)
    e1, e2 = generate_with_events(5), generate_with_events(5)
    assert e1.seed == e2.seed and np.array_equal(e1.frames, e2.frames) and np.array_equal(e1.labels, e2.labels)
    # The accepted seed reproduces the video on its own.
    again = generate_video(e1.seed)
    assert np.array_equal(again.frames, e1.frames) and np.array_equal(again.labels, e1.labels)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_event_videos_have_all_targets_on_frame0_and_a_hide_and_return(seed):
    video = generate_with_events(seed)
    ids = set(np.unique(video.labels).tolist())
    assert ids <= set(range(video.num_targets + 1))
    frame0 = set(np.unique(video.labels[0]).tolist()) - {0}
    assert frame0 == set(range(1, video.num_targets + 1))
    for obj_id in range(1, video.num_targets + 1):
        assert video.pixel_counts(obj_id)[0] >= MIN_VISIBLE_PIXELS
    assert _has_return_event(video, 3)


def test_longer_hides_on_request():
    video = generate_with_events(7, min_hidden_frames=5)
    assert _has_return_event(video, 5)


def test_exits_alone_make_events():
    """Without occluders, the hide-and-return event has to come from leaving the frame."""
    config = ProceduralConfig(occluder_probability=0.0, exit_probability=1.0, max_distractors=0)
    video = generate_with_events(21, config)
    scene = P._sample_scene(np.random.default_rng(video.seed), config)
    assert not scene.occluders
    assert _has_return_event(video, 3)


def test_no_events_possible_raises():
    config = ProceduralConfig(occluder_probability=0.0, exit_probability=0.0, max_distractors=0, num_frames=6)
    with pytest.raises(RuntimeError):
        generate_with_events(0, config, max_tries=3)


def test_distractor_count_follows_the_setting_and_bad_settings_are_named():
    def distractors(seed: int, most: int) -> int:
        scene = P._sample_scene(np.random.default_rng(seed), dataclasses.replace(SMALL, max_distractors=most))
        return sum(obj.obj_id == 0 for obj in scene.objects)

    assert all(distractors(seed, 0) == 0 for seed in range(10))
    many = [distractors(seed, 5) for seed in range(20)]
    assert max(many) <= 5 and max(many) > ProceduralConfig().max_distractors
    with pytest.raises(ValueError, match="max_distractors must be >= 0"):
        generate_video(0, dataclasses.replace(SMALL, max_distractors=-1))
    with pytest.raises(ValueError, match="min_targets <= max_targets"):
        generate_video(0, dataclasses.replace(SMALL, min_targets=3, max_targets=2))


def test_labels_follow_depth_order_and_occluders():
    """The label map is the painter's algorithm over the objects' own masks: the front-most object
    covering a pixel names it (0 for a distractor), and pixels under a bar are 0."""
    checked_overlap = False
    for seed in range(6):
        scene, rendering = _scene_and_rendering(seed, SMALL)
        expected = np.zeros_like(rendering.labels)
        covered = np.zeros(rendering.labels.shape, dtype=int)
        for obj in scene.objects:
            alone = dataclasses.replace(scene, objects=[dataclasses.replace(obj, obj_id=1)], occluders=[])
            mask = P._render(alone).labels == 1
            expected[mask] = obj.obj_id
            covered += mask
        expected[rendering.occluded] = 0
        assert np.array_equal(rendering.labels, expected)
        checked_overlap |= bool((covered >= 2).any())
    assert checked_overlap


def test_occluded_pixels_are_unlabelled_and_bars_hide_targets():
    with_bars = 0
    for seed in range(10):
        scene, rendering = _scene_and_rendering(seed)
        assert not (rendering.occluded & (rendering.labels > 0)).any()
        with_bars += bool(scene.occluders)
    assert with_bars >= 3  # occluder_probability 0.6
    # Bars alone (no exits) hide a target completely and let it out again in many videos.
    config = ProceduralConfig(occluder_probability=1.0, exit_probability=0.0, max_distractors=0)
    hides = sum(
        any(last - first + 1 >= 3 and last + 1 < config.num_frames for first, last in video.hidden_spans(obj_id))
        for video in (generate_video(seed, config) for seed in range(12))
        for obj_id in range(1, video.num_targets + 1)
    )
    assert hides >= 4


def test_hidden_spans():
    assert P._zero_runs(np.array([0, 5, 0, 0, 7, 0])) == [(2, 3), (5, 5)]
    assert P._zero_runs(np.array([0, 0])) == []


def test_labelled_pixels_show_the_object_not_the_background():
    for seed in range(5):
        _, rendering = _scene_and_rendering(seed)
        labelled = rendering.labels > 0
        difference = np.abs(rendering.frames.astype(np.float32) - rendering.background).sum(-1)
        assert difference[labelled].mean() > 40.0
        # Where nothing is drawn the frame is the background plus a little noise.
        free = ~labelled & ~rendering.occluded
        free &= difference < 30.0  # unlabelled distractors are also drawn; skip them
        assert free.mean() > 0.3


def test_backgrounds_are_textured_and_differ_between_videos():
    backgrounds = []
    for seed in range(4):
        _, rendering = _scene_and_rendering(seed)
        per_frame_std = rendering.background.reshape(rendering.background.shape[0], -1, 3).std(axis=1)
        assert per_frame_std.mean() > 10.0
        backgrounds.append(rendering.background[0])
    assert np.abs(backgrounds[0] - backgrounds[1]).mean() > 10.0


def test_objects_move_within_speed_limit():
    config = ProceduralConfig()
    scene = P._sample_scene(np.random.default_rng(9), config)
    v_max = config.max_speed * min(config.height, config.width)
    for obj in scene.objects:
        steps = np.hypot(np.diff(obj.track.cx), np.diff(obj.track.cy))
        assert steps.max() <= v_max + 1e-6
        assert steps.sum() > 0.0
        assert np.all(np.abs(obj.track.sx - 1.0) <= P.MAX_DEFORM + 1e-9)


def test_generation_is_fast():
    generate_video(0)  # warm-up
    start = time.perf_counter()
    runs = 5
    for seed in range(runs):
        generate_video(100 + seed)
    elapsed = (time.perf_counter() - start) / runs
    print(f"procedural video 24x128x128: {elapsed * 1000:.1f} ms")
    assert elapsed < 0.5


def test_write_davis_round_trip(tmp_path):
    from sam2_ros.evaluation.davis import list_sequences, read_sequence

    videos = {"gen_a": generate_with_events(1, SMALL), "gen_b": generate_video(2, SMALL)}
    write_davis(tmp_path, videos)
    assert list_sequences(tmp_path) == ["gen_a", "gen_b"]
    for name, video in videos.items():
        sequence = read_sequence(tmp_path, name)
        frames = list(sequence)
        assert len(frames) == SMALL.num_frames
        for frame, image, labels in zip(frames, video.frames, video.labels):
            assert np.array_equal(frame.gt_labels, labels)
            assert np.array_equal(frame.image, image)  # png is lossless
    with pytest.raises(ValueError):
        write_davis(tmp_path, videos, image_format="bmp")


def test_write_davis_annotations_are_davis_palette_pngs(tmp_path):
    from PIL import Image

    from sam2_model.davis_format import davis_palette

    write_davis(tmp_path, {"seq": generate_video(4, SMALL)}, image_format="jpg")
    assert (tmp_path / "JPEGImages" / "seq" / "00000.jpg").is_file()
    with Image.open(tmp_path / "Annotations" / "seq" / "00000.png") as annotation:
        assert annotation.mode == "P"
        assert annotation.getpalette()[:30] == davis_palette()[:30]


def test_cli_writes_sequences(tmp_path, capsys):
    from sam2_ros.evaluation.davis import list_sequences

    assert main(["--out", str(tmp_path), "--sequences", "3", "--seed", "40", "--frames", "20", "--size", "64"]) == 0
    assert list_sequences(tmp_path) == ["gen_0000", "gen_0001", "gen_0002"]
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("gen_0000") and "targets=" in lines[0]
    assert len(list((tmp_path / "Annotations" / "gen_0001").glob("*.png"))) == 20


def test_module_runs_as_script(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sam2_model.train.procedural", "--out", str(tmp_path), "--sequences", "1",
         "--frames", "16", "--size", "64"],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "JPEGImages" / "gen_0000" / "00015.png").is_file()


@pytest.mark.parametrize("seed", [21, 22, 23, 24])
def test_exposure_step_relights_the_same_video(seed):
    """An exposure step changes the brightness only: the same scene and labels, frames identical
    until the step starts, and after its ramp the picture scaled by the factor or its inverse."""
    step = 1.6
    plain = generate_with_events(seed, SMALL)
    relit = generate_with_events(seed, dataclasses.replace(SMALL, exposure_step=step))
    assert relit.seed == plain.seed and np.array_equal(relit.labels, plain.labels)
    frames = SMALL.num_frames
    assert np.array_equal(relit.frames[:frames // 4 + 1], plain.frames[:frames // 4 + 1])
    # Pixels clear of clipping and noise on both sides: their ratio is the factor (noise of a few units).
    before, after = plain.frames[-1].astype(float), relit.frames[-1].astype(float)
    clear = (before > 40) & (before < 150)
    ratio = float(np.median(after[clear] / before[clear]))
    assert min(abs(ratio - step), abs(ratio - 1 / step)) < 0.05, ratio


def test_exposure_step_below_one_is_named():
    with pytest.raises(ValueError, match="exposure_step"):
        ProceduralConfig(exposure_step=0.5).check()
    with pytest.raises(SystemExit):
        main(["--out", "unused", "--exposure-step", "0.5"])


def test_cli_scene_options_reach_the_config(tmp_path, capsys, monkeypatch):
    """--max-targets, --max-distractors, --max-speed and --camera-turn make crowded, fast or turning
    sets; their defaults are the config's, and a setting no video can be made from is named."""
    seen = []
    real = P.generate_with_events
    monkeypatch.setattr(P, "generate_with_events", lambda seed, config, **kw: seen.append(config) or real(seed, config, **kw))
    assert main(["--out", str(tmp_path / "plain"), "--sequences", "1", "--frames", "20", "--size", "64"]) == 0
    defaults = ProceduralConfig()
    assert (seen[0].max_targets, seen[0].max_distractors, seen[0].max_speed) == (
        defaults.max_targets, defaults.max_distractors, defaults.max_speed)
    assert main(["--out", str(tmp_path / "crowd"), "--sequences", "2", "--frames", "20", "--size", "64",
                 "--max-targets", "5", "--max-distractors", "4", "--max-speed", "0.1", "--camera-turn", "0.2"]) == 0
    assert (seen[-1].max_targets, seen[-1].max_distractors, seen[-1].max_speed, seen[-1].camera_turn) == (5, 4, 0.1, 0.2)
    assert seen[0].camera_turn == defaults.camera_turn
    counts = [int(line.split("targets=")[1].split()[0]) for line in capsys.readouterr().out.strip().splitlines()]
    assert len(counts) == 3 and all(1 <= count <= 5 for count in counts)
    for bad, message in ((["--max-speed", "0"], "max_speed"), (["--max-targets", "0"], "min_targets <= max_targets"),
                         (["--max-distractors", "-1"], "max_distractors")):
        with pytest.raises(SystemExit):
            main(["--out", "unused", *bad])
        assert message in capsys.readouterr().err


def test_fast_setting_moves_objects_farther():
    slow = P._sample_scene(np.random.default_rng(5), ProceduralConfig())
    fast = P._sample_scene(np.random.default_rng(5), ProceduralConfig(max_speed=0.1))
    steps = lambda scene: max(np.hypot(np.diff(o.track.cx), np.diff(o.track.cy)).max() for o in scene.objects)
    assert steps(slow) <= 0.05 * 128 + 1e-6 < steps(fast) <= 0.1 * 128 + 1e-6


@pytest.mark.parametrize("seed", [3, 8, 13])
def test_camera_turn_moves_the_whole_world_with_the_view(seed):
    """A camera turn keeps every draw of the scene: before it the video is the same; after it the
    background, the bars and the objects are the unturned ones seen from the moved view."""
    config = ProceduralConfig(num_frames=24, occluder_probability=1.0)
    turned_config = dataclasses.replace(config, camera_turn=0.3)
    plain_scene, plain = _scene_and_rendering(seed, config)
    turned_scene, turned = _scene_and_rendering(seed, turned_config)
    camera = turned_scene.camera
    moving = np.flatnonzero(np.abs(camera).sum(axis=1))
    assert plain_scene.camera is None and len(moving) > 0
    start, last = moving[0], config.num_frames - 1
    assert config.num_frames // 4 <= start <= config.num_frames // 2
    assert np.array_equal(turned.frames[:start], plain.frames[:start])
    assert np.array_equal(turned.labels[:start], plain.labels[:start])
    assert np.array_equal(camera[last], camera[start + P.CAMERA_TURN_FRAMES])  # it stays where it went
    assert abs(np.hypot(*camera[last]) - 0.3 * 128) <= 1.0
    dy, dx = (int(v) for v in camera[last])

    def seen_from_view(image):  # the unturned frame's pixels that the moved view still shows, and where
        h, w = image.shape[:2]
        rows, cols = slice(max(0, dy), min(h, h + dy)), slice(max(0, dx), min(w, w + dx))
        view_rows, view_cols = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
        return image[rows, cols], (view_rows, view_cols)

    world, view = seen_from_view(plain.background[last])
    assert np.allclose(turned.background[last][view], world)
    world, view = seen_from_view(plain.occluded[last])
    assert plain.occluded[last].any() and np.array_equal(turned.occluded[last][view], world)
    for before, after in zip(plain_scene.objects, turned_scene.objects):
        assert np.allclose(after.track.cx, before.track.cx - camera[:, 1])
        assert np.allclose(after.track.cy, before.track.cy - camera[:, 0])


def test_camera_turn_option_and_bad_values():
    with pytest.raises(ValueError, match="camera_turn"):
        ProceduralConfig(camera_turn=1.5).check()
    with pytest.raises(SystemExit):
        main(["--out", "unused", "--camera-turn", "-0.1"])
    video = generate_with_events(4, dataclasses.replace(SMALL, camera_turn=0.25))
    assert video.frames.shape == (SMALL.num_frames, SMALL.height, SMALL.width, 3)
