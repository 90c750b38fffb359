"""The node in a real graph: where its tracking options come from, and a box prompt with defaults.

Precedence of a tracking option: the model's YAML < the parameters file < an explicit -p.
"""

from pathlib import Path

import pytest
import yaml

from sam2_ros.msg import Prompt

from node_harness import model_files, prompt_msg, start_node  # noqa: F401 - fixture

pytestmark = pytest.mark.ros

BOX = [128.0, 133.12, 212.48, 199.68]   # on the second object of the parity session
POINT = [76.8, 89.6]                    # on the first


@pytest.fixture(scope="module")
def running(model_files, tmp_path_factory):  # noqa: F811
    folder = Path(tmp_path_factory.mktemp("options"))
    document = yaml.safe_load(model_files.config.read_text())
    document["model"].update(fill_hole_area=0, non_overlap_masks=True)
    model_yaml = folder / "model.yaml"
    model_yaml.write_text(yaml.safe_dump(document))
    params_file = folder / "params.yaml"
    params_file.write_text(yaml.safe_dump(
        {"/**": {"ros__parameters": {"fill_hole_area": 3, "max_cond_frames": 5}}}))
    node = start_node(folder, {"model": str(model_yaml), "checkpoint": str(model_files.checkpoint), "device": "cpu"},
                      extra_args=("--params-file", str(params_file), "-p", "fill_hole_area:=2"))
    yield node
    node.close()


def test_tracking_options_layer_model_yaml_params_file_and_explicit(running):
    log = running.process.log()
    # non_overlap_masks from the model YAML, max_cond_frames from the params file, fill_hole_area
    # from the command line (over the params file's 3 and the YAML's 0); the rest: defaults.
    assert ("tracking TrackerOptions(fill_hole_area=2, non_overlap_masks=True, corrections_as_cond=False, "
            "clear_non_cond_mem_around_input=False, max_cond_frames=5, max_objects=64, autocast=None, "
            "frame_resize='pillow', memory_policy='official')") in log, log


def test_a_box_for_a_new_object_with_every_other_field_default_is_tracked(running, model_files):  # noqa: F811
    client = running.client
    frames = model_files.frames()
    client.track(frames[0], 0)
    response = client.add_object(Prompt(use_box=True, box=BOX))
    assert response.success, response.message
    new_id = response.object_id
    # Also with clear_old_points false: a new object has no clicks to keep.
    second = client.add_object(Prompt(use_box=True, box=[20.0, 30.0, 90.0, 110.0], clear_old_points=False))
    assert second.success, second.message
    out = client.track(frames[1], 1)
    assert {new_id, second.object_id} <= set(out.ids())
    # An object with clicks on the current frame still needs a box first (official rule).
    assert client.add_object(prompt_msg(object_id=new_id, points=[POINT], labels=[1])).success
    refused = client.add_object(Prompt(object_id=new_id, use_box=True, box=BOX, clear_old_points=False))
    assert not refused.success and "a box must come first" in refused.message
