"""Precomputed features as the extractor's input: no video network in the loop.

The rows of a clip's feature file (the SSVP-SLT layout, `datasets.ssvp`), sampled as
frames are, are projected to `representation_size`; the temporal encoder and the
heads read them as they read any extractor's per-frame features.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from config.model import MAX_WIDTH
from config.section import Section
from models.registry import FEATURE_EXTRACTORS, NothingToPrepare
from utils.errors import DataError


class PrecomputedSettings(Section):
    """The `precomputed` extractor's own setting."""

    feature_dim: int = Field(
        gt=0,
        le=MAX_WIDTH,
        description="D, the width of the feature rows in the `.pt` files (SSVP-SLT's "
        "`model.feature_dim`, e.g. 768); every file is checked against it.",
    )


@FEATURE_EXTRACTORS.register(
    "precomputed",
    reads=("features",),
    settings=PrecomputedSettings,
    summary="precomputed feature rows in [the SSVP-SLT layout]"
    "(../data/dataset-root.md#precomputed-features-the-ssvp-slt-layout), no "
    "frames or landmarks read: a linear projection from `feature_dim` times a "
    "learned per-channel scale. `num_segments` rows are sampled per clip (SSVP's "
    "`max_source_positions`). Needs `train_parameters.landmarks: false`.",
)
class PrecomputedFeatures(NothingToPrepare, nn.Module):
    """Each feature row projected to `representation_size` and scaled per channel.

    Args:
        feature_dim: D, the width of the rows.
        representation_size: the size of the per-row features returned.
    """

    def __init__(self, *, feature_dim: int, representation_size: int) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.out_dim = representation_size
        self.projection = nn.Linear(feature_dim, representation_size)
        self.scale = nn.Parameter(torch.ones(representation_size))

    def forward(self, batch: dict) -> torch.Tensor:
        """Per-row features.

        Args:
            batch: with `features` `(B, T, feature_dim)` float and `mask` `(B, T)`
                bool (True = a real row).

        Returns:
            `(B, T, representation_size)` features, zero at padded rows.

        Raises:
            DataError: the rows are not `feature_dim` wide.
        """
        features = batch["features"]
        if features.shape[-1] != self.feature_dim:
            raise DataError(
                f"the batch's feature rows are {features.shape[-1]} wide, but "
                f"feature_extractor.feature_dim is {self.feature_dim}"
            )
        projected = self.projection(features) * self.scale
        return projected * batch["mask"].unsqueeze(-1).to(projected.dtype)
