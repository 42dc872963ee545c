"""torchvision's video networks as feature extractors: a clip in, temporal tokens out.

Unlike the per-frame extractors, a video network sees the whole clip at once and
strides over time: `T` frames give `T' = T / frame_stride` tokens, each pooled over
space and projected to `representation_size`. Which frames each token covers is
`token_positions`, which the pipeline uses for the tokens' mask (see
`models.registry.ClipFeatureExtractor`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional

from config.model import VIDEO_NETWORKS, VideoNetworkInput
from models.registry import FEATURE_EXTRACTORS
from models.weights import WEIGHTS_KEY, check_weights_file, load_weights_file
from utils.errors import ConfigError


def _resnet3d_tokens(network: nn.Module, clip: torch.Tensor) -> torch.Tensor:
    """R3D / MC3 / R(2+1)D: stem and four stages, `(B, C, T', H', W')`."""
    features = network.stem(clip)
    for stage in (network.layer1, network.layer2, network.layer3, network.layer4):
        features = stage(features)
    return features.mean(dim=(3, 4)).transpose(1, 2)


def _s3d_tokens(network: nn.Module, clip: torch.Tensor) -> torch.Tensor:
    """S3D: its separable-convolution trunk, `(B, C, T', H', W')`."""
    return network.features(clip).mean(dim=(3, 4)).transpose(1, 2)


def _swin3d_tokens(network: nn.Module, clip: torch.Tensor) -> torch.Tensor:
    """Swin3D: patch embedding, the four stages and the norm, `(B, T', H', W', C)`."""
    features = network.features(network.pos_drop(network.patch_embed(clip)))
    return network.norm(features).mean(dim=(2, 3))


def _mvit_tokens(network: nn.Module, clip: torch.Tensor) -> torch.Tensor:
    """MViT: the patch tokens after the last block (its class token dropped)."""
    tokens = network.conv_proj(clip).flatten(2).transpose(1, 2)
    tokens = network.pos_encoding(tokens)
    thw = (network.pos_encoding.temporal_size, *network.pos_encoding.spatial_size)
    for block in network.blocks:
        tokens, thw = block(tokens, thw)
    patches = network.norm(tokens)[:, 1:]
    return patches.reshape(patches.shape[0], thw[0], -1, patches.shape[-1]).mean(2)


#: family -> (the trunk as tokens `(B, T', C)`, the classifier's attribute name,
#: whether the trunk is convolutional, so that channels_last_3d applies).
_FAMILIES: dict[str, tuple[Callable, str, bool]] = {
    "resnet3d": (_resnet3d_tokens, "fc", True),
    "s3d": (_s3d_tokens, "classifier", True),
    "swin3d": (_swin3d_tokens, "head", False),
    "mvit": (_mvit_tokens, "head", False),
}


class VideoFeatureExtractor(nn.Module):
    """A torchvision video network over whole clips, pooled over space only.

    Frames arrive as uint8 and are normalised here with the mean/std the network's
    torchvision weights expect. Padded frames are zeroed after normalisation, and
    the clip is padded at the end to what the network needs (a multiple of its
    frame stride, or its exact frame count), so every batch runs.

    Args:
        network: the torchvision video model, classifier replaced by `nn.Identity`.
        name: its torchvision name (a key of `VIDEO_NETWORKS`).
        representation_size: the size of the tokens returned.
        mean: per-channel mean of the expected input (0-1 scale).
        std: per-channel std of the expected input (0-1 scale).
        pretrained: whether the weights came from a file.
    """

    def __init__(
        self,
        *,
        network: nn.Module,
        name: str,
        representation_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        self.spec: VideoNetworkInput = VIDEO_NETWORKS[name]
        self.tokens_of, _, self.convolutional = _FAMILIES[self.spec.family]
        self.backbone = network
        self.backbone_name = name
        self.pretrained = pretrained
        self.projection = nn.Linear(self.spec.width, representation_size)
        self.out_dim = representation_size
        shape = (1, 1, -1, 1, 1)
        self.register_buffer("mean", torch.tensor(mean).view(shape) * 255.0)
        self.register_buffer("std", torch.tensor(std).view(shape) * 255.0)
        self._memory_format = torch.contiguous_format

    def input_frames(self, num_frames: int) -> int:
        """The frame count the network is run on for a batch of `num_frames`."""
        if self.spec.exact_frames is not None:
            if num_frames > self.spec.exact_frames:
                raise ConfigError(
                    f"feature_extractor.name: {self.backbone_name} takes at most "
                    f"{self.spec.exact_frames} frames per clip, got {num_frames} "
                    "(train_parameters.num_segments)"
                )
            return self.spec.exact_frames
        stride = self.spec.frame_stride
        return max(stride, math.ceil(num_frames / stride) * stride)

    def token_positions(self, num_frames: int, num_tokens: int) -> torch.Tensor:
        """`(num_frames,)` long: the token whose window holds each frame."""
        frames = torch.arange(num_frames, device=self.mean.device)
        return frames * num_tokens // self.input_frames(num_frames)

    def _check_size(self, height: int, width: int) -> None:
        spec = self.spec
        if spec.exact_size is not None and (height, width) != (spec.exact_size,) * 2:
            wrong = f"needs {spec.exact_size}x{spec.exact_size} frames"
        elif min(height, width) < spec.min_size:
            wrong = f"needs frames of at least {spec.min_size}x{spec.min_size}"
        else:
            return
        raise ConfigError(
            f"feature_extractor.name: {self.backbone_name} {wrong}, got "
            f"{height}x{width}; set augmentations_parameters.apply_center_crop and "
            "center_crop_size"
        )

    def forward(self, batch: dict) -> torch.Tensor:
        """Temporal tokens of each clip.

        Args:
            batch: with `frames` `(B, T, C, H, W)` uint8 (or float on the 0-255
                scale) and `mask` `(B, T)` bool, True for real frames (a prefix).

        Returns:
            `(B, T', representation_size)` tokens, `T' = input_frames(T) /
            frame_stride`; `token_positions` maps frames to them.
        """
        frames, mask = batch["frames"], batch["mask"]
        self._check_size(frames.shape[-2], frames.shape[-1])
        clip = (frames.float() - self.mean) / self.std
        clip = clip * mask[:, :, None, None, None]
        padding = self.input_frames(frames.shape[1]) - frames.shape[1]
        # (B, T, C, H, W) -> (B, C, T, H, W), zero frames appended at the end.
        clip = functional.pad(clip.transpose(1, 2), (0, 0, 0, 0, 0, padding))
        clip = clip.contiguous(memory_format=self._memory_format)
        return self.projection(self.tokens_of(self.backbone, clip))

    def prepare_for_training(self, *, channels_last: bool, compile_model: bool) -> None:
        """channels_last_3d for the convolutional networks (weights and clips), where
        it speeds up 3-D convolutions; the transformers' tokens are already
        channel-last. Compiled in place with dynamic shapes."""
        if channels_last and self.convolutional:
            self._memory_format = torch.channels_last_3d
            self.backbone.to(memory_format=torch.channels_last_3d)
        if compile_model:
            self.backbone.compile(dynamic=True)


def _load_network_weights(network: nn.Module, name: str, pretrained_path: str) -> None:
    """Load a torchvision weights file (a state_dict) into `network`, refusing a file
    that lacks any of its tensors (the classifier may be missing)."""
    classifier = _FAMILIES[VIDEO_NETWORKS[name].family][1]
    state = load_weights_file(pretrained_path)
    state = state.get("state_dict", state) if isinstance(state, dict) else {}
    expected = network.state_dict()
    missing = [
        key
        for key in expected
        if key not in state and not key.startswith(f"{classifier}.")
    ]
    wrong = [
        key
        for key in expected
        if key in state
        and not (
            isinstance(state[key], torch.Tensor)
            and state[key].shape == expected[key].shape
        )
    ]
    if missing or wrong:
        example = (missing or wrong)[0]
        raise ConfigError(
            f"{WEIGHTS_KEY}: '{pretrained_path}' does not hold {name} weights "
            f"({len(missing)} of its {len(expected)} tensors are missing and "
            f"{len(wrong)} have another shape, e.g. {example}); use torchvision's "
            f"{name} weights file"
        )
    network.load_state_dict(
        {key: value for key, value in state.items() if key in expected}, strict=False
    )


def build_video_extractor(
    name: str, *, representation_size: int, pretrained_path: str | None = None
) -> VideoFeatureExtractor:
    """torchvision's video network `name` (weights=None), optionally with weights
    from a local file, normalising as its torchvision weights expect."""
    # torchvision takes seconds to import: only the video networks need it.
    import torchvision  # pylint: disable=import-outside-toplevel

    check_weights_file(pretrained_path)
    network = torchvision.models.get_model(name, weights=None)
    if pretrained_path is not None:
        _load_network_weights(network, name, pretrained_path)
    setattr(network, _FAMILIES[VIDEO_NETWORKS[name].family][1], nn.Identity())
    preset = torchvision.models.get_model_weights(name).DEFAULT.transforms()
    return VideoFeatureExtractor(
        network=network,
        name=name,
        representation_size=representation_size,
        mean=tuple(preset.mean),
        std=tuple(preset.std),
        pretrained=pretrained_path is not None,
    )


def _register(name: str) -> None:
    def make(
        *, representation_size: int, pretrained_path: str | None = None
    ) -> VideoFeatureExtractor:
        return build_video_extractor(
            name,
            representation_size=representation_size,
            pretrained_path=pretrained_path,
        )

    make.__doc__ = f"torchvision's `{name}` video network over whole clips."
    spec = VIDEO_NETWORKS[name]
    needs = (
        f"; needs {spec.requirement()}" if spec.exact_size or spec.min_size > 1 else ""
    )
    FEATURE_EXTRACTORS.register(
        name,
        reads=("clip",),
        min_frames=spec.exact_frames or 1,
        summary=f"torchvision's `{name}` over the whole clip, pooled over space "
        f"only: one token per {spec.frame_stride} frame(s), projected to "
        f"`representation_size`{needs}; see [Video networks](video-networks.md)",
        weights="torchvision's weights file of that network (a state dict); only "
        "the classifier may be missing",
    )(make)


for _name in VIDEO_NETWORKS:
    _register(_name)
