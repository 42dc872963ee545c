"""The config reference page: every schema field is documented, and the committed
page is what the schema generates."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, Field

from config import reference as config_reference
from config.reference import (
    COMMAND,
    MODELS_PAGE,
    PAGE,
    fill_model_tables,
    generate,
    main,
    type_text,
    undocumented_fields,
    walk_models,
)
from config.schema import SignpipeConfig, TrainParameters

STALE = f"{PAGE} is stale: run python -m config.reference"


def test_every_field_has_a_description() -> None:
    missing = undocumented_fields(SignpipeConfig)
    assert not missing, "fields without Field(description=...): " + ", ".join(missing)


def test_the_walk_reaches_nested_and_mapped_models() -> None:
    paths = [path for path, _ in walk_models(SignpipeConfig)]
    assert "heads.model" in paths
    assert "heads.gloss.<name>" in paths and "heads.hamnosys.<name>" in paths
    assert "freeze_scheduler" in paths  # an optional section
    models = {model for _, model in walk_models(SignpipeConfig)}
    assert sum(len(model.model_fields) for model in models) > 100


def test_committed_page_is_up_to_date() -> None:
    page = config_reference.ROOT / PAGE
    assert page.is_file(), f"{PAGE} is missing: run python -m config.reference"
    assert page.read_text(encoding="utf-8") == generate(), STALE


class _Inner(BaseModel):
    """A nested model."""

    documented: int = Field(1, description="Has one.")
    bare: int = 2


class _Outer(BaseModel):
    """A section."""

    named: dict[str, _Inner] = Field({}, description="Items by name.")
    listed: list[_Inner] | None = Field(None, description="Items in a list.")
    plain: str = "x"


class _NoDocstring(BaseModel):
    value: int = Field(0, description="Documented, but the model has no docstring.")


class _WithUndocumentedSection(BaseModel):
    """The top."""

    outer: _Outer = Field(_Outer(), description="A section.")
    loose: _NoDocstring = Field(_NoDocstring(), description="Another.")


def test_undocumented_fields_are_named() -> None:
    assert undocumented_fields(_WithUndocumentedSection) == [
        "outer.plain",
        "outer.named.<name>.bare",
        "outer.listed[].bare",
        "loose (docstring)",
    ]


def test_a_field_losing_its_description_fails_the_check(monkeypatch) -> None:
    field = TrainParameters.model_fields.get("epochs")
    monkeypatch.setattr(field, "description", None)
    assert undocumented_fields(SignpipeConfig) == ["train_parameters.epochs"]


@pytest.mark.parametrize(
    ("annotation", "bounds", "expected"),
    [
        (int, {"gt": 0, "le": 256}, "int in [1, 256]"),
        (float, {"ge": 0.0, "lt": 1.0}, "float in [0, 1)"),
        (float | None, {"gt": 0.0}, "float (> 0) or null"),
        (Literal["cls", "mean"], {}, "one of: cls, mean"),
        (list[Literal["a", "b"]], {}, "list of a/b"),
        (dict[str, list[bool]], {}, "map of name to list of bool"),
        (tuple[float, float], {}, "[float, float]"),
    ],
)
def test_types_read_as_words(annotation, bounds, expected) -> None:
    class _Model(BaseModel):
        value: annotation = Field(**bounds)  # type: ignore[valid-type]

    field = _Model.model_fields.get("value")
    assert type_text(field.annotation, field.metadata) == expected


def test_page_shows_sections_types_and_defaults() -> None:
    text = generate()
    assert text.startswith("# Config reference\n")
    sections = [line[3:].strip("`") for line in text.splitlines() if line[:3] == "## "]
    assert sections == [*SignpipeConfig.model_fields, "Model settings"]
    assert (
        "| `lr_schedule` | one of: exponential, cosine, one_cycle | `exponential` |"
        in text
    )
    assert "| `seed` | int in [0, 2^32 - 1] | `42` |" in text
    assert "| `model_params` | map of name to list of bool | (required) |" in text
    assert "### `heads.gloss.<name>` and `heads.hamnosys.<name>`" in text
    assert generate() == text  # deterministic


def test_check_and_write(tmp_path, monkeypatch, capsys) -> None:
    models_page = (config_reference.ROOT / MODELS_PAGE).read_text(encoding="utf-8")
    monkeypatch.setattr(config_reference, "ROOT", tmp_path)
    (tmp_path / MODELS_PAGE).parent.mkdir(parents=True)
    (tmp_path / MODELS_PAGE).write_text(models_page, encoding="utf-8")
    assert main(["--check"]) == 1  # missing
    assert capsys.readouterr().err.strip() == STALE
    assert main([]) == 0
    assert (tmp_path / PAGE).read_text(encoding="utf-8") == generate()
    assert main(["--check"]) == 0
    (tmp_path / PAGE).write_text(generate() + "edited\n", encoding="utf-8")
    assert main(["--check"]) == 1
    assert capsys.readouterr().err.strip() == STALE


def test_the_model_tables_are_generated_from_the_registry() -> None:
    page = (config_reference.ROOT / MODELS_PAGE).read_text(encoding="utf-8")
    assert page == fill_model_tables(page), f"{MODELS_PAGE} is stale: run {COMMAND}"
    assert "| `landmarks_conv` |" in page and "| landmarks |" in page
    assert "| `sign_language_transformer` |" in page
    assert "| `classification` |" in page
    stale = page.replace("| `landmarks_conv` |", "| `landmarks_cnv` |")
    assert fill_model_tables(stale) == page
