"""Every released model's official checkpoint layout loads strictly; bad files get clear errors."""

import json

import pytest
import torch
import yaml

import sam2_model
from sam2_model.checkpoint import CheckpointError, load_state_dict_strict
from sam2_model.config import config_from_yaml_document, released_config
from sam2_model.sam2 import SAM2Model

from parity_sessions import PARITY_DIR

LAYOUTS = json.loads((PARITY_DIR / "checkpoint_layouts.json").read_text())


def _random_state_dict(layout):
    generator = torch.Generator().manual_seed(0)
    return {key: torch.randn(spec["shape"], generator=generator).to(getattr(torch, spec["dtype"]))
            for key, spec in layout["state_dict"].items()}


def _meta_model(config):
    with torch.device("meta"):
        return SAM2Model(config)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_layout_keys_shapes_and_parameter_count(name):
    layout = LAYOUTS[name]
    model = _meta_model(released_config(name))
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    official = {k: spec["shape"] for k, spec in layout["state_dict"].items()}
    assert sorted(set(ours) ^ set(official)) == []
    assert ours == official
    # The official count is of parameters (the prompt encoder's Gaussian matrix is a buffer).
    assert sum(p.numel() for p in model.parameters()) == layout["num_parameters"]


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_released_preset_equals_official_yaml(name):
    from_yaml = config_from_yaml_document(yaml.safe_load(LAYOUTS[name]["config_yaml"]))
    preset = released_config(name)
    # The official YAML omits the video predictor's post-processing, which the builder adds.
    for key in ("dynamic_multimask_via_stability", "binarize_mask_from_pts_for_mem_enc", "fill_hole_area"):
        setattr(from_yaml, key, getattr(preset, key))
    from_yaml.trunk = {k: list(v) if isinstance(v, tuple) else v for k, v in from_yaml.trunk.items()}
    assert from_yaml == preset


@pytest.mark.parametrize("name", ["sam2.1_hiera_tiny", "sam2_hiera_tiny"])
def test_random_checkpoint_with_official_layout_loads_strictly(tmp_path, name):
    path = tmp_path / f"{name}.pt"
    torch.save({"model": _random_state_dict(LAYOUTS[name])}, path)
    model = sam2_model.build_model(name, path)
    assert model.image_size == 1024
    reloaded = torch.load(path, weights_only=True)["model"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, reloaded[key]), key


def test_version_mismatch_names_keys_and_cause():
    state = _random_state_dict(LAYOUTS["sam2.1_hiera_tiny"])
    model = _meta_model(released_config("sam2_hiera_tiny"))
    with pytest.raises(CheckpointError) as error:
        load_state_dict_strict(model, state)
    message = str(error.value)
    assert "no_obj_embed_spatial" in message and "SAM 2.1" in message and "sam2.1_hiera_*" in message


def test_size_mismatch_is_explained():
    state = _random_state_dict(LAYOUTS["sam2.1_hiera_small"])
    model = _meta_model(released_config("sam2.1_hiera_tiny"))
    with pytest.raises(CheckpointError, match="backbone size"):
        load_state_dict_strict(model, state)


@pytest.mark.parametrize("content", [b"", b"this is not a checkpoint", b"PK\x03\x04truncated zip"])
def test_garbage_files_get_clear_errors(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.pt"):
        sam2_model.build_model("sam2.1_hiera_tiny", path)


class _NotATensor:
    pass


def test_unpicklable_files_are_named_without_torchs_unsafe_advice(tmp_path):
    """torch's UnpicklingError suggests weights_only=False (running whatever the file holds)."""
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"garbage")
    with pytest.raises(CheckpointError) as error:
        sam2_model.build_model("sam2.1_hiera_tiny", junk)
    assert str(error.value) == f"{junk} is not a readable PyTorch checkpoint (truncated or another kind of file?)"
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": _NotATensor()}, foreign)
    with pytest.raises(CheckpointError, match="holds Python objects .*_NotATensor.*not loaded") as error:
        sam2_model.build_model("sam2.1_hiera_tiny", foreign)
    assert "weights_only" not in str(error.value)


def test_truncated_real_checkpoint(tmp_path):
    path = tmp_path / "cut.pt"
    torch.save({"model": {"w": torch.zeros(1000)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt"):
        sam2_model.build_model("sam2.1_hiera_tiny", path)


def test_checkpoint_without_model_key(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="'model'"):
        sam2_model.build_model("sam2.1_hiera_tiny", path)


def test_missing_checkpoint_and_unknown_config(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        sam2_model.build_model("sam2.1_hiera_tiny", tmp_path / "nope.pt")
    with pytest.raises(sam2_model.ConfigError, match="released models are"):
        sam2_model.build_model("sam3_hiera_giant")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("model:\n  image_size: 256\n  not_a_real_option: 3\n")
    with pytest.raises(sam2_model.ConfigError, match="not_a_real_option"):
        sam2_model.build_model(bad_yaml)
