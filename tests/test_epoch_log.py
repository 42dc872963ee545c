"""What a run writes to a log file: one line per epoch, no third-party noise, and the
logging interval from the config."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
import logging
import sys
from types import SimpleNamespace

import pytest

import train
from training.callbacks import EpochSummary
import training.run


class _Records(logging.Handler):
    """Every record of a logger (Lightning's own loggers do not propagate)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def lightning_records():
    """The messages Lightning logs during the test."""
    handler = _Records()
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.messages
    logger.removeHandler(handler)
    logger.setLevel(level)


def run(write_config, config: dict) -> int:
    """train.py's main on a config dict."""
    return train.main(["--model_config_path", str(write_config(config))])


def test_two_epochs_print_one_line_each_and_no_noise(
    tiny_config, write_config, capsys, lightning_records
) -> None:
    config = copy.deepcopy(tiny_config)
    config["train_parameters"]["epochs"] = 2
    assert run(write_config, config) == 0
    out, err = capsys.readouterr()  # captured: not a terminal
    lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    for line in lines:
        assert "  train/loss " in line
        assert "  val/loss " in line
        assert "  val/gloss/top1 " in line
        assert "  lr " in line
        assert line.endswith(" s")
    everything = out + err + "\n".join(lightning_records)
    assert "weights_only" not in everything
    assert "LeafSpec" not in everything
    assert "litlogger" not in everything
    assert "Epoch 1/1" not in out  # the progress bar is off outside a terminal


def test_no_epoch_line_on_a_terminal(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    trainer = SimpleNamespace(is_global_zero=True)
    EpochSummary().on_train_epoch_end(trainer, None)
    assert capsys.readouterr().out == ""


def trainer_kwargs(monkeypatch, write_config, config: dict) -> dict:
    """The arguments `training.run` gives Lightning's Trainer."""
    seen: dict = {}
    make = training.run._make_trainer  # pylint: disable=protected-access

    def recording(**kwargs):
        seen.update(kwargs)
        return make(**kwargs)

    monkeypatch.setattr(training.run, "_make_trainer", recording)
    config = copy.deepcopy(config)
    config["train_parameters"]["fast_dev_run"] = True
    assert run(write_config, config) == 0
    return seen


def test_log_every_n_steps_comes_from_the_config(
    tiny_config, write_config, monkeypatch
) -> None:
    # 9 training clips in batches of 4: 2 batches per epoch cap the default of 10.
    assert trainer_kwargs(monkeypatch, write_config, tiny_config)[
        "log_every_n_steps"
    ] == min(10, 2)
    config = copy.deepcopy(tiny_config)
    config["train_parameters"]["log_every_n_steps"] = 1
    config["general_parameters"]["path_to_save"] += "_every_step"
    assert trainer_kwargs(monkeypatch, write_config, config)["log_every_n_steps"] == 1
