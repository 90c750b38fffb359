"""Training data drawn in worker processes, a few steps ahead of the optimiser.

Generating a step's videos takes about 0.1 s of one core (2 clips of 16 frames from 24-frame
event videos, measured on the CI-class CPU): a few % of a step on a CPU, but a GPU step of a
small model is short enough that training would wait for it. Each step's data
depends on ``(seed, step)`` alone (``draw_step_data``), so workers make exactly the data the
training process would have made: a run gives the same result with any number of workers.
Workers are spawned (not forked): forking a process that has initialised CUDA is unsafe.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from typing import Deque, Optional, Tuple

from .clips import ClipSource
from .step_data import EVERY_CLIP, ClipShare, StepData, draw_step_data
from .train_config import TrainConfig

# What each worker draws from, set once by the pool's initializer.
_worker_inputs: Optional[Tuple[TrainConfig, ClipSource, Optional[ClipSource], int, ClipShare]] = None


def _start_worker(config: TrainConfig, source: ClipSource, image_source: Optional[ClipSource],
                  image_size: int, share: ClipShare) -> None:
    import torch

    torch.set_num_threads(1)  # the workers share the cores among themselves and with training
    global _worker_inputs
    _worker_inputs = (config, source, image_source, image_size, share)


def _draw(step: int) -> StepData:
    config, source, image_source, image_size, share = _worker_inputs
    return draw_step_data(config, step, source, image_source, image_size, share)


class StepDataPrefetcher:
    """``get(step)`` returns the data of ``step``, steps being asked for in order; up to
    ``lookahead`` later steps are being drawn meanwhile."""

    def __init__(self, workers: int, config: TrainConfig, source: ClipSource,
                 image_source: Optional[ClipSource], image_size: int, lookahead: Optional[int] = None,
                 share: ClipShare = EVERY_CLIP):
        """``share``: the clips this process trains on (its share of each step, distributed runs)."""
        if workers < 1:
            raise ValueError("a prefetcher needs at least one worker")
        self._pool = multiprocessing.get_context("spawn").Pool(
            workers, initializer=_start_worker, initargs=(config, source, image_source, image_size, share))
        self._lookahead = lookahead or 2 * workers
        self._last_step = config.steps
        self._pending: Deque[Tuple[int, "multiprocessing.pool.AsyncResult"]] = deque()

    def get(self, step: int) -> StepData:
        if self._pending and self._pending[0][0] != step:  # not the next step (a resumed run): start over
            self._pending.clear()
        next_step = self._pending[-1][0] + 1 if self._pending else step
        while len(self._pending) < self._lookahead and next_step < self._last_step:
            self._pending.append((next_step, self._pool.apply_async(_draw, (next_step,))))
            next_step += 1
        if not self._pending:  # past the run's last step: draw it anyway
            return self._pool.apply(_draw, (step,))
        _, result = self._pending.popleft()
        return result.get()

    def close(self) -> None:
        # The steps in flight (at most ``lookahead``, about 0.1 s each) finish first: terminate()
        # kills a worker that may be writing its result, and the pool's result thread then waits
        # forever on the half-written message (CPython's Pool; it hung a CI run once).
        self._pending.clear()
        self._pool.close()
        self._pool.join()

    def __enter__(self) -> "StepDataPrefetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
