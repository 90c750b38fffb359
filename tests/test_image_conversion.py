"""sensor_msgs <-> numpy conversion (no ROS graph): encodings, row padding, compression, labels."""

import io

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from sam2_ros.image_conversion import (ImageConversionError, SUPPORTED_ENCODINGS, compressed_to_rgb, decode_raw,
                                       image_to_labels, image_to_mask, image_to_rgb, labels_to_image,
                                       mask_to_image, rgb_to_image)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(7, 5, 3), dtype=np.uint8)


def _raw(pixels: np.ndarray, encoding: str, padding: int = 0) -> Image:
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows = pixels.reshape(height, width * channels)
    rows = np.concatenate([rows, np.full((height, padding), 77, np.uint8)], axis=1)
    return Image(header=Header(frame_id="cam"), height=height, width=width, encoding=encoding, is_bigendian=0,
                 step=width * channels + padding, data=rows.tobytes())


@pytest.mark.parametrize("padding", [0, 3])
def test_colour_encodings_give_the_same_rgb(padding):
    alpha = np.full(RGB.shape[:2] + (1,), 9, np.uint8)
    cases = {
        "rgb8": RGB,
        "bgr8": RGB[:, :, ::-1],
        "rgba8": np.concatenate([RGB, alpha], axis=2),
        "bgra8": np.concatenate([RGB[:, :, ::-1], alpha], axis=2),
    }
    for encoding, pixels in cases.items():
        out = image_to_rgb(_raw(np.ascontiguousarray(pixels), encoding, padding))
        assert out.dtype == np.uint8 and out.flags.c_contiguous
        np.testing.assert_array_equal(out, RGB, err_msg=encoding)


@pytest.mark.parametrize("bigendian", [0, 1])
def test_sixteen_bit_and_opencv_encodings_keep_the_high_byte(bigendian):
    """16-bit colour keeps the high byte (as cv_bridge does); 8UC3 is BGR, as cv_bridge writes it."""
    wide = RGB.astype(np.uint16) * 256 + 17  # low byte noise that must not show
    order = ">u2" if bigendian else "<u2"
    for encoding, pixels in {"rgb16": wide, "bgr16": wide[:, :, ::-1]}.items():
        data = np.ascontiguousarray(pixels).astype(order).tobytes()
        msg = Image(height=7, width=5, encoding=encoding, is_bigendian=bigendian, step=5 * 6, data=data)
        np.testing.assert_array_equal(image_to_rgb(msg), RGB, err_msg=encoding)
    np.testing.assert_array_equal(image_to_rgb(_raw(np.ascontiguousarray(RGB[:, :, ::-1]), "8UC3")), RGB)


def test_node_and_evaluation_decode_every_encoding_alike():
    """sam2-eval reads bags with the node's decoder: same pixels, and the same refusals."""
    from sam2_ros.evaluation.bag_io import IMAGE, decode_image
    from sam2_ros.evaluation.errors import EvaluationInputError

    # encoding -> (channels, bytes per channel)
    layouts = {"rgb8": (3, 1), "bgr8": (3, 1), "8UC3": (3, 1), "rgba8": (4, 1), "bgra8": (4, 1), "8UC4": (4, 1),
               "mono8": (1, 1), "8UC1": (1, 1), "rgb16": (3, 2), "bgr16": (3, 2), "mono16": (1, 2), "16UC1": (1, 2)}
    assert set(layouts) == set(SUPPORTED_ENCODINGS)
    for encoding, (channels, sample) in layouts.items():
        data = RNG.integers(0, 256, size=7 * 5 * channels * sample, dtype=np.uint8).tobytes()
        msg = Image(height=7, width=5, encoding=encoding, is_bigendian=0, step=5 * channels * sample, data=data)
        np.testing.assert_array_equal(decode_image(msg, IMAGE, "bag"), image_to_rgb(msg), err_msg=encoding)
    with pytest.raises(EvaluationInputError, match="bag: image encoding 'yuv422' is not supported"):
        decode_image(Image(height=1, width=2, encoding="yuv422", step=4, data=bytes(4)), IMAGE, "bag")


def test_mono8_becomes_grey_rgb():
    grey = RGB[:, :, 0].copy()
    out = image_to_rgb(_raw(grey, "mono8", padding=2))
    assert out.shape == (7, 5, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], grey)


def test_supported_encodings_are_the_documented_ones():
    assert set(SUPPORTED_ENCODINGS) == {"rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1", "8UC3", "8UC4",
                                        "rgb16", "bgr16", "mono16", "16UC1"}


