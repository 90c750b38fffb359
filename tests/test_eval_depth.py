"""Depth in the evaluation tools: the procedural generator's layered depth, DAVIS Depth/ folders,
sam2-make-bag's depth and camera_info topics, and sam2-eval's 3D position error."""

import json

import numpy as np
import pytest

from sam2_model.depth_format import procedural_intrinsics, read_depth_folder, sequence_depth_dir
from sam2_model.object_3d import PinholeIntrinsics
from sam2_model.train.procedural import (BACKGROUND_DEPTH_M, OCCLUDER_DEPTH_M, ProceduralConfig, generate_video,
                                         shape_layer_depth, write_davis)
from sam2_ros.evaluation.bag_io import DEFAULT_CAMERA_INFO_TOPIC, DEFAULT_DEPTH_TOPIC, list_topics, read_bag
from sam2_ros.evaluation.cli import main as eval_main
from sam2_ros.evaluation.davis import read_sequence
from sam2_ros.evaluation.errors import EvaluationInputError
from sam2_ros.evaluation.make_bag import main as make_bag_main
from sam2_ros.evaluation.position_error import position_error
from sam2_ros.evaluation.sequence import Frame

from eval_stubs import FlawedTracker, PerfectTracker, StubRunner

CONFIG = ProceduralConfig(height=64, width=80, num_frames=8, min_targets=3, max_targets=3, max_distractors=1)
SEED = 7


@pytest.fixture(scope="module")
def video():
    return generate_video(SEED, CONFIG, depth=True)


@pytest.fixture(scope="module")
def davis_root(video, tmp_path_factory):
    root = tmp_path_factory.mktemp("davis_depth")
    write_davis(root, {"gen": video})
    return root


def test_layered_depth_is_painted_with_the_picture(video):
    plain = generate_video(SEED, CONFIG)
    np.testing.assert_array_equal(plain.frames, video.frames)   # depth changes nothing else
    np.testing.assert_array_equal(plain.labels, video.labels)
    assert plain.depth is None and video.depth.shape == video.labels.shape
    layers = {round(shape_layer_depth(k, n), 6) for n in range(1, 8) for k in range(n)}
    allowed = layers | {BACKGROUND_DEPTH_M, OCCLUDER_DEPTH_M}
    assert {round(float(v), 6) for v in np.unique(video.depth)} <= allowed
    for obj_id in range(1, video.num_targets + 1):
        values = video.depth[video.labels == obj_id]
        assert values.size and np.unique(values).size == 1   # a flat cut-out: one depth per target
        assert float(values[0]) in layers
    # Shapes are painted back to front, and nearer layers are nearer.
    assert shape_layer_depth(0, 3) > shape_layer_depth(1, 3) > shape_layer_depth(2, 3) > OCCLUDER_DEPTH_M


def test_davis_depth_folder_round_trip(video, davis_root):
    files = read_depth_folder(sequence_depth_dir(davis_root, "gen"))
    assert files.intrinsics == procedural_intrinsics(64, 80) == PinholeIntrinsics(80.0, 80.0, 39.5, 31.5, 80, 64)
    sequence = read_sequence(davis_root, "gen")
    assert sequence.intrinsics == files.intrinsics
    for frame, depth in zip(sequence, video.depth, strict=True):
        np.testing.assert_allclose(frame.depth_m, depth, atol=0.0005)   # millimetre PNGs


def test_position_error_of_a_shifted_mask_on_a_plane():
    camera = PinholeIntrinsics(500.0, 500.0, 79.5, 59.5, 160, 120)
    depth = np.full((120, 160), 1.5, np.float32)
    truth = np.zeros((120, 160), bool)
    truth[30:70, 40:100] = True
    shifted = np.roll(truth, 6, axis=1)
    # Every point moves 6 px right at 1.5 m: the median moves 6 * 1.5 / 500 m.
    assert position_error(shifted, truth, depth, camera) == pytest.approx(6 * 1.5 / 500, abs=1e-6)
    assert position_error(truth, truth, depth, camera) == 0.0
    assert position_error(np.zeros_like(truth), truth, depth, camera) is None


