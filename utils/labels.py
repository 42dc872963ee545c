"""Label cells: one class index, a sequence of class indices (`27+82+5`, a gloss
sequence), or a sentence; what each kind of head's label is comes from its kind's
registration (`config.registry.LABELS`).

A class label may be `-1`, `nan`, `none`, `na` or empty for "missing"; a sequence
is missing when empty (or one such token); a sentence only when empty ("none" is a
word). Problems are `DataError`s naming the file and line.
"""

from __future__ import annotations

import math
import re

from config.model import MAX_NUM_CLASS
from utils.constants import IGNORE_INDEX
from utils.errors import DataError

#: A label: a class index, a sequence of class indices, or a sentence.
Label = int | tuple[int, ...] | str

MISSING_TOKENS = {"", "-1", "nan", "none", "null", "na"}
# The largest class index a label may have, checked as each label is read: a typo such
# as 1000000000000 would otherwise size a `num_class: auto` head (and its optimizer
# state) to that many classes before anything else looks at it.
MAX_CLASS_INDEX = MAX_NUM_CLASS - 1
#: The most class ids in one sequence label.
MAX_SEQUENCE_LENGTH = 512
#: What separates the ids of a sequence cell: `+` or whitespace.
SEQUENCE_SEPARATOR = re.compile(r"[+\s]+")


def parse_label(token: str, head: str, where: str) -> int:
    """A label token -> class index, or `IGNORE_INDEX` when missing."""
    if token.strip().lower() in MISSING_TOKENS:
        return IGNORE_INDEX
    try:
        value = float(token)
    except ValueError:
        raise DataError(
            f"{where}: head {head}: label {token!r} is not a number"
        ) from None
    if math.isnan(value) or value == -1:
        return IGNORE_INDEX
    if not value.is_integer() or value < 0:
        raise DataError(
            f"{where}: head {head}: label {token!r} is not a class index "
            "(a whole number >= 0, or -1/nan for missing)"
        )
    if value > MAX_CLASS_INDEX:
        raise DataError(
            f"{where}: head {head}: label {token!r} is above the largest class index "
            f"{MAX_CLASS_INDEX} (a head has at most {MAX_NUM_CLASS} classes)"
        )
    return int(value)


def missing_label(kind: str) -> Label:
    """The label of a sample without one, for a head whose label is `kind`."""
    return {"sequence": (), "text": ""}.get(kind, IGNORE_INDEX)


def is_missing(label: Label) -> bool:
    """Whether a label of any kind is the missing one."""
    return label in (IGNORE_INDEX, (), "")


def parse_sequence(token: str, head: str, where: str) -> tuple[int, ...]:
    """A sequence cell (`27+82+5`, or ids separated by spaces) -> class ids; `()`
    when missing (empty, or one missing token such as `-1`)."""
    text = token.strip().strip("\"'")
    if text.lower() in MISSING_TOKENS:
        return ()
    pieces = [piece for piece in SEQUENCE_SEPARATOR.split(text) if piece]
    if len(pieces) > MAX_SEQUENCE_LENGTH:
        raise DataError(
            f"{where}: head {head}: a sequence of {len(pieces)} ids; at most "
            f"{MAX_SEQUENCE_LENGTH}"
        )
    ids = []
    for piece in pieces:
        value = parse_label(piece, head, where)
        if value == IGNORE_INDEX:
            raise DataError(
                f"{where}: head {head}: sequence {token!r} holds {piece!r}; every "
                "item is a class index (an empty cell or -1 marks the whole "
                "sequence missing)"
            )
        ids.append(value)
    return tuple(ids)


def parse_text(token: str) -> str:
    """A sentence cell, stripped (words separated by single spaces); `""` is the
    only missing sentence ("none" and "na" are words)."""
    return " ".join(token.split())


def parse_cell(token: str, head: str, kind: str, where: str) -> Label:
    """A cell of a head whose label is `kind` (class, sequence, text)."""
    if kind == "sequence":
        return parse_sequence(token, head, where)
    if kind == "text":
        return parse_text(token)
    return parse_label(token, head, where)
