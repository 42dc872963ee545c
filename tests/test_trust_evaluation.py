"""Evaluation, export and prediction a user can trust: a tampered checkpoint, ONNX
sidecar, progress or shard record, an unwritable or full output, a FIFO or device as
input, and an oversized CSV field each end as one `error:` line (exit status 2) or
one `DataError` naming the file and field, never a traceback or a hang; class names
reach predictions.csv as text a spreadsheet will not run.
"""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import contextlib
import copy
import csv
import errno
import io
import json
import os
import shutil
import signal
import stat
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import uvicorn
from helpers import (
    load_test_cli,
    model_config,
    one_error,
    serve_until_stopped,
    write_checkpoint,
    write_landmarks,
)
from onnx import TensorProto, helper

import demo
import export
import predict
import serving.app
from evaluation.checkpoints import load_checkpoint
from evaluation.evaluator import write_json
from evaluation.export_sidecar import (
    EMBEDDING_OUTPUTS,
    input_names,
    logits_output,
    sidecar,
    sidecar_path,
)
from evaluation.onnx_backend import load_onnx
from evaluation.plots import plot_confusion_matrix
from evaluation.writers import OutputWriter
from training.callbacks import AtomicCheckpointIO
from utils.errors import DataError, UserError

ENOSPC = OSError(errno.ENOSPC, "No space left on device")


TEST_CLI = load_test_cli()


@contextlib.contextmanager
def deadline(seconds: int = 20):
    """Fail instead of hanging (a FIFO opened for reading waits for a writer)."""

    def expired(*_):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def fifo(path: Path) -> Path:
    """A named pipe at `path` (nobody writes to it: opening it to read would wait)."""
    os.mkfifo(path)
    return path


@pytest.fixture(scope="module")
def checkpoint(shipped_config, sample_root, tmp_path_factory) -> Path:
    """An untrained landmark model in train.py's checkpoint layout."""
    folder = tmp_path_factory.mktemp("trust_evaluation")
    raw = model_config(shipped_config, sample_root, "landmarks_extractor")
    return write_checkpoint(raw, folder / "model.ckpt")


@pytest.fixture(scope="module")
def inputs(sample_root, tmp_path_factory) -> Path:
    """Two frame folders, each with a landmark file."""
    base = tmp_path_factory.mktemp("trust_inputs")
    folders = sorted(path for path in sample_root.iterdir() if path.is_dir())[:2]
    for index, folder in enumerate(folders):
        target = base / folder.name
        shutil.copytree(folder, target)
        frames = len(list(target.glob(f"{folder.name}_*.jpg")))
        write_landmarks(target / f"{folder.name}.npz", frames, seed=index)
    return base


# ------------------------------------------------- 6: tampered checkpoint metadata


def _tampered(checkpoint: Path, target: Path, change) -> Path:
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    change(saved["hyper_parameters"])
    torch.save(saved, target)
    return target


def _set(key: str, head: str | None, value):
    def change(hparams: dict) -> None:
        if head is None:
            hparams[key] = value
        else:
            hparams[key][head] = value

    return change


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (_set("num_classes", "gloss", "3"), "num_classes.gloss"),
        (_set("num_classes", "gloss", -3), "num_classes.gloss"),
        (_set("num_classes", "gloss", 10**9), "num_classes.gloss"),
        (_set("num_classes", "gloss", True), "num_classes.gloss"),
        (_set("num_classes", "not_a_head", 3), "num_classes"),
        (_set("label_names", None, 5), "label_names"),
        (_set("label_names", "gloss", "what when yes"), "label_names.gloss"),
        (_set("label_names", "gloss", ["what", 2, "yes"]), "label_names.gloss.1"),
        (_set("label_names", "gloss", ["what"]), "label_names.gloss"),
    ],
    ids=[
        "count_text",
        "count_negative",
        "count_huge",
        "count_bool",
        "unknown_head",
        "names_not_a_mapping",
        "names_not_a_list",
        "name_not_text",
        "names_too_few",
    ],
)
def test_tampered_checkpoint_metadata_is_a_data_error(
    checkpoint, tmp_path, monkeypatch, change, field
):
    """Checked before the model is built: 10^9 classes allocate nothing."""
    bad = _tampered(checkpoint, tmp_path / "bad.ckpt", change)

    def never(*_args, **_kwargs):
        raise AssertionError("the model was built from bad metadata")

    monkeypatch.setattr("evaluation.checkpoints.build_pipeline", never)
    with pytest.raises(DataError) as caught:
        load_checkpoint(bad)
    message = str(caught.value)
    assert str(bad) in message and f"hyper_parameters.{field}" in message, message
    assert "\n" not in message


