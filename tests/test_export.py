"""export.py and the ONNX backend: parity with torch for landmark and frame models,
dynamic batch and time, the sidecar, and predict.py's runner on the ONNX file."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import (
    GLOSSES,
    ROOT,
    label_names,
    model_config,
    write_checkpoint,
    write_landmarks,
)

import export
from config.hamnosys_heads import head_class_names
from config.loader import parse_config
from evaluation.checkpoints import load_checkpoint
from evaluation.export import (
    TensorPipeline,
    compare_with_torch,
    exportable,
    generated_inputs,
)
from evaluation.export_sidecar import input_names, logits_output, sidecar_path
from evaluation.onnx_backend import load_onnx, read_sidecar
from evaluation.prediction import ClipOptions, list_inputs
from evaluation.writers import OutputWriter, run_prediction
from training.recognition import SignRecognitionModule
from utils.errors import UserError


@pytest.fixture(scope="module", params=["landmarks_extractor", "cnn_extractor"])
def exported(request, shipped_config, sample_root, tmp_path_factory):
    """A landmark model and an image model, each exported by export.py."""
    folder = tmp_path_factory.mktemp(f"export_{request.param}")
    raw = model_config(shipped_config, sample_root, request.param)
    checkpoint = write_checkpoint(raw, folder / "model.ckpt")
    onnx_path = folder / "out" / "model.onnx"
    return (
        checkpoint,
        onnx_path,
        export.main([str(checkpoint), "--output", str(onnx_path)]),
    )


def test_export_writes_the_model_and_checks_itself(exported, capsys):
    checkpoint, onnx_path, status = exported
    assert status == 0
    assert onnx_path.is_file() and sidecar_path(onnx_path).is_file()
    meta = json.loads(sidecar_path(onnx_path).read_text(encoding="utf-8"))
    loaded = load_checkpoint(checkpoint, torch.device("cpu"))
    assert [item["name"] for item in meta["inputs"]] == input_names(loaded.config)
    heads = {head["name"]: head for head in meta["heads"]}
    assert heads["gloss"]["classes"] == GLOSSES and heads["gloss"]["kind"] == "gloss"
    base_form = heads["hand_shape_base_form"]
    assert base_form["kind"] == "hamnosys"
    assert base_form["classes"] == head_class_names()["hand_shape_base_form"]
    assert base_form["output"] == logits_output("hand_shape_base_form")
    assert meta["preprocessing"]["sampling"]["num_segments"] == 4
    if loaded.config.uses_frames():
        assert meta["inputs"][0]["shape"] == ["batch", "time", 3, 32, 32]
        assert meta["inputs"][0]["dtype"] == "uint8"
    else:
        assert meta["preprocessing"]["landmarks"]["components"]
    del capsys  # export.main printed during the fixture, in another test's capture


@pytest.mark.parametrize("sizes", [[(1, 3), (4, 11)]])
def test_onnxruntime_matches_torch_at_other_batch_and_time_sizes(exported, sizes):
    """Sizes other than the export's example: the batch and time axes are dynamic."""
    # pylint: disable-next=import-outside-toplevel
    import onnxruntime

    checkpoint, onnx_path, _ = exported
    loaded = load_checkpoint(checkpoint, torch.device("cpu"))
    session = onnxruntime.InferenceSession(
        str(onnx_path), providers=["CPUExecutionProvider"]
    )
    for index, (batch, time) in enumerate(sizes):
        inputs = generated_inputs(loaded.config, batch, time, seed=10 + index)
        with torch.inference_mode():
            expected = loaded.model(inputs)["logits"]
        got = session.run(
            [logits_output(head) for head in expected],
            {name: inputs[name].numpy() for name in input_names(loaded.config)},
        )
        for (head, reference), actual in zip(expected.items(), got):
            assert actual.shape == (batch, len(loaded.label_names[head]))
            np.testing.assert_allclose(actual, reference.numpy(), atol=1e-4, rtol=0)
            assert (actual.argmax(-1) == reference.numpy().argmax(-1)).all(), head


