"""Pieces shared by the temporal encoders."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """`(length, dim)` sinusoidal position encodings, for any clip length."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32)
        * (-math.log(10000.0) / dim)
    )
    encoding = torch.zeros(length, dim, device=device)
    encoding[:, 0::2] = torch.sin(position * div)
    encoding[:, 1::2] = torch.cos(position * div[: dim // 2])
    return encoding


class ClsToken(nn.Module):
    """A learned token prepended to every sequence; its output is the clip embedding."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.token, std=0.02)

    def forward(
        self, tokens: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepend the token.

        Args:
            tokens: `(B, T, D)`.
            mask: `(B, T)` bool, True for real frames.

        Returns:
            `(B, T + 1, D)` tokens and the `(B, T + 1)` mask with the token marked real.
        """
        batch = tokens.shape[0]
        tokens = torch.cat([self.token.expand(batch, -1, -1), tokens], dim=1)
        mask = torch.cat([mask.new_ones(batch, 1), mask], dim=1)
        return tokens, mask


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of `(B, T, D)` `values` over the real frames of `(B, T)` `mask`."""
    weights = mask.unsqueeze(-1).to(values.dtype)
    return (values * weights).sum(1) / weights.sum(1).clamp(min=1.0)
