"""The HamNoSys parser (data_preprocessing.hamnosys_parser) and its CLI (hamnosys)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config import hamnosys_heads as H
from data_preprocessing.hamnosys import main, read_lexicon
from data_preprocessing.hamnosys_parser import (
    HeadLabels,
    decode,
    encode,
    parse_heads,
    symbol_categories,
    symbol_names,
)
from utils.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DGS_LEXICON = SHARED_DATA / "hamnosys" / "dgs_lexicon.json"
needs_dgs = pytest.mark.skipif(
    not DGS_LEXICON.is_file(),
    reason=f"real DGS lexicon not found at {DGS_LEXICON} (shared data is absent)",
)

# A plain one-handed sign: flat hand, fingers up, palm left, at the chest, touching.
HAND = ("hamflathand",)
ORIENTATION = ("hamextfingeru", "hampalml")
MOVEMENT = ("hammoved", "hamrepeatfromstart")


def sym(*names: str) -> str:
    """The HamNoSys string of symbol names (via the shipped table)."""
    return encode(list(names))


def parse(*names: str) -> HeadLabels:
    """`parse_heads` of the string spelled by `names`."""
    return parse_heads(sym(*names))


def labels(*names: str) -> dict[str, int]:
    """The labels of the string spelled by `names`."""
    return parse(*names).labels


# --- the symbol table and the head definitions ---------------------------------


def test_symbol_table_is_hamnosys_4() -> None:
    table = symbol_names()
    assert len(table) == 209 and len(set(table.values())) == 209
    assert table["\ue000"] == "hamfist" and table["\ue0e9"] == "hamsymmlr"
    assert table["{"] == "hamaltbegin" and table[" "] == "hamspace"
    assert decode(sym("hamfist", "hamtouch")) == ["hamfist", "hamtouch"]


def test_every_head_symbol_is_in_the_table() -> None:
    known = set(symbol_names().values())
    used = {
        *H.BASE_FORMS,
        *H.THUMB_CLASSES,
        *H.BENDING_CLASSES,
        *H.FINGER_DIRECTIONS,
        *H.PALM_ORIENTATIONS,
        *H.LR_BEFORE,
        *H.LR_AFTER,
        *H.TB_LOCATIONS[1:],
        *H.TB_EXTRA,
        *H.DISTANCE_CLASSES,
        *H.DISTANCE_EXTRA,
        *(name for key in H.SYMMETRY_CLASSES for name in (key[0], *key[1])),
    }
    assert used - known == set()
    kinds = symbol_categories()
    assert {kinds[name] for name in H.BASE_FORMS} == {"handshape_base"}
    assert {kinds[name] for name in H.TB_LOCATIONS[1:]} == {"location"}


def test_head_order_and_class_counts() -> None:
    assert H.HEAD_ORDER == [
        "symmetry_operator",
        "hand_shape_base_form",
        "hand_shape_thumb_position",
        "hand_shape_bending",
        "hand_position_finger_direction",
        "hand_position_palm_orientation",
        "hand_location_x",
        "hand_location_y",
    ]
    assert H.ALL_HEADS == [*H.HEAD_ORDER, "distance"]
    assert list(H.NUM_CLASSES.values()) == [9, 12, 4, 6, 18, 8, 5, 37, 6]
    names = H.head_class_names()
    assert list(names) == H.ALL_HEADS
    assert {head: len(value) for head, value in names.items()} == H.NUM_CLASSES


def test_head_class_names_follow_the_table() -> None:
    names = H.head_class_names()
    assert names["symmetry_operator"][0] == "none"
    assert names["symmetry_operator"][1] == "hamsymmlr+hamfingerstraightmod+hamlargemod"
    assert names["symmetry_operator"][8] == "hamsymmpar"
    assert names["hand_shape_base_form"][0] == "hamfist"
    assert names["hand_shape_base_form"][11] == "hamceeopen"
    assert names["hand_shape_thumb_position"] == [
        "none",
        "hamthumboutmod",
        "hamthumbacrossmod",
        "hamthumbopenmod",
    ]
    assert names["hand_shape_bending"][1] == "hamdoublebent"
    assert names["hand_shape_bending"][2] == "hamfingerstraightmod"
    assert names["hand_position_finger_direction"][8] == "hamextfingero"
    assert names["hand_position_finger_direction"][13] == "hamextfingerol"
    assert names["hand_position_palm_orientation"][7] == "hampalmul"
    assert names["hand_location_x"] == [
        "centre",
        "hamlrbeside_before",
        "hamlrat_before",
        "hamlrat_after",
        "hamlrbeside_after",
    ]
    assert names["hand_location_y"][14] == "hamchest"
    assert names["hand_location_y"][36] == "hamthumbside"
    assert names["distance"][0] == "hamclose_or_none"
    assert names["distance"][2] == "hamtouch"


# --- decode --------------------------------------------------------------------


def test_decode_rejects_unknown_characters() -> None:
    with pytest.raises(DataError, match=r"U\+0041 at position 1"):
        decode(sym("hamfist") + "A" + sym("hamchest"))
    with pytest.raises(DataError, match="hamnotasymbol"):
        encode(["hamfist", "hamnotasymbol"])


def test_decode_inverts_encode_for_every_symbol() -> None:
    every = list(symbol_names().values())
    assert decode(encode(every)) == every


@needs_dgs
def test_decode_every_dgs_entry_matches_its_names() -> None:
    lexicon = json.loads(DGS_LEXICON.read_text(encoding="utf-8"))
    assert len(lexicon) == 1914
    mismatched = [
        key
        for key, entry in lexicon.items()
        if decode(entry["hamnosys"]) != entry["hamnosys_text"].split(",")
    ]
    assert not mismatched


@needs_dgs
def test_dgs_coverage_of_the_eight_heads() -> None:
    lexicon = json.loads(DGS_LEXICON.read_text(encoding="utf-8"))
    results = [parse_heads(entry["hamnosys"]) for entry in lexicon.values()]
    total = len(results)
    all_eight = sum(
        all(result.labels[head] != -1 for head in H.HEAD_ORDER) for result in results
    )
    per_head = {
        head: sum(result.labels[head] != -1 for result in results) / total
        for head in H.ALL_HEADS
    }
    print(f"\nDGS: all eight heads assigned for {all_eight}/{total} entries")
    for head, share in per_head.items():
        print(f"  {head:32s} {share:.2%}")
    assert all_eight / total >= 0.95
    assert min(per_head.values()) >= 0.95
    # Every unassigned head comes with a reason.
    assert all(r.problems for r in results if not r.complete)


# --- the heads, one by one ------------------------------------------------------


@pytest.mark.parametrize(
    "names, expected",
    [
        (("hamsymmlr", "hamfingerstraightmod", "hamlargemod"), 1),
        (("hamsymmlr", "hamlargemod", "hamfingerstraightmod"), 1),
        (("hamsymmpar", "hamlargemod", "hamfingerstraightmod"), 2),
        (("hamsymmlr", "hamfingerstraightmod"), 3),
        (("hamsymmpar", "hamfingerstraightmod"), 4),
        (("hamsymmlr", "hamlargemod"), 5),
        (("hamsymmpar", "hamlargemod"), 6),
        (("hamsymmlr",), 7),
        (("hamsymmpar",), 8),
        ((), 0),
    ],
)
def test_symmetry(names: tuple[str, ...], expected: int) -> None:
    result = parse(*names, *HAND, *ORIENTATION)
    assert result.labels["symmetry_operator"] == expected
    assert result.complete and not result.alternating_motion


def test_symmetry_modifiers_and_alternating_motion_in_any_order() -> None:
    for modifiers in (
        ("hamalternatingmotion", "hamfingerstraightmod", "hamlargemod"),
        ("hamlargemod", "hamalternatingmotion", "hamfingerstraightmod"),
        ("hamfingerstraightmod", "hamlargemod", "hamalternatingmotion"),
    ):
        result = parse("hamsymmlr", *modifiers, *HAND, *ORIENTATION)
        assert result.labels["symmetry_operator"] == 1
        assert result.alternating_motion and result.complete
    # S2's test: hamsymmpar + hamalternatingmotion is class 8.
    result = parse("hamsymmpar", "hamalternatingmotion", *HAND, *ORIENTATION)
    assert result.labels["symmetry_operator"] == 8 and result.alternating_motion


def test_leading_nondominant_is_symmetry_none_with_a_flag() -> None:
    result = parse("hamnondominant", *HAND, *ORIENTATION)
    assert result.labels["symmetry_operator"] == 0
    assert result.nondominant_first and result.complete


@pytest.mark.parametrize("base", H.BASE_FORMS)
def test_handshape_base_form(base: str) -> None:
    result = labels(base, *ORIENTATION)
    assert result["hand_shape_base_form"] == H.BASE_FORMS.index(base)
    assert result["hand_shape_thumb_position"] == 0
    assert result["hand_shape_bending"] == 0


@pytest.mark.parametrize("thumb", sorted(H.THUMB_CLASSES))
@pytest.mark.parametrize("bending", sorted(H.BENDING_CLASSES))
def test_thumb_and_bending_in_either_order(thumb: str, bending: str) -> None:
    for modifiers in ((thumb, bending), (bending, thumb)):
        result = labels("hamfinger2345", *modifiers, *ORIENTATION)
        assert result["hand_shape_thumb_position"] == H.THUMB_CLASSES[thumb]
        assert result["hand_shape_bending"] == H.BENDING_CLASSES[bending]


def test_bending_ids_follow_s2() -> None:
    assert (
        labels("hamflathand", "hamdoublebent", *ORIENTATION)["hand_shape_bending"] == 1
    )
    assert (
        labels("hamflathand", "hamfingerhookmod", *ORIENTATION)["hand_shape_bending"]
        == 4
    )
    assert (
        labels("hamflathand", "hamdoublehooked", *ORIENTATION)["hand_shape_bending"]
        == 5
    )


def test_finger_specifiers_do_not_bend_the_hand() -> None:
    result = parse("hamfinger2345", "hamindexfinger", "hamfingerhookmod", *ORIENTATION)
    assert result.labels["hand_shape_bending"] == 0 and result.complete
    result = parse(
        "hamfinger23",
        "hamthumbacrossmod",
        "hamindexfinger",
        "hamfingernail",
        "hammiddlefinger",
        *ORIENTATION,
    )
    assert result.labels["hand_shape_thumb_position"] == 2 and result.complete


def test_between_handshapes_uses_the_first_member() -> None:
    result = labels(
        "hamflathand",
        "hamthumboutmod",
        "hambetween",
        "hamfinger2345",
        "hamfingerbendmod",
        *ORIENTATION,
    )
    assert result["hand_shape_base_form"] == 1
    assert result["hand_shape_thumb_position"] == 1
    assert result["hand_shape_bending"] == 0
    assert result["hand_position_finger_direction"] == 0


@pytest.mark.parametrize("direction", H.FINGER_DIRECTIONS)
def test_extended_finger_direction(direction: str) -> None:
    result = labels(*HAND, direction, "hampalmd")
    assert result["hand_position_finger_direction"] == H.FINGER_DIRECTIONS.index(
        direction
    )
    assert result["hand_position_palm_orientation"] == 4


def test_direction_ids_are_not_codepoint_order() -> None:
    assert (
        labels(*HAND, "hamextfingero", "hampalmd")["hand_position_finger_direction"]
        == 8
    )
    assert (
        labels(*HAND, "hamextfingerir", "hampalmd")["hand_position_finger_direction"]
        == 10
    )


@pytest.mark.parametrize("palm", H.PALM_ORIENTATIONS)
def test_palm_orientation(palm: str) -> None:
    result = labels(*HAND, "hamextfingero", palm)
    assert result["hand_position_palm_orientation"] == H.PALM_ORIENTATIONS.index(palm)


def test_two_directions_use_the_first() -> None:
    for names in (
        ("hamextfingeruo", "hamextfingerol", "hampalmdl"),
        ("hamextfingeruo", "hambetween", "hamextfingerol", "hampalmdl"),
        ("hamextfingeruo", "hampalmdl", "hambetween", "hampalml"),
        ("hamextfingeruo", "hamorirelative", "hampalmdl"),
    ):
        result = parse(*HAND, *names, "hamchest")
        assert result.labels["hand_position_finger_direction"] == 14
        assert result.labels["hand_position_palm_orientation"] == 5
        assert result.labels["hand_location_y"] == 14 and result.complete


@pytest.mark.parametrize("location", H.TB_LOCATIONS[1:])
def test_location_top_bottom(location: str) -> None:
    result = parse(*HAND, *ORIENTATION, location, *MOVEMENT)
    assert result.labels["hand_location_y"] == H.TB_LOCATIONS.index(location)
    assert result.labels["hand_location_x"] == 0
    assert result.location_explicit and result.complete


def test_location_defaults_and_proposals() -> None:
    result = parse(*HAND, *ORIENTATION, *MOVEMENT)
    assert result.labels["hand_location_y"] == 14 and not result.location_explicit
    assert result.labels["hand_location_x"] == 0 and result.labels["distance"] == 0
    result = parse(*HAND, *ORIENTATION, "hamneutralspace", *MOVEMENT)
    assert result.labels["hand_location_y"] == 14 and not result.location_explicit
    assert labels(*HAND, *ORIENTATION, "hamelbow")["hand_location_y"] == 23
    assert labels(*HAND, *ORIENTATION, "hamwristpulse")["hand_location_y"] == 32


@pytest.mark.parametrize(
    "names, expected",
    [
        (("hamlrbeside", "hamchest"), 1),
        (("hamlrat", "hamchest"), 2),
        (("hamchest", "hamlrat"), 3),
        (("hamchest", "hamlrbeside"), 4),
        (("hamchest",), 0),
        (("hamneutralspace", "hamlrat"), 3),
    ],
)
def test_location_left_right(names: tuple[str, ...], expected: int) -> None:
    result = labels(*HAND, *ORIENTATION, *names, "hamtouch", *MOVEMENT)
    assert result["hand_location_x"] == expected
    assert result["hand_location_y"] == 14
    assert result["distance"] == 2


def test_left_right_after_is_the_documented_proposal() -> None:
    assert H.LR_AFTER == {"hamlrat": 3, "hamlrbeside": 4}


@pytest.mark.parametrize(
    "contact, expected", [*H.DISTANCE_CLASSES.items(), ("hambrushing", 2)]
)
def test_distance(contact: str, expected: int) -> None:
    result = labels(*HAND, *ORIENTATION, "hamchin", "hamlrat", contact, *MOVEMENT)
    assert result["distance"] == expected
    assert result["hand_location_y"] == 9 and result["hand_location_x"] == 3


def test_location_details() -> None:
    # The first location with a T/B class wins (as S2); between -> first member.
    assert (
        labels(*HAND, *ORIENTATION, "hamfingertip", "hamchin")["hand_location_y"] == 24
    )
    result = labels(
        *HAND,
        *ORIENTATION,
        "hamchest",
        "hamlrat",
        "hambetween",
        "hamstomach",
        "hamtouch",
    )
    assert (result["hand_location_y"], result["hand_location_x"]) == (14, 3)
    assert result["distance"] == 2
    # Only a later location (the end of a movement) does not count.
    result = parse(*HAND, *ORIENTATION, "hammoved", "hamchin", "hamtouch")
    assert result.labels["hand_location_y"] == 14 and result.labels["distance"] == 0


def test_finger_without_part_has_no_top_bottom_class() -> None:
    result = parse(*HAND, *ORIENTATION, "hamthumb", "hamindexfinger", "haminterlock")
    assert result.labels["hand_location_y"] == -1
    assert result.labels["distance"] == 4
    assert result.problems == [
        "hand_location_y: location hamthumb hamindexfinger has no top/bottom class"
    ]


# --- edge cases from HAMNOSYS.md ------------------------------------------------

PLAIN = (*HAND, "hamthumboutmod", *ORIENTATION, "hamchest", "hamlrat", "hamtouch")


def test_spaces_are_ignored() -> None:
    text = sym(*PLAIN, *MOVEMENT)
    spaced = " " + " ".join(text) + "  "
    assert parse_heads(spaced).labels == parse_heads(text).labels
    assert parse_heads(spaced).complete


def test_alternatives_use_the_first_branch() -> None:
    # At the very start (DGS 13967): {finger2 | finger2 bent} ...
    result = parse(
        "hamaltbegin",
        "hamfinger2",
        "hammetaalt",
        "hamfinger2",
        "hamfingerbendmod",
        "hamaltend",
        "hamextfingerul",
        "hampalmdr",
        "hamforehead",
        "hamlrbeside",
        "hamtouch",
    )
    assert result.complete
    assert result.labels["hand_shape_base_form"] == 2
    assert result.labels["hand_shape_bending"] == 0
    assert result.labels["hand_location_y"] == 3
    assert result.labels["hand_location_x"] == 4
    # Nested alternatives, in the orientation.
    result = parse(
        *HAND,
        "hamaltbegin",
        "hamextfingeru",
        "hamaltbegin",
        "hampalml",
        "hammetaalt",
        "hampalmr",
        "hamaltend",
        "hammetaalt",
        "hamextfingerd",
        "hampalmd",
        "hamaltend",
    )
    assert result.labels["hand_position_finger_direction"] == 0
    assert result.labels["hand_position_palm_orientation"] == 6


def test_string_without_handshape() -> None:
    # DGS 9682.
    result = parse("hamextfingeru", "hampalmd", "hamshoulders", "hamlrat", "hammoved")
    for head in (
        "hand_shape_base_form",
        "hand_shape_thumb_position",
        "hand_shape_bending",
    ):
        assert result.labels[head] == -1
    assert result.labels["hand_position_finger_direction"] == 0
    assert result.labels["hand_position_palm_orientation"] == 4
    assert result.labels["hand_location_y"] == 13
    assert result.labels["hand_location_x"] == 3
    assert len(result.problems) == 1 and "base form" in result.problems[0]
    assert not result.complete


def test_unbalanced_brackets() -> None:
    # DGS 31004: a two-hand group with hamnondominant, then an unclosed
    # hamparbegin and a stray hamseqend in the movement.
    result = parse(
        "hamparbegin",
        "hamfinger2",
        "hamfingerbendmod",
        "hamextfingerl",
        "hampalmd",
        "hamplus",
        "hamnondominant",
        "hametc",
        "hamextfingeror",
        "hampalmu",
        "hamparend",
        "hamlowerarm",
        "hampalm",
        "hamtouch",
        "hamparbegin",
        "hammoveil",
        "hamsmallmod",
        "hamseqend",
        "hamrepeatfromstart",
    )
    assert result.complete
    assert result.labels["hand_shape_bending"] == 3
    assert result.labels["hand_position_finger_direction"] == 6
    assert result.labels["hand_position_palm_orientation"] == 4
    assert result.labels["hand_location_y"] == 33
    assert result.labels["distance"] == 2
    # An unclosed two-hand handshape group: the non-dominant hand stops where
    # the orientation starts.
    result = parse(
        "hamparbegin",
        "hamflathand",
        "hamplus",
        "hamfist",
        "hamthumboutmod",
        *ORIENTATION,
    )
    assert result.complete
    assert result.labels["hand_shape_base_form"] == 1
    assert result.labels["hand_shape_thumb_position"] == 0
    assert result.labels["hand_position_palm_orientation"] == 6
    # Stray closing symbols before the handshape are skipped.
    assert parse("hamseqend", "hamparend", *PLAIN).complete


def test_two_hand_groups_use_the_dominant_hand() -> None:
    # Right after a symmetry operator: handshape only.
    result = labels(
        "hamsymmlr",
        "hamparbegin",
        "hamfinger2",
        "hamplus",
        "hamflathand",
        "hamthumboutmod",
        "hamparend",
        *ORIENTATION,
    )
    assert result["symmetry_operator"] == 7
    assert result["hand_shape_base_form"] == 2
    assert result["hand_shape_thumb_position"] == 0
    # Handshape, orientation and location in one group (DGS 13672-like, with an
    # alternative inside the non-dominant hand).
    result = labels(
        "hamsymmpar",
        "hamparbegin",
        "hamfinger2",
        "hamextfingerl",
        "hampalmdl",
        "hamchin",
        "hamplus",
        "hamflathand",
        "hamaltbegin",
        "hamextfingeru",
        "hampalmu",
        "hammetaalt",
        "hamextfingeru",
        "hampalmd",
        "hamaltend",
        "hamstomach",
        "hamparend",
        "hamtouch",
        "hammoveo",
    )
    assert result["symmetry_operator"] == 8
    assert result["hand_shape_base_form"] == 2
    assert result["hand_position_finger_direction"] == 6
    assert result["hand_position_palm_orientation"] == 5
    assert result["hand_location_y"] == 9
    assert result["distance"] == 2
    # A group without hamplus (simultaneous movements) is left alone.
    result = parse(
        *PLAIN, "hamparbegin", "hammoved", "hamreplace", "hamfist", "hamparend"
    )
    assert result.complete and result.labels["hand_shape_base_form"] == 1


def test_thousands_of_nested_groups_parse_like_one() -> None:
    depth = 3000  # deeper than Python's recursion limit
    nested = ["hamparbegin"] * depth + ["hamflathand"]
    nested += ["hamplus", "hamfist", "hamparend"] * depth
    assert labels(*nested, *ORIENTATION) == labels(*HAND, *ORIENTATION)


def test_symbols_missing_from_the_dgs_lexicon() -> None:
    result = parse(
        "hamfinger2345",
        "hamdoublehooked",
        "hamextfingerir",
        "hampalmu",
        "hamtongue",
        "hamcircleuo",
        "hamclockul",
        "hamclockfull",
        "hamrest",
        "hamrepeatcontinueseveral",
    )
    assert result.complete
    assert result.labels["hand_shape_bending"] == 5
    assert result.labels["hand_position_finger_direction"] == 10
    assert result.labels["hand_location_y"] == 7


def test_empty_transcription() -> None:
    result = parse_heads("   ")
    assert set(result.labels.values()) == {-1}
    assert result.problems == ["empty transcription"]


# --- the command line -----------------------------------------------------------

SMALL_LEXICON = {
    "good": sym("hamsymmlr", *PLAIN, *MOVEMENT),
    "nohand": sym("hamextfingeru", "hampalmd", "hamshoulders", "hamlrat"),
    "plain": sym(*HAND, *ORIENTATION),
}


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _check_output(output: Path, report: Path) -> None:
    # pylint: disable=import-outside-toplevel  # torch is heavy: import when needed
    from utils.annotations import read_annotation_file
    from models.heads import IGNORE_INDEX

    assert _lines(output)[0] == "name start end " + " ".join(H.ALL_HEADS)
    rows = {row.name: row for row in read_annotation_file(output, H.HEAD_ORDER)}
    assert list(rows) == list(SMALL_LEXICON)
    assert (rows["good"].start, rows["good"].end) == (3, 17)
    assert (rows["nohand"].start, rows["nohand"].end) == (0, 0)
    for name, text in SMALL_LEXICON.items():
        expected = parse_heads(text).labels
        assert rows[name].labels == {
            head: IGNORE_INDEX if expected[head] == -1 else expected[head]
            for head in H.HEAD_ORDER
        }
    assert rows["good"].labels["symmetry_operator"] == 7
    assert rows["nohand"].labels["hand_shape_base_form"] == IGNORE_INDEX
    distances = [line.split()[-1] for line in _lines(output)[1:]]
    assert distances == ["2", "0", "0"]
    text = report.read_text(encoding="utf-8")
    assert "nohand: hamextfingeru hampalmd hamshoulders hamlrat" in text
    assert "expected a handshape base form, found hamextfingeru" in text
    assert "good:" not in text and "plain:" not in text


def test_cli_json_lexicon(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    lexicon = tmp_path / "lexicon.json"
    lexicon.write_text(
        json.dumps({name: {"hamnosys": text} for name, text in SMALL_LEXICON.items()}),
        encoding="utf-8",
    )
    ranges = tmp_path / "ranges.txt"
    ranges.write_text("name start end\ngood 3 17\nplain 0 9\nother 1 2\n")
    output = tmp_path / "out" / "hamnosys.txt"
    output.parent.mkdir()
    output.write_text("stale\n")
    assert main([str(lexicon), str(output), "--ranges", str(ranges)]) == 0
    _check_output(output, Path(f"{output}.report.txt"))
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1
    assert summary[0].startswith("3 entries, 66.7% fully parsed")
    assert "hand_shape_base_form 66.7%" in summary[0]
    assert "; 1 without a range: 0 0; 1 ranges of no entry; wrote" in summary[0]
    first = output.read_bytes()
    assert main([str(lexicon), str(output), "--ranges", str(ranges)]) == 0
    assert output.read_bytes() == first


def test_cli_tsv_lexicon(tmp_path: Path) -> None:
    lexicon = tmp_path / "lexicon.tsv"
    lines = ["name\thamnosys", "# a comment", ""]
    lines += [f"{name}\t{text}\tsome gloss" for name, text in SMALL_LEXICON.items()]
    lexicon.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ranges = tmp_path / "ranges.txt"
    ranges.write_text("good 3 17\n")
    output, report = tmp_path / "hamnosys.txt", tmp_path / "why.txt"
    args = [str(lexicon), str(output), "--ranges", str(ranges), "--report", str(report)]
    assert main(args) == 0
    _check_output(output, report)
    assert not Path(f"{output}.report.txt").exists()


def test_cli_reports_undecodable_entries(tmp_path: Path) -> None:
    lexicon = tmp_path / "lexicon.json"
    lexicon.write_text(json.dumps({"ok": SMALL_LEXICON["good"], "bad": "hello"}))
    output = tmp_path / "out.txt"
    assert main([str(lexicon), str(output)]) == 0
    assert _lines(output)[2] == "bad 0 0 " + " ".join(["-1"] * 9)
    report = Path(f"{output}.report.txt").read_text(encoding="utf-8")
    assert "bad: 'hello'" in report and "U+0068 at position 0" in report


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.json", None, "lexicon not found"),
        ("bad.json", "{not json", "not valid JSON"),
        ("list.json", "[1, 2]", "expected a JSON object"),
        ("nokey.json", '{"a": {"gloss": "X"}}', "entry 'a' has no \"hamnosys\""),
        ("space.json", '{"a b": "\ue000"}', "is empty or has whitespace"),
        ("empty.json", "{}", "the lexicon has no entries"),
        ("dup.json", '{"a": "\ue000", "a": "\ue001"}', "key(s) listed twice: a"),
        ("deep.json", '{"a": ' + "[" * 10**5 + "]" * 10**5 + "}", "nested too deeply"),
        ("hash.json", '{"#a": "\ue000"}', "sample name '#a' starts with '#'"),
        ("notab.tsv", "a \ue000\n", "notab.tsv:1: expected name<TAB>hamnosys"),
        (
            "twice.tsv",
            "a\t\ue000\na\t\ue001\n",
            "twice.tsv:2: sample a is listed twice",
        ),
        ("names.tsv", "a\thamfist,hamchest\n", "no entry is a HamNoSys Unicode string"),
        ("binary.tsv", b"\xff\xfe\x00", "cannot read the lexicon"),
    ],
)
def test_cli_bad_lexicon_exits_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    name: str,
    content: str | bytes | None,
    message: str,
) -> None:
    lexicon = tmp_path / name
    if isinstance(content, bytes):
        lexicon.write_bytes(content)
    elif content is not None:
        lexicon.write_text(content, encoding="utf-8")
    output = tmp_path / "out.txt"
    assert main([str(lexicon), str(output)]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: ") and message in error
    assert not output.exists()


@pytest.mark.parametrize(
    "ranges, message",
    [
        ("good 3\n", "ranges.txt:1: expected 'name start end'"),
        ("good 5 2\n", "ranges.txt:1: start 5 is after end 2"),
        ("good 1 2\ngood 1 2\n", "ranges.txt:2: good is listed twice"),
        ("good -1 2\n", "ranges.txt:1: expected 'name start end'"),
        ("good \u00b2 5\n", "ranges.txt:1: expected 'name start end'"),
        ("good 1 \u0663\n", "ranges.txt:1: expected 'name start end'"),
    ],
)
def test_cli_bad_ranges_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture, ranges: str, message: str
) -> None:
    lexicon = tmp_path / "lexicon.json"
    lexicon.write_text(json.dumps(SMALL_LEXICON))
    (tmp_path / "ranges.txt").write_text(ranges)
    args = [str(lexicon), str(tmp_path / "out.txt"), "--ranges"]
    assert main([*args, str(tmp_path / "ranges.txt")]) == 2
    assert message in capsys.readouterr().err


def test_duplicate_check_is_linear(tmp_path: Path) -> None:
    entries = {f"s{index}": "\ue000" for index in range(40_000)}
    lexicon = tmp_path / "lexicon.json"
    lexicon.write_text(json.dumps(entries), encoding="utf-8")
    started = time.monotonic()
    assert read_lexicon(lexicon) == entries
    assert time.monotonic() - started < 5  # quadratically: about a minute


def test_cli_refuses_to_overwrite_the_lexicon(tmp_path: Path) -> None:
    lexicon = tmp_path / "lexicon.json"
    lexicon.write_text(json.dumps(SMALL_LEXICON))
    assert main([str(lexicon), str(lexicon)]) == 2
    assert json.loads(lexicon.read_text()) == SMALL_LEXICON


def test_module_runs_as_a_script(tmp_path: Path) -> None:
    lexicon = tmp_path / "lexicon.json"
    lexicon.write_text(json.dumps(SMALL_LEXICON))
    command = [sys.executable, "-m", "data_preprocessing.hamnosys"]
    done = subprocess.run(
        [*command, str(lexicon), str(tmp_path / "out.txt")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "3 entries" in done.stdout
    done = subprocess.run(
        [*command, str(tmp_path / "none.json"), str(tmp_path / "out.txt")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'none.json'}: lexicon not found"
    ]
