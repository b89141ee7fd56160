"""Sentences and word statistics of held-out text, the raw material of the project tasks.

:func:`extract_sentences` keeps the clean sentences of each document
(:func:`split_sentences`, then :func:`clean_sentence`'s rule) with their
position, so that consecutive sentences can be found again;
:func:`word_counts` counts lowercase words, and a :class:`WordPool` draws
distractor words matched to an answer on frequency and token count.

Examples
--------
>>> [s.text for s in extract_sentences(["The cat sat on the old mat. It was a fine day for it!"])]
['The cat sat on the old mat.', 'It was a fine day for it!']
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from typing import Iterable

import numpy as np

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_ALLOWED_BODY = re.compile(r"^[A-Za-z0-9 ,;:'\"()/%$&\-]+$")
_LOWER_WORD = re.compile(r"^[a-z]+$")


@dataclasses.dataclass(frozen=True)
class Sentence:
    """A clean sentence: its document, position, words and ending."""

    doc: int
    pos: int
    words: tuple[str, ...]
    end: str          # final punctuation with any space before it, e.g. "." or " ."

    @property
    def text(self) -> str:
        return " ".join(self.words) + self.end


def split_sentences(text: str) -> list[str]:
    """Split a document into sentences on ``.!?`` followed by a capital.

    Whitespace (including line breaks) is collapsed to single spaces first.

    Examples
    --------
    >>> split_sentences("It rained.  Then it\\nstopped! Good")
    ['It rained.', 'Then it stopped!', 'Good']
    """
    flat = " ".join(text.split())
    return [s for s in _SENTENCE_SPLIT.split(flat) if s]


def clean_sentence(s: str, min_words: int = 6, max_words: int = 30):
    """Return ``(words, end)`` for a usable sentence, else ``None``.

    A usable sentence starts with a capital letter, ends with ``.``, ``!`` or
    ``?``, holds only letters, digits, spaces and ``,;:'"()/%$&-`` before that, has between
    ``min_words`` and ``max_words`` words, and is not mostly capitalised
    (which drops headings and speaker names).

    Examples
    --------
    >>> clean_sentence("The old man walked to the harbour .")
    (('The', 'old', 'man', 'walked', 'to', 'the', 'harbour'), ' .')
    >>> clean_sentence("ACT I. SCENE II.") is None
    True
    """
    if len(s) < 2 or s[-1] not in ".!?" or not s[0].isupper():
        return None
    body = s[:-1].rstrip()
    end = s[len(body):]
    if not _ALLOWED_BODY.match(body):
        return None
    words = tuple(body.split(" "))
    if not min_words <= len(words) <= max_words:
        return None
    n_cap = sum(w[:1].isupper() for w in words)
    if n_cap > 0.3 * len(words):
        return None
    return words, end


def extract_sentences(texts: Iterable[str], min_words: int = 6,
                      max_words: int = 30) -> list[Sentence]:
    """Clean sentences of every document, in document order.

    ``pos`` is the index among *all* sentences of the document, so two
    sentences are consecutive in the text exactly when their ``pos`` differ by 1.

    Examples
    --------
    >>> ss = extract_sentences(["One two three four five six. Bad [1] 2 3 4 5 6."])
    >>> [(s.doc, s.pos, len(s.words)) for s in ss]
    [(0, 0, 6)]
    """
    out = []
    for d, text in enumerate(texts):
        for p, s in enumerate(split_sentences(text)):
            c = clean_sentence(s, min_words, max_words)
            if c is not None:
                out.append(Sentence(d, p, c[0], c[1]))
    return out


def word_counts(texts: Iterable[str]) -> Counter:
    """Occurrences of lowercase alphabetic words (surrounding punctuation stripped).

    Examples
    --------
    >>> word_counts(["The cat, the hat."])["the"]
    1
    """
    c = Counter()
    for text in texts:
        for tok in text.split():
            w = tok.strip(".,;:!?\"'()[]`")
            if _LOWER_WORD.match(w):
                c[w] += 1
    return c


class WordPool:
    """Distractor words matched on frequency and token count.

    Words seen at least ``min_count`` times are grouped by the number of tokens
    of ``" " + word``; inside a group they are ranked by frequency, and the
    distractors for a word are drawn from its ``window`` nearest neighbours in
    that ranking.

    Examples
    --------
    >>> pool = WordPool(Counter({"cat": 5, "dog": 5, "hat": 4, "bat": 4}),
    ...                 lambda w: 1, window=3)
    >>> sorted(pool.neighbours("cat"))
    ['bat', 'dog', 'hat']
    """

    def __init__(self, counts: Counter, n_tokens_of, min_count: int = 2, window: int = 10):
        self.counts = counts
        self.window = window
        words = sorted((w for w, n in counts.items() if n >= min_count),
                       key=lambda w: (-counts[w], w))
        self.n_tokens = {w: int(n_tokens_of(w)) for w in words}
        self.groups: dict[int, list[str]] = {}
        for w in words:
            self.groups.setdefault(self.n_tokens[w], []).append(w)
        self.rank = {w: i for g in self.groups.values() for i, w in enumerate(g)}

    def __contains__(self, word: str) -> bool:
        return word in self.rank

    def neighbours(self, word: str, exclude: Iterable[str] = ()) -> list[str]:
        """The ``window`` nearest same-token-count words by frequency rank."""
        if word not in self.rank:
            return []
        group = self.groups[self.n_tokens[word]]
        i = self.rank[word]
        bad = set(exclude) | {word}
        lo, hi = i - 1, i + 1
        out: list[str] = []
        while len(out) < self.window and (lo >= 0 or hi < len(group)):
            # alternate sides so the neighbours straddle the word's rank
            for j in (lo, hi):
                if 0 <= j < len(group) and group[j] not in bad and len(out) < self.window:
                    out.append(group[j])
            lo, hi = lo - 1, hi + 1
        return out

    def draw(self, word: str, k: int, rng: np.random.Generator,
             exclude: Iterable[str] = ()):
        """``k`` distinct distractors for ``word``, or ``None`` if too few."""
        cands = self.neighbours(word, exclude)
        if len(cands) < k:
            return None
        idx = rng.choice(len(cands), size=k, replace=False)
        return [cands[i] for i in sorted(idx)]
