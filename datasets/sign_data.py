"""The data a config describes: dataset roots -> samples -> train/val/test split.

The split is fixed by a `split` column where the annotations have one, else
signer-independent when they name signers, else stratified by the first class
head's label (a plain shuffle when every head's label is a sequence or a sentence);
it is seeded, so training, `test.py` and every process of a run agree.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from pathlib import Path

from config.schema import SignpipeConfig
from datasets.frame_cache import FrameCache
from datasets.index import (
    Sample,
    index_samples,
    label_names,
    read_root_annotations,
    resolve_num_classes,
)
from datasets.sampling import SamplingOptions
from datasets.sign_dataset import SignDataset, decode_image
from datasets.ssvp import configured_feature_dim, load_features
from datasets.targets import load_text_targets
from datasets.transforms import (
    build_clip_transform,
    build_resize_crop,
    decode_size_hint,
)
from utils.errors import DataError
from utils.labels import is_missing


def stratified_split(
    samples: list[Sample], ratio_train: float, seed: int, stratify_head: str
) -> tuple[list[Sample], list[Sample]]:
    """A seeded train/val split, stratified by one head's label.

    Every label value keeps about `ratio_train` of its samples in training (at least
    one), so small datasets still see every class in training.
    """
    groups: dict[int, list[Sample]] = defaultdict(list)
    for sample in samples:
        groups[sample.labels.get(stratify_head, -1)].append(sample)
    rng = random.Random(seed)
    train, val = [], []
    for label in sorted(groups):
        members = groups[label]
        rng.shuffle(members)
        cut = max(1, round(ratio_train * len(members)))
        train.extend(members[:cut])
        val.extend(members[cut:])
    return train, val


def signer_split(
    samples: list[Sample], ratio_train: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """A seeded signer-independent split: no signer is in both train and val.

    Whole signers go to validation, in a seeded random order, until it holds about
    `1 - ratio_train` of the samples; at least one signer stays in training.
    """
    by_signer: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_signer[sample.signer].append(sample)
    if len(by_signer) < 2:
        raise DataError(
            "a signer-independent split needs at least 2 signers in the signer "
            f"column, found {len(by_signer)}"
        )
    signers = sorted(by_signer)
    random.Random(seed).shuffle(signers)
    wanted_val = (1.0 - ratio_train) * len(samples)
    val_signers: list[str] = []
    val_count = 0
    for signer in signers[:-1]:
        if val_count >= wanted_val:
            break
        val_signers.append(signer)
        val_count += len(by_signer[signer])
    train = [
        s for signer in signers if signer not in val_signers for s in by_signer[signer]
    ]
    val = [s for signer in val_signers for s in by_signer[signer]]
    return train, val


def plain_split(
    samples: list[Sample], ratio_train: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """A seeded train/val split without strata (at least one training sample)."""
    shuffled = list(samples)
    random.Random(seed).shuffle(shuffled)
    cut = max(1, round(ratio_train * len(shuffled)))
    return shuffled[:cut], shuffled[cut:]


def split_samples(
    samples: list[Sample], ratio_train: float, seed: int, stratify_head: str | None
) -> dict[str, list[Sample]]:
    """Train/val/test samples: fixed by a `split` column, else signer-independent when
    a `signer` column exists, else stratified by `stratify_head` (a class head; None:
    a plain seeded split)."""
    fixed: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    free = []
    for sample in samples:
        if sample.split is not None:
            fixed[sample.split].append(sample)
        else:
            free.append(sample)
    if free:
        if any(sample.signer is not None for sample in free):
            unsigned = [s.name for s in free if s.signer is None]
            if unsigned:
                raise DataError(
                    f"{len(unsigned)} samples (e.g. {unsigned[0]}) have no signer "
                    "while others have one; fill the signer column for every sample"
                )
            train, val = signer_split(free, ratio_train, seed)
        elif stratify_head is None:
            train, val = plain_split(free, ratio_train, seed)
        else:
            train, val = stratified_split(free, ratio_train, seed, stratify_head)
        fixed["train"].extend(train)
        fixed["val"].extend(val)
    if not fixed["train"] or not fixed["val"]:
        raise DataError(
            f"the split left {len(fixed['train'])} training and {len(fixed['val'])} "
            f"validation samples (of {len(samples)}); both need at least one: add "
            "samples, change ratio_train_test, or fix the split column"
        )
    return fixed


def check_evaluation_processes(samples: int, processes: int) -> None:
    """Refuse an evaluation set that leaves a process without a sample.

    Every sample is evaluated exactly once, each by one process, so every process
    needs at least one (a process without any would stall the others).

    Raises:
        DataError: naming both numbers and what to change.
    """
    if processes > samples:
        raise DataError(
            f"the validation set has {samples} samples but the run uses {processes} "
            f"processes (trainer.devices x trainer.num_nodes), and each process "
            f"evaluates at least one: use at most {samples} processes, or give "
            "validation more samples (ratio_train_test, or the split column)"
        )


def root_statistics(
    root: str, samples: list[Sample], heads: list[str] | dict[str, str]
) -> str:
    """One line per root: samples, frames, and labelled samples / classes per head
    (`heads`: head -> what its label is; a list: class heads)."""
    frames = sum(len(s.frame_paths) or s.length for s in samples)
    kinds = heads if isinstance(heads, dict) else dict.fromkeys(heads, "class")
    labelled = []
    for head, kind in kinds.items():
        values = [s.labels[head] for s in samples if not is_missing(s.labels[head])]
        if kind == "sequence":
            mean = sum(len(v) for v in values) / max(1, len(values))
            labelled.append(f"{head} {len(values)} sequences ({mean:.1f} ids avg)")
        elif kind == "text":
            labelled.append(f"{head} {len(values)} sentences")
        else:
            labelled.append(f"{head} {len(values)} ({len(set(values))} classes)")
    return (
        f"data {root}: {len(samples)} samples, {frames} frames; labelled: "
        + ", ".join(labelled)
    )


class SignData:
    """The data a config describes, read and checked when built (data errors first).

    Every dataset root's annotations and samples, the class counts and names of every
    head, the seeded train/val/test split and the frame cache; `dataset` builds the
    `SignDataset` of a split with training or evaluation transforms. Plain Python:
    `training.datamodule.SignDataModule` adds the loaders, `test.py` uses it as is.

    Args:
        config: the validated config.
    """

    def __init__(self, config: SignpipeConfig) -> None:
        self.config = config
        general = config.general_parameters
        rows, samples, self.statistics = [], [], []
        self.feature_dim = configured_feature_dim(config)
        for root, annotation_file in zip(
            general.data_paths(), general.annotation_files()
        ):
            root_rows = read_root_annotations(config, Path(root), annotation_file)
            root_samples = index_samples(
                root_rows,
                Path(root),
                frames=config.uses_frames(),
                landmarks=config.uses_landmarks(),
            )
            if root_samples and root_samples[0].features is not None:
                # One file per root, so that a wrong feature_dim fails now.
                first = root_samples[0]
                load_features(first.features, rows=first.length, dim=self.feature_dim)
            rows.extend(root_rows)
            samples.extend(root_samples)
            self.statistics.append(
                root_statistics(root, root_samples, config.head_labels())
            )
        self.text_targets = load_text_targets(config)
        tokenizers = {head: t.tokenizer for head, t in self.text_targets.items()}
        self.num_classes = resolve_num_classes(
            config, rows, {head: len(t) for head, t in tokenizers.items()}
        )
        self.label_names = label_names(
            config,
            self.num_classes,
            {
                head: t.convert_ids_to_tokens(list(range(self.num_classes[head])))
                for head, t in tokenizers.items()
            },
        )
        kinds = config.head_labels()
        splits = split_samples(
            samples,
            general.ratio_train_test,
            general.seed,
            next((head for head in self.num_classes if kinds[head] == "class"), None),
        )
        self.train_samples = splits["train"]
        if config.train_parameters.train_on_val:  # a final model, after selection
            self.train_samples = splits["train"] + splits["val"]
        self.val_samples = splits["val"]
        self.test_samples = splits["test"]
        self.cache = self._frame_cache(samples) if general.frame_cache else None
        # Building the datasets checks sampling and transforms before any training.
        self.dataset(self.train_samples, train=True)
        self.dataset(self.val_samples, train=False)

    def _frame_cache(self, samples: list[Sample]) -> FrameCache:
        augmentations = self.config.augmentations_parameters
        return FrameCache.build_or_open(
            [sample for sample in samples if sample.has_frames],
            Path(self.config.general_parameters.frame_cache_dir).expanduser(),
            resize=augmentations.resize_size,
            size=augmentations.center_crop_size,
            transform=build_resize_crop(augmentations),
            decode=decode_image,
        )

    def dataset(self, samples: list[Sample], *, train: bool) -> SignDataset:
        """The dataset over `samples`, with train or evaluation transforms."""
        config = self.config
        augmentations = config.augmentations_parameters
        return SignDataset(
            samples=samples,
            sampling=SamplingOptions(
                num_segments=config.train_parameters.num_segments,
                time=config.train_parameters.time,
                default_fps=config.train_parameters.default_fps,
            ),
            train=train,
            transform=build_clip_transform(
                augmentations, train=train, resized=self.cache is not None
            ),
            landmarks=config.landmarks_parameters if config.uses_landmarks() else None,
            size_hint=decode_size_hint(augmentations),
            seed=config.general_parameters.seed,
            cache=self.cache,
            text_targets=self.text_targets,
            feature_dim=self.feature_dim,
        )

    def describe(self) -> str:
        """A short summary of the data: per-root statistics and the split."""
        heads = ", ".join(f"{h}={n}" for h, n in self.num_classes.items())
        counts = Counter(
            {
                "train": len(self.train_samples),
                "val": len(self.val_samples),
                "test": len(self.test_samples),
            }
        )
        split = " / ".join(f"{count} {name}" for name, count in counts.items() if count)
        if self.config.train_parameters.train_on_val:
            split += " (train_on_val: the val clips are trained on too)"
        return "\n".join(
            [*self.statistics, f"split: {split}; classes per head: {heads}"]
        )
