"""HamNoSys transcriptions -> HearAI head labels.

A HamNoSys 4.0 string is a sequence of private-use characters (U+E000..U+E0F1, plus
space and ``{ | }``), one symbol each; ``hamnosys_symbols.tsv`` next to this file
names them (the official HamNoSys4TeX list). `decode` turns a string into symbol
names; `parse_heads` reads the nine HearAI heads (see `hamnosys_heads`) from it:

1. symmetry: an operator at the very start, with its modifiers in any order
   (longest pattern); ``hamalternatingmotion`` is a flag, a leading
   ``hamnondominant`` gives class 0 plus a flag;
2. handshape: a base form, then thumb and bending modifiers in either order;
   finger specifiers after them (``hamindexfinger hamfingerhookmod``) describe one
   finger only and are skipped;
3. orientation: the extended finger direction, then the palm orientation;
4. location (optional): left/right before or after the first body location, T/B
   from that location (``hamchest`` when none or ``hamneutralspace``), then a
   contact/distance symbol.

Two-hand groups ``hamparbegin X hamplus Y hamparend`` count as the dominant hand
``X``; alternatives ``{A|B}`` as ``A``; ``A hambetween B`` as ``A``. A head whose
symbol is missing or unexpected gets -1 and a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from config import hamnosys_heads as H
from utils.errors import DataError

SYMBOLS_FILE = Path(__file__).with_name("hamnosys_symbols.tsv")
MISSING = -1

_TB = {name: i for i, name in enumerate(H.TB_LOCATIONS) if i} | H.TB_EXTRA
_DISTANCE = H.DISTANCE_CLASSES | H.DISTANCE_EXTRA
_HAND_MODIFIERS = set(H.THUMB_CLASSES) | set(H.BENDING_CLASSES)
_SYMMETRY_MODIFIERS = {"hamfingerstraightmod", "hamlargemod", "hamalternatingmotion"}
_FINGERS = set("hamthumb hamindexfinger hammiddlefinger hamringfinger hampinky".split())
_FINGER_PARTS = {name for name in H.TB_LOCATIONS if name.startswith("hamfinger")}
# Brackets and markers that may stand before a handshape, orientation or location.
_SKIPPED = set(
    "hamparbegin hamparend hamseqbegin hamseqend hamfusionbegin hamfusionend "
    "hamalternatingmotion hamorirelative hamnondominant hametc".split()
)
# Symbol categories of the parts of a sign: handshape, orientation, location.
_PARTS = (
    {"handshape_base", "thumb", "bending"},
    {"finger_direction", "palm_orientation"},
    {"location", "contact/distance"},
)


@lru_cache(maxsize=1)
def _symbol_rows() -> list[tuple[str, str, str]]:
    """The shipped symbol table as (character, name, category) rows."""
    lines = SYMBOLS_FILE.read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in lines[1:]]
    return [
        (chr(int(code.removeprefix("U+"), 16)), name, kind) for code, name, kind in rows
    ]


@lru_cache(maxsize=1)
def _names() -> dict[str, str]:
    """`symbol_names`, built once: the parser looks symbols up for every entry."""
    return {char: name for char, name, _ in _symbol_rows()}


@lru_cache(maxsize=1)
def _categories() -> dict[str, str]:
    """`symbol_categories`, built once."""
    return {name: kind for _, name, kind in _symbol_rows()}


def symbol_names() -> dict[str, str]:
    """`{character: symbol name}` for the 209 HamNoSys 4.0 symbols."""
    return dict(_names())


def symbol_categories() -> dict[str, str]:
    """`{symbol name: category}` (handshape_base, location, movement, ...)."""
    return dict(_categories())


def decode(text: str) -> list[str]:
    """A HamNoSys Unicode string -> its symbol names, one per character.

    Raises:
        DataError: naming the position and codepoint of an unknown character.
    """
    table = _names()
    names = []
    for position, char in enumerate(text):
        if char not in table:
            raise DataError(
                f"unknown HamNoSys character U+{ord(char):04X} at position {position}"
            )
        names.append(table[char])
    return names


def encode(names: list[str]) -> str:
    """Symbol names -> the HamNoSys Unicode string (the inverse of `decode`).

    Raises:
        DataError: for a name that is not in the symbol table.
    """
    codes = {name: char for char, name in symbol_names().items()}
    unknown = [name for name in names if name not in codes]
    if unknown:
        raise DataError(f"unknown HamNoSys symbol name(s): {', '.join(unknown)}")
    return "".join(codes[name] for name in names)


@dataclass
class HeadLabels:
    """The head labels of one transcription.

    Attributes:
        labels: `{head: class id}` for every head of `hamnosys_heads.ALL_HEADS`;
            -1 where the head could not be assigned.
        problems: one reason per unassigned head (or per dropped part).
        nondominant_first: the string starts with ``hamnondominant``.
        alternating_motion: ``hamalternatingmotion`` at the start (after the
            symmetry operator, if any).
        location_explicit: a body location other than ``hamneutralspace`` is given.
    """

    labels: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(H.ALL_HEADS, MISSING)
    )
    problems: list[str] = field(default_factory=list)
    nondominant_first: bool = False
    alternating_motion: bool = False
    location_explicit: bool = False

    @property
    def complete(self) -> bool:
        """True when every head (distance included) has a label."""
        return all(label != MISSING for label in self.labels.values())


class _Cursor:
    """A read position in a list of symbol names."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.pos = 0

    def peek(self) -> str:
        """The current symbol, or "" at the end."""
        return self.names[self.pos] if self.pos < len(self.names) else ""

    def take(self) -> str:
        """The current symbol; moves past it."""
        name = self.peek()
        self.pos += 1
        return name

    def skip(self, names: set[str] | dict) -> None:
        """Moves past every symbol in `names`."""
        while self.peek() and self.peek() in names:
            self.pos += 1

    def found(self) -> str:
        """What stands at the cursor, for a message."""
        return self.peek() or "the end of the string"


