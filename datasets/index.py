"""Dataset roots -> samples: annotation rows joined, frames, videos and landmarks found.

A sample's frames are the `ROOT/<name>/<name>_<idx>.jpg` files of its folder, or,
when that folder is missing or holds none of them, the video `ROOT/<name>.mp4` (or
another video suffix) beside it; a frame folder with frames wins over a video. A
root may also be a video manifest (a `.csv` file, see `utils.annotations`), whose
rows name their videos. A video's frame count and rate come from its container
(`datasets.videos.probe_video`), without decoding it.

Everything on disk is checked here, in one pass when the dataset is built, so that all
missing folders, frames and landmark files are reported together before training.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from config.hamnosys_heads import head_class_names
from config.schema import AnnotationSource, SignpipeConfig
from datasets.landmarks import landmark_file
from datasets.sampling import check_fps
from datasets.ssvp import features_problem, is_ssvp_root, read_ssvp_root
from datasets.videos import probe_video
from utils.annotations import (
    MAX_REPORTED,
    AnnotationRow,
    check_label_ranges,
    is_manifest,
    read_annotation_file,
    read_manifest,
)
from utils.constants import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from utils.errors import ConfigError, DataError
from utils.files import EMPTY, exists, path_problem, read_text
from utils.labels import Label, is_missing, missing_label


@dataclass
class Sample:
    """One clip: where its frames and landmarks are, its labels and its split.

    Its frames are `frame_paths` (the images of `start..end`, in order) or, for a
    video sample, frames `start .. start + length - 1` of `video_path`.
    """

    name: str
    start: int
    length: int
    labels: dict[str, Label]
    frame_paths: list[Path]
    landmark_path: Path | None = None
    fps: float | None = None
    split: str | None = None
    signer: str | None = None
    root: str = ""
    video_path: Path | None = None
    #: The feature file of a sample of an SSVP-SLT root (`datasets.ssvp`).
    features: Path | None = None

    @property
    def has_frames(self) -> bool:
        """Whether the sample has image frames (a frame folder or a video)."""
        return bool(self.frame_paths) or self.video_path is not None

    @property
    def frame_source(self) -> Path:
        """Where its frames are read from: the video, or the frame folder."""
        return self.video_path or self.frame_paths[0].parent


def root_folder(root: str | Path) -> Path:
    """The folder of a dataset root: the root itself, or a manifest's folder."""
    root = Path(root)
    return root.parent if root.suffix.lower() == ".csv" and root.is_file() else root


def list_frames(sample_dir: Path, name: str) -> dict[int, Path]:
    """Frame index -> path of the `<name>_<idx>.<image suffix>` files, in one scan."""
    pattern = re.compile(re.escape(name) + r"_(\d+)$")
    frames = {}
    with os.scandir(sample_dir) as entries:
        for entry in entries:
            stem, suffix = os.path.splitext(entry.name)
            match = pattern.match(stem)
            if match and suffix.lower() in IMAGE_SUFFIXES:
                frames[int(match.group(1))] = Path(entry.path)
    return frames


def read_fps(sample_dir: Path, name: str) -> float | None:
    """The FPS from `<name>_properties.json`, if the file exists."""
    path = sample_dir / f"{name}_properties.json"
    if not exists(path):
        return None
    try:
        properties = json.loads(read_text(path, "properties file"))
    except (json.JSONDecodeError, RecursionError) as error:
        raise DataError(
            f"{path}: not a JSON object with a numeric FPS ({error})"
        ) from None
    if not isinstance(properties, dict):
        raise DataError(f"{path}: not a JSON object with a numeric FPS")
    return check_fps(properties.get("FPS"), str(path))


