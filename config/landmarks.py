"""The `landmarks_parameters` config section: which points, how they are prepared and
augmented (with `train_parameters.landmarks: true`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from config.section import Section
from utils.errors import quote

LandmarkComponent = Literal["pose", "face", "left_hand", "right_hand"]


class LandmarksParameters(Section):
    """Which landmarks to read, how to prepare them, and their training augmentations.

    This section is read only with `train_parameters.landmarks: true`; each sample
    then needs a landmark file (`<name>.npz` or `<name>.pose`) in its folder.
    Augmentations are drawn once per clip, on training clips only: first the timing
    (speed, crop) on the file's rows, then the geometry (affine, mirror) and the
    dropouts on the normalised clip.
    """

    components: list[LandmarkComponent] = Field(
        ["pose", "left_hand", "right_hand"],
        description="The parts read, in this order, each at most once: `pose` (23 "
        "upper-body points), `face` (468), `left_hand`, `right_hand` (21 each). A "
        "part a file lacks is absent (0, masked).",
    )
    normalize: bool = Field(
        True,
        description="Centre and scale each clip by the shoulders (midpoint, width) "
        "when it shows them, else by the hands (mean point, 4 palm lengths).",
    )
    hand_shapes: bool = Field(
        True,
        description="With `normalize`: each hand's fingers relative to its wrist, in "
        "palm lengths (the wrist keeps its body position).",
    )
    velocities: bool = Field(
        False,
        description="Give the landmark encoders each point's motion since the "
        "previous sampled frame as well as its position.",
    )
    hand_shape_inputs: bool = Field(
        False,
        description="`landmarks_conv` / `landmarks_stgcn`: also give each hand "
        "point's position relative to its wrist, in palm lengths, beside its body "
        "position. Needs `hand_shapes: false` (which keeps the body positions).",
    )
    bone_inputs: bool = Field(
        False,
        description="`landmarks_conv` / `landmarks_stgcn`: also give each hand "
        "point its bone, the unit vector from its parent point (towards the "
        "fingertips from the wrist), and the cosine of the angle between that bone "
        "and its parent's (how far the joint bends): a description of the hand's "
        "shape free of its size and position.",
    )
    apply_flip: bool = Field(
        False,
        description="Mirror clips horizontally (x -> -x, left and right swapped), "
        "with `flip_probability`. Needs `normalize`, and no `face` component.",
    )
    flip_probability: float = Field(
        0.5, ge=0.0, le=1.0, description="The chance of the mirror per clip."
    )
    apply_affine: bool = Field(
        False,
        description="A random rotation, scale, shear, aspect change and shift of x, "
        "y per clip, about the body centre (z scaled with it). Needs `normalize`.",
    )
    affine_rotation: float = Field(
        15.0, ge=0.0, le=180.0, description="The largest rotation, in degrees."
    )
    affine_scale: float = Field(
        0.2, ge=0.0, lt=1.0, description="The scale is drawn from 1 +- this."
    )
    affine_shear: float = Field(
        0.15, ge=0.0, le=2.0, description="The shear factor is drawn from +- this."
    )
    affine_aspect: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="y is scaled by 1 +- this on top of the scale.",
    )
    affine_shift: float = Field(
        0.1,
        ge=0.0,
        le=10.0,
        description="The shift of x and y is drawn from +- this, in the normalised "
        "unit (about a shoulder width).",
    )
    apply_speed: bool = Field(
        False,
        description="Play each clip at a random speed from `speed_range` (its rows "
        "resampled) before the frames are sampled.",
    )
    speed_range: tuple[float, float] = Field(
        (0.75, 1.33),
        description="`[slowest, fastest]` speed factor, within [0.1, 10] (1 = as "
        "recorded).",
    )
    apply_crop: bool = Field(
        False,
        description="With `crop_probability`, keep a random window of at least "
        "`crop_min_ratio` of the clip (a temporal crop).",
    )
    crop_min_ratio: float = Field(
        0.8,
        gt=0.0,
        le=1.0,
        description="The shortest window kept, as a share of the clip's length.",
    )
    crop_probability: float = Field(
        0.5, ge=0.0, le=1.0, description="The chance of the crop per clip."
    )
    frame_dropout: float = Field(
        0.0,
        ge=0.0,
        lt=0.5,
        description="The chance that a sampled frame is dropped (at least half of "
        "them are kept).",
    )
    point_dropout: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="The chance, per frame and part, that a whole part (a hand, "
        "the pose, the face) is marked undetected.",
    )
    memory_cache_mb: int = Field(
        256,
        ge=0,
        le=1_048_576,  # 1 TiB
        description="MiB of read landmark files kept in memory in each loader "
        "process, so a file is parsed once rather than every epoch; 0 = off.",
    )

    @model_validator(mode="after")
    def _valid_flip(self) -> LandmarksParameters:
        if not self.components or len(set(self.components)) != len(self.components):
            raise ValueError(
                f"components: list each of pose, face, left_hand, right_hand at most "
                f"once (at least one), got {quote(self.components)}"
            )
        if self.apply_flip and "face" in self.components:
            raise ValueError(
                "apply_flip: the face mesh has no left/right point pairs here; "
                "drop 'face' from components or disable apply_flip"
            )
        for key in ("apply_flip", "apply_affine"):
            if getattr(self, key) and not self.normalize:
                raise ValueError(f"{key}: needs normalize: true (about the body)")
        if self.hand_shape_inputs and self.normalize and self.hand_shapes:
            raise ValueError(
                "hand_shape_inputs: needs hand_shapes: false (the inputs add the hand "
                "shapes to the body positions that hand_shapes would replace)"
            )
        low, high = self.speed_range
        if not 0.1 <= low <= high <= 10.0:
            raise ValueError(
                f"speed_range: expected [slowest, fastest] with 0.1 <= slowest <= "
                f"fastest <= 10, got {quote(list(self.speed_range))}"
            )
        return self

    def augments(self) -> bool:
        """Whether any training augmentation of the landmarks is on."""
        return (
            self.apply_flip
            or self.apply_affine
            or self.apply_speed
            or self.apply_crop
            or self.frame_dropout > 0
            or self.point_dropout > 0
        )
