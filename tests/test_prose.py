"""Tests of scaling_lib.prose: counts, lists, budgets and reports in words."""

import doctest

from scaling_lib import prose


def test_short_counts():
    assert [prose.short(x) for x in (1.05e6, 63192, 1.44e9, 2.5e12, 999, -4200)] == \
        ["1.1M", "63k", "1.4B", "2.5T", "999", "-4.2k"]


def test_in_words_and_sci():
    assert prose.in_words(iter(["a", "b", "c", "d"])) == "a, b, c and d"
    assert [prose.sci(x) for x in (5e11, 1.5e12, 1.35e13, 7.0)] == ["5e11", "1.5e12", "1.35e13", "7"]


def test_wrap_keeps_short_lines_and_indents_continuations():
    assert prose.wrap("a b\nc") == "a b\nc"
    lines = prose.wrap("key        " + "x" * 30 + " " + "y" * 30 + " " + "z" * 30, width=72).splitlines()
    assert len(lines) == 2 and lines[1].startswith(" " * 11 + "z")


def test_docstring_examples():
    result = doctest.testmod(prose)
    assert result.attempted > 0 and result.failed == 0
