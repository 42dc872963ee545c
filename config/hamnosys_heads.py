"""The HamNoSys heads as data: names, column order, class counts and class names.

The inventories follow HearAI's ``parse-hamnosys`` (branch ``main``) as summarised
in ``shared/specs/HAMNOSYS.md``: class ids and counts are kept exactly
(9/12/4/6/18/8/5/37, distance 6). Where that source contradicts itself the
documented proposal is used and made a named constant (``LR_BEFORE``/``LR_AFTER``,
``TB_DEFAULT``, ``TB_EXTRA``, ``DISTANCE_EXTRA``).

Symbols are named as in the shipped symbol table ``hamnosys_symbols.tsv``
(``hamfist``, ``hamextfingeru``, ...). This module is pure data; the parser lives
in ``data_preprocessing/hamnosys.py``.
"""

from __future__ import annotations

#: The eight HamNoSys heads, in annotation-file column order.
HEAD_ORDER: list[str] = [
    "symmetry_operator",
    "hand_shape_base_form",
    "hand_shape_thumb_position",
    "hand_shape_bending",
    "hand_position_finger_direction",
    "hand_position_palm_orientation",
    "hand_location_x",
    "hand_location_y",
]
#: The optional ninth column (contact/distance), written after the eight heads.
DISTANCE_HEAD = "distance"
#: Every column the HamNoSys parser writes, in file order.
ALL_HEADS: list[str] = [*HEAD_ORDER, DISTANCE_HEAD]

#: Symmetry classes 1..8: (operator, modifiers); the modifiers' order is ignored.
SYMMETRY_CLASSES: dict[tuple[str, frozenset[str]], int] = {
    ("hamsymmlr", frozenset({"hamfingerstraightmod", "hamlargemod"})): 1,
    ("hamsymmpar", frozenset({"hamfingerstraightmod", "hamlargemod"})): 2,
    ("hamsymmlr", frozenset({"hamfingerstraightmod"})): 3,
    ("hamsymmpar", frozenset({"hamfingerstraightmod"})): 4,
    ("hamsymmlr", frozenset({"hamlargemod"})): 5,
    ("hamsymmpar", frozenset({"hamlargemod"})): 6,
    ("hamsymmlr", frozenset()): 7,
    ("hamsymmpar", frozenset()): 8,
}
#: Symmetry class when no operator is present (also after a leading hamnondominant).
SYMMETRY_NONE = 0

#: Handshape base forms, class id = list index (U+E000..U+E00B in codepoint order).
BASE_FORMS: list[str] = [
    "hamfist",
    "hamflathand",
    "hamfinger2",
    "hamfinger23",
    "hamfinger23spread",
    "hamfinger2345",
    "hampinch12",
    "hampinchall",
    "hampinch12open",
    "hamcee12",
    "hamceeall",
    "hamceeopen",
]
#: Thumb position classes; 0 = no thumb modifier.
THUMB_CLASSES: dict[str, int] = {
    "hamthumboutmod": 1,
    "hamthumbacrossmod": 2,
    "hamthumbopenmod": 3,
}
#: Bending classes; 0 = no bending modifier. Note 1 = hamdoublebent (S2's order).
BENDING_CLASSES: dict[str, int] = {
    "hamdoublebent": 1,
    "hamfingerstraightmod": 2,
    "hamfingerbendmod": 3,
    "hamfingerhookmod": 4,
    "hamdoublehooked": 5,
}
#: Extended finger direction, class id = list index (not codepoint order from 8 on).
FINGER_DIRECTIONS: list[str] = [
    "hamextfingeru",
    "hamextfingerur",
    "hamextfingerr",
    "hamextfingerdr",
    "hamextfingerd",
    "hamextfingerdl",
    "hamextfingerl",
    "hamextfingerul",
    "hamextfingero",
    "hamextfingeror",
    "hamextfingerir",
    "hamextfingeri",
    "hamextfingeril",
    "hamextfingerol",
    "hamextfingeruo",
    "hamextfingerdo",
    "hamextfingerdi",
    "hamextfingerui",
]
#: Palm orientation, class id = list index (U+E038..U+E03F).
PALM_ORIENTATIONS: list[str] = [
    "hampalmu",
    "hampalmur",
    "hampalmr",
    "hampalmdr",
    "hampalmd",
    "hampalmdl",
    "hampalml",
    "hampalmul",
]