def test_export_of_a_tampered_checkpoint_is_one_error_line(
    checkpoint, tmp_path, capsys
):
    bad = _tampered(checkpoint, tmp_path / "bad.ckpt", _set("label_names", None, 5))
    status = export.main([str(bad), "--output", str(tmp_path / "m.onnx")])
    one_error(capsys, status, str(bad), "hyper_parameters.label_names")


@pytest.mark.parametrize("command", ["predict", "test", "demo"])
def test_every_command_refuses_a_tampered_checkpoint_in_one_line(
    checkpoint, inputs, tmp_path, capsys, monkeypatch, command
):
    """The shared loader's check reaches each command as one line, exit status 2."""
    bad = _tampered(
        checkpoint, tmp_path / "bad.ckpt", _set("num_classes", "gloss", 10**9)
    )
    if command == "predict":
        status = predict.main([str(bad), str(inputs), str(tmp_path / "out")])
    elif command == "test":
        status = TEST_CLI.main(["full", str(bad), "--data_path", str(inputs)])
    else:
        monkeypatch.setattr(uvicorn.Server, "run", serve_until_stopped)
        status = demo.main([str(bad), "--port", "0"])
    one_error(capsys, status, str(bad), "hyper_parameters.num_classes.gloss")


def test_the_demo_stops_when_its_model_fails_before_it_listens(
    checkpoint, capsys, monkeypatch
):
    """A load that fails at once (before the server has its stop callback)."""

    def broken(path):
        raise DataError(f"checkpoint {path}: broken")

    monkeypatch.setattr("serving.inference.load_model", broken)
    monkeypatch.setattr(uvicorn.Server, "run", serve_until_stopped)
    real_create_app = serving.app.create_app

    def slow_create_app(*args, **kwargs):
        time.sleep(0.5)  # the load has failed by now
        return real_create_app(*args, **kwargs)

    monkeypatch.setattr(serving.app, "create_app", slow_create_app)
    one_error(capsys, demo.main([str(checkpoint), "--port", "0"]), "broken")


# ------------------------------------------------ 7: export.py's unwritable output


class _Program:
    """Stands in for the exporter's result (the real export takes many seconds)."""

    class model_proto:  # pylint: disable=invalid-name
        """The graph, as bytes."""

        @staticmethod
        def SerializeToString() -> bytes:  # pylint: disable=invalid-name
            """A few bytes of model."""
            return b"onnx" * 1000


