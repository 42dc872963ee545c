"""Video files as a data source: seeking decode, the HearAI video layout and video
manifests, sampling in video frames, the frame cache, errors and --check_data, the
real WLASL videos, and training that matches the frame-folder twin."""

from __future__ import annotations

import copy
import csv
import json
import os
import random
import re
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import yaml
from helpers import ROOT, SHARED_DATA, TINY_OVERRIDES, merge

import predict
from benchmarks.video_loader import (
    QUICK,
    VideoSpec,
    markdown_rows,
    measure_video_loader,
)
import train
from config.loader import parse_config
from data_preprocessing import labels_csv
from data_preprocessing.make_sample_dataset import MANIFEST_FILE, make_sample_dataset
from datasets import videos
from datasets.check import check_sample
from datasets.index import Sample, index_samples, read_root_annotations
from datasets.sampling import SamplingOptions
from datasets.sign_data import SignData
from datasets.sign_dataset import SignDataset
from datasets.videos import frame_table, probe_video, read_all_frames, read_frames
from utils.annotations import AnnotationRow, read_manifest
from utils.errors import DataError

WLASL = SHARED_DATA / "video" / "wlasl_sample"
#: A frame's grey level is STEP x its index, so a decoded frame tells its index.
STEP = 4


def write_index_video(  # pylint: disable=too-many-arguments
    path: Path,
    frames: int = 30,
    *,
    codec: str = "mpeg4",
    gop: int = 6,
    fps: int = 10,
    options: dict | None = None,
) -> Path:
    """A 32x32 video whose frame i is uniformly grey = STEP * i (i < 64), with a key
    frame every `gop` frames."""
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        stream.codec_context.gop_size = gop
        if codec == "mpeg4":
            stream.codec_context.qscale = 2
            flags = av.codec.context.Flags  # pylint: disable=c-extension-no-member
            stream.codec_context.flags |= flags.qscale
        for index in range(frames):
            image = np.full((32, 32, 3), STEP * index, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, "rgb24")))
        container.mux(stream.encode())
    return path


def indices_of(images) -> list[int]:
    """The frame index each decoded image shows (its grey level / STEP)."""
    return [round(float(np.asarray(image).mean()) / STEP) for image in images]


def config_for(data_path, annotation_file=None, **train_parameters):
    """The shipped config, shrunk, gloss only, on `data_path`."""
    with open("train_config.yml", encoding="utf-8") as file:
        raw = merge(yaml.safe_load(file), copy.deepcopy(TINY_OVERRIDES))
    raw["general_parameters"].update(
        data_path=str(data_path), annotation_file=annotation_file
    )
    raw["train_parameters"]["classification_mode"] = ["gloss"]
    raw["train_parameters"].update(train_parameters)
    return raw


@pytest.mark.parametrize(
    "codec, suffix", [("mpeg4", ".mp4"), ("libx264", ".mp4"), ("libvpx-vp9", ".webm")]
)
def test_seeking_decodes_the_asked_frames_and_few_others(tmp_path, codec, suffix):
    path = write_index_video(tmp_path / f"clip{suffix}", 60, codec=codec, gop=10)
    everything = list(read_all_frames(path))
    assert indices_of(everything) == list(range(60))
    meta = probe_video(path)
    assert meta.frames == 60 and meta.fps == pytest.approx(10)
    assert frame_table(path).frames == 60
    asked = [57, 3, 3, 41]
    decoded = read_frames(path, asked)
    assert indices_of(decoded.images) == asked
    for image, index in zip(decoded.images, asked):
        np.testing.assert_array_equal(image, everything[index])
    # Three groups of pictures are entered (0-9 from the start, 40-49 and 50-59 by
    # seeking): at most the frames up to each asked one are decoded, not all 60.
    assert decoded.seeks == 2
    assert decoded.decoded <= 4 + 2 + 8 + 3  # B-frame reordering may add a few
    one = read_frames(path, [59])
    assert one.decoded <= 10 + 3 and indices_of(one.images) == [59]
    every = read_frames(path, list(range(60)))  # decoding on, never seeking back
    assert (every.decoded, every.seeks) == (60, 0)
    assert indices_of(every.images) == list(range(60))


def test_a_container_without_a_frame_count_is_counted(tmp_path):
    path = write_index_video(tmp_path / "clip.mkv", 25)
    with av.open(str(path)) as container:
        assert not container.streams.video[0].frames  # Matroska records no count
    meta = probe_video(path)
    assert meta.frames == 25 and meta.counted


