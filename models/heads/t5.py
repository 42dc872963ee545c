"""The `t5` head kind: a sentence per clip from the encoder's per-frame outputs,
through a T5 encoder-decoder (`transformers`) fed with them as `inputs_embeds`, as
SSVP-SLT's translator is; teacher forcing in training, generation in evaluation,
corpus BLEU-4 and chrF.

`transformers` is imported when a head is built: it takes seconds to import.
"""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import Field, model_validator
from torch import nn
from torch.nn import functional as F
from torchmetrics import Metric

from config.section import Section
from models.heads.sequence import HeadInput, SequenceOutputs
from models.heads.sequence_metrics import Chrf, CorpusBleu
from models.transformers.common import sinusoidal_positions
from models.registry import HEAD_KINDS
from utils.constants import IGNORE_INDEX
from utils.errors import ConfigError
from utils.tokenizer import load_tokenizer

#: How messages name a t5 head's settings (the layer does not know its head's key).
SETTING = "heads.<group>.<head>.{key} (a t5 head)"


class T5Settings(Section):
    """The `t5` head's own settings."""

    tokenizer_path: str | None = Field(
        None,
        description="The folder of the head's tokenizer (`tokenizer.json`, pad id 0 "
        "and end-of-sentence id 1, T5's convention), read from local files only; "
        "`python -m data_preprocessing.tokenizer` writes one. Required; its "
        "vocabulary is the head's `num_class`.",
    )
    pretrained_path: str | None = Field(
        None,
        description="A local folder of a T5 model saved with `save_pretrained` to "
        "start from (its shape wins over the sizes below; its vocabulary must be "
        "the tokenizer's); null = a randomly initialised T5 of the sizes below.",
    )
    model_dim: int = Field(256, gt=0, le=8192, description="T5's width (`d_model`).")
    num_layers: int = Field(2, gt=0, le=64, description="T5's encoder layers.")
    num_decoder_layers: int = Field(2, gt=0, le=64, description="T5's decoder layers.")
    num_heads: int = Field(
        4,
        gt=0,
        le=128,
        description="Attention heads per layer; `model_dim` must be divisible by it.",
    )
    feedforward_size: int = Field(
        512, gt=0, le=32768, description="T5's feed-forward width (`d_ff`)."
    )
    t5_dropout: float = Field(
        0.1, ge=0.0, lt=1.0, description="Dropout inside T5 (`dropout_rate`)."
    )
    max_target_length: int = Field(
        64,
        gt=0,
        le=1024,
        description="The most tokens of a target sentence (longer ones are cut) and "
        "of a generated one.",
    )
    source_positions: bool = Field(
        True,
        description="Add sinusoidal positions to the projected frames before T5 "
        "reads them: T5's attention has relative position biases only, and its "
        "cross-attention none, so these tell the decoder where each frame is. "
        "false = the frames as they are (SSVP-SLT's input).",
    )
    num_beams: int = Field(
        1,
        ge=1,
        le=64,
        description="Beams of the generation in validation, test and prediction; "
        "1 = greedy.",
    )

    @model_validator(mode="after")
    def _needs_tokenizer(self) -> T5Settings:
        if not self.tokenizer_path:
            raise ValueError(
                "tokenizer_path: a t5 head needs the folder of its tokenizer "
                "(python -m data_preprocessing.tokenizer writes one)"
            )
        if self.model_dim % self.num_heads:
            raise ValueError(
                f"model_dim ({self.model_dim}) must be divisible by num_heads "
                f"({self.num_heads})"
            )
        return self


