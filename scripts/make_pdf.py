"""One PDF of the whole book, printed page by page by the headless Chromium of the browser check.

Every page of ``_toc.yml`` (root first, in table-of-contents order) is opened from the built HTML
(``_build/html``, served on 127.0.0.1 as ``scripts/check_book.py`` does), its images are loaded
eagerly and decoded, MathJax is awaited, and the page is printed with ``page.pdf()`` under the
print style sheet (the theme's, plus ``_assets/book.css``, which hides the sidebars, the header
buttons and the previous/next links). The page PDFs are merged with pypdf into one file with a
bookmark per page, by default ``_build/pdf/book.pdf``. The script ends with a line
``book.pdf: P pages, S MB, T s`` and exits with status 1 when a page could not be printed (2 when
it cannot run: no build, no browser). ``scripts/check_book.py`` reads the PDF back and fails on
an empty or unreadable page.

Usage::

    bash scripts/install_chromium.sh
    .venv/bin/python scripts/make_pdf.py          # after `make book`; or `make pdf`
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_book  # noqa: E402  (the browser check: page list, server, browser flags)

REPO = check_book.REPO

LOAD_IMAGES = """async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? Promise.resolve()
      : new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); })));
  await Promise.all(imgs.map(i => (i.decode ? i.decode().catch(() => null) : null)));
  return imgs.filter(i => !i.naturalWidth).map(i => i.getAttribute('src'));
}"""
"""Loads every image (lazy ones too, which a print would skip) and returns those that failed."""

TITLE = """() => {
  const h = document.querySelector('article h1') || document.querySelector('h1');
  return (h ? h.innerText : document.title).replace(/[#¶]\\s*$/, '').trim();
}"""


def print_page(browser, base_url, page, *, timeout_s=90, expand=False, scale=0.9):
    """One page of the book as PDF bytes, and its title.

    Raises ``RuntimeError`` when an image did not load or MathJax is missing on a page
    that has math.
    """
    context = browser.new_context(viewport={"width": 1100, "height": 1400}, color_scheme="light")
    try:
        tab = context.new_page()
        tab.goto(f"{base_url}/{page}.html", wait_until="load", timeout=timeout_s * 1000)
        tab.wait_for_load_state("networkidle", timeout=timeout_s * 1000)
        broken = tab.evaluate(LOAD_IMAGES)
        if broken:
            raise RuntimeError(f"images did not load: {', '.join(map(str, broken[:3]))}")
        has_math = tab.evaluate("() => document.querySelector('.math') !== null")
        if not tab.evaluate(check_book.WAIT_FOR_MATHJAX) and has_math:
            raise RuntimeError("MathJax did not start")
        if expand:
            tab.evaluate(check_book.EXPAND)
            tab.wait_for_timeout(300)
        tab.emulate_media(media="print")
        tab.wait_for_timeout(200)
        title = tab.evaluate(TITLE) or page
        pdf = tab.pdf(format="A4", print_background=True, scale=scale,
                      margin={"top": "16mm", "bottom": "16mm", "left": "14mm", "right": "14mm"},
                      display_header_footer=True,
                      header_template="<span></span>",
                      footer_template=('<div style="font-size:8px;width:100%;text-align:center;'
                                       'color:#666;">' + _html_escape(title) +
                                       ' &middot; <span class="pageNumber"></span>/'
                                       '<span class="totalPages"></span></div>'))
    finally:
        context.close()
    return pdf, title


def _html_escape(text):
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def merge(parts, out_path, *, title="How language models scale"):
    """Merge page PDFs (``(title, bytes)`` pairs) into one file with a bookmark per part.

    Returns the number of pages written.

    Examples
    --------
    >>> import io, tempfile, pathlib
    >>> from pypdf import PdfWriter
    >>> def blank(n):
    ...     w = PdfWriter()
    ...     for _ in range(n):
    ...         _ = w.add_blank_page(width=200, height=200)
    ...     buf = io.BytesIO(); w.write(buf); return buf.getvalue()
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "b.pdf"
    >>> merge([("One", blank(2)), ("Two", blank(1))], out)
    3
    """
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for name, data in parts:
        start = len(writer.pages)
        writer.append(PdfReader(io.BytesIO(data)))
        if len(writer.pages) > start:
            writer.add_outline_item(title=name, page_number=start)
    writer.add_metadata({"/Title": title, "/Creator": "scripts/make_pdf.py (Chromium, pypdf)"})
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    with open(tmp, "wb") as fh:
        writer.write(fh)
    os.replace(tmp, out_path)
    return len(writer.pages)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--html", type=Path, default=REPO / "_build" / "html",
                        help="built book (default: _build/html)")
    parser.add_argument("--toc", type=Path, default=REPO / "_toc.yml",
                        help="table of contents listing the pages (default: _toc.yml)")
    parser.add_argument("--out", type=Path, default=REPO / "_build" / "pdf" / "book.pdf",
                        help="the PDF to write (default: _build/pdf/book.pdf)")
    parser.add_argument("--chromium", type=Path, default=None,
                        help="Chromium executable (default: $CHROMIUM or .cache/chromium/chromium)")
    parser.add_argument("--timeout", type=float, default=90, help="seconds allowed per page")
    parser.add_argument("--expand", action="store_true",
                        help="unfold hidden code cells and dropdowns (solutions) before printing")
    args = parser.parse_args(argv)

    started = time.monotonic()
    chromium = args.chromium or check_book.default_chromium()
    if not chromium.exists():
        print(f"make_pdf: no Chromium at {chromium}; run scripts/install_chromium.sh "
              "or pass --chromium", file=sys.stderr)
        return 2
    try:
        pages = check_book.toc_pages(args.toc)
    except (OSError, ValueError) as exc:
        print(f"make_pdf: cannot read the page list: {exc}", file=sys.stderr)
        return 2
    missing = [p for p in pages if not (args.html / f"{p}.html").is_file()]
    if missing:
        print(f"make_pdf: not built: {', '.join(missing)} (run `make book`)", file=sys.stderr)
        return 2
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("make_pdf: the Python package 'playwright' is needed", file=sys.stderr)
        return 2

    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    parts, failed = [], []
    with check_book.serve(args.html) as base_url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium),
                                     args=list(check_book.LAUNCH_ARGS), headless=True)
        try:
            for page in pages:
                try:
                    pdf, title = print_page(browser, base_url, page, timeout_s=args.timeout,
                                            expand=args.expand)
                except Exception as exc:  # one unprintable page is reported, the rest printed
                    failed.append(page)
                    print(f"{page}: print-failed: {type(exc).__name__}: {exc}")
                    continue
                parts.append((title, pdf))
                print(f"  {page}: {len(pdf) / 1e3:.0f} kB", file=sys.stderr)
        finally:
            browser.close()
    if not parts:
        print("make_pdf: no page could be printed", file=sys.stderr)
        return 1
    n_pages = merge(parts, args.out)
    size_mb = args.out.stat().st_size / 1e6
    print(f"{args.out}: {n_pages} pages, {size_mb:.1f} MB, {time.monotonic() - started:.0f} s"
          + (f"; {len(failed)} pages not printed" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