def hearai_video_root(root: Path, rows: list[tuple[str, int, int, int]]) -> Path:
    """A dataset root of index videos `ROOT/<name>.mp4` with `test_gloss.txt`."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["name start end gloss"]
    for name, frames, start, end in rows:
        write_index_video(root / f"{name}.mp4", frames)
        lines.append(f"{name} {start} {end} 0")
    (root / "test_gloss.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_start_end_and_time_sampling_count_video_frames(tmp_path):
    root = hearai_video_root(tmp_path / "root", [("a", 30, 5, 24)])
    config = parse_config(config_for(root, num_segments=4))
    rows = read_root_annotations(config, root, None)
    (sample,) = index_samples(rows, root, frames=True, landmarks=False)
    assert sample.video_path == root / "a.mp4"
    assert (sample.start, sample.length, sample.fps) == (5, 20, pytest.approx(10))
    # Evenly spread: the centres of 4 segments of frames 5..24.
    spread = SignDataset(samples=[sample], sampling=SamplingOptions(4), train=False)
    assert indices_of(spread[0]["frames"].permute(0, 2, 3, 1)) == [7, 12, 17, 22]
    # time 0.2 s at the video's own 10 fps: every second frame, centred in 5..24.
    timed = SignDataset(
        samples=[sample], sampling=SamplingOptions(4, time=0.2), train=False
    )
    assert indices_of(timed[0]["frames"].permute(0, 2, 3, 1)) == [11, 13, 15, 17]
    training = SignDataset(
        samples=[sample], sampling=SamplingOptions(4, time=0.2), train=True, seed=3
    )
    for _ in range(5):
        got = indices_of(training[0]["frames"].permute(0, 2, 3, 1))
        assert got == list(range(got[0], got[0] + 8, 2)) and 5 <= got[0] <= 18


def test_a_frame_folder_wins_over_a_video_of_the_same_name(tmp_path):
    root = hearai_video_root(tmp_path / "root", [("a", 12, 0, 9), ("b", 12, 0, 9)])
    (root / "a").mkdir()
    for index, image in enumerate(read_all_frames(root / "a.mp4")):
        av.VideoFrame.from_ndarray(image, "rgb24").to_image().save(
            root / "a" / f"a_{index}.png"
        )
    (root / "b").mkdir()  # a folder without frames (e.g. landmarks only)
    config = parse_config(config_for(root))
    rows = read_root_annotations(config, root, None)
    first, second = index_samples(rows, root, frames=True, landmarks=False)
    assert first.video_path is None and len(first.frame_paths) == 10
    assert second.video_path == root / "b.mp4" and not second.frame_paths


def test_a_manifest_names_videos_anywhere(tmp_path):
    folder = tmp_path / "corpus" / "deep"
    folder.mkdir(parents=True)
    write_index_video(folder / "x.mp4", 20)
    write_index_video(folder / "y.webm", 16, codec="libvpx-vp9")
    manifest = tmp_path / "lists" / "all.csv"
    manifest.parent.mkdir()
    manifest.write_text(
        "path,gloss,split,start,end,unused\n"
        "../corpus/deep/x.mp4,1,train,2,11,7\n"
        f"{folder / 'y.webm'},0,val,,,7\n",
        encoding="utf-8",
    )
    config = parse_config(config_for(manifest))
    rows = read_root_annotations(config, manifest, None)
    x, y = index_samples(rows, manifest, frames=True, landmarks=False)
    assert (x.name, x.start, x.length, x.split, x.labels) == (
        "x",
        2,
        10,
        "train",
        {"gloss": 1},
    )
    assert (y.name, y.start, y.length, y.split) == ("y", 0, 16, "val")
    assert x.video_path.resolve() == (folder / "x.mp4").resolve()


@pytest.mark.parametrize(
    "text, message",
    [
        ("path,split\na.mp4,train\n", "no column for head gloss"),
        ("path,gloss,start\na.mp4,0,1\n", "both start and end"),
        ("path,gloss\na.mp4,0,5\n", "3 cells but the header has 2"),
        ("path,gloss,start,end\na.mp4,0,4,2\n", "start 4 must be >= 0 and <= end 2"),
        ("path,gloss\na.mp4,0\nother/a.mp4,1\n", "has the name a of the video"),
        ("path,gloss,split\na.mp4,0,dev\n", "split 'dev' is not one of"),
    ],
)
def test_bad_manifest_lines_name_file_and_line(tmp_path, text, message):
    manifest = tmp_path / "m.csv"
    manifest.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message) as error:
        read_manifest(manifest, ["gloss"])
    assert f"{manifest}:" in str(error.value)


def test_the_frame_cache_holds_video_clips(tmp_path):
    root = hearai_video_root(
        tmp_path / "root", [(f"c{i}", 14 + i, 1, 10 + i) for i in range(4)]
    )
    cache_dir = tmp_path / "cache"
    raw = config_for(root, num_segments=4)
    raw["general_parameters"].update(frame_cache=True, frame_cache_dir=str(cache_dir))
    cached = SignData(parse_config(raw))
    plain = SignData(parse_config(config_for(root, num_segments=4)))
    assert cached.cache is not None and len(list(cache_dir.glob("*.npy"))) == 1
    samples = cached.val_samples + cached.train_samples
    assert all(sample in cached.cache for sample in samples)
    with_cache = cached.dataset(samples, train=False)
    without = plain.dataset(samples, train=False)
    for index in range(len(samples)):
        a, b = with_cache[index]["frames"], without[index]["frames"]
        assert a.shape == b.shape
        assert (a.int() - b.int()).abs().max() <= 1
        assert indices_of(a.permute(0, 2, 3, 1)) == indices_of(b.permute(0, 2, 3, 1))


def test_a_broken_video_is_an_error_naming_it(tmp_path):
    root = hearai_video_root(tmp_path / "root", [("good", 12, 0, 9)])
    (root / "bad.mp4").write_bytes(os.urandom(3000))
    rows = [
        AnnotationRow("good", 0, 40, {"gloss": 0}, "test_gloss.txt:2"),
        AnnotationRow("bad", 0, 3, {"gloss": 0}, "test_gloss.txt:3"),
    ]
    with pytest.raises(DataError) as error:
        index_samples(rows, root, frames=True, landmarks=False)
    lines = str(error.value).splitlines()
    assert lines[0] == (
        f"test_gloss.txt:2: frames 0..40 of good asked for, but {root / 'good.mp4'} "
        "has 12 frames (0..11)"
    )
    assert lines[1].startswith(f"test_gloss.txt:3: {root / 'bad.mp4'}: cannot open")
    with pytest.raises(DataError, match="frame 12 asked for, but the video has 12"):
        read_frames(root / "good.mp4", [3, 12])


def cut_video(tmp_path: Path) -> Path:
    """An MP4 whose header (written first) lists 40 frames but whose data stops
    after about a quarter of them."""
    path = write_index_video(
        tmp_path / "cut.mp4", 40, codec="libx264", options={"movflags": "faststart"}
    )
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 7 // 10])
    return path


def test_check_data_finds_a_video_cut_short(tmp_path, write_config, capsys):
    root = hearai_video_root(tmp_path / "root", [("good", 12, 0, 11)])
    cut = cut_video(root)
    assert probe_video(cut).frames == 40  # the header alone looks fine
    with (root / "test_gloss.txt").open("a", encoding="utf-8") as file:
        file.write("cut 0 39 1\n")
    sample = Sample("cut", 0, 40, {}, [], video_path=cut)
    (problem,) = check_sample(sample, [])
    assert problem.startswith(f"{cut}: ")
    config = config_for(root)
    config["general_parameters"]["workers"] = 0
    code = train.main(
        ["--model_config_path", str(write_config(config)), "--check_data"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "error: --check_data: 1 problem in the data:" in err
    assert str(cut) in err
    with pytest.raises(DataError, match=str(cut)):
        _ = SignDataset(samples=[sample], sampling=SamplingOptions(4), train=False)[0]


@pytest.fixture(name="wlasl_manifest")
def fixture_wlasl_manifest(tmp_path_factory) -> Path:
    """The real WLASL sample videos as a video manifest written by labels_csv."""
    if not (WLASL / "69531.mp4").is_file():
        pytest.skip(
            "../shared/data/video/wlasl_sample (the real WLASL videos) is absent"
        )
    base = tmp_path_factory.mktemp("wlasl")
    rows = [
        line.split(",")
        for line in (WLASL / "labels.csv").read_text(encoding="utf-8").splitlines()[1:]
    ]
    labels = base / "labels.csv"
    labels.write_text(
        "video,label,split\n" + "".join(f"{r[0]}.mp4,{r[1]},{r[3]}\n" for r in rows),
        encoding="utf-8",
    )
    root = base / "root"
    summary = labels_csv.import_labels(labels, WLASL, root, manifest=True)
    assert summary["classes"] == 3 and not (root / labels_csv.ANNOTATION_FILE).exists()
    return root / labels_csv.MANIFEST_FILE


def test_the_real_wlasl_videos_load_as_a_video_dataset(wlasl_manifest):
    data = SignData(parse_config(config_for(wlasl_manifest, num_segments=4)))
    assert [s.name for s in data.train_samples] == ["69532"]
    assert sorted(s.name for s in data.val_samples) == ["69531", "69546"]
    lengths = {s.name: s.length for s in data.train_samples + data.val_samples}
    assert lengths == {"69531": 63, "69532": 80, "69546": 72}
    assert data.label_names == {"gloss": ["what", "when", "yes"]}
    dataset = data.dataset(data.val_samples, train=False)
    item = dataset[0]
    assert (
        item["frames"].shape == (4, 3, 32, 32) and item["frames"].dtype == torch.uint8
    )
    assert item["frames"].float().std() > 5  # real pictures, not blank frames


@pytest.fixture(name="video_checkpoint", scope="module")
def fixture_video_checkpoint(tmp_path_factory) -> Path:
    """An r3d_18 checkpoint (tiny) after one epoch of train.py on generated videos."""
    base = tmp_path_factory.mktemp("video_network")
    make_sample_dataset(
        base / "data", glosses=3, clips_per_gloss=3, size=32, videos=True
    )
    config = config_for(base / "data")
    config["feature_extractor"] = {"name": "r3d_18", "representation_size": 8}
    config["general_parameters"]["path_to_save"] = str(base / "run")
    path = base / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    assert train.main(["--model_config_path", str(path)]) == 0
    return base / "run" / "checkpoints" / "best.ckpt"


@pytest.mark.parametrize("source", ["manifest", "folder"])
def test_predict_runs_on_the_wlasl_videos_with_a_video_network(
    video_checkpoint, wlasl_manifest, tmp_path, source
):
    inputs = wlasl_manifest if source == "manifest" else WLASL
    output = tmp_path / "out"
    args = [str(video_checkpoint), str(inputs), str(output), "--embedding_kind", "CLS"]
    assert predict.main(args) == 0
    with (output / "predictions.csv").open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    assert sorted(row["input"] for row in rows) == ["69531", "69532", "69546"]
    for name in ("69531", "69532", "69546"):
        embedding = np.load(output / f"{name}.npy")
        assert embedding.shape == (16,) and np.isfinite(embedding).all()


def train_to_metrics(write_config, config: dict, run: Path) -> dict:
    """train.py on `config`; its metrics.json."""
    config["general_parameters"]["path_to_save"] = str(run)
    assert train.main(["--model_config_path", str(write_config(config))]) == 0
    return json.loads((run / "metrics.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_videos_and_their_manifest_train_as_well_as_the_frame_folders(
    tmp_path, write_config
):
    twin = {"glosses": 3, "clips_per_gloss": 6, "seed": 1, "size": 40}
    make_sample_dataset(tmp_path / "frames", **twin)
    make_sample_dataset(tmp_path / "videos", videos=True, manifest=True, **twin)
    assert not any(path.is_dir() for path in (tmp_path / "videos").iterdir())
    results = {}
    for name, data in [
        ("frames", tmp_path / "frames"),
        ("videos", tmp_path / "videos"),
    ]:
        config = config_for(data, None, epochs=10)
        metrics = train_to_metrics(write_config, config, tmp_path / f"run_{name}")
        results[name] = metrics["heads"]["gloss"]["top1"]
    assert results["frames"] == 1.0, results
    assert results["videos"] == results["frames"], results
    # The manifest as data_path gives the same clips, frame for frame, in the same
    # split (so the same training as the videos' folder).
    by_folder, by_manifest = (
        SignData(parse_config(config_for(data, None, epochs=10)))
        for data in (tmp_path / "videos", tmp_path / "videos" / MANIFEST_FILE)
    )
    for split in ("train_samples", "val_samples"):
        folder = getattr(by_folder, split)
        manifest = getattr(by_manifest, split)
        assert [s.name for s in folder] == [s.name for s in manifest]
        first = [
            data.dataset(samples, train=False)[0]["frames"]
            for data, samples in ((by_folder, folder), (by_manifest, manifest))
        ]
        assert torch.equal(*first)


def test_a_manifest_as_data_path_gives_the_annotated_samples(tmp_path):
    make_sample_dataset(
        tmp_path, glosses=2, clips_per_gloss=3, size=32, videos=True, manifest=True
    )
    by_manifest = SignData(parse_config(config_for(tmp_path / MANIFEST_FILE)))
    by_layout = SignData(parse_config(config_for(tmp_path)))

    def described(data: SignData) -> list[tuple]:
        samples = data.train_samples + data.val_samples
        return sorted((s.name, s.start, s.length, s.labels["gloss"]) for s in samples)

    assert described(by_manifest) == described(by_layout)
    assert (
        by_manifest.label_names == by_layout.label_names == {"gloss": ["HOUSE", "TREE"]}
    )


def test_random_sampling_never_reads_past_a_short_video(tmp_path):
    root = hearai_video_root(tmp_path / "root", [("short", 3, 0, 2)])
    config = parse_config(config_for(root))
    (sample,) = index_samples(
        read_root_annotations(config, root, None), root, frames=True, landmarks=False
    )
    dataset = SignDataset(samples=[sample], sampling=SamplingOptions(8), train=True)
    dataset.rng = random.Random(0)
    assert indices_of(dataset[0]["frames"].permute(0, 2, 3, 1)) == [0, 1, 2]


def test_a_stream_without_timestamps_is_read_by_counting(tmp_path):
    path = tmp_path / "raw.h264"  # an H.264 elementary stream: no container times
    with av.open(str(path), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for index in range(30):
            image = np.full((32, 32, 3), STEP * index, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, "rgb24")))
        container.mux(stream.encode())
    assert frame_table(path).pts is None
    decoded = read_frames(path, [25, 3])
    assert indices_of(decoded.images) == [25, 3] and decoded.seeks == 0
    assert decoded.decoded == 26  # counted from the start up to frame 25


def test_the_quick_probe_falls_back_to_the_default(tmp_path, monkeypatch):
    path = write_index_video(tmp_path / "clip.mp4", 12)
    opened = []
    real_open, real_usable = av.open, videos._usable  # pylint: disable=protected-access

    def recording_open(*args, **kwargs):
        opened.append(kwargs.get("options"))
        return real_open(*args, **kwargs)

    monkeypatch.setattr(videos.av, "open", recording_open)
    monkeypatch.setattr(videos, "_usable", lambda stream: bool(opened[-1] == {}))
    assert probe_video(path).frames == 12
    assert opened == [videos.FAST_PROBE, {}]
    monkeypatch.setattr(videos, "_usable", real_usable)
    opened.clear()
    assert probe_video(path).frames == 12 and opened == [videos.FAST_PROBE]


def test_the_video_loader_benchmark_measures_both_sides(tmp_path):
    spec = VideoSpec(clips=8, frames_per_clip=12, size=32, gop=4, glosses=2)
    result = measure_video_loader(
        spec=spec, batches=2, overrides=QUICK["overrides"], cache_root=tmp_path
    )
    assert (tmp_path / spec.folder_name() / "complete.json").is_file()
    loader, decode = result["loader"], result["decode"]
    assert loader["frames"] > 0 and loader["frames_per_s"] > 0
    assert decode["seek_frames_per_s"] > 0 and decode["full_decode_frames_per_s"] > 0
    assert decode["seek_decoded_per_frame"] <= decode["full_decode_decoded_per_frame"]
    assert result["loader_vs_decode"] == pytest.approx(
        loader["frames_per_s"] / decode["seek_frames_per_s"]
    )
    rows = markdown_rows(result)
    assert len(rows) == 7 and all(row.startswith("| ") for row in rows)


#: The one module that opens videos with PyAV.
PYAV_MODULE = "datasets/videos.py"
#: Other non-test files allowed to use PyAV, and why.
PYAV_ALLOWED = {
    # Its baseline decodes every frame from the first, without the module's seeking,
    # to measure what seeking saves.
    "benchmarks/video_loader.py": "the full-decode baseline",
}
USES_PYAV = re.compile(r"^\s*(import av\b|from av\b)|\bav\.open\(", re.MULTILINE)


def test_one_module_opens_videos_with_pyav():
    """Every video is decoded by `datasets/videos.py`: a second PyAV reader would
    copy its pixel budget and error messages, and drift from it."""
    users = sorted(
        path.relative_to(ROOT).as_posix()
        for path in ROOT.rglob("*.py")
        if not {".venv", "tests", "site", ".git"} & set(path.relative_to(ROOT).parts)
        and USES_PYAV.search(path.read_text(encoding="utf-8"))
    )
    assert PYAV_MODULE in users  # the scan sees the module itself
    assert [path for path in users if path != PYAV_MODULE] == sorted(PYAV_ALLOWED)
