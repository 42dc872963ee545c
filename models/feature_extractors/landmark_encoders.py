"""Landmark encoders for real data: depthwise 1-D convolutions, and an ST-GCN.

Both read a batch's `landmarks` `(B, T, K, 3)` (normalised, 0 where absent) and
`landmark_mask` `(B, T, K)` and return `(B, T, D)` features for a temporal encoder.
Each point's inputs are its coordinates, a presence flag and, with `velocities`, its
motion since the previous frame (0 where either frame lacks the point); optionally each
hand point's position relative to its wrist (`hand_shape_inputs`) and its bone
(`bone_inputs`: the direction from its parent point, and the angle to its parent's).
"""

from __future__ import annotations

import torch
from pydantic import Field, field_validator
from torch import nn
from torch.nn import functional as F

from config.section import Section
from models.registry import FEATURE_EXTRACTORS, NothingToPrepare
from utils.landmark_points import (
    COMPONENT_EDGES,
    COMPONENT_SIZES,
    HAND_PARENTS,
    HAND_POINTS,
    MIDDLE_FINGER_MCP,
    POSE_WRIST_OF_HAND,
    hand_starts,
)


def point_inputs(
    batch: dict,
    velocities: bool,
    hands: list[int] | None = None,
    bones: list[int] | None = None,
) -> torch.Tensor:
    """Per-point inputs `(B, T, K, C)`: x, y, z, presence [, dx, dy, dz] [, the
    point's position relative to its hand's wrist in palm lengths (0 for points
    outside the `hands`, whose start indices are given)] [, its bone's direction
    and the cosine of its angle to the parent bone (see `_hand_bones`; 0 outside
    the hands starting at `bones`)]."""
    points = batch["landmarks"]
    present = (batch["landmark_mask"] & batch["mask"].unsqueeze(-1)).to(points.dtype)
    inputs = [points * present.unsqueeze(-1), present.unsqueeze(-1)]
    if velocities:
        both = (present[:, 1:] * present[:, :-1]).unsqueeze(-1)
        motion = (points[:, 1:] - points[:, :-1]) * both
        inputs.append(F.pad(motion, (0, 0, 0, 0, 1, 0)))
    if hands is not None:
        inputs.append(_hand_shapes(points, present, hands))
    if bones is not None:
        inputs.append(_hand_bones(points, present, bones))
    return torch.cat(inputs, dim=-1)


def _hand_shapes(
    points: torch.Tensor, present: torch.Tensor, hands: list[int]
) -> torch.Tensor:
    """`(B, T, K, 3)`: each hand point relative to its wrist, in palm lengths."""
    shapes = torch.zeros_like(points)
    for start in hands:
        hand = points[:, :, start : start + HAND_POINTS]
        wrist = hand[:, :, :1]
        palm = (hand[:, :, MIDDLE_FINGER_MCP, :2] - wrist[:, :, 0, :2]).norm(dim=-1)
        relative = (hand - wrist) / palm.clamp(min=1e-3)[..., None, None]
        visible = present[:, :, start : start + HAND_POINTS].unsqueeze(-1)
        shapes[:, :, start : start + HAND_POINTS] = relative * visible
    return shapes


def _hand_bones(
    points: torch.Tensor, present: torch.Tensor, hands: list[int]
) -> torch.Tensor:
    """`(B, T, K, 4)`: each hand point's bone (from its parent, `HAND_PARENTS`) as a
    unit vector, and the cosine of the angle between it and its parent's bone (how far
    the joint bends). Both are free of the hand's size and position, so they describe
    the hand's shape the same way for every signer and camera distance. The wrist, and
    the angle of the bones leaving the wrist, are 0."""
    bones = torch.zeros(*points.shape[:-1], 4, dtype=points.dtype, device=points.device)
    parents = list(HAND_PARENTS)
    for start in hands:
        hand = points[:, :, start : start + HAND_POINTS]
        visible = present[:, :, start : start + HAND_POINTS].unsqueeze(-1)
        vectors = hand - hand[:, :, parents]
        directions = vectors / vectors.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        bends = (directions * directions[:, :, parents]).sum(-1, keepdim=True)
        features = torch.cat([directions, bends], dim=-1) * visible
        bones[:, :, start : start + HAND_POINTS] = features
    return bones


