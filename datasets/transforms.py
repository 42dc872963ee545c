"""Clip transforms on uint8 `(T, C, H, W)` tensors: one random draw per clip."""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from utils.config import AugmentationsParameters


class RGBShift(torch.nn.Module):
    """Adds one random offset per colour channel to every frame of a clip.

    Args:
        limits: the largest absolute shift of the R, G and B channels (0-255 scale).
    """

    def __init__(self, limits: tuple[int, int, int]) -> None:
        super().__init__()
        self.limits = torch.tensor(limits, dtype=torch.float32)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """Shift a `(T, C, H, W)` uint8 clip."""
        shift = (torch.rand(3) * 2.0 - 1.0) * self.limits
        shifted = clip.float() + shift.view(1, 3, 1, 1).round()
        return shifted.clamp_(0, 255).to(clip.dtype)


class RandomGaussianBlur(torch.nn.Module):
    """Gaussian blur of a whole clip with a random odd kernel size in [3, limit].

    Args:
        limit: the largest kernel size (rounded down to an odd number).
    """

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.sizes = list(range(3, limit + 1, 2))

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """Blur a `(T, C, H, W)` uint8 clip."""
        size = self.sizes[int(torch.randint(len(self.sizes), ()))]
        return v2.functional.gaussian_blur(clip, [size, size])


def build_resize_crop(config: AugmentationsParameters) -> torch.nn.Module:
    """The deterministic part of the clip transform: resize, then centre crop."""
    return build_clip_transform(config, train=False)


def build_clip_transform(
    config: AugmentationsParameters, *, train: bool, resized: bool = False
) -> torch.nn.Module:
    """Resize and centre crop for every split; random augmentations for training only.

    torchvision's v2 transforms draw their random parameters once per call, so applying
    them to a whole `(T, C, H, W)` clip treats all its frames alike. With `resized`
    (frames from the frame cache), resize and crop were done already.
    """
    steps: list[torch.nn.Module] = []
    if config.apply_resize and not resized:
        steps.append(v2.Resize(config.resize_size, antialias=True))
    if config.apply_center_crop and not resized:
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
        if config.apply_rgb_shift:
            steps.append(
                RGBShift(
                    (
                        config.rgb_shift_r_shift_limit,
                        config.rgb_shift_g_shift_limit,
                        config.rgb_shift_b_shift_limit,
                    )
                )
            )
        if config.apply_blur:
            steps.append(RandomGaussianBlur(config.blur_limit))
        if config.apply_random_erasing:
            steps.append(v2.RandomErasing(p=config.random_erasing_probability))
    return v2.Compose(steps) if steps else v2.Identity()


def decode_size_hint(config: AugmentationsParameters) -> int | None:
    """The smallest image side worth decoding (JPEG draft mode); None = full size."""
    if config.apply_resize:
        return config.resize_size
    return None
