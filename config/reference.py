"""The config reference page, generated from the schema: `docs/reference/config.md`.

Each section's intro is its model's docstring and each key's text is its field's
`description`, so the schema is the one source of the page.

    python -m config.reference           # write docs/reference/config.md
    python -m config.reference --check   # exit 1 when the page is stale
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from config.schema import SignpipeConfig
from utils.files import write_atomically

#: The generated page, relative to the repository root.
PAGE = "docs/reference/config.md"
#: The repository root.
ROOT = Path(__file__).resolve().parents[1]
#: The command that regenerates the page.
COMMAND = "python -m config.reference"
#: A default longer than this (as flow YAML) is shown as a YAML block below its table.
MAX_INLINE_DEFAULT = 60

INTRO = """\
A run is configured by one YAML file, `train_config.yml` by default
(`train.py --model_config_path FILE`). Its top level holds the sections below, each a
mapping of keys; every section and every key is optional and has the default shown,
except where a key says it is required.

- **Unknown sections and keys are errors.** The message names the dotted key, suggests
  the closest valid name and lists the allowed keys, so a typo never goes unnoticed.
- **Wrong types and out-of-range values are errors** naming the key and the bad value;
  every problem is reported at once. `true`/`false` are not numbers, and numbers must
  be finite (`.inf` and `.nan` are refused).
- **Overrides.** `train.py --set section.key=value` sets one value on top of the file;
  the value is read as YAML (`--set train_parameters.epochs=1`,
  `--set 'train_parameters.classification_mode=[gloss, hamnosys]'`), and an empty value
  means `null`. Repeat `--set` for more values.
- **HearAI configs** load unchanged: HearAI's key names (for example
  `general_parameters.data_paths`, `train_parameters.use_landmarks`) are translated to
  the names below first, each with a note saying what became of it.
- **Relative paths** are relative to the directory you run from, except
  `annotation_file`, which is relative to each data root.

The run writes the resolved config, defaults filled in, as `config.yml` in its run
directory."""


# ----------------------------------------------------------------------------------
# Walking the schema


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _unwrap(annotation: Any) -> Any:
    """`Annotated[X, ...]` -> `X`."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def nested_models(annotation: Any) -> Iterator[tuple[str, type[BaseModel]]]:
    """The models inside a field's type, each with how its keys sit below the field:
    `""` (the model itself), `".<name>"` (values of a mapping), `"[]"` (list items)."""
    annotation = _unwrap(annotation)
    if _is_model(annotation):
        yield "", annotation
        return
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is dict:
        for suffix, model in nested_models(args[1]):
            yield ".<name>" + suffix, model
    elif origin in (list, tuple, set, frozenset):
        for arg in args:
            for suffix, model in nested_models(arg):
                yield "[]" + suffix, model
    elif origin in (Union, types.UnionType):
        for arg in args:
            yield from nested_models(arg)


def walk_models(
    model: type[BaseModel], path: str = ""
) -> Iterator[tuple[str, type[BaseModel]]]:
    """Every model reachable from `model` (itself first), each with its dotted path,
    depth first in field order; a model met again on another path comes again."""
    yield path, model
    for name, field in model.model_fields.items():
        for suffix, child in nested_models(field.annotation):
            yield from walk_models(child, f"{path}.{name}{suffix}".lstrip("."))


def undocumented_fields(model: type[BaseModel] = SignpipeConfig) -> list[str]:
    """The dotted keys of every field reachable from `model` that lacks a description
    (and of every model without a docstring, as `<path> (docstring)`)."""
    missing = []
    for path, section in walk_models(model):
        if not (section.__doc__ or "").strip():
            missing.append(f"{path or section.__name__} (docstring)")
        for name, field in section.model_fields.items():
            if not (field.description or "").strip():
                missing.append(f"{path}.{name}".lstrip("."))
    return list(dict.fromkeys(missing))


# ----------------------------------------------------------------------------------
# Types, bounds and defaults in words


def _number(value: Any, integer: bool = False) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    if integer and isinstance(value, int) and value >= 2**20 and _is_power(value + 1):
        return f"2^{int(math.log2(value + 1))} - 1"
    return str(value)


