"""What a run can check from its config alone, checked before any data is read.

Indexing a large corpus takes minutes; a misspelt extractor name, a missing weights
file, an unavailable GPU or missing Neptune credentials should not wait for it. Every
problem found is reported at once, one line each.
"""

from __future__ import annotations

from pathlib import Path

from config.loader import data_path_problems
from config.registry import ENCODER_FACTS, model_settings
from config.schema import SignpipeConfig, model_problems
from models.transformers.hubert import HubertSettings
from training.run import trainer_device_args
from utils.errors import ConfigError
from utils.files import file_problem


def _registry_problems(config: SignpipeConfig) -> list[str]:
    """The chosen models' names, settings and needs, after importing the models
    and `general_parameters.plugins` (whose registrations the check reads)."""
    try:
        return model_problems(config)
    except ConfigError as error:  # a plugin that cannot be imported
        return [str(error)]


def _hubert_folder(config: SignpipeConfig) -> str | None:
    """The HuBERT directory the chosen encoder starts from, if any (None too when
    the encoder or its settings are wrong: `_registry_problems` reports that)."""
    try:
        encoder = model_settings(
            config.transformer, ENCODER_FACTS, config.general_parameters.plugins
        )
    except ConfigError:
        return None
    return encoder.pretrained_path if isinstance(encoder, HubertSettings) else None


def _file_problems(config: SignpipeConfig) -> list[str]:
    problems = []
    files = {
        "feature_extractor.pretrained_path": config.feature_extractor.pretrained_path,
        # As training/transfer.py names it: the flag and the key set the same field.
        "--checkpoint": config.transfer.checkpoint,
    }
    for key, path in files.items():
        problem = file_problem(Path(path)) if path else None
        if problem:
            problems.append(f"{key}: '{path}' {problem}")
    folder = _hubert_folder(config)
    if folder and not Path(folder).is_dir():
        problems.append(
            f"transformer.pretrained_path: '{folder}' is not a directory (a HuBERT "
            "model saved with save_pretrained)"
        )
    return problems


def _device_problems(config: SignpipeConfig) -> list[str]:
    try:
        trainer_device_args(config)
    except ConfigError as error:
        return [str(error)]
    return []


def _neptune_problems(config: SignpipeConfig) -> list[str]:
    if not config.general_parameters.neptune:
        return []
    # neptune is slow to import: only when the run logs to it.
    # pylint: disable-next=import-outside-toplevel
    from training.neptune_logger import check_environment

    try:
        check_environment()
    except ConfigError as error:
        return [str(error)]
    return []


def check_before_data(config: SignpipeConfig) -> None:
    """Check the data paths, the models (names, their own settings, what they
    read), the weights files, the devices and Neptune's settings.

    Raises:
        ConfigError: one line per problem, every problem found.
    """
    problems = (
        data_path_problems(config)
        + _registry_problems(config)
        + _file_problems(config)
        + _device_problems(config)
        + _neptune_problems(config)
    )
    if problems:
        raise ConfigError("\n".join(problems))
