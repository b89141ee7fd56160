"""Tests of the page analysis of scripts/check_book.py on small HTML fixtures (no browser)."""

import importlib.util
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
