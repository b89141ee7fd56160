"""Browser check of the built book: every page of ``_toc.yml`` is opened in headless Chromium.

The built HTML (``_build/html``) is served on 127.0.0.1 from a thread; each page listed in
``_toc.yml`` (the root and every chapter, at any depth) is loaded, MathJax is awaited, a
full-page screenshot is saved to ``_build/screenshots/<page>.png`` and the page is checked for:

* ``broken-image``: an ``<img>`` that did not load (``naturalWidth`` 0);
* ``raw-math``: TeX left in the visible text outside code (``$...$``, ``$$``, ``\\(``, ``\\[``,
  ``\\begin{``);
* ``math-unprocessed``: a math element MathJax did not typeset, and ``math-error``: one it
  typeset as an error (an unknown macro, unbalanced braces);
* ``empty-figure``: a ``<figure>`` with no image in it;
* ``console-error``, ``page-error``, ``request-failed``, ``http-error``: errors the browser
  reported while loading the page;
* ``traceback``: a Python traceback or error in a notebook output cell;
* ``no-notebook-download``, ``notebook-download``: a chapter (a notebook page) whose download
  menu offers no executed ``.ipynb``, or offers one that is missing, unreadable or has no outputs.

Each page is then opened a second time in the theme's dark mode (the browser prefers a dark
colour scheme, the book's ``default_mode`` is ``auto``), screenshotted to
``_build/screenshots/dark-<page>.png``, and every figure image is checked (``dark-figure``): it
must sit on a light panel (computed background luminance above 0.8) and its pixels, composited
over what is behind them and passed through the image's CSS filter, must keep dark ink on a light
ground (contrast ratio at least 4.5).

When the book's PDF exists (``make pdf``, ``_build/pdf/book.pdf``) it is opened too
(``pdf-unreadable``, ``pdf-empty``, ``pdf-empty-page``: a page with neither text nor an image);
``--require-pdf`` makes a missing PDF a problem.

Each problem is printed on one line naming the page; the script ends with
``N pages checked, K problems`` (``N pages checked and book.pdf, K problems`` when the PDF was
read too) and exits with status 1 when K > 0 (2 when the check itself
cannot run: no build, no browser).

The browser is driven with Playwright (``pip install playwright``), pointed at an existing
Chromium (``--chromium``, the ``CHROMIUM`` environment variable, or the wrapper made by
``scripts/install_chromium.sh``); Playwright never downloads a browser here.

Usage::

    bash scripts/install_chromium.sh
    .venv/bin/python scripts/check_book.py            # after `make book`
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import os
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import yaml
from bs4 import BeautifulSoup

REPO = Path(__file__).resolve().parent.parent

LAUNCH_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync")
"""Chromium flags: no sandbox (containers), no GPU, and no traffic of the browser's own."""

CODE_TAGS = ("pre", "code", "script", "style", "noscript", "textarea", "template", "svg",
             "mjx-container", "mjx-assistive-mml", "math")
"""Elements whose text is not prose: code, scripts, and math MathJax already rendered."""

CODE_CLASSES = ("highlight", "cell_input", "cell_output", "output", "literal-block-wrapper",
                "math")
"""Classes of blocks that show code or program output verbatim, and math elements (whose
typesetting :func:`analyze_html` checks on its own)."""

RAW_MATH = (
    ("$$", re.compile(r"\$\$(?:[^$]{0,400}?\$\$)?")),
    ("$...$", re.compile(r"(?<![\\$\w])\$(?=[^\s$\d])[^$\n]{1,200}?(?<=[^\s\\$])\$(?![\w$])")),
    ("\\(", re.compile(r"\\\(")),
    ("\\[", re.compile(r"\\\[")),
    ("\\begin{", re.compile(r"\\begin\{")),
)
"""Patterns of TeX that should have been typeset (a name for the report and a regex).
A single ``$`` before a number (a price) is not math."""

TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\w*(Error|Exception): ", re.M)
"""Text of a Python traceback or of an exception line in an output cell."""


@dataclass(frozen=True)
class Problem:
    """One problem found on one page.

    Examples
    --------
    >>> str(Problem("book/intro", "broken-image", "x.png"))
    'book/intro: broken-image: x.png'
    """

    page: str
    kind: str
    detail: str

    def __str__(self):
        return f"{self.page}: {self.kind}: {self.detail}"


