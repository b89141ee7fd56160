"""Tests of the page analysis of scripts/check_book.py on small HTML fixtures (no browser)."""

import importlib.util
import json
import sys
import urllib.request
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_book.py"


@pytest.fixture(scope="module")
def cb():
    spec = importlib.util.spec_from_file_location("check_book", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def page(body):
    return f"<html><head><script>var x = '$a$';</script></head><body>{body}</body></html>"


def kinds(problems):
    return sorted(p.kind for p in problems)


TYPESET = ('<p>The law <span class="math notranslate nohighlight"><mjx-container class="MathJax">'
           '<mjx-math></mjx-math><mjx-assistive-mml><math><mi>L</mi></math></mjx-assistive-mml>'
           '</mjx-container></span> holds.</p>')


def test_clean_page_has_no_problems(cb):
    html = page(TYPESET + '<figure id="f"><img src="a.png"><figcaption>A $5 fee</figcaption>'
                '</figure><div class="cell_output"><div class="output stream"><pre>ok</pre>'
                '</div></div>')
    assert cb.analyze_html(html, "p") == []


@pytest.mark.parametrize("text, name", [
    ("the loss $L = E + A$ falls", "$...$"),
    ("display $$x^2$$ here", "$$"),
    (r"inline \(x\) left", "\\("),
    (r"display \[x\] left", "\\["),
    (r"an \begin{align} block", "\\begin{"),
])
def test_raw_math_in_prose_is_reported(cb, text, name):
    problems = cb.analyze_html(page(f"<p>{text}</p>"), "ch")
    assert kinds(problems) == ["raw-math"]
    assert problems[0].page == "ch"
    assert problems[0].detail.startswith(name + " in ")


def test_raw_math_split_by_inline_markup_is_found(cb):
    problems = cb.analyze_html(page("<p>with $M = <em>20</em>$ tokens</p>"), "ch")
    assert kinds(problems) == ["raw-math"]


@pytest.mark.parametrize("body", [
    "<pre>cost = $x$</pre>",
    "<p>call <code>$HOME</code> and <code>re.sub(r'\\(', '')</code></p>",
    '<div class="highlight"><span>\\begin{align}</span></div>',
    '<div class="cell_input"><div>print("$a$")</div></div>',
    "<p>prices: $5 and $10, or 5$ and 10$</p>",
])
def test_dollars_in_code_and_prices_are_not_math(cb, body):
    assert cb.analyze_html(page(body), "p") == []


def test_math_element_without_mathjax_rendering(cb):
    html = page('<p>x <span class="math notranslate nohighlight">\\(L(N)\\)</span></p>'
                '<div class="math notranslate nohighlight">\\[E = mc^2\\]</div>')
    problems = cb.analyze_html(html, "p")
    assert kinds(problems) == ["math-unprocessed", "math-unprocessed"]
    assert "L(N)" in problems[0].detail


def test_mathjax_error_is_reported(cb):
    html = page('<span class="math"><mjx-container><mjx-merror data-mjx-error='
                '"Undefined control sequence \\foo"><mjx-mtext>\\foo</mjx-mtext></mjx-merror>'
                '</mjx-container></span>')
    problems = cb.analyze_html(html, "p")
    assert kinds(problems) == ["math-error"]
    assert "Undefined control sequence" in problems[0].detail


def test_figure_without_image(cb):
    html = page('<figure id="fig-a"><div class="cell_output"></div><figcaption>Loss</figcaption>'
                '</figure><figure><img src="b.png"></figure>'
                '<figure><figcaption>Second</figcaption></figure>')
    problems = cb.analyze_html(html, "p")
    assert kinds(problems) == ["empty-figure", "empty-figure"]
    assert "fig-a" in problems[0].detail
    assert "Second" in problems[1].detail


def test_traceback_output_cell(cb):
    html = page('<div class="cell_output docutils container"><div class="output traceback">'
                '<pre>Traceback (most recent call last):\n  File "x"\nValueError: bad</pre>'
                '</div></div>')
    problems = cb.analyze_html(html, "p")
    assert kinds(problems) == ["traceback"]


def test_error_line_in_stream_output(cb):
    html = page('<div class="cell_output"><div class="output stream"><pre>'
                'reading\nFileNotFoundError: no such file</pre></div></div>')
    assert kinds(cb.analyze_html(html, "p")) == ["traceback"]


def test_error_words_in_prose_are_not_tracebacks(cb):
    html = page("<p>The relative error is small. ValueError: is the name of an exception.</p>")
    assert cb.analyze_html(html, "p") == []


def test_image_problems(cb):
    images = [{"src": "ok.png", "complete": True, "naturalWidth": 800},
              {"src": "gone.png", "complete": True, "naturalWidth": 0}]
    problems = cb.image_problems(images, "p")
    assert [(p.kind, p.detail) for p in problems] == [("broken-image", "gone.png did not load")]


def test_event_problems(cb):
    events = [
        ("console", ("log", "fine")),
        ("console", ("warning", "meh")),
        ("console", ("error", "Uncaught thing")),
        ("console", ("error", "Failed to load resource: the server responded with a status of "
                              "404 (File not found) [http://127.0.0.1:5000/favicon.ico]")),
        ("console", ("error", "theme noise")),
        ("pageerror", "ReferenceError: x is not defined"),
        ("requestfailed", ("https://unpkg.com/a.js", "net::ERR_NAME_NOT_RESOLVED")),
        ("response", ("http://127.0.0.1:5000/a.png", 200)),
        ("response", ("http://127.0.0.1:5000/b.png", 404)),
    ]
    problems = cb.event_problems(events, "p", ignore=["^theme"])
    assert kinds(problems) == ["console-error", "http-error", "page-error", "request-failed"]
    assert "unpkg.com" in [p for p in problems if p.kind == "request-failed"][0].detail


def test_favicon_of_a_page_is_not_skipped(cb):
    msg = ("Failed to load resource: the server responded with a status of 404 "
           "[http://127.0.0.1:5000/_static/favicon.ico]")
    assert kinds(cb.event_problems([("console", ("error", msg))], "p")) == ["console-error"]


def test_toc_pages(cb, tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text("format: jb-book\nroot: book/intro\nparts:\n  - caption: A\n    chapters:\n"
                   "      - file: notebooks/one.md\n        sections:\n"
                   "          - file: notebooks/one_b\n      - url: https://example.org\n"
                   "  - caption: B\n    chapters:\n      - file: book/glossary\n")
    assert cb.toc_pages(toc) == ["book/intro", "notebooks/one", "notebooks/one_b",
                                 "book/glossary"]


def test_toc_without_root(cb, tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text("chapters:\n  - file: a\n")
    with pytest.raises(ValueError, match="_toc.yml: no 'root'"):
        cb.toc_pages(toc)


def test_serve(cb, tmp_path):
    (tmp_path / "x.html").write_text("<p>hi</p>")
    with cb.serve(tmp_path) as url:
        assert url.startswith("http://127.0.0.1:")
        assert urllib.request.urlopen(url + "/x.html").read() == b"<p>hi</p>"


def test_main_reports_unbuilt_pages(cb, tmp_path, capsys):
    (tmp_path / "_toc.yml").write_text("root: intro\nchapters:\n  - file: ch1\n")
    html = tmp_path / "html"
    html.mkdir()
    (html / "intro.html").write_text("<p>x</p>")
    fake_browser = tmp_path / "chromium"
    fake_browser.write_text("")
    rc = cb.main(["--html", str(html), "--toc", str(tmp_path / "_toc.yml"),
                  "--chromium", str(fake_browser)])
    out = capsys.readouterr().out
    assert rc == 1
    assert "ch1: not-built:" in out
    assert out.strip().endswith("0 pages checked, 1 problems")


def test_main_without_browser(cb, tmp_path, capsys):
    rc = cb.main(["--chromium", str(tmp_path / "nothing-here")])
    assert rc == 2
    assert "no Chromium at" in capsys.readouterr().err


def test_docstring_examples(cb):
    import doctest

    result = doctest.testmod(cb, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_overflow_notes(cb):
    notes = cb.overflow_notes([{"tag": "table", "text": "a\tb", "width": 726, "room": 688}],
                              "ch")
    assert [(n.page, n.kind) for n in notes] == [("ch", "overflow")]
    assert "726px wide in 688px" in notes[0].detail
    assert cb.overflow_notes([], "ch") == []


def test_failed_resource_is_reported_once(cb):
    url = "http://127.0.0.1:5000/missing.js"
    events = [("response", (url, 404)),
              ("console", ("error", "Failed to load resource: the server responded with a "
                                    f"status of 404 (File not found) [{url}]")),
              ("requestfailed", (url, "net::ERR_ABORTED"))]
    problems = cb.event_problems(events, "p")
    assert [(p.kind, p.detail) for p in problems] == [("http-error", f"404 {url}")]


def test_raw_math_snippet_stays_on_its_line(cb):
    problems = cb.analyze_html(page("<p>the law $L = E$ is raw</p><p>next block</p>"), "p")
    assert problems[0].detail == '$...$ in "the law $L = E$ is raw"'


# --- the book's PDF (make pdf) -------------------------------------------------------------

def _text_pdf(path, texts):
    """A PDF with one page per text (Helvetica, no images)."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica")}))
    for text in texts:
        page = writer.add_blank_page(width=300, height=300)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
        if text:
            stream = DecodedStreamObject()
            stream.set_data(f"BT /F1 12 Tf 20 150 Td ({text}) Tj ET".encode())
            page[NameObject("/Contents")] = writer._add_object(stream)
    with open(path, "wb") as fh:
        writer.write(fh)
    return path


def test_pdf_with_a_page_of_text_passes(cb, tmp_path):
    assert cb.pdf_problems(_text_pdf(tmp_path / "one.pdf", ["Scaling laws"])) == []


def test_pdf_with_an_image_page_passes(cb, tmp_path):
    from PIL import Image

    path = tmp_path / "figure.pdf"
    Image.new("RGB", (60, 40), "white").save(path, "PDF")
    assert cb.pdf_problems(path) == []


def test_pdf_with_an_empty_page_fails(cb, tmp_path):
    path = _text_pdf(tmp_path / "gap.pdf", ["Chapter 1", "", "Chapter 2"])
    problems = cb.pdf_problems(path, name="gap.pdf")
    assert [(p.page, p.kind) for p in problems] == [("gap.pdf", "pdf-empty-page")]
    assert "page 2 " in problems[0].detail


def test_pdf_without_pages_fails(cb, tmp_path):
    from pypdf import PdfWriter

    path = tmp_path / "none.pdf"
    with open(path, "wb") as fh:
        PdfWriter().write(fh)
    assert kinds(cb.pdf_problems(path)) == ["pdf-empty"]


@pytest.mark.parametrize("content", [b"", b"not a pdf at all", b"%PDF-1.7\n1 0 obj\n<<"])
def test_unreadable_pdf_fails(cb, tmp_path, content):
    path = tmp_path / "bad.pdf"
    path.write_bytes(content)
    assert kinds(cb.pdf_problems(path)) == ["pdf-unreadable"]


def test_make_pdf_merges_in_order_with_bookmarks(tmp_path):
    from pypdf import PdfReader

    spec = importlib.util.spec_from_file_location("make_pdf", SCRIPT.parent / "make_pdf.py")
    mp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mp)
    parts = []
    for name, texts in (("Intro", ["Intro"]), ("Chapter", ["Chapter a", "Chapter b"])):
        parts.append((name, _text_pdf(tmp_path / f"{name}.pdf", texts).read_bytes()))
    out = tmp_path / "pdf" / "book.pdf"
    assert mp.merge(parts, out) == 3
    reader = PdfReader(out)
    assert [p.extract_text() for p in reader.pages] == ["Intro", "Chapter a", "Chapter b"]
    assert [(o.title, reader.get_destination_page_number(o)) for o in reader.outline] == [
        ("Intro", 0), ("Chapter", 1)]
    import check_book  # make_pdf put scripts/ on the path
    assert check_book.pdf_problems(out) == []
    assert mp.main(["--chromium", str(tmp_path / "no-browser")]) == 2


# --- dark mode ------------------------------------------------------------------------------

BLACK_INK_ON_CLEAR = [0, 0, 0, 255] * 10 + [0, 0, 0, 0] * 190
"""A transparent figure with black axes and text: readable only on a light ground."""

BLACK_INK_ON_WHITE = [0, 0, 0, 255] * 10 + [255, 255, 255, 255] * 190
"""An opaque figure, as scaling_lib.plotting saves them."""


def figure_img(**kw):
    img = {"src": "../_images/f.png", "figure": True, "background": "rgb(248, 249, 250)",
           "behind": "rgb(18, 18, 18)", "filter": "none", "pixels": BLACK_INK_ON_WHITE}
    img.update(kw)
    return img


def test_dark_mode_light_panel_passes(cb):
    assert cb.dark_figure_problems([figure_img()], "ch") == []
    assert cb.dark_figure_problems([figure_img(pixels=BLACK_INK_ON_CLEAR)], "ch") == []


def test_dark_mode_transparent_figure_on_dark_page_fails(cb):
    img = figure_img(background="rgba(0, 0, 0, 0)", pixels=BLACK_INK_ON_CLEAR)
    problems = cb.dark_figure_problems([img], "ch")
    assert kinds(problems) == ["dark-figure", "dark-figure"]
    assert "no light panel" in problems[0].detail
    assert "dark ink on a dark ground" in problems[1].detail


def test_dark_mode_grey_panel_fails_the_panel_rule(cb):
    # the theme's own panel for output images in dark mode, var(--pst-color-text-base)
    problems = cb.dark_figure_problems([figure_img(background="rgb(206, 214, 221)")], "ch")
    assert kinds(problems) == ["dark-figure"]
    assert "ground luminance 0.66" in problems[0].detail


def test_dark_mode_filter_that_darkens_too_much_fails(cb):
    img = figure_img(filter="brightness(0.2)")
    assert kinds(cb.dark_figure_problems([img], "ch")) == ["dark-figure"]
    # the theme's default dimming still leaves black on a light grey
    assert cb.dark_figure_problems([figure_img(filter="brightness(0.8) contrast(1.2)")],
                                   "ch") == []


def test_dark_mode_images_outside_figures_and_unreadable_pixels(cb):
    logo = figure_img(figure=False, background="rgba(0, 0, 0, 0)", pixels=None)
    assert cb.dark_figure_problems([logo], "p") == []
    light_art = figure_img(figure=False, background="rgba(0, 0, 0, 0)",
                           pixels=[250, 250, 250, 255] * 50)
    assert cb.dark_figure_problems([light_art], "p") == []


@pytest.mark.parametrize("text, rgba", [
    ("rgb(1, 2, 3)", (1.0, 2.0, 3.0, 1.0)),
    ("rgba(10, 20, 30, 0.5)", (10.0, 20.0, 30.0, 0.5)),
    ("rgb(10 20 30 / 50%)", (10.0, 20.0, 30.0, 0.5)),
    ("#0a141e", (10.0, 20.0, 30.0, 1.0)),
    ("transparent", (0.0, 0.0, 0.0, 0.0)),
    ("color(srgb 1 1 1)", None),
    (None, None),
])
def test_parse_css_color(cb, text, rgba):
    assert cb.parse_css_color(text) == rgba


def test_luminance_contrast_and_filter(cb):
    assert cb.relative_luminance((255, 255, 255)) == pytest.approx(1.0)
    assert cb.relative_luminance((128, 128, 128)) == pytest.approx(0.2158, abs=1e-3)
    assert cb.contrast_ratio(1.0, 0.0) == pytest.approx(21.0)
    assert cb.apply_css_filter((200, 100, 0), "brightness(50%)") == (100.0, 50.0, 0.0)
    assert cb.apply_css_filter((255, 0, 0), "contrast(0)") == (127.5, 127.5, 127.5)
    ground, ink, ratio = cb.figure_contrast(BLACK_INK_ON_CLEAR, (255, 255, 255))
    assert (ground, ink, ratio) == (pytest.approx(1.0), 0.0, pytest.approx(21.0))


# --- the executed notebook for download -----------------------------------------------------

def _built_page(tmp_path, notebook):
    html = tmp_path / "html"
    (html / "notebooks").mkdir(parents=True)
    (html / "_sources" / "notebooks").mkdir(parents=True)
    if notebook is not None:
        (html / "_sources" / "notebooks" / "ch.ipynb").write_text(json.dumps(notebook))
    page = ('<div class="dropdown-buttons"><a href="../_sources/notebooks/ch.ipynb">.ipynb</a>'
            '<a href="../_sources/notebooks/ch.md">.md</a></div>')
    return html, page


def _notebook(outputs):
    return {"cells": [{"cell_type": "markdown", "source": "# x"},
                      {"cell_type": "code", "source": "1", "outputs": outputs}],
            "nbformat": 4, "nbformat_minor": 5, "metadata": {}}


def test_notebook_download_of_an_executed_notebook(cb, tmp_path):
    html, page = _built_page(tmp_path, _notebook([{"output_type": "stream", "text": "1"}]))
    assert cb.notebook_download_problems(page, "notebooks/ch", html, True) == []


@pytest.mark.parametrize("notebook, detail", [
    (None, "does not exist"),
    (_notebook([]), "has no outputs"),
    ({"cells": "nonsense"}, "is not a notebook"),
])
def test_notebook_download_problems(cb, tmp_path, notebook, detail):
    html, page = _built_page(tmp_path, notebook)
    problems = cb.notebook_download_problems(page, "notebooks/ch", html, True)
    assert kinds(problems) == ["notebook-download"]
    assert detail in problems[0].detail


def test_notebook_download_missing_on_a_chapter(cb, tmp_path):
    page = '<a href="../_sources/notebooks/ch.md">.md</a><a href="https://x.org/a.ipynb">c</a>'
    assert kinds(cb.notebook_download_problems(page, "notebooks/ch", tmp_path, True)) == [
        "no-notebook-download"]
    assert cb.notebook_download_problems(page, "book/intro", tmp_path, False) == []


def test_chapters_are_notebook_sources(cb):
    root = SCRIPT.parent.parent
    for page in cb.toc_pages(root / "_toc.yml"):
        source = cb._page_source(root, page)
        assert source is not None, page
        assert cb.is_notebook_source(source) == page.startswith("notebooks/") or (
            page == "book/own_runs"), page


# --- repository and launch buttons (book/_ext/notebook_links.py) -----------------------------

@pytest.fixture(scope="module")
def links():
    path = SCRIPT.parent.parent / "book" / "_ext" / "notebook_links.py"
    spec = importlib.util.spec_from_file_location("notebook_links", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_repository_means_no_repository_or_launch_buttons(links):
    opts, colab = links.repository_settings({
        "repository_url": "  ", "use_repository_button": True, "use_issues_button": True,
        "launch_buttons": {"binderhub_url": "https://mybinder.org", "thebe": True,
                           "colab_url": "https://colab.research.google.com"}})
    assert colab == ""
    assert opts["launch_buttons"] == {}
    assert not any(opts[k] for k in links.REPOSITORY_BUTTONS)


def test_repository_switches_the_buttons_on(links):
    opts, colab = links.repository_settings({
        "repository_url": "https://github.com/o/r",
        "launch_buttons": {"notebook_interface": "classic", "binderhub_url": "https://mybinder.org",
                           "colab_url": "https://colab.research.google.com/"}})
    assert opts["use_repository_button"] is True
    assert opts["launch_buttons"] == {"notebook_interface": "classic",
                                      "binderhub_url": "https://mybinder.org"}
    assert links.colab_url(colab, opts["repository_url"], "gh-pages", "notebooks/a") == (
        "https://colab.research.google.com/github/o/r/blob/gh-pages/_sources/notebooks/a.ipynb")


def test_the_default_config_sets_no_repository():
    import yaml

    config = yaml.safe_load((SCRIPT.parent.parent / "_config.yml").read_text())
    assert not config["repository"]["url"]
    assert config["html"]["use_repository_button"] is False
    assert "notebook_links" in config["sphinx"]["local_extensions"]


def test_every_reference_has_a_link():
    """Each entry of book/references.bib carries a DOI or an address (arXiv abs page or URL)."""
    import re

    text = (SCRIPT.parent.parent / "book" / "references.bib").read_text(encoding="utf-8")
    entries = re.findall(r"(?ms)^@\w+\{([^,]+),(.*?)^\}", text)
    assert entries
    unlinked = [key for key, body in entries
                if not re.search(r"(?m)^\s*(url|doi|eprint)\s*=\s*\{\S+\}", body)]
    assert unlinked == []


def test_executed_notebook_takes_outputs_from_the_execution_cache(links, tmp_path):
    """myst-nb writes a chapter taken from the cache without outputs; the cache has them."""
    import types

    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    source = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# A"), nbformat.v4.new_code_cell("1 + 1")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}})
    executed = nbformat.from_dict(json.loads(nbformat.writes(source)))
    executed.cells[1].outputs = [nbformat.v4.new_output(
        "execute_result", {"text/plain": "2"}, execution_count=1)]
    outdir = tmp_path / "_build" / "html"
    outdir.mkdir(parents=True)
    app = types.SimpleNamespace(outdir=str(outdir), env=types.SimpleNamespace())
    path = tmp_path / "ch.ipynb"
    nbformat.write(source, str(path))
    assert links.executed_notebook(app, path) is None  # no cache, no outputs

    get_cache(str(tmp_path / "_build" / ".jupyter_cache")).cache_notebook_bundle(
        CacheBundleIn(executed, str(path)), check_validity=False)
    merged = json.loads(links.executed_notebook(app, path))
    assert links.n_outputs(merged) == 1
    assert "".join(merged["cells"][1]["outputs"][0]["data"]["text/plain"]) == "2"

    nbformat.write(executed, str(path))  # a freshly executed chapter is used as it is
    assert links.n_outputs(json.loads(links.executed_notebook(app, path))) == 1
