"""sam2-train under torchrun: two gloo processes train the weights one process trains on the same
global batch, checkpoints resume across world sizes, a failing rank ends the job with its error."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sam2_model.config import DEFAULT_CHECKPOINT_PATH, DEFAULT_CONFIG_PATH, load_config_yaml
from sam2_model.train.clips import ProceduralClips
from sam2_model.train.distributed import DistributedSetupError, World, world_from_environment
from sam2_model.train.procedural import ProceduralConfig
from sam2_model.train.prompting import ObjectDraws, sample_box, sample_click, sample_correction
from sam2_model.train.step_data import ClipShare, draw_step_data
from sam2_model.train.train_config import TrainConfig
from sam2_model.train.trainer import FINAL_WEIGHTS, LAST_CHECKPOINT

REPO = Path(__file__).resolve().parents[1]
IMAGE_SIZE = load_config_yaml(DEFAULT_CONFIG_PATH).image_size
# Gradients summed in another order (all-reduce, batch shapes) differ by float rounding, which
# AdamW's per-element normalisation amplifies where a gradient is small: allow 1 % of what two
# steps at the learning rate (1e-3) can move a weight. A wrong share, scale or draw moves
# weights by the whole step (tested: the first version, with dropout, differed by 4e-3).
WEIGHT_TOLERANCE = 2e-5
# Tiny runs: 2 steps of 4 two-frame clips of the bundled model (its weights: the same start everywhere) on 64-pixel generated videos.
TRAIN_ARGUMENTS = ["--config", "default", "--procedural", "--clip-length", "2", "--max-objects", "2",
                   "--clips-per-step", "4", "--warmup", "1", "--frame-size", "64", "--video-frames", "4",
                   "--no-progress", "--threads", "1", "--checkpoint-every", "1"]


def _torchrun(processes: int) -> list:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]


@pytest.fixture(scope="module")
def model_arguments(tmp_path_factory) -> list:
    """The bundled model without dropout. Dropout masks come from each process's own random
    stream (as in any data-parallel training), so only a model without dropout can train the
    same weights in one and in two processes; everything else (the data each process draws, the
    simulated clicks, the loss scale, accumulation) must and does match exactly."""
    folder = tmp_path_factory.mktemp("model")
    text = Path(DEFAULT_CONFIG_PATH).read_text(encoding="utf-8")
    assert "dropout: 0.1" in text
    (folder / "no_dropout.yaml").write_text(text.replace("dropout: 0.1", "dropout: 0.0"), encoding="utf-8")
    return ["--config", str(folder / "no_dropout.yaml"), "--checkpoint", DEFAULT_CHECKPOINT_PATH]


def _train(out: Path, processes: int, steps: int, *extra: str, resume: bool = False) -> subprocess.CompletedProcess:
    launcher = _torchrun(processes) if processes > 1 else [sys.executable]
    command = [*launcher, "-m", "sam2_model.train", *TRAIN_ARGUMENTS, "--steps", str(steps), "--out", str(out),
               *extra, *(["--resume"] if resume else [])]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _weights(out: Path) -> dict:
    return torch.load(out / FINAL_WEIGHTS, weights_only=True)["model"]


def _key_bias_rows(name: str, size: int) -> slice:
    """The elements of an attention key bias: softmax ignores a constant added to every key, so
    their gradient is zero in exact arithmetic and only float rounding, which AdamW's
    normalisation turns into steps of up to the learning rate, moves them."""
    if name.endswith("k_proj.bias"):
        return slice(0, size)
    if name.endswith("qkv.bias"):  # Hiera's fused query/key/value projection
        return slice(size // 3, 2 * size // 3)
    return slice(0, 0)


def _assert_same_weights(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    worst, worst_name = 0.0, ""
    for name in first:
        difference = (first[name].float() - second[name].float()).abs()
        if difference.dim() == 1:
            key_rows = _key_bias_rows(name, len(difference))
            # At most two steps of the learning rate (1e-3), of any sign.
            assert float(difference[key_rows].sum()) <= 4e-3 * len(difference[key_rows]), name
            difference[key_rows] = 0.0
        if float(difference.max()) > worst:
            worst, worst_name = float(difference.max()), name
    assert worst <= WEIGHT_TOLERANCE, f"largest weight difference {worst} ({worst_name})"


# ----------------------------------------------------------------------------- the pieces
def test_clip_shares_cover_the_batch_in_order_once():
    for total, world in [(4, 2), (5, 2), (7, 3), (3, 3)]:
        blocks = [ClipShare(rank, world).clips(total) for rank in range(world)]
        assert [k for block in blocks for k in block] == list(range(total))
        assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
    with pytest.raises(ValueError, match="cannot be shared by 3 processes"):
        ClipShare(0, 3).clips(2)


def test_each_process_draws_exactly_its_clips_of_the_global_batch():
    config = TrainConfig(clip_length=2, clips_per_step=5, max_objects=2, seed=7)
    source = ProceduralClips(2, ProceduralConfig(height=48, width=48, num_frames=4))
    whole = draw_step_data(config, 3, source, None, IMAGE_SIZE)
    shares = [draw_step_data(config, 3, source, None, IMAGE_SIZE, ClipShare(rank, 2)) for rank in range(2)]
    assert [len(share.clips) for share in shares] == [3, 2]
    joined = [clip for share in shares for clip in share.clips]
    assert len(joined) == len(whole.clips) == 5
    for mine, reference in zip(joined, whole.clips):
        np.testing.assert_array_equal(mine.frames, reference.frames)
    assert [ids for share in shares for ids in share.obj_ids] == whole.obj_ids
    assert all(share.plan == whole.plan and share.generator_seed == whole.generator_seed for share in shares)


def test_simulated_prompts_of_an_object_do_not_depend_on_who_holds_it():
    rng = np.random.default_rng(0)
    truth = torch.from_numpy(rng.random((5, 32, 32)) < 0.2)
    predicted = torch.from_numpy(rng.random((5, 32, 32)) < 0.2)
    truth[3] = False  # an empty object (any pixel)

    def prompts(rows: range) -> tuple:
        draws = ObjectDraws(torch.Generator().manual_seed(11), rows.start, 5)
        click = sample_click(truth[rows.start:rows.stop], draws)
        box = sample_box(truth[rows.start:rows.stop], draws)
        fix = sample_correction(predicted[rows.start:rows.stop], truth[rows.start:rows.stop], draws)
        return click.coords, box.coords, fix.coords, fix.labels

    whole, parts = prompts(range(0, 5)), [prompts(range(0, 2)), prompts(range(2, 5))]
    for index, reference in enumerate(whole):
        torch.testing.assert_close(torch.cat([part[index] for part in parts]), reference, rtol=0, atol=0)
    # Clicks land on their object, corrections on its error.
    xy = whole[0][:, 0].long()
    inside = truth[torch.arange(5), xy[:, 1], xy[:, 0]]
    assert bool(inside[[0, 1, 2, 4]].all())
    fix_xy = whole[2][:, 0].long()
    wrong = (truth ^ predicted)[torch.arange(5), fix_xy[:, 1], fix_xy[:, 0]]
    assert bool(wrong.all())


def test_world_comes_from_torchruns_environment(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert world_from_environment() == World()
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert world_from_environment() == World(1, 2, 1)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(DistributedSetupError, match="RANK 2 is outside WORLD_SIZE 2"):
        world_from_environment()


# ----------------------------------------------------------------------------- real processes
def test_two_processes_train_the_weights_of_one_and_resume_across_world_sizes(tmp_path, model_arguments):
    one = tmp_path / "one"
    _train(one, 1, 2, *model_arguments)
    two = tmp_path / "two"
    done = _train(two, 2, 2, *model_arguments)
    assert "trained 2 steps on 2 processes" in done.stdout
    _assert_same_weights(_weights(one), _weights(two))
    # The training really moved the weights (so equal results are not equal starts).
    start = torch.load(DEFAULT_CHECKPOINT_PATH, weights_only=True)["model"]
    assert max(float((start[k].float() - v.float()).abs().max()) for k, v in _weights(one).items()) > 1e-4
    # Accumulation: the same batch in two passes per process.
    accumulated = tmp_path / "accumulated"
    _train(accumulated, 2, 2, *model_arguments, "--accumulation-steps", "2")
    _assert_same_weights(_weights(one), _weights(accumulated))
    # A checkpoint of 2 processes resumed by 1, and the other way round.
    for first, then in [(2, 1), (1, 2)]:
        out = tmp_path / f"resumed_{first}_{then}"
        _train(out, first, 1, *model_arguments)
        assert torch.load(out / LAST_CHECKPOINT, weights_only=True)["train_state"]["step"] == 1
        _train(out, then, 2, *model_arguments, resume=True)
        _assert_same_weights(_weights(one), _weights(out))


def test_a_failing_rank_ends_the_job_with_its_error(tmp_path):
    command = [*_torchrun(2), str(REPO / "tests" / "distributed_failing_rank.py"), "--config", "default",
               *TRAIN_ARGUMENTS,
               "--steps", "50", "--out", str(tmp_path / "run")]
    # A script (not -m) has its own folder first on sys.path: this checkout's packages come next.
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, env=environment)
    elapsed = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "rank 1 fails on purpose at step 1" in output
    # Both processes are gone well before the collective timeout would have ended the survivor.
    assert elapsed < 120, f"took {elapsed:.0f} s"


@pytest.mark.parametrize("arguments, message", [
    (["--clips-per-step", "2", "--accumulation-steps", "3"], "need at least 3 clips per step"),
    (["--accumulation-steps", "0"], "accumulation_steps must be >= 1"),
])
def test_bad_sharing_settings_are_one_line_and_exit_2(tmp_path, arguments, message):
    done = subprocess.run([sys.executable, "-m", "sam2_model.train", "--config", DEFAULT_CONFIG_PATH,
                           "--procedural", *arguments, "--out", str(tmp_path / "o"), "--steps", "1", "--no-progress"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sam2-train: error:") and message in lines[0], done.stderr


def test_scaling_report_gives_each_process_counts_speed_up_over_the_first():
    from sam2_model.train.scaling_benchmark import ScalingResult, report

    results = [ScalingResult(1, [2.0, 4.0, 3.0]), ScalingResult(2, [1.0, 2.0, 1.5])]
    assert results[0].median == 3.0 and results[1].median == 1.5
    lines = report(results, "cpu").splitlines()
    assert lines[2].split()[0] == "1" and lines[2].endswith("1.00x")
    assert lines[3].split()[0] == "2" and lines[3].endswith("2.00x")
