"""The loss weighting, the LR schedule and the freeze scheduler, pinned exactly."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
from torch.nn import functional as F

from helpers import quiet_cpu_trainer

from config.loader import parse_config
from config.schema import FreezeSchedulerConfig
from models.freeze_scheduler import FreezeScheduler
from models.heads import IGNORE_INDEX, weighted_multi_head_loss
from training.base import lr_factor
from training.datamodule import SignDataModule
from training.recognition import SignRecognitionModule
from training.run import trainer_device_args
from utils.errors import ConfigError

# --- loss ---------------------------------------------------------------------------


def test_weighted_loss_ignores_missing_labels() -> None:
    torch.manual_seed(0)
    logits = {"a": torch.randn(4, 3), "b": torch.randn(4, 5)}
    labels = {
        "a": torch.tensor([0, IGNORE_INDEX, 2, 1]),
        "b": torch.tensor([IGNORE_INDEX, 4, IGNORE_INDEX, IGNORE_INDEX]),
    }
    weights = {"a": 1.0, "b": 3.0}
    loss, per_head = weighted_multi_head_loss(logits, labels, weights)
    keep_a = labels["a"] != IGNORE_INDEX
    expected_a = F.cross_entropy(logits["a"][keep_a], labels["a"][keep_a])
    expected_b = F.cross_entropy(logits["b"][1:2], labels["b"][1:2])
    assert torch.allclose(per_head["a"], expected_a)
    assert torch.allclose(per_head["b"], expected_b)
    assert torch.allclose(loss, (1.0 * expected_a + 3.0 * expected_b) / 4.0)


def test_head_without_labels_drops_out_of_the_mean() -> None:
    logits = {"a": torch.randn(2, 3), "b": torch.randn(2, 3)}
    labels = {"a": torch.tensor([1, 2]), "b": torch.full((2,), IGNORE_INDEX)}
    loss, per_head = weighted_multi_head_loss(logits, labels, {"a": 0.5, "b": 0.5})
    assert torch.isfinite(loss)
    assert per_head["b"].item() == 0.0
    assert torch.allclose(loss, F.cross_entropy(logits["a"], labels["a"]))


# --- LR schedule ----------------------------------------------------------------------


def test_lr_factor_values() -> None:
    assert [lr_factor(s, 4, 0.5) for s in range(7)] == [
        0.25,
        0.5,
        0.75,
        1.0,
        0.5,
        0.25,
        0.125,
    ]
    assert [lr_factor(s, 0, 0.5) for s in range(3)] == [1.0, 0.5, 0.25]


def test_lr_schedule_in_training(tiny_config: dict) -> None:
    raw = copy.deepcopy(tiny_config)
    raw["train_parameters"].update(lr=0.01, warmup_steps=2, multiply_lr_step=0.5)
    module = SignRecognitionModule(raw, {"gloss": 3, **_hamnosys_counts(raw)})
    optimizers = module.configure_optimizers()
    optimizer = optimizers["optimizer"]
    scheduler = optimizers["lr_scheduler"]["scheduler"]
    seen = []
    for _ in range(5):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([0.005, 0.01, 0.005, 0.0025, 0.00125])


def _hamnosys_counts(raw: dict) -> dict:
    return {k: v["num_class"] for k, v in raw["heads"]["hamnosys"].items()}


# --- freeze scheduler -----------------------------------------------------------------

SCHEDULE = {
    "model_params": {"feature_extractor": [True, False], "transformer": [False, True]},
    "freeze_pattern_repeats": [2, 1],
    "verbose": True,
}
EXPECTED = [
    {"feature_extractor": True, "transformer": False},
    {"feature_extractor": True, "transformer": False},
    {"feature_extractor": False, "transformer": True},
    {"feature_extractor": False, "transformer": False},
    {"feature_extractor": False, "transformer": False},
]


def test_freeze_state_at_each_index(tiny_config: dict) -> None:
    module = SignRecognitionModule(
        tiny_config, {"gloss": 3, **_hamnosys_counts(tiny_config)}
    )
    scheduler = FreezeScheduler(module.model, FreezeSchedulerConfig(**SCHEDULE))
    assert [scheduler.state_at(i) for i in range(5)] == EXPECTED


def test_unknown_module_name_is_a_config_error(tiny_config: dict) -> None:
    raw = copy.deepcopy(tiny_config)
    raw["freeze_scheduler"] = {**SCHEDULE, "model_params": {"backbone": [True, False]}}
    with pytest.raises(Exception, match="model_params.backbone: unknown module"):
        SignRecognitionModule(raw, {"gloss": 3, **_hamnosys_counts(raw)})


def test_dotted_module_names_are_accepted(tiny_config: dict) -> None:
    raw = copy.deepcopy(tiny_config)
    raw["freeze_scheduler"] = {
        "model_params": {"feature_extractor.backbone": [True]},
        "freeze_pattern_repeats": [1],
    }
    module = SignRecognitionModule(raw, {"gloss": 3, **_hamnosys_counts(raw)})
    module.freeze_scheduler.apply(0)
    assert not any(
        p.requires_grad for p in module.model.feature_extractor.backbone.parameters()
    )
    assert all(
        p.requires_grad for p in module.model.feature_extractor.projection.parameters()
    )


class _Recorder(L.Callback):
    """Records requires_grad and BatchNorm mode of the scheduled modules per step."""

    def __init__(self) -> None:
        self.states: list[dict] = []

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        model = pl_module.model
        bn = next(
            m
            for m in model.feature_extractor.modules()
            if isinstance(m, torch.nn.BatchNorm2d)
        )
        self.states.append(
            {
                "epoch": trainer.current_epoch,
                "step": trainer.global_step,
                "feature_extractor": not any(
                    p.requires_grad for p in model.feature_extractor.parameters()
                ),
                "transformer": not any(
                    p.requires_grad for p in model.transformer.parameters()
                ),
                "bn_training": bn.training,
            }
        )


def _fit_with_schedule(tiny_config: dict, mode: str, epochs: int) -> tuple:
    raw = copy.deepcopy(tiny_config)
    raw["freeze_scheduler"] = {**SCHEDULE, "freeze_mode": mode}
    raw["train_parameters"]["epochs"] = epochs
    config = parse_config(raw)
    datamodule = SignDataModule(config)
    module = SignRecognitionModule(raw, datamodule.data.num_classes)
    recorder = _Recorder()
    trainer = quiet_cpu_trainer(epochs, recorder)
    trainer.fit(module, datamodule=datamodule)
    return recorder.states, module


def test_freeze_schedule_per_epoch(tiny_config: dict) -> None:
    states, module = _fit_with_schedule(tiny_config, "epoch", epochs=5)
    by_epoch = {}
    for state in states:
        by_epoch.setdefault(state["epoch"], state)
    assert [
        {k: by_epoch[e][k] for k in ("feature_extractor", "transformer")}
        for e in range(5)
    ] == EXPECTED
    # a frozen extractor keeps its BatchNorm statistics (eval mode), also after val
    assert [by_epoch[e]["bn_training"] for e in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]
    assert all(p.requires_grad for p in module.model.parameters())


def test_freeze_schedule_per_step(tiny_config: dict) -> None:
    states, _ = _fit_with_schedule(tiny_config, "step", epochs=3)
    assert len(states) >= 5
    assert [
        {k: s[k] for k in ("feature_extractor", "transformer")} for s in states[:5]
    ] == EXPECTED
    assert [s["step"] for s in states[:5]] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "gpu,devices,expected",
    [
        (1, None, [1]),
        (1, 1, [1]),
        (0, 2, 2),
        (1, [0, 1], [0, 1]),
        (-1, None, 1),
    ],
)
def test_trainer_devices_follow_the_gpu_index(
    shipped_config, monkeypatch, gpu, devices, expected
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    raw = copy.deepcopy(shipped_config)
    raw["general_parameters"]["gpu"] = gpu
    raw.setdefault("trainer", {})["devices"] = devices
    args = trainer_device_args(parse_config(raw))
    assert args["devices"] == expected
    assert args["accelerator"] == ("cpu" if gpu < 0 else "gpu")


def test_a_gpu_index_with_a_device_count_is_ambiguous(shipped_config, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    raw = copy.deepcopy(shipped_config)
    raw["general_parameters"]["gpu"] = 1
    raw.setdefault("trainer", {})["devices"] = 2
    with pytest.raises(ConfigError, match=r"trainer.devices: \[1, 2\]"):
        trainer_device_args(parse_config(raw))
