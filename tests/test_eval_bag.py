"""Evaluation inputs: bags (write, read back, decode, reject), DAVIS folders and videos."""

import numpy as np
import pytest
from PIL import Image

from sam2_ros.evaluation import bag_io, davis
from sam2_ros.evaluation.bag_io import COMPRESSED_IMAGE, IMAGE, decode_image, decode_labels, read_bag, write_bag
from sam2_ros.evaluation.errors import EvaluationInputError
from sam2_ros.evaluation.make_bag import main as make_bag_main
from sam2_ros.evaluation.sequence import Frame, Sequence
from sam2_ros.evaluation.synthetic import synthetic_sequence
from sam2_ros.evaluation.video import video_frames


@pytest.fixture(scope="module")
def seq():
    return synthetic_sequence()


def frames_of(sequence):
    return list(sequence)


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_raw_bag_round_trip(tmp_path, seq, storage):
    summary = write_bag(tmp_path / "bag", seq, storage=storage)
    assert (summary.num_images, summary.num_labels) == (12, 11)  # frame 8 has no ground truth
    back = read_bag(tmp_path / "bag")
    assert back.num_frames == 12
    assert back.annotated == tuple(i for i in range(12) if i != 8)
    for original, read in zip(frames_of(seq), frames_of(back), strict=True):
        assert read.index == original.index
        assert read.stamp_ns == original.stamp_ns
        np.testing.assert_array_equal(read.image, original.image)  # rgb8 is lossless
        if original.gt_labels is None:
            assert read.gt_labels is None
        else:
            np.testing.assert_array_equal(read.gt_labels, original.gt_labels)


def test_compressed_bag_round_trip(tmp_path, seq):
    write_bag(tmp_path / "bag", seq, compressed=True)
    assert bag_io.list_topics(tmp_path / "bag") == {
        "/camera/image_raw": COMPRESSED_IMAGE,
        "/camera/gt_labels": COMPRESSED_IMAGE,
    }
    for original, read in zip(frames_of(seq), frames_of(read_bag(tmp_path / "bag")), strict=True):
        # JPEG images are close, PNG labels exact.
        assert np.abs(read.image.astype(int) - original.image).mean() < 6
        if original.gt_labels is not None:
            np.testing.assert_array_equal(read.gt_labels, original.gt_labels)


def test_bare_mcap_file_is_readable(tmp_path, seq):
    write_bag(tmp_path / "bag", seq)
    mcap = next((tmp_path / "bag").glob("*.mcap"))
    assert read_bag(mcap).num_frames == 12


def test_wide_label_ids_use_mono16(tmp_path):
    labels = np.zeros((6, 8), dtype=np.uint16)
    labels[1:3, 1:3] = 300
    labels[4:6, 4:8] = 7
    frames = [Frame(i, np.zeros((6, 8, 3), np.uint8), i * 1000, labels) for i in range(3)]
    for compressed in (False, True):
        path = tmp_path / f"bag{compressed}"
        write_bag(path, frames, compressed=compressed)
        read = frames_of(read_bag(path))
        np.testing.assert_array_equal(read[1].gt_labels, labels)


def test_make_bag_from_davis_folder(tmp_path, seq, capsys):
    davis.write_sequence(tmp_path / "davis", "shapes", seq, image_format="png")
    code = make_bag_main(
        [
            "--davis", str(tmp_path / "davis"), "--sequence", "shapes",
            "--out", str(tmp_path / "bag"), "--fps", "10", "--no-progress",
        ]
    )
    assert code == 0
    assert "12 images" in capsys.readouterr().out
    for original, read in zip(frames_of(seq), frames_of(read_bag(tmp_path / "bag")), strict=True):
        assert read.stamp_ns == original.stamp_ns  # the synthetic sequence is also 10 fps
        np.testing.assert_array_equal(read.image, original.image)
        if original.gt_labels is not None:
            np.testing.assert_array_equal(read.gt_labels, original.gt_labels)


