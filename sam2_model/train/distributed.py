"""Training on several processes: ``torch.distributed`` with ``DistributedDataParallel``.

Started by torchrun (``torchrun --nproc_per_node N -m sam2_model.train ...``), which sets RANK,
WORLD_SIZE and LOCAL_RANK for each process, restarts or ends the group when one fails, and
rendezvous the processes of several machines. Without those variables nothing here starts a
process group: a single-process run is the plain run.

What is shared and how (the trainer uses it):
  - each step's global batch of clips is split into contiguous shares (``World.share``); each
    process draws and trains only its share (``step_data.ClipShare``);
  - gradients are averaged by DDP; the trainer scales each process's loss by the world size over
    the step's global object count, so the sum equals a single process's normalised loss;
  - rank 0 alone logs, validates and writes checkpoints; checkpoints hold the plain model's
    state dict, so a run of any world size resumes from them.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import List

import torch
import torch.distributed as dist

from .step_data import ClipShare

# How long a collective waits for the other processes before failing. A rank that dies is
# normally noticed sooner by torchrun, which then ends the others; this bounds the rest (a rank
# stuck without dying). Rank 0's validation runs between collectives, so keep it above that.
DEFAULT_TIMEOUT_S = 300.0


class DistributedSetupError(RuntimeError):
    pass


@dataclass(frozen=True)
class World:
    """This process's place in the group (``rank`` 0 of 1 for a single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0   # index among the processes on this machine (picks the GPU)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def share(self) -> ClipShare:
        return ClipShare(self.rank, self.world_size)


SINGLE_PROCESS = World()


def _environment_int(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise DistributedSetupError(f"{name}={value!r} is not an integer (set by torchrun)") from None


def world_from_environment() -> World:
    """The world torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK (one process without them)."""
    if "WORLD_SIZE" not in os.environ:
        return SINGLE_PROCESS
    world = World(_environment_int("RANK"), _environment_int("WORLD_SIZE"),
                  _environment_int("LOCAL_RANK") if "LOCAL_RANK" in os.environ else 0)
    if not 0 <= world.rank < world.world_size:
        raise DistributedSetupError(f"RANK {world.rank} is outside WORLD_SIZE {world.world_size}")
    return world


def process_device(world: World, device: str) -> str:
    """The device of this process: on CUDA one GPU per process on its machine (``cuda:LOCAL_RANK``)."""
    if not world.distributed or not device.startswith("cuda"):
        return device
    if device != "cuda":
        raise DistributedSetupError(f"--device {device}: under torchrun give plain 'cuda', each process "
                                    "takes the GPU of its LOCAL_RANK")
    available = torch.cuda.device_count()
    if world.local_rank >= available:
        raise DistributedSetupError(f"LOCAL_RANK {world.local_rank} but this machine has {available} GPU(s): "
                                    "start at most one process per GPU (--nproc_per_node)")
    return f"cuda:{world.local_rank}"


def start(world: World, device: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Join the process group: NCCL between GPUs, gloo on CPUs. Nothing for a single process."""
    if not world.distributed:
        return
    if timeout_s <= 0:
        raise DistributedSetupError(f"the collective timeout must be > 0 s, got {timeout_s}")
    on_cuda = device.startswith("cuda")
    if on_cuda:
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group("nccl" if on_cuda else "gloo", rank=world.rank, world_size=world.world_size,
                            timeout=datetime.timedelta(seconds=timeout_s))


def stop() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def sum_across(values: torch.Tensor) -> torch.Tensor:
    """``values`` summed over every process (as they are for a single process)."""
    if not active():
        return values
    total = values.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def gather_counts(count: int, device: torch.device) -> List[int]:
    """Every process's ``count``, in rank order."""
    if not active():
        return [count]
    mine = torch.tensor([count], dtype=torch.int64, device=device)
    everyone = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, mine)
    return [int(value) for value in everyone]
