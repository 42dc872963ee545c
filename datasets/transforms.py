"""Clip transforms on uint8 `(T, C, H, W)` tensors: one random draw per clip."""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from utils.config import AugmentationsParameters


def build_clip_transform(
    config: AugmentationsParameters, *, train: bool
) -> torch.nn.Module:
    """Resize and centre crop for every split; random augmentations for training only.

    torchvision's v2 transforms draw their random parameters once per call, so applying
    them to a whole `(T, C, H, W)` clip treats all its frames alike.
    """
    steps: list[torch.nn.Module] = []
    if config.apply_resize:
        steps.append(v2.Resize(config.resize_size, antialias=True))
    if config.apply_center_crop:
        steps.append(v2.CenterCrop(config.center_crop_size))
    if train:
        if config.apply_random_rotation:
            steps.append(v2.RandomRotation(config.random_rotation_degree))
        if config.apply_color_jitter:
            steps.append(
                v2.ColorJitter(
                    brightness=config.color_jitter_brightness,
                    contrast=config.color_jitter_contrast,
                    saturation=config.color_jitter_saturation,
                    hue=config.color_jitter_hue,
                )
            )
        if config.apply_random_erasing:
            steps.append(v2.RandomErasing(p=config.random_erasing_probability))
    return v2.Compose(steps) if steps else v2.Identity()


def decode_size_hint(config: AugmentationsParameters) -> int | None:
    """The smallest image side worth decoding (JPEG draft mode); None = full size."""
    if config.apply_resize:
        return config.resize_size
    return None
