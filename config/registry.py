"""What each registered model is, readable by the config: its facts and settings.

A feature extractor, temporal encoder or head kind is registered by one decorator
next to its constructor (`@FEATURE_EXTRACTORS.register(name, reads=..., settings=...)`
in `models/registry.py`). The decorator records the model's `ModelFacts` here, on the
ground floor, so that config validation and the generated reference can read them
without a floor above: what the model reads, the fewest frames it takes, its own
config fields (a `Section`, whose keys are written flat in the model's section) and
its weights layout.

The built-in models register when their packages are imported (`BUILTIN_PACKAGES`);
a model outside the repository is a module named under
`general_parameters.plugins`. `import_models` imports both by name, as a plugin
mechanism does: `models/` sits above `config/`, so nothing here imports it statically.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Iterable

from pydantic import ValidationError

from config.section import Section
from utils.errors import ConfigError

#: What a feature extractor can read: image frames one by one, the whole clip of
#: frames (a video network), landmarks, precomputed feature rows (the SSVP-SLT
#: layout, `datasets.ssvp`).
READS = ("frames", "clip", "landmarks", "features")

#: What a head kind's label is: one class per sample, a sequence of class ids (a
#: gloss sequence), or a sentence (text).
LABELS = ("class", "sequence", "text")

#: The packages whose import registers the built-in models.
BUILTIN_PACKAGES = ("models.feature_extractors", "models.transformers", "models.heads")


@dataclass(frozen=True)
class ModelFacts:
    """What one registered model is, as its registration declares it.

    Attributes:
        name: the registered name, as written in the config.
        summary: one or two sentences for the docs' model table (Markdown).
        reads: for an extractor, what it reads (a subset of `READS`).
        min_frames: the fewest frames per clip it runs on.
        settings: its own config fields (a `Section`), written flat in its config
            section; None when it has none of its own.
        weights: what its `pretrained_path` takes (Markdown), or "not used".
        module: the module that registered it.
        label: for a head kind, what its label is (one of `LABELS`): the data
            readers parse its cells, and the loaders batch its labels, by it.
    """

    name: str
    summary: str = ""
    reads: tuple[str, ...] = ("frames",)
    min_frames: int = 1
    settings: type[Section] | None = None
    weights: str = "not used"
    module: str = ""
    label: str = "class"

    def reads_frames(self) -> bool:
        """Whether it reads image frames (one by one or as a clip)."""
        return "frames" in self.reads or "clip" in self.reads

    def setting_names(self) -> tuple[str, ...]:
        """Its own config fields."""
        return tuple(self.settings.model_fields) if self.settings else ()


@dataclass
class FactsRegistry:
    """The facts of one kind of model, by name (filled by `models.registry`).

    Attributes:
        kind: what it holds, for messages ("feature extractor").
        section: the config section its settings are written in
            ("feature_extractor"), or "" for the head kinds.
    """

    kind: str
    section: str
    _facts: dict[str, ModelFacts] = field(default_factory=dict)

    def add(self, facts: ModelFacts) -> None:
        """Record a model's facts; a name may be used once."""
        if facts.name in self._facts:
            raise ValueError(f"{self.kind} '{facts.name}' is registered twice")
        if not set(facts.reads) <= set(READS):
            raise ValueError(
                f"{self.kind} '{facts.name}': reads must be among {', '.join(READS)}"
            )
        if facts.label not in LABELS:
            raise ValueError(
                f"{self.kind} '{facts.name}': label must be one of {', '.join(LABELS)}"
            )
        self._facts[facts.name] = facts

    def known(self, name: str) -> ModelFacts | None:
        """The facts of `name` if it is registered (nothing is imported)."""
        return self._facts.get(name)

    def get(self, name: str, plugins: Iterable[str] = ()) -> ModelFacts:
        """The facts of `name`, importing the models first if it is not registered.

        Raises:
            ConfigError: listing the registered names when `name` is unknown.
        """
        if name not in self._facts:
            import_models(plugins)
        if name not in self._facts:
            raise ConfigError(
                f"{self.section or self.kind}: unknown {self.kind} '{name}'; "
                f"allowed: {', '.join(self.names())}"
            )
        return self._facts[name]

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._facts)

    def reading_only(self, what: str) -> list[str]:
        """The registered names that read `what` and nothing else, sorted (e.g. the
        landmark-only extractors)."""
        return sorted(n for n, facts in self._facts.items() if facts.reads == (what,))

    def all(self) -> list[ModelFacts]:
        """Every registered model's facts, in registration order."""
        return list(self._facts.values())

    def remove(self, name: str) -> None:
        """Forget a registration (for tests that register a model of their own)."""
        self._facts.pop(name, None)


EXTRACTOR_FACTS = FactsRegistry("feature extractor", "feature_extractor")
ENCODER_FACTS = FactsRegistry("transformer", "transformer")
HEAD_KIND_FACTS = FactsRegistry("head kind", "")
#: The kinds whose model a config section chooses by its `name`, and whose own
#: settings are written flat in that section.
SECTION_FACTS = (EXTRACTOR_FACTS, ENCODER_FACTS)