def _first_alternatives(names: list[str]) -> list[str]:
    """Keeps the first branch of every ``{A|B}``; stray ``|``/``}`` are dropped."""
    kept, depth, skipping_from = [], 0, 0
    for name in names:
        if name == "hamaltbegin":
            depth += 1
        elif name == "hamaltend":
            if skipping_from == depth:
                skipping_from = 0
            depth = max(0, depth - 1)
        elif name == "hammetaalt":
            if depth and not skipping_from:
                skipping_from = depth
        elif not skipping_from:
            kept.append(name)
    return kept


def _group_end(
    names: list[str], start: int, stop: int
) -> tuple[int | None, int | None]:
    """The matching ``hamparend`` (before `stop`) of the group at `start` and its
    top-level plus."""
    depth, plus = 0, None
    for index in range(start, stop):
        if names[index] == "hamparbegin":
            depth += 1
        elif names[index] == "hamparend":
            depth -= 1
            if depth == 0:
                return index, plus
        elif names[index] == "hamplus" and depth == 1 and plus is None:
            plus = index
    return None, plus


def _unclosed_group_end(names: list[str], start: int, plus: int, stop: int) -> int:
    """Where an unclosed group ``hamparbegin X hamplus Y`` ends (before `stop`): Y is
    taken to span the symbols of the same parts of a sign (handshape, ...) as X."""
    kinds = _categories()
    parts = [part for part in _PARTS if part & {kinds[n] for n in names[start:plus]}]
    allowed = set().union(*parts)
    end = plus + 1
    while end < stop and (
        kinds[names[end]] in allowed or names[end] in _SKIPPED | {"hambetween"}
    ):
        end += 1
    return end - 1


def _dominant_hand(names: list[str]) -> list[str]:
    """Replaces every ``hamparbegin X hamplus Y hamparend`` by ``X`` (groups inside
    X included), without recursion: a string of thousands of nested groups is read
    like any other."""
    kept: list[str] = []
    # (start, stop) spans still to read; the span read last was pushed last.
    spans = [(0, len(names))]
    while spans:
        index, stop = spans.pop()
        while index < stop:
            if names[index] == "hamparbegin":
                end, plus = _group_end(names, index, stop)
                if plus is not None:
                    if end is None:
                        end = _unclosed_group_end(names, index + 1, plus, stop)
                    spans.append((end + 1, stop))
                    index, stop = index + 1, plus  # read X, then the rest
                    continue
            kept.append(names[index])
            index += 1
    return kept


def _parse_symmetry(cursor: _Cursor, result: HeadLabels) -> None:
    labels = result.labels
    labels["symmetry_operator"] = H.SYMMETRY_NONE
    if cursor.peek() == "hamnondominant":
        cursor.take()
        result.nondominant_first = True
        return
    if cursor.peek() not in ("hamsymmlr", "hamsymmpar"):
        result.alternating_motion = cursor.peek() == "hamalternatingmotion"
        return
    operator, modifiers = cursor.take(), set()
    while cursor.peek() in _SYMMETRY_MODIFIERS - modifiers:
        modifiers.add(cursor.take())
    result.alternating_motion = "hamalternatingmotion" in modifiers
    modifiers.discard("hamalternatingmotion")
    labels["symmetry_operator"] = H.SYMMETRY_CLASSES[(operator, frozenset(modifiers))]


