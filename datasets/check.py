"""`train.py --check_data`: decode every frame, video, landmark and feature file of
the configured dataset once, in parallel, and list every bad file with its reason.

Indexing already reports missing, empty and non-regular files, and videos whose
container cannot be opened or lists too few frames; this pass finds what only
decoding shows (a truncated JPEG, a 32-bit TIFF, a decompression bomb, a video whose
data is corrupt or ends early, a landmark file cut short or with a bad `fps`, a
feature file of another width or row count), so a corrupt file is not met hours
into a run.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from functools import partial

from tqdm import tqdm

from config.schema import SignpipeConfig
from datasets.images import decode_image
from datasets.index import Sample, index_roots, resolve_num_classes
from datasets.targets import load_text_targets
from datasets.landmarks import read_landmarks, require_rows
from datasets.ssvp import configured_feature_dim, load_features
from datasets.videos import frame_table, read_all_frames
from utils.errors import DataError


def check_sample(
    sample: Sample, components: list[str], feature_dim: int | None = None
) -> list[str]:
    """Decode one sample's frames and landmark file (or its feature file).

    Args:
        sample: the clip.
        components: the landmark components to read (empty without landmarks).
        feature_dim: the configured width of feature rows, or None.

    Returns:
        One `path: reason` line per bad file; empty when all are good.
    """
    problems = []
    if sample.video_path is not None:
        problems += check_video(sample)
    first: tuple[str, tuple[int, ...]] | None = None
    for path in sample.frame_paths:
        try:
            shape = decode_image(path, None).shape
        except DataError as error:
            problems.append(str(error))
            continue
        if first is None:
            first = (str(path), shape)
        elif shape != first[1]:
            problems.append(
                f"{path}: {shape[1]}x{shape[0]} pixels, but {first[0]} is "
                f"{first[1][1]}x{first[1][0]} (the frames of a clip share one size)"
            )
    if sample.landmark_path is not None:
        try:
            points, _, _ = read_landmarks(sample.landmark_path, components)
            require_rows(sample.landmark_path, points, sample.start + sample.length)
        except DataError as error:
            problems.append(str(error))
    if sample.features is not None:
        try:
            load_features(sample.features, rows=sample.length, dim=feature_dim)
        except DataError as error:
            problems.append(str(error))
    return problems


def check_video(sample: Sample) -> list[str]:
    """Decode a video sample's frames up to its last, in one pass, and read the frame
    table seeking uses; the problem (naming the file) if any."""
    try:
        table = frame_table(sample.video_path)
        needed = sample.start + sample.length
        if table.frames < needed:
            return [
                f"{sample.video_path}: {table.frames} frames, but the sample "
                f"{sample.name} needs frames {sample.start}..{needed - 1}"
            ]
        for _ in read_all_frames(sample.video_path, 0, needed):
            pass
    except DataError as error:
        return [str(error)]
    return []


def _collect(results, total: int) -> list[str]:
    progress = tqdm(results, total=total, desc="checking data", unit="clip")
    return [problem for problems in progress for problem in problems]


def find_bad_files(
    samples: list[Sample],
    components: list[str],
    workers: int,
    feature_dim: int | None = None,
) -> list[str]:
    """`check_sample` over all samples, in `workers` processes (0: in this one),
    with a progress bar; the problems in sample order."""
    check = partial(check_sample, components=components, feature_dim=feature_dim)
    if not workers:
        return _collect(map(check, samples), len(samples))
    chunk = max(1, len(samples) // (8 * workers))
    with ProcessPoolExecutor(workers) as executor:
        return _collect(executor.map(check, samples, chunksize=chunk), len(samples))


def check_data(config: SignpipeConfig) -> int:
    """Index the dataset, check its labels, decode every file; print a summary.

    Returns:
        0 when every file is good.

    Raises:
        DataError: listing every missing or bad file with its reason.
    """
    problems: list[str] = []
    indexed = index_roots(config, problems)
    vocabularies = {
        head: len(target.tokenizer)
        for head, target in load_text_targets(config).items()
    }
    resolve_num_classes(
        config, [row for rows, _ in indexed.values() for row in rows], vocabularies
    )
    samples = [sample for _, samples in indexed.values() for sample in samples]
    components = (
        list(config.landmarks_parameters.components) if config.uses_landmarks() else []
    )
    problems += find_bad_files(
        samples,
        components,
        config.general_parameters.workers,
        configured_feature_dim(config),
    )
    files = sum(
        len(s.frame_paths)
        + (s.video_path is not None)
        + (s.landmark_path is not None)
        + (s.features is not None)
        for s in samples
    )
    if problems:
        raise DataError(
            f"--check_data: {len(problems)} problem"
            + ("s" if len(problems) > 1 else "")
            + " in the data:\n"
            + "\n".join(problems)
        )
    roots = f"{len(indexed)} data root" + ("s" if len(indexed) > 1 else "")
    print(
        f"check_data: all {files} files of {len(samples)} samples in {roots} are good"
    )
    return 0