def _join_rows(files: list[list[AnnotationRow]]) -> list[AnnotationRow]:
    """Join the rows of several annotation files (one per head group) on sample name."""
    joined: dict[str, AnnotationRow] = {}
    for rows in files:
        for row in rows:
            first = joined.get(row.name)
            if first is None:
                joined[row.name] = AnnotationRow(
                    row.name,
                    row.start,
                    row.end,
                    dict(row.labels),
                    row.source,
                    row.split,
                    row.signer,
                    {head: row.source for head in row.labels},
                    video=row.video,
                )
                continue
            if (first.start, first.end) != (row.start, row.end):
                raise DataError(
                    f"{row.source}: frames {row.start}-{row.end} of sample {row.name} "
                    f"differ from {first.start}-{first.end} at {first.source}"
                )
            for key in ("split", "signer"):
                mine, theirs = getattr(first, key), getattr(row, key)
                if mine is not None and theirs is not None and mine != theirs:
                    raise DataError(
                        f"{row.source}: {key} {theirs!r} of sample {row.name} differs "
                        f"from {mine!r} at {first.source}"
                    )
                setattr(first, key, mine if mine is not None else theirs)
            first.labels.update(row.labels)
            first.head_sources.update({head: row.source for head in row.labels})
    return list(joined.values())


def _manifest_root(
    root: Path, annotation_file: AnnotationSource, heads: dict[str, str]
) -> list[AnnotationRow]:
    """The rows of a dataset root that is a video manifest."""
    if annotation_file is not None:
        raise DataError(
            f"general_parameters.data_path {root} is a video manifest, which holds "
            "the labels itself; set annotation_file: null for it"
        )
    if not is_manifest(root):
        raise DataError(
            f"{root}: a data_path file must be a video manifest, a CSV whose header "
            "starts with 'path' (see docs/data/videos.md)"
        )
    return read_manifest(root, list(heads), heads)


def read_root_annotations(
    config: SignpipeConfig, root: Path, annotation_file: AnnotationSource
) -> list[AnnotationRow]:
    """All annotation rows of one dataset root, every active head filled in.

    Args:
        config: the validated config.
        root: the dataset root; or a video manifest (`.csv`), which holds every
            head's column (then `annotation_file` must be None); or a root of
            precomputed features (`datasets.ssvp`, read as `read_ssvp_root` says).
        annotation_file: one file holding every active head's columns (relative to
            the root or absolute; a video manifest too); or such a file per split
            (`{train, val, test}`: each row gets its file's split, and without a val
            file the train file's rows are split into train and val by
            `ratio_train_test`); or None for `test_<mode>.txt` per head group.
    """
    head_modes = config.head_modes()
    kinds = config.head_labels()
    separator = config.general_parameters.annotation_separator

    def read(name: str | Path, heads: list[str]) -> list[AnnotationRow]:
        path = Path(name)
        path = path if path.is_absolute() else root / path
        if is_manifest(path):
            return read_manifest(path, heads, kinds)
        return read_annotation_file(path, heads, separator, kinds)

    if config.uses_features() or is_ssvp_root(root):
        return read_ssvp_root(config, root, annotation_file)
    if root.suffix.lower() == ".csv" and root.is_file():
        rows = _manifest_root(root, annotation_file, kinds)
    elif isinstance(annotation_file, dict):
        rows, seen = [], {}
        for split, name in annotation_file.items():
            fixed = split if split != "train" or "val" in annotation_file else None
            for row in _join_rows([read(name, list(head_modes))]):
                if row.split is not None and row.split != split:
                    raise DataError(
                        f"{row.source}: split column says {row.split!r}, but the row "
                        f"is in the {split} file"
                    )
                if row.name in seen:
                    raise DataError(
                        f"{row.source}: sample {row.name} is also in {seen[row.name]}; "
                        "a sample belongs to one split file"
                    )
                seen[row.name] = row.source
                row.split = fixed
                rows.append(row)
    elif annotation_file is not None:
        rows = _join_rows([read(annotation_file, list(head_modes))])
    else:
        files = []
        for mode in config.train_parameters.modes():
            heads = [head for head, group in head_modes.items() if group == mode]
            files.append(read(f"test_{mode}.txt", heads))
        rows = _join_rows(files)
    for row in rows:
        for head in head_modes:
            row.labels.setdefault(head, missing_label(kinds[head]))
    return rows


def _listed(items: list[str], shown: int = 3) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def _frame_problems(row: AnnotationRow, paths: list[Path]) -> str | None:
    """The frames that are empty or not readable files (a FIFO, a dangling link)."""
    found = [(path, path_problem(path, empty_ok=False)) for path in paths]
    empty = [str(path) for path, problem in found if problem == EMPTY]
    other = [
        f"{path} {problem}" for path, problem in found if problem not in (None, EMPTY)
    ]
    lines = [f"{row.source}: frame file {_listed(other, 1)}"] if other else []
    if empty:
        lines.append(f"{row.source}: empty (0-byte) frame files {_listed(empty)}")
    return "\n".join(lines) or None


