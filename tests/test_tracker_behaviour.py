"""StreamingTracker behaviour beyond parity: bad input, bounded memory, batching, resizing."""

import numpy as np
import pytest
import torch

import sam2_model
from sam2_model import FrameError, PromptError, TrackingError, UnknownObjectError

from micro_session import model, prompted_tracker, session, session_frames  # noqa: F401


def _tracker(model, **options):
    return sam2_model.StreamingTracker(model, fill_hole_area=0, **options)


def test_track_without_objects_returns_empty_result(model, session):
    tracker = _tracker(model)
    result = tracker.track(session_frames(session)[0])
    assert result.frame_index == 0 and result.obj_ids == []
    assert result.masks.shape == (0, 256, 256) and result.object_score_logits.shape == (0,)


def test_result_fields_are_consistent(model, session):
    frames = session_frames(session)
    tracker = prompted_tracker(model, frames)
    result = tracker.track(frames[1])
    assert result.obj_ids == [1, 2] and result.frame_index == 1
    assert result.low_res_logits.shape == (2, 1, 64, 64)
    assert result.masks.shape == (2, 256, 256) and result.masks.dtype == torch.bool
    assert torch.equal(result.masks, result.mask_logits > 0)
    assert torch.equal(result.visible, result.object_score_logits > 0)
    assert result.iou_scores.shape == (2,)


def test_prompt_before_any_frame(model):
    with pytest.raises(TrackingError, match="no frame yet"):
        _tracker(model).add_prompt(1, points=[[1, 1]], labels=[1])


BAD_PROMPTS = [
    (dict(points=[[300.0, 10.0]], labels=[1]), PromptError, "outside"),
    (dict(points=[[-1.0, 10.0]], labels=[1]), PromptError, "outside"),
    (dict(points=[[float("nan"), 10.0]], labels=[1]), PromptError, "NaN"),
    (dict(points=[[10.0, 10.0], [20.0, 20.0]], labels=[1]), PromptError, "2 points but 1 labels"),
    (dict(points=[[10.0, 10.0]], labels=[7]), PromptError, "labels must be"),
    (dict(), PromptError, "empty prompt"),
    (dict(points=[], labels=[]), PromptError, "empty"),
    (dict(box=[10, 10, 5, 20]), PromptError, "x1 < x0"),
    (dict(box=[10, 10, 500, 20]), PromptError, "outside"),
    (dict(mask=np.ones((100, 100), dtype=bool)), PromptError, "frame's size"),
    (dict(mask=np.ones((256, 256, 3), dtype=bool)), PromptError, "2-D"),
    (dict(mask=np.ones((256, 256), dtype=bool), points=[[1.0, 1.0]], labels=[1]), PromptError, "cannot be combined"),
    # A string iterated into the box [1, 2, 3, 4]; a bare label read as "1 points but 1 labels";
    # an object or string mask raised a bare TypeError; "no" was taken as true.
    (dict(box="1234"), PromptError, "box must be 4 numbers .* got a str"),
    (dict(box=b"1234"), PromptError, "box must be 4 numbers .* got a bytes"),
    (dict(box={"x0": 1, "y0": 2, "x1": 3, "y1": 4}), PromptError, "box must be 4 numbers .* got a dict"),
    (dict(points=[[10.0, 10.0]], labels=1), PromptError, "labels must be a sequence of labels, one per point"),
    (dict(mask=np.full((256, 256), None)), PromptError, "mask must be a bool or numeric HxW array, got dtype object"),
    (dict(mask=np.full((256, 256), "a")), PromptError, "mask must be a bool or numeric HxW array, got dtype <U1"),
    (dict(points=[[10.0, 10.0]], labels=[1], clear_old_points="no"), PromptError,
     "clear_old_points must be true or false, got 'no'"),
]


@pytest.mark.parametrize("prompt,error,message", BAD_PROMPTS, ids=[m for _, _, m in BAD_PROMPTS])
def test_bad_prompts_raise_and_change_nothing(model, session, prompt, error, message):
    frames = session_frames(session)
    reference = prompted_tracker(model, frames)
    tracker = prompted_tracker(model, frames)
    before = tracker.memory_bytes()
    for obj_id in (1, 99):  # a correction of a tracked object and a new object
        with pytest.raises(error, match=message):
            tracker.add_prompt(obj_id, **prompt)
    assert tracker.obj_ids == [1, 2] and tracker.memory_bytes() == before
    ours, theirs = tracker.track(frames[1]), reference.track(frames[1])
    assert torch.equal(ours.low_res_logits, theirs.low_res_logits)


