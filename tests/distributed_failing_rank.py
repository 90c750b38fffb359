"""sam2-train under torchrun with rank 1 raising at its second step (tests/test_train_distributed.py):
the other rank then waits in a gradient exchange that never completes, and torchrun must end it."""

import os
import sys

from sam2_model.train import cli, trainer


class FailingRankError(RuntimeError):
    pass


_train_step = trainer.Trainer.train_step


def _failing_train_step(self, data=None):
    if self.world.rank == 1 and self.step == 1:
        raise FailingRankError("rank 1 fails on purpose at step 1")
    return _train_step(self, data)


if __name__ == "__main__":
    assert os.environ.get("WORLD_SIZE") == "2", "run under torchrun --nproc_per_node 2"
    trainer.Trainer.train_step = _failing_train_step
    sys.exit(cli.main(sys.argv[1:]))