@pytest.mark.parametrize("encoding", ["yuv422", "32FC1", "bayer_rggb8", ""])
def test_other_encodings_are_rejected_with_the_supported_list(encoding):
    with pytest.raises(ImageConversionError, match="not supported.*rgb8"):
        image_to_rgb(_raw(RGB, encoding))


def test_short_data_and_bad_step_are_named():
    msg = _raw(RGB, "rgb8")
    msg.data = msg.data[:-10]
    with pytest.raises(ImageConversionError, match="needs 105 bytes of data, got 95"):
        image_to_rgb(msg)
    msg = _raw(RGB, "rgb8")
    msg.step = 4
    with pytest.raises(ImageConversionError, match="step 4, less than the 15 bytes"):
        image_to_rgb(msg)
    with pytest.raises(ImageConversionError, match="empty"):
        decode_raw("rgb8", 0, 5, 15, b"")


def test_last_row_padding_may_be_missing():
    rows = np.concatenate([RGB.reshape(7, 15), np.zeros((7, 1), np.uint8)], axis=1).tobytes()[:-1]
    np.testing.assert_array_equal(decode_raw("rgb8", 7, 5, 16, rows), RGB)


@pytest.mark.parametrize("fmt, pil_format", [("jpeg", "JPEG"), ("png", "PNG"), ("rgb8; jpeg compressed bgr8", "JPEG")])
def test_compressed_images_decode_to_rgb(fmt, pil_format):
    picture = np.zeros((32, 48, 3), np.uint8)
    picture[:, :24] = (200, 30, 10)   # red left half: a swapped channel order would show
    picture[:, 24:] = (10, 30, 200)
    buffer = io.BytesIO()
    PILImage.fromarray(picture).save(buffer, format=pil_format, quality=95)
    out = compressed_to_rgb(CompressedImage(format=fmt, data=buffer.getvalue()))
    assert out.shape == (32, 48, 3)
    if pil_format == "PNG":
        np.testing.assert_array_equal(out, picture)
    else:  # lossy: compare away from the colour edge, where chroma subsampling rings
        for columns in (slice(0, 16), slice(32, 48)):
            assert np.abs(out[:, columns].astype(int) - picture[:, columns]).max() <= 8


def test_compressed_grey_png_becomes_rgb():
    buffer = io.BytesIO()
    PILImage.fromarray(RGB[:, :, 1].copy()).save(buffer, format="PNG")
    out = compressed_to_rgb(CompressedImage(format="png", data=buffer.getvalue()))
    np.testing.assert_array_equal(out[:, :, 2], RGB[:, :, 1])


@pytest.mark.parametrize("data, match", [
    (b"", "no data"),
    (b"\xff\xd8\xff garbage that is not a jpeg", "could not be decoded"),
    (bytes(range(256)) * 4, "could not be decoded"),
])
def test_garbage_compressed_data_is_rejected(data, match):
    with pytest.raises(ImageConversionError, match=match):
        compressed_to_rgb(CompressedImage(format="jpeg", data=data))


def test_sixteen_bit_png_and_other_formats_are_rejected():
    buffer = io.BytesIO()
    PILImage.fromarray(np.full((4, 4), 1000, np.uint16)).save(buffer, format="PNG")
    with pytest.raises(ImageConversionError, match="8-bit"):
        compressed_to_rgb(CompressedImage(format="png", data=buffer.getvalue()))
    buffer = io.BytesIO()
    PILImage.fromarray(RGB).save(buffer, format="BMP")
    with pytest.raises(ImageConversionError, match="BMP, not JPEG or PNG"):
        compressed_to_rgb(CompressedImage(format="bmp", data=buffer.getvalue()))


def test_mask_round_trip_and_header():
    mask = RGB[:, :, 0] > 128
    header = Header(frame_id="cam")
    header.stamp.sec = 12
    msg = mask_to_image(mask, header)
    assert (msg.encoding, msg.width, msg.height, msg.step) == ("mono8", 5, 7, 5)
    assert msg.header.stamp.sec == 12 and msg.header.frame_id == "cam"
    assert set(np.frombuffer(msg.data, np.uint8).tolist()) <= {0, 255}
    np.testing.assert_array_equal(image_to_mask(msg), mask)


def test_mask_prompt_must_be_mono8():
    with pytest.raises(ImageConversionError, match="mono8"):
        image_to_mask(_raw(RGB, "rgb8"))


