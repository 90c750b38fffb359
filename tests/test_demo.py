"""``python -m sam2_model.demo``: the GIF, the printed summary, the prompts it derives, bad input."""

import numpy as np
import pytest
from PIL import Image

import sam2_model
from sam2_model import demo
from sam2_model.train.procedural import ProceduralConfig, generate_with_events
from sam2_ros.evaluation import prompts as eval_prompts


def _spans_to_frames(text: str) -> set:
    """The frames a printed span list names ("1-2, 4, 7" or "none")."""
    frames = set()
    for part in ([] if text == "none" else text.split(", ")):
        first, _, last = part.partition("-")
        frames.update(range(int(first), int(last or first) + 1))
    return frames


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """|a and b| / |a or b|; 1 where both are empty (as the demo's summary line says it scores)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _reference_tracking(video, prompt: str):
    """The demo's tracking done here: the bundled model, the demo's memory policy, every target
    prompted on frame 0 from its true mask (the mask, or one click at its most interior pixel as
    sam2-eval clicks); (masks [T, targets, H, W], visible [T, targets])."""
    tracker = sam2_model.StreamingTracker(sam2_model.build_model("default"), memory_policy=demo.DEMO_MEMORY_POLICY)
    ids = list(range(1, video.num_targets + 1))
    masks = np.zeros((len(video.frames), len(ids)) + video.frames.shape[1:3], bool)
    visible = np.zeros((len(video.frames), len(ids)), bool)
    for t, frame in enumerate(video.frames):
        result = tracker.track(frame)
        if t == 0:
            for obj_id in ids:
                truth = video.labels[0] == obj_id
                result = (tracker.add_prompt(obj_id, mask=truth) if prompt == "mask" else
                          tracker.add_prompt(obj_id, points=[eval_prompts.interior_point(truth)], labels=[1]))
        for k, obj_id in enumerate(ids):
            row = result.obj_ids.index(obj_id)
            masks[t, k] = result.masks[row].cpu().numpy()
            visible[t, k] = bool(result.visible[row])
    return masks, visible


@pytest.mark.parametrize("prompt", ["mask", "click"])
def test_demo_writes_a_gif_with_every_frame_and_one_summary_line_per_target(tmp_path, capsys, prompt):
    out = tmp_path / "demo.gif"
    assert demo.main(["--out", str(out), "--frames", "24", "--size", "96", "--seed", "5", "--prompt", prompt,
                      "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    video = generate_with_events(5, ProceduralConfig(height=96, width=96, num_frames=24))
    targets = video.num_targets
    with Image.open(out) as gif:
        assert gif.n_frames == 24
        assert gif.size[0] == 2 * 96 * 3 + demo.PANEL_GAP_PX  # ground truth | tracker, 3x
    lines = [line for line in printed.splitlines() if line.startswith("object ")]
    assert [line.split(":")[0] for line in lines] == [f"object {i}" for i in range(1, targets + 1)]
    # Each line's numbers, from the same tracking done here and the video's ground truth.
    masks, visible = _reference_tracking(video, prompt)  # on the one torch thread the demo set
    for k, line in enumerate(lines):
        obj_id = k + 1
        iou = float(line.split("mean IoU ")[1].split(";")[0])
        expected_iou = np.mean([_iou(masks[t, k], video.labels[t] == obj_id) for t in range(1, 24)])
        assert abs(iou - expected_iou) <= 0.0005 + 1e-9, (line, expected_iou)  # printed to 3 decimals
        hidden_text = line.split("hidden in the ground truth: ")[1].split(";")[0]
        reported_text = line.split("tracker reported not visible: ")[1]
        truth_hidden = {t for t in range(24) if not (video.labels[t] == obj_id).any()}
        assert _spans_to_frames(hidden_text) == truth_hidden, line
        assert _spans_to_frames(reported_text) == {t for t in range(24) if not visible[t, k]}, line
    assert "weights bundled" in printed and str(out) in printed
    assert "memory policy robust" in printed  # the demo's default since round 11 (issue 25)


@pytest.mark.parametrize("args, fragment", [
    (["--model", "sam3_hiera_huge"], "sam3_hiera_huge"),
    (["--checkpoint", "/nonexistent/weights.pt"], "no such file"),
    (["--out", "/nonexistent/dir/demo.gif"], "does not exist"),
    (["--frames", "3"], "--frames >= 8"),
    (["--memory-policy", "robust:wings"], "unknown component(s) wings"),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, args, fragment):
    argv = ["--out", str(tmp_path / "demo.gif")] + args if "--out" not in args else args
    assert demo.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("sam2_model.demo: error:") and fragment in err
    assert not (tmp_path / "demo.gif").exists()


def test_unreadable_checkpoint_is_one_line_and_exit_code_2(tmp_path, capsys):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    assert demo.main(["--out", str(tmp_path / "demo.gif"), "--checkpoint", str(broken)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "broken.pt" in err


def test_click_is_the_most_interior_pixel_and_box_the_bounds():
    mask = np.zeros((20, 30), bool)
    mask[2:17, 3:10] = True      # a 15 x 7 bar: its middle column, middle row
    mask[8:11, 10:28] = True     # a thin arm, never the most interior part
    x, y = demo.interior_point(mask)
    assert mask[int(y), int(x)] and x == 6  # the bar's middle column, not the arm
    # The demo prompts exactly as sam2-eval does.
    assert (x, y) == eval_prompts.interior_point(mask)
    assert demo.box_from_mask(mask) == eval_prompts.box_from_mask(mask) == (3, 2, 27, 16)  # inclusive
    # Touching the border: the image edge counts as background, so the click stays inside.
    edge = np.zeros((10, 10), bool)
    edge[:, :4] = True
    assert demo.interior_point(edge)[0] in (1.0, 2.0)


def test_summary_helpers():
    assert demo.frame_spans(np.array([0, 1, 1, 0, 1, 0, 0, 1], bool)) == "1-2, 4, 7"
    assert demo.frame_spans(np.zeros(4, bool)) == "none"
