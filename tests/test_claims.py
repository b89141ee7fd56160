"""Checked claims (scaling_lib.claims) in both modes, and the status page's collector."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from scaling_lib import claims

ROOT = Path(__file__).resolve().parents[1]


def test_strict_mode_raises_on_a_false_claim_and_records_true_ones():
    book = claims.Claims("ch", display=False)
    assert book.less("a", 1.0, 2.0, "one is less than two").holds
    with pytest.raises(claims.ClaimError, match=r"chapter ch, claim 'b': the text says 2 < 1, but the data show 2 against 1"):
        book.less("b", 2.0, 1.0, "2 < 1")
    assert [c.name for c in book.claims] == ["a", "b"]


def test_warn_mode_returns_a_warning_box_instead():
    book = claims.Claims("ch", mode="warn", display=False)
    c = book.covers("cover", 4.0, 5.0, 5.5, "the interval covers the measured loss")
    assert not c.holds
    assert c.box().startswith(":::{warning}") and "the data show [4, 5] and 5.5" in c.box()
    assert book.larger("big", 2.0, 1.0, "two exceeds one").box() == ""


@pytest.mark.parametrize("method, args, holds", [
    ("larger", (2.0, 1.0), True), ("larger", (1.0, 1.0), False), ("larger", (float("nan"), 1.0), False),
    ("less", (1.0, 2.0), True), ("less", (None, 2.0), False),
    ("within", (1.05, 1.0, 0.1), True), ("within", (1.2, 1.0, 0.1), False),
    ("covers", (0.0, 1.0, 0.5), True), ("covers", (0.0, 1.0, 1.5), False),
    ("excludes", (0.0, 1.0, 1.5), True), ("excludes", (0.0, 1.0, 0.5), False),
])
def test_each_direction(method, args, holds):
    book = claims.Claims("ch", mode="warn", display=False)
    assert getattr(book, method)("x", *args, "a sentence").holds is holds


def test_names_are_unique_and_modes_checked():
    book = claims.Claims("ch", display=False)
    book.check("x", True, "e", "o")
    with pytest.raises(ValueError, match="checked twice"):
        book.check("x", True, "e", "o")
    with pytest.raises(ValueError, match="claims mode must be one of"):
        claims.Claims("ch", mode="loud")


def test_the_status_page_reads_published_claims(tmp_path):
    spec = importlib.util.spec_from_file_location("claims_table", ROOT / "book" / "_ext" / "claims_table.py")
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    book = claims.Claims("ch", mode="warn", display=False)
    book.less("a", 1.0, 2.0, "one is less than two")
    book.larger("b", 1.0, 2.0, "one exceeds two")
    glued = {claims.REGISTRY_KEY: {"data": {"text/plain": repr(json.dumps(book.to_records()))}}}
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "ch.glue.json").write_text(json.dumps(glued))
    found = ext._registry(tmp_path, "notebooks/ch")
    assert [(c["name"], c["holds"]) for c in found] == [("a", True), ("b", False)]
    assert ext._registry(tmp_path, "notebooks/other") == []


def test_a_group_box_holds_the_boxes_of_the_claims_that_fail():
    book = claims.Claims("ch", mode="warn", display=False)
    book.less("a", 1.0, 2.0, "one is less than two")
    book.less("b", 3.0, 2.0, "three is less than two")
    assert book.group("ab", ["a"]) == ""
    assert book.group("ab", ["a", "b"]) == book.claims[1].box()
    with pytest.raises(ValueError, match="names unchecked claims"):
        book.group("x", ["a", "zzz"])
