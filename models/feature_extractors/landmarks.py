"""Landmark encoders: per-frame pose/hand/face points to features, alone or fused."""

from __future__ import annotations

import torch
from torch import nn

from models.feature_extractors.landmark_encoders import point_channels, point_inputs
from models.registry import FEATURE_EXTRACTORS, NothingToPrepare


class LandmarksEncoder(NothingToPrepare, nn.Module):
    """Encodes each frame's landmarks (coordinates and presence) with an MLP.

    Absent points (e.g. an undetected hand) are zero with a presence flag of 0, so the
    model sees "missing" rather than a magic coordinate.

    Args:
        num_points: K, the number of landmarks per frame.
        representation_size: the size of the per-frame features returned.
        velocities: add each point's motion to its inputs.
    """

    def __init__(
        self, *, num_points: int, representation_size: int, velocities: bool = False
    ) -> None:
        super().__init__()
        self.out_dim = representation_size
        self.velocities = velocities
        self.mlp = nn.Sequential(
            nn.Linear(num_points * point_channels(velocities), representation_size * 2),
            nn.GELU(),
            nn.Linear(representation_size * 2, representation_size),
            nn.LayerNorm(representation_size),
        )

    def forward(self, batch: dict) -> torch.Tensor:
        """Per-frame features.

        Args:
            batch: with `landmarks` `(B, T, K, 3)` float, `landmark_mask` `(B, T, K)`
                bool (True = point present) and `mask` `(B, T)` bool.

        Returns:
            `(B, T, representation_size)` features, zero at padded frames.
        """
        features = self.mlp(point_inputs(batch, self.velocities).flatten(2))
        return features * batch["mask"].unsqueeze(-1).to(features.dtype)


@FEATURE_EXTRACTORS.register(
    "landmarks_extractor",
    reads=("landmarks",),
    summary="landmarks only, no image frames are read: an MLP (Linear, GELU, "
    "Linear, LayerNorm) over each frame's points as `(x, y, z, present)` (plus "
    "`(dx, dy, dz)` with `landmarks_parameters.velocities`). Needs "
    "`train_parameters.landmarks: true`.",
)
def landmarks_extractor(
    *, num_points: int, representation_size: int, velocities: bool = False
) -> LandmarksEncoder:
    """Landmarks only: no image frames are read."""
    return LandmarksEncoder(
        num_points=num_points,
        representation_size=representation_size,
        velocities=velocities,
    )


class FusedExtractor(nn.Module):
    """Image features and landmark features of each frame, concatenated and projected.

    Args:
        frames: the image extractor.
        landmarks: the landmark encoder.
    """

    def __init__(self, *, frames: nn.Module, landmarks: LandmarksEncoder) -> None:
        super().__init__()
        self.frames = frames
        self.landmarks = landmarks
        self.out_dim = frames.out_dim
        self.fusion = nn.Linear(frames.out_dim + landmarks.out_dim, self.out_dim)

    def forward(self, batch: dict) -> torch.Tensor:
        """`(B, T, out_dim)` fused per-frame features (see the two extractors)."""
        fused = self.fusion(torch.cat([self.frames(batch), self.landmarks(batch)], -1))
        return fused * batch["mask"].unsqueeze(-1).to(fused.dtype)

    def prepare_for_training(self, *, channels_last: bool, compile_model: bool) -> None:
        """What each of the two extractors declares."""
        for part in (self.frames, self.landmarks):
            part.prepare_for_training(
                channels_last=channels_last, compile_model=compile_model
            )
