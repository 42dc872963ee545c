"""Masked-frame pretraining: masks, padding, learning, and weights for fine-tuning."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from helpers import quiet_cpu_trainer

from config.loader import parse_config
from training.datamodule import SignDataModule
from training.pretraining import (
    PretrainingModule,
    choose_masked_frames,
    frame_targets,
)
from training.recognition import SignRecognitionModule
from utils.errors import ConfigError

ENCODER = ("model.feature_extractor.", "model.transformer.")


def _num_classes(raw: dict) -> dict[str, int]:
    hamnosys = {k: v["num_class"] for k, v in raw["heads"]["hamnosys"].items()}
    return {"gloss": 3, **hamnosys}


def _landmarks_only(raw: dict) -> dict:
    """A copy of a config that reads landmarks only."""
    raw = copy.deepcopy(raw)
    raw["train_parameters"]["landmarks"] = True
    raw["feature_extractor"] = {
        "name": "landmarks_extractor",
        "representation_size": 32,
    }
    return raw


def _skeleton() -> np.ndarray:
    """33 pose points, then two hands (wrist at 0, middle-finger base 0.5 above)."""
    rng = np.random.default_rng(0)
    points = rng.normal(scale=0.7, size=(75, 3)).astype(np.float32)
    for start in (33, 54):
        points[start : start + 21] *= 0.3 / 0.7
        points[start], points[start + 9] = 0.0, [0.0, 0.5, 0.0]
    return points


SKELETON = _skeleton()


def _write_smooth_npz(path: Path, frames: int, rng: np.random.Generator) -> None:
    """A body of fixed shape whose hands circle smoothly, each clip in its own way.

    Rigid hands at the arms' wrists move on circles of a per-clip centre, radius,
    speed and phase; the rest of the body stays put (up to a little noise).
    """
    time = np.arange(frames, dtype=np.float32)[:, None]
    points = np.repeat(SKELETON[None], frames, axis=0)
    points += rng.normal(scale=0.01, size=points.shape).astype(np.float32)
    for hand, pose_points in ((33, [15, 17, 19, 21]), (54, [16, 18, 20, 22])):
        angle = rng.uniform(0.2, 0.4) * time + rng.uniform(0, 2 * np.pi)
        circle = np.concatenate([np.cos(angle), np.sin(angle), 0 * angle], -1)
        wrist = rng.normal(scale=1.0, size=3) + rng.uniform(0.5, 1.5) * circle
        points[:, hand : hand + 21] += wrist[:, None] - SKELETON[hand]
        points[:, pose_points] += wrist[:, None] - SKELETON[pose_points]
    points[:, 11], points[:, 12] = [1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]
    np.savez(
        path, pose=points[:, :33], left_hand=points[:, 33:54], right_hand=points[:, 54:]
    )


@pytest.fixture
def landmarks_config(tiny_config: dict, sample_root: Path, tmp_path: Path) -> dict:
    """The tiny config, landmarks only, on the sample data plus smooth landmarks."""
    root = tmp_path / "with_landmarks"
    shutil.copytree(sample_root, root)
    rng = np.random.default_rng(3)
    for folder in sorted(root.iterdir()):
        if folder.is_dir():
            frames = len(list(folder.glob("*.jpg")))
            _write_smooth_npz(folder / f"{folder.name}.npz", frames, rng)
    raw = _landmarks_only(tiny_config)
    raw["general_parameters"]["data_path"] = str(root)
    return raw


class _ValLosses(L.Callback):
    """The validation loss after every epoch."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.losses.append(float(trainer.callback_metrics["val/pretrain/loss"]))


