"""A trained checkpoint evaluated on the data its config describes (`test.py`).

`Evaluator` rebuilds the model from the checkpoint and the data (the same seeded
split as training, evaluation transforms) from its config, evaluates a set exactly
once per sample, and the writers put the results JSON and the plots beside the run.
"""

from __future__ import annotations

import json
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from config.loader import check_data_paths, with_changes
from datasets.sign_data import SignData
from datasets.sign_dataset import collate_clips, worker_init_fn
from evaluation.checkpoints import (
    load_checkpoint,
    refuse_sequence_heads,
    resolve_checkpoint,
    sequence_heads,
)
from evaluation.ensemble import AveragedModel, check_members
from evaluation.metrics import (
    CompRes,
    HeadPredictions,
    ShuffledCollate,
    check_label_range,
    collect_predictions,
    evaluate_predictions,
    final_metrics,
    format_table,
    make_permutation,
)
from evaluation.plots import PLOT_KINDS, save_head_plots
from evaluation.sequence_results import (
    SequenceHead,
    SequencePredictions,
    write_hypotheses,
)
from models.zoo import ZOO_DIR
from utils.errors import ConfigError, DataError, UserError
from utils.files import write_output

SETS = ("train", "val", "test")


def run_dir(checkpoint: Path) -> Path:
    """The run directory of a checkpoint: the parent of its `checkpoints/` folder;
    for a model of the zoo, `runs/zoo/<name>` (nothing is written into the zoo)."""
    checkpoint = resolve_checkpoint(checkpoint)
    if checkpoint.resolve().parent == ZOO_DIR:
        return Path("runs") / "zoo" / checkpoint.stem
    parent = checkpoint.resolve().parent
    return parent.parent if parent.name == "checkpoints" else parent


def results_dir(checkpoint: Path, output_dir: str | None) -> Path:
    """Where results are written: `--output_dir`, else `<run>/results/`."""
    return Path(output_dir) if output_dir else run_dir(checkpoint) / "results"


def safe_name(text: str) -> str:
    """`text` fit for a file name."""
    return re.sub(r"[^\w.+-]", "_", text)


def read_training_record(checkpoint: Path, loaded, heads: dict[str, str]) -> dict:
    """The best validation loss and accuracy of the run that wrote `checkpoint`.

    They come from the checkpoint itself (`val_metrics`: the validation metrics of
    the epoch it was saved after; for `best.ckpt` the best epoch's). Checkpoints
    written before it kept them fall back on the ModelCheckpoint callback's
    `best_model_score` (it monitors `val/loss`) and `<run>/metrics.json`.

    Args:
        checkpoint: the checkpoint file.
        loaded: its `evaluation.checkpoints.LoadedModel`.
        heads: head -> its classification mode (for the mean top-1 per mode).
    """
    record: dict = {"loss": None, "acc": None, "mean_top1": None, "notes": []}
    if loaded.val_metrics:
        names = loaded.model.heads.metric_names()
        metrics = final_metrics(loaded.val_metrics, heads, names)
        record["loss"] = metrics["val_loss"]
        record["acc"] = {
            head: values.get("top1") for head, values in metrics["heads"].items()
        }
        record["mean_top1"] = metrics["mean_top1"]
        return record
    record["loss"] = loaded.best_val_loss
    metrics_path = run_dir(checkpoint) / "metrics.json"
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record["notes"].append(
            "the checkpoint holds no validation metrics and there is no readable "
            f"{metrics_path}: the best validation accuracy is unknown"
        )
        return record
    if record["loss"] is None:
        record["loss"] = metrics.get("val_loss")
    record["acc"] = {
        head: values.get("top1") for head, values in metrics.get("heads", {}).items()
    }
    record["mean_top1"] = metrics.get("mean_top1")
    return record


def note_train_on_val(name: str, config) -> None:
    """Say so when a checkpoint trained on its val clips (`train_on_val`)."""
    if config.train_parameters.train_on_val:
        print(
            f"note: {name} trained on the val clips too (train_on_val): its val "
            "figures are not a held-out result",
            file=sys.stderr,
        )


