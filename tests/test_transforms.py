"""The fast clip augmentations against torchvision's reference transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as F

from datasets.transforms import ClipColorJitter, ClipRotation, hue_matrix


def _clip(shape=(3, 3, 16, 20), seed: int = 0, smooth: bool = False) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    clip = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    return F.gaussian_blur(clip, [5, 5]) if smooth else clip


def _mean_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().mean())


@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (3, 3, 16, 20), (1, 3, 64, 64)])
@pytest.mark.parametrize("angle", [90.0, -90.0, 180.0, 3.0, -4.5, 30.0])
def test_rotation_matches_torchvision_nearest(shape, angle: float) -> None:
    clip = _clip(shape)
    expected = F.rotate(clip, angle, interpolation=F.InterpolationMode.NEAREST)
    assert torch.equal(ClipRotation(angle).rotate(clip, angle), expected)


@pytest.mark.parametrize("angle", [3.0, -4.5, 180.0])
def test_rotation_of_odd_sized_frames_matches_away_from_ties(angle: float) -> None:
    # At exactly 90 degrees an odd-by-even frame puts sources on half pixels, where
    # the two round ties differently; any other angle must agree.
    clip = _clip((3, 3, 15, 22))
    expected = F.rotate(clip, angle, interpolation=F.InterpolationMode.NEAREST)
    assert torch.equal(ClipRotation(angle).rotate(clip, angle), expected)


def test_rotation_works_on_either_memory_layout() -> None:
    planar = _clip()
    channels_last = planar.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    rotation = ClipRotation(10)
    assert torch.equal(rotation.rotate(planar, 7), rotation.rotate(channels_last, 7))


def test_rotation_draws_angles_within_bounds() -> None:
    clip = _clip((1, 3, 9, 9))
    rotation = ClipRotation(20)
    candidates = {
        angle: rotation.rotate(clip, angle) for angle in np.arange(-20, 20.5, 0.5)
    }
    torch.manual_seed(0)
    for _ in range(10):
        out = rotation(clip)
        assert any(torch.equal(out, rotated) for rotated in candidates.values())
    assert torch.equal(ClipRotation(0)(clip), clip)


@pytest.mark.parametrize(
    "name,value,reference",
    [
        ("brightness", 1.2, F.adjust_brightness),
        ("brightness", 0.7, F.adjust_brightness),
        ("contrast", 0.7, F.adjust_contrast),
        ("contrast", 1.3, F.adjust_contrast),
        ("saturation", 1.3, F.adjust_saturation),
        ("saturation", 0.4, F.adjust_saturation),
    ],
)
def test_single_colour_steps_match_torchvision(name, value, reference) -> None:
    clip = _clip(smooth=True)
    jitter = ClipColorJitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.1)
    ours = jitter.apply(clip, [(name, value)])
    expected = reference(clip, value)
    assert _mean_abs(ours, expected) < 1.0 < _mean_abs(clip, expected)


def test_composed_steps_match_torchvision_in_that_order() -> None:
    clip = _clip(smooth=True)
    jitter = ClipColorJitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.1)
    steps = [("saturation", 0.5), ("contrast", 1.2), ("brightness", 0.8)]
    expected = F.adjust_brightness(
        F.adjust_contrast(F.adjust_saturation(clip, 0.5), 1.2), 0.8
    )
    assert _mean_abs(jitter.apply(clip, steps), expected) < 1.5


def test_one_colour_map_equals_the_steps_one_after_another() -> None:
    clip = _clip(smooth=True) // 2 + 64  # mid-range: no clamping between steps
    jitter = ClipColorJitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.1)
    steps = [("brightness", 1.2), ("hue", 0.08), ("contrast", 0.7), ("saturation", 0.7)]
    stepwise = clip
    for step in steps:
        stepwise = jitter.apply(stepwise, [step])
    assert _mean_abs(jitter.apply(clip, steps), stepwise) < 0.6


@pytest.mark.parametrize("shift", [0.1, 0.2, -0.1, -0.25])
def test_hue_turns_colours_like_torchvision(shift: float) -> None:
    clip = _clip(smooth=True)
    jitter = ClipColorJitter(brightness=0, contrast=0, saturation=0, hue=0.5)
    expected = F.adjust_hue(clip, shift)
    ours = jitter.apply(clip, [("hue", shift)])
    backwards = jitter.apply(clip, [("hue", -shift)])
    assert _mean_abs(ours, expected) < 0.8 * _mean_abs(clip, expected)
    assert _mean_abs(ours, expected) < 0.5 * _mean_abs(backwards, expected)


def test_hue_keeps_grey_and_turns_red_towards_yellow() -> None:
    matrix = hue_matrix(0.1)
    np.testing.assert_allclose(matrix @ np.ones(3), np.ones(3), atol=1e-12)
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(3), atol=1e-12)
    red, green, blue = matrix @ np.array([200.0, 40.0, 40.0])
    assert blue < 40 < green < red
    np.testing.assert_allclose(hue_matrix(0.5) @ hue_matrix(0.5), np.eye(3), atol=1e-12)


def test_colour_jitter_without_ranges_is_the_identity() -> None:
    clip = _clip()
    jitter = ClipColorJitter(brightness=0, contrast=0, saturation=0, hue=0)
    assert jitter(clip) is clip


def test_colour_jitter_draws_within_its_ranges() -> None:
    clip = _clip(smooth=True)
    jitter = ClipColorJitter(
        brightness=(1.5, 1.5), contrast=0, saturation=0, hue=(0.0, 0.0)
    )
    assert _mean_abs(jitter(clip), F.adjust_brightness(clip, 1.5)) < 1.0
    torch.manual_seed(0)
    wide = ClipColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05)
    outputs = [wide(clip) for _ in range(5)]
    assert all(out.shape == clip.shape and out.dtype == torch.uint8 for out in outputs)
    assert any(not torch.equal(out, outputs[0]) for out in outputs[1:])
    for out in outputs:  # factors within 0.7-1.3 and a small hue turn: nearby colours
        assert 0 < _mean_abs(out, clip) < 60