def test_box_without_clearing_is_taken_where_there_is_nothing_to_clear(model, session):
    """A box must be a frame's first prompt (official rule), so clear_old_points=False only
    matters for an object that already has clicks (or a box) on the frame."""
    frames = session_frames(session)
    box = [20.0, 30.0, 90.0, 110.0]
    cleared, kept = prompted_tracker(model, frames), prompted_tracker(model, frames)
    # A new object: nothing to clear, same result either way.
    expected = cleared.add_prompt(99, box=box, clear_old_points=True)
    got = kept.add_prompt(99, box=box, clear_old_points=False)
    assert got.obj_ids == [1, 2, 99] and torch.equal(got.low_res_logits, expected.low_res_logits)
    # A tracked object on a later frame, where it has no clicks yet: also taken.
    cleared.track(frames[1]), kept.track(frames[1])
    expected = cleared.add_prompt(1, box=box, clear_old_points=True)
    got = kept.add_prompt(1, box=box, clear_old_points=False)
    assert torch.equal(got.low_res_logits, expected.low_res_logits)
    # Now object 1 has a box on this frame and object 2 none: a second box without clearing is
    # refused for 1 (state unchanged), taken for 2.
    before = kept.memory_bytes()
    with pytest.raises(PromptError, match="object 1 already has clicks on this frame and a box must come first"):
        kept.add_prompt(1, box=[30.0, 30.0, 60.0, 60.0], clear_old_points=False)
    assert kept.memory_bytes() == before
    kept.add_prompt(2, box=[128.0, 133.12, 212.48, 199.68], clear_old_points=False)


def test_unknown_object_and_bad_ids(model, session):
    tracker = prompted_tracker(model, session_frames(session))
    with pytest.raises(UnknownObjectError, match="unknown object id 42"):
        tracker.remove_object(42)
    with pytest.raises(PromptError, match="obj_id must be an int"):
        tracker.add_prompt("one", points=[[1, 1]], labels=[1])
    # True and 1.0 equal 1 as dict keys: they removed object 1, while add_prompt refuses them.
    for bad in (True, 1.0, "1"):
        with pytest.raises(UnknownObjectError, match=f"unknown object id {bad}"):
            tracker.remove_object(bad)
    assert tracker.obj_ids == [1, 2]


def test_too_many_objects(model, session):
    tracker = _tracker(model, max_objects=2)
    tracker.track(session_frames(session)[0])
    tracker.add_prompt(1, points=[[10, 10]], labels=[1])
    tracker.add_prompt(2, points=[[100, 100]], labels=[1])
    with pytest.raises(TrackingError, match="maximum of 2"):
        tracker.add_prompt(3, points=[[200, 200]], labels=[1])
    # A full tracker still names what is wrong with a bad prompt, not only that it is full.
    with pytest.raises(PromptError, match="outside"):
        tracker.add_prompt(3, points=[[-5, 200]], labels=[1])
    tracker.add_prompt(2, points=[[120, 100]], labels=[1])  # corrections are still fine
    assert tracker.obj_ids == [1, 2]


@pytest.mark.parametrize("frame,message", [
    (np.zeros((64, 64, 3), dtype=np.float32), "uint8"),
    (np.zeros((64, 64), dtype=np.uint8), "HxWx3"),
    (np.zeros((64, 64, 4), dtype=np.uint8), "HxWx3"),
    ([[1, 2, 3]], "numpy array or torch tensor"),
])
def test_bad_frames(model, session, frame, message):
    tracker = prompted_tracker(model, session_frames(session))
    with pytest.raises(FrameError, match=message):
        tracker.track(frame)
    assert tracker.frame_index == 0 and tracker.obj_ids == [1, 2]
    assert tracker.track(session_frames(session)[1]).frame_index == 1


def test_frame_of_new_size_mid_stream(model, session):
    frames = session_frames(session)
    tracker = prompted_tracker(model, frames)
    tracker.track(frames[1])
    big = np.ascontiguousarray(np.repeat(np.repeat(frames[2], 2, axis=0), 3, axis=1))  # 512 x 768
    result = tracker.track(big)
    assert result.masks.shape == (2, 512, 768)
    tracker.add_prompt(1, points=[[700.0, 500.0]], labels=[0], clear_old_points=False)
    assert tracker.track(frames[3]).masks.shape == (2, 256, 256)


def test_torch_frames_are_accepted(model, session):
    frames = session_frames(session)
    a = prompted_tracker(model, frames).track(frames[1])
    b = prompted_tracker(model, frames).track(torch.from_numpy(frames[1]))
    assert torch.equal(a.low_res_logits, b.low_res_logits)


