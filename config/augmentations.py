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

from config.section import Section
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
    """How the image frames of a clip are resized and cropped (every split) and
    augmented (training only).

    The transforms work on the whole `(T, C, H, W)` clip and draw their random
    parameters once per clip, so all frames of a clip get the same rotation, jitter,
    shift, blur and erased rectangle. The random ones run in this order: rotation,
    colour jitter, RGB shift, blur, random erasing. All clips of a batch must have one
    frame size, so keep `apply_resize` and `apply_center_crop` on unless every frame
    of the dataset has the same size. The extractor normalises the colours itself.

    A setting of a transform that is switched off is not read, so it is not checked
    either: HearAI's configs set, for example, `blur_limit: 1` with `apply_blur:
    false`. Such a value gets a note at the start and the default stands in for it;
    with the transform on, it is an error.
    """

    apply_resize: bool = Field(
        True,
        description="Resize the shorter side of every frame to `resize_size`, keeping "
        "the aspect ratio (JPEGs are also decoded at about that size, which is "
        "faster).",
    )
    apply_center_crop: bool = Field(
        True, description="Crop a centred square of side `center_crop_size`."
    )
    apply_random_erasing: bool = Field(
        False,
        description="Training only: with `random_erasing_probability`, set one "
        "random rectangle of the clip to 0 (torchvision's `RandomErasing`).",
    )
    apply_random_rotation: bool = Field(
        False,
        description="Training only: rotate about the frame centre by an angle drawn "
        "from +- `random_rotation_degree` (corners filled with 0).",
    )
    apply_color_jitter: bool = Field(
        False,
        description="Training only: jitter brightness, contrast, saturation and hue "
        "(the four `color_jitter_*` values, in a random order) as torchvision's "
        "`ColorJitter` defines them, composed into one colour matrix.",
    )
    resize_size: int = Field(
        128,
        gt=0,
        le=MAX_IMAGE_SIDE,
        description="The length of the shorter side after resizing, in pixels.",
    )
    center_crop_size: int = Field(
        112,
        gt=0,
        le=MAX_IMAGE_SIDE,
        description="The side of the square centre crop, in pixels.",
    )
    random_erasing_probability: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="The chance that a training clip gets a rectangle erased.",
    )
    random_rotation_degree: float = Field(
        5.0,
        ge=0.0,
        le=180.0,
        description="The largest rotation, in degrees either way.",
    )
    color_jitter_brightness: JitterValue = Field(
        0.2,
        description="A number `b` >= 0 draws the brightness factor from "
        "[max(0, 1 - b), 1 + b]; or give the range `[min, max]` (0 <= min <= max).",
    )
    color_jitter_contrast: JitterValue = Field(
        0.2,
        description="The contrast factor, given as `color_jitter_brightness` is.",
    )
    color_jitter_saturation: JitterValue = Field(
        0.2,
        description="The saturation factor, given as `color_jitter_brightness` is.",
    )
    color_jitter_hue: JitterValue = Field(
        0.05,
        description="A number `h` in [0, 0.5] draws the hue shift from [-h, h] (in "
        "turns of the colour wheel); or give `[min, max]` within [-0.5, 0.5].",
    )
    apply_rgb_shift: bool = Field(
        False,
        description="Training only: add one random offset per colour channel, drawn "
        "from +- that channel's limit, to every pixel (clamped to 0-255).",
    )
    rgb_shift_r_shift_limit: int = Field(
        20,
        ge=0,
        le=255,
        description="The largest shift of the red channel, in 0-255 intensity units.",
    )
    rgb_shift_g_shift_limit: int = Field(
        20,
        ge=0,
        le=255,
        description="The largest shift of the green channel, in 0-255 intensity "
        "units.",
    )
    rgb_shift_b_shift_limit: int = Field(
        20,
        ge=0,
        le=255,
        description="The largest shift of the blue channel, in 0-255 intensity "
        "units.",
    )
    apply_blur: bool = Field(
        False,
        description="Training only: Gaussian blur with a random odd kernel size "
        "from 3 to `blur_limit`.",
    )
    blur_limit: int = Field(
        7,
        ge=3,
        le=MAX_BLUR_KERNEL,
        description="The largest blur kernel size, in pixels; an even value is "
        "rounded down to an odd one.",
    )

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
