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

from config.hearai import translate_legacy
from config.registry import (
    SECTION_FACTS,
    FactsRegistry,
    import_models,
    other_models_settings,
    replaced_settings,
    section_with_settings,
)
from config.schema import SignpipeConfig
from config.section import Section
from utils.errors import ConfigError, quote, shorten, with_notes

#: The most values (scalars, lists, mappings) a config may expand to; aliases
#: (`*name`) count once per use. A config has a few hundred.
MAX_YAML_VALUES = 100_000
#: The most problems one error message lists.
MAX_PROBLEMS = 20


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
    loc = tuple(
        part
        for part in error["loc"]
        if not str(part).startswith(("function-", "constrained-"))
    )
    # Drop the union branch names pydantic inserts (e.g. 'str', 'list[str]').
    loc = tuple(
        part
        for part in loc
        if not (isinstance(part, str) and ("[" in part or part in ("str", "int")))
    )
    key = shorten(".".join(str(part) for part in loc))
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
    return f"{key}: {message}, got {quote(error.get('input'))}"


def format_validation_error(error: ValidationError) -> str:
    """The problems of a validation error, one line each, without duplicates (the
    first `MAX_PROBLEMS`, then how many more)."""
    lines = list(dict.fromkeys(_describe_error(e) for e in error.errors()))
    if len(lines) > MAX_PROBLEMS:
        more = len(lines) - MAX_PROBLEMS
        lines = lines[:MAX_PROBLEMS] + [f"... and {more} more problem(s)"]
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


def parse_override(override: str) -> tuple[list[str], Any]:
    """A `--set dotted.key=value` string -> its keys and its value (parsed as YAML;
    the text itself when it is not YAML)."""
    key, sep, value = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"--set {quote(override)}: expected dotted.key=value, "
            "e.g. --set train_parameters.epochs=1"
        )
    try:
        parsed = load_yaml(value) if value.strip() else None
    except YamlLimitError as error:
        raise ConfigError(f"--set {shorten(key)}: {error}") from None
    except (yaml.YAMLError, ValueError, RecursionError):
        parsed = value
    return key.strip().split("."), parsed


