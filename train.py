"""Train a multi-head sign recognizer from a YAML config.

python3 train.py --model_config_path train_config.yml [--neptune] [--resume]
                 [--set train_parameters.epochs=1 ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import yaml

from utils.cli import run_cli
from utils.config import SignpipeConfig
from utils.config_loader import check_data_paths, config_to_dict, load_config
from utils.errors import ConfigError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model_config_path", required=True, help="the YAML config (train_config.yml)"
    )
    parser.add_argument(
        "--neptune", action="store_true", help="also log to neptune.ai (see README)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from <path_to_save>/checkpoints/last.ckpt",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train_parameters.epochs=1",
    )
    return parser.parse_args(argv)


def prepare_output_dir(config: SignpipeConfig) -> Path:
    """Create the run directory and write the resolved config into it."""
    save_dir = config.general_parameters.run_dir()
    try:
        save_dir.mkdir(parents=True, exist_ok=True)
        with (save_dir / "config.yml").open("w", encoding="utf-8") as file:
            yaml.safe_dump(config_to_dict(config), file, sort_keys=False)
    except OSError as error:
        raise ConfigError(
            f"general_parameters.path_to_save: cannot write to '{save_dir}' "
            f"({error.strerror})"
        ) from None
    return save_dir


def build_loggers(config: SignpipeConfig, save_dir: Path) -> list:
    """CSV and TensorBoard always; Neptune when asked for."""
    # Imported late so that `--help` and config errors stay fast.
    # pylint: disable=import-outside-toplevel
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    loggers = [
        CSVLogger(save_dir, name="logs"),
        TensorBoardLogger(save_dir, name="tensorboard", default_hp_metric=False),
    ]
    if config.general_parameters.neptune:
        from utils.neptune_logger import NeptuneLogger

        loggers.append(NeptuneLogger(data_directory=save_dir))
    return loggers


def trainer_device_args(config: SignpipeConfig) -> dict:
    """accelerator/devices/num_nodes/strategy/precision for Lightning's Trainer."""
    import torch  # pylint: disable=import-outside-toplevel

    gpu = config.general_parameters.gpu
    section = config.trainer
    if gpu >= 0:
        if not torch.cuda.is_available() or gpu >= torch.cuda.device_count():
            raise ConfigError(
                f"general_parameters.gpu: CUDA device {gpu} is not available on this "
                f"machine ({torch.cuda.device_count()} found); use -1 for the CPU"
            )
        accelerator = "gpu"
        devices = section.devices if section.devices is not None else [gpu]
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


def final_metrics(callback_metrics: dict, heads: dict[str, str]) -> dict:
    """metrics.json: val loss, top-1/top-5/loss per head, mean top-1 per group."""

    def value(key: str) -> float | None:
        metric = callback_metrics.get(key)
        return None if metric is None else float(metric)

    per_head = {
        head: {k: value(f"val/{head}/{k}") for k in ("top1", "top5", "loss")}
        for head in heads
    }
    groups: dict[str, list[float]] = {}
    for head, group in heads.items():
        if per_head[head]["top1"] is not None:
            groups.setdefault(group, []).append(per_head[head]["top1"])
    return {
        "val_loss": value("val/loss"),
        "heads": per_head,
        "mean_top1": {group: sum(v) / len(v) for group, v in groups.items()},
    }


def save_weights(module, path: Path) -> None:
    """Write the pipeline's state dict atomically (temporary file, then rename)."""
    import torch  # pylint: disable=import-outside-toplevel

    temporary = path.with_name(path.name + ".tmp")
    torch.save(module.model.state_dict(), temporary)
    temporary.replace(path)


def train(args: argparse.Namespace) -> int:
    """Validate the config, build data and model, fit, and write the results."""
    notes: list[str] = []
    config = load_config(args.model_config_path, args.set, notes)
    for note in notes:
        print(note, file=sys.stderr)
    if args.neptune:
        config.general_parameters.neptune = True
    check_data_paths(config)
    # pylint: disable=import-outside-toplevel
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    from datasets.datamodule import SignDataModule
    from models.lightning_module import SignRecognitionModule

    L.seed_everything(config.general_parameters.seed, workers=True, verbose=False)
    datamodule = SignDataModule(config)
    print(datamodule.describe())
    module = SignRecognitionModule.from_config(
        config, datamodule.num_classes, datamodule.label_names
    )
    device_args = trainer_device_args(config)
    save_dir = prepare_output_dir(config)
    resume_from = None
    if args.resume:
        resume_from = save_dir / "checkpoints" / "last.ckpt"
        if not resume_from.is_file():
            raise ConfigError(
                f"--resume: no checkpoint to resume from at {resume_from}"
            )
    checkpoint = ModelCheckpoint(
        dirpath=save_dir / "checkpoints",
        filename="best",
        monitor="val/loss",
        mode="min",
        save_last=True,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    train_parameters = config.train_parameters
    trainer = L.Trainer(
        max_epochs=train_parameters.epochs,
        accumulate_grad_batches=train_parameters.accumulate_grad_batches,
        fast_dev_run=train_parameters.fast_dev_run,
        logger=build_loggers(config, save_dir),
        callbacks=[checkpoint, LearningRateMonitor(logging_interval="step")],
        log_every_n_steps=max(
            1, min(10, len(datamodule.train_samples) // train_parameters.batch_size)
        ),
        default_root_dir=save_dir,
        **device_args,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
        results = trainer.callback_metrics
        if checkpoint.best_model_path:
            # A fresh trainer without loggers: the run's loggers are finalized by now.
            evaluator = L.Trainer(
                logger=False,
                enable_checkpointing=False,
                enable_model_summary=False,
                enable_progress_bar=False,
                **device_args,
            )
            evaluator.validate(
                module,
                datamodule=datamodule,
                ckpt_path=checkpoint.best_model_path,
                verbose=False,
            )
            results = evaluator.callback_metrics
    if trainer.is_global_zero:
        metrics = final_metrics(results, config.head_modes())
        metrics["checkpoint"] = checkpoint.best_model_path or None
        metrics_path = save_dir / "metrics.json"
        metrics_path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        print(f"validation: {json.dumps(metrics['mean_top1'])}; wrote {metrics_path}")
        weights_file = config.general_parameters.weights_file()
        if weights_file is not None:
            save_weights(module, weights_file)
            print(f"wrote the model weights to {weights_file}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one message and exit 2."""
    return run_cli(lambda: train(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
