"""Data that must not be trusted: sample names that are paths, absurd labels, damaged
or hostile files (symbolic links, FIFOs, decompression bombs, 16-bit frames, bad
`fps`, garbage `.pose`), and a frame cache on a full disk or left damaged."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
import errno
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import train
from datasets import cache_files
from datasets.frame_cache import FrameCache
from datasets.images import decode_image
from datasets.index import Sample, index_samples, read_fps, read_gloss_names
from datasets.landmarks import read_landmarks
from utils.annotations import read_annotation_file
from utils.errors import DataError

# ----------------------------------------------------------------------------- helpers


def write_frames(folder: Path, name: str, count: int, size: int = 8) -> list[Path]:
    """`<folder>/<name>_<idx>.png` frames, frame i a uniform grey 10 * i."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"{name}_{index}.png"
        Image.new("RGB", (size, size), (10 * index,) * 3).save(path)
        paths.append(path)
    return paths


def annotation(path: Path, *rows: str) -> Path:
    """An annotation file with a `name start end gloss` header."""
    path.write_text("name start end gloss\n" + "\n".join(rows) + "\n", "utf-8")
    return path


@pytest.fixture
def unblock_fifos():
    """Make FIFOs created by a test harmless: should code under test open one to
    read, a writer opens and closes it after a while, so the test fails, not hangs."""
    fifos: list[Path] = []
    done = threading.Event()

    def release() -> None:
        while not done.wait(0.2):
            for fifo in fifos:
                try:
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:  # no reader yet
                    pass

    def make(path: Path) -> Path:
        os.mkfifo(path)
        fifos.append(path)
        return path

    timer = threading.Timer(10, release)
    timer.daemon = True
    timer.start()
    yield make
    done.set()
    timer.cancel()


@pytest.fixture
def broken(sample_root: Path, tiny_config: dict, tmp_path: Path, write_config, capsys):
    """A private copy of the sample data, free to break, and train.main on it, which
    must exit 2 with one clean message holding every needle (returns stderr)."""
    root = tmp_path / "data"
    shutil.copytree(sample_root, root)

    def run(*needles: str) -> str:
        config = copy.deepcopy(tiny_config)
        config["general_parameters"]["data_path"] = str(root)
        capsys.readouterr()
        code = train.main(["--model_config_path", str(write_config(config))])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, err
        assert err.startswith("error: ") or "\nerror: " in err, err
        for needle in needles:
            assert needle in err, err
        assert not Path(config["general_parameters"]["path_to_save"]).exists()
        return err

    return root, run


def first_row(root: Path) -> list[str]:
    """The tokens of the first sample row of `test_gloss.txt`."""
    return (root / "test_gloss.txt").read_text("utf-8").splitlines()[1].split()


# ---------------------------------------------------- sample names are not paths (2)


@pytest.mark.parametrize("name", ["../x", "/abs/x", "a/b", "..", ".", "a\\b"])
def test_a_sample_name_that_is_a_path_is_a_file_line_error(tmp_path, name) -> None:
    path = annotation(tmp_path / "test_gloss.txt", "ok 0 1 0", f"{name} 0 1 0")
    with pytest.raises(DataError, match="sample name .* is a path") as caught:
        read_annotation_file(path, ["gloss"])
    assert str(caught.value).startswith(f"{path}:3: ")


def test_a_name_leading_out_of_the_root_reads_nothing_there(
    broken,
) -> None:
    data_root, run_on = broken
    outside = data_root.parent / "outside"
    shutil.copytree(data_root / first_row(data_root)[0], outside)
    for frame in outside.iterdir():
        frame.rename(outside / frame.name.replace(first_row(data_root)[0], "outside"))
    gloss = data_root / "test_gloss.txt"
    lines = gloss.read_text("utf-8").splitlines()
    lines[1] = "../outside " + " ".join(lines[1].split()[1:])
    gloss.write_text("\n".join(lines) + "\n", "utf-8")
    run_on(f"{gloss}:2: sample name '../outside' is a path")


# ------------------------------------------------------ labels far beyond a cap (4)


@pytest.mark.parametrize("label", ["1000000000000", "1e300", "1000000"])
def test_an_absurd_label_is_refused_when_read(tmp_path: Path, label: str) -> None:
    path = annotation(tmp_path / "a.txt", "x 0 1 0", f"y 0 1 {label}")
    with pytest.raises(DataError, match="above the largest class index") as caught:
        read_annotation_file(path, ["gloss"])
    assert str(caught.value).startswith(f"{path}:3: head gloss: label '{label}'")


# ---------------------------------------------- files that are not what they seem (11)


