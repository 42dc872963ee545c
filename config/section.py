"""The base of every config section: unknown keys are errors, `true` is not a number,
and a number is finite (`.inf` and `.nan` are refused)."""

from __future__ import annotations

from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


class Section(BaseModel):
    """A config section: unknown keys are errors, and `true` is not a number."""

    model_config = ConfigDict(
        extra="forbid", protected_namespaces=(), allow_inf_nan=False
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool):
            field = cls.model_fields.get(info.field_name)  # pylint: disable=no-member
            annotation = field.annotation if field else None
            accepted = [
                get_args(kind)[0] if get_origin(kind) is Annotated else kind
                for kind in get_args(annotation) or (annotation,)
            ]
            if bool not in accepted and any(t in accepted for t in (int, float)):
                raise ValueError(f"expected a number, got {str(value).lower()}")
        return value
