"""One training run: output folder, loggers, callbacks, Trainer, fit, results.

`train.py` parses the command line and calls `run_training`; everything a run writes
goes to the run directory (`general_parameters.path_to_save`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import (
    EMAWeightAveraging,
    LearningRateMonitor,
    ModelCheckpoint,
)
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from config.loader import config_from_checkpoint, config_to_dict
from config.schema import SignpipeConfig
from evaluation.metrics import final_metrics
from models.feature_extractors.cnn import FrameFeatureExtractor
from models.feature_extractors.video import VideoFeatureExtractor
from models.pipeline import SignPipeline, unused_model_settings
from training.callbacks import (
    AtomicCheckpointIO,
    EpochSummary,
    FreezeUntilConvergence,
    LastCheckpoint,
    writes_to_terminal,
)
from training.datamodule import SignDataModule, check_evaluation_processes
from training.loggers import ContinuingCSVLogger
from training.pretraining import PretrainingModule
from training.recognition import SignRecognitionModule
from training.run_folder import earlier_run_note, prepare_output_dir, run_folder_lock
from training.transfer import describe_transfer, load_matching_weights
from utils.errors import ConfigError, UserError
from utils.files import load_data_only, write_atomically

# Sections whose change makes an old checkpoint's weights or schedules not fit.
MODEL_SECTIONS = ("feature_extractor", "transformer", "heads", "landmarks_parameters")
#: The exit status of a run stopped by SIGTERM (128 + 15, as the shell reports it).
SIGTERM_EXIT = 128 + int(signal.SIGTERM)


@dataclass
class RunOptions:
    """Choices that are not part of the config.

    Attributes:
        resume: continue from `<run>/checkpoints/last.ckpt`.
        callbacks: more Lightning callbacks for the run (a sweep's pruning hook).
    """

    resume: bool = False
    callbacks: list = field(default_factory=list)


def _latest_version(folder: Path) -> int | None:
    versions = [
        int(path.name.removeprefix("version_"))
        for path in folder.glob("version_*")
        if path.name.removeprefix("version_").isdigit()
    ]
    return max(versions, default=None)


def build_loggers(config: SignpipeConfig, save_dir: Path, resume: bool) -> list:
    """CSV and TensorBoard always (continuing the last version on resume); Neptune
    when asked for."""
    csv_version = _latest_version(save_dir / "logs") if resume else None
    tb_version = _latest_version(save_dir / "tensorboard") if resume else None
    loggers = [
        ContinuingCSVLogger(save_dir, name="logs", version=csv_version),
        TensorBoardLogger(
            save_dir, name="tensorboard", version=tb_version, default_hp_metric=False
        ),
    ]
    if config.general_parameters.neptune:
        # neptune is slow to import.
        # pylint: disable-next=import-outside-toplevel
        from training.neptune_logger import NeptuneLogger

        loggers.append(NeptuneLogger(data_directory=save_dir))
    return loggers


def trainer_device_args(config: SignpipeConfig) -> dict:
    """accelerator/devices/num_nodes/strategy/precision for Lightning's Trainer."""
    gpu = config.general_parameters.gpu
    section = config.trainer
    if gpu >= 0:
        if not torch.cuda.is_available() or gpu >= torch.cuda.device_count():
            raise ConfigError(
                f"general_parameters.gpu: CUDA device {gpu} is not available on this "
                f"machine ({torch.cuda.device_count()} found); use -1 for the CPU"
            )
        accelerator = "gpu"
        devices = section.devices
        if devices is None or str(devices) == "1":  # one GPU: the one `gpu` names
            devices = [gpu]
        elif gpu > 0 and isinstance(devices, int):
            raise ConfigError(
                f"trainer.devices: {devices} means the first {devices} GPUs "
                f"(0..{devices - 1}), but general_parameters.gpu is {gpu}; list the "
                f"GPUs instead, e.g. trainer.devices: {list(range(gpu, gpu + devices))}"
            )
    else:
        accelerator = "cpu"
        devices = section.devices if section.devices is not None else 1
    return {
        "accelerator": accelerator,
        "devices": devices,
        "num_nodes": section.num_nodes,
        "strategy": section.strategy,
        "precision": section.precision,
    }


def write_run_file(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write a file of the run atomically (see `utils.files.write_atomically`).

    Raises:
        UserError: naming the file when the write fails (a full disk); the run's
            checkpoints are complete then.
    """
    try:
        write_atomically(path, write)
    except OSError as error:
        raise UserError(
            f"cannot write {path} ({error.strerror or error}); the checkpoints of "
            "the run are complete"
        ) from None


def check_resumable(path: Path, config: SignpipeConfig, num_classes: dict) -> None:
    """Refuse to resume from a checkpoint of a different model, naming what differs.

    Both configs are compared resolved (`config_to_dict`), so a checkpoint that
    saved fewer or more keys of the same model (an older layout) still resumes.
    """
    if not os.path.lexists(path):
        raise ConfigError(f"--resume: no checkpoint to resume from at {path}")
    checkpoint = load_data_only(path, "--resume")
    saved = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(saved, dict):
        raise ConfigError(f"--resume: cannot read {path} (not a signpipe checkpoint)")
    trained = config_to_dict(
        config_from_checkpoint(saved.get("config"), f"--resume: {path}")
    )
    current = config_to_dict(config)
    differs = [
        section for section in MODEL_SECTIONS if trained[section] != current[section]
    ]
    if saved.get("num_classes") != num_classes:
        differs.append("class counts of the data")
    if differs:
        raise ConfigError(
            f"--resume: {path} was trained with a different {', '.join(differs)}; "
            "resume with the config it was trained with, or start a new "
            "path_to_save (or use --checkpoint to start from its weights)"
        )


def _callbacks(
    config: SignpipeConfig, save_dir: Path
) -> tuple[list, ModelCheckpoint, LastCheckpoint]:
    # A model trained on train+val has no held-out split to select on: best.ckpt
    # is then the last epoch's weights (monitor None keeps the latest).
    monitor = None if config.train_parameters.train_on_val else "val/loss"
    best = ModelCheckpoint(
        dirpath=save_dir / "checkpoints",
        filename="best",
        monitor=monitor,
        mode="min",
        save_last=False,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    last = LastCheckpoint(
        save_dir / "checkpoints" / "last.ckpt",
        config.train_parameters.checkpoint_every_n_steps,
    )
    callbacks = [
        best,
        last,
        LearningRateMonitor(logging_interval="step"),
        EpochSummary(),
    ]
    if config.train_parameters.ema_decay is not None:
        # Validation, checkpoints and the final weights use the averaged weights.
        # Before `last`: hooks run in list order, and a step's save must hold that
        # step's update of the average, or --resume loses it.
        callbacks.insert(1, EMAWeightAveraging(decay=config.train_parameters.ema_decay))
    transfer = config.transfer
    if transfer.freeze_parts:
        callbacks.append(
            FreezeUntilConvergence(
                parts=transfer.freeze_parts,
                patience=transfer.patience,
                lr_after_unfreeze=transfer.lr_after_unfreeze,
                keep_frozen=transfer.keep_frozen,
                until_convergence=transfer.freeze_until_convergence,
            )
        )
    return callbacks, best, last


def _build_module(config: SignpipeConfig, datamodule: SignDataModule):
    kind = (
        PretrainingModule
        if config.train_parameters.pre_training
        else SignRecognitionModule
    )
    module = kind.from_config(
        config, datamodule.data.num_classes, datamodule.data.label_names
    )
    for part in config.transfer.freeze_parts:
        module.model.submodule(part, "transfer.freeze_parts")  # fails before training
    if config.transfer.checkpoint:
        report = load_matching_weights(module, config.transfer.checkpoint)
        print(describe_transfer(report))
    module.model.prepare_for_training(
        channels_last=config.trainer.channels_last,
        compile_model=config.trainer.compile,
    )
    return module


def _validate_best(module, datamodule, best_path: str, device_args: dict) -> dict:
    # A fresh trainer without loggers: the run's loggers are finalized by now.
    evaluator = L.Trainer(
        logger=False,
        plugins=[AtomicCheckpointIO()],  # reads best.ckpt as data only
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        **device_args,
    )
    evaluator.validate(
        module, datamodule=datamodule, ckpt_path=best_path, verbose=False
    )
    if evaluator.received_sigterm:  # Lightning lets the last batch's SIGTERM pass
        raise SystemExit(SIGTERM_EXIT)
    return evaluator.callback_metrics


def _make_trainer(**kwargs) -> L.Trainer:
    """Lightning's Trainer; what it rejects in `trainer` is a config error."""
    try:
        return L.Trainer(**kwargs)
    except (ValueError, MisconfigurationException) as error:
        raise ConfigError(
            f"trainer: Lightning rejects devices={kwargs.get('devices')!r}, "
            f"strategy={kwargs.get('strategy')!r}, "
            f"precision={kwargs.get('precision')!r}: {error}"
        ) from None


def _warn_random_weights(model: SignPipeline) -> None:
    """Name every image or video backbone built without weights from a file."""
    for part in model.feature_extractor.modules():
        if (
            isinstance(part, (FrameFeatureExtractor, VideoFeatureExtractor))
            and not part.pretrained
        ):
            print(
                "warning: feature_extractor.pretrained_path is not set: "
                f"{part.backbone_name} starts from random weights (weights come "
                "only from local files)",
                file=sys.stderr,
            )


def run_training(config: SignpipeConfig, options: RunOptions) -> int:
    """Build data and model, fit, and write checkpoints, metrics.json and weights."""
    for note in config.unused_settings() + unused_model_settings(config):
        print(f"note: {note}", file=sys.stderr)
    L.seed_everything(config.general_parameters.seed, workers=True, verbose=False)
    datamodule = SignDataModule(config)
    print(datamodule.describe())
    module = _build_module(config, datamodule)
    if not config.transfer.checkpoint:
        _warn_random_weights(module.model)
    device_args = trainer_device_args(config)
    general = config.general_parameters
    with run_folder_lock(general.run_dir(), general.weights_file()):
        return _fit(config, options, datamodule, module, device_args)


class _DropLightningTip(logging.Filter):
    """Drops Lightning's advertisement of its cloud logger ("💡 Tip: ...")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def _drop_lightning_tip() -> None:
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropLightningTip) for f in logger.filters):
        logger.addFilter(_DropLightningTip())


def _quiet_third_party_noise(resume: bool) -> None:
    """Silences the warnings of Lightning and torch that a run cannot act on (inside
    a `warnings.catch_warnings()` block)."""
    # Few loader workers is a choice here (general_parameters.workers).
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    # Lightning 2.6 calls a pytree API that newer torch deprecates.
    warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\).*")
    # The final validation reads best.ckpt's weights only; its callbacks are moot.
    warnings.filterwarnings("ignore", ".*callbacks used to create the checkpoint.*")
    if resume:  # the run's own checkpoints are there by design
        warnings.filterwarnings("ignore", ".*exists and is not empty.*")


def _fit(config, options: RunOptions, datamodule, module, device_args: dict) -> int:
    """The rest of `run_training`, while the run holds its folder."""
    resume_from = None
    if options.resume:
        resume_from = config.general_parameters.run_dir() / "checkpoints" / "last.ckpt"
        check_resumable(resume_from, config, datamodule.data.num_classes)
    note = None if options.resume else earlier_run_note(config)
    if note:
        print(note, file=sys.stderr)
    save_dir = prepare_output_dir(config)
    callbacks, best, last = _callbacks(config, save_dir)
    callbacks += options.callbacks
    _drop_lightning_tip()
    train_parameters = config.train_parameters
    trainer = _make_trainer(
        max_epochs=train_parameters.epochs,
        accumulate_grad_batches=train_parameters.accumulate_grad_batches,
        gradient_clip_val=train_parameters.gradient_clip_norm,
        fast_dev_run=train_parameters.fast_dev_run,
        logger=build_loggers(config, save_dir, options.resume),
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        # In a log file the bar shows only its last frame; EpochSummary prints there.
        enable_progress_bar=writes_to_terminal(),
        log_every_n_steps=max(
            1,
            min(
                train_parameters.log_every_n_steps,
                len(datamodule.data.train_samples) // train_parameters.batch_size,
            ),
        ),
        default_root_dir=save_dir,
        **device_args,
    )
    check_evaluation_processes(len(datamodule.data.val_samples), trainer.world_size)
    with warnings.catch_warnings():
        _quiet_third_party_noise(options.resume)
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
        except SystemExit:
            if last.interrupted_by:
                return last.exit_code
            raise
        if last.interrupted_by:  # SIGTERM ends fit without an exception here
            return last.exit_code
        if trainer.received_sigterm:  # in a last validation batch: Lightning lets
            print("SIGTERM: stopped after training", flush=True)  # it pass
            return SIGTERM_EXIT
        results = trainer.callback_metrics
        if best.best_model_path:
            try:
                results = _validate_best(
                    module, datamodule, best.best_model_path, device_args
                )
            except (SystemExit, KeyboardInterrupt) as error:
                code = (
                    130
                    if isinstance(error, KeyboardInterrupt)
                    or (isinstance(error, SystemExit) and error.code == 1)
                    else SIGTERM_EXIT
                )
                print(
                    "interrupted during the final validation: training finished and "
                    f"{save_dir / 'checkpoints'} is complete; metrics.json was not "
                    "written (test.py evaluates the checkpoints)",
                    flush=True,
                )
                return code
    if trainer.is_global_zero:
        _write_results(config, module, results, best.best_model_path, save_dir)
    return 0


def _rounded(value):
    """Metrics for people to read: floats at 4 decimals (metrics.json keeps them
    whole), e.g. 0.3333 rather than 0.3333333432674408."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    return value


def _write_results(
    config, module, results: dict, best_path: str, save_dir: Path
) -> None:
    if config.train_parameters.pre_training:
        metrics = {"pretrain_val_loss": float(results["val/loss"])}
    else:
        metrics = final_metrics(
            results, config.head_modes(), module.model.heads.metric_names()
        )
    metrics["checkpoint"] = best_path or None
    if config.train_parameters.train_on_val:
        metrics["train_on_val"] = True  # its val figures are not held out
    metrics_path = save_dir / "metrics.json"
    text = json.dumps(metrics, indent=2) + "\n"
    write_run_file(metrics_path, lambda file: file.write(text.encode("utf-8")))
    summary = metrics.get("mean_top1", metrics.get("pretrain_val_loss"))
    if isinstance(summary, dict):  # sequence heads: their own measures
        summary = {
            **summary,
            **{
                f"{head}/{name}": value
                for head, values in metrics["heads"].items()
                if "top1" not in values
                for name, value in values.items()
                if name != "loss"
            },
        }
    seen = (
        " (on val clips it trained on: train_on_val)"
        if config.train_parameters.train_on_val
        else ""
    )
    print(f"validation{seen}: {json.dumps(_rounded(summary))}; wrote {metrics_path}")
    weights_file = config.general_parameters.weights_file()
    if weights_file is not None:
        state = module.model.state_dict()
        write_run_file(weights_file, lambda file: torch.save(state, file))
        print(f"wrote the model weights to {weights_file}", file=sys.stderr)
