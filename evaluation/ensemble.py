"""Test-time averaging: several checkpoints (seeds, epochs) and the mirrored clip.

`AveragedModel` runs each model on each view of a batch (the batch itself and, with
`mirror`, its horizontal mirror, the flip training augments with) and returns, per
head, the log of the mean class probability. Its `logits` are therefore the
averaged prediction's log-probabilities: top-k, the cross-entropy and the plots of
`test.py` read them as they read one model's logits.

Every view costs one forward pass of every model: `n` checkpoints with `mirror` cost
`2n` times one model's inference. `average_checkpoints` turns a loaded checkpoint into
the average of it and more checkpoints (predict.py and demo.py `--ensemble`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from config.schema import SignpipeConfig
from datasets.landmarks import mirror_permutation
from evaluation.checkpoints import LoadedModel, load_checkpoint, refuse_sequence_heads
from utils.errors import UserError

#: The config fields that decide what a model reads at evaluation (the sampled
#: frames, their landmark layout and image size); ensemble members must agree on
#: them, since the data is prepared once for all of them.
EVALUATION_INPUTS = (
    ("train_parameters", "num_segments"),
    ("train_parameters", "time"),
    ("train_parameters", "default_fps"),
    ("train_parameters", "landmarks"),
    ("landmarks_parameters", "components"),
    ("landmarks_parameters", "normalize"),
    ("landmarks_parameters", "hand_shapes"),
    ("augmentations_parameters", "apply_resize"),
    ("augmentations_parameters", "resize_size"),
    ("augmentations_parameters", "apply_center_crop"),
    ("augmentations_parameters", "center_crop_size"),
)


def input_differences(first: SignpipeConfig, other: SignpipeConfig) -> list[str]:
    """The `EVALUATION_INPUTS` on which two configs differ, as `section.key`."""
    differing = []
    for section, key in EVALUATION_INPUTS:
        mine = getattr(getattr(first, section), key)
        theirs = getattr(getattr(other, section), key)
        if mine != theirs:
            differing.append(f"{section}.{key} ({mine!r} against {theirs!r})")
    if first.uses_features() != other.uses_features():
        names = (first.feature_extractor.name, other.feature_extractor.name)
        differing.append(
            f"feature_extractor.name ({names[0]!r} against {names[1]!r}; one reads "
            "precomputed features)"
        )
    return differing


def check_members(
    names: list[str],
    configs: list[SignpipeConfig],
    label_names: list[dict[str, list[str]]],
) -> None:
    """Refuse an ensemble whose members read different inputs or predict different
    heads or classes (in a different order), naming the first member that differs.

    Raises:
        UserError: the members do not fit together.
    """
    for name, config, labels in zip(names[1:], configs[1:], label_names[1:]):
        differing = input_differences(configs[0], config)
        if differing:
            raise UserError(
                f"{name} reads other inputs than {names[0]}: "
                + "; ".join(differing)
                + ". Ensemble members must sample and prepare clips alike"
            )
        if list(labels) != list(label_names[0]):
            raise UserError(
                f"{name} has heads {', '.join(labels)}, but {names[0]} has "
                f"{', '.join(label_names[0])}: ensemble members need the same heads"
            )
        for head, classes in labels.items():
            if classes != label_names[0][head]:
                raise UserError(
                    f"{name}: head {head} has other classes (or another order) than "
                    f"in {names[0]}; ensemble members need the same classes"
                )


def mirror_batch(batch: dict, order: torch.Tensor | None) -> dict:
    """The batch mirrored left to right as training's flip does: landmark x -> -x
    with left and right points swapped (`order`, see `mirror_permutation`), and
    images flipped along their width."""
    mirrored = dict(batch)
    if "landmarks" in batch and order is not None:
        points = batch["landmarks"].index_select(2, order.to(batch["landmarks"].device))
        mirrored["landmarks"] = points * points.new_tensor([-1.0, 1.0, 1.0])
        mirrored["landmark_mask"] = batch["landmark_mask"].index_select(
            2, order.to(batch["landmark_mask"].device)
        )
    if "frames" in batch:
        mirrored["frames"] = batch["frames"].flip(-1)
    return mirrored


class AveragedModel:
    """Models whose class probabilities are averaged over them and the views of a
    batch (see the module's docstring). Callable as one model is in
    `evaluation.metrics.collect_predictions`.

    Args:
        models: the members, in eval mode, each `model(batch) -> {"logits": ...}`.
        configs: each member's config (its landmark components give the mirror).
        mirror: also average the horizontally mirrored batch.
        names: the members' names, in order, for what is shown of the model (the
            demo page); empty when the caller does not name them.
    """

    def __init__(
        self,
        models: list[Callable[[dict], dict]],
        configs: list[SignpipeConfig],
        mirror: bool = False,
        *,
        names: Sequence[str] = (),
    ) -> None:
        if mirror and any(config.uses_features() for config in configs):
            raise UserError(
                "--mirror: a model reads precomputed features, which have no mirror "
                "image; evaluate without --mirror"
            )
        self.models = models
        self.orders: list[torch.Tensor | None] = []
        for config in configs:
            order = None
            if config.uses_landmarks():
                components = list(config.landmarks_parameters.components)
                order = torch.as_tensor(mirror_permutation(components))
            self.orders.append(order)
        self.mirror = mirror
        self.names = list(names)

    @property
    def views(self) -> int:
        """Forward passes per batch."""
        return len(self.models) * (2 if self.mirror else 1)

    def __call__(self, batch: dict) -> dict:
        """`{"logits": {head: (B, C) log mean probability}}`."""
        summed: dict[str, torch.Tensor] = {}
        for model, order in zip(self.models, self.orders):
            views = [batch, mirror_batch(batch, order)] if self.mirror else [batch]
            for view in views:
                for head, logits in model(view)["logits"].items():
                    log_probs = logits.float().log_softmax(dim=-1)
                    if head in summed:
                        summed[head] = torch.logaddexp(summed[head], log_probs)
                    else:
                        summed[head] = log_probs
        count = math.log(self.views)
        return {"logits": {head: value - count for head, value in summed.items()}}


def average_checkpoints(
    loaded: LoadedModel, name: str, members: Sequence[Path], purpose: str
) -> LoadedModel:
    """`loaded` with its model replaced by the average of its and the `members`'
    class probabilities (`AveragedModel`), once the members are checked to predict
    the same heads and classes from clips made alike (`check_members`).

    Args:
        loaded: the first checkpoint, loaded; the members load on its device.
        name: the first checkpoint, as messages name it.
        members: more train.py checkpoints or model zoo names.
        purpose: the end of the message refusing a sequence head: what only
            classification heads do and what to do instead (`"average
            (--ensemble); predict with each alone"`).

    Raises:
        UserError: a member is missing or not a checkpoint, has a sequence head or
            no trained heads (pretraining), or does not fit the first.
    """
    names = [name, *(str(path) for path in members)]
    loaded_members = [loaded] + [
        load_checkpoint(path, loaded.device) for path in members
    ]
    for member_name, member in zip(names, loaded_members):
        refuse_sequence_heads(member.config, member_name, purpose)
        if member.config.train_parameters.pre_training:
            raise UserError(
                f"{member_name}: a pretraining checkpoint has no trained heads to "
                "average"
            )
    configs = [member.config for member in loaded_members]
    check_members(names, configs, [member.label_names for member in loaded_members])
    averaged = AveragedModel(
        [member.model for member in loaded_members], configs, names=names
    )
    return replace(loaded, model=averaged)