def point_channels(
    velocities: bool, hand_shapes: bool = False, bones: bool = False
) -> int:
    """C of `point_inputs`."""
    return 4 + 3 * velocities + 3 * hand_shapes + 4 * bones


class DepthwiseConvBlock(nn.Module):
    """Pre-norm residual block: gated linear unit, depthwise temporal convolution,
    batch norm, SiLU, projection (the Kaggle ISLR winners' 1-D block).

    Args:
        dim: feature size.
        kernel_size: temporal kernel (odd).
        dropout_rate: dropout on the block's output.
    """

    def __init__(self, *, dim: int, kernel_size: int, dropout_rate: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.expand = nn.Linear(dim, 2 * dim)
        self.depthwise = nn.Conv1d(
            dim, dim, kernel_size, padding=kernel_size // 2, groups=dim
        )
        self.batch_norm = nn.BatchNorm1d(dim)
        self.project = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`(B, T, dim)` features and `(B, T)` mask -> `(B, T, dim)`."""
        values, gates = self.expand(self.norm(features)).chunk(2, dim=-1)
        hidden = values * torch.sigmoid(gates) * mask.unsqueeze(-1)
        hidden = F.silu(self.batch_norm(self.depthwise(hidden.transpose(1, 2))))
        return features + self.dropout(self.project(hidden.transpose(1, 2)))


class PointEncoder(NothingToPrepare, nn.Module):  # pylint: disable=abstract-method
    """The shared front of the landmark encoders: each point's inputs (see
    `point_inputs`), standardised by a batch norm over the real frames, since
    positions, hand shapes and motions differ in scale by an order of magnitude.

    Args:
        components: the configured landmark components, in order.
        representation_size: D, the output size.
        velocities: add each point's motion to its inputs.
        hand_shape_inputs: add each hand point's position relative to its wrist.
        bone_inputs: add each hand point's bone direction and joint angle.
    """

    def __init__(
        self,
        *,
        components: list[str],
        representation_size: int,
        velocities: bool,
        hand_shape_inputs: bool,
        bone_inputs: bool = False,
    ) -> None:
        super().__init__()
        self.out_dim = representation_size
        self.velocities = velocities
        self.hands = hand_starts(components) if hand_shape_inputs else None
        self.bones = hand_starts(components) if bone_inputs else None
        self.channels = point_channels(velocities, hand_shape_inputs, bone_inputs)
        self.num_points = sum(COMPONENT_SIZES[c] for c in components)
        self.input_norm = nn.BatchNorm1d(self.num_points * self.channels)

    def standardised_inputs(self, batch: dict) -> torch.Tensor:
        """`(B, T, K, C)` point inputs; statistics from the real frames only
        (padding would pull them to 0), padded frames left at 0."""
        inputs = point_inputs(batch, self.velocities, self.hands, self.bones)
        real = batch["mask"]
        flat = inputs.flatten(2)
        flat = flat.masked_scatter(
            real.unsqueeze(-1), self.input_norm(flat[real]).to(flat.dtype)
        )
        return flat.view(inputs.shape)


class LandmarkBlocksSettings(Section):
    """The own settings of `landmarks_conv` and `landmarks_stgcn`: their blocks."""

    num_blocks: int = Field(
        3, gt=0, le=64, description="The number of convolution or graph blocks."
    )
    kernel_size: int = Field(
        17,
        gt=0,
        le=255,
        description="The temporal kernel of the blocks, in frames; must be odd.",
    )
    dropout_rate: float = Field(
        0.2, ge=0.0, lt=1.0, description="Dropout inside the blocks."
    )

    @field_validator("kernel_size")
    @classmethod
    def _odd_kernel(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"must be odd, got {value}")
        return value


@FEATURE_EXTRACTORS.register(
    "landmarks_conv",
    reads=("landmarks",),
    settings=LandmarkBlocksSettings,
    summary="landmarks only: each frame's points embedded by an MLP, then "
    "`num_blocks` pre-norm residual blocks of a gated linear unit, a depthwise "
    "temporal convolution of `kernel_size` frames, batch norm and SiLU (the 1-D "
    "blocks of the Kaggle ISLR winners), so each frame's features see their "
    "neighbours before the transformer. The WLASL recipes use it.",
)
class ConvLandmarksEncoder(PointEncoder):
    """Each frame's points standardised (batch norm over the real frames) and embedded
    by an MLP, then depthwise convolution blocks over time, so each frame's features
    see its neighbours before the transformer.

    Args:
        components: the configured landmark components, in order.
        representation_size: D, the output size.
        num_blocks: convolution blocks.
        kernel_size: their temporal kernel.
        dropout_rate: dropout in the blocks.
        velocities: add each point's motion to its inputs.
        hand_shape_inputs: add each hand point's position relative to its wrist.
        bone_inputs: add each hand point's bone direction and joint angle.
    """

    def __init__(
        self,
        *,
        components: list[str],
        representation_size: int,
        num_blocks: int,
        kernel_size: int,
        dropout_rate: float,
        velocities: bool,
        hand_shape_inputs: bool = False,
        bone_inputs: bool = False,
    ) -> None:
        super().__init__(
            components=components,
            representation_size=representation_size,
            velocities=velocities,
            hand_shape_inputs=hand_shape_inputs,
            bone_inputs=bone_inputs,
        )
        inputs = self.num_points * self.channels
        self.embed = nn.Sequential(
            nn.Linear(inputs, representation_size),
            nn.LayerNorm(representation_size),
            nn.SiLU(),
            nn.Linear(representation_size, representation_size),
        )
        self.blocks = nn.ModuleList(
            DepthwiseConvBlock(
                dim=representation_size,
                kernel_size=kernel_size,
                dropout_rate=dropout_rate,
            )
            for _ in range(num_blocks)
        )

    def forward(self, batch: dict) -> torch.Tensor:
        """`(B, T, D)` features, zero at padded frames (batch keys as above)."""
        mask = batch["mask"].to(batch["landmarks"].dtype)
        features = self.embed(self.standardised_inputs(batch).flatten(2))
        for block in self.blocks:
            features = block(features, mask)
        return features * mask.unsqueeze(-1)


def skeleton_adjacency(components: list[str]) -> torch.Tensor:
    """The `(K, K)` normalised adjacency (self loops included) of the components'
    skeleton: hand bones, pose connections, and each hand's wrist joined to the
    pose wrist when both are configured. Face points have self loops only."""
    offsets, offset = {}, 0
    for component in components:
        offsets[component] = offset
        offset += COMPONENT_SIZES[component]
    adjacency = torch.eye(offset)
    for component in components:
        base = offsets[component]
        for a, b in COMPONENT_EDGES.get(component, ()):
            adjacency[base + a, base + b] = adjacency[base + b, base + a] = 1.0
        if component in POSE_WRIST_OF_HAND and "pose" in offsets:
            wrist = offsets["pose"] + POSE_WRIST_OF_HAND[component]
            adjacency[base, wrist] = adjacency[wrist, base] = 1.0
    degree = adjacency.sum(1).rsqrt()
    return degree[:, None] * adjacency * degree[None, :]


class GraphBlock(nn.Module):
    """One ST-GCN block: graph convolution over the points (fixed skeleton times a
    learned edge importance), then a depthwise temporal convolution (a separable
    variant: the graph step mixes channels, which keeps it fast on a CPU), with a
    residual.

    Args:
        adjacency: `(K, K)` normalised adjacency.
        in_channels: channels per point coming in.
        out_channels: channels per point going out.
        kernel_size: temporal kernel (odd).
        dropout_rate: dropout after the temporal convolution.
    """

    def __init__(
        self,
        *,
        adjacency: torch.Tensor,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        dropout_rate: float,
    ) -> None:
        super().__init__()
        self.register_buffer("adjacency", adjacency, persistent=False)
        self.importance = nn.Parameter(torch.ones_like(adjacency))
        self.spatial = nn.Conv2d(in_channels, out_channels, 1)
        self.activate = nn.Sequential(nn.BatchNorm2d(out_channels), nn.SiLU())
        self.temporal = nn.Sequential(
            nn.Conv2d(
                out_channels,
                out_channels,
                (kernel_size, 1),
                padding=(kernel_size // 2, 0),
                groups=out_channels,
            ),
            nn.BatchNorm2d(out_channels),
            nn.Dropout(dropout_rate),
        )
        self.residual = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1)
        )

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`(B, C, T, K)` features and `(B, T)` mask -> `(B, C', T, K)`."""
        mixed = torch.einsum(
            "bctk,kj->bctj",
            self.spatial(features),
            self.adjacency * self.importance,
        )
        # Padded frames are zeroed before the temporal convolution reads them, so a
        # clip's features do not depend on how far its batch is padded.
        hidden = self.activate(mixed) * mask[:, None, :, None]
        return F.silu(self.temporal(hidden) + self.residual(features))


