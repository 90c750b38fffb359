"""Training: a short CPU run learns, checkpoints reload strictly and resume, training's memory
equals the tracker's, fine-tuning a parity model on a DAVIS-format folder runs end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import sam2_model
from sam2_model.config import DEFAULT_CONFIG_PATH, load_config_yaml
from sam2_model.sam2 import MASK_AS_OUTPUT_BIAS, MASK_AS_OUTPUT_SCALE
from sam2_model.train.clips import ProceduralClips, TrainingClip, to_model_clip
from sam2_model.train.procedural import ProceduralConfig, generate_video, generate_with_events, write_davis
from sam2_model.train.rollout import ClipRollout
from sam2_model.train.prefetch import StepDataPrefetcher
from sam2_model.train.step_data import RolloutPlan, draw_step_data, sample_plan
from sam2_model.train.train_config import TrainConfig
from sam2_model.train.trainer import LAST_CHECKPOINT, Trainer
from sam2_model.train.validation import procedural_validation_set, validate
from parity_sessions import STREAM_FILES, load_session

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGE_SIZE = load_config_yaml(DEFAULT_CONFIG_PATH).image_size


def fresh_default_model(seed: int = 0) -> sam2_model.SAM2Model:
    """The bundled architecture with fresh (untrained) weights."""
    torch.manual_seed(seed)
    return sam2_model.build_model(DEFAULT_CONFIG_PATH)


def short_video(length: int, seed: int, **config):
    """A generated video with at least one target on its first frame."""
    for attempt in range(50):
        video = generate_video(seed + attempt, ProceduralConfig(num_frames=length, **config))
        if video.visible(1, min_pixels=30)[0]:
            return video
    raise AssertionError("no generated video with a visible target")


def fixed_clip(length: int = 4, seed: int = 3):
    video = short_video(length, seed, max_targets=2)
    return to_model_clip(TrainingClip(video.frames, video.labels), DEFAULT_IMAGE_SIZE, torch.device("cpu"),
                         np.random.default_rng(0), max_objects=2)


class FixedSource:
    def __init__(self, clip: TrainingClip):
        self.clip = clip

    def sample(self, rng):
        return self.clip


def test_short_cpu_training_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = fresh_default_model().train()
    clip = fixed_clip()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    plan = RolloutPlan("click", initial_corrections=1)
    losses = []
    for _ in range(12):
        result = ClipRollout(model, torch.Generator().manual_seed(0)).run(clip.images, clip.truth, plan)
        loss = result.losses.total / result.num_supervised
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses


def test_rollout_memory_equals_the_streaming_trackers():
    """Training attends to exactly the memories the tracker keeps: same logits frame by frame."""
    model = fresh_default_model(seed=1).eval()
    # frames at the model's input size: the clip's true masks then serve as the tracker's prompts as they are
    video = generate_with_events(11, ProceduralConfig(num_frames=10, max_targets=2, height=DEFAULT_IMAGE_SIZE,
                                                      width=DEFAULT_IMAGE_SIZE))
    clip = to_model_clip(TrainingClip(video.frames, video.labels), DEFAULT_IMAGE_SIZE, torch.device("cpu"),
                         np.random.default_rng(0), max_objects=2)
    with torch.no_grad():
        rollout = ClipRollout(model, torch.Generator().manual_seed(0)).run(
            clip.images, clip.truth, RolloutPlan("mask", initial_corrections=0))
    tracker = sam2_model.StreamingTracker(model, fill_hole_area=0)
    for index, frame in enumerate(video.frames):
        result = tracker.track(frame)
        if index == 0:
            for row, obj_id in enumerate(clip.obj_ids):
                result = tracker.add_prompt(obj_id, mask=clip.truth[row, 0].numpy())
        torch.testing.assert_close(result.low_res_logits[:, 0], rollout.low_res_logits[:, index],
                                   atol=1e-4, rtol=0)
        torch.testing.assert_close(result.object_score_logits, rollout.object_score_logits[:, index],
                                   atol=1e-4, rtol=0)


def test_clips_batched_in_one_rollout_equal_each_clip_alone():
    """Several clips in one batch give each object exactly what its own clip alone gives."""
    model = fresh_default_model(seed=2).eval()
    first, second = fixed_clip(length=3, seed=3), fixed_clip(length=3, seed=40)
    plan = RolloutPlan("mask", initial_corrections=0)
    rollout = ClipRollout(model, torch.Generator().manual_seed(0))
    with torch.no_grad():
        alone = [rollout.run(clip.images, clip.truth, plan) for clip in (first, second)]
        clip_of_object = torch.tensor([0] * len(first.obj_ids) + [1] * len(second.obj_ids))
        together = rollout.run(torch.stack([first.images, second.images]),
                               torch.cat([first.truth, second.truth]), plan, clip_of_object)
    torch.testing.assert_close(together.low_res_logits,
                               torch.cat([result.low_res_logits for result in alone]), atol=1e-4, rtol=0)
    torch.testing.assert_close(together.object_score_logits,
                               torch.cat([result.object_score_logits for result in alone]), atol=1e-4, rtol=0)
    assert together.num_supervised == alone[0].num_supervised
    # The two clips really differ (so the comparison above would catch mixed-up frames).
    assert not torch.allclose(alone[0].object_score_logits[:1, 1:], alone[1].object_score_logits[:1, 1:])


def test_feature_scale_cap_brings_the_image_features_back_to_the_limit(tmp_path):
    model = fresh_default_model()
    clip = fixed_clip(length=2)
    with torch.no_grad():
        before = float(model.encode_image(clip.images).image_embed.pow(2).mean().sqrt())
    limit = before / 4
    config = TrainConfig(steps=1, clip_length=2, max_objects=2, warmup_steps=1, lr=1e-6, max_feature_rms=limit)
    video = short_video(2, 3, max_targets=2)
    Trainer(model, FixedSource(TrainingClip(video.frames, video.labels)), config, tmp_path).train_step()
    with torch.no_grad():
        after = float(model.encode_image(clip.images).image_embed.pow(2).mean().sqrt())
    assert after == pytest.approx(limit, rel=0.02)
    # Frozen encoder: the cap leaves the features as they are.
    frozen = fresh_default_model()
    config = TrainConfig(steps=1, clip_length=2, max_objects=2, warmup_steps=1, max_feature_rms=limit,
                         freeze=("image_encoder",))
    Trainer(frozen, FixedSource(TrainingClip(video.frames, video.labels)), config, tmp_path).train_step()
    with torch.no_grad():
        unchanged = float(frozen.encode_image(clip.images).image_embed.pow(2).mean().sqrt())
    assert unchanged == pytest.approx(before, rel=1e-5)


def test_checkpoints_are_official_format_reload_strictly_and_resume(tmp_path):
    model = fresh_default_model()
    video = short_video(3, 5)
    clip = TrainingClip(video.frames, video.labels)
    config = TrainConfig(steps=2, clip_length=3, max_objects=1, warmup_steps=1, checkpoint_every=1)
    trainer = Trainer(model, FixedSource(clip), config, tmp_path)
    weights = trainer.run(progress=False)
    # Both files load strictly into the architecture, as official checkpoints do.
    for path in (weights, tmp_path / LAST_CHECKPOINT):
        assert set(torch.load(path, weights_only=True)) <= {"model", "train_state"}
        reloaded = sam2_model.build_model(DEFAULT_CONFIG_PATH, str(path))
        for name, tensor in model.state_dict().items():
            assert torch.equal(reloaded.state_dict()[name], tensor), name
    # Resuming restores the step and the optimiser state, and continues the schedule.
    resumed = Trainer(fresh_default_model(seed=7), FixedSource(clip), TrainConfig(**{**config.__dict__, "steps": 3}),
                      tmp_path)
    resumed.resume(tmp_path / LAST_CHECKPOINT)
    assert resumed.step == 2
    assert resumed.optimizer.state_dict()["state"].keys() == trainer.optimizer.state_dict()["state"].keys()
    resumed.run(progress=False)
    assert resumed.step == 3
    # A plain model checkpoint cannot be resumed from: say so.
    with pytest.raises(ValueError, match="no train_state"):
        resumed.resume(weights)
    # Another model's checkpoint is refused before anything is loaded: the trainer is as it was.
    before = {name: tensor.clone() for name, tensor in resumed.model.state_dict().items()}
    saved = torch.load(tmp_path / LAST_CHECKPOINT, weights_only=True)
    del saved["model"]["no_obj_ptr"]
    torch.save(saved, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="missing keys: no_obj_ptr"):
        resumed.resume(tmp_path / "other.pt")
    assert resumed.step == 3
    assert all(torch.equal(resumed.model.state_dict()[name], tensor) for name, tensor in before.items())


def test_procedural_training_through_the_command_line(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "sam2_model.train", "--config", DEFAULT_CONFIG_PATH, "--procedural",
               "--steps", "2", "--clip-length", "3", "--max-objects", "1", "--warmup", "1", "--out", str(out),
               "--no-progress", "--threads", "1", "--video-frames", "12", "--events", "--clips-per-step", "2",
               "--max-feature-rms", "1", "--click-probability", "0", "--box-probability", "1",
               "--image-step-probability", "0.5", "--images-per-step", "2", "--validate-every", "2",
               "--validation-clips", "2", "--data-workers", "1", "--object-score-weight", "3",
               "--max-distractors", "4"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert (out / "model.pt").exists() and (out / "model.yaml").exists() and (out / "log.jsonl").exists()
    state = torch.load(out / LAST_CHECKPOINT, weights_only=True)["train_state"]
    saved = state["train_config"]
    assert (saved["clips_per_step"], saved["max_feature_rms"], saved["box_probability"]) == (2, 1.0, 1.0)
    assert state["loss_weights"]["object_score"] == 3.0
    assert (saved["image_step_probability"], saved["images_per_step"]) == (0.5, 2)
    entries = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    held_out = [entry for entry in entries if "validation_j_per_frame" in entry]
    assert [entry["step"] for entry in held_out] == [2]
    assert {kind: len(j) for kind, j in held_out[0]["validation_j_per_frame"].items()} == {"box": 3, "mask": 3}
    assert "step 2: held-out J (box prompt: frame 0" in done.stderr
    resumed = subprocess.run(command[:command.index("--steps") + 1] + ["3"] + command[command.index("--steps") + 2:]
                             + ["--resume"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at step 2" in resumed.stderr
    assert torch.load(out / LAST_CHECKPOINT, weights_only=True)["train_state"]["step"] == 3


@pytest.mark.parametrize("arguments, message", [
    (["--config", "sam2_hiera_huge", "--procedural"], "unknown model"),
    (["--config", DEFAULT_CONFIG_PATH, "--checkpoint", "GARBAGE", "--procedural"], "GARBAGE"),
    (["--config", DEFAULT_CONFIG_PATH, "--davis", "/nonexistent/davis"], "/nonexistent/davis"),
    (["--config", DEFAULT_CONFIG_PATH, "--procedural", "--resume"], "does not exist"),
    (["--config", DEFAULT_CONFIG_PATH, "--procedural", "--events", "--video-frames", "8"], "at least 12 frames"),
    (["--config", DEFAULT_CONFIG_PATH, "--procedural", "--image-step-probability", "2"], "image_step_probability"),
    (["--config", DEFAULT_CONFIG_PATH, "--procedural", "--data-workers", "-1"], "--data-workers"),
    (["--config", DEFAULT_CONFIG_PATH, "--procedural", "--events", "--min-targets", "0"], "at least one target"),
    (["--config", DEFAULT_CONFIG_PATH, "--procedural", "--max-distractors", "-1"], "max_distractors must be >= 0"),
    (["--config", DEFAULT_CONFIG_PATH, "--procedural", "--validate-every", "1",
      "--validation-davis", "/nonexistent/val"], "/nonexistent/val"),
    (["--config", DEFAULT_CONFIG_PATH, "--procedural", "--validate-every", "1", "--validation-clips", "0"],
     "--validation-clips must be >= 1"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, arguments, message):
    if "GARBAGE" in arguments:
        garbage = tmp_path / "garbage.pt"
        garbage.write_bytes(b"not a checkpoint at all")
        arguments = [str(garbage) if a == "GARBAGE" else a for a in arguments]
        message = str(garbage)
    done = subprocess.run([sys.executable, "-m", "sam2_model.train", *arguments, "--out", str(tmp_path / "o"),
                           "--steps", "1", "--no-progress"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sam2-train: error:") and message in lines[0], done.stderr


def _last_checkpoint_that_is(kind: str, path: Path) -> str:
    """Writes a checkpoint_last.pt that --resume must refuse; returns what the refusal names."""
    weights = sam2_model.build_model(DEFAULT_CONFIG_PATH).state_dict()
    train_state = {"step": 1, "optimizer": {"state": {}, "param_groups": []}, "train_config": {"freeze": []}}
    if kind == "plain model":
        torch.save({"model": weights}, path)
        return "has no train_state"
    if kind == "corrupt":
        path.write_bytes(b"garbage")
        return "is not a readable PyTorch checkpoint"
    if kind == "another config":
        torch.save({"model": {"other.weight": torch.zeros(2)}, "train_state": train_state}, path)
        return "does not match the model"
    if kind == "another freeze":
        torch.save({"model": weights, "train_state": {**train_state, "train_config": {"freeze": ["image_encoder"]}}},
                   path)
        return "was trained with --freeze image_encoder, this run has --freeze (none)"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["plain model", "corrupt", "another config", "another freeze"])
def test_a_checkpoint_resume_cannot_use_is_one_line_and_exit_2(tmp_path, capsys, kind):
    """trainer.resume ran outside the errors the command line turns into its one-line message."""
    from sam2_model.train.cli import main

    out = tmp_path / "o"
    out.mkdir()
    words = _last_checkpoint_that_is(kind, out / LAST_CHECKPOINT)
    code = main(["--config", DEFAULT_CONFIG_PATH, "--procedural", "--resume", "--out", str(out), "--steps", "1",
                 "--no-progress"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"sam2-train: error: --resume: {out / LAST_CHECKPOINT}") and words in lines[0], lines


def test_a_zero_collective_timeout_under_torchrun_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    from sam2_model.train.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    code = main(["--config", DEFAULT_CONFIG_PATH, "--procedural", "--dist-timeout", "0", "--out", str(tmp_path),
                 "--steps", "1", "--no-progress"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and lines == ["sam2-train: error: the collective timeout must be > 0 s, got 0.0"], lines


def test_fine_tuning_a_parity_model_on_a_davis_folder_end_to_end(tmp_path):
    session = load_session(STREAM_FILES[0])
    config_path = tmp_path / "parity.yaml"
    config_path.write_text(session["resolved_config_yaml"])
    start = tmp_path / "parity.pt"
    torch.save({"model": session["state_dict"]}, start)
    davis = tmp_path / "davis"
    write_davis(davis, {f"clip{i}": short_video(5, 40 + 10 * i, height=96, width=128, max_targets=2)
                        for i in range(2)})
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "sam2_model.train", "--config", str(config_path), "--checkpoint",
                           str(start), "--davis", str(davis), "--steps", "2", "--clip-length", "3", "--max-objects",
                           "2", "--warmup", "1", "--lr", "1e-4", "--out", str(out), "--no-progress", "--threads", "1"],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr
    tuned = sam2_model.build_model(str(config_path), str(out / "model.pt"))  # strict: official keys
    changed = [k for k, v in tuned.state_dict().items() if not torch.equal(v, session["state_dict"][k].float())]
    assert changed, "fine-tuning did not change any weight"


def test_frozen_modules_stay_fixed_and_clips_accumulate(tmp_path):
    model = fresh_default_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    video = short_video(3, 5, min_targets=2, max_targets=2)
    config = TrainConfig(steps=1, clip_length=3, max_objects=2, warmup_steps=1, freeze=("image_encoder",),
                         clips_per_step=2)
    report = Trainer(model, FixedSource(TrainingClip(video.frames, video.labels)), config, tmp_path).train_step()
    assert report.num_objects == 4  # two clips of two objects in one step
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("image_encoder."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("memory_attention."))
    with pytest.raises(ValueError, match="nothing to train"):
        Trainer(fresh_default_model(), FixedSource(None), TrainConfig(freeze=("",)), tmp_path)


def test_image_steps_train_segmentation_on_single_frames_and_leave_memory_alone(tmp_path):
    model = fresh_default_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    video = short_video(4, 5, min_targets=2, max_targets=2)
    image = TrainingClip(video.frames[:1], video.labels[:1])
    config = TrainConfig(steps=2, clip_length=4, max_objects=2, warmup_steps=1, image_step_probability=1.0,
                         images_per_step=3, tracked_correction_probability=1.0)
    trainer = Trainer(model, FixedSource(None), config, tmp_path, image_source=FixedSource(image))
    report = trainer.train_step()
    # Three frames of two objects, prompted by a click or a box: the clip source is never read.
    assert report.image_step and report.num_objects == 6 and np.isfinite(report.losses["total"])
    after = model.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert {"image_encoder", "sam_mask_decoder", "sam_prompt_encoder"} <= changed
    # An image has no memory: memory attention and the memory encoder get no update.
    assert not changed & {"memory_attention", "memory_encoder"}, changed
    with pytest.raises(ValueError, match="image_source"):
        Trainer(fresh_default_model(), FixedSource(None), config, tmp_path)


def test_steps_mix_images_and_clips_in_the_asked_proportion(tmp_path):
    video = short_video(3, 5, max_targets=1)
    clip = TrainingClip(video.frames, video.labels)
    config = TrainConfig(steps=12, clip_length=3, max_objects=1, warmup_steps=1, image_step_probability=0.5,
                         images_per_step=2)
    trainer = Trainer(fresh_default_model(), FixedSource(clip), config, tmp_path,
                      image_source=FixedSource(TrainingClip(video.frames[:1], video.labels[:1])))
    kinds = [trainer.train_step().image_step for _ in range(12)]
    assert 2 <= sum(kinds) <= 10, kinds  # both kinds occur (binomial(12, 0.5) outside [2, 10]: 0.6 %)
    # A clip of one frame is an image; a plan for it has no tracked frame to correct.
    single = TrainConfig(steps=1, clip_length=1, tracked_correction_probability=1.0)
    assert all(sample_plan(single, np.random.default_rng(seed)).corrected_frames == () for seed in range(5))


def test_data_workers_draw_the_same_data_and_train_the_same_weights(tmp_path):
    config = TrainConfig(steps=3, clip_length=3, max_objects=2, warmup_steps=1, clips_per_step=2,
                         image_step_probability=0.5, images_per_step=2, seed=4)
    source = ProceduralClips(3, ProceduralConfig(num_frames=3))
    images = ProceduralClips(1, ProceduralConfig(num_frames=1))
    inline = [draw_step_data(config, step, source, images, DEFAULT_IMAGE_SIZE) for step in range(3)]
    assert {data.image_step for data in inline} == {True, False}  # both kinds of step are compared
    with StepDataPrefetcher(2, config, source, images, DEFAULT_IMAGE_SIZE) as prefetcher:
        # In order, then out of order (a resumed run asks for a later step first).
        drawn = [prefetcher.get(step) for step in (0, 1, 2)] + [prefetcher.get(1)]
    for expected, got in zip(inline + [inline[1]], drawn):
        assert (got.image_step, got.obj_ids, got.plan, got.generator_seed) == \
            (expected.image_step, expected.obj_ids, expected.plan, expected.generator_seed)
        for a, b in zip(expected.clips, got.clips, strict=True):
            assert np.array_equal(a.frames, b.frames) and np.array_equal(a.labels, b.labels) and a.name == b.name

    weights = []
    for workers in (0, 2):
        trainer = Trainer(fresh_default_model(), source, config, tmp_path / f"workers{workers}", image_source=images)
        trainer.run(progress=False, data_workers=workers)
        weights.append(trainer.model.state_dict())
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])


def test_prefetch_workers_load_the_data_side_only():
    """A data worker imports prefetch: that must not pull in the trainer or the model (the import
    circle prefetch <-> trainer made every worker load both)."""
    code = ("import sys, sam2_model.train.prefetch; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('sam2_model'))))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.split()
    assert "sam2_model.train.prefetch" in loaded and "sam2_model.train.step_data" in loaded
    for heavy in ("sam2_model.train.trainer", "sam2_model.train.rollout", "sam2_model.sam2"):
        assert heavy not in loaded, f"importing prefetch loads {heavy}"


def test_event_clips_hold_a_target_that_hides_and_comes_back():
    source = ProceduralClips(12, ProceduralConfig(num_frames=12), with_events=True)
    for draw in range(2):
        clip = source.sample(np.random.default_rng(draw))
        counts = np.stack([(clip.labels == obj_id).sum((1, 2)) for obj_id in range(1, int(clip.labels.max()) + 1)])
        hidden_then_back = [any(row[t:t + 3].sum() == 0 and row[t + 3:].max() > 0 and row[:t].max() > 0
                                for t in range(1, len(row) - 3)) for row in counts]
        assert any(hidden_then_back), counts


def test_held_out_validation_scores_every_frame_and_leaves_the_model_as_it_was():
    model = sam2_model.build_model("default").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    validation = procedural_validation_set(model, clip_length=4, count=3)
    assert validation.images.shape[:2] == (3, 4) and len(validation.truth) == len(validation.clip_of_object)
    scores = validate(model, validation)
    assert set(scores) == {"box", "mask"} and all(len(j) == 4 for j in scores.values())
    assert all(0.0 <= value <= 1.0 for j in scores.values() for value in j)
    # Frame 0 of a mask prompt is the true mask itself as logits at a quarter of the size
    # (SAM 2's mask-as-output): it scores exactly what that round trip keeps of the truth.
    truth = validation.truth.float()
    logits = F.interpolate(truth * MASK_AS_OUTPUT_SCALE + MASK_AS_OUTPUT_BIAS, scale_factor=0.25, mode="bilinear",
                           align_corners=False, antialias=True)
    back = F.interpolate(logits, size=truth.shape[-2:], mode="bilinear", align_corners=False) > 0
    first = validation.truth[:, 0]
    kept = (back[:, 0] & first).sum((1, 2)) / (back[:, 0] | first).sum((1, 2))
    assert scores["mask"][0] == pytest.approx(float(kept.mean()), abs=1e-3)
    # A trained model's box prompt finds the object (an untrained one scores about 0.03).
    assert scores["box"][0] > 0.5, scores
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert validate(model, validation) == scores  # fixed clips, fixed prompts: the same numbers
    # Images only: a box prompt on one frame (a mask prompt would only score its own resizing).
    assert set(validate(model, procedural_validation_set(model, clip_length=1, count=2))) == {"box"}


@pytest.mark.parametrize("processes", [1, 2])
def test_device_script_fits_the_run_to_its_minutes_and_brings_back_official_weights(tmp_path, processes):
    """tools/device_train.sh (made for short GPU leases), tried on the CPU with tiny settings: a
    probe inside the warm-up, then the same run resumed to a length chosen from its speed, and
    weights-only official weights, the log and a summary in $OUT; with GPUS=2 the same under
    torchrun (gloo on the CPU, one clip per process)."""
    out = tmp_path / "out"
    env = dict(os.environ, DEVICE="cpu", PYTHON=sys.executable, OUT=str(out), PROBE_STEPS="2", GPUS=str(processes))
    done = subprocess.run(["bash", str(REPO / "tools" / "device_train.sh"), "0.2", "--clips-per-step", str(processes),
                           "--clip-length", "2", "--video-frames", "12", "--images-per-step", "2",
                           "--max-objects", "1", "--threads", "1", "--data-workers", "0", "--warmup", "4"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "probe:" in done.stderr and "resuming at step 2" in done.stderr
    summary = (out / "summary.txt").read_text()
    assert f"device: cpu, processes: {processes}" in summary
    assert "steps planned: 3" in summary and "exit status: 0" in summary
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == [2, 3]
    payload = torch.load(out / "model.pt", weights_only=True)
    assert set(payload) == {"model"}
    trained = sam2_model.build_model("default", out / "model.pt")  # strict: every key, every shape
    bundled = sam2_model.build_model("default")
    assert any(not torch.equal(a, b) for a, b in zip(trained.state_dict().values(), bundled.state_dict().values()))
