"""Name -> constructor registries: how configs name the models they build."""

from __future__ import annotations

from typing import Callable, TypeVar

from utils.errors import ConfigError

T = TypeVar("T")


class Registry:
    """Maps a short name (as written in the config) to a constructor.

    Args:
        kind: what the registry holds, for error messages (e.g. "feature extractor").
        config_key: the dotted config key that selects from it.
    """

    def __init__(self, kind: str, config_key: str) -> None:
        self.kind = kind
        self.config_key = config_key
        self._entries: dict[str, Callable] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering a constructor under `name`; a name may be used once."""

        def decorator(constructor: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = constructor
            return constructor

        return decorator

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def get(self, name: str) -> Callable:
        """The constructor for `name`; a `ConfigError` listing valid names otherwise."""
        if name not in self._entries:
            raise ConfigError(
                f"{self.config_key}: unknown {self.kind} '{name}'; "
                f"allowed: {', '.join(self.names())}"
            )
        return self._entries[name]

    def __contains__(self, name: str) -> bool:
        return name in self._entries


FEATURE_EXTRACTORS = Registry("feature extractor", "feature_extractor.name")
TRANSFORMERS = Registry("transformer", "transformer.name")
