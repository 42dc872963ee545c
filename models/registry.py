"""Name -> constructor registries, and the interfaces of what they build.

A feature extractor and a temporal encoder are `nn.Module`s that satisfy
`FeatureExtractor` and `TemporalEncoder` below; `models.pipeline.build_pipeline`
checks every built one against its protocol and names what is missing.
"""

from __future__ import annotations

from typing import Callable, Protocol, TypeVar, runtime_checkable

import torch

from utils.errors import ConfigError

T = TypeVar("T")


@runtime_checkable
class FeatureExtractor(Protocol):
    """A batch -> per-frame features `(B, T, out_dim)`, zero at padded frames
    (or tokens of several frames each: see `ClipFeatureExtractor`).

    `prepare_for_training` is called once before training (not for evaluation or
    prediction): an extractor that profits from a memory format or compilation
    declares it there, for the parts it knows (a 2-D CNN puts its backbone in
    channels_last; a 3-D CNN uses channels_last_3d). Extractors
    with nothing to prepare inherit `NothingToPrepare`.
    """

    out_dim: int

    def __call__(self, batch: dict) -> torch.Tensor: ...

    def prepare_for_training(self, *, channels_last: bool, compile_model: bool) -> None:
        """Apply `trainer.channels_last` / `trainer.compile` where they help."""


@runtime_checkable
class ClipFeatureExtractor(FeatureExtractor, Protocol):
    """A `FeatureExtractor` whose tokens are not one per frame: a video network
    that reads the whole clip and strides over time, giving `(B, T', out_dim)`.

    `token_positions(T, T')` says which token's window holds each of the `T` input
    frames (a `(T,)` long tensor, non-decreasing). The pipeline derives the tokens'
    mask from it (a token is real when a real frame falls in it) and gives the
    per-frame outputs by it, so the temporal encoders and heads need no change.
    """

    def token_positions(self, num_frames: int, num_tokens: int) -> torch.Tensor:
        """`(num_frames,)` long: the token index of each frame."""


@runtime_checkable
class TemporalEncoder(Protocol):
    """`(B, T, D)` features and a `(B, T)` mask -> the clip embedding `(B, out_dim)`
    and per-frame outputs `(B, T, out_dim)`."""

    out_dim: int

    def __call__(
        self, tokens: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


class NothingToPrepare:  # pylint: disable=too-few-public-methods
    """Mixin for extractors that need no training-time preparation."""

    def prepare_for_training(self, *, channels_last: bool, compile_model: bool) -> None:
        """Nothing to do: no memory format or compilation applies."""
        del channels_last, compile_model


def missing_members(module: object, protocol: type) -> list[str]:
    """The members of `protocol` that `module` lacks (empty when it conforms)."""
    names = [
        name
        for name in (*protocol.__annotations__, *vars(protocol))
        if not name.startswith("_") or name == "__call__"
    ]
    return sorted({name for name in names if not hasattr(module, name)})


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
