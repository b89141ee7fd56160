"""Reading a built corpus: token arrays, document texts, the manifest and split sizes.

A build in ``<cache>`` (see :func:`scaling_lib.training.tokenizer.resolve_cache_dir`)
holds ``tokens/<split>.npy`` (``uint16`` ids, each document followed by the
end-of-document token), ``texts/<split>.jsonl`` (one document per line), the
tokenizer and ``manifest.json`` (sizes and SHA-256 of every file). The readers
here never build anything: a missing file raises :class:`FileNotFoundError`
saying how to build it (:data:`BUILD_HINT`).

Examples
--------
>>> SPLITS[:3]
('train_en', 'val_en', 'heldout_en')
>>> load_tokens("val_fr")
Traceback (most recent call last):
    ...
ValueError: unknown split 'val_fr'; expected one of ('train_en', 'val_en', 'heldout_en', 'val_code', 'val_de')
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np

from scaling_lib.training import tokenizer as tk
from scaling_lib.training.corpora.sources import Document

SPLITS = ("train_en", "val_en", "heldout_en", "val_code", "val_de")
"""Names of the built splits."""

MANIFEST_FILE = "manifest.json"
BUILD_HINT = "build it with `python -m scaling_lib.training.corpora build`"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def load_manifest(cache_dir: str | os.PathLike | None = None) -> dict:
    """The manifest of the build in ``cache_dir``.

    Raises
    ------
    FileNotFoundError
        If no build is there; the message says how to build it.
    """
    path = tk.resolve_cache_dir(cache_dir) / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no corpus build at {path.parent} (missing {MANIFEST_FILE}); {BUILD_HINT}")
    return json.loads(path.read_text(encoding="utf-8"))


def load_tokens(split: str, cache_dir: str | os.PathLike | None = None, mmap: bool = False) -> np.ndarray:
    """Token ids of a split: ``uint16``, documents each followed by ``EOT``.

    Parameters
    ----------
    split : str
        One of :data:`SPLITS`.
    cache_dir : path-like, optional
    mmap : bool
        Memory-map the file read-only instead of reading it.

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    ValueError
        Unknown split.
    FileNotFoundError
        The split has not been built; the message names it and how to build it.

    Examples
    --------
    >>> ids = load_tokens("val_en")  # doctest: +SKIP
    >>> ids.dtype  # doctest: +SKIP
    dtype('uint16')
    """
    _check_split(split)
    path = tk.resolve_cache_dir(cache_dir) / "tokens" / f"{split}.npy"
    if not path.is_file():
        raise FileNotFoundError(f"corpus split {split!r} not built (missing {path}); {BUILD_HINT}")
    arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    if arr.dtype != np.uint16 or arr.ndim != 1:
        raise ValueError(f"{path}: expected a 1-D uint16 array, got {arr.dtype} with shape {arr.shape}")
    return arr


def split_stats(split: str, cache_dir: str | os.PathLike | None = None) -> dict:
    """Size of a built split.

    Returns
    -------
    dict
        ``n_tokens`` (array length, ``EOT`` included), ``n_bytes`` (UTF-8
        bytes of the documents), ``n_docs``, ``bytes_per_token`` and
        ``by_source``. Bits per byte = loss / ln 2 / bytes_per_token.

    Examples
    --------
    >>> split_stats("train_en")["n_tokens"]  # doctest: +SKIP
    """
    _check_split(split)
    manifest = load_manifest(cache_dir)
    if split not in manifest["splits"]:
        raise FileNotFoundError(f"corpus split {split!r} missing from the manifest; {BUILD_HINT}")
    return dict(manifest["splits"][split])


def load_documents(split: str, cache_dir: str | os.PathLike | None = None,
                   sources: Sequence[str] | None = None) -> list[Document]:
    """Documents of a split, optionally only from the named sources."""
    _check_split(split)
    path = tk.resolve_cache_dir(cache_dir) / "texts" / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"corpus split {split!r} not built (missing {path}); {BUILD_HINT}")
    keep = None if sources is None else set(sources)
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if keep is None or rec["source"] in keep:
                out.append(Document(rec["id"], rec["source"], rec["text"]))
    return out


def load_texts(split: str, cache_dir: str | os.PathLike | None = None,
               sources: Sequence[str] | None = None) -> list[str]:
    """Texts of a split's documents (``"heldout_en"`` is the pool for downstream tasks).

    Examples
    --------
    >>> texts = load_texts("heldout_en", sources=["sotu", "brown"])  # doctest: +SKIP
    """
    return [d.text for d in load_documents(split, cache_dir, sources)]


def summary_table(manifest: dict) -> str:
    """A plain-text table of a manifest's splits (docs, bytes, tokens, bytes/token)."""
    rows = [f"{'split':<11} {'docs':>8} {'bytes':>12} {'tokens':>12} {'bytes/token':>11}"]
    for name in SPLITS:
        r = manifest["splits"].get(name)
        if r:
            bpt = f"{r['bytes_per_token']:.3f}" if r["bytes_per_token"] else "-"
            rows.append(f"{name:<11} {r['n_docs']:>8,} {r['n_bytes']:>12,} {r['n_tokens']:>12,} {bpt:>11}")
    return "\n".join(rows)
