"""The node benchmark (python -m sam2_ros.benchmark): its scenes, its arithmetic and, slow, a tiny run."""

import numpy as np
import pytest

from sam2_ros.benchmark import CaseResult, generated_scene, main, parse_args


def test_generated_scene_prompts_each_object_by_its_box():
    scene = generated_scene(48, 64, 3, 4)
    assert len(scene.frames) == 4 and scene.frames[0].shape == (48, 64, 3) and len(scene.boxes) == 3
    for x0, y0, x1, y1 in scene.boxes:
        assert 0 <= x0 <= x1 < 64 and 0 <= y0 <= y1 < 48


def test_ratio_and_the_nodes_own_time_per_frame():
    result = CaseResult(64, 48, 1, track_ms=[10.0, 20.0, 30.0], latency_ms=[12.0, 26.0, 33.0], objects_bytes=1,
                        label_bytes=1, stages={"track": [9.0, 21.0, 30.0]})
    assert result.ratio == pytest.approx(26.0 / 20.0)
    assert result.own_ms == [3.0, 5.0, 3.0]  # latency minus the node's own track stage, frame by frame
    assert CaseResult(64, 48, 1, [1.0], [2.0], 1, 1).own_ms == []  # an old node: no stage timings


def test_bad_options_are_named():
    with pytest.raises(SystemExit):
        parse_args(["--sizes", "640by480"])
    with pytest.raises(SystemExit):
        parse_args(["--frames", "2"])


@pytest.mark.ros
def test_a_tiny_run_prints_one_row_per_case(capsys):
    assert main(["--sizes", "64x48", "--objects", "1,2", "--frames", "3"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 64x48")]
    assert len(rows) == 2
    cells = [c.strip() for c in rows[1].strip("|").split("|")]
    assert cells[1] == "2" and float(cells[2]) > 0 and float(cells[3]) > 0
    assert int(cells[7]) > 0 and int(cells[8]) > 48 * 64  # the label image: the frame's bytes plus a header
    assert np.isfinite(float(cells[6]))