def _find_frames(
    row: AnnotationRow, sample_dir: Path, frames: dict[int, Path]
) -> tuple[list[Path], str | None]:
    wanted = range(row.start, row.end + 1)
    missing = [index for index in wanted if index not in frames]
    if not missing:
        paths = [frames[index] for index in wanted]
        problem = _frame_problems(row, paths)
        return ([], problem) if problem else (paths, None)
    shown = ", ".join(str(index) for index in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return [], (
        f"{row.source}: {sample_dir} lacks frames {shown}{more} "
        f"(expected {row.name}_<idx>.jpg for idx {row.start}..{row.end})"
    )


def find_video(root: Path, name: str) -> Path | None:
    """The video `ROOT/<name>.<suffix>` of a sample, if there is one (of several
    suffixes, the first in alphabetical order)."""
    return next(
        (
            root / f"{name}{suffix}"
            for suffix in sorted(VIDEO_SUFFIXES)
            if exists(root / f"{name}{suffix}")
        ),
        None,
    )


def _video_hint(name: str, root: Path) -> str:
    """What to run when the root holds the sample's video instead of its folder
    (for landmarks, which are read from the folder)."""
    video = find_video(root, name)
    if video is None:
        return ""
    return (
        f"; {root} holds {video.name}: write its landmarks with `python -m "
        f"data_preprocessing.extract_landmarks {root} {root}` (see "
        "docs/data/videos.md)"
    )


def _landmarks_of(
    row: AnnotationRow, folders: list[Path], landmarks: bool
) -> tuple[Path | None, str | None]:
    """The row's landmark file (the first of `folders` holding one), or the problem."""
    if not landmarks:
        return None, None
    path = next(
        (found for folder in folders if (found := landmark_file(folder, row.name))),
        None,
    )
    if path is None:
        expected = " or ".join(f"{folder / row.name}.npz" for folder in folders)
        return None, (
            f"{row.source}: no landmarks for {row.name} (expected {expected} or .pose)"
        )
    problem = path_problem(path)
    if problem:
        return None, f"{row.source}: landmark file {path} {problem}"
    return path, None


def _video_range(row: AnnotationRow, video: Path) -> tuple[int, float | None] | str:
    """The last frame of the row's clip in the video, and the video's rate; or what
    is wrong with the video."""
    problem = path_problem(video, empty_ok=False)
    if problem:
        return f"{row.source}: video {video} {problem}"
    try:
        meta = probe_video(video)
    except DataError as error:
        return f"{row.source}: {error}"
    end = meta.frames - 1 if row.end is None else row.end
    if end >= meta.frames or row.start > end:
        return (
            f"{row.source}: frames {row.start}..{end} of {row.name} asked for, but "
            f"{video} has {meta.frames} frames (0..{meta.frames - 1})"
        )
    return end, meta.fps


def _video_sample(
    row: AnnotationRow, root: Path, video: Path, *, landmarks: bool
) -> Sample | str:
    """A sample whose frames are a video's (`start..end`; `end` None: to the last)."""
    found = _video_range(row, video)
    if isinstance(found, str):
        return found
    end, fps = found
    folders = [video.parent / row.name, video.parent]
    landmark_path, problem = _landmarks_of(row, folders, landmarks)
    if problem:
        return problem
    return Sample(
        name=row.name,
        start=row.start,
        length=end - row.start + 1,
        labels=row.labels,
        frame_paths=[],
        landmark_path=landmark_path,
        fps=fps,
        split=row.split,
        signer=row.signer,
        root=str(root),
        video_path=video,
    )


def _manifest_sample(
    row: AnnotationRow, root: Path, *, frames: bool, landmarks: bool
) -> Sample | str:
    """The sample of a manifest row, which names its video."""
    if frames:
        return _video_sample(row, root, row.video, landmarks=landmarks)
    folders = [row.video.parent / row.name, row.video.parent]
    landmark_path, problem = _landmarks_of(row, folders, landmarks)
    if problem:
        return problem
    return _folder_sample(row, root, [], landmark_path, None)


def _index_row(
    row: AnnotationRow, root: Path, *, frames: bool, landmarks: bool
) -> Sample | str:
    """The row's sample, or what is wrong with its files."""
    if row.features is not None:
        return features_problem(row) or _folder_sample(row, root, [], None, None)
    if row.video is not None:
        return _manifest_sample(row, root, frames=frames, landmarks=landmarks)
    sample_dir = root / row.name
    problem = path_problem(sample_dir, folder=True)
    listed = list_frames(sample_dir, row.name) if frames and not problem else {}
    if frames and not listed and (video := find_video(root, row.name)) is not None:
        return _video_sample(row, root, video, landmarks=landmarks)
    if problem:
        return f"{row.source}: sample folder {sample_dir} {problem}" + _video_hint(
            row.name, root
        )
    frame_paths: list[Path] = []
    if frames:
        frame_paths, problem = _find_frames(row, sample_dir, listed)
        if problem:
            return problem
    landmark_path, problem = _landmarks_of(row, [sample_dir], landmarks)
    return problem or _folder_sample(row, root, frame_paths, landmark_path, sample_dir)


def _folder_sample(
    row: AnnotationRow,
    root: Path,
    frame_paths: list[Path],
    landmark_path: Path | None,
    sample_dir: Path | None,
) -> Sample | str:
    """A sample of frame files and/or a landmark file; its FPS from the folder's
    `<name>_properties.json` (when `sample_dir` is given and holds one)."""
    try:
        fps = read_fps(sample_dir, row.name) if sample_dir is not None else None
    except DataError as error:
        return str(error)
    if row.end is None:
        return (
            f"{row.source}: a manifest row without start and end needs its video's "
            "frames to count them; give start and end for landmark-only training"
        )
    return Sample(
        name=row.name,
        start=row.start,
        length=row.end - row.start + 1,
        labels=row.labels,
        frame_paths=frame_paths,
        landmark_path=landmark_path,
        fps=fps,
        split=row.split,
        signer=row.signer,
        root=str(root),
        features=row.features,
    )


def find_samples(
    rows: list[AnnotationRow], root: Path, *, frames: bool, landmarks: bool
) -> tuple[list[Sample], list[str]]:
    """Find every row's frames and/or landmark file.

    Returns:
        The samples of the rows whose files were found, and a problem line
        (`file:line: ...`) for each other row.
    """
    found = [_index_row(row, root, frames=frames, landmarks=landmarks) for row in rows]
    samples = [item for item in found if isinstance(item, Sample)]
    return samples, [item for item in found if isinstance(item, str)]


def _raise_all(problems: list[str]) -> None:
    """Raise one `DataError` listing the problems (the first `MAX_REPORTED`)."""
    if problems:
        more = len(problems) - MAX_REPORTED
        tail = [f"... and {more} more"] if more > 0 else []
        raise DataError("\n".join(problems[:MAX_REPORTED] + tail))


def index_samples(
    rows: list[AnnotationRow], root: Path, *, frames: bool, landmarks: bool
) -> list[Sample]:
    """Find every row's frames and/or landmark file; report all problems together."""
    samples, problems = find_samples(rows, root, frames=frames, landmarks=landmarks)
    _raise_all(problems)
    return samples


def index_roots(
    config: SignpipeConfig, problems: list[str] | None = None
) -> dict[str, tuple[list[AnnotationRow], list[Sample]]]:
    """Every dataset root of the config -> its annotation rows and its samples.

    Args:
        config: the validated config.
        problems: when given, rows whose files are missing or not files are left
            out of the samples and their problems appended here, not raised.

    Raises:
        DataError: for bad annotations; for missing files too, without `problems`.
    """
    general = config.general_parameters
    indexed, found = {}, []
    for root, annotation_file in zip(general.data_paths(), general.annotation_files()):
        rows = read_root_annotations(config, Path(root), annotation_file)
        samples, missing = find_samples(
            rows,
            Path(root),
            frames=config.uses_frames(),
            landmarks=config.uses_landmarks(),
        )
        indexed[root] = (rows, samples)
        found += missing
    if problems is None:
        _raise_all(found)
    else:
        problems += found
    return indexed


def resolve_num_classes(
    config: SignpipeConfig, rows: list[AnnotationRow], vocabularies=None
) -> dict:
    """Head -> class count: as configured, or `auto` from the labels of all roots
    (a sequence head: 1 + its largest id; CTC's blank is not a class); a text head's
    is its tokenizer's vocabulary.

    Args:
        config: the validated config.
        rows: the annotation rows of every root.
        vocabularies: text head -> its tokenizer's size (`len(tokenizer)`).

    Raises:
        ConfigError: a text head's `num_class` differs from its vocabulary.
        DataError: `auto` without any label, or a label out of range.
    """
    counts = {}
    kinds, modes = config.head_labels(), config.head_modes()
    for head, head_config in config.active_heads().items():
        if kinds[head] == "text":
            size = (vocabularies or {})[head]
            if head_config.num_class not in ("auto", size):
                raise ConfigError(
                    f"heads.{modes[head]}.{head}.num_class: {head_config.num_class}, "
                    f"but the head's tokenizer has {size} tokens; set it to auto"
                )
            counts[head] = size
            continue
        if head_config.num_class != "auto":
            counts[head] = head_config.num_class
            continue
        seen = [
            label
            for row in rows
            if not is_missing(row.labels[head])
            for label in (
                row.labels[head]
                if isinstance(row.labels[head], tuple)
                else (row.labels[head],)
            )
        ]
        if not seen:
            raise DataError(
                f"head {head}: num_class is 'auto' but no sample has a label"
            )
        counts[head] = max(2, max(seen) + 1)
    check_label_ranges(rows, counts)
    return counts


GLOSS_NAMES_FILE = "glosses.txt"


def value_names_file(head: str) -> str:
    """The file of a root that names a head's classes (`id value` lines), as
    `data_preprocessing.attributes` writes it: `names_<head>.txt`."""
    return f"names_{head}.txt"


def read_gloss_names(
    roots: list[str], file_name: str = GLOSS_NAMES_FILE
) -> dict[int, str]:
    """Gloss id -> word from each root's optional `glosses.txt` (`id gloss` lines),
    or class id -> name from another names file of the roots."""
    names: dict[int, str] = {}
    where: dict[int, str] = {}
    for root in roots:
        path = Path(root) / file_name
        if not exists(path):
            continue
        for number, line in enumerate(
            read_text(path, "class names file").splitlines(), 1
        ):
            parts = line.split(maxsplit=1)
            if len(parts) < 2 or not parts[0].isdigit():
                continue  # the header, blank or comment lines
            gloss_id, word = int(parts[0]), parts[1].strip()
            if names.get(gloss_id, word) != word:
                raise DataError(
                    f"{path}:{number}: gloss {gloss_id} is {word!r} here but "
                    f"{names[gloss_id]!r} at {where[gloss_id]}"
                )
            names[gloss_id] = word
            where[gloss_id] = f"{path}:{number}"
    return names


def label_names(
    config: SignpipeConfig,
    num_classes: dict[str, int],
    tokens: dict[str, list[str]] | None = None,
) -> dict[str, list[str]]:
    """Readable class names per head: a root's `names_<head>.txt` where there is
    one, else HamNoSys symbol names, gloss words where a `glosses.txt` gives them,
    the class id otherwise; a text head's are its tokenizer's tokens (`tokens`:
    text head -> its tokens in id order)."""
    hamnosys = head_class_names()
    roots = [str(root_folder(root)) for root in config.general_parameters.data_paths()]
    glosses = read_gloss_names(roots)
    names = {}
    for head, count in num_classes.items():
        if head in (tokens or {}):
            names[head] = list(tokens[head])
            continue
        known = hamnosys.get(head, [])
        if config.head_modes()[head] == "gloss":
            known = [glosses.get(i, str(i)) for i in range(count)]
        own = read_gloss_names(roots, value_names_file(head))
        if own:
            known = [own.get(i, str(i)) for i in range(count)]
        names[head] = [known[i] if i < len(known) else str(i) for i in range(count)]
    return names
