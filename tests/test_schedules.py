"""LR schedules (exponential, cosine, one_cycle), weight decay and label smoothing."""

from __future__ import annotations

import copy
import csv
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import train
from config.loader import parse_config
from models.heads import IGNORE_INDEX, weighted_multi_head_loss
from training.base import ONE_CYCLE_END, ONE_CYCLE_START, lr_factor, make_optimizer
from training.recognition import SignRecognitionModule
from utils.errors import ConfigError


def factors(schedule: str, warmup: int, total: int, steps: int) -> list[float]:
    """`lr_factor` of steps 0..steps-1."""
    return [
        lr_factor(step, warmup, 0.5, schedule=schedule, total_steps=total)
        for step in range(steps)
    ]


def test_cosine_warms_up_then_falls_to_zero_at_the_last_step() -> None:
    values = factors("cosine", 4, 14, 16)
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    after = values[4:14]
    assert all(a > b for a, b in zip(after, after[1:])), "falls every step"
    assert after[0] == pytest.approx(0.5 * (1 + math.cos(math.pi / 10)))
    assert values[8] == pytest.approx(0.5 * (1 + math.cos(math.pi * 5 / 10)))
    assert values[13] == pytest.approx(0.0, abs=1e-12)
    assert values[14:] == [pytest.approx(0.0, abs=1e-12)] * 2, "stays at 0"
    assert all(v >= 0 for v in values)


def test_one_cycle_rises_over_the_warm_up_then_falls() -> None:
    values = factors("one_cycle", 4, 14, 15)
    assert values[0] == pytest.approx(1 / ONE_CYCLE_START)
    assert values[4] == pytest.approx(1.0) and max(values) == values[4]
    assert all(a < b for a, b in zip(values[:4], values[1:5])), "rises"
    assert all(a > b for a, b in zip(values[4:14], values[5:15])), "falls"
    assert values[14] == pytest.approx(1 / ONE_CYCLE_END)


def test_exponential_ignores_total_steps() -> None:
    assert factors("exponential", 2, 5, 5) == factors("exponential", 2, None, 5)
    assert factors("exponential", 2, None, 5) == [0.5, 1.0, 0.5, 0.25, 0.125]


def test_schedules_without_warm_up() -> None:
    assert factors("cosine", 0, 4, 4)[0] == pytest.approx(
        0.5 * (1 + math.cos(math.pi / 4))
    )
    assert factors("one_cycle", 0, 4, 1) == [1.0]


def train_parameters(**fields):
    """Validated `train_parameters` with `fields` set."""
    return parse_config({"train_parameters": fields}).train_parameters


class Tiny(nn.Module):
    """A module with one weight, and a trainer that knows the run's step count."""

    def __init__(self, total: int | None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(3))
        if total is not None:
            self.trainer = SimpleNamespace(estimated_stepping_batches=total)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """`inputs` scaled by the weight."""
        return inputs * self.weight


@pytest.mark.parametrize("schedule", ["cosine", "one_cycle"])
def test_make_optimizer_runs_the_schedule_over_the_trainers_steps(
    schedule: str,
) -> None:
    train_config = train_parameters(
        lr=0.01, warmup_steps=3, lr_schedule=schedule, weight_decay=0.05
    )
    built = make_optimizer(Tiny(total=10), train_config)
    optimizer, scheduler = built["optimizer"], built["lr_scheduler"]["scheduler"]
    assert isinstance(optimizer, torch.optim.AdamW)
    assert built["lr_scheduler"]["interval"] == "step"
    assert optimizer.param_groups[0]["weight_decay"] == 0.05
    seen = []
    for _ in range(10):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [0.01 * value for value in factors(schedule, 3, 10, 10)]
    np.testing.assert_allclose(seen, expected, rtol=1e-9)


def test_exponential_does_not_need_the_step_count() -> None:
    module = Tiny(total=None)  # no trainer: the count is not asked for
    built = make_optimizer(module, train_parameters(lr=0.1, warmup_steps=0))
    assert built["optimizer"].param_groups[0]["lr"] == pytest.approx(0.1)


def test_weight_decay_shrinks_weights_without_gradient() -> None:
    module = Tiny(total=None)
    optimizer = make_optimizer(
        module, train_parameters(lr=0.1, warmup_steps=0, weight_decay=0.5)
    )["optimizer"]
    module.weight.grad = torch.zeros(3)
    optimizer.step()
    torch.testing.assert_close(module.weight.detach(), torch.full((3,), 0.95))


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"lr_schedule": "linear"}, "lr_schedule"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"label_smoothing": -0.1}, "label_smoothing"),
        ({"weight_decay": -1.0}, "weight_decay"),
    ],
)
def test_config_rejects_bad_values(fields: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=f"train_parameters.{key}"):
        parse_config({"train_parameters": fields})