def test_export_output_under_a_file_is_one_error_line(checkpoint, tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder", encoding="utf-8")
    output = tmp_path / "file" / "sub" / "model.onnx"
    status = export.main([str(checkpoint), "--output", str(output)])
    one_error(capsys, status, str(tmp_path / "file"))


@pytest.mark.parametrize("place", ["read_only_folder", "proc"])
def test_export_output_in_an_unwritable_place_is_one_error_line(
    checkpoint, tmp_path, capsys, monkeypatch, place
):
    """A folder without write permission (root may write there: then /proc, where
    no one can create a file)."""
    if place == "read_only_folder" and os.geteuid() == 0:
        pytest.skip("root writes in read-only folders")
    monkeypatch.setattr("evaluation.export._export_program", lambda *_: _Program)
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    output = (
        Path("/proc") / "signpipe-model.onnx"
        if place == "proc"
        else folder / "model.onnx"
    )
    try:
        status = export.main([str(checkpoint), "--output", str(output)])
    finally:
        folder.chmod(stat.S_IRWXU)
    one_error(capsys, status, str(output), "cannot write")
    assert not list(folder.iterdir())


def test_export_on_a_full_disk_is_one_error_line(
    checkpoint, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr("evaluation.export._export_program", lambda *_: _Program)
    real_fsync = os.fsync

    def full(descriptor):
        real_fsync(descriptor)
        raise ENOSPC

    monkeypatch.setattr("utils.files.os.fsync", full)
    output = tmp_path / "out" / "model.onnx"
    status = export.main([str(checkpoint), "--output", str(output)])
    one_error(capsys, status, str(output), "No space left on device")
    assert not list((tmp_path / "out").iterdir()), "nothing partial is left"


# --------------------------------------------------- 8: a mismatched ONNX sidecar


def _graph(path: Path, inputs: list[str], outputs: dict[str, int]) -> None:
    """A tiny ONNX graph with these inputs and constant outputs of these widths."""
    nodes, values = [], []
    for name, width in outputs.items():
        tensor = helper.make_tensor(
            f"{name}_value", TensorProto.FLOAT, [1, width], [0.0] * width
        )
        nodes.append(helper.make_node("Constant", [], [name], value=tensor))
        values.append(
            helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, width])
        )
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in inputs],
        values,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, path)


@pytest.fixture(scope="module")
def onnx_model(checkpoint, tmp_path_factory) -> tuple[Path, dict]:
    """An ONNX file with the checkpoint's inputs and outputs, and the sidecar
    export.py writes for the checkpoint."""
    loaded = load_checkpoint(checkpoint, torch.device("cpu"))
    path = tmp_path_factory.mktemp("trust_onnx") / "model.onnx"
    outputs = {logits_output(h): len(n) for h, n in loaded.label_names.items()}
    _graph(
        path,
        input_names(loaded.config),
        {**outputs, **{k: 4 for k in EMBEDDING_OUTPUTS}},
    )
    meta = sidecar(loaded, path.name)
    sidecar_path(path).write_text(json.dumps(meta), encoding="utf-8")
    return path, meta


def _mismatched(onnx_model, folder: Path, change) -> Path:
    path, meta = onnx_model
    folder.mkdir()
    shutil.copy(path, folder / path.name)
    meta = copy.deepcopy(meta)
    change(meta)
    sidecar_path(folder / path.name).write_text(json.dumps(meta), encoding="utf-8")
    return folder / path.name


def _rename_gloss_output(meta: dict) -> None:
    meta["outputs"]["logits"]["gloss"] = "logits_renamed"
    meta["heads"][0]["output"] = "logits_renamed"


def test_the_sidecar_export_py_writes_loads(onnx_model):
    loaded = load_onnx(onnx_model[0])
    assert loaded.label_names["gloss"] == ["what", "when", "yes"]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda meta: meta.pop("config"), "config: missing"),
        (lambda meta: meta.pop("heads"), "heads: missing"),
        (lambda meta: meta["outputs"].pop("logits"), "outputs.logits: missing"),
        (_rename_gloss_output, "no output 'logits_renamed' in the graph"),
        (
            lambda meta: meta["heads"][0].update(classes=["what", "when"]),
            "2 class name(s) for the 3 logits",
        ),
        (lambda meta: meta["heads"][0].update(output="cls"), "heads.0.output"),
        (lambda meta: meta["heads"][0].update(classes=5), "heads.0.classes"),
        (lambda meta: meta["inputs"].pop(0), "inputs"),
    ],
    ids=[
        "no_config",
        "no_heads",
        "no_logits",
        "unknown_output",
        "fewer_names",
        "head_output_differs",
        "classes_not_a_list",
        "an_input_missing",
    ],
)
def test_a_mismatched_sidecar_is_a_data_error(onnx_model, tmp_path, change, needle):
    """The demo's loader (`load_onnx`) raises the DataError it answers clearly."""
    model = _mismatched(onnx_model, tmp_path / "model", change)
    with pytest.raises(DataError) as caught:
        load_onnx(model)
    assert str(sidecar_path(model)) in str(caught.value)
    assert needle in str(caught.value)