def write_video(path, frames, fps=10):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.width, stream.height = frames[0].image.shape[1], frames[0].image.shape[0]
        stream.pix_fmt = "bgr0"  # lossless RGB
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f.image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_make_bag_from_video_and_masks(tmp_path, seq):
    frames = frames_of(seq)
    write_video(tmp_path / "clip.mkv", frames)
    (tmp_path / "masks").mkdir()
    for f in frames:
        if f.gt_labels is not None:
            davis.write_label_png(tmp_path / "masks" / f"frame_{f.index}.png", f.gt_labels)
    code = make_bag_main(
        [
            "--video", str(tmp_path / "clip.mkv"), "--masks", str(tmp_path / "masks"),
            "--out", str(tmp_path / "bag"), "--compressed", "--no-progress",
        ]
    )
    assert code == 0
    back = read_bag(tmp_path / "bag")
    assert back.num_frames == 12 and back.annotated == seq.annotated
    for original, read in zip(frames, frames_of(back), strict=True):
        assert read.stamp_ns == round(original.index * 1e9 / 10)  # the video's own rate
        assert np.abs(read.image.astype(int) - original.image).mean() < 6
        if original.gt_labels is not None:
            np.testing.assert_array_equal(read.gt_labels, original.gt_labels)


def test_video_mask_past_the_end(tmp_path, seq):
    frames = frames_of(seq)[:3]
    write_video(tmp_path / "clip.mkv", frames)
    (tmp_path / "masks").mkdir()
    davis.write_label_png(tmp_path / "masks" / "00007.png", frames[0].gt_labels)
    with pytest.raises(EvaluationInputError, match="past the end"):
        list(video_frames(tmp_path / "clip.mkv", tmp_path / "masks"))


# ---------------------------------------------------------------- decoding


def image_msg(encoding, height, width, step, data, bigendian=0):
    ts = bag_io.typestore()
    header = bag_io._header(0, "cam")
    return ts.types[IMAGE](
        header=header, height=height, width=width, encoding=encoding, is_bigendian=bigendian, step=step,
        data=np.asarray(data, dtype=np.uint8).reshape(-1),
    )


def test_decode_bgr8_and_mono8():
    bgr = np.array([[[1, 2, 3], [4, 5, 6]]], dtype=np.uint8)  # 1x2
    rgb = decode_image(image_msg("bgr8", 1, 2, 6, bgr), IMAGE, "test")
    np.testing.assert_array_equal(rgb, [[[3, 2, 1], [6, 5, 4]]])
    mono = decode_image(image_msg("mono8", 1, 2, 2, [7, 9]), IMAGE, "test")
    np.testing.assert_array_equal(mono, [[[7, 7, 7], [9, 9, 9]]])


def test_decode_padded_rows():
    # rgba8, 2x1 with a 6-byte step: 4 pixel bytes then 2 bytes of padding per row.
    data = [10, 20, 30, 255, 0, 0, 40, 50, 60, 255, 0, 0]
    rgb = decode_image(image_msg("rgba8", 2, 1, 6, data), IMAGE, "test")
    np.testing.assert_array_equal(rgb, [[[10, 20, 30]], [[40, 50, 60]]])


def test_decode_big_endian_mono16_labels():
    data = [0x01, 0x2C, 0x00, 0x07]  # 300, 7 big-endian
    labels = decode_labels(image_msg("mono16", 1, 2, 4, data, bigendian=1), IMAGE, "test")
    np.testing.assert_array_equal(labels, [[300, 7]])


def test_unsupported_encodings_are_named():
    with pytest.raises(EvaluationInputError, match="bayer_rggb8"):
        decode_image(image_msg("bayer_rggb8", 1, 2, 2, [0, 0]), IMAGE, "test")
    with pytest.raises(EvaluationInputError, match="rgb8.*not a label image"):
        decode_labels(image_msg("rgb8", 1, 1, 3, [0, 0, 0]), IMAGE, "test")
    with pytest.raises(EvaluationInputError, match="needs 12 bytes"):
        decode_image(image_msg("rgb8", 2, 2, 6, [0] * 6), IMAGE, "test")


# ---------------------------------------------------------------- bad bags


