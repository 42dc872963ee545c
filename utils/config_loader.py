"""Loading a config: YAML file -> legacy keys translated -> overrides -> validation.

A failed validation becomes a `ConfigError` whose message names the dotted key, the bad
value and what is allowed, one line per problem.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from utils.config import SignpipeConfig
from utils.errors import ConfigError
from utils.legacy import translate_legacy


def _model_for_path(path: tuple) -> type[BaseModel] | None:
    """The pydantic model that holds the key at `path` (for error suggestions)."""
    model: Any = SignpipeConfig
    key_of_mapping = False
    for part in path:
        if key_of_mapping:  # a user-chosen name in a dict (e.g. a head), not a field
            key_of_mapping = False
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        annotation = field.annotation
        key_of_mapping = get_origin(annotation) is dict
        candidates = get_args(annotation) or (annotation,)
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)),
            None,
        )
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _describe_error(error: dict) -> str:
    """One line for one pydantic error: dotted key, value, what is allowed."""
    loc = tuple(part for part in error["loc"] if not str(part).startswith("function-"))
    # Drop the union branch names pydantic inserts (e.g. 'str', 'list[str]').
    loc = tuple(
        part
        for part in loc
        if not (isinstance(part, str) and ("[" in part or part in ("str", "int")))
    )
    key = ".".join(str(part) for part in loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = _model_for_path(loc[:-1])
        allowed = sorted(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        allowed_text = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"{key}: unknown key{hint}{allowed_text}"
    message = error["msg"].removeprefix("Value error, ")
    if kind in ("value_error", "assertion_error"):
        field_name = message.split(":", 1)[0]
        if key and " " not in field_name and field_name != message:
            return f"{key}.{message}"  # a section's validator naming its own field
        return f"{key + ': ' if key else ''}{message}"
    return f"{key}: {message}, got {error.get('input')!r}"


def format_validation_error(error: ValidationError) -> str:
    """All problems of a validation error, one line each, without duplicates."""
    lines = list(dict.fromkeys(_describe_error(e) for e in error.errors()))
    return "\n".join(lines)


def parse_config(raw: dict, source: str = "config") -> SignpipeConfig:
    """Validate a config dict; raise `ConfigError` naming every bad key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the config must be a YAML mapping of sections")
    try:
        return SignpipeConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(
            f"invalid config {source}:\n{format_validation_error(error)}"
        ) from None


def _parse_override(override: str) -> tuple[list[str], Any]:
    key, sep, value = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"--set {override!r}: expected dotted.key=value, "
            "e.g. --set train_parameters.epochs=1"
        )
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    return key.strip().split("."), parsed


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply `dotted.key=value` overrides (values parsed as YAML) to a raw config."""
    for override in overrides:
        keys, value = _parse_override(override)
        node = raw
        for depth, part in enumerate(keys[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    f"--set {override!r}: {'.'.join(keys[:depth + 1])} is not a section"
                )
            node = child
        node[keys[-1]] = value
    return raw


def load_raw_config(path: str | Path) -> dict:
    """Read a YAML config file into a dict; a clear error for a missing or bad file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        with path.open(encoding="utf-8") as file:
            raw = yaml.load(file, Loader=_UniqueKeyLoader)  # nosec: a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}{where}: malformed YAML: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    if raw is None:
        raise ConfigError(
            f"{path}: the config file is empty; start from train_config.yml"
        )
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: the config must be a YAML mapping of sections "
            f"(general_parameters:, train_parameters:, ...), not a {type(raw).__name__}"
        )
    return raw


class _UniqueKeyLoader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
    """YAML's safe loader, but a key given twice in one mapping is an error."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(
    path: str | Path,
    overrides: list[str] | None = None,
    notes: list[str] | None = None,
) -> SignpipeConfig:
    """Load a config file, translate HearAI keys, apply overrides, validate.

    Args:
        path: the YAML file.
        overrides: `dotted.key=value` strings (as `--set`).
        notes: if given, receives one line per translated legacy key.
    """
    raw = load_raw_config(path)
    legacy_notes = translate_legacy(raw)
    if notes is not None:
        notes.extend(legacy_notes)
    return parse_config(apply_overrides(raw, overrides or []), str(path))


def check_data_paths(config: SignpipeConfig, base: Path | None = None) -> None:
    """Raise `ConfigError` when a dataset root does not exist."""
    for root in config.general_parameters.data_paths():
        path = Path(root) if base is None else base / root
        if not path.is_dir():
            raise ConfigError(
                f"general_parameters.data_path: '{root}' is not an existing directory"
            )


def config_to_dict(config: SignpipeConfig) -> dict:
    """A plain dict of the resolved config, fit for YAML and checkpoints."""
    return config.model_dump(mode="json")