def test_predict_with_a_mismatched_sidecar_is_one_error_line(
    onnx_model, inputs, tmp_path, capsys
):
    model = _mismatched(onnx_model, tmp_path / "model", _rename_gloss_output)
    out = tmp_path / "out"
    status = predict.main([str(model), str(inputs), str(out), "--backend", "onnx"])
    one_error(capsys, status, str(sidecar_path(model)), "logits_renamed")


def test_the_demo_with_a_mismatched_sidecar_is_one_error_line(
    onnx_model, tmp_path, capsys, monkeypatch
):
    """Refused while the model loads: no 500 for each clip later."""
    model = _mismatched(onnx_model, tmp_path / "model", lambda meta: meta.pop("heads"))
    monkeypatch.setattr(uvicorn.Server, "run", serve_until_stopped)
    status = demo.main([str(model), "--port", "0"])
    one_error(capsys, status, str(sidecar_path(model)), "heads: missing")


# ----------------------------------------------------- 9: predict.py's paths


@pytest.mark.parametrize("kind", ["fifo", "char_device"])
def test_predict_refuses_a_fifo_or_device_as_input(checkpoint, tmp_path, capsys, kind):
    source = fifo(tmp_path / "clip.mp4") if kind == "fifo" else Path("/dev/zero")
    with deadline():
        status = predict.main([str(checkpoint), str(source), str(tmp_path / "out")])
    what = "a FIFO (named pipe)" if kind == "fifo" else "a character device"
    one_error(capsys, status, str(source), what)
    assert not (tmp_path / "out").exists()


def _full_disk_save(real_save):
    """A torch.save onto a disk that fills up after a few hundred bytes: torch
    reports the file's OSError as a RuntimeError (`unexpected pos ...`)."""

    class Full(io.RawIOBase):
        """A file with room for 300 bytes."""

        room = 300

        def writable(self) -> bool:
            return True

        def write(self, data) -> int:
            if len(data) > self.room:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.room -= len(data)
            return len(data)

    def save(obj, _file, *args, **kwargs):
        real_save(obj, Full(), *args, **kwargs)

    return save


@pytest.mark.parametrize("layout", ["flat", "ssvp"])
def test_predict_on_a_full_disk_is_one_error_line(
    checkpoint, inputs, tmp_path, capsys, monkeypatch, layout
):
    """The flat layout's numpy files and the ssvp layout's torch files alike."""

    def full(*_args, **_kwargs):
        raise ENOSPC

    if layout == "flat":
        monkeypatch.setattr(np, "save", full)
    else:
        monkeypatch.setattr(torch, "save", _full_disk_save(torch.save))
    out = tmp_path / "out"
    argv = [str(checkpoint), str(inputs), str(out), "--layout", layout]
    one_error(capsys, predict.main(argv), str(out), "No space left on device", "resume")
    assert not [path for path in out.rglob("*") if path.suffix in (".npy", ".pt")]


def test_predict_into_an_output_that_is_a_file_is_one_error_line(
    checkpoint, inputs, tmp_path, capsys
):
    (tmp_path / "out").write_text("a file", encoding="utf-8")
    status = predict.main([str(checkpoint), str(inputs), str(tmp_path / "out")])
    one_error(capsys, status, str(tmp_path / "out"))


