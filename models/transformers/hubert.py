"""A HuBERT-style encoder (from `transformers`) over projected frame features."""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import Field
from torch import nn

from config.section import Section
from models.registry import TRANSFORMERS
from models.transformers.common import ClsToken
from utils.errors import ConfigError


def _conv_groups(hidden_size: int) -> int:
    """The most positional-convolution groups (up to 16) that divide the width."""
    return next(g for g in (16, 8, 4, 2, 1) if hidden_size % g == 0)


class HubertSettings(Section):
    """`hubert_transformer`'s own settings: the saved model it starts from."""

    pretrained_path: str | None = Field(
        None,
        description="A local directory written by `HubertModel.save_pretrained`, "
        "whose encoder (and width) is used instead of a new one. null = random "
        "initialisation.",
    )


@TRANSFORMERS.register(
    "hubert_transformer",
    settings=HubertSettings,
    summary="The encoder of `transformers`' HuBERT (convolutional positions, stable "
    "layer norm) over the projected frame features, with a learned CLS token. "
    "HuBERT's waveform front end is not used.",
    weights="a local directory written by `HubertModel.save_pretrained`",
)
class HubertTransformer(nn.Module):
    """HuBERT's transformer encoder (convolutional positions, pre-norm layers).

    HuBERT's own convolutional waveform front end is not used: the frame features are
    projected to the encoder width instead. A learned CLS token gives the clip
    embedding.

    Args:
        input_dim: size of the per-frame features coming in.
        output_size: encoder width (ignored when `pretrained_path` is given: the
            pretrained model's width is used).
        feedforward_size: hidden size of each feed-forward block.
        num_attention_heads: attention heads per layer.
        num_encoder_layers: encoder layers.
        dropout_rate: dropout inside the encoder.
        pretrained_path: a local directory saved with `save_pretrained` to start from.
    """

    def __init__(
        self,
        *,
        input_dim: int,
        output_size: int,
        feedforward_size: int,
        num_attention_heads: int,
        num_encoder_layers: int,
        dropout_rate: float,
        pretrained_path: str | None = None,
    ) -> None:
        super().__init__()
        # transformers takes seconds to import: only HuBERT models need it.
        # pylint: disable-next=import-outside-toplevel
        from transformers import HubertConfig, HubertModel

        if pretrained_path is not None:
            if not Path(pretrained_path).is_dir():
                raise ConfigError(
                    f"transformer.pretrained_path: '{pretrained_path}' is not an "
                    "existing directory (a HuBERT model saved with save_pretrained)"
                )
            # `from_pretrained` returns the model in eval mode; Lightning keeps the
            # modes it finds, so without `.train()` the encoder would train with
            # dropout off. A module is built in train mode, as every other part.
            encoder = HubertModel.from_pretrained(
                pretrained_path, local_files_only=True
            ).encoder.train()
            output_size = encoder.config.hidden_size
        else:
            config = HubertConfig(  # pylint: disable=unexpected-keyword-arg
                hidden_size=output_size,
                num_hidden_layers=num_encoder_layers,
                num_attention_heads=num_attention_heads,
                intermediate_size=feedforward_size,
                hidden_dropout=dropout_rate,
                attention_dropout=dropout_rate,
                activation_dropout=dropout_rate,
                layerdrop=0.0,
                num_conv_pos_embeddings=16,
                num_conv_pos_embedding_groups=_conv_groups(output_size),
                do_stable_layer_norm=True,
            )
            encoder = HubertModel(config).encoder
        self.out_dim = output_size
        self.input_projection = nn.Linear(input_dim, output_size)
        self.cls = ClsToken(output_size)
        self.encoder = encoder

    def forward(
        self, features: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a batch of clips (shapes as `SignLanguageTransformer.forward`)."""
        tokens, full_mask = self.cls(self.input_projection(features), mask)
        encoded = self.encoder(tokens, attention_mask=full_mask).last_hidden_state
        return encoded[:, 0], encoded[:, 1:]


def encoder_config(model: nn.Module) -> dict | None:
    """The HuBERT encoder's `transformers` config of a pipeline (None when it has no
    HuBERT encoder): saved in checkpoints, so that a model started from a pretrained
    directory can be rebuilt where that directory does not exist."""
    transformer = getattr(model, "transformer", None)
    if not isinstance(transformer, HubertTransformer):
        return None
    return transformer.encoder.config.to_dict()


def save_encoder_shape(config: dict, directory: Path) -> Path:
    """A HuBERT directory of `config`'s shape (random weights) for
    `transformer.pretrained_path`, when a checkpoint's own weights replace them."""
    # pylint: disable-next=import-outside-toplevel
    from transformers import HubertConfig, HubertModel

    HubertModel(HubertConfig.from_dict(config)).save_pretrained(directory)
    return directory