class Evaluator:  # pylint: disable=too-many-instance-attributes
    """A checkpoint's model and the data its config describes, ready to evaluate.

    Args:
        checkpoint: the checkpoint file.
        data_path: dataset roots replacing the config's `data_path`, or None.
        batch_size: the evaluation batch size, or None for the config's.
        ensemble: more checkpoints (other seeds or epochs of the same model's data,
            heads and classes) whose class probabilities are averaged with the
            first's; the data comes from the first's config.
        mirror: also average each clip's horizontal mirror (test-time augmentation).
    """

    def __init__(  # pylint: disable=too-many-arguments
        self,
        checkpoint: Path,
        data_path: list[str] | None = None,
        batch_size: int | None = None,
        *,
        ensemble: list[Path] | None = None,
        mirror: bool = False,
    ) -> None:
        self.checkpoint = resolve_checkpoint(checkpoint)
        # The checkpoint alone rebuilds the model (no starting-weights file needed).
        loaded = load_checkpoint(checkpoint, torch.device("cpu"))
        if loaded.config.train_parameters.pre_training:
            raise UserError(
                f"{checkpoint}: a pretraining checkpoint has no trained heads to "
                "evaluate; fine-tune it first (train.py --checkpoint), or export its "
                "embeddings with predict.py"
            )
        self.loaded = loaded
        self.model = loaded.model
        self.label_names = loaded.label_names
        self.num_classes = {
            head: len(names) for head, names in self.label_names.items()
        }
        self.config = loaded.config
        if data_path:
            roots = data_path[0] if len(data_path) == 1 else list(data_path)
            try:
                self.config = with_changes(
                    loaded.config,
                    {"general_parameters.data_path": roots},
                    f"{checkpoint} (its config)",
                )
            except ConfigError as error:  # one line: the problems joined
                raise ConfigError("; ".join(str(error).splitlines())) from None
        self.loss_weights = self.config.loss_weights()
        try:
            check_data_paths(self.config)
        except ConfigError as error:
            if data_path:
                raise
            raise ConfigError(
                f"{error}; pass --data_path to point at the checkpoint's data"
            ) from None
        self.data = SignData(self.config)
        self.batch_size = batch_size or self.config.train_parameters.batch_size
        gpu = self.config.general_parameters.gpu
        if 0 <= gpu < torch.cuda.device_count():
            self.device = torch.device("cuda", gpu)
        else:
            if gpu >= 0:
                print(
                    f"note: CUDA device {gpu} is not available; evaluating on the CPU",
                    file=sys.stderr,
                )
            self.device = torch.device("cpu")
        self.model.to(self.device)
        note_train_on_val(str(self.checkpoint), self.config)
        members = [self.checkpoint] + [resolve_checkpoint(p) for p in ensemble or []]
        #: With an ensemble or the mirror, what `evaluate` averages (see EvalRes).
        self.averaged = None
        if len(members) > 1 or mirror:
            refuse_sequence_heads(
                self.config,
                self.checkpoint,
                "average (--ensemble, --mirror); evaluate the checkpoint alone",
            )
            self.averaged = {"checkpoints": [str(p) for p in members], "mirror": mirror}
        labels = self.config.head_labels()
        #: The sequence heads, whose decoded outputs `evaluate` scores.
        self.sequences = {
            head: SequenceHead(self.model.heads.kinds[head], kind, labels[head])
            for head, kind in sequence_heads(self.config).items()
        }
        self.predictor = self._predictor(members, mirror, roots_override=data_path)
        #: `result_tag` -> the names of the samples evaluated, in order.
        self.sample_names: dict[str, list[str]] = {}

    def _predictor(
        self, members: list[Path], mirror: bool, roots_override: list[str] | None
    ):
        """The model `evaluate` runs: the checkpoint's own, or the average over the
        ensemble `members` (the first is the checkpoint's) and the mirrored clips."""
        if self.averaged is None:
            return self.model
        configs, labels, models = [self.config], [self.label_names], [self.model]
        for path in members[1:]:
            member = load_checkpoint(path, self.device)
            refuse_sequence_heads(
                member.config,
                path,
                "average (--ensemble, --mirror); evaluate each checkpoint alone",
            )
            configs.append(member.config)
            labels.append(member.label_names)
            models.append(member.model)
        names = [str(path) for path in members]
        check_members(names, configs, labels)
        for name, config in zip(names[1:], configs[1:]):
            self._check_same_split(name, config, roots_override)
        for name, config in zip(names[1:], configs[1:]):
            note_train_on_val(name, config)
        averaged = AveragedModel(models, configs, mirror=mirror)
        print(
            f"note: averaging the class probabilities of {len(models)} "
            f"checkpoint(s){' and their mirrors' if mirror else ''}: "
            f"{averaged.views} forward passes per clip",
            file=sys.stderr,
        )
        for model in models:
            model.to(self.device).eval()
        return averaged

    def _check_same_split(
        self, name: str, config, roots_override: list[str] | None
    ) -> None:
        """Refuse a member whose own split of the data (its seed, ratio or roots)
        puts other clips in val or test than the first checkpoint's: it may have
        trained on the clips evaluated."""
        general, mine = config.general_parameters, self.config.general_parameters
        if (
            general.seed == mine.seed
            and general.ratio_train_test == mine.ratio_train_test
            and general.annotation_file == mine.annotation_file
            and (roots_override or general.data_paths() == mine.data_paths())
        ):
            return
        member_config = with_changes(
            config,
            {"general_parameters.data_path": mine.data_path},
            f"{name} (its config)",
        )
        theirs = SignData(member_config)
        for set_name in ("val", "test"):
            own = {sample.name for sample in self.samples(set_name)}
            other = {sample.name for sample in getattr(theirs, f"{set_name}_samples")}
            if own != other:
                raise UserError(
                    f"{name} splits the data otherwise than {self.checkpoint} "
                    f"(its {set_name} set differs by {len(own ^ other)} clips): it may "
                    "have trained on the clips evaluated; ensemble members must share "
                    "the split (a split column, or the same seed and ratio_train_test)"
                )

    def samples(self, set_name: str) -> list:
        """The samples of a set (train, val or test); may be empty for test."""
        if set_name not in SETS:
            raise UserError(
                f"unknown set '{set_name}': choose one of {', '.join(SETS)}"
            )
        return getattr(self.data, f"{set_name}_samples")

    def require_samples(self, set_name: str) -> list:
        """The samples of a set; `DataError` when it is empty."""
        samples = self.samples(set_name)
        if not samples:
            raise DataError(
                f"the {set_name} set is empty: the annotation files of "
                f"{', '.join(self.config.general_parameters.data_paths())} have no "
                f"rows with split '{set_name}'; add a 'split' column (train, val or "
                "test per row) to define a test set, or evaluate 'val'"
            )
        return samples

    def permutation(self) -> list[int]:
        """The frame permutation of `--shuffle_frames` (seeded by the config seed)."""
        return make_permutation(
            self.config.train_parameters.num_segments,
            self.config.general_parameters.seed,
        )

    def evaluate(self, set_name: str, shuffle: bool = False):
        """Evaluate one set; an `EvalRes` with every head's metrics."""
        samples = self.require_samples(set_name)
        perm = self.permutation() if shuffle else None
        workers = self.config.general_parameters.workers
        loader = DataLoader(
            self.data.dataset(samples, train=False),
            batch_size=self.batch_size,
            shuffle=False,
            drop_last=False,
            num_workers=workers,
            collate_fn=ShuffledCollate(perm) if shuffle else collate_clips,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=worker_init_fn if workers > 0 else None,
        )
        label = f"{set_name}{' (shuffled frames)' if shuffle else ''}"
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            batches = tqdm(loader, desc=label, unit="batch", file=sys.stderr)
            predictions = collect_predictions(
                self.predictor,
                batches,
                self.device,
                expected=len(samples),
                sequences=self.sequences,
            )
        problem = check_label_range(predictions, self.num_classes)
        if problem:
            raise DataError(problem)
        result = evaluate_predictions(
            predictions,
            self.loss_weights,
            set_name=set_name,
            checkpoint=str(self.checkpoint),
            perm=perm,
            signers=[sample.signer for sample in samples],
            label_names=self.label_names,
        )
        result.averaged = self.averaged
        self.sample_names[result_tag(result)] = [sample.name for sample in samples]
        return result