def test_the_self_check_catches_a_model_that_differs(exported):
    """compare_with_torch reports a changed head: the check can fail."""
    # pylint: disable-next=import-outside-toplevel
    import onnxruntime

    checkpoint, onnx_path, _ = exported
    loaded = load_checkpoint(checkpoint, torch.device("cpu"))
    session = onnxruntime.InferenceSession(
        str(onnx_path), providers=["CPUExecutionProvider"]
    )
    wrapper = TensorPipeline(
        exportable(loaded.model), input_names(loaded.config), list(loaded.label_names)
    ).eval()
    same, agreement, _ = compare_with_torch(wrapper, loaded.config, session, [(2, 4)])
    assert same <= 1e-4 and agreement == 1.0
    with torch.no_grad():
        for parameter in wrapper.model.heads.heads["gloss"].parameters():
            parameter.add_(0.5)
    changed, agreement, per_head = compare_with_torch(
        wrapper, loaded.config, session, [(2, 4)]
    )
    assert per_head["gloss"] == changed
    assert changed > 1e-4
    assert per_head["symmetry_operator"] <= 1e-4


def test_onnx_backend_writes_the_predictions_torch_writes(
    exported, sample_root, tmp_path
):
    """predict.py's runner with the ONNX model gives torch's predictions.csv (the
    sample's frame folders; for the landmark model, with random landmark files)."""
    checkpoint, onnx_path, _ = exported
    torch_model = load_checkpoint(checkpoint, torch.device("cpu"))
    onnx_model = load_onnx(onnx_path)
    assert onnx_model.label_names == torch_model.label_names
    folders = sorted(path for path in sample_root.iterdir() if path.is_dir())[:6]
    for index, folder in enumerate(folders):
        shutil.copytree(folder, tmp_path / "inputs" / folder.name)
        if torch_model.config.uses_landmarks():
            frames = len(list(folder.glob(f"{folder.name}_*.jpg")))
            target = tmp_path / "inputs" / folder.name / f"{folder.name}.npz"
            write_landmarks(target, frames, seed=index)
    inputs = list_inputs(tmp_path / "inputs", None)
    options = ClipOptions.from_config(torch_model.config, all_frames=False)
    tables = {}
    for name, loaded in (("torch", torch_model), ("onnx", onnx_model)):
        writer = OutputWriter(tmp_path / name, "probabilities", loaded.label_names)
        results = run_prediction(loaded, inputs, writer, options=options, batch_size=5)
        assert all(result.error is None for result in results)
        tables[name] = (tmp_path / name / "predictions.csv").read_text().splitlines()
    assert len(tables["torch"]) == len(tables["onnx"]) > 1
    for torch_row, onnx_row in zip(tables["torch"][1:], tables["onnx"][1:]):
        # input, head, top1, top1_probability, top2, ... (empty past a head's classes)
        torch_cells, onnx_cells = torch_row.split(","), onnx_row.split(",")
        assert onnx_cells[:3] + onnx_cells[4::2] == torch_cells[:3] + torch_cells[4::2]
        np.testing.assert_allclose(
            [float(cell) for cell in onnx_cells[3::2] if cell],
            [float(cell) for cell in torch_cells[3::2] if cell],
            atol=2e-6,
        )


def test_onnx_backend_errors_name_the_missing_file(exported, tmp_path):
    _, onnx_path, _ = exported
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(onnx_path.read_bytes())
    with pytest.raises(UserError, match="lonely.json: missing"):
        load_onnx(lonely)
    with pytest.raises(UserError, match="no such ONNX file"):
        read_sidecar(tmp_path / "absent.onnx")


def test_export_user_errors_are_one_line(tmp_path, capsys):
    assert export.main([str(tmp_path / "absent.ckpt"), "--output", "m.onnx"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: checkpoint")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    assert export.main([str(bad), "--output", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1


def test_export_help_does_not_load_torch():
    code = (
        "import sys, export\n"
        "try:\n    export.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "--output" in result.stdout and result.stdout.strip().endswith("False")


@pytest.mark.parametrize(
    "extractor", ["cnn_extractor", "landmarks_conv", "landmarks_stgcn", "fused"]
)
def test_the_traceable_copy_computes_what_the_model_does(shipped_config, extractor):
    """`exportable` runs every frame (padding too) where the model selects the real
    ones: the outputs are the same, padded frames included."""
    config = parse_config(model_config(shipped_config, Path("data"), extractor))
    names = label_names(GLOSSES)
    model = SignRecognitionModule.from_config(
        config, {head: len(classes) for head, classes in names.items()}, names
    ).model.eval()
    inputs = generated_inputs(config, 3, 6, seed=3)
    with torch.inference_mode():
        expected = model(inputs)
        got = exportable(model)(inputs)
    for head, logits in expected["logits"].items():
        torch.testing.assert_close(got["logits"][head], logits, atol=1e-5, rtol=1e-5)
    for key in ("spatial", "temporal", "cls"):
        torch.testing.assert_close(got[key], expected[key], atol=1e-5, rtol=1e-5)
