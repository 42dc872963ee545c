"""The walkthrough notebook runs top to bottom on a real Jupyter kernel (nbclient),
as `make notebook` opens it, and its predictions name the classes."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from data_preprocessing.make_sample_dataset import GLOSS_SPECS

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"


def cell_text(cell: nbformat.NotebookNode) -> str:
    """Everything a code cell printed (its stream outputs)."""
    return "".join(
        output.get("text", "")
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream" and output.get("name") == "stdout"
    )


def test_committed_notebook_has_no_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert (
                not cell.outputs and cell.execution_count is None
            ), "commit the notebook without outputs (Edit > Clear Outputs of All Cells)"


@pytest.mark.slow
def test_walkthrough_notebook_executes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    work = tmp_path / "walkthrough"
    # The kernel inherits this process's environment: its outputs go to tmp_path.
    monkeypatch.setenv("SIGNPIPE_WALKTHROUGH_DIR", str(work))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=300,
        # The kernel starts in notebooks/, as JupyterLab starts it.
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()

    assert (work / "clip.png").is_file()
    charts = list((work / "statistics").glob("*.png"))
    assert len(charts) == 8, "one chart per HamNoSys column"

    predictions = [
        cell
        for cell in notebook.cells
        if "predictions" in cell.metadata.get("tags", [])
    ]
    assert len(predictions) == 1, "one code cell tagged 'predictions'"
    text = cell_text(predictions[0])
    lines = re.findall(r"predicted (.+), true (.+)", text)
    assert lines, text
    words = {spec.word for spec in GLOSS_SPECS}
    gloss = text.split("hand_shape_base_form", maxsplit=1)[0]
    gloss_names = re.findall(r"predicted (.+), true (.+)", gloss)
    assert gloss_names and all(
        predicted in words and true in words for predicted, true in gloss_names
    ), f"gloss predictions are not gloss words:\n{text}"
    for predicted, true in lines:
        assert (
            not predicted.isdigit() and not true.isdigit()
        ), f"a class id instead of its name:\n{text}"