def _pretrain(raw: dict, epochs: int) -> tuple[PretrainingModule, L.Trainer, list]:
    """Fit for `epochs`; the validation losses before training and after each epoch."""
    raw = copy.deepcopy(raw)
    raw["train_parameters"].update(lr=3e-3, warmup_steps=2, epochs=epochs)
    raw["transformer"]["dropout_rate"] = 0.0
    config = parse_config(raw)
    L.seed_everything(0, verbose=False)
    datamodule = SignDataModule(config)
    module = PretrainingModule.from_config(
        config, datamodule.data.num_classes, datamodule.data.label_names
    )
    recorder = _ValLosses()
    trainer = quiet_cpu_trainer(epochs, recorder)
    before = trainer.validate(module, datamodule=datamodule, verbose=False)
    recorder.losses.clear()
    trainer.fit(module, datamodule=datamodule)
    return module, trainer, [before[0]["val/pretrain/loss"], *recorder.losses]


# --- masks and targets ---------------------------------------------------------------


def test_masks_pick_real_frames_only() -> None:
    mask = torch.tensor(
        [[True] * 10, [True] * 4 + [False] * 6, [True, True] + [False] * 8]
        + [[True] + [False] * 9]
    )
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        hidden = choose_masked_frames(mask, 0.4, generator)
        assert not (hidden & ~mask).any(), "padded frames are never hidden"
        assert hidden.sum(1).tolist() == [4, 2, 1, 0]
    again = choose_masked_frames(mask, 0.4, torch.Generator().manual_seed(0))
    first = choose_masked_frames(mask, 0.4, torch.Generator().manual_seed(0))
    assert torch.equal(again, first), "a seeded generator gives the same masks"