def write_json(data: dict, path: Path) -> Path:
    """Write `data` as indented JSON (atomically), creating the folder."""
    text = (json.dumps(data, indent=2) + "\n").encode("utf-8")
    write_output(path, lambda file: file.write(text))
    return path


def result_tag(result) -> str:
    """`<set>` or `<set>_shuffled`: the part of the file names naming the run."""
    return f"{result.set}_shuffled" if result.perm is not None else result.set


def save_plots(
    evaluator: Evaluator, result, directory: Path, kinds: list[str]
) -> list[Path]:
    """Draw the chosen plots of every head of a set's results."""
    prefix = f"{safe_name(evaluator.checkpoint.stem)}_{result_tag(result)}"
    written = []
    for head, predictions in result.predictions.items():
        if not isinstance(predictions, HeadPredictions):
            continue  # a sequence head: its hypotheses are its record
        title = f"{evaluator.checkpoint.name}, {result_tag(result)}, {head}"
        try:
            written += save_head_plots(
                predictions,
                evaluator.label_names.get(head, []),
                kinds,
                directory / f"{prefix}-{safe_name(head)}",
                title,
            )
        except OSError as error:
            raise UserError(
                f"{directory}: cannot write the plots ({error.strerror})"
            ) from None
    return written


def save_hypotheses(evaluator: Evaluator, result, directory: Path) -> list[Path]:
    """Write `<stem>_<set>-<head>-hypotheses.tsv` for every sequence head of a
    set's results (`name`, `hypothesis`, `reference`; class ids as names)."""
    prefix = f"{safe_name(evaluator.checkpoint.stem)}_{result_tag(result)}"
    written = []
    for head, predictions in result.predictions.items():
        if not isinstance(predictions, SequencePredictions):
            continue
        path = directory / f"{prefix}-{safe_name(head)}-hypotheses.tsv"
        write_hypotheses(
            predictions,
            evaluator.label_names.get(head, []),
            evaluator.sample_names[result_tag(result)],
            path,
        )
        written.append(path)
    return written


