"""Byte-level BPE tokenizer for the testbed corpora.

The tokenizer is a Hugging Face ``tokenizers`` byte-level BPE with a
vocabulary of :data:`VOCAB_SIZE` entries: the 256 byte symbols, one
end-of-document special token (:data:`EOT`) and learned merges. It is trained
on the English training split only and saved as JSON next to the corpora
(see :func:`default_cache_dir`). Token arrays store documents joined by the
end-of-document token, each document followed by one ``EOT``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

VOCAB_SIZE = 1024
"""Number of token ids, special token included."""

EOT = "<|endoftext|>"
"""End-of-document special token (id 0)."""

TOKENIZER_FILE = "tokenizer.json"
"""File name of the saved tokenizer inside the corpus cache directory."""

CACHE_ENV = "SCALING_CACHE"
"""Environment variable that overrides the corpus cache directory."""


def default_cache_dir() -> Path:
    """Directory that holds the built corpora, token arrays and tokenizer.

    ``$SCALING_CACHE`` when set, otherwise ``<repo>/.cache/corpora``.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> default_cache_dir().name in ("corpora", Path(os.environ.get("SCALING_CACHE", "x")).name)
    True
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / ".cache" / "corpora"


def resolve_cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    """``cache_dir`` as a Path, or :func:`default_cache_dir` when ``None``."""
    return default_cache_dir() if cache_dir is None else Path(cache_dir)


def train_tokenizer(texts: Iterable[str], vocab_size: int = VOCAB_SIZE) -> Tokenizer:
    """Train a byte-level BPE tokenizer on an iterable of documents.

    Training is deterministic for a given sequence of texts. The
    end-of-document token gets id 0, the 256 byte symbols follow, then merges.

    Parameters
    ----------
    texts : iterable of str
        Training documents (the English training split).
    vocab_size : int
        Total vocabulary size, special token included; at most 65536 so that
        ids fit in ``uint16``.

    Returns
    -------
    tokenizers.Tokenizer

    Examples
    --------
    >>> tok = train_tokenizer(["the cat sat on the mat"] * 20, vocab_size=300)
    >>> tok.decode(tok.encode("the mat").ids)
    'the mat'
    """
    if not 258 <= vocab_size <= 65536:
        raise ValueError(f"vocab_size must be in [258, 65536], got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def save_tokenizer(tok: Tokenizer, cache_dir: str | os.PathLike | None = None) -> Path:
    """Write ``tok`` as JSON into the cache directory and return the path."""
    path = resolve_cache_dir(cache_dir) / TOKENIZER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(tok.to_str(pretty=True), encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_tokenizer(cache_dir: str | os.PathLike | None = None) -> Tokenizer:
    """Load the trained tokenizer from the corpus cache.

    Parameters
    ----------
    cache_dir : path-like, optional
        Corpus cache directory; defaults to :func:`default_cache_dir`.

    Returns
    -------
    tokenizers.Tokenizer

    Raises
    ------
    FileNotFoundError
        If the tokenizer has not been built yet; the message says how to build it.

    Examples
    --------
    >>> tok = load_tokenizer()  # doctest: +SKIP
    >>> tok.get_vocab_size()  # doctest: +SKIP
    1024
    """
    path = resolve_cache_dir(cache_dir) / TOKENIZER_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"tokenizer not found at {path}; build the corpora and tokenizer with "
            f"`python -m scaling_lib.training.corpora build` (cache directory: {path.parent})"
        )
    return Tokenizer.from_file(str(path))


def eot_id(tok: Tokenizer) -> int:
    """Id of the end-of-document token in ``tok``."""
    idx = tok.token_to_id(EOT)
    if idx is None:
        raise ValueError(f"tokenizer has no end-of-document token {EOT!r}")
    return idx


def encode_documents(tok: Tokenizer, texts: Sequence[str]) -> np.ndarray:
    """Encode documents into one ``uint16`` array, each followed by ``EOT``.

    Parameters
    ----------
    tok : tokenizers.Tokenizer
    texts : sequence of str

    Returns
    -------
    numpy.ndarray
        1-D ``uint16`` array of length ``sum(len(ids_i) + 1)``.

    Examples
    --------
    >>> tok = train_tokenizer(["ab ab ab"] * 10, vocab_size=260)
    >>> arr = encode_documents(tok, ["ab", "ab ab"])
    >>> int(arr[-1]) == eot_id(tok), arr.dtype
    (True, dtype('uint16'))
    """
    if tok.get_vocab_size() > 65536:
        raise ValueError("vocabulary too large for uint16 token arrays")
    eot = eot_id(tok)
    parts = []
    for enc in tok.encode_batch(list(texts), add_special_tokens=False):
        parts.append(np.asarray(enc.ids, dtype=np.uint16))
        parts.append(np.asarray([eot], dtype=np.uint16))
    if not parts:
        return np.zeros(0, dtype=np.uint16)
    return np.concatenate(parts)


def decode(tok: Tokenizer, ids: Iterable[int]) -> str:
    """Decode token ids to text; ``EOT`` tokens are dropped."""
    return tok.decode([int(i) for i in ids], skip_special_tokens=True)
