"""Self-supervised pretraining: masked frame reconstruction from the temporal encoder.

About 40% of the real frames of every clip are hidden from the temporal encoder: their
extractor features are replaced by a learned mask token. From the encoder's outputs
at those positions, small decoders reconstruct what was hidden:

* image frames: the frame shrunk to a `target_size` x `target_size` grayscale image,
  standardised per frame (zero mean, unit variance), so predicting a flat image
  scores an MSE of about 1;
* landmarks: the normalised `(x, y, z)` of every present point (absent points do not
  count).

The targets come from the input, not from the model, so the objective cannot collapse.
The loss is the mean squared error over the hidden frames only; padded frames never
count, and a one-frame clip is never masked (it has no context to predict from).
Fused models average the two reconstruction losses.

The module builds the same `SignPipeline` as `SignRecognitionModule`, so its
checkpoints hold `model.feature_extractor.*` and `model.transformer.*` under the same
names and shapes: a recognition model starts from them by loading the checkpoint's
state dict with `strict=False` (or `training.transfer.load_matching_weights`). The heads
are built but frozen and unused.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from training.base import PipelineModule, check_finite
from utils.errors import ConfigError
from utils.landmark_points import COMPONENT_SIZES


def choose_masked_frames(
    mask: torch.Tensor, ratio: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Pick the frames to hide: `round(ratio * n)` random real frames of each clip.

    A clip with `n > 1` real frames gets between 1 and `n - 1` hidden frames; a clip
    with one frame gets none. Padded frames are never picked.

    Args:
        mask: `(B, T)` bool, True for real frames.
        ratio: the fraction of real frames to hide.
        generator: a CPU random generator (for reproducible masks), or None for the
            global one.

    Returns:
        `(B, T)` bool, True for hidden frames.
    """
    scores = torch.rand(mask.shape, generator=generator).to(mask.device)
    scores = scores.masked_fill(~mask, 2.0)  # padded frames sort last
    ranks = scores.argsort(dim=1).argsort(dim=1)
    lengths = mask.sum(dim=1)
    counts = torch.round(lengths.float() * ratio).long()
    counts = torch.minimum(counts.clamp(min=1), lengths - 1).clamp(min=0)
    return (ranks < counts.unsqueeze(1)) & mask