def _skip_handshape_tail(cursor: _Cursor) -> None:
    """Moves past modifiers and finger specifiers (``hamindexfinger hamfingernail``)."""
    fingers = False
    while cursor.peek() in _HAND_MODIFIERS | _FINGERS or (
        fingers and cursor.peek() in _FINGER_PARTS
    ):
        fingers = cursor.take() in _FINGERS or fingers


def _parse_handshape(cursor: _Cursor, result: HeadLabels) -> None:
    labels = result.labels
    cursor.skip(_SKIPPED)
    if cursor.peek() not in H.BASE_FORMS:
        result.problems.append(
            "hand_shape_base_form, hand_shape_thumb_position, hand_shape_bending: "
            f"expected a handshape base form, found {cursor.found()}"
        )
        return
    labels["hand_shape_base_form"] = H.BASE_FORMS.index(cursor.take())
    thumb = bending = 0
    while cursor.peek() in _HAND_MODIFIERS:
        name = cursor.take()
        thumb = thumb or H.THUMB_CLASSES.get(name, 0)
        bending = bending or H.BENDING_CLASSES.get(name, 0)
    labels["hand_shape_thumb_position"] = thumb
    labels["hand_shape_bending"] = bending
    _skip_handshape_tail(cursor)
    while cursor.peek() == "hambetween":
        cursor.take()
        _skip_handshape_tail(cursor)
        if cursor.peek() in H.BASE_FORMS:
            cursor.take()
            _skip_handshape_tail(cursor)


def _read_one(cursor: _Cursor, symbols: list[str]) -> int | None:
    """Reads a symbol of `symbols` (then skips repeats and ``hambetween`` pairs)."""
    cursor.skip(_SKIPPED)
    if cursor.peek() not in symbols:
        return None
    class_id = symbols.index(cursor.take())
    while cursor.peek() in symbols or (
        cursor.peek() == "hambetween"
        and cursor.pos + 1 < len(cursor.names)
        and cursor.names[cursor.pos + 1] in symbols
    ):
        cursor.take()
    return class_id


def _parse_orientation(cursor: _Cursor, result: HeadLabels) -> None:
    for head, symbols, what in (
        ("hand_position_finger_direction", H.FINGER_DIRECTIONS, "an extended finger"),
        ("hand_position_palm_orientation", H.PALM_ORIENTATIONS, "a palm"),
    ):
        class_id = _read_one(cursor, symbols)
        if class_id is None:
            result.problems.append(
                f"{head}: expected {what} direction, found {cursor.found()}"
            )
        else:
            result.labels[head] = class_id


def _read_location(cursor: _Cursor) -> tuple[int, list[str]]:
    """Reads ``[lr] location... [lr]``: the L/R class and the location symbols."""
    kinds = _categories()
    where = H.LR_CENTRE
    if cursor.peek() in H.LR_BEFORE:
        where = H.LR_BEFORE[cursor.take()]
    places = []
    while kinds.get(cursor.peek()) == "location" and not (
        cursor.peek() in H.LR_AFTER and places
    ):
        places.append(cursor.take())
    if cursor.peek() in H.LR_AFTER:
        after = H.LR_AFTER[cursor.take()]
        where = where if where != H.LR_CENTRE else after
    return where, places


def _parse_location(cursor: _Cursor, result: HeadLabels) -> None:
    labels = result.labels
    cursor.skip(_SKIPPED)
    labels["hand_location_x"], places = _read_location(cursor)
    while cursor.peek() == "hambetween":
        cursor.take()
        _read_location(cursor)
    labels[H.DISTANCE_HEAD] = _DISTANCE.get(cursor.peek(), H.DISTANCE_NONE)
    body = [place for place in places if place in _TB]
    result.location_explicit = bool(body)
    if body:
        labels["hand_location_y"] = _TB[body[0]]
    elif not places or "hamneutralspace" in places:
        labels["hand_location_y"] = H.TB_DEFAULT
    else:
        result.problems.append(
            f"hand_location_y: location {' '.join(places)} has no top/bottom class"
        )


def parse_names(names: list[str]) -> HeadLabels:
    """The head labels of one transcription given as symbol names."""
    result = HeadLabels()
    names = [name for name in names if name != "hamspace"]
    if not names:
        result.problems.append("empty transcription")
        return result
    cursor = _Cursor(_dominant_hand(_first_alternatives(names)))
    _parse_symmetry(cursor, result)
    _parse_handshape(cursor, result)
    _parse_orientation(cursor, result)
    _parse_location(cursor, result)
    return result


def parse_heads(text: str) -> HeadLabels:
    """The head labels of one HamNoSys Unicode string.

    Args:
        text: the transcription (spaces allowed).

    Returns:
        The labels of every head (-1 = not assigned), the reasons for the
        unassigned ones, and the flags.

    Raises:
        DataError: for a character that is not a HamNoSys symbol.
    """
    return parse_names(decode(text))
