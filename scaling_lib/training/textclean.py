"""Plain text out of the corpora's source formats: cleaning and extraction helpers.

Each function takes the raw text (or bytes) of one file and returns prose,
dropping markup, code and licence boilerplate, so that
:mod:`scaling_lib.training.corpora` trains on text a reader would read:

* :func:`normalize_text`: Unicode NFC, newlines, blank runs;
* :func:`strip_gutenberg`: the Project Gutenberg header and licence;
* :func:`detag_brown`: the Brown corpus's ``word/tag`` format;
* :func:`rst_to_text`, :func:`pod_to_text`, :func:`html_to_text`:
  reStructuredText (Linux docs), POD (Perl docs) and HTML (PostgreSQL docs),
  code and literal blocks removed;
* :func:`split_fortunes`: a ``fortune`` file into its entries;
* :func:`read_ztext`, :func:`osis_to_chapters`: SWORD Bible modules
  (zlib-compressed OSIS) into chapters;
* :func:`decode_bytes`: UTF-8 with a Latin-1 fallback.

Examples
--------
>>> split_fortunes("one\\n%\\ntwo\\nlines\\n%\\n")
['one', 'two\\nlines']
"""

from __future__ import annotations

import html
import html.parser
import re
import struct
import unicodedata
import zlib


def normalize_text(text: str) -> str:
    """NFC-normalise, unify newlines, strip trailing spaces and collapse blank runs.

    Examples
    --------
    >>> normalize_text("a  \\r\\n\\n\\n\\nb\\n")
    'a\\n\\nb'
    """
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\x00", "").replace("\ufeff", "")
    lines = [ln.rstrip() for ln in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


_GUTENBERG_START = re.compile(r"^\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG.*$", re.I | re.M)
_GUTENBERG_END = re.compile(r"^\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG.*$|^End of (the )?Project Gutenberg.*$",
                            re.I | re.M)


def strip_gutenberg(text: str) -> str:
    """Remove a Project Gutenberg header and licence footer if present.

    Examples
    --------
    >>> strip_gutenberg("header\\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\\nbody\\n"
    ...                 "*** END OF THE PROJECT GUTENBERG EBOOK X ***\\nlicence")
    'body'
    """
    m = _GUTENBERG_START.search(text)
    if m:
        text = text[m.end():]
    m = _GUTENBERG_END.search(text)
    if m:
        text = text[: m.start()]
    return text.strip()


_BROWN_OPEN = {"``", "(", "[", "{", "$"}
_BROWN_CLOSE = {"''", ",", ".", ";", ":", "?", "!", ")", "]", "}", "'", "%", "n't"}


def detag_brown(raw: str) -> str:
    """Turn a tagged Brown corpus file (``word/tag``) into plain paragraphs.

    Paragraphs are groups of non-blank lines; tokens are re-joined with the
    usual spacing around punctuation and ````...''`` quotes become ``"``.

    Examples
    --------
    >>> detag_brown("\\tThe/at jury/nn said/vbd ``/`` yes/rb ''/'' ./.\\n")
    'The jury said "yes".'
    """
    paragraphs, current = [], []
    for line in raw.split("\n") + [""]:
        if line.strip():
            current.extend(tok.rsplit("/", 1)[0] for tok in line.split())
        elif current:
            paragraphs.append(_join_brown(current))
            current = []
    return "\n\n".join(paragraphs)


def _join_brown(tokens: list[str]) -> str:
    out = ""
    glue = False  # previous token opens: no space after it
    for tok in tokens:
        if out and not glue and tok not in _BROWN_CLOSE:
            out += " "
        out += {"``": '"', "''": '"'}.get(tok, tok)
        glue = tok in _BROWN_OPEN
    return out.strip()


_RST_KEEP_BODY = {"note", "warning", "attention", "important", "hint", "tip", "caution", "danger",
                  "admonition", "seealso", "epigraph", "topic", "sidebar"}
_RST_UNDERLINE = re.compile(r"^([=\-~^*#\"'`+_.:])\1{2,}\s*$")
_RST_DIRECTIVE = re.compile(r"^\s*\.\.\s+(?:([\w:-]+)::|\S)")


def rst_to_text(rst: str) -> str:
    """Reduce reStructuredText to prose: drop code and literal blocks, tables,
    non-prose directives, comments and section underlines, and unwrap inline markup.

    Examples
    --------
    >>> rst_to_text("Title\\n=====\\n\\nUse ``foo()`` here::\\n\\n    code\\n\\nSee :ref:`docs <x>`.")
    'Title\\n\\nUse foo() here:\\n\\nSee docs.'
    """
    lines = rst.split("\n")
    out: list[str] = []
    skip_indent: int | None = None  # drop lines indented deeper than this
    literal_base: int | None = None  # indent of a paragraph that ended with "::"
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if not stripped or indent > skip_indent:
                continue
            skip_indent = None
        if literal_base is not None and stripped:
            base, literal_base = literal_base, None
            if indent > base:
                skip_indent = base
                continue
        m = _RST_DIRECTIVE.match(line)
        if m:
            name = (m.group(1) or "").lower()
            if name in _RST_KEEP_BODY:
                continue
            skip_indent = indent
            continue
        if _RST_UNDERLINE.match(stripped) or stripped.startswith(("+-", "+=", "|")) or re.fullmatch(r"[=\s]+", stripped or "x"):
            continue
        if stripped.endswith("::"):
            literal_base = indent
            stripped = stripped[:-2].rstrip()
            stripped = stripped + ":" if stripped else ""
            if not stripped:
                continue
        out.append(" " * indent + stripped if stripped else "")
    text = "\n".join(ln.strip() for ln in out)
    text = re.sub(r":[\w:+-]+:`([^`<]*?)\s*<[^`>]*>`", r"\1", text)  # :role:`text <target>`
    text = re.sub(r":[\w:+-]+:`~?([^`]*)`", r"\1", text)  # :role:`text`
    text = re.sub(r"`([^`<]+?)\s*<[^`>]+>`__?", r"\1", text)  # `text <url>`_
    text = re.sub(r"``([^`]+)``", r"\1", text)
    text = re.sub(r"`([^`]+)`_{0,2}", r"\1", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"\1", text)
    text = re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"\1", text)
    text = re.sub(r"\b(\w+)__?(?=[\s.,;:)]|$)", r"\1", text)
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if _is_prose(p)]
    return "\n\n".join(p.strip() for p in paragraphs)