def _is_power(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def _bounds(metadata: list[Any], integer: bool) -> str:
    """`in [a, b]`, `in (a, b]`, `(>= a)`, `(< b)` from annotated-types metadata."""
    low = high = None
    low_open = high_open = False
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            low, low_open = item.ge, False
        elif isinstance(item, annotated_types.Gt):
            low, low_open = item.gt, True
        elif isinstance(item, annotated_types.Le):
            high, high_open = item.le, False
        elif isinstance(item, annotated_types.Lt):
            high, high_open = item.lt, True
    if integer:  # an open bound of an integer is the closed one next to it
        if low is not None and low_open:
            low, low_open = low + 1, False
        if high is not None and high_open:
            high, high_open = high - 1, False
    if low is not None and high is not None:
        return (
            f" in {'(' if low_open else '['}{_number(low, integer)}, "
            f"{_number(high, integer)}{')' if high_open else ']'}"
        )
    if low is not None:
        return f" ({'>' if low_open else '>='} {_number(low, integer)})"
    if high is not None:
        return f" ({'<' if high_open else '<='} {_number(high, integer)})"
    return ""


def _scalar_name(kind: Any) -> str:
    names = {str: "str", int: "int", float: "float", bool: "bool"}
    if kind in names:
        return names[kind]
    if kind is types.NoneType:
        return "null"
    if _is_model(kind):
        return "mapping (see below)"
    return getattr(kind, "__name__", str(kind))


def type_text(
    annotation: Any, metadata: list[Any] | None = None, inner: bool = False
) -> str:
    """A field's type in words, with its bounds: `int in [1, 256]`, `list of str`,
    `one of: cls, mean`, `float in (0, 1) or null`; `inner` for a part of a type
    (`gloss/hamnosys or list of gloss/hamnosys`)."""
    metadata = list(metadata or [])
    while get_origin(annotation) is Annotated:
        args = get_args(annotation)
        annotation = args[0]
        for extra in args[1:]:
            metadata.extend(getattr(extra, "metadata", [extra]))
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin in (Union, types.UnionType):
        texts = [
            type_text(option, metadata, inner=True)
            for option in args
            if option is not types.NoneType
        ]
        if types.NoneType in args:
            texts.append("null")
        return (
            ", ".join(texts[:-1]) + " or " + texts[-1] if len(texts) > 1 else texts[0]
        )
    if origin is not None:
        return _generic_text(origin, args, inner)
    text = _scalar_name(annotation)
    if annotation in (int, float):
        text += _bounds(metadata, integer=annotation is int)
    return text


def _generic_text(origin: Any, args: tuple, inner: bool) -> str:
    """`Literal[...]`, `list[...]`, `tuple[...]`, `dict[...]` in words."""
    if origin is Literal:
        words = [str(value) for value in args]
        if inner or len(words) == 1:
            return "/".join(words)
        return "one of: " + ", ".join(words)
    if origin is list:
        return f"list of {_plural(type_text(args[0], inner=True))}"
    if origin is tuple:
        return "[" + ", ".join(type_text(arg, inner=True) for arg in args) + "]"
    if origin is dict:
        key = "name" if args[0] is str else type_text(args[0], inner=True)
        return f"map of {key} to {type_text(args[1], inner=True)}"
    return str(origin)


def _plural(text: str) -> str:
    return f"({text})" if " or " in text or ", " in text else text


def default_yaml(value: Any, flow: bool = True) -> str:
    """A default as YAML writes it (`null`, `0.0003`, `[pose, left_hand]`)."""
    data = to_jsonable_python(value)
    if flow:
        text = yaml.safe_dump(
            [data], default_flow_style=True, sort_keys=False, width=math.inf
        ).strip()
        return text[1:-1]  # the list around the value
    return yaml.safe_dump(data, default_flow_style=False, sort_keys=False).rstrip()


# ----------------------------------------------------------------------------------
# The page


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _docstring(model: type[BaseModel]) -> str:
    return inspect.cleandoc(model.__doc__ or "")


def _describe_default(field: FieldInfo) -> str | None:
    """The default as YAML, or None for a required field."""
    if field.is_required():
        return None
    return default_yaml(field.get_default(call_default_factory=True))


def _section(path: str, model: type[BaseModel], level: int, seen: set) -> list[str]:
    """One model's heading, intro and table, then its nested models."""
    lines = [f"{'#' * level} {_heading(path)}", ""]
    intro = _docstring(model)
    if intro:
        lines += [intro, ""]
    lines += ["| key | type | default | description |", "|---|---|---|---|"]
    blocks: list[str] = []
    children: dict[type[BaseModel], list[str]] = {}
    for name, field in model.model_fields.items():
        key = f"{path}.{name}"
        nested = list(nested_models(field.annotation))
        for suffix, child in nested:
            children.setdefault(child, []).append(key + suffix)
        type_cell = type_text(field.annotation, field.metadata)
        default = _describe_default(field)
        if default is None:
            default_cell = "(required)"
        elif nested and not isinstance(field.default, dict):
            default_cell = f"see `{key}`"
        elif len(default) > MAX_INLINE_DEFAULT:
            default_cell = "see below"
            blocks += [
                f"Default of `{key}`:",
                "",
                "```yaml",
                default_yaml({name: to_jsonable_python(field.default)}, flow=False),
                "```",
                "",
            ]
        else:
            default_cell = f"`{default}`"
        lines.append(
            f"| `{name}` | {_cell(type_cell)} | {_cell(default_cell)} | "
            f"{_cell(field.description or '')} |"
        )
    lines.append("")
    lines += blocks
    for child, paths in children.items():
        if child in seen:
            continue
        seen.add(child)
        lines += _section(" and ".join(paths), child, level + 1, seen)
    return lines


def _heading(path: str) -> str:
    return " and ".join(f"`{part}`" for part in path.split(" and "))


def generate() -> str:
    """The text of the config reference page."""
    lines = ["# Config reference", "", INTRO, "", "The sections:", ""]
    for name, field in SignpipeConfig.model_fields.items():
        lines.append(f"- [`{name}`](#{name}): {_cell(field.description or '')}")
    lines.append("")
    seen: set = set()
    for name, field in SignpipeConfig.model_fields.items():
        for _, model in nested_models(field.annotation):
            seen.add(model)
            lines += _section(name, model, 2, seen)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the page, or with `--check` say whether it is stale (exit status 1)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when the page differs from what would be generated",
    )
    args = parser.parse_args(argv)
    text = generate()
    page = ROOT / PAGE
    if args.check:
        current = page.read_bytes() if page.is_file() else None
        if current != text.encode("utf-8"):
            print(f"{PAGE} is stale: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    page.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(page, lambda file: file.write(text.encode("utf-8")))
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