def save_partial(
    evaluator: Evaluator, result, directory: Path, kinds: list[str]
) -> list[Path]:
    """Write a set's results JSON and the chosen plots of every head."""
    prefix = f"{safe_name(evaluator.checkpoint.stem)}_{result_tag(result)}"
    written = [write_json(result.to_dict(), directory / f"{prefix}-results.json")]
    written += save_hypotheses(evaluator, result, directory)
    return written + save_plots(evaluator, result, directory, kinds)


@dataclass(frozen=True)
class EvaluationOptions:
    """What `test.py` asks of both its commands.

    Attributes:
        checkpoint: the checkpoint file (or a model zoo name).
        data_path: dataset roots replacing the checkpoint's `data_path`, or None.
        batch_size: the evaluation batch size, or None for the checkpoint's.
        save: write the results to `<run>/results/` (or `output_dir`).
        output_dir: where to write the results instead (implies `save`).
        ensemble: more checkpoints averaged with `checkpoint` (see `Evaluator`).
        mirror: also average each clip's horizontal mirror.
    """

    checkpoint: Path
    data_path: list[str] | None = None
    batch_size: int | None = None
    save: bool = False
    output_dir: str | None = None
    ensemble: tuple[Path, ...] = ()
    mirror: bool = False

    def evaluator(self) -> Evaluator:
        """The `Evaluator` these options describe."""
        return Evaluator(
            self.checkpoint,
            self.data_path,
            self.batch_size,
            ensemble=list(self.ensemble),
            mirror=self.mirror,
        )

    def directory(self) -> Path | None:
        """Where the results are written; None when they are not."""
        if not (self.save or self.output_dir):
            return None
        return results_dir(self.checkpoint, self.output_dir)


