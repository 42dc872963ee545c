"""Clip transforms on uint8 `(T, C, H, W)` tensors: one random draw per clip.

The random augmentations run in the loader workers once per clip, so they are written
for speed: a rotation is one gather of precomputed source pixels on the uint8 clip, and
colour jitter composes brightness, contrast, saturation and hue into one 3x3 colour
matrix with a per-frame offset, applied in a single pass (torchvision's `ColorJitter`
converts every frame to HSV and back for the hue step: 2.0-2.5 ms per 8-frame 64 px
clip against 0.3 ms here, on the benchmark machine).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from config.schema import AugmentationsParameters, JitterValue

#: ITU-R 601 luma weights, as torchvision's grayscale conversion uses them.
_LUMA = np.array([0.2989, 0.587, 0.114])
#: The grey diagonal k = (1, 1, 1) / sqrt(3) as the cross-product matrix [k]x and k k^T
#: (Rodrigues' rotation formula about k).
_GREY_CROSS = np.array(
    [[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]]
) / math.sqrt(3)
_GREY_OUTER = np.full((3, 3), 1.0 / 3.0)


def _uniform(low: float, high: float) -> float:
    return float(torch.empty(()).uniform_(low, high))


class ClipRotation(torch.nn.Module):
    """Rotates every frame of a clip by one random angle about its centre.

    Nearest-neighbour sampling, zero fill, counter-clockwise for positive angles (as
    `torchvision.transforms.v2.RandomRotation`), done as one gather of the clip's
    pixels instead of a float resampling.

    Args:
        degrees: angles are drawn uniformly from [-degrees, degrees].
    """

    def __init__(self, degrees: float) -> None:
        super().__init__()
        self.degrees = float(degrees)

    @staticmethod
    def source_index(
        angle: float, height: int, width: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """For each output pixel, the flat index of its source pixel (0 where the
        source falls outside the frame), and the flat indices of those outside pixels
        (which become 0)."""
        theta = math.radians(angle)
        cos, sin = math.cos(theta), math.sin(theta)
        y = np.arange(height, dtype=np.float32)[:, None] - (height - 1) / 2
        x = np.arange(width, dtype=np.float32)[None, :] - (width - 1) / 2
        source_x = np.rint(x * cos - y * sin + (width - 1) / 2).astype(np.int64)
        source_y = np.rint(x * sin + y * cos + (height - 1) / 2).astype(np.int64)
        inside = (
            (source_x >= 0) & (source_x < width) & (source_y >= 0) & (source_y < height)
        )
        index = np.where(inside, source_y * width + source_x, 0)
        outside = np.flatnonzero(~inside)
        return torch.from_numpy(index.ravel()), torch.from_numpy(outside)

    def rotate(self, clip: torch.Tensor, angle: float) -> torch.Tensor:
        """Rotate a `(T, C, H, W)` clip by `angle` degrees.

        The gather runs on whole pixels (channels last, as decoded frames are laid out
        in memory); the result is a `(T, C, H, W)` view of channels-last memory.
        """
        frames, channels, height, width = clip.shape
        pixels = clip.permute(0, 2, 3, 1).reshape(frames, height * width, channels)
        index, outside = self.source_index(angle, height, width)
        rotated = pixels.index_select(1, index).index_fill_(1, outside, 0)
        return rotated.view(frames, height, width, channels).permute(0, 3, 1, 2)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """Rotate a `(T, C, H, W)` clip by a random angle."""
        if self.degrees == 0:
            return clip
        return self.rotate(clip, _uniform(-self.degrees, self.degrees))


def _factor_range(value: JitterValue) -> tuple[float, float] | None:
    low, high = value if isinstance(value, tuple) else (max(0.0, 1 - value), 1 + value)
    return None if low == high == 1.0 else (float(low), float(high))


def _hue_range(value: JitterValue) -> tuple[float, float] | None:
    low, high = value if isinstance(value, tuple) else (-value, value)
    return None if low == high == 0.0 else (float(low), float(high))


def hue_matrix(shift: float) -> np.ndarray:
    """The 3x3 RGB matrix that turns hues by `shift` of a full turn (in [-0.5, 0.5]).

    A rotation of RGB space about the grey diagonal: HSV's hue is (up to its hexagonal
    shape) the angle about that axis, so this keeps each pixel's mean and its distance
    from grey, and turns red towards yellow for positive shifts as torchvision does.
    """
    theta = 2 * math.pi * shift
    cos, sin = math.cos(theta), math.sin(theta)
    return cos * np.eye(3) + sin * _GREY_CROSS + (1 - cos) * _GREY_OUTER


class ClipColorJitter(torch.nn.Module):
    """Random brightness, contrast, saturation and hue, one draw per clip, applied in
    random order as one affine colour map per frame.

    The parameters mean what they mean for `torchvision.transforms.ColorJitter`: a
    number `v` draws a factor from [max(0, 1 - v), 1 + v] (hue: a shift from [-v, v]
    of a full turn), a pair `[min, max]` gives the range. The steps compose exactly
    (contrast blends with each frame's mean grey after the steps before it), except
    that values are clamped to [0, 255] once at the end instead of after every step,
    and hue turns colours about the grey axis (`hue_matrix`) rather than through HSV.

    Args:
        brightness: brightness factor range.
        contrast: contrast factor range.
        saturation: saturation factor range.
        hue: hue shift range.
    """

    def __init__(
        self,
        *,
        brightness: JitterValue,
        contrast: JitterValue,
        saturation: JitterValue,
        hue: JitterValue,
    ) -> None:
        super().__init__()
        self.ranges = {
            "brightness": _factor_range(brightness),
            "contrast": _factor_range(contrast),
            "saturation": _factor_range(saturation),
            "hue": _hue_range(hue),
        }

    @staticmethod
    def colour_map(
        means: np.ndarray, steps: list[tuple[str, float]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The affine map `x -> matrix @ x + offset[t]` of `steps` (name, value).

        Args:
            means: `(T, 3)` mean R, G, B of each frame (contrast blends with the mean
                grey of each frame as the steps before it left it).

        Returns:
            `matrix`: (3, 3) and `offset`: (T, 3), on the 0-255 scale.
        """
        # 3x3 algebra in NumPy: a few microseconds where small torch ops cost tens.
        matrix = np.eye(3)
        offset = np.zeros_like(means)
        for name, value in steps:
            shift = 0.0
            if name == "brightness":
                step = value * np.eye(3)
            elif name == "contrast":
                grey = (means @ matrix.T + offset) @ _LUMA
                step = value * np.eye(3)
                shift = ((1 - value) * grey)[:, None]
            elif name == "saturation":
                step = value * np.eye(3) + (1 - value) * np.tile(_LUMA, (3, 1))
            else:
                step = hue_matrix(value)
            matrix = step @ matrix
            offset = offset @ step.T + shift
        return matrix, offset

    def apply(self, clip: torch.Tensor, steps: list[tuple[str, float]]) -> torch.Tensor:
        """Apply `steps` (name, value) in order to a `(T, C, H, W)` uint8 clip."""
        frames, channels, height, width = clip.shape
        pixels = clip.contiguous().view(frames, channels, height * width).float()
        means = np.zeros((frames, channels))
        if any(name == "contrast" for name, _ in steps):
            means = pixels.mean(dim=2).double().numpy()
        matrix, offset = self.colour_map(means, steps)
        mapped = torch.matmul(torch.from_numpy(matrix).float(), pixels)
        # + 0.5, then truncation by the cast: rounding without a pass of its own.
        mapped.add_(torch.from_numpy(offset + 0.5).float()[:, :, None])
        return mapped.clamp_(0, 255).to(clip.dtype).view(clip.shape)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """Jitter the colours of a `(T, 3, H, W)` uint8 clip."""
        names = [name for name, bounds in self.ranges.items() if bounds is not None]
        if not names:
            return clip
        order = torch.randperm(len(names)).tolist()
        steps = [(names[i], _uniform(*self.ranges[names[i]])) for i in order]
        return self.apply(clip, steps)


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
        from torchvision.transforms import v2  # pylint: disable=import-outside-toplevel

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
    # torchvision takes seconds to import: landmark-only runs never need it.
    from torchvision.transforms import v2  # pylint: disable=import-outside-toplevel

    steps: list[torch.nn.Module] = []
    if config.apply_resize and not resized:
        steps.append(v2.Resize(config.resize_size, antialias=True))
    if config.apply_center_crop and not resized:
        steps.append(v2.CenterCrop(config.center_crop_size))
    if train:
        if config.apply_random_rotation:
            steps.append(ClipRotation(config.random_rotation_degree))
        if config.apply_color_jitter:
            steps.append(
                ClipColorJitter(
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