def test_label_smoothing_in_the_multi_head_loss() -> None:
    torch.manual_seed(0)
    logits = {"gloss": torch.randn(4, 5), "hand": torch.randn(4, 3)}
    labels = {
        "gloss": torch.tensor([0, 4, IGNORE_INDEX, 2]),
        "hand": torch.tensor([1, 1, 0, 2]),
    }
    weights = {"gloss": 1.0, "hand": 3.0}
    smooth, per_head = weighted_multi_head_loss(logits, labels, weights, 0.2)
    plain, _ = weighted_multi_head_loss(logits, labels, weights)
    expected = {}
    for head, head_logits in logits.items():
        keep = labels[head] != IGNORE_INDEX
        log_p = F.log_softmax(head_logits[keep], dim=-1)
        nll = -log_p.gather(1, labels[head][keep, None]).squeeze(1)
        expected[head] = (0.8 * nll - 0.2 * log_p.mean(-1)).mean()
        torch.testing.assert_close(per_head[head], expected[head])
    torch.testing.assert_close(smooth, (expected["gloss"] + 3 * expected["hand"]) / 4)
    assert not torch.isclose(smooth, plain)


def landmark_config(tiny_config: dict, **train_fields) -> dict:
    """The tiny config, landmarks only (a small MLP extractor), one gloss head."""
    raw = copy.deepcopy(tiny_config)
    raw["train_parameters"].update(
        classification_mode="gloss", landmarks=True, **train_fields
    )
    raw["feature_extractor"] = {
        "name": "landmarks_extractor",
        "representation_size": 16,
    }
    raw["landmarks_parameters"] = {"components": ["left_hand", "right_hand"]}
    raw["heads"]["gloss"]["gloss"]["num_class"] = 3
    return raw


def test_label_smoothing_is_for_training_only(tiny_config, monkeypatch) -> None:
    module = SignRecognitionModule(
        landmark_config(tiny_config, label_smoothing=0.3), {"gloss": 3}
    ).eval()
    monkeypatch.setattr(module, "log", lambda *args, **kwargs: None)
    batch = {
        "landmarks": torch.randn(2, 3, 42, 3),
        "landmark_mask": torch.ones(2, 3, 42, dtype=torch.bool),
        "mask": torch.ones(2, 3, dtype=torch.bool),
        "labels": {"gloss": torch.tensor([0, 2])},
        "name": ["a", "b"],
    }
    with torch.no_grad():
        logits = module.model(batch)["logits"]
        train_loss = module.model_step(batch, "train")
        val_loss = module.model_step(batch, "val")
    weights = {"gloss": 1.0}
    smooth, _ = weighted_multi_head_loss(logits, batch["labels"], weights, 0.3)
    plain, _ = weighted_multi_head_loss(logits, batch["labels"], weights)
    torch.testing.assert_close(train_loss, smooth)
    torch.testing.assert_close(val_loss, plain)


def hands_root(root: Path, clips_per_gloss: int = 4) -> Path:
    """A root of hands-only `.npz` clips (3 glosses, train and val)."""
    rng = np.random.default_rng(0)
    lines = ["name start end gloss split"]
    for gloss in range(3):
        for index in range(clips_per_gloss):
            name = f"g{gloss}_{index}"
            (root / name).mkdir(parents=True)
            hands = rng.random((8, 2, 21, 3)).astype(np.float32)
            np.savez(root / name / f"{name}.npz", hands=hands)
            split = "val" if index == 0 else "train"
            lines.append(f"{name} 0 7 {gloss} {split}")
    (root / "test_gloss.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_training_follows_the_cosine_schedule(
    tiny_config, write_config, tmp_path: Path
) -> None:
    config = landmark_config(
        tiny_config,
        epochs=2,
        batch_size=3,
        lr=0.01,
        warmup_steps=2,
        lr_schedule="cosine",
        weight_decay=0.1,
        label_smoothing=0.1,
    )
    config["general_parameters"]["data_path"] = str(hands_root(tmp_path / "root"))
    assert train.main(["--model_config_path", str(write_config(config))]) == 0
    save = Path(config["general_parameters"]["path_to_save"])
    with next((save / "logs").rglob("metrics.csv")).open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    column = next(key for key in rows[0] if key.startswith("lr-"))
    logged = {int(row["step"]): float(row[column]) for row in rows if row.get(column)}
    steps = 2 * 3  # 9 train clips in batches of 3, 2 epochs
    expected = [0.01 * value for value in factors("cosine", 2, steps, steps)]
    assert len(logged) >= 2 and max(logged) == steps - 1, logged
    for step, value in logged.items():
        assert value == pytest.approx(expected[step], rel=1e-6, abs=1e-12), step


def test_a_warm_up_longer_than_the_run_is_cut_with_a_note(capsys) -> None:
    """A recipe shortened to 120 steps with warmup_steps 150 would never reach its LR:
    the warm-up becomes a tenth of the run, and the run says so."""
    # pylint: disable-next=import-outside-toplevel
    from training.base import fitted_warmup

    assert fitted_warmup(150, 1000) == 150
    assert capsys.readouterr().err == ""
    warmup = fitted_warmup(150, 120)
    assert warmup == 12
    assert (
        "warmup_steps 150 >= the run's 120 optimizer steps" in capsys.readouterr().err
    )
    peak = max(
        lr_factor(step, warmup, 0.99, "one_cycle", total_steps=120)
        for step in range(120)
    )
    assert peak == pytest.approx(1.0)