def _is_prose(paragraph: str) -> bool:
    p = paragraph.strip()
    if len(p) < 2:
        return False
    letters = sum(c.isalpha() or c.isspace() for c in p)
    return letters / len(p) >= 0.8


def split_fortunes(raw: str) -> list[str]:
    """Split a fortune(6) file on its ``%`` separator lines."""
    return [t.strip() for t in re.split(r"^%\s*$", raw, flags=re.M) if t.strip()]


_POD_DROP = re.compile(r"^=(over|back|cut|pod|encoding|for|begin|end|index)\b")


def pod_to_text(pod: str) -> str:
    """Reduce Perl POD to prose: keep headings, items and text paragraphs;
    drop verbatim (indented) blocks, ``=begin``/``=end`` regions and commands;
    unwrap formatting codes such as ``C<...>`` and ``L<text|target>``.

    Examples
    --------
    >>> pod_to_text("=head1 NAME\\n\\nUse C<< $x >> and L<perlfunc/open>.\\n\\n  my $x = 1;\\n\\n=cut\\n")
    'NAME\\n\\nUse $x and perlfunc/open.'
    """
    out, in_begin = [], False
    for para in re.split(r"\n[ \t]*\n", pod):
        para = para.strip("\n")
        if not para.strip():
            continue
        if para.startswith("=begin"):
            in_begin = True
            continue
        if para.startswith("=end"):
            in_begin = False
            continue
        if in_begin or para[0] in " \t" or _POD_DROP.match(para):
            continue
        if para.startswith("="):
            para = re.sub(r"^=item\s+(?:[*]|\d+\.?)(?=\s|$)", "", para)  # list bullets
            para = re.sub(r"^=\w+\s*", "", para)
        out.append(para.strip())
    text = "\n\n".join(p for p in out if p)
    text = re.sub(r"[A-Z]<<+\s+(.*?)\s+>>+", r"\1", text, flags=re.S)
    escapes = {"lt": "<", "gt": ">", "verbar": "|", "sol": "/"}
    for _ in range(4):  # nested codes, innermost first
        text = re.sub(r"E<(\w+)>", lambda m: escapes.get(m.group(1), html.unescape(f"&{m.group(1)};")), text)
        text = re.sub(r"[XZ]<[^<>]*>", "", text)
        text = re.sub(r"L<([^<>|]*)\|[^<>]*>", r"\1", text)
        text = re.sub(r"[A-Z]<([^<>]*)>", r"\1", text)
    paragraphs = [p for p in text.split("\n\n") if _is_prose(p)]
    return "\n\n".join(paragraphs)