def toc_pages(toc_path):
    """The pages of a Jupyter Book ``_toc.yml``, root first, in reading order.

    Entries with ``file:`` are pages (their suffix dropped); ``url:`` entries are external
    links and ``glob:`` entries are expanded by the caller, so both are skipped here.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "_toc.yml"
    >>> _ = p.write_text("root: intro\\nchapters:\\n  - file: a.md\\n    sections:\\n"
    ...                  "      - file: b\\n  - url: https://example.org\\n")
    >>> toc_pages(p)
    ['intro', 'a', 'b']
    """
    toc_path = Path(toc_path)
    with open(toc_path, encoding="utf-8") as fh:
        toc = yaml.safe_load(fh)
    if not isinstance(toc, dict) or "root" not in toc:
        raise ValueError(f"{toc_path}: no 'root' entry; is this a Jupyter Book _toc.yml?")
    pages = [_strip_suffix(toc["root"])]

    def walk(node):
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if "file" in node:
                pages.append(_strip_suffix(node["file"]))
            for key in ("parts", "chapters", "sections"):
                if key in node:
                    walk(node[key])

    walk(toc)
    return list(dict.fromkeys(pages))


def _strip_suffix(name):
    name = str(name)
    for suffix in (".md", ".ipynb", ".rst", ".py"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _has_class(tag, names):
    classes = tag.get("class") or []
    return any(c in names for c in classes)


def _in_code(node):
    for parent in node.parents:
        if parent.name is None:
            continue
        if parent.name in CODE_TAGS or _has_class(parent, CODE_CLASSES):
            return True
    return False


def prose_text(soup):
    """The text of a parsed page outside code, output cells, scripts and rendered math.

    Text nodes are joined with nothing between them inside an element and a newline between
    block elements, so TeX split by inline markup is still found whole.

    Examples
    --------
    >>> from bs4 import BeautifulSoup
    >>> s = BeautifulSoup("<p>a <em>$x$</em></p><pre>$y$</pre><p>b</p>", "html.parser")
    >>> prose_text(s)
    'a $x$\\nb'
    """
    body = soup.body or soup
    parts = []
    blocks = {"p", "div", "li", "dd", "dt", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6",
              "section", "figure", "figcaption", "blockquote", "details", "summary", "table",
              "tr", "ul", "ol", "dl", "article", "main", "nav", "aside", "header", "footer"}
    for node in body.descendants:
        if node.name is not None:
            if node.name in blocks:
                parts.append("\n")
            continue
        if type(node).__name__ != "NavigableString" or _in_code(node):
            continue
        parts.append(str(node))
    text = "".join(parts)
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def _snippet(text, start, end, width=40):
    """The match with up to ``width`` characters of context, within its line."""
    line_lo = text.rfind("\n", 0, start) + 1
    line_hi = text.find("\n", end)
    line_hi = len(text) if line_hi < 0 else line_hi
    lo, hi = max(line_lo, start - width), min(line_hi, end + width)
    return " ".join(text[lo:hi].split())


def find_raw_math(text):
    """TeX fragments in prose text that should have been typeset, as short snippets.

    Examples
    --------
    >>> find_raw_math("the law $L = E$ holds")
    ['$...$ in "the law $L = E$ holds"']
    >>> find_raw_math("it costs $5 and $10")
    []
    """
    found = []
    for name, pattern in RAW_MATH:
        for match in pattern.finditer(text):
            found.append(f'{name} in "{_snippet(text, match.start(), match.end())}"')
    return found


def analyze_html(html, page):
    """Problems visible in a page's rendered DOM (serialised after MathJax has run).

    Checks raw TeX in prose, math elements without a MathJax rendering, MathJax errors,
    figures without an image, and tracebacks or errors in notebook output cells. Browser
    events and image loading are checked by :func:`event_problems` and
    :func:`image_problems`.

    Parameters
    ----------
    html : str
        The page's HTML as the browser holds it (``page.content()``).
    page : str
        The page's name, used in every problem.

    Returns
    -------
    list of Problem

    Examples
    --------
    >>> analyze_html('<p>ok</p><figure><figcaption>c</figcaption></figure>', "p")
    [Problem(page='p', kind='empty-figure', detail='figure without an image (caption: "c")')]
    """
    soup = BeautifulSoup(html, "html.parser")
    problems = [Problem(page, "raw-math", m) for m in find_raw_math(prose_text(soup))]

    for el in soup.select(".math"):
        if el.find("mjx-container") is None:
            tex = " ".join(el.get_text().split())
            problems.append(Problem(page, "math-unprocessed", f"not typeset: {tex[:80]}"))
    for el in soup.find_all("mjx-merror"):
        message = el.get("data-mjx-error") or " ".join(el.get_text().split())
        problems.append(Problem(page, "math-error", f"MathJax error: {message[:120]}"))

    for fig in soup.find_all("figure"):
        if fig.find(["img", "svg", "object", "embed", "canvas", "video", "iframe"]) is None:
            caption = fig.find("figcaption")
            label = fig.get("id") or (" ".join(caption.get_text().split())[:60] if caption else "")
            where = f"id {label}" if fig.get("id") else f'caption: "{label}"'
            problems.append(Problem(page, "empty-figure", f"figure without an image ({where})"))

    for out in soup.select(".output, .cell_output"):
        classes = out.get("class") or []
        if "cell_output" in classes and out.select(".output"):
            continue  # its .output children are checked one by one
        text = out.get_text()
        is_error_cell = "traceback" in classes or "error" in classes
        match = TRACEBACK.search(text)
        if is_error_cell or match:
            first = match.group(0) if match else " ".join(text.split())[:80]
            problems.append(Problem(page, "traceback", f"error output cell: {first.strip()}"))
    return problems


def image_problems(images, page):
    """Problems of images as the browser loaded them.

    Parameters
    ----------
    images : list of dict
        One dict per ``<img>`` with ``src``, ``complete`` and ``naturalWidth``.
    page : str

    Examples
    --------
    >>> image_problems([{"src": "a.png", "complete": True, "naturalWidth": 0},
    ...                 {"src": "b.png", "complete": True, "naturalWidth": 640}], "p")
    [Problem(page='p', kind='broken-image', detail='a.png did not load')]
    """
    return [Problem(page, "broken-image", f"{img['src']} did not load")
            for img in images if not img.get("naturalWidth")]


AUTO_FAVICON = re.compile(r"status of 404\b.*\[https?://[^/\]]+/favicon\.ico\]$")
"""The browser's own request for ``/favicon.ico`` at the server root, which no page makes."""


def event_problems(events, page, ignore=()):
    """Problems from browser events recorded while a page loaded.

    Parameters
    ----------
    events : list of tuple
        ``(kind, detail)`` pairs with kind ``console`` (a console message, detail
        ``(type, text)``), ``pageerror`` (an uncaught exception), ``requestfailed`` (detail
        ``(url, reason)``) or ``response`` (detail ``(url, status)``).
    page : str
    ignore : sequence of str
        Regular expressions of console messages and page errors not to report.

    Examples
    --------
    >>> event_problems([("console", ("error", "boom")), ("console", ("log", "hi")),
    ...                 ("response", ("http://h/x.js", 404))], "p")  # doctest: +NORMALIZE_WHITESPACE
    [Problem(page='p', kind='console-error', detail='boom'),
     Problem(page='p', kind='http-error', detail='404 http://h/x.js')]
    """
    problems = []
    # A resource that failed is reported once, as its HTTP status, not again as the
    # console's "Failed to load resource" line or as an aborted request.
    failed_urls = {d[0] for k, d in events if k == "response" and d[1] >= 400}
    for kind, detail in events:
        if kind == "console" and detail[0] == "error":
            text = str(detail[1])
            if AUTO_FAVICON.search(text) or any(re.search(p, text) for p in ignore):
                continue
            if text.startswith("Failed to load resource") and any(
                    text.endswith(f"[{url}]") for url in failed_urls):
                continue
            problems.append(Problem(page, "console-error", text[:200]))
        elif kind == "pageerror":
            if not any(re.search(p, str(detail)) for p in ignore):
                problems.append(Problem(page, "page-error", str(detail)[:200]))
        elif kind == "requestfailed" and detail[0] not in failed_urls:
            problems.append(Problem(page, "request-failed", f"{detail[0]} ({detail[1]})"))
        elif kind == "response" and detail[1] >= 400:
            problems.append(Problem(page, "http-error", f"{detail[1]} {detail[0]}"))
    return problems


def overflow_notes(items, page):
    """Notes (not problems) on code blocks and tables wider than the text column.

    A reader has to scroll such a block sideways; the check reports it without failing.

    Parameters
    ----------
    items : list of dict
        One dict per wide element with ``tag``, ``text`` (its first line), ``width``
        and ``room`` in CSS pixels.
    page : str

    Examples
    --------
    >>> overflow_notes([{"tag": "pre", "text": "x = 1", "width": 900, "room": 690}], "p")
    [Problem(page='p', kind='overflow', detail='pre 900px wide in 690px: "x = 1"')]
    """
    return [Problem(page, "overflow", f'{i["tag"]} {i["width"]}px wide in {i["room"]}px: '
                                      f'"{i["text"]}"') for i in items]


def is_notebook_source(path):
    """Whether a page's source is a notebook: an ``.ipynb``, or Jupytext Markdown with a kernelspec.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.md").write_text("---\\nkernelspec:\\n  name: python3\\n---\\n# A\\n")
    >>> _ = (d / "b.md").write_text("# B\\n")
    >>> is_notebook_source(d / "a.md"), is_notebook_source(d / "b.md")
    (True, False)
    """
    path = Path(path)
    if path.suffix == ".ipynb":
        return path.is_file()
    if not path.is_file():
        return False
    head = path.read_text(encoding="utf-8", errors="replace")[:4000]
    if not head.startswith("---"):
        return False
    end = head.find("\n---", 3)
    return "kernelspec:" in head[: end if end > 0 else len(head)]


def notebook_download_problems(html, page, html_dir, is_notebook):
    """Problems of a page's download of its executed notebook (``.ipynb``).

    A notebook page must link to an ``.ipynb`` inside the built book that is a notebook with at
    least one output (the executed one, not the source converted); other pages are not checked.

    Examples
    --------
    >>> notebook_download_problems("<p>no link</p>", "ch", ".", True)
    [Problem(page='ch', kind='no-notebook-download', detail='no link to an executed .ipynb')]
    >>> notebook_download_problems("<p>no link</p>", "intro", ".", False)
    []
    """
    if not is_notebook:
        return []
    soup = BeautifulSoup(html, "html.parser")
    # links to other sites (a launch button on Colab) are not the download
    hrefs = [a["href"].split("#")[0] for a in soup.find_all("a", href=True)
             if a["href"].split("#")[0].endswith(".ipynb") and "://" not in a["href"]]
    if not hrefs:
        return [Problem(page, "no-notebook-download", "no link to an executed .ipynb")]
    html_dir = Path(html_dir).resolve()
    problems = []
    for href in dict.fromkeys(hrefs):
        target = ((html_dir / page).parent / href).resolve()
        if html_dir not in target.parents or not target.is_file():
            problems.append(Problem(page, "notebook-download", f"{href} does not exist"))
            continue
        try:
            nb = json.loads(target.read_text(encoding="utf-8"))
            outputs = sum(len(c.get("outputs", [])) for c in nb["cells"]
                          if c.get("cell_type") == "code")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            problems.append(Problem(page, "notebook-download",
                                    f"{href} is not a notebook ({type(exc).__name__})"))
            continue
        if not outputs:
            problems.append(Problem(page, "notebook-download", f"{href} has no outputs"))
    return problems


_COLOR = re.compile(r"rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)(?:\s*[,/]\s*([\d.]+%?))?\s*\)")


def parse_css_color(text):
    """A computed CSS colour (``rgb(...)``/``rgba(...)``/``#rrggbb``/``transparent``) as
    ``(r, g, b, alpha)`` with channels in 0..255 and alpha in 0..1; ``None`` if unknown.

    Examples
    --------
    >>> parse_css_color("rgb(248, 249, 250)")
    (248.0, 249.0, 250.0, 1.0)
    >>> parse_css_color("rgba(0, 0, 0, 0)"), parse_css_color("#ffffff")
    ((0.0, 0.0, 0.0, 0.0), (255.0, 255.0, 255.0, 1.0))
    """
    text = (text or "").strip().lower()
    if text == "transparent":
        return (0.0, 0.0, 0.0, 0.0)
    if re.fullmatch(r"#[0-9a-f]{6}", text):
        return tuple(float(int(text[i:i + 2], 16)) for i in (1, 3, 5)) + (1.0,)
    m = _COLOR.fullmatch(text)
    if not m:
        return None
    alpha = m.group(4)
    if alpha is None:
        a = 1.0
    elif alpha.endswith("%"):
        a = float(alpha[:-1]) / 100
    else:
        a = float(alpha)
    return (float(m.group(1)), float(m.group(2)), float(m.group(3)), a)


def relative_luminance(rgb):
    """WCAG relative luminance of an sRGB colour (channels 0..255): 0 black, 1 white.

    Examples
    --------
    >>> round(relative_luminance((255, 255, 255)), 3), relative_luminance((0, 0, 0))
    (1.0, 0.0)
    """
    def lin(c):
        c = max(0.0, min(1.0, c / 255))
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (lin(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(lum_a, lum_b):
    """WCAG contrast ratio of two luminances (1 to 21).

    Examples
    --------
    >>> contrast_ratio(1.0, 0.0)
    21.0
    """
    hi, lo = max(lum_a, lum_b), min(lum_a, lum_b)
    return (hi + 0.05) / (lo + 0.05)


def apply_css_filter(rgb, css_filter):
    """An sRGB colour through the ``brightness()`` and ``contrast()`` parts of a CSS filter.

    Examples
    --------
    >>> apply_css_filter((255, 255, 255), "brightness(0.8) contrast(1.2)")
    (219.3, 219.3, 219.3)
    >>> apply_css_filter((10, 20, 30), "none")
    (10, 20, 30)
    """
    out = tuple(rgb[:3])
    for name, value in re.findall(r"(brightness|contrast)\(\s*([\d.]+%?)\s*\)", css_filter or ""):
        k = float(value[:-1]) / 100 if value.endswith("%") else float(value)
        if name == "brightness":
            out = tuple(c * k for c in out)
        else:
            out = tuple((c / 255 - 0.5) * k * 255 + 127.5 for c in out)
        out = tuple(round(max(0.0, min(255.0, c)), 1) for c in out)
    return out


def _composite(pixel, ground):
    r, g, b, a = pixel
    a = a / 255 if a > 1 else a
    return tuple(a * c + (1 - a) * gc for c, gc in zip((r, g, b), ground[:3]))


def figure_contrast(pixels, ground, css_filter=""):
    """Ground and ink luminance of an image as shown, and their contrast ratio.

    ``pixels`` is a flat RGBA list (0..255, as ``getImageData`` gives it) of the image, possibly
    downsampled; each pixel is composited over ``ground`` (what shows through transparent
    pixels) and passed through the filter. The ground is the median luminance (most of a figure
    is its background), the ink the 1st percentile (axes, text, dark lines).

    Examples
    --------
    >>> black_on_clear = [0, 0, 0, 255] * 5 + [0, 0, 0, 0] * 95
    >>> [round(x, 2) for x in figure_contrast(black_on_clear, (255, 255, 255))]
    [1.0, 0.0, 21.0]
    >>> [round(x, 2) for x in figure_contrast(black_on_clear, (18, 18, 18))]
    [0.01, 0.0, 1.12]
    """
    lums = []
    for i in range(0, len(pixels) - 3, 4):
        rgb = _composite(tuple(pixels[i:i + 4]), ground)
        lums.append(relative_luminance(apply_css_filter(rgb, css_filter)))
    if not lums:
        return (0.0, 0.0, 1.0)
    lums.sort()
    ground_lum = lums[len(lums) // 2]
    ink_lum = lums[int(0.01 * (len(lums) - 1))]
    return (ground_lum, ink_lum, contrast_ratio(ground_lum, ink_lum))


DARK_PANEL_MIN = 0.8
"""Least luminance of a figure image's own background in dark mode (the light panel)."""

DARK_CONTRAST_MIN = 4.5
"""Least contrast ratio between a figure's ground and its ink as shown (WCAG AA for text)."""

DARK_INK_MAX = 0.2
"""Luminance below which a figure's darkest pixels count as dark ink (axes, text)."""


def dark_figure_problems(images, page):
    """Problems of figure images in dark mode: unreadable axes.

    Parameters
    ----------
    images : list of dict
        One dict per content image with ``src``, ``figure`` (inside a figure or an output
        cell), ``background`` (its computed ``background-color``), ``behind`` (the first
        non-transparent background behind it), ``filter`` (its computed CSS filter) and
        ``pixels`` (flat RGBA list of the downsampled image, or None when it cannot be read).
    page : str

    Examples
    --------
    >>> ink = [0, 0, 0, 255] * 5 + [0, 0, 0, 0] * 95
    >>> img = {"src": "f.png", "figure": True, "background": "rgba(0, 0, 0, 0)",
    ...        "behind": "rgb(18, 18, 18)", "filter": "none", "pixels": ink}
    >>> [p.kind for p in dark_figure_problems([img], "ch")]
    ['dark-figure', 'dark-figure']
    >>> dark_figure_problems([dict(img, background="rgb(248, 249, 250)")], "ch")
    []
    """
    problems = []
    for img in images:
        own = parse_css_color(img.get("background"))
        behind = parse_css_color(img.get("behind")) or (255.0, 255.0, 255.0, 1.0)
        ground = own if own is not None and own[3] >= 0.5 else behind
        if img.get("figure"):
            panel = relative_luminance(ground)
            if own is None or own[3] < 0.5 or panel <= DARK_PANEL_MIN:
                problems.append(Problem(page, "dark-figure",
                                        f"{img.get('src')}: no light panel in dark mode "
                                        f"(ground luminance {panel:.2f}, needs > "
                                        f"{DARK_PANEL_MIN})"))
        pixels = img.get("pixels")
        if pixels:
            g, k, ratio = figure_contrast(pixels, ground, img.get("filter"))
            if ratio < DARK_CONTRAST_MIN and k < DARK_INK_MAX:
                problems.append(Problem(page, "dark-figure",
                                        f"{img.get('src')}: dark ink on a dark ground in dark "
                                        f"mode (contrast {ratio:.1f}, needs {DARK_CONTRAST_MIN})"))
    return problems


def pdf_problems(path, name="book.pdf"):
    """Problems of the book's PDF: unreadable, no pages, or a page with neither text nor image.

    Examples
    --------
    >>> import io, tempfile, pathlib
    >>> from pypdf import PdfWriter
    >>> w = PdfWriter(); _ = w.add_blank_page(width=100, height=100)
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "blank.pdf"; _ = w.write(p)
    >>> [x.kind for x in pdf_problems(p)]
    ['pdf-empty-page']
    """
    try:
        from pypdf import PdfReader
    except ImportError:
        return [Problem(name, "pdf-unreadable", "the Python package 'pypdf' is needed")]
    try:
        reader = PdfReader(str(path))
        pages = list(reader.pages)
    except Exception as exc:  # pypdf raises many kinds on a damaged file
        return [Problem(name, "pdf-unreadable", f"{type(exc).__name__}: {exc}"[:200])]
    if not pages:
        return [Problem(name, "pdf-empty", "the PDF has no pages")]
    problems = []
    for number, pdf_page in enumerate(pages, 1):
        try:
            text = (pdf_page.extract_text() or "").strip()
            n_images = len(pdf_page.images) if not text else 0
        except Exception as exc:
            problems.append(Problem(name, "pdf-unreadable",
                                    f"page {number}: {type(exc).__name__}: {exc}"[:200]))
            continue
        if not text and not n_images:
            problems.append(Problem(name, "pdf-empty-page",
                                    f"page {number} has no text and no image"))
    return problems


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


@contextlib.contextmanager
def serve(directory):
    """Serve ``directory`` over HTTP on 127.0.0.1 on a free port; yields the base URL.

    Examples
    --------
    >>> import tempfile, urllib.request
    >>> d = tempfile.mkdtemp()
    >>> _ = open(d + "/a.html", "w").write("hi")
    >>> with serve(d) as url:
    ...     urllib.request.urlopen(url + "/a.html").read()
    b'hi'
    """
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


WAIT_FOR_MATHJAX = """async () => {
  const mj = window.MathJax;
  if (!mj || !mj.startup || !mj.startup.promise) { return false; }
  await mj.startup.promise;
  if (mj.typesetPromise) { await mj.typesetPromise(); }
  return true;
}"""

EXPAND = """() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  document.querySelectorAll('.toggle-button-hidden').forEach(b => b.click());
}"""

OVERFLOW = """() => {
  const root = document.querySelector('article') || document.body;
  const out = [];
  root.querySelectorAll('pre, table').forEach(el => {
    const room = el.tagName === 'TABLE' ? el.parentElement.clientWidth : el.clientWidth;
    if (room > 0 && el.scrollWidth > room + 2) {
      const text = (el.innerText || '').trim().split('\\n')[0];
      out.push({tag: el.tagName.toLowerCase(), text: text.slice(0, 60),
                width: el.scrollWidth, room: room});
    }
  });
  return out;
}"""

IMAGES = """() => Array.from(document.images).map(i => ({
  src: i.getAttribute('src'), complete: i.complete, naturalWidth: i.naturalWidth}))"""


DARK_IMAGES = """() => {
  const clear = c => !c || c === 'transparent' || /^rgba\\(.*,\\s*0\\)$/.test(c);
  const behind = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      if (!clear(c)) { return c; }
    }
    return 'rgb(255, 255, 255)';
  };
  const root = document.querySelector('.bd-content') || document.body;
  return Array.from(root.querySelectorAll('img'))
    .filter(i => i.naturalWidth >= 64 && i.naturalHeight >= 64)
    .map(img => {
      const style = getComputedStyle(img);
      let pixels = null;
      try {
        const w = Math.min(240, img.naturalWidth);
        const h = Math.max(1, Math.round(img.naturalHeight * w / img.naturalWidth));
        const canvas = document.createElement('canvas');
        canvas.width = w; canvas.height = h;
        const ctx = canvas.getContext('2d');
        ctx.imageSmoothingEnabled = false;  // sample pixels, do not blur thin text into grey
        ctx.drawImage(img, 0, 0, w, h);
        pixels = Array.from(ctx.getImageData(0, 0, w, h).data);
      } catch (e) { pixels = null; }
      return {src: img.getAttribute('src'), figure: !!img.closest('figure, .cell_output'),
              background: style.backgroundColor, behind: behind(img.parentElement),
              filter: style.filter, pixels: pixels};
    });
}"""

THEME = "() => document.documentElement.dataset.theme || ''"


def check_dark(browser, base_url, page, screenshot, *, width=1280, height=900, timeout_s=60):
    """Load one page in the theme's dark mode, screenshot it and check its figures.

    The context prefers a dark colour scheme, which the book's ``default_mode: auto`` follows.

    Returns
    -------
    list of Problem
    """
    context = browser.new_context(viewport={"width": width, "height": height},
                                  color_scheme="dark")
    try:
        tab = context.new_page()
        tab.goto(f"{base_url}/{page}.html", wait_until="load", timeout=timeout_s * 1000)
        tab.wait_for_load_state("networkidle", timeout=timeout_s * 1000)
        tab.evaluate(WAIT_FOR_MATHJAX)
        theme = tab.evaluate(THEME)
        if theme != "dark":
            return [Problem(page, "dark-mode", f"the page did not switch to dark mode "
                                               f"(data-theme={theme!r})")]
        images = tab.evaluate(DARK_IMAGES)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(screenshot), full_page=True)
    finally:
        context.close()
    return dark_figure_problems(images, page)


def _console_text(msg):
    """A console message's text, with the URL it came from when the text lacks it."""
    url = (msg.location or {}).get("url") or ""
    return msg.text if not url or url in msg.text else f"{msg.text} [{url}]"


def check_page(browser, base_url, page, screenshot, *, width=1280, height=900, timeout_s=60,
               ignore=(), expand=False):
    """Load one page in a fresh browser context and screenshot it.

    With ``expand``, folded content (code cells, dropdown solutions) is opened before
    the screenshot, for reviewing everything a reader can unfold.

    Returns
    -------
    tuple of (list of Problem, list of Problem)
        The page's problems, and notes on blocks wider than the text column.
    """
    events = []
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        tab = context.new_page()
        tab.on("console", lambda msg: events.append(("console", (msg.type, _console_text(msg)))))
        tab.on("pageerror", lambda exc: events.append(("pageerror", exc)))
        tab.on("requestfailed",
               lambda req: events.append(("requestfailed", (req.url, req.failure))))
        tab.on("response", lambda resp: events.append(("response", (resp.url, resp.status))))
        tab.goto(f"{base_url}/{page}.html", wait_until="load", timeout=timeout_s * 1000)
        tab.wait_for_load_state("networkidle", timeout=timeout_s * 1000)
        tab.evaluate(WAIT_FOR_MATHJAX)
        if expand:
            tab.evaluate(EXPAND)
            tab.wait_for_timeout(300)
        images = tab.evaluate(IMAGES)
        wide = tab.evaluate(OVERFLOW)
        html = tab.content()
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(screenshot), full_page=True)
    finally:
        context.close()
    problems = (analyze_html(html, page) + image_problems(images, page)
                + event_problems(events, page, ignore))
    return problems, overflow_notes(wide, page)


def _page_source(root, page):
    """The source file of a page (``page.md``, ``.ipynb``, ...), or None."""
    for suffix in (".md", ".ipynb", ".rst", ".py"):
        path = Path(root) / f"{page}{suffix}"
        if path.is_file():
            return path
    return None


def default_chromium():
    """The Chromium to drive: ``$CHROMIUM`` or the wrapper of ``scripts/install_chromium.sh``."""
    return Path(os.environ.get("CHROMIUM") or REPO / ".cache" / "chromium" / "chromium")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--html", type=Path, default=REPO / "_build" / "html",
                        help="built book (default: _build/html)")
    parser.add_argument("--toc", type=Path, default=REPO / "_toc.yml",
                        help="table of contents listing the pages (default: _toc.yml)")
    parser.add_argument("--out", type=Path, default=REPO / "_build" / "screenshots",
                        help="folder for the screenshots (default: _build/screenshots)")
    parser.add_argument("--chromium", type=Path, default=None,
                        help="Chromium executable (default: $CHROMIUM or .cache/chromium/chromium)")
    parser.add_argument("--width", type=int, default=1280, help="viewport width in pixels")
    parser.add_argument("--timeout", type=float, default=60, help="seconds allowed per page")
    parser.add_argument("--ignore", action="append", default=[], metavar="REGEX",
                        help="do not report console messages or page errors matching REGEX "
                             "(repeatable)")
    parser.add_argument("--expand", action="store_true",
                        help="unfold hidden code cells and dropdowns before the screenshot")
    parser.add_argument("--no-dark", action="store_true",
                        help="skip the dark-mode pass (screenshots dark-<page>.png, figures)")
    parser.add_argument("--pdf", type=Path, default=REPO / "_build" / "pdf" / "book.pdf",
                        help="the book's PDF, checked when it exists (default: "
                             "_build/pdf/book.pdf, written by `make pdf`)")
    parser.add_argument("--require-pdf", action="store_true",
                        help="report a missing PDF as a problem")
    args = parser.parse_args(argv)

    chromium = args.chromium or default_chromium()
    if not chromium.exists():
        print(f"check_book: no Chromium at {chromium}; run scripts/install_chromium.sh "
              "or pass --chromium", file=sys.stderr)
        return 2
    try:
        pages = toc_pages(args.toc)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"check_book: cannot read the page list: {exc}", file=sys.stderr)
        return 2
    missing = [p for p in pages if not (args.html / f"{p}.html").is_file()]
    if missing:
        for p in missing:
            print(f"{p}: not-built: {args.html / (p + '.html')} does not exist (run `make book`)")
        print(f"0 pages checked, {len(missing)} problems")
        return 1
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("check_book: the Python package 'playwright' is needed (pip install playwright)",
              file=sys.stderr)
        return 2

    # Playwright must use the given browser and never fetch one of its own.
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    problems = []
    with serve(args.html) as base_url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=list(LAUNCH_ARGS),
                                     headless=True)
        try:
            for page in pages:
                shot = args.out / f"{page.replace('/', '__')}.png"
                try:
                    found, notes = check_page(browser, base_url, page, shot, width=args.width,
                                              timeout_s=args.timeout, ignore=args.ignore,
                                              expand=args.expand)
                except Exception as exc:  # a page that cannot be loaded is a problem, not a crash
                    found = [Problem(page, "load-failed", f"{type(exc).__name__}: {exc}")]
                    notes = []
                if not args.no_dark and not any(p.kind == "load-failed" for p in found):
                    dark_shot = args.out / f"dark-{page.replace('/', '__')}.png"
                    try:
                        found += check_dark(browser, base_url, page, dark_shot,
                                            width=args.width, timeout_s=args.timeout)
                    except Exception as exc:
                        found.append(Problem(page, "load-failed",
                                             f"dark mode: {type(exc).__name__}: {exc}"))
                source = _page_source(args.toc.parent, page)
                found += notebook_download_problems(
                    (args.html / f"{page}.html").read_text(encoding="utf-8"), page, args.html,
                    source is not None and is_notebook_source(source))
                for problem in found:
                    print(problem)
                for note in notes:
                    print(f"note: {note}", file=sys.stderr)
                problems += found
                print(f"  {page}: {len(found)} problems, screenshot {shot}", file=sys.stderr)
        finally:
            browser.close()
    checked = f"{len(pages)} pages checked"
    if args.pdf.is_file():
        found = pdf_problems(args.pdf, name=str(args.pdf.name))
        for problem in found:
            print(problem)
        problems += found
        checked += f" and {args.pdf.name}"
        built = [args.html / f"{p}.html" for p in pages]
        if any(b.stat().st_mtime > args.pdf.stat().st_mtime for b in built):
            print(f"note: {args.pdf} is older than the built pages; `make pdf` prints it again",
                  file=sys.stderr)
    elif args.require_pdf:
        problem = Problem(args.pdf.name, "pdf-missing", f"no PDF at {args.pdf} (run `make pdf`)")
        print(problem)
        problems.append(problem)
    else:
        print(f"note: no PDF at {args.pdf}; `make pdf` writes it", file=sys.stderr)
    print(f"{checked}, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
