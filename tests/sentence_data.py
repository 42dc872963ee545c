"""A tiny synthetic corpus of signed "sentences" for the sequence heads' tests.

Each gloss is a distinct right-hand trajectory of a few frames; a sentence strings
2-4 glosses together with short gaps without hands (NaN rows). The root holds
`name/name.npz` landmark files, a tab-separated `sentences.tsv` (`name start end
glosses text first split`: the gloss ids `27+82+5`, the lower-case words, the first
gloss as a class label), `glosses.txt` and a word tokenizer in `tokenizer/`.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from helpers import merge, tiny_overrides
from utils.tokenizer import build_word_tokenizer

GLOSSES = ["book", "drink", "chair", "mother", "go"]
FRAMES_PER_GLOSS = 5
GAP = 2


def _hand(gloss: int, step: int, rng: np.random.Generator) -> np.ndarray:
    """`(21, 3)` points of a hand whose position and spread say the gloss."""
    angle = 2 * np.pi * gloss / len(GLOSSES) + 0.3 * step
    centre = np.array([np.cos(angle), np.sin(angle), 0.0]) * (1.0 + 0.2 * gloss)
    offsets = np.linspace(-1, 1, 21)[:, None] * np.array([0.1, 0.05 * gloss, 0.02])
    return (centre + offsets + rng.normal(0, 0.01, (21, 3))).astype(np.float32)


def make_sentence_root(
    root: Path, *, sentences: int = 24, seed: int = 0, val_share: float = 0.25
) -> Path:
    """Write the corpus to `root` (see the module docstring); returns `root`."""
    rng = np.random.default_rng(seed)
    rows = ["name\tstart\tend\tglosses\ttext\tfirst\tsplit"]
    for index in range(sentences):
        ids = list(rng.choice(len(GLOSSES), size=rng.integers(2, 5), replace=False))
        right = []
        for position, gloss in enumerate(ids):
            if position:
                right += [np.full((21, 3), np.nan, np.float32)] * GAP
            right += [_hand(gloss, step, rng) for step in range(FRAMES_PER_GLOSS)]
        points = np.stack(right)
        name = f"S{index:04d}"
        folder = root / name
        folder.mkdir(parents=True)
        np.savez(
            folder / f"{name}.npz",
            right_hand=points,
            left_hand=np.full_like(points, np.nan),
        )
        split = "val" if index < round(val_share * sentences) else "train"
        glosses = "+".join(str(i) for i in ids)
        words = " ".join(GLOSSES[i] for i in ids)
        rows.append(
            f"{name}\t0\t{len(points) - 1}\t{glosses}\t{words}\t{ids[0]}\t{split}"
        )
    (root / "sentences.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (root / "glosses.txt").write_text(
        "".join(f"{i} {word.upper()}\n" for i, word in enumerate(GLOSSES)),
        encoding="utf-8",
    )
    build_word_tokenizer(GLOSSES, root / "tokenizer")
    return root


def sentence_config(shipped_config: dict, root: Path, run: Path) -> dict:
    """The shipped config, shrunk, on the corpus: landmarks, a CTC head `glosses`,
    a tiny T5 head `text` and a classification head `first`."""
    config = merge(copy.deepcopy(shipped_config), tiny_overrides())
    merge(
        config,
        {
            "general_parameters": {
                "data_path": str(root),
                "path_to_save": str(run),
                "annotation_file": "sentences.tsv",
                "annotation_separator": "\t",
            },
            "train_parameters": {
                "landmarks": True,
                "num_segments": 32,
                "batch_size": 4,
                "epochs": 2,
                "classification_mode": "gloss",
            },
            "landmarks_parameters": {"components": ["left_hand", "right_hand"]},
        },
    )
    config["heads"]["gloss"] = {
        "glosses": {"kind": "ctc"},
        "text": {
            "kind": "t5",
            "tokenizer_path": str(root / "tokenizer"),
            "model_dim": 16,
            "num_layers": 1,
            "num_decoder_layers": 1,
            "num_heads": 2,
            "feedforward_size": 32,
            "max_target_length": 8,
        },
        "first": {"kind": "classification"},
    }
    config["feature_extractor"] = {
        "name": "landmarks_extractor",
        "representation_size": 16,
    }
    return config
