"""Tests of scaling_lib.training.tokenizer: training, round trip, EOT joining, errors."""

import numpy as np
import pytest

from scaling_lib.training import tokenizer as tk

TEXTS = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "It was the best of times, it was the worst of times.\n\nA new paragraph.",
    "Gentlemen of the Senate and House of Representatives: the state of the Union is strong.",
    "Call me Ishmael. Some years ago, never mind how long precisely, I thought I would sail.",
] * 5


@pytest.fixture(scope="module")
def tok():
    return tk.train_tokenizer(TEXTS, vocab_size=320)


def test_vocab_layout(tok):
    assert tok.get_vocab_size() == 320
    assert tk.eot_id(tok) == 0


@pytest.mark.parametrize(
    "text",
    ["the lazy dog", "  leading spaces\tand tabs\n\nnew lines  ", "naïve café — “quotes” 🙂 日本語", ""],
)
def test_round_trip(tok, text):
    assert tk.decode(tok, tok.encode(text).ids) == text


def test_training_is_deterministic():
    a = tk.train_tokenizer(TEXTS, vocab_size=300).to_str()
    b = tk.train_tokenizer(TEXTS, vocab_size=300).to_str()
    assert a == b


def test_merges_compress_training_text(tok):
    text = TEXTS[0]
    assert len(tok.encode(text).ids) < len(text.encode("utf-8")) / 2


def test_encode_documents_joins_with_eot(tok):
    arr = tk.encode_documents(tok, ["the dog", "the fox"])
    assert arr.dtype == np.uint16
    eot = tk.eot_id(tok)
    positions = np.flatnonzero(arr == eot)
    assert len(positions) == 2 and positions[-1] == len(arr) - 1
    first = tk.decode(tok, arr[: positions[0]])
    assert first == "the dog"
    assert tk.decode(tok, arr) == "the dogthe fox"


def test_save_and_load(tok, tmp_path):
    path = tk.save_tokenizer(tok, tmp_path)
    assert path.name == tk.TOKENIZER_FILE
    loaded = tk.load_tokenizer(tmp_path)
    assert loaded.encode("the lazy dog").ids == tok.encode("the lazy dog").ids


def test_missing_tokenizer_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m scaling_lib.training.corpora build"):
        tk.load_tokenizer(tmp_path / "nothing")


def test_bad_vocab_size():
    with pytest.raises(ValueError, match="vocab_size"):
        tk.train_tokenizer(TEXTS, vocab_size=100)


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv(tk.CACHE_ENV, str(tmp_path))
    assert tk.default_cache_dir() == tmp_path.resolve()
    monkeypatch.delenv(tk.CACHE_ENV)
    assert tk.default_cache_dir().parts[-2:] == (".cache", "corpora")
