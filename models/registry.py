"""Name -> constructor registries, and the interfaces of what they build.

A feature extractor and a temporal encoder are `nn.Module`s that satisfy
`FeatureExtractor` and `TemporalEncoder` below; `models.pipeline.build_pipeline`
checks every built one against its protocol and names what is missing. A head kind
is a `HeadKind`: its layer, its loss, its metrics and its prediction output.

A registration carries the model's facts (what it reads, its fewest frames, its own
config settings, its weights layout) to `config.registry`, where the config's
validation and the generated docs read them: adding a model is one file and one
import line (or a `general_parameters.plugins` entry for a module of your own).
"""

from __future__ import annotations

import inspect
from typing import Callable, Protocol, TypeVar, runtime_checkable

import torch
from torch import nn
from torchmetrics import Metric

from config.registry import (
    ENCODER_FACTS,
    EXTRACTOR_FACTS,
    HEAD_KIND_FACTS,
    FactsRegistry,
    ModelFacts,
)
from config.section import Section
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


@runtime_checkable
class HeadKind(Protocol):
    """What a kind of head is (`heads.<group>.<head>.kind`): a registered class,
    instantiated once per kind and shared by its heads.

    `top_k` are the top-k accuracies it logs as `{stage}/{head}/top{k}`;
    `metrics` may add others, logged as `{stage}/{head}/{name}`.

    Optional members, read with their defaults by `kind_trait`:

    - `inputs = "clip"`: `layer` reads the `(B, D)` clip embedding; `"frames"`: it
      reads a `models.heads.sequence.HeadInput` (the encoder's per-frame outputs,
      their mask, and the batch's labels for teacher forcing).
    - `metric_stages = ("train", "val", "test")`: the stages whose metrics it
      logs (a kind that decodes, e.g. CTC or a text decoder, leaves training out:
      decoding leaves the device).
    - `layer(..., settings=...)`: a kind that registers `settings` receives its
      head's own settings (defaults filled in) when its `layer` names `settings`.

    What a head kind's label is (a class, a sequence, a sentence) is a fact of its
    registration (`label=`), so that the data readers, on a lower floor, know it.
    """

    top_k: tuple[int, ...]

    def layer(
        self,
        *,
        input_dim: int,
        num_classes: int,
        additional_layers: int,
        dropout: float,
    ) -> nn.Module:
        """The head: `(B, input_dim)` clip embeddings -> `(B, ...)` outputs."""

    def loss(
        self, outputs: torch.Tensor, target: torch.Tensor, label_smoothing: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The summed loss over the labelled samples and their count (tensors on
        the outputs' device); `target` `(B,)` long, `IGNORE_INDEX` where missing."""

    def metrics(self, num_classes: int) -> dict[str, Metric]:
        """Fresh metric objects by name (`top1`, ...), one set per stage."""

    def metric_inputs(
        self, outputs: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What its metrics' `update` takes for these outputs and labels."""

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """The prediction output: scores (classification: probabilities)."""


#: The defaults of a head kind's optional members (see `HeadKind`).
HEAD_KIND_DEFAULTS = {"inputs": "clip", "metric_stages": ("train", "val", "test")}


def kind_trait(kind: object, name: str):
    """A head kind's optional member `name`, or its default (`HEAD_KIND_DEFAULTS`)."""
    return getattr(kind, name, HEAD_KIND_DEFAULTS[name])


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
        facts: where the registrations' facts go (`config.registry`).
    """

    def __init__(self, kind: str, config_key: str, facts: FactsRegistry) -> None:
        self.kind = kind
        self.config_key = config_key
        self.facts = facts
        self._entries: dict[str, Callable] = {}

    def register(  # pylint: disable=too-many-arguments
        self,
        name: str,
        *,
        summary: str = "",
        reads: tuple[str, ...] = ("frames",),
        min_frames: int = 1,
        settings: type[Section] | None = None,
        weights: str = "not used",
        label: str = "class",
    ) -> Callable[[T], T]:
        """Decorator registering a constructor under `name` with its facts (see
        `config.registry.ModelFacts`); a name may be used once.

        The constructor receives the fields of its config section that its
        signature names, its own `settings` (defaults filled in) among them.
        """

        def decorator(constructor: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self.facts.add(
                ModelFacts(
                    name=name,
                    summary=summary or _first_paragraph(constructor),
                    reads=tuple(reads),
                    min_frames=min_frames,
                    settings=settings,
                    weights=weights,
                    module=getattr(constructor, "__module__", ""),
                    label=label,
                )
            )
            self._entries[name] = constructor
            return constructor

        return decorator

    def unregister(self, name: str) -> None:
        """Forget a registration and its facts (for tests of registration)."""
        self._entries.pop(name, None)
        self.facts.remove(name)

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


def _first_paragraph(constructor: object) -> str:
    doc = inspect.getdoc(constructor) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


FEATURE_EXTRACTORS = Registry(
    "feature extractor", "feature_extractor.name", EXTRACTOR_FACTS
)
TRANSFORMERS = Registry("transformer", "transformer.name", ENCODER_FACTS)
HEAD_KINDS = Registry("head kind", "heads.<group>.<head>.kind", HEAD_KIND_FACTS)
