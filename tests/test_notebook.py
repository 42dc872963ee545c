"""The walkthrough notebook runs top to bottom (its code cells, in order)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"


def test_walkthrough_notebook_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    code = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
    assert len(code) >= 5
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").symlink_to(NOTEBOOK.parents[1] / "train.py")
    (tmp_path / "train_config.yml").symlink_to(NOTEBOOK.parents[1] / "train_config.yml")
    namespace: dict = {"__name__": "__notebook__"}
    for index, source in enumerate(code):
        try:
            # pylint: disable-next=exec-used
            exec(compile(source, f"cell {index}", "exec"), namespace)
        except Exception as error:  # pragma: no cover - the message is the point
            raise AssertionError(f"notebook cell {index} failed: {error!r}") from error
    assert (tmp_path / "walkthrough_output" / "clip.png").is_file()
    charts = list((tmp_path / "walkthrough_output" / "statistics").glob("*.png"))
    assert len(charts) == 8, "one chart per HamNoSys column"
    assert "gloss" in namespace["outputs"]["logits"]
