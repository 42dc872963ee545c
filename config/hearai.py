"""HearAI config keys and forms, translated to the current schema in one step.

Each translation leaves a one-line note telling the user the current name. A legacy key
given together with its current name and a different value is an error; keys that
were never part of either schema stay errors (the schema rejects them).
"""

from __future__ import annotations

from typing import Any

from utils.errors import ConfigError, quote, with_notes

MISSING = object()

# (section, legacy key) -> (section, current key): same meaning, new name.
RENAMED = {
    ("general_parameters", "data_paths"): ("general_parameters", "data_path"),
    ("train_parameters", "use_landmarks"): ("train_parameters", "landmarks"),
}
# Keys HearAI read that have no effect here, with what to use instead.
RETIRED = {
    ("feature_extractor", "load_pretrained"): (
        "weights are loaded only from a local file: set feature_extractor."
        "pretrained_path (without it the extractor starts from random weights)"
    ),
    ("transformer", "transformer_output_size"): (
        "the encoder width is transformer.output_size"
    ),
}
NULL_STRINGS = {"none", "null", "~"}


def _is_null(value: Any) -> bool:
    return value is None or (
        isinstance(value, str) and value.strip().lower() in NULL_STRINGS
    )


def _move(
    raw: dict, source: tuple, target: tuple, value: Any, notes: list[str]
) -> None:
    """Set `target` to `value` unless it already holds a different value."""
    section = raw.setdefault(target[0], {})
    current = section.get(target[1], MISSING)
    old, new = ".".join(source), ".".join(target)
    if current is not MISSING and current != value:
        raise ConfigError(
            f"{old} (HearAI's name) and {new} are both set, to {quote(value)} and "
            f"{quote(current)}; keep only {new}"
        )
    section[target[1]] = value
    notes.append(f"note: {old} is now {new}")


def _use_frames(raw: dict, notes: list[str]) -> None:
    train = raw.get("train_parameters")
    if not isinstance(train, dict) or "use_frames" not in train:
        return
    use_frames = train.pop("use_frames")
    extractor = raw.setdefault("feature_extractor", {})
    if not isinstance(extractor, dict):
        return
    name = extractor.get("name")
    if use_frames is False or str(use_frames).lower() == "false":
        if name not in (None, "landmarks_extractor"):
            notes.append(
                f"note: train_parameters.use_frames (false) is now feature_extractor."
                f"name: landmarks_extractor, in place of {name}"
            )
        else:
            notes.append(
                "note: train_parameters.use_frames (false) is now "
                "feature_extractor.name: landmarks_extractor"
            )
        extractor["name"] = "landmarks_extractor"
        extractor.pop("model_path", None)
        extractor.pop("pretrained_path", None)
        return
    if name == "landmarks_extractor":
        raise ConfigError(
            "train_parameters.use_frames (HearAI's key) is true but "
            "feature_extractor.name is landmarks_extractor, which reads no frames"
        )
    notes.append(
        "note: train_parameters.use_frames (true) is implied now: every extractor "
        "but landmarks_extractor reads frames; drop the key"
    )


def _null_sections(raw: dict, notes: list[str]) -> None:
    if "freeze_scheduler" in raw and _is_null(raw["freeze_scheduler"]):
        if raw["freeze_scheduler"] is not None:
            notes.append("note: freeze_scheduler (None) is now freeze_scheduler: null")
        raw["freeze_scheduler"] = None
    if "transformer" in raw and _is_null(raw["transformer"]):
        raw["transformer"] = {"name": "fake_transformer"}
        notes.append(
            "note: transformer (None, no temporal encoder) is now transformer.name: "
            "fake_transformer (mean pooling over frames)"
        )


def translate_legacy(raw: dict) -> list[str]:
    """Rewrite HearAI keys in a raw config dict in place; return one note per key.

    Raises:
        ConfigError: a HearAI key that contradicts its current name; its `notes`
            hold the keys translated before it.
    """
    notes: list[str] = []
    try:
        _translate(raw, notes)
    except ConfigError as error:
        raise with_notes(error, notes) from None
    return notes


def _translate(raw: dict, notes: list[str]) -> None:
    _null_sections(raw, notes)
    for source, target in RENAMED.items():
        section = raw.get(source[0])
        if isinstance(section, dict) and source[1] in section:
            _move(raw, source, target, section.pop(source[1]), notes)
    _use_frames(raw, notes)
    for (section_name, key), instead in RETIRED.items():
        section = raw.get(section_name)
        if isinstance(section, dict) and key in section:
            section.pop(key)
            notes.append(f"note: {section_name}.{key} is not used: {instead}")
