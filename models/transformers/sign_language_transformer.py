"""Temporal encoders over per-frame features: ours, and the masked-mean baseline."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from config.section import Section
from models.registry import TRANSFORMERS
from models.transformers.common import ClsToken, masked_mean, sinusoidal_positions


class PoolingSettings(Section):
    """`sign_language_transformer`'s own settings: how a clip is pooled."""

    pooling: Literal["cls", "mean"] = Field(
        "cls",
        description="The clip embedding is the output of a learned CLS token "
        "(`cls`) or the mean of the outputs of the real frames (`mean`).",
    )


@TRANSFORMERS.register(
    "sign_language_transformer",
    settings=PoolingSettings,
    summary="Pre-norm `nn.TransformerEncoder` (GELU), sinusoidal positions, a "
    "learned CLS token whose output is the clip embedding (or mean pooling, "
    "`pooling: mean`), and a final LayerNorm. Padded frames are masked out of "
    "attention.",
)
class SignLanguageTransformer(nn.Module):
    """Pre-norm transformer encoder with sinusoidal positions and a learned CLS token.

    Key-padding masks make the clip length free: padded frames are never attended to.

    Args:
        input_dim: size of the per-frame features coming in.
        output_size: model width and the size of every output embedding.
        feedforward_size: hidden size of each feed-forward block.
        num_attention_heads: attention heads per layer.
        num_encoder_layers: encoder layers.
        dropout_rate: dropout inside the encoder.
        pooling: `cls` (the output of a learned token prepended to the frames) or
            `mean` (the masked mean of the frame outputs) as the clip embedding.
    """

    def __init__(
        self,
        *,
        input_dim: int,
        output_size: int,
        feedforward_size: int,
        num_attention_heads: int,
        num_encoder_layers: int,
        dropout_rate: float,
        pooling: str = "cls",
    ) -> None:
        super().__init__()
        self.out_dim = output_size
        self.input_projection = nn.Linear(input_dim, output_size)
        self.cls = ClsToken(output_size) if pooling == "cls" else None
        layer = nn.TransformerEncoderLayer(
            d_model=output_size,
            nhead=num_attention_heads,
            dim_feedforward=feedforward_size,
            dropout=dropout_rate,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, num_layers=num_encoder_layers, enable_nested_tensor=False
        )
        self.norm = nn.LayerNorm(output_size)

    def forward(
        self, features: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a batch of clips.

        Args:
            features: `(B, T, input_dim)` per-frame features.
            mask: `(B, T)` bool, True for real frames.

        Returns:
            The clip embeddings `(B, out_dim)` and per-frame outputs `(B, T, out_dim)`.
        """
        tokens = self.input_projection(features)
        tokens = tokens + sinusoidal_positions(
            tokens.shape[1], self.out_dim, tokens.device
        ).to(tokens.dtype)
        if self.cls is None:
            encoded = self.norm(self.encoder(tokens, src_key_padding_mask=~mask))
            return masked_mean(encoded, mask), encoded
        tokens, full_mask = self.cls(tokens, mask)
        encoded = self.norm(self.encoder(tokens, src_key_padding_mask=~full_mask))
        return encoded[:, 0], encoded[:, 1:]


@TRANSFORMERS.register(
    "fake_transformer",
    summary="Baseline: a per-frame linear layer, then mean pooling over the real "
    "frames.",
)
class FakeTransformer(nn.Module):
    """The baseline: a per-frame linear layer and masked mean pooling over time.

    Args:
        input_dim: size of the per-frame features coming in.
        output_size: size of the output embeddings.
    """

    def __init__(self, *, input_dim: int, output_size: int) -> None:
        super().__init__()
        self.out_dim = output_size
        self.linear = nn.Linear(input_dim, output_size)

    def forward(
        self, features: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a batch of clips (shapes as `SignLanguageTransformer.forward`)."""
        temporal = self.linear(features)
        return masked_mean(temporal, mask), temporal
