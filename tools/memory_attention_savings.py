"""Measure the exact savings in memory attention (docs/benchmarks.md, "Where the 3-object time goes").

``python tools/memory_attention_savings.py [--model sam2.1_hiera_tiny] [--objects 3] [--repeats 5]``

Memory attention of N objects that all see one frame, with a full memory bank (``num_maskmem``
spatial memories and the full pointer window per object; random tokens: timing does not depend on
values), measured alternately in one process:

* all objects in one batch against one object at a time (the official predictor's loop);
* the first layer's self-attention computed once for the shared frame (what the tracker does)
  against once per object (what it did before, and what the official predictor does);
* what a cache of each stored memory's value projections would save (``v_proj`` of every memory
  token, every layer) and what it would cost (copying the cached values into the padded batch each
  frame, and the bytes kept per memory);
* the same for the conditioning memories' keys, the only exactly cacheable keys: a recent
  memory's key includes its temporal encoding ``maskmem_tpos_enc[age]``, which changes every frame.

Each line gives per-repeat times, their median and the before/after ratio; whether the shared
path is bit-identical (``torch.equal``) to the per-object one is checked on the same inputs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable, Dict, List

import torch

from sam2_model.build import build_model
from sam2_model.position_encoding import apply_axial_rotary


def _ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sam2.1_hiera_tiny")
    parser.add_argument("--objects", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args.model, None, device="cpu").eval()
    attention = model.memory_attention
    config = model.config
    batch, grid = args.objects, model.embedding_size ** 2
    frames = config.num_maskmem
    pointers = config.max_obj_ptrs_in_encoder if config.use_obj_ptrs_in_encoder else 0
    pointer_tokens = pointers * model.tokens_per_pointer
    length = frames * grid + pointer_tokens
    current = torch.randn(1, grid, model.hidden_dim)
    current_pos = torch.randn(1, grid, model.hidden_dim)
    memory = torch.randn(batch, length, model.mem_dim)
    memory_pos = torch.randn(batch, length, model.mem_dim)
    per_object = (current.expand(batch, -1, -1).contiguous(), current_pos.expand(batch, -1, -1).contiguous())
    layers = list(attention.layers)
    cross = [layer.cross_attn_image for layer in layers]
    # A value cache: per object, per stored memory, per layer, the projected values.
    cached_values = [[[c.v_proj(memory[b, f * grid:(f + 1) * grid]) for f in range(frames)] for b in range(batch)]
                     for c in cross]
    cached_pointer_values = [c.v_proj(memory[:, frames * grid:]) for c in cross]
    cached_cond_keys = [apply_axial_rotary(c._split_heads(c.k_proj(memory[:, :grid] + memory_pos[:, :grid])),
                                           c._rotations_for(grid, memory.device)) for c in cross]

    def shared():
        return attention(current, current_pos, memory, memory_pos, pointer_tokens)

    def unshared():
        return attention(per_object[0], per_object[1], memory, memory_pos, pointer_tokens)

    def looped():  # one object at a time, as the official predictor tracks
        return [attention(current, current_pos, memory[b:b + 1], memory_pos[b:b + 1], pointer_tokens)
                for b in range(batch)]

    def project_values():
        return [c.v_proj(memory) for c in cross]

    def assemble_values():
        return [torch.cat((torch.stack([torch.cat(rows) for rows in per_layer]), pointers), dim=1)
                for per_layer, pointers in zip(cached_values, cached_pointer_values)]

    def project_cond_keys():
        return [apply_axial_rotary(c._split_heads(c.k_proj(memory[:, :grid] + memory_pos[:, :grid])),
                                   c._rotations_for(grid, memory.device)) for c in cross]

    def assemble_keys():  # the rest of each key is computed per frame; the cached part joins it
        rest = [c._split_heads(c.k_proj(memory[:, grid:] + memory_pos[:, grid:])) for c in cross]
        return [torch.cat((cached, r), dim=2) for cached, r in zip(cached_cond_keys, rest)]

    def project_rest_keys():
        return [c._split_heads(c.k_proj(memory[:, grid:] + memory_pos[:, grid:])) for c in cross]

    with torch.inference_mode():
        same = torch.equal(shared(), unshared())
        values_same = all(torch.equal(torch.cat(rows), full[b, :frames * grid])
                          for per_layer, full in zip(cached_values, project_values())
                          for b, rows in enumerate(per_layer))
        keys_same = all(torch.equal(a, b) for a, b in zip(cached_cond_keys, project_cond_keys()))
        timings: Dict[str, List[float]] = {name: [] for name in
                                           ("looped", "unshared", "shared", "v_proj", "v_assemble", "k_cond", "k_rest_cat",
                                            "k_rest")}
        for _ in range(args.repeats):
            timings["looped"].append(_ms(looped))
            timings["unshared"].append(_ms(unshared))
            timings["shared"].append(_ms(shared))
            timings["v_proj"].append(_ms(project_values))
            timings["v_assemble"].append(_ms(assemble_values))
            timings["k_cond"].append(_ms(project_cond_keys))
            timings["k_rest"].append(_ms(project_rest_keys))
            timings["k_rest_cat"].append(_ms(assemble_keys))
    median = {name: statistics.median(values) for name, values in timings.items()}
    internal = cross[0].internal_dim
    value_bytes = len(cross) * grid * internal * 4
    memory_bytes = model.mem_dim * grid * 2  # a stored memory: bfloat16 [mem_dim, h, w]
    print(f"{args.model}: {batch} objects, {frames} memories of {grid} tokens + {pointer_tokens} pointer tokens, "
          f"{len(layers)} layers, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.repeats} repeats")
    for name, values in timings.items():
        print(f"  {name:<12} median {median[name]:9.1f} ms   " + " ".join(f"{v:.1f}" for v in values))
    print(f"batching: one object at a time {median['looped']:.1f} ms, batched {median['unshared']:.1f} ms "
          f"(ratio {median['looped'] / median['unshared']:.3f}x)")
    print(f"(a) shared first self-attention: bit-identical {same}; memory attention "
          f"{median['unshared']:.1f} -> {median['shared']:.1f} ms, ratio {median['unshared'] / median['shared']:.3f}x "
          f"(per repeat {min(u / s for u, s in zip(timings['unshared'], timings['shared'])):.3f}-"
          f"{max(u / s for u, s in zip(timings['unshared'], timings['shared'])):.3f}x), "
          f"saves {median['unshared'] - median['shared']:.1f} ms per frame")
    print(f"(b) value cache: bit-identical {values_same}; saves v_proj {median['v_proj']:.1f} ms, costs assembly "
          f"{median['v_assemble']:.1f} ms: net {median['v_proj'] - median['v_assemble']:.1f} ms per frame; "
          f"{value_bytes / 2**20:.1f} MiB per memory per object (the memory itself: {memory_bytes / 2**20:.2f} MiB)")
    k_saved = median["k_cond"] + median["k_rest"] - median["k_rest_cat"]
    print(f"    conditioning-key cache: bit-identical {keys_same}; keys {median['k_cond'] + median['k_rest']:.1f} -> "
          f"{median['k_rest_cat']:.1f} ms: net {k_saved:.1f} ms per frame; {value_bytes / 2**20:.1f} MiB per "
          f"conditioning memory per object")
    return 0


if __name__ == "__main__":
    sys.exit(main())