def test_frame_targets_are_standardised_small_grayscale() -> None:
    blocks = torch.randint(0, 256, (2, 3, 3, 4, 3), dtype=torch.uint8)
    frames = blocks.repeat_interleave(8, -2).repeat_interleave(8, -1)  # 32 x 24
    frames[1, 2] = 77  # a constant (e.g. padded) frame
    targets = frame_targets(frames, 8)
    assert targets.shape == (2, 3, 64)
    real = targets[0]
    assert torch.allclose(real.mean(-1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(real.std(-1, unbiased=False), torch.ones(3), atol=0.02)
    assert not targets[1, 2].any()


def test_padded_frames_do_not_count(tiny_config: dict) -> None:
    torch.manual_seed(0)
    module = PretrainingModule(tiny_config, _num_classes(tiny_config)).eval()
    mask = torch.tensor([[True, True, True, True], [True, True, True, False]])
    frames = torch.randint(0, 256, (2, 4, 3, 32, 32), dtype=torch.uint8)
    frames[1, 3] = 0
    hidden = torch.tensor([[False, True, False, True], [True, False, True, False]])
    with torch.no_grad():
        loss, parts = module.pretraining_loss({"frames": frames, "mask": mask}, hidden)
        outputs = module({"frames": frames, "mask": mask}, hidden)
    errors = ((outputs["frames"] - frame_targets(frames, 8)) ** 2).mean(-1)
    assert torch.allclose(loss, errors[hidden].mean(), atol=1e-6)
    assert torch.allclose(parts["frames"], loss)
    garbage = frames.clone()
    garbage[1, 3] = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    padded_hidden = hidden.clone()
    padded_hidden[1, 3] = True  # asking to hide a padded frame changes nothing
    with torch.no_grad():
        changed, _ = module.pretraining_loss(
            {"frames": garbage, "mask": mask}, padded_hidden
        )
    assert torch.allclose(changed, loss, atol=1e-6)


def test_absent_landmarks_do_not_count(tiny_config: dict) -> None:
    raw = _landmarks_only(tiny_config)
    torch.manual_seed(0)
    module = PretrainingModule(raw, _num_classes(raw)).eval()
    points = 23 + 21 + 21
    batch = {
        "mask": torch.tensor([[True, True, True], [True, True, False]]),
        "landmarks": torch.randn(2, 3, points, 3),
        "landmark_mask": torch.rand(2, 3, points) > 0.3,
    }
    hidden = torch.tensor([[True, False, True], [False, True, False]])
    with torch.no_grad():
        loss, _ = module.pretraining_loss(batch, hidden)
        outputs = module(batch, hidden)
    weight = batch["landmark_mask"] & hidden[..., None]
    errors = ((outputs["landmarks"] - batch["landmarks"]) ** 2)[weight]
    assert torch.allclose(loss, errors.mean(), atol=1e-6)
    batch["landmarks"][~batch["landmark_mask"]] = 1e3  # absent points are ignored
    batch["landmarks"][1, 2] = 1e3  # and so are padded frames
    with torch.no_grad():
        changed, _ = module.pretraining_loss(batch, hidden)
    assert torch.allclose(changed, loss, atol=1e-5)


def test_hidden_frames_are_not_seen(tiny_config: dict) -> None:
    """Changing what a hidden frame shows changes no prediction: nothing leaks."""
    raw = copy.deepcopy(tiny_config)
    raw["train_parameters"]["landmarks"] = True  # frames and landmarks, fused
    torch.manual_seed(0)
    module = PretrainingModule(raw, _num_classes(raw)).eval()
    batch = {
        "mask": torch.tensor([[True] * 5, [True] * 3 + [False] * 2]),
        "frames": torch.randint(0, 256, (2, 5, 3, 32, 32), dtype=torch.uint8),
        "landmarks": torch.randn(2, 5, 65, 3),
        "landmark_mask": torch.ones(2, 5, 65, dtype=torch.bool),
    }
    hidden = choose_masked_frames(batch["mask"], 0.4, torch.Generator().manual_seed(0))
    changed = copy.deepcopy(batch)
    changed["frames"][hidden] = 255 - changed["frames"][hidden]
    changed["landmarks"][hidden] = torch.randn_like(changed["landmarks"][hidden])
    with torch.no_grad():
        outputs, other = module(batch, hidden), module(changed, hidden)
        loss, parts = module.pretraining_loss(batch, hidden)
    assert set(outputs) == {"frames", "landmarks"}
    for name, output in outputs.items():
        assert torch.allclose(output, other[name], atol=1e-5), name
    assert torch.allclose(loss, (parts["frames"] + parts["landmarks"]) / 2)


def _moving_bodies(generator: torch.Generator, body: torch.Tensor) -> dict:
    """16 clips of up to 6 frames: `body` shifted and moving differently per clip."""
    size, time = 16, 6
    offset = torch.randn(size, 1, 1, 3, generator=generator)
    velocity = torch.randn(size, 1, 1, 3, generator=generator) * 0.3
    steps = torch.arange(time).float().view(1, time, 1, 1) - time / 2
    lengths = torch.randint(2, time + 1, (size,), generator=generator)
    mask = torch.arange(time)[None] < lengths[:, None]
    return {
        "mask": mask,
        "landmarks": (body + offset + velocity * steps) * mask[..., None, None],
        "landmark_mask": mask[..., None].expand(size, time, len(body)).clone(),
    }


def test_the_encoder_learns_to_predict_from_context(tiny_config: dict) -> None:
    """Only the visible frames tell where a clip's body is, so beating the mean pose
    needs the temporal context."""
    raw = _landmarks_only(tiny_config)
    raw["train_parameters"].update(lr=3e-3, warmup_steps=10)
    raw["transformer"]["dropout_rate"] = 0.0
    torch.manual_seed(0)
    module = PretrainingModule(raw, _num_classes(raw))
    optimizers = module.configure_optimizers()
    body = torch.randn(65, 3) * 0.5
    validation = [
        _moving_bodies(torch.Generator().manual_seed(i), body) for i in range(4)
    ]
    hidden = [
        choose_masked_frames(b["mask"], 0.4, torch.Generator().manual_seed(i))
        for i, b in enumerate(validation)
    ]

    def evaluate() -> float:
        module.eval()
        with torch.no_grad():
            losses = [
                module.pretraining_loss(*pair)[0] for pair in zip(validation, hidden)
            ]
        module.train()
        return float(torch.stack(losses).mean())

    mean_pose = float(
        torch.stack(
            [
                ((b["landmarks"][h] - body) ** 2).mean()
                for b, h in zip(validation, hidden)
            ]
        ).mean()
    )
    before = evaluate()
    generator = torch.Generator().manual_seed(100)
    for _ in range(150):
        batch = _moving_bodies(generator, body)
        loss, _ = module.pretraining_loss(
            batch, choose_masked_frames(batch["mask"], 0.4)
        )
        optimizers["optimizer"].zero_grad()
        loss.backward()
        optimizers["optimizer"].step()
        optimizers["lr_scheduler"]["scheduler"].step()
    after = evaluate()
    print(f"context: before {before:.3f}, after {after:.3f}, mean pose {mean_pose:.3f}")
    assert after < 0.4 * mean_pose < before


def test_one_frame_clips_give_a_zero_loss_with_gradients(tiny_config: dict) -> None:
    module = PretrainingModule(tiny_config, _num_classes(tiny_config))
    batch = {
        "frames": torch.randint(0, 256, (2, 1, 3, 32, 32), dtype=torch.uint8),
        "mask": torch.ones(2, 1, dtype=torch.bool),
    }
    hidden = choose_masked_frames(batch["mask"], 0.4)
    loss, _ = module.pretraining_loss(batch, hidden)
    assert loss.item() == 0.0
    loss.backward()


def test_mask_ratio_must_leave_context(tiny_config: dict) -> None:
    with pytest.raises(ConfigError, match="mask_ratio"):
        PretrainingModule(tiny_config, _num_classes(tiny_config), mask_ratio=1.0)


# --- learning and fine-tuning --------------------------------------------------------


def _check_weights_transfer(module, trainer, raw: dict, tmp_path: Path) -> None:
    """The checkpoint's extractor/encoder load into a fresh recognition module."""
    path = tmp_path / "pretrained.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    encoder_keys = {k for k in state if k.startswith(ENCODER)}
    assert encoder_keys
    torch.manual_seed(123)
    fresh = SignRecognitionModule(raw, dict(module.num_classes))
    result = fresh.load_state_dict(state, strict=False)
    assert not [k for k in result.missing_keys if k.startswith(ENCODER)]
    assert {k.split(".")[0] for k in result.unexpected_keys} == {
        "mask_token",
        "decoders",
    }
    fresh_state = fresh.state_dict()
    assert {k for k in fresh_state if k.startswith(ENCODER)} == encoder_keys
    for key in encoder_keys:
        assert torch.equal(fresh_state[key], state[key]), key
    # Other class counts: the extractor and encoder still fit, only the heads differ.
    other = SignRecognitionModule(raw, {**module.num_classes, "gloss": 7}).state_dict()
    for key in encoder_keys:
        assert other[key].shape == state[key].shape, key


def test_pretraining_lowers_the_masked_frame_loss(tiny_config, tmp_path) -> None:
    """A few epochs on the sample data (where the signer and background are shared,
    so much of the drop is learning the common picture; the context test above shows
    the encoder using the visible frames)."""
    module, trainer, losses = _pretrain(tiny_config, epochs=5)
    print("frames: val masked MSE before and per epoch", losses)
    assert losses[-1] < 0.7 * losses[0], losses
    assert losses[-1] < 0.8 * losses[1], losses
    assert trainer.callback_metrics["val/loss"] == losses[-1]
    assert "pretrain/loss_epoch" in trainer.callback_metrics
    frozen = [p.requires_grad for p in module.model.heads.parameters()]
    assert frozen and not any(frozen), "the heads are not trained"
    _check_weights_transfer(module, trainer, tiny_config, tmp_path)


def test_pretraining_on_landmarks_only(landmarks_config, tmp_path) -> None:
    module, trainer, losses = _pretrain(landmarks_config, epochs=8)
    print("landmarks: val masked MSE before and per epoch", losses)
    assert losses[-1] < 0.6 * losses[0], losses
    assert set(module.decoders) == {"landmarks"}
    _check_weights_transfer(module, trainer, landmarks_config, tmp_path)