class _HTMLText(html.parser.HTMLParser):
    """Collect prose from an HTML page, skipping code, tables and navigation."""

    SKIP = {"pre", "script", "style", "table", "head"}
    SKIP_CLASSES = {"navheader", "navfooter", "toc", "synopsis", "programlisting", "screen"}
    BLOCK = {"p", "h1", "h2", "h3", "h4", "h5", "li", "dt", "dd", "div", "br", "blockquote", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip: list[str] = []  # open tags whose content is dropped

    def handle_starttag(self, tag, attrs):
        classes = set((dict(attrs).get("class") or "").split())
        if self.skip:
            if tag == self.skip[0]:
                self.skip.append(tag)
            return
        if tag in self.SKIP or classes & self.SKIP_CLASSES:
            self.skip.append(tag)
        elif tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if self.skip:
            if tag == self.skip[0]:
                self.skip.pop()
            return
        if tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def html_to_text(page: str) -> str:
    """Reduce an HTML page to prose paragraphs (no code, tables or navigation).

    Examples
    --------
    >>> html_to_text("<html><head><title>T</title></head><body><h2>Intro</h2>"
    ...              "<p>Some <b>bold</b> words.</p><pre>SELECT 1;</pre></body></html>")
    'Intro\\n\\nSome bold words.'
    """
    parser = _HTMLText()
    parser.feed(page)
    parser.close()
    paragraphs = (" ".join(p.split()) for p in "".join(parser.parts).split("\n\n"))
    return "\n\n".join(p for p in paragraphs if _is_prose(p))


_OSIS_CHAPTER_START = re.compile(r'<chapter\b[^>]*\bsID="([^"]+)"[^>]*/>')
_OSIS_CHAPTER_END = re.compile(r'<chapter\b[^>]*\beID="[^"]*"[^>]*/>')


def _osis_plain(osis: str) -> str:
    body = re.sub(r"<note\b.*?</note>", "", osis, flags=re.S)
    body = re.sub(r"<(title|chapter|lg|l)\b[^>]*>|</title>|<div\b[^>]*type=\"x-p\"[^>]*/>", "\n\n", body)
    body = html.unescape(re.sub(r"<[^>]+>", "", body))
    paragraphs = (" ".join(p.split()) for p in body.split("\n\n"))
    return "\n\n".join(p for p in paragraphs if p)


def osis_to_chapters(osis: str) -> list[tuple[str, str]]:
    """Split a SWORD module's OSIS text into ``(chapter id, plain text)`` pairs.

    A chapter runs to its closing milestone; material between chapters (book
    titles, introductions) goes with the chapter that follows. Notes are
    dropped; titles and paragraph markers become paragraph breaks; all other
    markup is removed.

    Examples
    --------
    >>> osis_to_chapters('<title>Genesis</title><chapter sID="Gen.1"/> In the <w lemma="x">beginning</w>.'
    ...                  '<note>n</note><chapter eID="Gen.1"/><chapter sID="Gen.2"/>Thus.<chapter eID="Gen.2"/>')
    [('Gen.1', 'Genesis\\n\\nIn the beginning.'), ('Gen.2', 'Thus.')]
    """
    cuts = [m.end() for m in _OSIS_CHAPTER_END.finditer(osis)]
    bounds = [0] + cuts + [len(osis)]
    chapters: list[tuple[str, str]] = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        segment = osis[a:b]
        text = _osis_plain(segment)
        if not text:
            continue
        start = _OSIS_CHAPTER_START.search(segment)
        if start is None and chapters:  # stray trailing material
            chapters[-1] = (chapters[-1][0], chapters[-1][1] + "\n\n" + text)
        else:
            chapters.append((start.group(1) if start else f"part{len(chapters)}", text))
    return chapters


def read_ztext(files: dict[str, bytes]) -> str:
    """Concatenate the decompressed blocks of a SWORD zText module.

    ``files`` maps ``ot.bzs``/``ot.bzz``/``nt.bzs``/``nt.bzz`` (any prefix) to
    their bytes; ``*.bzs`` holds 12-byte (offset, size, uncompressed size)
    little-endian records of zlib blocks in ``*.bzz``.
    """
    out = []
    for testament in ("ot", "nt"):
        bzs = next((v for k, v in files.items() if k.endswith(f"/{testament}.bzs")), None)
        bzz = next((v for k, v in files.items() if k.endswith(f"/{testament}.bzz")), None)
        if bzs is None or bzz is None:
            continue
        for i in range(len(bzs) // 12):
            offset, size, usize = struct.unpack_from("<III", bzs, 12 * i)
            block = zlib.decompress(bzz[offset:offset + size])
            if len(block) != usize:
                raise ValueError(f"zText block {testament}/{i}: {len(block)} bytes, index says {usize}")
            out.append(block.decode("utf-8"))
    return "".join(out)


def decode_bytes(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")
