"""sam2_model.davis_format: the DAVIS-format reader shared by training and evaluation."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2_model.davis_format import (
    DavisFormatError,
    list_davis_sequences,
    load_labels,
    load_rgb,
    read_davis_frames,
    read_label_png,
    write_label_png,
)

REPO = Path(__file__).resolve().parents[1]


def make_sequence(root: Path, name: str, stems, annotated, size=(6, 5)) -> None:
    """A sequence of ``size`` (width, height) PNG images named by ``stems``; ``annotated`` ones get labels."""
    (root / "JPEGImages" / name).mkdir(parents=True)
    (root / "Annotations" / name).mkdir(parents=True)
    for value, stem in enumerate(stems):
        Image.new("RGB", size, (value, 0, 0)).save(root / "JPEGImages" / name / f"{stem}.png")
        if stem in annotated:
            write_label_png(root / "Annotations" / name / f"{stem}.png", np.full(size[::-1], 1, np.uint8))


def test_label_round_trip(tmp_path):
    labels = np.array([[0, 1, 2], [3, 255, 0]], dtype=np.uint8)  # 255 = void
    write_label_png(tmp_path / "small.png", labels)
    with Image.open(tmp_path / "small.png") as png:
        assert png.mode == "P" and png.getpalette()[3:6] == [128, 0, 0]  # object 1 dark red
    back = read_label_png(tmp_path / "small.png")
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, labels)
    # Ids above 255 do not fit a palette: 16-bit grayscale instead.
    wide = np.array([[0, 300], [65535, 7]], dtype=np.int64)
    write_label_png(tmp_path / "wide.png", wide)
    np.testing.assert_array_equal(read_label_png(tmp_path / "wide.png"), wide)
    with pytest.raises(ValueError, match="2-D integer array"):
        write_label_png(tmp_path / "bad.png", np.zeros((2, 2), np.float32))


def test_frames_sorted_and_sparse_annotations(tmp_path):
    make_sequence(tmp_path, "cat", stems=["10", "2", "1"], annotated={"1", "10"})
    files = read_davis_frames(tmp_path, "cat")
    # Numeric order even without zero padding (10 after 2).
    assert [p.stem for p in files.image_paths] == ["1", "2", "10"]
    assert {i: p.name for i, p in files.annotations.items()} == {0: "1.png", 2: "10.png"}
    image = load_rgb(files.image_paths[2])
    assert image.shape == (5, 6, 3) and image.dtype == np.uint8 and image[0, 0, 0] == 0
    labels = load_labels(files.annotations[2], image.shape[:2])
    assert labels.shape == (5, 6) and set(np.unique(labels)) == {1}


def test_official_480p_nesting(tmp_path):
    make_sequence(tmp_path / "flat", "dog", stems=["00000", "00001"], annotated={"00000"})
    (tmp_path / "official" / "JPEGImages").mkdir(parents=True)
    (tmp_path / "official" / "Annotations").mkdir(parents=True)
    (tmp_path / "flat" / "JPEGImages").rename(tmp_path / "official" / "JPEGImages" / "480p")
    (tmp_path / "flat" / "Annotations").rename(tmp_path / "official" / "Annotations" / "480p")
    assert list_davis_sequences(tmp_path / "official") == ["dog"]
    files = read_davis_frames(tmp_path / "official", "dog")
    assert files.image_dir == tmp_path / "official" / "JPEGImages" / "480p" / "dog"
    assert len(files.image_paths) == 2 and list(files.annotations) == [0]


def test_garbage_files_name_the_file(tmp_path):
    (tmp_path / "00003.png").write_bytes(b"not a png")
    with pytest.raises(DavisFormatError, match=r"cannot read annotation .*00003\.png"):
        read_label_png(tmp_path / "00003.png")
    with pytest.raises(DavisFormatError, match=r"cannot read image .*00003\.png"):
        load_rgb(tmp_path / "00003.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "colour.png")
    with pytest.raises(DavisFormatError, match=r"colour\.png is a RGB image; annotations must be indexed"):
        read_label_png(tmp_path / "colour.png")
    assert issubclass(DavisFormatError, ValueError)


def test_annotation_of_the_wrong_size(tmp_path):
    write_label_png(tmp_path / "00000.png", np.zeros((3, 4), np.uint8))
    with pytest.raises(DavisFormatError, match=r"annotation .*00000\.png is 4x3 but its image is 6x5"):
        load_labels(tmp_path / "00000.png", (5, 6))
    with pytest.raises(DavisFormatError, match=r"is 4x3 but image a\.jpg is 6x5"):
        load_labels(tmp_path / "00000.png", (5, 6), "image a.jpg")


def test_folder_errors(tmp_path):
    with pytest.raises(DavisFormatError, match="is not a DAVIS-format folder: .*JPEGImages does not exist"):
        list_davis_sequences(tmp_path)
    make_sequence(tmp_path, "cat", stems=["00000"], annotated=set())
    with pytest.raises(DavisFormatError, match="'nope' not found .*sequences: cat"):
        read_davis_frames(tmp_path, "nope")
    with pytest.raises(DavisFormatError, match=r"'cat' has no ground truth: .*cat has no PNG files"):
        read_davis_frames(tmp_path, "cat")
    Image.new("L", (6, 5)).save(tmp_path / "Annotations" / "cat" / "00009.png")
    with pytest.raises(DavisFormatError, match=r"00009\.png has no image 00009\.\* in "):
        read_davis_frames(tmp_path, "cat")


def test_import_needs_neither_ros_nor_sam2_ros():
    # sam2_model must stay usable without ROS: training reads DAVIS folders through this module.
    code = (
        "import sys, sam2_model.davis_format\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'sam2_ros'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