def write_raw_bag(path, messages):
    """A bag of (topic, msgtype, stamp_ns, msg) written directly, to build broken inputs."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = bag_io.typestore()
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {}
        for topic, msgtype, stamp, msg in messages:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=ts)
            writer.write(conns[topic], stamp, ts.serialize_cdr(msg, msgtype))


def image_and_labels(stamp, label_stamp=None):
    """Bag messages (topic, msgtype, stamp, msg) of one 4x5 image and its labels."""
    label_stamp = stamp if label_stamp is None else label_stamp
    labels = np.zeros((4, 5), np.uint8)
    labels[1:3, 1:3] = 1
    image_msg_, image_type = bag_io.encode_image(np.full((4, 5, 3), 100, np.uint8), stamp, "cam", False)
    labels_msg, labels_type = bag_io.encode_labels(labels, label_stamp, "cam", False)
    return [
        ("/camera/image_raw", image_type, stamp, image_msg_),
        ("/camera/gt_labels", labels_type, label_stamp, labels_msg),
    ]


def test_missing_topics_are_named(tmp_path):
    write_raw_bag(tmp_path / "bag", image_and_labels(1000))
    with pytest.raises(EvaluationInputError, match=r"no image topic '/cam/rgb'.*/camera/image_raw \(sensor_msgs"):
        read_bag(tmp_path / "bag", image_topic="/cam/rgb")
    with pytest.raises(EvaluationInputError, match="no ground-truth topic '/labels'"):
        read_bag(tmp_path / "bag", gt_topic="/labels")


def test_ground_truth_without_matching_stamp(tmp_path):
    messages = image_and_labels(1_000_000_000) + image_and_labels(2_000_000_000, label_stamp=2_003_000_000)
    write_raw_bag(tmp_path / "bag", messages)
    with pytest.raises(EvaluationInputError, match=r"1 of 2 ground-truth.*2\.003000000 s.*-3\.000 ms"):
        read_bag(tmp_path / "bag")


def test_duplicate_ground_truth_stamps(tmp_path):
    messages = image_and_labels(1000)
    write_raw_bag(tmp_path / "bag", messages + [messages[1]])
    with pytest.raises(EvaluationInputError, match="two messages stamped"):
        read_bag(tmp_path / "bag")


def test_wrong_topic_type(tmp_path):
    text = bag_io.typestore().types["std_msgs/msg/String"](data="hello")
    write_raw_bag(
        tmp_path / "bag", image_and_labels(1000)[:1] + [("/camera/gt_labels", "std_msgs/msg/String", 1000, text)]
    )
    with pytest.raises(EvaluationInputError, match="has type std_msgs/msg/String"):
        read_bag(tmp_path / "bag")


def test_unreadable_image_fails_when_read(tmp_path):
    broken = bag_io.typestore().types[COMPRESSED_IMAGE](
        header=bag_io._header(5000, "cam"), format="jpeg", data=np.frombuffer(b"not a jpeg", np.uint8)
    )
    labels = image_and_labels(5000)[1]
    write_raw_bag(tmp_path / "bag", [("/camera/image_raw", COMPRESSED_IMAGE, 5000, broken), labels])
    sequence = read_bag(tmp_path / "bag")  # stamps and topics are fine
    with pytest.raises(EvaluationInputError, match=r"/camera/image_raw message 0 .*could not be decoded"):
        frames_of(sequence)


def test_jpeg_ground_truth_is_rejected(tmp_path):
    jpeg_gt, msgtype = bag_io.encode_image(np.zeros((4, 5, 3), np.uint8), 5000, "cam", compressed=True)
    image = image_and_labels(5000)[0]
    write_raw_bag(tmp_path / "bag", [image, ("/camera/gt_labels", msgtype, 5000, jpeg_gt)])
    with pytest.raises(EvaluationInputError, match="label image is JPEG .*lossy compression changes pixel values"):
        frames_of(read_bag(tmp_path / "bag"))


def test_not_a_bag(tmp_path):
    with pytest.raises(EvaluationInputError, match="bag not found"):
        read_bag(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvaluationInputError, match="cannot read bag"):
        read_bag(tmp_path / "empty")


def test_write_bag_refuses_existing_path_and_cleans_up(tmp_path, seq):
    (tmp_path / "taken").mkdir()
    with pytest.raises(EvaluationInputError, match="exists already"):
        write_bag(tmp_path / "taken", seq)

    def frames_then_failure():
        yield from frames_of(seq)[:3]
        raise EvaluationInputError("cannot read image 00003.jpg")

    with pytest.raises(EvaluationInputError, match="00003"):
        write_bag(tmp_path / "partial", frames_then_failure())
    assert not (tmp_path / "partial").exists()  # nothing partial left behind


def test_make_bag_reports_bad_input(tmp_path, capsys):
    code = make_bag_main(["--davis", str(tmp_path), "--sequence", "x", "--out", str(tmp_path / "bag")])
    assert code == 2
    assert "JPEGImages does not exist" in capsys.readouterr().err
    assert not (tmp_path / "bag").exists()


# ---------------------------------------------------------------- DAVIS folders


def test_davis_round_trip_and_official_layout(tmp_path, seq):
    davis.write_sequence(tmp_path / "flat", "shapes", seq, image_format="png")
    back = davis.read_sequence(tmp_path / "flat", "shapes")
    assert back.annotated == seq.annotated
    np.testing.assert_array_equal(frames_of(back)[3].gt_labels, frames_of(seq)[3].gt_labels)
    # Annotations are palette PNGs with the DAVIS colours (object 1 dark red).
    with Image.open(tmp_path / "flat" / "Annotations" / "shapes" / "00000.png") as png:
        assert png.mode == "P" and png.getpalette()[3:6] == [128, 0, 0]
    # The official release nests sequences under 480p/.
    (tmp_path / "official" / "JPEGImages").mkdir(parents=True)
    (tmp_path / "official" / "Annotations").mkdir(parents=True)
    (tmp_path / "flat" / "JPEGImages").rename(tmp_path / "official" / "JPEGImages" / "480p")
    (tmp_path / "flat" / "Annotations").rename(tmp_path / "official" / "Annotations" / "480p")
    assert davis.list_sequences(tmp_path / "official") == ["shapes"]
    assert davis.read_sequence(tmp_path / "official", "shapes").num_frames == 12


def test_davis_errors(tmp_path, seq):
    davis.write_sequence(tmp_path, "shapes", seq, image_format="png")
    with pytest.raises(EvaluationInputError, match="'nope' not found.*sequences: shapes"):
        davis.read_sequence(tmp_path, "nope")
    Image.new("RGB", (80, 60)).save(tmp_path / "Annotations" / "shapes" / "00001.png")
    with pytest.raises(EvaluationInputError, match="00001.png is a RGB image"):
        frames_of(davis.read_sequence(tmp_path, "shapes"))
    Image.new("L", (80, 60)).save(tmp_path / "Annotations" / "shapes" / "00099.png")
    with pytest.raises(EvaluationInputError, match="00099.png has no image"):
        davis.read_sequence(tmp_path, "shapes")
    (tmp_path / "Annotations" / "shapes" / "00099.png").unlink()
    (tmp_path / "Annotations" / "shapes" / "00001.png").unlink()
    (tmp_path / "JPEGImages" / "shapes" / "00002.png").write_bytes(b"garbage")
    with pytest.raises(EvaluationInputError, match="cannot read image .*00002.png"):
        frames_of(davis.read_sequence(tmp_path, "shapes"))


def test_sequence_truncation():
    seq = synthetic_sequence(num_frames=10, unannotated=(2, 7))
    short = seq.truncated(5)
    assert short.num_frames == 5 and short.annotated == (0, 1, 3, 4)
    assert [f.index for f in short] == [0, 1, 2, 3, 4]
    assert seq.truncated(None) is seq
    with pytest.raises(EvaluationInputError):
        Sequence.from_frames("bad", [Frame(1, np.zeros((2, 2, 3), np.uint8), 0)])
