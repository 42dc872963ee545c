"""The model zoo: every listed model's file is shipped, matches its manifest entry and
loads by name; an unknown name is one error line naming the zoo's models."""

from __future__ import annotations

import pytest

from evaluation.checkpoints import load_checkpoint, resolve_checkpoint
from models.zoo import __main__ as zoo_command
from models.zoo import manifest, sha256, zoo_file
from utils.errors import UserError

ENTRY_KEYS = {"file", "sha256", "recipe", "data", "commit", "val", "test", "licence"}


@pytest.mark.parametrize("name", sorted(manifest()))
def test_every_model_is_shipped_as_its_manifest_says(name: str) -> None:
    entry = manifest()[name]
    assert ENTRY_KEYS <= set(entry)
    path = zoo_file(name)
    assert path is not None and path.stat().st_size < 10_000_000
    assert sha256(path) == entry["sha256"]
    assert "C-UDA" in entry["licence"]
    loaded = load_checkpoint(resolve_checkpoint(name))
    assert len(loaded.label_names["gloss"]) == int(name.split("_")[0][len("wlasl") :])
    assert loaded.val_metrics["val/gloss/top1"] == pytest.approx(
        entry["val"]["val/gloss/top1"], abs=1e-4
    )


def test_the_demo_model_is_in_the_zoo() -> None:
    assert "wlasl300_hands" in manifest()


def test_an_unknown_name_lists_the_zoo() -> None:
    with pytest.raises(UserError, match="wlasl300_hands"):
        resolve_checkpoint("wlasl9000_hands")


def test_list_command(capsys) -> None:
    assert zoo_command.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in manifest():
        assert name in out