def _set_key(raw: dict, keys: list[str], value: Any, what: str) -> None:
    """Set `raw[keys[0]][keys[1]]... = value`, making the sections on the way."""
    node = raw
    for depth, part in enumerate(keys[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{what}: {'.'.join(keys[:depth + 1])} is not a section")
        node = child
    node[keys[-1]] = value


def _default_section(facts: FactsRegistry) -> Section:
    """The schema's default of the section that chooses a model of `facts`' kind."""
    fields = SignpipeConfig.model_fields
    return fields[facts.section].default  # pylint: disable=unsubscriptable-object


def _chosen_models(raw: dict) -> dict[str, Any]:
    """Section -> the model a raw config's model section chooses (its `name`, or
    the default one)."""
    chosen = {}
    for facts in SECTION_FACTS:
        section = raw.get(facts.section)
        default = _default_section(facts).name  # type: ignore[attr-defined]
        chosen[facts.section] = (
            section.get("name", default) if isinstance(section, dict) else default
        )
    return chosen


def _plugin_names(raw: dict) -> list[str]:
    """A raw config's `general_parameters.plugins` that are module names (anything
    else is left to validation to report)."""
    general = raw.get("general_parameters")
    plugins = general.get("plugins") if isinstance(general, dict) else None
    return [
        plugin
        for plugin in (plugins if isinstance(plugins, list) else [])
        if isinstance(plugin, str)
        and all(part.isidentifier() for part in plugin.split("."))
    ]


def apply_overrides(
    raw: dict, overrides: list[str], notes: list[str] | None = None
) -> dict:
    """Apply `dotted.key=value` overrides (values parsed as YAML) to a raw config.

    An override that chooses another model (`feature_extractor.name`,
    `transformer.name`) drops the own settings of the model it replaces that the
    new one does not read, unless an override sets them too; `notes`, if given,
    receives one line per dropped key.
    """
    before = _chosen_models(raw)
    overridden = set()
    for override in overrides:
        keys, value = parse_override(override)
        _set_key(raw, keys, value, f"--set {quote(override)}")
        overridden.add(".".join(keys))
    after = _chosen_models(raw)
    switched = [
        facts
        for facts in SECTION_FACTS
        if isinstance(before[facts.section], str)
        and isinstance(after[facts.section], str)
        and before[facts.section] != after[facts.section]
    ]
    if switched:
        import_models(_plugin_names(raw))
    for facts in switched:
        old, new = before[facts.section], after[facts.section]
        section = raw.get(facts.section)
        for key in replaced_settings(facts, old, new):
            written = {facts.section, f"{facts.section}.{key}"} & overridden
            if isinstance(section, dict) and key in section and not written:
                del section[key]
                if notes is not None:
                    notes.append(
                        f"note: {facts.section}.{key} is dropped: a setting of "
                        f"{old}, which --set {facts.section}.name={new} replaces"
                    )
    return raw


def config_from_checkpoint(raw: dict, source: str) -> SignpipeConfig:
    """The config a checkpoint or an export's sidecar saved (`config_to_dict`) as
    the object; `ConfigError` naming `source` and every bad key.

    It is read leniently in one way: the keys of a model section that other
    registered models declare and the chosen model does not read are dropped.
    Checkpoints written while every model's settings were fields of the shared
    sections hold them all (`model_path` for a landmark extractor, `pooling` for
    every encoder), and the trained weights never depended on them. The built-in
    models are imported for it; a section whose model is not registered (a plugin
    not imported yet) keeps its keys, checked once `build_pipeline` imports it.
    """
    if isinstance(raw, dict):
        import_models()
        chosen = _chosen_models(raw)
        raw = dict(raw)
        for facts in SECTION_FACTS:
            section, name = raw.get(facts.section), chosen[facts.section]
            if not isinstance(section, dict) or not isinstance(name, str):
                continue
            fields = type(_default_section(facts)).model_fields
            others = other_models_settings(
                facts, name, [key for key in section if key not in fields]
            )
            raw[facts.section] = {
                key: value for key, value in section.items() if key not in others
            }
    return parse_config(raw, source)


def with_changes(
    config: SignpipeConfig, changes: dict[str, Any], source: str = "config"
) -> SignpipeConfig:
    """A copy of `config` with dotted keys set to values, validated again.

    Args:
        config: a validated config (left as it is).
        changes: dotted key (`general_parameters.data_path`) -> its new value.
        source: what the error message names.
    """
    raw = config_to_dict(config)
    for key, value in changes.items():
        _set_key(raw, key.split("."), value, key)
    return parse_config(raw, source)


def with_overrides(
    config: SignpipeConfig, overrides: list[str], source: str = "config"
) -> SignpipeConfig:
    """A copy of `config` with `dotted.key=value` overrides (as `--set`) applied,
    validated again."""
    return parse_config(apply_overrides(config_to_dict(config), overrides), source)


class YamlLimitError(yaml.YAMLError):
    """A YAML document that expands past `MAX_YAML_VALUES`, or into itself."""


def _expanded_size(root: yaml.Node) -> int:
    """How many values the node graph becomes once every alias is expanded (counted
    without expanding it, and no further than just past `MAX_YAML_VALUES`)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # the nodes whose values are being counted
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, counted = stack.pop()
        children = _children(node)
        if counted:
            open_nodes.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children)
            if sizes[id(node)] > MAX_YAML_VALUES:
                return sizes[id(node)]
        elif id(node) in open_nodes:
            mark = node.start_mark
            raise YamlLimitError(
                f"line {mark.line + 1}: an alias repeats a structure inside itself"
            )
        elif id(node) not in sizes:
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in children)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


class _ConfigLoader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
    """YAML's safe loader, but a key given twice in one mapping is an error, and so
    is a document that aliases expand past `MAX_YAML_VALUES` values."""

    def construct_document(self, node):
        if _expanded_size(node) > MAX_YAML_VALUES:
            raise YamlLimitError(
                f"the YAML expands to more than {MAX_YAML_VALUES} values (each "
                "alias *name repeats what it names); a config has a few hundred"
            )
        return super().construct_document(node)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {quote(key)}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(stream: Any) -> Any:
    """Parse YAML as configs are: safe types only; a key twice in one mapping is a
    `yaml.YAMLError`, a document past `MAX_YAML_VALUES` a `YamlLimitError`."""
    return yaml.load(stream, Loader=_ConfigLoader)  # nosec: a SafeLoader


def read_yaml_file(path: str | Path, what: str = "config file") -> Any:
    """A YAML file parsed as configs are (`load_yaml`); one `ConfigError` naming the
    file (and the line) for a missing, unreadable or malformed file.

    Args:
        path: the file.
        what: how messages name it, e.g. `config file` or `sweep file`.
    """
    path = Path(path)
    if not path.is_file():  # also a FIFO, which would block the read
        raise ConfigError(f"{path}: {what} not found")
    try:
        with path.open(encoding="utf-8") as file:
            return load_yaml(file)
    except OSError as error:
        raise ConfigError(
            f"{path}: cannot read the {what} ({error.strerror})"
        ) from None
    except YamlLimitError as error:
        raise ConfigError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}{where}: malformed YAML: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    except RecursionError:
        raise ConfigError(f"{path}: the YAML is nested too deeply") from None
    except ValueError as error:  # a value YAML recognises but Python cannot hold
        raise ConfigError(
            f"{path}: unreadable YAML value: {shorten(str(error))}"
        ) from None


def load_raw_config(path: str | Path) -> dict:
    """Read a YAML config file into a dict; a clear error for a missing or bad file."""
    path = Path(path)
    raw = read_yaml_file(path)
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


def load_config(
    path: str | Path,
    overrides: list[str] | None = None,
    notes: list[str] | None = None,
) -> SignpipeConfig:
    """Load a config file, translate HearAI keys, apply overrides, validate.

    Args:
        path: the YAML file.
        overrides: `dotted.key=value` strings (as `--set`).
        notes: if given, receives one line per translated legacy key and per
            setting dropped because an override chose another model.

    Raises:
        ConfigError: naming the file or key; its `notes` hold the translation
            notes, so that a key the user never wrote is explained first.
    """
    raw = load_raw_config(path)
    found = translate_legacy(raw)
    try:
        raw = apply_overrides(raw, overrides or [], found)
    except ConfigError as error:
        raise with_notes(error, found) from None
    if notes is not None:
        notes.extend(found)
    try:
        return parse_config(raw, str(path))
    except ConfigError as error:
        raise with_notes(error, found) from None


def data_path_problems(config: SignpipeConfig, base: Path | None = None) -> list[str]:
    """One line per dataset root (a directory or a video manifest `.csv`) that does
    not exist."""
    problems = []
    for root in config.general_parameters.data_paths():
        path = Path(root) if base is None else base / root
        if not (path.is_dir() or (path.suffix.lower() == ".csv" and path.is_file())):
            problems.append(
                f"general_parameters.data_path: {quote(root)} is not an existing "
                "directory or video manifest (.csv)"
            )
    return problems


def check_data_paths(config: SignpipeConfig, base: Path | None = None) -> None:
    """Raise `ConfigError` when a dataset root (a directory or a video manifest
    `.csv`) does not exist."""
    problems = data_path_problems(config, base)
    if problems:
        raise ConfigError("\n".join(problems))


def config_to_dict(config: SignpipeConfig) -> dict:
    """A plain dict of the resolved config, fit for YAML and checkpoints: every
    field, and the chosen models' own settings with their defaults filled in (the
    models and `general_parameters.plugins` are imported for them).

    Raises:
        ConfigError: a model is unknown, a plugin cannot be imported, or a model's
            own settings are invalid (a config parsed before its models were
            imported is checked here).
    """
    raw = config.model_dump(mode="json")
    for facts in SECTION_FACTS:
        raw[facts.section] = section_with_settings(
            getattr(config, facts.section),
            facts,
            config.general_parameters.plugins,
            mode="json",
        )
    return raw