class FeatureProjection(nn.Module):
    """Frame features into T5's width: a linear layer times a learned scale per
    channel (SSVP-SLT's `FeatureProjection`)."""

    def __init__(self, input_dim: int, output_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(input_dim, output_dim)
        self.scale = nn.Parameter(torch.ones(output_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """`(B, T, input_dim)` -> `(B, T, output_dim)`."""
        return self.linear(features) * self.scale


def _t5_model(settings: T5Settings, vocabulary: int) -> nn.Module:
    """A T5 from `pretrained_path`, or a random one of the settings' sizes."""
    # pylint: disable-next=import-outside-toplevel
    from transformers import T5Config, T5ForConditionalGeneration

    if settings.pretrained_path is not None:
        path = Path(settings.pretrained_path)
        key = SETTING.format(key="pretrained_path")
        try:
            model = T5ForConditionalGeneration.from_pretrained(
                str(path), local_files_only=True
            )
        except (OSError, ValueError) as error:
            raise ConfigError(
                f"{key}: cannot load a T5 model from {path} ({error})"
            ) from None
        if model.config.vocab_size != vocabulary:
            raise ConfigError(
                f"{key}: the T5 model in {path} has {model.config.vocab_size} "
                f"tokens, the tokenizer {vocabulary}; use the model's own tokenizer"
            )
        model.config.decoder_start_token_id = model.config.pad_token_id
        return model.train()  # from_pretrained returns it in eval mode
    config = T5Config(  # pylint: disable=unexpected-keyword-arg
        vocab_size=vocabulary,
        d_model=settings.model_dim,
        d_kv=settings.model_dim // settings.num_heads,
        d_ff=settings.feedforward_size,
        num_layers=settings.num_layers,
        num_decoder_layers=settings.num_decoder_layers,
        num_heads=settings.num_heads,
        dropout_rate=settings.t5_dropout,
        feed_forward_proj="relu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return T5ForConditionalGeneration(config)


class T5Layer(nn.Module):
    """Frame features -> T5 -> sentences.

    Args:
        input_dim: the per-frame outputs' width.
        num_classes: the tokenizer's vocabulary.
        settings: the head's own settings.
    """

    def __init__(self, *, input_dim: int, num_classes: int, settings: T5Settings):
        super().__init__()
        self.tokenizer = load_tokenizer(
            settings.tokenizer_path or "", SETTING.format(key="tokenizer_path")
        )
        if len(self.tokenizer) != num_classes:
            raise ConfigError(
                f"{SETTING.format(key='num_class')}: {num_classes}, but the tokenizer "
                f"in {settings.tokenizer_path} has {len(self.tokenizer)} tokens; "
                "set num_class: auto"
            )
        self.t5 = _t5_model(settings, num_classes)
        self.projection = FeatureProjection(input_dim, self.t5.config.d_model)
        self.source_positions = settings.source_positions
        self.num_beams = settings.num_beams
        self.max_target_length = settings.max_target_length

    def forward(self, inputs: HeadInput) -> SequenceOutputs:
        """Teacher-forced `(B, L, vocabulary)` logits when the target is given;
        generated sentences in eval mode."""
        embeds = self.projection(inputs.frames)
        if self.source_positions:
            embeds = embeds + sinusoidal_positions(
                embeds.shape[1], embeds.shape[2], embeds.device
            ).to(embeds.dtype)
        attention = inputs.mask.long()
        logits, lengths = None, inputs.mask.new_zeros(inputs.mask.shape[0]).long()
        if inputs.target is not None:
            decoder_ids = self.t5.prepare_decoder_input_ids_from_labels(
                labels=inputs.target
            )
            logits = self.t5(
                inputs_embeds=embeds,
                attention_mask=attention,
                decoder_input_ids=decoder_ids,
            ).logits
            lengths = (inputs.target != IGNORE_INDEX).sum(dim=-1)
        outputs = SequenceOutputs(
            logits=logits, lengths=lengths, references=inputs.texts
        )
        if not self.training:
            outputs.hypotheses = self.generate(embeds, attention)
        return outputs

    def generate(self, embeds: torch.Tensor, attention: torch.Tensor) -> list[str]:
        """The generated sentence of every sample (special tokens dropped)."""
        with torch.no_grad():
            generated = self.t5.generate(
                inputs_embeds=embeds,
                attention_mask=attention,
                num_beams=self.num_beams,
                max_new_tokens=self.max_target_length,
                do_sample=False,
            )
        texts = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
        return [" ".join(text.split()) for text in texts]


@HEAD_KINDS.register("t5", settings=T5Settings, label="text")
class T5:
    """A sentence per clip (a translation): a T5 encoder-decoder over the
    per-frame outputs, projected to its width, token cross-entropy under teacher
    forcing, generated sentences scored by corpus BLEU-4 and chrF (validation and
    test only). `num_class` is the tokenizer's vocabulary."""

    top_k: tuple[int, ...] = ()
    inputs = "frames"
    metric_stages = ("val", "test")

    def layer(  # pylint: disable=too-many-arguments
        self,
        *,
        input_dim: int,
        num_classes: int,
        additional_layers: int,
        dropout: float,
        settings: T5Settings | None = None,
    ) -> nn.Module:
        """A `T5Layer` (the head's hidden layers and dropout are T5's own)."""
        del additional_layers, dropout
        if settings is None:
            raise ConfigError(
                f"{SETTING.format(key='tokenizer_path')}: a t5 head needs its "
                "settings (tokenizer_path at least)"
            )
        return T5Layer(input_dim=input_dim, num_classes=num_classes, settings=settings)

    def loss(
        self, outputs: SequenceOutputs, target: torch.Tensor, label_smoothing: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed token cross-entropy, each labelled sample's averaged over its
        tokens, and the count of labelled samples."""
        logits = outputs.logits.float()
        per_token = F.cross_entropy(
            logits.transpose(1, 2),
            target,
            ignore_index=IGNORE_INDEX,
            reduction="none",
            label_smoothing=label_smoothing,
        )
        tokens = (target != IGNORE_INDEX).sum(dim=-1)
        per_sample = per_token.sum(dim=-1) / tokens.clamp(min=1)
        return per_sample.sum(), (tokens > 0).sum()

    def metrics(self, num_classes: int) -> dict[str, Metric]:
        """Corpus BLEU-4 and chrF (0-100) over the labelled samples."""
        del num_classes
        return {"bleu4": CorpusBleu(), "chrf": Chrf()}

    def metric_inputs(
        self, outputs: SequenceOutputs, target: torch.Tensor
    ) -> tuple[list[str], list[str]]:
        """The generated and reference sentences of the labelled samples."""
        del target
        pairs = [
            (hypothesis, reference)
            for hypothesis, reference in zip(
                outputs.hypotheses or [], outputs.references or []
            )
            if reference
        ]
        return [h for h, _ in pairs], [r for _, r in pairs]

    def predict(self, outputs: SequenceOutputs) -> list[str]:
        """The generated sentence per sample."""
        return list(outputs.hypotheses or [])
