"""Files the evaluation tools read back, validated by pydantic models before use.

A checkpoint's metadata, an ONNX sidecar, a shard record and predict.py's progress
records come from disk, where anything may have changed them. Each is checked
against its model (`evaluation.checkpoints.CheckpointMeta`,
`evaluation.export_sidecar.Sidecar`, `evaluation.shards.ShardRecord`,
`evaluation.writers.ProgressRecord`) before a value of it is used, and a bad one is
one `DataError` naming the file (and line) and the field.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from utils.errors import DataError, quote, shorten

#: The most problems one message names.
MAX_PROBLEMS = 3

Model = TypeVar("Model", bound=BaseModel)


class Record(BaseModel):
    """A record read back from disk: the fields its reader uses, typed; fields it
    does not read are ignored (a newer writer may add some)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def _problem(error: dict, key: str) -> str:
    """One problem of a validation error: the dotted field, what is wrong, the value."""
    field = ".".join(str(part) for part in (key, *error["loc"]) if part != "")
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{shorten(field)}: missing"
    if error["type"] == "value_error":
        # A record's own check names its field first: `label_names.gloss: ...`.
        own = message.split(":", 1)[0]
        joiner = "." if own != message and " " not in own else ": "
        return f"{shorten(field)}{joiner}{message}" if field else message
    return f"{shorten(field)}: {message}, got {quote(error.get('input'))}"


def validated(model: type[Model], data: Any, where: str, key: str = "") -> Model:
    """`data` as a `model`.

    Args:
        model: the record's pydantic model.
        data: what was read (parsed JSON, a checkpoint's dict).
        where: the file (and line) for the message, e.g. `progress.jsonl:3`.
        key: the record's own key in the file, prefixed to the fields named.

    Raises:
        DataError: `where: field: what is wrong, got value` (the first problems,
            on one line).
    """
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = list(dict.fromkeys(_problem(e, key) for e in error.errors()))
        more = len(problems) - MAX_PROBLEMS
        text = "; ".join(problems[:MAX_PROBLEMS]) + (
            f"; and {more} more" if more > 0 else ""
        )
        raise DataError(f"{where}: {text}") from None
