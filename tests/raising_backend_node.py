"""The tracker node executable with a backend whose prompt and service calls raise RuntimeError
while the file named by ``SAM2_TEST_FAULT_FILE`` exists (tests/test_node_bad_input.py): an error
none of the node's handlers expects, such as a CUDA out-of-memory in the model. Everything else,
and every call while the file is absent, goes to the real backend.

Run as a script (``python tests/raising_backend_node.py --ros-args ...``): the working tree comes
first on the path, as with ``python -m sam2_ros.tracker_node`` from the repository root.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sam2_ros import tracker_node  # noqa: E402

FAULT_FILE = "SAM2_TEST_FAULT_FILE"
FAULTY_CALLS = ("add_prompt", "remove_object", "reset", "discover")


class RaisingBackend:
    """A ``TrackerBackend`` passed through, except ``FAULTY_CALLS`` while the switch file exists."""

    def __init__(self, backend, switch: Path):
        self._backend, self._switch = backend, switch

    def __getattr__(self, name):
        call = getattr(self._backend, name)
        if name not in FAULTY_CALLS:
            return call

        def faulty(*args, **kwargs):
            if self._switch.exists():
                raise RuntimeError(f"CUDA out of memory (simulated in {name})")
            return call(*args, **kwargs)
        return faulty


def main() -> None:
    switch = Path(os.environ[FAULT_FILE])
    open_backend = tracker_node.open_backend
    tracker_node.open_backend = lambda *args: RaisingBackend(open_backend(*args), switch)
    tracker_node.main()


if __name__ == "__main__":
    main()