def test_label_image_is_mono8_when_ids_fit_a_byte_else_mono16():
    labels = np.zeros((4, 6), np.int32)
    labels[1:3, 2:5] = 7
    small = labels_to_image(labels, Header())
    assert (small.encoding, small.step) == ("mono8", 6)
    np.testing.assert_array_equal(image_to_labels(small), labels)

    labels[0, 0] = 300
    wide = labels_to_image(labels, Header())
    assert (wide.encoding, wide.step, wide.is_bigendian) == ("mono16", 12, 0)
    np.testing.assert_array_equal(image_to_labels(wide), labels)
    # A caller may force mono16 for a session whose big ids are off screen.
    assert labels_to_image(np.zeros((2, 2), np.int32), Header(), max_id=256).encoding == "mono16"
    with pytest.raises(ImageConversionError, match="65535"):
        labels_to_image(labels, Header(), max_id=70000)


def test_rgb_to_image_round_trips_in_both_orders():
    for encoding in ("rgb8", "bgr8"):
        msg = rgb_to_image(RGB, Header(), encoding)
        np.testing.assert_array_equal(image_to_rgb(msg), RGB)


@pytest.mark.parametrize("fmt, pil_format, refused", [("png", "PNG", None), ("", "PNG", None),
                                                       ("jpeg", "JPEG", "JPEG"), ("", "JPEG", "JPEG"),
                                                       ("png", "JPEG", "JPEG"), ("jpeg", "PNG", "JPEG")])
def test_compressed_labels_must_be_png_whatever_the_format_field_says(fmt, pil_format, refused):
    from sam2_ros.image_codec import decode_compressed_labels
    labels = np.zeros((6, 9), np.uint8)
    labels[1:4, 2:5], labels[4:, 6:] = 1, 7
    buffer = io.BytesIO()
    PILImage.fromarray(labels if pil_format == "PNG" else np.stack([labels] * 3, -1)).save(buffer, format=pil_format)
    if refused is None:
        np.testing.assert_array_equal(decode_compressed_labels(buffer.getvalue(), fmt), labels)
    else:  # named by the format field, or found in the data when the field says nothing or lies
        with pytest.raises(ImageConversionError, match=f"label image is {refused} .*lossy compression"):
            decode_compressed_labels(buffer.getvalue(), fmt)


@pytest.mark.parametrize("padding", [0, 3])
def test_tensor_input_matches_the_numpy_decoder_and_reads_rgb8_in_place(padding):
    import array

    from sam2_ros.image_conversion import image_to_rgb_tensor

    alpha = np.full(RGB.shape[:2] + (1,), 9, np.uint8)
    cases = {"rgb8": RGB, "bgr8": RGB[:, :, ::-1], "8UC3": RGB[:, :, ::-1],
             "rgba8": np.concatenate([RGB, alpha], axis=2), "mono8": RGB[:, :, 0]}
    for encoding, pixels in cases.items():
        msg = _raw(np.ascontiguousarray(pixels), encoding, padding)
        tensor = image_to_rgb_tensor(msg)
        assert tensor.dtype == torch.uint8 and tuple(tensor.shape) == RGB.shape
        np.testing.assert_array_equal(tensor.numpy(), image_to_rgb(msg), err_msg=encoding)
    # rclpy stores uint8[] as array.array: an rgb8 frame is a view on it, not a copy.
    msg = _raw(RGB, "rgb8", padding)
    msg.data = array.array("B", bytes(msg.data))
    tensor = image_to_rgb_tensor(msg)
    msg.data[0] = (int(RGB[0, 0, 0]) + 1) % 256
    assert int(tensor[0, 0, 0]) == (int(RGB[0, 0, 0]) + 1) % 256
    with pytest.raises(ImageConversionError, match="needs"):
        image_to_rgb_tensor(Image(height=7, width=5, encoding="rgb8", step=15, data=bytes(20)))


def test_paste_object_mask_puts_the_box_crop_back_and_names_bad_messages():
    from sensor_msgs.msg import RegionOfInterest

    from sam2_ros.image_conversion import paste_object_mask
    from sam2_ros.msg import TrackedObject

    crop = np.array([[1, 0, 1], [0, 1, 1]], bool)
    obj = TrackedObject(id=3, visible=True, area=4, bbox=RegionOfInterest(x_offset=2, y_offset=1, width=3, height=2),
                        mask=mask_to_image(crop, Header()))
    expected = np.zeros((4, 6), bool)
    expected[1:3, 2:5] = crop  # written by hand: rows 1-2, columns 2-4
    np.testing.assert_array_equal(paste_object_mask(obj, (4, 6)), expected)
    with pytest.raises(ImageConversionError, match="does not fit"):
        paste_object_mask(obj, (2, 4))
    obj.bbox.width = 2
    with pytest.raises(ImageConversionError, match="does not match its box"):
        paste_object_mask(obj, (4, 6))
    boxes_only = TrackedObject(id=5, visible=True, area=7)
    with pytest.raises(ImageConversionError, match="publish_masks"):
        paste_object_mask(boxes_only, (4, 6))
