"""The `augmentations_parameters` config section: clip transforms and their settings.

A setting of a transform that is switched off is never read, so it is not checked
either: HearAI's configs set, for example, `blur_limit: 1` with `apply_blur: False`.
Such a value is accepted with a note (`unused_settings`) and the default stands in
for it; with the transform switched on, the same value is an error.
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from utils.config_section import Section
from utils.errors import quote

#: The largest `resize_size` and `center_crop_size`, in pixels.
MAX_IMAGE_SIDE = 4096
#: The largest `blur_limit` (a kernel size, in pixels).
MAX_BLUR_KERNEL = 255
#: Each transform's switch and the settings only that transform reads.
TRANSFORM_SETTINGS: dict[str, tuple[str, ...]] = {
    "apply_resize": ("resize_size",),
    "apply_center_crop": ("center_crop_size",),
    "apply_random_erasing": ("random_erasing_probability",),
    "apply_random_rotation": ("random_rotation_degree",),
    "apply_color_jitter": (
        "color_jitter_brightness",
        "color_jitter_contrast",
        "color_jitter_saturation",
        "color_jitter_hue",
    ),
    "apply_rgb_shift": (
        "rgb_shift_r_shift_limit",
        "rgb_shift_g_shift_limit",
        "rgb_shift_b_shift_limit",
    ),
    "apply_blur": ("blur_limit",),
}
_SWITCH = TypeAdapter(bool)

JitterValue = float | tuple[float, float]


class AugmentationsParameters(Section):
    """Clip augmentations; train only, one random draw per clip."""

    apply_resize: bool = True
    apply_center_crop: bool = True
    apply_random_erasing: bool = False
    apply_random_rotation: bool = False
    apply_color_jitter: bool = False
    resize_size: int = Field(128, gt=0, le=MAX_IMAGE_SIDE)
    center_crop_size: int = Field(112, gt=0, le=MAX_IMAGE_SIDE)
    random_erasing_probability: float = Field(0.25, ge=0.0, le=1.0)
    random_rotation_degree: float = Field(5.0, ge=0.0, le=180.0)
    color_jitter_brightness: JitterValue = 0.2
    color_jitter_contrast: JitterValue = 0.2
    color_jitter_saturation: JitterValue = 0.2
    color_jitter_hue: JitterValue = 0.05
    apply_rgb_shift: bool = False
    rgb_shift_r_shift_limit: int = Field(20, ge=0, le=255)
    rgb_shift_g_shift_limit: int = Field(20, ge=0, le=255)
    rgb_shift_b_shift_limit: int = Field(20, ge=0, le=255)
    apply_blur: bool = False
    blur_limit: int = Field(7, ge=3, le=MAX_BLUR_KERNEL)

    # Settings of switched-off transforms that would not validate: key -> (value,
    # what is wrong with it).
    _unchecked: dict[str, tuple[Any, str]] = PrivateAttr(default_factory=dict)

    @field_validator(
        "color_jitter_brightness", "color_jitter_contrast", "color_jitter_saturation"
    )
    @classmethod
    def _jitter_factor(cls, value: JitterValue) -> JitterValue:
        low, high = (
            value if isinstance(value, tuple) else (max(0.0, 1 - value), 1 + value)
        )
        if (not isinstance(value, tuple) and value < 0) or low < 0 or low > high:
            raise ValueError(
                f"must be a non-negative number or [min, max] with 0 <= min <= max, "
                f"got {quote(value)}"
            )
        return value

    @field_validator("color_jitter_hue")
    @classmethod
    def _jitter_hue(cls, value: JitterValue) -> JitterValue:
        low, high = value if isinstance(value, tuple) else (-value, value)
        if not -0.5 <= low <= high <= 0.5 or (
            not isinstance(value, tuple) and value < 0
        ):
            raise ValueError(
                f"must be in [0, 0.5] or [min, max] within [-0.5, 0.5], "
                f"got {quote(value)}"
            )
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _off_transforms_unchecked(
        cls, data: Any, handler: ValidatorFunctionWrapHandler
    ) -> AugmentationsParameters:
        try:
            return handler(data)
        except ValidationError as error:
            if not isinstance(data, dict):
                raise
            off = cls._settings_switched_off(data)
            unchecked: dict[str, tuple[Any, str]] = {}
            for problem in error.errors():
                key = problem["loc"][0] if problem["loc"] else None
                if key in off and key not in unchecked:
                    message = problem["msg"].removeprefix("Value error, ")
                    unchecked[key] = (data[key], message)
            if not unchecked:
                raise
            section = handler({k: v for k, v in data.items() if k not in unchecked})
            section._unchecked = unchecked  # pylint: disable=protected-access
            return section

    @classmethod
    def _settings_switched_off(cls, data: dict) -> set[str]:
        """The settings (in raw `data`) whose transform is validly switched off."""
        off = set()
        for switch, settings in TRANSFORM_SETTINGS.items():
            # pylint: disable-next=unsubscriptable-object
            value = data.get(switch, cls.model_fields[switch].default)
            try:
                if not _SWITCH.validate_python(value):
                    off.update(settings)
            except ValidationError:
                pass  # the switch itself is reported; its settings are checked
        return off

    def unused_settings(self) -> list[str]:
        """Settings of switched-off transforms given a value (not their default),
        each as `key: why`."""
        notes = []
        defaults = {
            key: field.default for key, field in type(self).model_fields.items()
        }
        for switch, settings in TRANSFORM_SETTINGS.items():
            if getattr(self, switch):
                continue
            for key in settings:
                why = f"only used with augmentations_parameters.{switch}"
                if key in self._unchecked:
                    value, problem = self._unchecked[key]
                    why += (
                        f"; {quote(value)} is not checked while it is off "
                        f"(with it on, it is an error: {problem})"
                    )
                elif key not in self.model_fields_set or (
                    getattr(self, key) == defaults[key]
                ):
                    continue
                notes.append(f"augmentations_parameters.{key}: {why}")
        return notes