def test_decompression_bomb_frames_are_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    warned, refused = tmp_path / "warned.png", tmp_path / "refused.png"
    Image.new("RGB", (12, 12)).save(warned)  # > MAX_IMAGE_PIXELS: PIL only warns
    Image.new("RGB", (16, 16)).save(refused)  # > 2 x MAX_IMAGE_PIXELS: PIL raises
    for path in (warned, refused):
        with pytest.raises(DataError, match="image too large to decode") as caught:
            decode_image(path, None)
        assert str(caught.value).startswith(f"{path}: ")


@pytest.mark.parametrize(
    "damage, needle",
    [
        ("dangling", "is a dangling symbolic link to"),
        ("loop", "is a symbolic link loop"),
        ("fifo", "is a FIFO (named pipe), not a file"),
        ("folder", "is a directory, not a file"),
    ],
)
def test_a_frame_that_is_no_file_is_named_when_indexed(
    tmp_path: Path, unblock_fifos, damage: str, needle: str
) -> None:
    frames = write_frames(tmp_path / "x", "x", 4)
    frames[2].unlink()
    if damage == "dangling":
        frames[2].symlink_to(tmp_path / "gone.png")
    elif damage == "loop":
        frames[2].symlink_to(frames[2])
    elif damage == "fifo":
        unblock_fifos(frames[2])
    else:
        frames[2].mkdir()
    rows = read_annotation_file(annotation(tmp_path / "a.txt", "x 0 3 0"), ["gloss"])
    with pytest.raises(DataError) as caught:
        index_samples(rows, tmp_path, frames=True, landmarks=False)
    assert f"frame file {frames[2]} {needle}" in str(caught.value)
    with pytest.raises(DataError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        decode_image(frames[2], None)


def test_a_dangling_frame_link_stops_train(broken) -> None:
    data_root, run_on = broken
    name, start = first_row(data_root)[:2]
    frame = data_root / name / f"{name}_{start}.jpg"
    frame.unlink()
    frame.symlink_to(data_root / "nowhere.jpg")
    run_on(f"{frame} is a dangling symbolic link")


def test_a_fifo_annotation_file_says_what_it_is(tmp_path, unblock_fifos) -> None:
    path = unblock_fifos(tmp_path / "test_gloss.txt")
    with pytest.raises(DataError, match="is a FIFO \\(named pipe\\), not a file"):
        read_annotation_file(path, ["gloss"])


def test_a_fifo_landmark_file_says_what_it_is(tmp_path, unblock_fifos) -> None:
    write_frames(tmp_path / "x", "x", 2)
    fifo = unblock_fifos(tmp_path / "x" / "x.npz")
    rows = read_annotation_file(annotation(tmp_path / "a.txt", "x 0 1 0"), ["gloss"])
    with pytest.raises(DataError, match=f"landmark file {fifo} is a FIFO"):
        index_samples(rows, tmp_path, frames=True, landmarks=True)
    with pytest.raises(DataError, match=f"{fifo}: landmark file is a FIFO"):
        read_landmarks(fifo, ["pose"])


def test_non_utf8_gloss_names_are_a_file_line_error(tmp_path: Path) -> None:
    (tmp_path / "glosses.txt").write_bytes(b"id gloss\n0 hello\n1 caf\xe9\n")
    with pytest.raises(DataError, match="not UTF-8") as caught:
        read_gloss_names([str(tmp_path)])
    assert str(caught.value).startswith(f"{tmp_path / 'glosses.txt'}:3: ")


def test_a_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("\ufeffx 0 1 3\ny 0 1 4\n", "utf-8")
    assert [row.name for row in read_annotation_file(path, ["gloss"])] == ["x", "y"]
    (tmp_path / "glosses.txt").write_text("\ufeff3 three\n", "utf-8")
    assert read_gloss_names([str(tmp_path)]) == {3: "three"}


@pytest.mark.parametrize(
    "fps, needle",
    [
        (np.inf, "is not a frame rate"),
        (-25.0, "is not a frame rate"),
        (np.nan, "is not a frame rate"),
        (np.array([25.0, 30.0]), "fps holds 2 values"),
    ],
)
def test_a_bad_landmark_fps_is_named(tmp_path: Path, fps, needle: str) -> None:
    path = tmp_path / "x.npz"
    np.savez(path, pose=np.zeros((3, 33, 3), np.float32), fps=fps)
    with pytest.raises(DataError, match=needle) as caught:
        read_landmarks(path, ["pose"])
    assert str(caught.value).startswith(f"{path}: fps")
    np.savez(path, pose=np.zeros((3, 33, 3), np.float32), fps=np.array([[24.0]]))
    assert read_landmarks(path, ["pose"])[2] == 24.0


@pytest.mark.parametrize("fps", ["Infinity", "-25", "[25, 30]", '"fast"'])
def test_a_bad_properties_fps_is_named(tmp_path: Path, fps: str) -> None:
    (tmp_path / "x").mkdir()
    path = tmp_path / "x" / "x_properties.json"
    path.write_text(f'{{"FPS": {fps}}}', "utf-8")
    with pytest.raises(DataError, match="is not a frame rate") as caught:
        read_fps(tmp_path / "x", "x")
    assert str(caught.value).startswith(f"{path}: ")


@pytest.mark.parametrize("data", [b"garbage" * 10, b"\xff" * 100])
def test_a_garbage_pose_file_is_named(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "x.pose"
    path.write_bytes(data)
    with pytest.raises(DataError, match="cannot read landmarks") as caught:
        read_landmarks(path, ["pose"])
    assert str(caught.value).startswith(f"{path}: ")


# -------------------------------------------------------------- 16-bit frames (12)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_grey_frames_are_scaled_not_clipped(tmp_path, suffix) -> None:
    path = tmp_path / f"grey{suffix}"
    Image.fromarray(np.full((4, 6), 0x8080, np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I;16")
    decoded = decode_image(path, None)
    assert decoded.dtype == np.uint8 and decoded.shape == (4, 6, 3)
    assert (decoded == 0x80).all(), "half of 16-bit white is half of 8-bit white"


@pytest.mark.parametrize(
    "mode, kind", [("I", "32-bit integer"), ("F", "32-bit floating-point")]
)
def test_32_bit_frames_are_refused_by_name(tmp_path, mode: str, kind: str) -> None:
    path = tmp_path / "deep.tif"
    Image.new(mode, (4, 4), 70000).save(path)
    with pytest.raises(DataError, match=f"a {kind}.*frames must be 8-bit") as caught:
        decode_image(path, None)
    assert str(caught.value).startswith(f"{path}: ")


# ------------------------------------------------------------- the frame cache (7)


@pytest.fixture
def clips(tmp_path: Path) -> list[Sample]:
    """Two small samples of 8x8 PNG frames."""
    samples = []
    for name, count in (("a", 3), ("b", 2)):
        paths = write_frames(tmp_path / "data" / name, name, count)
        samples.append(Sample(name, 0, count, {"gloss": 0}, paths))
    return samples


def build_cache(samples: list[Sample], folder: Path) -> FrameCache:
    """The frame cache of `samples` (8x8 frames, no resizing) in `folder`."""
    return FrameCache.build_or_open(
        samples,
        folder,
        resize=8,
        size=8,
        transform=lambda clip: clip,
        decode=decode_image,
    )


def test_a_cache_that_does_not_fit_is_refused_first(clips, tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        cache_files.shutil, "disk_usage", lambda _: usage._replace(free=1000)
    )
    with pytest.raises(DataError, match="frame cache needs .* GiB free"):
        build_cache(clips, tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())


def test_a_failed_cache_write_leaves_nothing(clips, tmp_path, monkeypatch) -> None:
    def full_disk(_fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cache_files.os, "fsync", full_disk)
    with pytest.raises(DataError, match="No space left on device"):
        build_cache(clips, tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())


@pytest.mark.parametrize("part", ["npy", "json"])
def test_a_damaged_cache_is_rebuilt_with_a_note(clips, tmp_path, capsys, part):
    cache = build_cache(clips, tmp_path / "cache")
    expected = cache.clip(clips[0], [0, 1, 2])
    (damaged,) = (tmp_path / "cache").glob(f"frames-*.{part}")
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    capsys.readouterr()
    rebuilt = build_cache(clips, tmp_path / "cache")
    assert "note: the frame cache" in capsys.readouterr().err
    assert torch.equal(rebuilt.clip(clips[0], [0, 1, 2]), expected)
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_temporary_files_of_a_killed_build_are_removed(clips, tmp_path) -> None:
    build_cache(clips, tmp_path / "cache")
    (array,) = (tmp_path / "cache").glob("frames-*.npy")
    array.unlink()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    files = cache_files.CacheFiles(tmp_path / "cache", array.stem[len("frames-") :])
    stale = files.temporary(array).with_name(
        files.temporary(array).name.rsplit("-", 1)[0] + f"-{dead.stdout.strip()}"
    )
    stale.write_bytes(b"left by a killed build")
    build_cache(clips, tmp_path / "cache")
    assert not stale.exists()
    assert json.loads(files.index.read_text("utf-8")) == {
        FrameCache.key(clips[0]): 0,
        FrameCache.key(clips[1]): 3,
    }
