"""Word tokenizers for sentence targets: built offline from a list of words, saved
as a Hugging Face tokenizer folder, and loaded from a local path only.

The convention is T5's: `<pad>` = 0 (also the decoder's start token), `</s>` = 1
(appended to every encoded sentence), `<unk>` = 2. `build_word_tokenizer` writes a
word-level tokenizer (lower-cased, split on whitespace) in that convention;
`load_tokenizer` reads any tokenizer folder (`tokenizer.json`), e.g. a T5
SentencePiece tokenizer saved with `save_pretrained`, and refuses one that breaks
the convention.

`transformers` is imported inside the functions: it takes seconds to import, and
most users of this module's callers never need it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from utils.errors import ConfigError, UserError
from utils.files import path_problem, prepare_output

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerFast

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
#: The special tokens' ids, in order: T5's convention.
SPECIAL_TOKENS = (PAD, EOS, UNK)
TOKENIZER_FILE = "tokenizer.json"


def _quiet_tokenizers() -> None:
    # The Rust tokenizers' thread pool and DataLoader workers forked after its first
    # use deadlock; set before `tokenizers` is imported.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def word_vocabulary(words: Iterable[str]) -> dict[str, int]:
    """`{token: id}`: the special tokens, then the distinct lower-cased words (each
    string is split on whitespace), sorted."""
    distinct = {piece for word in words for piece in word.lower().split()}
    ordered = [*SPECIAL_TOKENS, *sorted(distinct - set(SPECIAL_TOKENS))]
    return {token: index for index, token in enumerate(ordered)}


def build_word_tokenizer(words: Iterable[str], folder: Path) -> Path:
    """Write a word-level tokenizer of `words` to `folder` (`save_pretrained`).

    Args:
        words: the vocabulary; strings with spaces add each of their words.
        folder: the output folder (created).

    Returns:
        `folder`, which `load_tokenizer` reads.

    Raises:
        UserError: no word given, or the folder cannot be written.
    """
    vocabulary = word_vocabulary(words)
    if len(vocabulary) == len(SPECIAL_TOKENS):
        raise UserError(f"no words to build the tokenizer in {folder} from")
    _quiet_tokenizers()
    # pylint: disable=import-outside-toplevel
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(vocabulary, unk_token=UNK))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}",
        pair=f"$A {EOS} $B {EOS}",
        special_tokens=[(EOS, vocabulary[EOS])],
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=PAD, eos_token=EOS, unk_token=UNK
    )
    prepare_output(folder)
    try:
        wrapped.save_pretrained(str(folder))
    except OSError as error:
        raise UserError(
            f"cannot write the tokenizer to {folder} ({error.strerror or error})"
        ) from None
    return folder


def load_tokenizer(path: str | Path, key: str) -> PreTrainedTokenizerFast:
    """The tokenizer saved in the folder `path`, from local files only.

    Args:
        path: a folder holding `tokenizer.json` (as `save_pretrained` writes it).
        key: the config key or option that named it, for messages.

    Raises:
        ConfigError: naming `key` and the path, when the folder is missing, holds no
            `tokenizer.json`, cannot be read, or its pad and end-of-sentence tokens
            are not ids 0 and 1 (T5's convention, which the text heads rely on).
    """
    folder = Path(path)
    problem = path_problem(folder, folder=True)
    if problem is not None:
        raise ConfigError(
            f"{key}: tokenizer folder {folder} {problem}; expected a folder "
            f"holding {TOKENIZER_FILE} (python -m data_preprocessing.tokenizer "
            "writes one)"
        )
    problem = path_problem(folder / TOKENIZER_FILE)
    if problem is not None:
        raise ConfigError(
            f"{key}: {folder} holds no {TOKENIZER_FILE} ({folder / TOKENIZER_FILE} "
            f"{problem}); expected a tokenizer folder as save_pretrained writes it"
        )
    _quiet_tokenizers()
    # pylint: disable-next=import-outside-toplevel
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, TypeError, KeyError) as error:
        reason = str(error).strip().splitlines()[0][:200] if str(error) else ""
        raise ConfigError(
            f"{key}: cannot read the tokenizer in {folder} "
            f"({reason or type(error).__name__})"
        ) from None
    ids = (tokenizer.pad_token_id, tokenizer.eos_token_id)
    if ids != (0, 1):
        raise ConfigError(
            f"{key}: the tokenizer in {folder} has pad id {ids[0]} and end-of-"
            f"sentence id {ids[1]}; expected {PAD} = 0 and {EOS} = 1 (T5's "
            "convention)"
        )
    return tokenizer
