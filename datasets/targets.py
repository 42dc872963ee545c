"""Sequence and sentence labels as training targets: the text heads' tokenizers,
a sample's labels as an item's, and padded `(B, L)` batches of them.

A class label stays one int (batched as `(B,)`, as always); a sequence label is its
class ids, a sentence its tokenizer's ids (the end-of-sentence id appended), both
batched as `(B, L)` padded with `IGNORE_INDEX`; the sentence itself travels along
as `texts` (the reference of BLEU and chrF).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from config.registry import HEAD_KIND_FACTS, model_settings
from config.schema import SignpipeConfig
from utils.constants import IGNORE_INDEX
from utils.labels import Label
from utils.tokenizer import load_tokenizer


@dataclass
class TextTarget:
    """How a text head's sentences become token ids.

    Attributes:
        tokenizer: the head's tokenizer (`utils.tokenizer.load_tokenizer`).
        max_length: the most ids per sentence (its kind's `max_target_length`),
            or None for no limit.
    """

    tokenizer: Any
    max_length: int | None = None

    def encode(self, sentence: str) -> list[int]:
        """The ids of a sentence, end-of-sentence id included; `[]` for `""`."""
        if not sentence:
            return []
        return list(
            self.tokenizer(
                sentence,
                truncation=self.max_length is not None,
                max_length=self.max_length,
            )["input_ids"]
        )


def load_text_targets(config: SignpipeConfig) -> dict[str, TextTarget]:
    """Each active text head's tokenizer and length limit, loaded once.

    Raises:
        ConfigError: naming `heads.<group>.<head>.tokenizer_path` when the folder is
            missing or not a tokenizer (see `utils.tokenizer.load_tokenizer`).
    """
    labels, modes = config.head_labels(), config.head_modes()
    targets = {}
    for name, head in config.active_heads().items():
        if labels[name] != "text":
            continue
        where = f"heads.{modes[name]}.{name}"
        settings = model_settings(
            head,
            HEAD_KIND_FACTS,
            config.general_parameters.plugins,
            name=head.kind,
            where=where,
        )
        path = getattr(settings, "tokenizer_path", None)
        targets[name] = TextTarget(
            load_tokenizer(path or "", f"{where}.tokenizer_path"),
            getattr(settings, "max_target_length", None),
        )
    return targets


def item_labels(
    labels: dict[str, Label], targets: dict[str, TextTarget]
) -> tuple[dict[str, int | list[int]], dict[str, str]]:
    """A sample's labels as a dataset item holds them, and its sentences.

    Returns:
        `{head: int}` for class heads, `{head: [ids]}` for sequence and text heads
        (`[]` when missing), and `{text head: sentence}` (`""` when missing).
    """
    values: dict[str, int | list[int]] = {}
    texts: dict[str, str] = {}
    for head, label in labels.items():
        if head in targets:
            texts[head] = str(label)
            values[head] = targets[head].encode(str(label))
        elif isinstance(label, tuple):
            values[head] = list(label)
        else:
            values[head] = label
    return values, texts


def pad_ids(rows: list[list[int]]) -> torch.Tensor:
    """`(B, L)` long of id lists padded with `IGNORE_INDEX` (L at least 1, so a
    batch without any label still has a row per sample)."""
    longest = max([1, *(len(row) for row in rows)])
    out = torch.full((len(rows), longest), IGNORE_INDEX, dtype=torch.long)
    for index, row in enumerate(rows):
        if row:
            out[index, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out