@FEATURE_EXTRACTORS.register(
    "landmarks_stgcn",
    reads=("landmarks",),
    settings=LandmarkBlocksSettings,
    summary="landmarks only: a spatial-temporal graph convolution network over "
    "the skeleton (MediaPipe's hand bones and pose connections, each hand's wrist "
    "joined to the pose wrist), `num_blocks` blocks of a graph convolution with a "
    "learned edge importance and a depthwise temporal convolution, pooled over the "
    "points.",
)
class GraphLandmarksEncoder(PointEncoder):
    """A spatial-temporal graph convolution network over the skeleton (ST-GCN, as
    OpenHands' pose model), pooled over the points of each frame.

    Args:
        components: the configured landmark components, in order.
        representation_size: D, the output size (the last block's channels).
        num_blocks: graph blocks; channels grow from D/4 to D.
        kernel_size: their temporal kernel.
        dropout_rate: dropout in the blocks.
        velocities: add each point's motion to its inputs.
        hand_shape_inputs: add each hand point's position relative to its wrist.
        bone_inputs: add each hand point's bone direction and joint angle.
    """

    def __init__(
        self,
        *,
        components: list[str],
        representation_size: int,
        num_blocks: int,
        kernel_size: int,
        dropout_rate: float,
        velocities: bool,
        hand_shape_inputs: bool = False,
        bone_inputs: bool = False,
    ) -> None:
        super().__init__(
            components=components,
            representation_size=representation_size,
            velocities=velocities,
            hand_shape_inputs=hand_shape_inputs,
            bone_inputs=bone_inputs,
        )
        adjacency = skeleton_adjacency(components)
        hidden = [max(8, representation_size // 4)] * max(0, num_blocks - 2)
        hidden += [max(8, representation_size // 2), representation_size]
        widths = [self.channels] + hidden[-num_blocks:]
        self.blocks = nn.ModuleList(
            GraphBlock(
                adjacency=adjacency,
                in_channels=widths[i],
                out_channels=widths[i + 1],
                kernel_size=kernel_size,
                dropout_rate=dropout_rate,
            )
            for i in range(num_blocks)
        )

    def forward(self, batch: dict) -> torch.Tensor:
        """`(B, T, D)` features, zero at padded frames (batch keys as above)."""
        features = self.standardised_inputs(batch)  # (B, T, K, C)
        mask = batch["mask"].to(features.dtype)
        features = features.permute(0, 3, 1, 2) * mask[:, None, :, None]  # (B,C,T,K)
        for block in self.blocks:
            features = block(features, mask) * mask[:, None, :, None]
        return features.mean(-1).transpose(1, 2) * mask.unsqueeze(-1)