# ------------------------------------------- 10, 20: progress and shard records

GOOD_RECORD = {
    "name": "clip",
    "run": "abc",
    "length": 1,
    "predictions": [["clip", "gloss", "yes", "0.5"]],
    "frames": ["clip", "/data/clip", 4, "0 1 2 3"],
}


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({**GOOD_RECORD, "length": "1"}, "length"),
        ({**GOOD_RECORD, "predictions": 5}, "predictions"),
        ({**GOOD_RECORD, "frames": ["clip"]}, "frames"),
        ({**GOOD_RECORD, "name": 7}, "name"),
        ({k: v for k, v in GOOD_RECORD.items() if k != "length"}, "length: missing"),
        ([GOOD_RECORD], "not a progress record"),
    ],
    ids=[
        "length_text",
        "predictions_number",
        "frames_short",
        "name_number",
        "no_length",
        "a_list",
    ],
)
def test_a_tampered_progress_record_names_file_and_line(tmp_path, record, field):
    progress = tmp_path / "progress.shard-00000-of-00002.jsonl"
    lines = [json.dumps(GOOD_RECORD), json.dumps(record), '{"name": "half']
    progress.write_text("\n".join(lines), encoding="utf-8")
    writer = OutputWriter(
        tmp_path, "CLS", {"gloss": ["yes"]}, shard="shard-00000-of-00002", run="abc"
    )
    with pytest.raises(DataError) as caught:
        writer.resume()
    assert f"{progress}:2: " in str(caught.value) and field in str(caught.value)


def test_a_progress_record_cut_by_a_kill_is_still_skipped(tmp_path):
    (tmp_path / "clip.npy").write_bytes(b"")
    lines = [json.dumps(GOOD_RECORD), '{"name": "half']
    (tmp_path / "progress.jsonl").write_text("\n".join(lines), encoding="utf-8")
    writer = OutputWriter(tmp_path, "CLS", {"gloss": ["yes"]}, run="abc")
    assert writer.resume() == {"clip"}


def _shard_folder(tmp_path: Path, text: str) -> Path:
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "shard-00000-of-00002.json").write_text(text, "utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"index": 0, "count": 2, "items": ["a"]', ":1: the shard record is not JSON"),
        ("", ":1: the shard record is not JSON"),
        ('[0, 2, ["a"]]', "not a JSON object"),
        ('{"index": 0, "items": ["a"]}', "count: missing"),
        ('{"index": 0, "count": 2, "items": 5}', "items: Input should be a valid list"),
        (
            '{"index": 0, "count": "2", "items": ["a"]}',
            "count: Input should be a valid",
        ),
        ('{"index": 0, "count": 0, "items": ["a"]}', "count: Input should be greater"),
        ('{"index": 1, "count": 2, "items": ["a"]}', "not of the shard its name says"),
    ],
    ids=[
        "cut_json",
        "empty",
        "a_list",
        "no_count",
        "items_number",
        "count_text",
        "count_zero",
        "other_shard",
    ],
)
def test_merge_names_a_malformed_shard_record(tmp_path, capsys, text, needle):
    output = _shard_folder(tmp_path, text)
    status = predict.main(["--merge_manifests", str(output)])
    record = output / "shards" / "shard-00000-of-00002.json"
    one_error(capsys, status, str(record), needle)


def test_merge_does_not_wait_on_a_fifo_shard_record(tmp_path, capsys):
    (tmp_path / "shards").mkdir()
    record = fifo(tmp_path / "shards" / "shard-00000-of-00001.json")
    with deadline():
        status = predict.main(["--merge_manifests", str(tmp_path)])
    one_error(capsys, status, str(record), "FIFO")


# ----------------------------------------------- 11: an oversized CSV field