def import_models(plugins: Iterable[str] = ()) -> None:
    """Import the built-in model packages and the plugin modules, which registers
    their models.

    Raises:
        ConfigError: naming the plugin that cannot be imported and why.
    """
    for package in BUILTIN_PACKAGES:
        importlib.import_module(package)
    for plugin in plugins:
        try:
            importlib.import_module(plugin)
        except ImportError as error:
            raise ConfigError(
                f"general_parameters.plugins: cannot import '{plugin}' ({error}); "
                "a plugin is a module on the Python path (e.g. in the directory you "
                "run from)"
            ) from error


def extra_settings(section: Section) -> dict:
    """The keys of a model section beyond its schema fields: the chosen model's
    own settings, written flat."""
    return dict(section.model_extra or {})


def other_models_settings(
    facts: FactsRegistry, name: str, keys: Iterable[str]
) -> dict[str, list[str]]:
    """Among `keys`, the settings of other registered models that model `name` does
    not read: key -> the models that declare it, sorted."""
    chosen = facts.known(name)
    own = set(chosen.setting_names()) if chosen else set()
    owners: dict[str, list[str]] = {}
    for key in keys:
        declared = [
            other.name
            for other in facts.all()
            if other.name != name and key in other.setting_names()
        ]
        if declared and key not in own:
            owners[key] = sorted(declared)
    return owners


def replaced_settings(facts: FactsRegistry, old: str, new: str) -> tuple[str, ...]:
    """The settings of model `old` that model `new` does not read: what choosing
    `new` in its place leaves without a reader (nothing when either is unknown)."""
    before, after = facts.known(old), facts.known(new)
    if before is None or after is None:
        return ()
    kept = set(after.setting_names())
    return tuple(key for key in before.setting_names() if key not in kept)


def settings_problems(
    section: Section,
    facts: FactsRegistry,
    *,
    name: str | None = None,
    where: str | None = None,
) -> list[str]:
    """Problems with a model section's own settings (the keys its schema does not
    declare), checked against the chosen model's `settings`, each as `key: why`: a
    bad value, another model's setting, an unknown key.

    Args:
        section: the section (its extra keys are the settings).
        facts: the registry of the model it chooses.
        name: the chosen model; default the section's `name` (a head's is its
            `kind`).
        where: the section's dotted key in messages; default `facts.section`
            (a head's is `heads.<group>.<head>`).
    """
    name = section.name if name is None else name  # type: ignore[attr-defined]
    where = facts.section if where is None else where
    extras = extra_settings(section)
    chosen = facts.known(name)
    if chosen is None:
        return []
    own = chosen.setting_names()
    problems = []
    unknown = sorted(set(extras) - set(own))
    others = other_models_settings(facts, name, unknown)
    allowed = sorted({*type(section).model_fields, *own})
    for key in unknown:
        if key in others:
            problems.append(
                f"{where}.{key}: read by {' and '.join(others[key])}, not by "
                f"{facts.kind} '{name}'; remove it"
            )
        else:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(
                f"{where}.{key}: unknown key for {facts.kind} '{name}'{hint}; "
                f"allowed: {', '.join(allowed)}"
            )
    if chosen.settings is not None:
        try:
            chosen.settings.model_validate({k: extras[k] for k in extras if k in own})
        except ValidationError as error:
            for detail in error.errors():
                key = ".".join(str(part) for part in detail["loc"])
                message = detail["msg"].removeprefix("Value error, ")
                named, colon, rest = message.partition(": ")
                if not key and colon and named in own:  # a validator naming its field
                    key, message = named, rest
                at = f"{where}.{key}" if key else where
                problems.append(f"{at}: {message}")
    return problems


def section_with_settings(
    section: Section,
    facts: FactsRegistry,
    plugins: Iterable[str] = (),
    mode: str = "python",
) -> dict:
    """A model section's fields and its chosen model's own settings, defaults filled
    in, as one dict (`model_dump`'s `mode`); raises as `model_settings`."""
    settings = model_settings(section, facts, plugins)
    own = settings.model_dump(mode=mode) if settings is not None else {}
    return {**section.model_dump(mode=mode), **own}


def model_settings(
    section: Section,
    facts: FactsRegistry,
    plugins: Iterable[str] = (),
    *,
    name: str | None = None,
    where: str | None = None,
) -> Section | None:
    """The chosen model's own settings, defaults filled in, or None for a model
    that declares none; the models and `plugins` are imported first when it is
    not registered yet. `name` and `where` as for `settings_problems`.

    Raises:
        ConfigError: the model is unknown, a plugin cannot be imported, or its
            settings are invalid (each problem as `settings_problems` words it).
    """
    name = section.name if name is None else name  # type: ignore[attr-defined]
    chosen = facts.get(name, plugins)
    if chosen.settings is None:
        return None
    own = chosen.setting_names()
    extras = extra_settings(section)
    try:
        return chosen.settings.model_validate(
            {k: v for k, v in extras.items() if k in own}
        )
    except ValidationError:
        problems = settings_problems(section, facts, name=name, where=where)
        raise ConfigError("\n".join(problems)) from None
