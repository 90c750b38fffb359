"""camera_info.json of a DAVIS Depth/ folder: every bad field is named (sam2_model.depth_format)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sam2_model.davis_format import DavisFormatError
from sam2_model.depth_format import CAMERA_FILE, read_depth_folder, save_depth_png
from sam2_model.object_3d import PinholeIntrinsics

GOOD = {"fx": 80.0, "fy": 80.0, "cx": 39.5, "cy": 31.5, "width": 80, "height": 64}


def _folder(tmp_path, camera_text: str):
    save_depth_png(tmp_path / "00000.png", np.ones((64, 80), np.float32))
    (tmp_path / CAMERA_FILE).write_text(camera_text)
    return tmp_path


def test_a_good_camera_is_read_and_whole_floats_are_sizes(tmp_path):
    files = read_depth_folder(_folder(tmp_path, json.dumps({**GOOD, "width": 80.0})))
    assert files.intrinsics == PinholeIntrinsics(80.0, 80.0, 39.5, 31.5, 80, 64)
    assert isinstance(files.intrinsics.width, int)


@pytest.mark.parametrize("text, words", [
    # json reads 1e400 as infinity; int() of it raised an uncaught OverflowError.
    (json.dumps(GOOD).replace('"width": 80', '"width": 1e400'), "width must be a finite number, got inf"),
    # 640.7 used to be truncated to 640 without a word.
    (json.dumps({**GOOD, "height": 64.7}), "height must be a whole number of pixels, got 64.7"),
    (json.dumps({**GOOD, "fx": "80"}), "fx must be a finite number, got '80'"),
    (json.dumps({**GOOD, "cy": True}), "cy must be a finite number, got True"),
    (json.dumps({**GOOD, "cx": float("nan")}), "cx must be a finite number, got nan"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "fy"}), "fy is missing"),
    (json.dumps([1, 2]), "needs an object"),
    ("{not json", "not JSON"),
    (json.dumps({**GOOD, "width": 0}), "image size 0x64 must be positive"),
])
def test_bad_camera_fields_are_named(tmp_path, text, words):
    with pytest.raises(DavisFormatError) as error:
        read_depth_folder(_folder(tmp_path, text))
    assert str(error.value).startswith(str(tmp_path / CAMERA_FILE)) and words in str(error.value)