#: Location left/right when no hamlrat/hamlrbeside is written (centre).
LR_CENTRE = 0
#: Left/right symbol written *before* the location.
LR_BEFORE: dict[str, int] = {"hamlrbeside": 1, "hamlrat": 2}
#: Left/right symbol written *after* the location. [PROPOSAL 2] S2's class figure
#: and dict comments say 3 = hamlrat, 4 = hamlrbeside; its code does the opposite.
#: Swap the two values here to reproduce S2's code.
LR_AFTER: dict[str, int] = {"hamlrat": 3, "hamlrbeside": 4}

#: Location top/bottom, class id = list index; 0 is never produced by S2.
TB_LOCATIONS: list[str] = [
    "none",
    "hamheadtop",
    "hamhead",
    "hamforehead",
    "hamnose",
    "hamnostrils",
    "hamlips",
    "hamtongue",
    "hamteeth",
    "hamchin",
    "hamunderchin",
    "hamneck",
    "hamshouldertop",
    "hamshoulders",
    "hamchest",
    "hamstomach",
    "hambelowstomach",
    "hameyebrows",
    "hameyes",
    "hamear",
    "hamearlobe",
    "hamcheek",
    "hamupperarm",
    "hamelbowinside",
    "hamfingertip",
    "hamfingerpad",
    "hamfingernail",
    "hamfingermidjoint",
    "hamfingerbase",
    "hamfingerside",
    "hamhandback",
    "hampalm",
    "hamwristback",
    "hamlowerarm",
    "hamthumbball",
    "hampinkyside",
    "hamthumbside",
]
#: Top/bottom when no location is written or it is hamneutralspace (hamchest), as S2.
TB_DEFAULT = 14
#: [PROPOSAL 3] locations S2 does not list, mapped to the nearest listed arm location.
TB_EXTRA: dict[str, int] = {"hamelbow": 23, "hamwristpulse": 32}

#: Contact/distance classes. 0 doubles as "none" (S2 main); see DISTANCE_NONE.
DISTANCE_CLASSES: dict[str, int] = {
    "hamclose": 0,
    "hambehind": 1,
    "hamtouch": 2,
    "hamarmextended": 3,
    "haminterlock": 4,
    "hamcross": 5,
}
#: Distance when no contact symbol follows the location (the same id as hamclose).
DISTANCE_NONE = 0
#: [PROPOSAL 4] hambrushing is not listed by S2; it is a kind of touch.
DISTANCE_EXTRA: dict[str, int] = {"hambrushing": 2}


def _symmetry_names() -> list[str]:
    names = ["none"] * (len(SYMMETRY_CLASSES) + 1)
    for (operator, modifiers), class_id in SYMMETRY_CLASSES.items():
        names[class_id] = "+".join([operator, *sorted(modifiers)])
    return names


def _names_from(classes: dict[str, int], zero: str) -> list[str]:
    """Index-aligned names of a {symbol: class} dict whose class 0 is `zero`."""
    names = [zero] * (max(classes.values()) + 1)
    for symbol, class_id in classes.items():
        names[class_id] = symbol
    return names


def _lr_names() -> list[str]:
    names = ["centre"] * (max([*LR_BEFORE.values(), *LR_AFTER.values()]) + 1)
    for symbol, class_id in LR_BEFORE.items():
        names[class_id] = f"{symbol}_before"
    for symbol, class_id in LR_AFTER.items():
        names[class_id] = f"{symbol}_after"
    return names


def head_class_names() -> dict[str, list[str]]:
    """Human-readable class names per head, index-aligned with the class ids.

    Returns:
        `{head: names}` for the eight heads of `HEAD_ORDER` and `DISTANCE_HEAD`;
        `names[i]` describes class `i` (symbol names, "none" for "no symbol").
    """
    distance = _names_from(DISTANCE_CLASSES, "none")
    distance[DISTANCE_NONE] = "hamclose_or_none"
    return {
        "symmetry_operator": _symmetry_names(),
        "hand_shape_base_form": list(BASE_FORMS),
        "hand_shape_thumb_position": _names_from(THUMB_CLASSES, "none"),
        "hand_shape_bending": _names_from(BENDING_CLASSES, "none"),
        "hand_position_finger_direction": list(FINGER_DIRECTIONS),
        "hand_position_palm_orientation": list(PALM_ORIENTATIONS),
        "hand_location_x": _lr_names(),
        "hand_location_y": list(TB_LOCATIONS),
        DISTANCE_HEAD: distance,
    }


#: Number of classes per head (the eight of HEAD_ORDER, then distance).
NUM_CLASSES: dict[str, int] = {
    head: len(names) for head, names in head_class_names().items()
}
