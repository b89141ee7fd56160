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
* ``traceback``: a Python traceback or error in a notebook output cell.

Each problem is printed on one line naming the page; the script ends with
``N pages checked, K problems`` and exits with status 1 when K > 0 (2 when the check itself
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
                for problem in found:
                    print(problem)
                for note in notes:
                    print(f"note: {note}", file=sys.stderr)
                problems += found
                print(f"  {page}: {len(found)} problems, screenshot {shot}", file=sys.stderr)
        finally:
            browser.close()
    print(f"{len(pages)} pages checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
