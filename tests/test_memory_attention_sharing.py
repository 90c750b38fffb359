"""Memory attention computes the frame-only part (the first self-attention) once for all objects."""

import numpy as np
import pytest
import torch

import sam2_model

from micro_session import model, session  # noqa: F401


def unshared_memory_attention(attention, current, current_pos, memory, memory_pos, num_pointer_tokens, mask):
    """Every object's own copy of the frame through every layer, as the official code does."""
    output = current + 0.1 * current_pos if attention.pos_enc_at_input else current
    for layer in attention.layers:
        output = layer(output, memory, memory_pos, current_pos, num_pointer_tokens, mask)
    return attention.norm(output)


def random_inputs(model, batch, generator):
    tokens = model.embedding_size ** 2
    frames, pointers = 3, 4 * model.tokens_per_pointer
    length = frames * tokens + pointers
    current = torch.randn(1, tokens, model.hidden_dim, generator=generator)
    current_pos = torch.randn(1, tokens, model.hidden_dim, generator=generator)
    memory = torch.randn(batch, length, model.mem_dim, generator=generator)
    memory_pos = torch.randn(batch, length, model.mem_dim, generator=generator)
    return current, current_pos, memory, memory_pos, pointers


@pytest.mark.parametrize("padded", [False, True], ids=["all_real", "padded"])
@torch.inference_mode()
def test_shared_frame_gives_identical_numbers(model, padded):
    generator = torch.Generator().manual_seed(1)
    batch = 3
    current, current_pos, memory, memory_pos, pointers = random_inputs(model, batch, generator)
    mask = None
    if padded:  # the second object has one memory frame fewer (padding), as in a mixed batch
        mask = torch.ones(batch, memory.shape[1], dtype=torch.bool)
        mask[1, :model.embedding_size ** 2] = False
    attention = model.memory_attention
    shared = attention(current, current_pos, memory, memory_pos, pointers, mask)
    each = unshared_memory_attention(attention, current.expand(batch, -1, -1).contiguous(),
                                     current_pos.expand(batch, -1, -1).contiguous(), memory, memory_pos,
                                     pointers, mask)
    assert shared.shape == each.shape == (batch, *current.shape[1:])
    assert torch.equal(shared, each)


def test_mismatched_batches_are_named(model):
    generator = torch.Generator().manual_seed(2)
    current, current_pos, memory, memory_pos, pointers = random_inputs(model, 3, generator)
    with pytest.raises(ValueError, match="one row per object, or one shared row"):
        model.memory_attention(current.expand(2, -1, -1), current_pos.expand(2, -1, -1), memory, memory_pos,
                               pointers)


@torch.inference_mode()
def test_several_frames_each_seen_by_their_own_rows(model):
    """Two streams' frames in one pass (the server's round): frame 0 for rows 0-1, frame 1 for row 2;
    the same numbers, to float rounding, as each frame with its own rows alone; each frame's first
    self-attention runs once."""
    generator = torch.Generator().manual_seed(5)
    current, current_pos, memory, memory_pos, pointers = random_inputs(model, 3, generator)
    other, other_pos, _, _, _ = random_inputs(model, 1, generator)
    attention = model.memory_attention
    first_batches = []
    hook = attention.layers[0].self_attn.register_forward_pre_hook(
        lambda _m, args: first_batches.append(args[0].shape[0]))
    try:
        together = attention(torch.cat([current, other]), torch.cat([current_pos, other_pos]), memory, memory_pos,
                             pointers, None, rows_per_frame=[2, 1])
    finally:
        hook.remove()
    assert first_batches == [2]
    first = attention(current, current_pos, memory[:2], memory_pos[:2], pointers)
    second = attention(other, other_pos, memory[2:], memory_pos[2:], pointers)
    torch.testing.assert_close(together, torch.cat([first, second]), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="rows_per_frame"):
        attention(torch.cat([current, other]), torch.cat([current_pos, other_pos]), memory, memory_pos, pointers,
                  None, rows_per_frame=[1, 1])


def test_tracker_computes_first_self_attention_once_per_frame(model):
    """Three objects on one frame: the first layer's self-attention runs once, on one row."""
    size = model.image_size
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 255, size=(size, size, 3), dtype=np.uint8) for _ in range(4)]
    tracker = sam2_model.StreamingTracker(model)
    tracker.track(frames[0])
    for obj_id, (x, y) in enumerate([(10, 10), (size // 2, size // 2), (size - 10, 20)], start=1):
        tracker.add_prompt(obj_id, points=[[x, y]], labels=[1])
    first_batches, later_batches = [], []
    layers = model.memory_attention.layers
    hooks = [layers[0].self_attn.register_forward_pre_hook(lambda _m, args: first_batches.append(args[0].shape[0])),
             layers[1].self_attn.register_forward_pre_hook(lambda _m, args: later_batches.append(args[0].shape[0]))]
    try:
        for frame in frames[1:]:
            result = tracker.track(frame)
    finally:
        for hook in hooks:
            hook.remove()
    assert result.obj_ids == [1, 2, 3]
    assert first_batches == [1, 1, 1], "the first self-attention should run once per frame, on the shared frame"
    assert later_batches == [3, 3, 3], "later layers see each object's own (memory-conditioned) tokens"


@pytest.mark.slow
@torch.inference_mode()
def test_shared_frame_identical_at_released_size():
    """sam2.1_hiera_tiny's sizes (4,096 tokens of 256), one memory frame. (With 7 memory frames the
    shared path differs by float rounding, ~1e-6: docs/benchmarks.md; not asserted here.)"""
    released = sam2_model.build_model("sam2.1_hiera_tiny", None, device="cpu").eval()
    generator = torch.Generator().manual_seed(4)
    batch, grid = 3, released.embedding_size ** 2
    length = grid + 4 * released.tokens_per_pointer
    current = torch.randn(1, grid, released.hidden_dim, generator=generator)
    current_pos = torch.randn(1, grid, released.hidden_dim, generator=generator)
    memory = torch.randn(batch, length, released.mem_dim, generator=generator)
    memory_pos = torch.randn(batch, length, released.mem_dim, generator=generator)
    attention = released.memory_attention
    pointers = length - grid
    shared = attention(current, current_pos, memory, memory_pos, pointers)
    each = unshared_memory_attention(attention, current.expand(batch, -1, -1).contiguous(),
                                     current_pos.expand(batch, -1, -1).contiguous(), memory, memory_pos, pointers, None)
    assert torch.equal(shared, each)