def test_merge_names_the_row_of_an_oversized_csv_field(tmp_path, capsys):
    output = _shard_folder(tmp_path, '{"index": 0, "count": 1, "items": ["a"]}')
    (output / "shards" / "shard-00000-of-00002.json").rename(
        output / "shards" / "shard-00000-of-00001.json"
    )
    table = output / "frames.shard-00000-of-00001.csv"
    rows = [["input", "source", "num_frames", "used_frames"], ["a", "x" * 140_000]]
    with table.open("w", encoding="utf-8", newline="") as file:
        csv.writer(file, lineterminator="\n").writerows(rows)
    status = predict.main(["--merge_manifests", str(output)])
    one_error(capsys, status, f"{table}:2: cannot read row 2", "field limit")


# ------------------------------------------- 15: a full disk while saving a checkpoint


def test_a_full_disk_while_saving_a_checkpoint_is_a_user_error(tmp_path, monkeypatch):
    """torch.save's RuntimeError over the OSError becomes the one-line UserError
    that names the file and the cause; the previous checkpoint is kept whole."""
    path = tmp_path / "checkpoints" / "last.ckpt"
    checkpoint_io = AtomicCheckpointIO()
    checkpoint_io.save_checkpoint({"step": 1}, path)
    monkeypatch.setattr(torch, "save", _full_disk_save(torch.save))
    with pytest.raises(UserError) as caught:
        checkpoint_io.save_checkpoint({"step": 2, "w": torch.zeros(10_000)}, path)
    message = str(caught.value)
    assert str(path) in message and "No space left on device" in message, message
    assert "\n" not in message
    assert os.listdir(path.parent) == ["last.ckpt"], "the temporary file is removed"
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}


# ------------------------------------------------- 22: formula cells in predictions.csv


def test_predictions_csv_cells_are_never_formulas(tmp_path):
    """A cell a spreadsheet would run gets a leading `'` (once); frames.csv, which
    --merge_manifests reads back by name, is written as it is."""
    names = {
        "gloss": ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "'=kept", "x"],
        "other": ["\tTAB", "\rCR", "plain"],
    }
    writer = OutputWriter(tmp_path, "probabilities", names)
    logits = {
        head: torch.arange(len(classes), 0, -1, dtype=torch.float32)[None]
        for head, classes in names.items()
    }
    name = "=HYPERLINK(x)"
    meta = {"name": name, "source": "/v.mp4", "positions": [0], "num_frames": 1}
    writer.add(meta, {"logits": logits}, 0, torch.ones(1, dtype=torch.bool))
    writer.finish([name])
    with (tmp_path / "predictions.csv").open(encoding="utf-8", newline="") as file:
        header, gloss, other = list(csv.reader(file))
    assert header[:3] == ["input", "head", "top1"]
    assert gloss[:2] == ["'=HYPERLINK(x)", "gloss"]
    assert gloss[2::2] == [
        "'=cmd|' /C calc'!A0",
        "'+1+1",
        "'-2+3",
        "'@SUM(A1)",
        "'=kept",
    ]
    assert other[2::2] == ["'\tTAB", "'\rCR", "plain", "", ""]
    assert all(0 < float(cell) < 1 for cell in gloss[3::2])
    with (tmp_path / "frames.csv").open(encoding="utf-8", newline="") as file:
        assert list(csv.reader(file))[1][0] == name


# ----------------------------------------- test.py's results and plots (same promise)


def test_results_and_plots_on_a_full_disk_are_user_errors(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def full(descriptor):
        real_fsync(descriptor)
        raise ENOSPC

    monkeypatch.setattr("utils.files.os.fsync", full)
    with pytest.raises(UserError, match="No space left on device"):
        write_json({"top1": 1.0}, tmp_path / "results.json")
    confusion = np.eye(3, dtype=np.int64)
    with pytest.raises(UserError, match="No space left on device"):
        plot_confusion_matrix(confusion, ["a", "b", "c"], tmp_path / "m.png", "val")
    assert not list(tmp_path.iterdir()), "nothing partial is left"
