"""Stand-ins for the tracker in sam2-eval tests: they know the ground truth and answer from it."""

from types import SimpleNamespace

import numpy as np
import torch

from sam2_ros.evaluation.runner import InProcessRunner


class PerfectTracker:
    """A StreamingTracker stand-in that returns the ground truth; it also checks every prompt."""

    def __init__(self, labels_per_frame):
        self.labels = labels_per_frame
        self.t = -1
        self.obj_ids = []
        self.prompts = []  # (frame, obj_id, kind)

    def truth(self, obj_id):
        labels = self.labels[self.t]
        return np.zeros(self.size, dtype=bool) if labels is None else labels == obj_id

    def predict(self, obj_id):
        return self.truth(obj_id)

    def result(self):
        masks = np.stack([self.predict(i) for i in self.obj_ids]) if self.obj_ids else np.zeros((0, *self.size), bool)
        return SimpleNamespace(frame_index=self.t, obj_ids=list(self.obj_ids), masks=torch.from_numpy(masks))

    def track(self, frame):
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
        self.size = frame.shape[:2]
        self.t += 1
        return self.result()

    def add_prompt(self, obj_id, points=None, labels=None, box=None, mask=None, clear_old_points=True):
        truth = self.truth(obj_id)
        assert truth.any(), f"object {obj_id} prompted on frame {self.t} where it is absent"
        given = [name for name, v in (("click", points), ("box", box), ("mask", mask)) if v is not None]
        assert len(given) == 1
        if mask is not None:
            np.testing.assert_array_equal(mask, truth)
        if box is not None:
            ys, xs = np.nonzero(truth)
            np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max(), ys.max()])
        if points is not None:
            (x, y), = points
            assert truth[int(y), int(x)] and list(labels) == [1]
        self.prompts.append((self.t, obj_id, given[0]))
        if obj_id not in self.obj_ids:
            self.obj_ids.append(obj_id)
        return self.result()


class FlawedTracker(PerfectTracker):
    """Object 1 shifted 2 px right, object 2 never found, object 3 exact."""

    def predict(self, obj_id):
        truth = self.truth(obj_id)
        if obj_id == 1:
            shifted = np.zeros_like(truth)
            shifted[:, 2:] = truth[:, :-2]
            return shifted
        if obj_id == 2:
            return np.zeros_like(truth)
        return truth


class StubRunner:
    """A Runner giving each sequence a fresh stub tracker that knows that sequence's ground truth."""

    description = "stub tracker"

    def __init__(self, tracker_class):
        self.tracker_class = tracker_class
        self.trackers = []

    def run(self, sequence, prompt_kind):
        def make():
            self.trackers.append(self.tracker_class([f.gt_labels for f in sequence]))
            return self.trackers[-1]

        return InProcessRunner(make, description=self.description).run(sequence, prompt_kind)