def run_partial(
    options: EvaluationOptions,
    set_name: str,
    *,
    shuffle_frames: bool = False,
    plots: tuple[str, ...] = (),
) -> int:
    """`test.py partial`: evaluate one set; the JSON on stdout, a table on stderr.

    Args:
        options: the checkpoint, data and where the results go.
        set_name: train, val or test.
        shuffle_frames: permute every clip's frames with one seeded permutation.
        plots: the `PLOT_KINDS` to draw (all of them when saving without any).
    """
    if set_name not in SETS:
        raise UserError(f"unknown set '{set_name}': choose one of {', '.join(SETS)}")
    evaluator = options.evaluator()
    result = evaluator.evaluate(set_name, shuffle=shuffle_frames)
    print(format_table(result), file=sys.stderr)
    kinds = [kind for kind in PLOT_KINDS if kind in plots]
    directory = options.directory()
    if directory is not None:
        for path in save_partial(evaluator, result, directory, kinds or PLOT_KINDS):
            print(f"wrote {path}", file=sys.stderr)
    elif kinds:
        print("note: plots are written with --save or --output_dir", file=sys.stderr)
    print(json.dumps(result.to_dict(), indent=2))
    return 0


def full_results(
    checkpoint: Path,
    data_path: list[str] | None = None,
    batch_size: int | None = None,
    directory: Path | None = None,
    *,
    ensemble: list[Path] | None = None,
    mirror: bool = False,
) -> tuple[Evaluator, CompRes]:
    """`test.py full`'s evaluation: test (or val), val, shuffled test and the
    training record; with `directory`, the JSON and the test set's plots go there.

    Returns:
        The evaluator (its `loaded` checkpoint) and the bundle of results.
    """
    evaluator = Evaluator(
        checkpoint, data_path, batch_size, ensemble=ensemble, mirror=mirror
    )
    notes = []
    test_set = "test"
    if not evaluator.samples("test"):
        test_set = "val"
        notes.append(
            "the data has no test split (no 'split' column with test rows): "
            "'test' and 'test_shuffled' are evaluated on the val set"
        )
        print(f"note: {notes[-1]}", file=sys.stderr)
    val = evaluator.evaluate("val")
    test = val if test_set == "val" else evaluator.evaluate("test")
    shuffled = evaluator.evaluate(test_set, shuffle=True)
    record = read_training_record(
        checkpoint, evaluator.loaded, evaluator.config.head_modes()
    )
    notes += record["notes"]
    bundle = CompRes(
        checkpoint=str(checkpoint),
        test_set=test_set,
        test=test,
        val=val,
        test_shuffled=shuffled,
        best_val_loss=record["loss"],
        best_val_acc=record["acc"],
        best_val_mean_top1=record["mean_top1"],
        notes=notes,
    )
    for result in ([test] if test_set == "test" else []) + [val, shuffled]:
        print(format_table(result), file=sys.stderr)
    if directory is not None:
        name = f"{safe_name(checkpoint.stem)}_full-results.json"
        written = [write_json(bundle.to_dict(), directory / name)]
        for result in ([test] if test_set == "test" else []) + [val, shuffled]:
            written += save_hypotheses(evaluator, result, directory)
        written += save_plots(evaluator, test, directory, list(PLOT_KINDS))
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
    return evaluator, bundle


def run_full(options: EvaluationOptions) -> int:
    """`test.py full`: test (or val), val, shuffled test and the training record."""
    _, bundle = full_results(
        options.checkpoint,
        options.data_path,
        options.batch_size,
        options.directory(),
        ensemble=list(options.ensemble),
        mirror=options.mirror,
    )
    print(json.dumps(bundle.to_dict(), indent=2))
    return 0