def test_make_bag_carries_depth_and_eval_reports_the_position_error(video, davis_root, tmp_path, capsys):
    bag = tmp_path / "bag"
    assert make_bag_main(["--davis", str(davis_root), "--sequence", "gen", "--out", str(bag), "--no-progress"]) == 0
    assert "8 depth images on /camera/aligned_depth_to_color/image_raw" in capsys.readouterr().out
    topics = list_topics(bag)
    assert topics[DEFAULT_DEPTH_TOPIC] == "sensor_msgs/msg/Image"
    assert topics[DEFAULT_CAMERA_INFO_TOPIC] == "sensor_msgs/msg/CameraInfo"
    read = read_bag(bag, depth_topic=DEFAULT_DEPTH_TOPIC, camera_info_topic=DEFAULT_CAMERA_INFO_TOPIC)
    assert read.intrinsics == procedural_intrinsics(64, 80)
    for frame, depth in zip(read, video.depth, strict=True):
        np.testing.assert_allclose(frame.depth_m, depth, atol=0.0005)

    # A perfect tracker: no error. The bag's depth is found without naming its topic.
    out = tmp_path / "perfect"
    assert eval_main(["--bag", str(bag), "--out", str(out), "--no-progress"], runner=StubRunner(PerfectTracker)) == 0
    assert "3D position error: median 0.0 cm" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    objects = results["sequences"][0]["objects"]
    assert all(o["position_error_m"]["max"] == 0.0 for o in objects if o["position_error_m"])
    assert results["summary"]["position_error"]["num_frames"] > 0

    # Object 1 two pixels to the right: on its flat layer every eroded point moves 2 px, so the
    # error is 2 z / fx wherever the shift does not run into the frame's right edge.
    out = tmp_path / "flawed"
    assert eval_main(["--bag", str(bag), "--out", str(out), "--no-progress"], runner=StubRunner(FlawedTracker)) == 0
    first = next(o for o in json.loads((out / "results.json").read_text())["sequences"][0]["objects"]
                 if o["obj_id"] == 1)
    layer_z = float(video.depth[video.labels == 1][0])
    checked = 0
    for frame, error in zip(first["position_error_frames"], first["position_error_per_frame_m"], strict=True):
        columns = np.nonzero((video.labels[frame] == 1).any(axis=0))[0]
        if columns.max() < CONFIG.width - 4:
            assert error == pytest.approx(2 * layer_z / 80.0, abs=1e-4)
            checked += 1
    assert checked > 0
    assert "3D position error" in (out / "report.md").read_text()


def test_depth_topic_without_camera_info_is_refused(davis_root, tmp_path):
    bag = tmp_path / "bag"
    assert make_bag_main(["--davis", str(davis_root), "--sequence", "gen", "--out", str(bag), "--no-progress"]) == 0
    with pytest.raises(EvaluationInputError, match="camera_info topic '/missing' not in"):
        read_bag(bag, depth_topic=DEFAULT_DEPTH_TOPIC, camera_info_topic="/missing")
    with pytest.raises(EvaluationInputError, match="no depth topic '/nodepth'"):
        read_bag(bag, depth_topic="/nodepth", camera_info_topic=DEFAULT_CAMERA_INFO_TOPIC)


def test_make_bag_from_a_video_with_a_depth_folder(video, tmp_path, capsys):
    from sam2_model.depth_format import write_depth_sequence
    from sam2_ros.evaluation import davis

    from test_eval_bag import write_video

    frames = [Frame(index=i, image=image, stamp_ns=0, gt_labels=labels)
              for i, (image, labels) in enumerate(zip(video.frames, video.labels))]
    write_video(tmp_path / "clip.mkv", frames)
    (tmp_path / "masks").mkdir()
    for frame in frames:
        davis.write_label_png(tmp_path / "masks" / f"{frame.index:05d}.png", frame.gt_labels)
    write_depth_sequence(tmp_path, "clip", enumerate(video.depth), procedural_intrinsics(64, 80))
    bag = tmp_path / "bag"
    assert make_bag_main(["--video", str(tmp_path / "clip.mkv"), "--masks", str(tmp_path / "masks"),
                          "--depth", str(tmp_path / "Depth" / "clip"), "--out", str(bag), "--no-progress"]) == 0
    assert "8 depth images" in capsys.readouterr().out
    read = read_bag(bag, depth_topic=DEFAULT_DEPTH_TOPIC, camera_info_topic=DEFAULT_CAMERA_INFO_TOPIC)
    assert read.intrinsics == procedural_intrinsics(64, 80)
    for frame, depth in zip(read, video.depth, strict=True):
        np.testing.assert_allclose(frame.depth_m, depth, atol=0.0005)
    # A depth folder without its camera is refused, naming what is missing.
    (tmp_path / "Depth" / "clip" / "camera_info.json").unlink()
    assert make_bag_main(["--video", str(tmp_path / "clip.mkv"), "--masks", str(tmp_path / "masks"),
                          "--depth", str(tmp_path / "Depth" / "clip"), "--out", str(tmp_path / "bag2"),
                          "--no-progress"]) == 2
    assert "no camera_info.json" in capsys.readouterr().err