def frame_targets(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Frames as small grayscale images, standardised per frame.

    Args:
        frames: `(B, T, C, H, W)` uint8 (or float on the 0-255 scale).
        size: the side of the target image.

    Returns:
        `(B, T, size * size)` float; an all-constant frame gives zeros.
    """
    batch, time = frames.shape[:2]
    gray = frames.flatten(0, 1).float().mean(dim=1, keepdim=True)
    small = F.adaptive_avg_pool2d(gray, size).flatten(1)
    small = small - small.mean(dim=1, keepdim=True)
    small = small / (small.std(dim=1, keepdim=True, unbiased=False) + 1e-3 * 255.0)
    return small.view(batch, time, size * size)


def masked_mse(
    prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """The mean squared error over the weighted elements.

    Args:
        prediction: `(B, T, ...)`.
        target: the same shape as `prediction`.
        weight: bool or 0/1, broadcastable to `prediction` (e.g. `(B, T, 1)`).

    Returns:
        A scalar; zero (still attached to the graph) when no element counts.
    """
    prediction = prediction.float()  # the loss in full precision under autocast
    weight = weight.to(prediction.dtype).expand_as(prediction)
    squared = (prediction - target.float()) ** 2
    return (squared * weight).sum() / weight.sum().clamp(min=1.0)


def _decoder(width: int, out_dim: int) -> nn.Module:
    return nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, out_dim))


class PretrainingModule(PipelineModule):  # pylint: disable=too-many-ancestors
    """Pretrains a `SignPipeline`'s extractor and encoder by masked reconstruction.

    Batches come from `SignDataModule` as for training; their labels are ignored.
    Logs `pretrain/loss` (training, per step and epoch) and `val/pretrain/loss`, with
    `val/loss` as the same value so that checkpointing on `val/loss` works unchanged;
    fused models also log each input's loss (`pretrain/frames_loss`,
    `pretrain/landmarks_loss` and their `val/pretrain/...` twins).
    Validation masks are fixed (seeded per batch), so validation losses of different
    epochs are comparable. The config's `freeze_scheduler` is not applied here.

    Args:
        config: the resolved config as a plain dict (saved in checkpoints).
        num_classes: head name -> class count, in head order (the heads are built so
            that the pipeline matches `SignRecognitionModule`'s, but not trained).
        label_names: head name -> class names; saved in checkpoints, not used.
        mask_ratio: the fraction of each clip's real frames to hide.
        target_size: the side of the grayscale image reconstructed for image frames.
    """

    def __init__(
        self,
        config: dict,
        num_classes: dict[str, int],
        label_names: dict[str, list[str]] | None = None,
        mask_ratio: float = 0.4,
        target_size: int = 8,
    ) -> None:
        if not 0.0 < mask_ratio < 1.0:
            raise ConfigError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        super().__init__(config, num_classes, label_names)
        self.save_hyperparameters()
        self.mask_ratio = mask_ratio
        self.target_size = target_size
        self.model.heads.requires_grad_(False)
        self.mask_token = nn.Parameter(
            torch.zeros(self.model.feature_extractor.out_dim)
        )
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        width = self.model.transformer.out_dim
        decoders = {}
        if self.config.uses_frames():
            decoders["frames"] = _decoder(width, target_size * target_size)
        if self.config.uses_landmarks():
            components = self.config.landmarks_parameters.components
            num_points = sum(COMPONENT_SIZES[c] for c in components)
            decoders["landmarks"] = _decoder(width, num_points * 3)
        self.decoders = nn.ModuleDict(decoders)

    def forward(self, batch: dict, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        """Reconstructions at every position, from the encoder with `hidden` masked.

        Args:
            batch: a batch from `collate_clips` (see `SignPipeline.forward`).
            hidden: `(B, T)` bool, True for the frames hidden from the encoder.

        Returns:
            `{"frames": (B, T, target_size ** 2)}` and/or
            `{"landmarks": (B, T, K, 3)}`, as the config reads frames and/or
            landmarks; only the hidden positions are meaningful.
        """
        features = self.model.feature_extractor(batch)
        token = self.mask_token.to(features.dtype)
        features = torch.where(hidden.unsqueeze(-1), token, features)
        _, temporal = self.model.transformer(features, batch["mask"])
        outputs = {name: decoder(temporal) for name, decoder in self.decoders.items()}
        if "landmarks" in outputs:
            outputs["landmarks"] = outputs["landmarks"].unflatten(-1, (-1, 3))
        return outputs

    def pretraining_loss(
        self, batch: dict, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The masked reconstruction loss of one batch.

        Args:
            batch: a batch from `collate_clips`.
            hidden: `(B, T)` bool, the frames to hide (real frames only).

        Returns:
            The loss (the mean of the per-input losses) and the per-input losses
            (`frames`, `landmarks`).
        """
        hidden = hidden & batch["mask"]
        outputs = self(batch, hidden)
        parts = {}
        if "frames" in outputs:
            target = frame_targets(batch["frames"], self.target_size)
            parts["frames"] = masked_mse(outputs["frames"], target, hidden[..., None])
        if "landmarks" in outputs:
            weight = batch["landmark_mask"] & hidden[..., None]
            parts["landmarks"] = masked_mse(
                outputs["landmarks"], batch["landmarks"], weight[..., None]
            )
        loss = torch.stack(list(parts.values())).mean()
        return loss, parts

    def _log_losses(
        self, loss: torch.Tensor, parts: dict, batch: dict, train: bool
    ) -> None:
        prefix = "pretrain" if train else "val/pretrain"
        values = {f"{prefix}/loss": loss}
        if len(parts) > 1:
            values.update({f"{prefix}/{name}_loss": v for name, v in parts.items()})
        if not train:
            values["val/loss"] = loss
        for name, value in values.items():
            self.log(
                name,
                value,
                on_step=train,
                on_epoch=True,
                prog_bar=name in ("pretrain/loss", "val/loss"),
                sync_dist=not train,
                batch_size=batch["mask"].shape[0],
            )

    def training_step(self, batch: dict, _batch_idx: int) -> torch.Tensor:
        hidden = choose_masked_frames(batch["mask"], self.mask_ratio)
        loss, parts = self.pretraining_loss(batch, hidden)
        self._log_losses(loss, parts, batch, train=True)
        check_finite(loss, self.global_step, batch)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        seed = self.config.general_parameters.seed
        generator = torch.Generator().manual_seed(seed * 100_003 + batch_idx)
        hidden = choose_masked_frames(batch["mask"], self.mask_ratio, generator)
        loss, parts = self.pretraining_loss(batch, hidden)
        self._log_losses(loss, parts, batch, train=False)
        return loss

    def optimized_parameters(self) -> list[torch.nn.Parameter]:
        """Everything but the heads (they are built, never trained here)."""
        return [p for p in self.parameters() if p.requires_grad]