def test_batched_objects_equal_objects_tracked_alone(model, session):
    """All objects in one pass give what each object gives when tracked on its own."""
    frames = session_frames(session)
    # Corrections as conditioning frames: object 2 ends up with more memories than object 1.
    both = prompted_tracker(model, frames, corrections_as_cond=True)
    alone = {1: _tracker(model, corrections_as_cond=True), 2: _tracker(model, corrections_as_cond=True)}
    for tracker in alone.values():
        tracker.track(frames[0])
    alone[1].add_prompt(1, points=[[76.8, 89.6]], labels=[1])
    alone[2].add_prompt(2, box=[128.0, 133.12, 212.48, 199.68])
    for t in range(1, 6):
        together = both.track(frames[t])
        for row, obj_id in enumerate((1, 2)):
            single = alone[obj_id].track(frames[t])
            assert (together.low_res_logits[row] - single.low_res_logits[0]).abs().max() < 1e-3
        if t == 2:
            both.add_prompt(2, points=[[150.0, 160.0]], labels=[1], clear_old_points=False)
            alone[2].add_prompt(2, points=[[150.0, 160.0]], labels=[1], clear_old_points=False)


def test_remove_and_reset(model, session):
    frames = session_frames(session)
    tracker = prompted_tracker(model, frames)
    tracker.remove_object(1)
    assert tracker.track(frames[1]).obj_ids == [2]
    tracker.add_prompt(5, points=[[30.0, 30.0]], labels=[1])
    assert tracker.track(frames[2]).obj_ids == [2, 5]
    tracker.reset()
    assert tracker.obj_ids == [] and tracker.frame_index == -1
    with pytest.raises(TrackingError):
        tracker.add_prompt(1, points=[[1, 1]], labels=[1])


def test_memory_is_bounded(model, session):
    frames = session_frames(session)
    tracker = prompted_tracker(model, frames)
    tracker.add_prompt(3, points=[[179.2, 104.96], [51.2, 204.8]], labels=[1, 0])
    sizes = []
    for t in range(1, 61):
        tracker.track(frames[t % len(frames)])
        sizes.append(tracker.memory_bytes())
    # Memory windows fill within 16 frames; from then on the stored size never changes.
    assert len(set(sizes[20:])) == 1, sizes


def test_correction_on_current_frame_sees_full_memory_windows(model, session):
    """A prompt on frame t attends to frames t-6..t-1 and pointers t-15..t-1 (not the next
    frame's windows): the memory bank must keep one more entry than the next frame needs."""
    from sam2_model.memory_bank import select_memories

    frames = session_frames(session)
    tracker = prompted_tracker(model, frames)
    for t in range(1, 19):
        tracker.track(frames[t % len(frames)])
    state = tracker._objects[1]
    config = model.config
    selection = select_memories(state, tracker.frame_index, config.num_maskmem, config.max_obj_ptrs_in_encoder,
                                config.max_cond_frames_in_attn, True, True)
    assert len(selection.spatial) == 1 + (config.num_maskmem - 1)  # the first prompt + 6 recent frames
    assert len(selection.pointers) == 1 + (config.max_obj_ptrs_in_encoder - 1)


def test_a_model_without_object_pointers_attends_num_maskmem_minus_one_recent_frames(model, session):  # noqa: F811
    """With ``use_obj_ptrs_in_encoder`` off (ModelConfig's default; the released configs turn it on)
    the pointer window is 0, and every recent memory was dropped after one frame: the next frame
    attended 1 recent spatial memory. The official predictor's loop over recent frames
    (``SAM2Base._prepare_memory_conditioned_features``: ``for t_pos in range(1, num_maskmem)``)
    does not depend on pointers: it attends the conditioning frames and ``num_maskmem - 1`` recent
    ones. (sam2 1.1.0 itself cannot run such a model in its video predictor: without object
    scores its memory attention gets bfloat16 memories and float weights; with them it reads a
    ``no_obj_ptr`` it never built. So this counts memories instead of replaying an oracle session.)"""
    import dataclasses

    from sam2_model.memory_bank import gather_memories
    from sam2_model.sam2 import SAM2Model

    config = dataclasses.replace(model.config, use_obj_ptrs_in_encoder=False, fixed_no_obj_ptr=False)
    no_pointers = SAM2Model(config)
    loaded = no_pointers.load_state_dict(model.state_dict(), strict=False)
    # Only the pointer-making parts are left over (the official model builds them only with pointers).
    assert loaded.missing_keys == [] and all("ptr" in key or key.startswith("mask_downsample.")
                                             for key in loaded.unexpected_keys)
    no_pointers.eval()
    frames = session_frames(session)
    tracker = prompted_tracker(no_pointers, frames)
    for index in range(1, 10):
        tracker.track(frames[index])
    states = [tracker._objects[obj_id] for obj_id in (1, 2)]
    batch = gather_memories(no_pointers, states, 10, tracker._memory_pos)
    grid = no_pointers.embedding_size ** 2
    expected_frames = 1 + config.num_maskmem - 1  # the prompt on frame 0, frames 4 .. 9
    assert batch.tokens.shape[1] == expected_frames * grid  # spatial tokens only, no pointer tokens
    assert batch.valid is None or bool(batch.valid.all())
    # Kept: frame 3 too (a correction on frame 9 attends frames 3 .. 8).
    assert [sorted(s.recent) for s in states] == [list(range(10 - config.num_maskmem, 10))] * 2
