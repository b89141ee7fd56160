"""Downstream multiple-choice tasks for tiny language models.

A :class:`Task` is a named list of :class:`Item` objects. Each item is a
context string and two or more option strings; exactly one option is right.
A model is scored on an item by the log-likelihood it gives each option after
the context (see :mod:`scaling_lib.training.evals`), either in total (``"total"``) or
divided by the option's token count (``"normalised"``).

Two kinds of tasks live here:

* **Project-built tasks** (``source="project"``), made deterministically from
  held-out English documents that no model was trained or validated on. Each
  has about 1,000 items, the right answer is spread evenly over the option
  positions, and distractor words are matched to the answer on frequency
  (neighbours in the frequency ranking of the held-out pool) and on token
  count. The eight tasks are listed in :data:`PROJECT_TASKS`.
* **BIG-bench tasks** (``source="bigbench"``), read straight from the JSON in
  the ``bigbench==1.0.0`` source distribution (``social_iqa``,
  ``hyperbaton``). Models of a few million parameters stay at chance on them;
  they are reported to show that honestly and kept out of averages.

The whole suite is cached as one JSON file next to the corpora, keyed by the
SHA-256 of the held-out texts and of the tokenizer, so it is rebuilt only when
one of them changes.

Examples
--------
>>> item = Item(context="The cat sat on the", options=(" mat", " sky"), answer=0)
>>> task = Task(name="toy", description="toy cloze", chance=0.5,
...             scoring="normalised", items=(item,))
>>> task.n_options
(2,)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tarfile
import zlib
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

SCORINGS = ("total", "normalised")
SOURCES = ("project", "bigbench")
SUITE_FORMAT = 1
BUILDER_VERSION = 3
"""Bumped whenever task construction changes, so cached suites are rebuilt."""
BIGBENCH_TASKS = ("social_iqa", "hyperbaton")

# Agreement pairs: each word is swapped for its partner.
AGREEMENT_PAIRS = {"is": "are", "are": "is", "was": "were", "were": "was",
                   "has": "have", "have": "has"}
ARTICLE_PAIRS = {"a": "an", "an": "a"}

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_ALLOWED_BODY = re.compile(r"^[A-Za-z0-9 ,;:'\"()/%$&\-]+$")
_LOWER_WORD = re.compile(r"^[a-z]+$")


@dataclasses.dataclass(frozen=True)
class Item:
    """One multiple-choice item.

    Parameters
    ----------
    context : str
        Text the options continue (may be empty: the option is then a whole
        sentence scored after the document-start token).
    options : tuple of str
        Candidate continuations; each is scored as the text right after
        ``context`` (so it usually starts with a space).
    answer : int
        Index of the right option.

    Examples
    --------
    >>> Item("It", (" is", " are"), 0).options[0]
    ' is'
    """

    context: str
    options: tuple[str, ...]
    answer: int

    def __post_init__(self):
        object.__setattr__(self, "options", tuple(self.options))
        if len(self.options) < 2:
            raise ValueError(f"an item needs at least two options, got {len(self.options)}")
        if not 0 <= int(self.answer) < len(self.options):
            raise ValueError(f"answer index {self.answer} out of range for "
                             f"{len(self.options)} options")
        if len(set(self.options)) != len(self.options):
            raise ValueError(f"duplicate options in item: {self.options!r}")


@dataclasses.dataclass(frozen=True)
class Task:
    """A named multiple-choice task.

    Parameters
    ----------
    name : str
        Short identifier; run-table column ``err_<name>``.
    description : str
        One line saying how the task is built.
    chance : float
        Expected *accuracy* of uniform guessing, the mean of ``1 / n_options``
        over items (error at chance is ``1 - chance``).
    scoring : {"total", "normalised"}
        Sum of option log-likelihoods, or the per-token mean.
    items : tuple of Item
    source : {"project", "bigbench"}
        Project-built tasks enter the suite average; BIG-bench ones do not.

    Examples
    --------
    >>> t = Task("toy", "toy", 0.5, "total", (Item("", ("A b.", "B a."), 0),))
    >>> len(t), t.source
    (1, 'project')
    """

    name: str
    description: str
    chance: float
    scoring: str
    items: tuple[Item, ...]
    source: str = "project"

    def __post_init__(self):
        object.__setattr__(self, "items", tuple(self.items))
        if self.scoring not in SCORINGS:
            raise ValueError(f"task {self.name!r}: scoring must be one of {SCORINGS}, "
                             f"got {self.scoring!r}")
        if self.source not in SOURCES:
            raise ValueError(f"task {self.name!r}: source must be one of {SOURCES}, "
                             f"got {self.source!r}")
        if not 0.0 < self.chance < 1.0:
            raise ValueError(f"task {self.name!r}: chance must lie in (0, 1), got {self.chance}")

    def __len__(self) -> int:
        return len(self.items)

    @property
    def n_options(self) -> tuple[int, ...]:
        """Sorted distinct option counts over the items."""
        return tuple(sorted({len(it.options) for it in self.items}))

    def to_dict(self) -> dict:
        """JSON-able form (see :func:`task_from_dict`)."""
        return {"name": self.name, "description": self.description,
                "chance": self.chance, "scoring": self.scoring, "source": self.source,
                "items": [{"context": it.context, "options": list(it.options),
                           "answer": int(it.answer)} for it in self.items]}


def task_from_dict(d: dict) -> Task:
    """Rebuild a :class:`Task` from :meth:`Task.to_dict` output.

    Examples
    --------
    >>> t = Task("toy", "toy", 0.5, "total", (Item("", ("x y.", "y x."), 1),))
    >>> task_from_dict(t.to_dict()) == t
    True
    """
    missing = {"name", "description", "chance", "scoring", "items"} - set(d)
    if missing:
        raise ValueError(f"task record lacks fields {sorted(missing)}")
    items = tuple(Item(it["context"], tuple(it["options"]), int(it["answer"]))
                  for it in d["items"])
    return Task(d["name"], d["description"], float(d["chance"]), d["scoring"], items,
                d.get("source", "project"))


def chance_level(items: Sequence[Item]) -> float:
    """Expected accuracy of uniform guessing: mean of ``1/len(options)``.

    Examples
    --------
    >>> chance_level([Item("", ("a", "b"), 0), Item("", ("a", "b", "c", "d"), 0)])
    0.375
    """
    if not items:
        raise ValueError("chance level of an empty item list is undefined")
    return float(np.mean([1.0 / len(it.options) for it in items]))


# ---------------------------------------------------------------------------
# Sentences and word statistics from held-out text
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Task builders
# ---------------------------------------------------------------------------

def _task_rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def _balanced_positions(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Answer positions ``0, 1, ..., k-1, 0, 1, ...`` in item order.

    Items are already in random order, so cycling the positions keeps them
    independent of the content while every prefix of the item list (what
    ``max_items`` evaluates) stays balanced to within one item per position.
    A random rotation of the cycle comes from ``rng``.
    """
    return (np.arange(n) + int(rng.integers(k))) % k


def _place(answer: str, distractors: Sequence[str], pos: int) -> tuple[tuple[str, ...], int]:
    opts = list(distractors)
    opts.insert(pos, answer)
    return tuple(opts), pos


def _is_word(w: str) -> bool:
    return bool(_LOWER_WORD.match(w))


def _cloze_last(sentences, pool, n_items, k, rng):
    """Items: context = sentence minus its last word; options = that word + distractors."""
    order = rng.permutation(len(sentences))
    picks = []
    for i in order:
        s = sentences[i]
        w = s.words[-1]
        if not _is_word(w) or w not in pool:
            continue
        d = pool.draw(w, k - 1, rng, exclude=s.words)
        if d is None:
            continue
        picks.append((" ".join(s.words[:-1]), " " + w, [" " + x for x in d]))
        if len(picks) == n_items:
            break
    pos = _balanced_positions(len(picks), k, rng)
    return [Item(ctx, *_place(a, d, int(p))) for (ctx, a, d), p in zip(picks, pos)]


def _cloze_mid(sentences, pool, n_items, k, rng):
    """Items: context = words before a mid-sentence word; options = word + rest of sentence."""
    order = rng.permutation(len(sentences))
    picks = []
    for i in order:
        s = sentences[i]
        cand = [j for j in range(2, len(s.words) - 1)
                if _is_word(s.words[j]) and s.words[j] in pool]
        if not cand:
            continue
        j = cand[int(rng.integers(len(cand)))]
        d = pool.draw(s.words[j], k - 1, rng, exclude=s.words)
        if d is None:
            continue
        rest = " " + " ".join(s.words[j + 1:]) + s.end
        picks.append((" ".join(s.words[:j]), " " + s.words[j] + rest,
                      [" " + x + rest for x in d]))
        if len(picks) == n_items:
            break
    pos = _balanced_positions(len(picks), k, rng)
    return [Item(ctx, *_place(a, d, int(p))) for (ctx, a, d), p in zip(picks, pos)]


def _pairs(picks, rng):
    """Two-option items from (original, variant) sentence pairs, answer balanced."""
    pos = _balanced_positions(len(picks), 2, rng)
    return [Item("", *_place(orig, [var], int(p))) for (orig, var), p in zip(picks, pos)]


def _swap_adjacent(sentences, n_items, rng):
    order = rng.permutation(len(sentences))
    picks = []
    for i in order:
        s = sentences[i]
        w = s.words
        # neither the first nor the last word moves: capitals and final
        # punctuation would give the order away without any grammar
        cand = [j for j in range(1, len(w) - 2)
                if _is_word(w[j]) and _is_word(w[j + 1]) and w[j] != w[j + 1]]
        if not cand:
            continue
        j = cand[int(rng.integers(len(cand)))]
        v = list(w)
        v[j], v[j + 1] = v[j + 1], v[j]
        picks.append((s.text, " ".join(v) + s.end))
        if len(picks) == n_items:
            break
    return _pairs(picks, rng)


def _swap_from_map(sentences, n_items, rng, mapping):
    """Minimal pairs swapping one occurrence of a ``mapping`` key.

    In each sentence one such word (not the first word) is picked at random
    and swapped for its partner. Sentences are grouped by the picked word and
    every group contributes the same number of items, so the directions
    (e.g. is->are and are->is) are balanced.
    """
    groups: dict[str, list[tuple[str, str]]] = {w: [] for w in mapping}
    for i in rng.permutation(len(sentences)):
        s = sentences[i]
        hits = [j for j, w in enumerate(s.words) if w in mapping and j > 0]
        if not hits:
            continue
        j = hits[int(rng.integers(len(hits)))]
        v = list(s.words)
        v[j] = mapping[v[j]]
        groups[s.words[j]].append((s.text, " ".join(v) + s.end))
    quota = min(n_items // len(mapping), *(len(g) for g in groups.values()))
    picks = [p for w in sorted(groups) for p in groups[w][:quota]]
    picks = [picks[i] for i in rng.permutation(len(picks))]
    return _pairs(picks, rng)


def _replace_word(sentences, pool, n_items, rng):
    order = rng.permutation(len(sentences))
    picks = []
    for i in order:
        s = sentences[i]
        cand = [j for j in range(1, len(s.words)) if _is_word(s.words[j]) and s.words[j] in pool]
        if not cand:
            continue
        j = cand[int(rng.integers(len(cand)))]
        d = pool.draw(s.words[j], 1, rng, exclude=s.words)
        if d is None:
            continue
        v = list(s.words)
        v[j] = d[0]
        picks.append((s.text, " ".join(v) + s.end))
        if len(picks) == n_items:
            break
    return _pairs(picks, rng)


def _next_sentence(sentences, n_tokens, n_items, k, rng, window=20):
    """Context: a sentence; options: the sentence after it and k-1 from other documents.

    Distractors are drawn from the ``window`` sentences closest in token count
    to the true next sentence.
    """
    by_key = {(s.doc, s.pos): i for i, s in enumerate(sentences)}
    pairs = [(i, by_key[(s.doc, s.pos + 1)]) for i, s in enumerate(sentences)
             if (s.doc, s.pos + 1) in by_key]
    lengths = np.asarray(n_tokens)
    by_len = np.argsort(lengths, kind="stable")
    rank = np.empty_like(by_len)
    rank[by_len] = np.arange(len(by_len))
    picks = []
    for pi in rng.permutation(len(pairs)):
        a, b = pairs[pi]
        r = rank[b]
        lo, hi = max(0, r - 4 * window), min(len(by_len), r + 4 * window + 1)
        near = [int(j) for j in by_len[lo:hi]
                if sentences[j].doc != sentences[b].doc
                and sentences[j].text != sentences[b].text]
        near.sort(key=lambda j: (abs(int(lengths[j]) - int(lengths[b])), j))
        near = near[:window]
        if len(near) < k - 1:
            continue
        texts = {sentences[j].text for j in near}
        if len(texts) < k - 1:
            continue
        chosen, seen = [], set()
        for j in rng.permutation(near):
            t = sentences[int(j)].text
            if t not in seen:
                chosen.append(" " + t)
                seen.add(t)
            if len(chosen) == k - 1:
                break
        picks.append((sentences[a].text, " " + sentences[b].text, chosen))
        if len(picks) == n_items:
            break
    pos = _balanced_positions(len(picks), k, rng)
    return [Item(ctx, *_place(ans, d, int(p))) for (ctx, ans, d), p in zip(picks, pos)]


PROJECT_TASKS = {
    "cloze_last4": ("Last word of a sentence vs 3 frequency- and token-count-matched words; "
                    "length-normalised score.", "normalised"),
    "cloze_mid4": ("Mid-sentence word (with the rest of the sentence) vs 3 matched words; "
                   "total log-likelihood.", "total"),
    "cloze_last2": ("Last word of a sentence vs 1 matched word; length-normalised score.",
                    "normalised"),
    "swap_adjacent": ("Original sentence vs the same with two adjacent inner words "
                      "swapped; total log-likelihood.", "total"),
    "agreement": ("Original sentence vs one is/are, was/were or has/have swapped (all "
                  "six directions equally often); total log-likelihood.", "total"),
    "article": ("Original sentence vs one article a/an swapped (both directions equally "
                "often); total log-likelihood.", "total"),
    "replace_word": ("Original sentence vs one word replaced by a word of similar frequency "
                     "and equal token count; total log-likelihood.", "total"),
    "next_sentence": ("True next sentence vs 3 token-count-matched sentences from other "
                      "documents; length-normalised score.", "normalised"),
}


def build_project_tasks(texts: Sequence[str], tokenizer, n_items: int = 1000,
                        seed: int = 0) -> list[Task]:
    """Build the eight project tasks of :data:`PROJECT_TASKS` from documents.

    Parameters
    ----------
    texts : sequence of str
        Held-out documents (never seen in training or validation).
    tokenizer : tokenizers.Tokenizer
        Used only to match distractors on token count.
    n_items : int
        Items wanted per task; a task gets fewer when the texts run short.
    seed : int
        Every task draws from its own generator seeded by ``(seed, name)``.

    Returns
    -------
    list of Task

    Examples
    --------
    >>> tasks = build_project_tasks(docs, tok, n_items=50)  # doctest: +SKIP
    >>> [t.name for t in tasks][:2]  # doctest: +SKIP
    ['cloze_last4', 'cloze_mid4']
    """
    if n_items < 1:
        raise ValueError(f"n_items must be positive, got {n_items}")
    texts = list(texts)
    if not texts:
        raise ValueError("no held-out documents given to build the tasks from")
    sentences = extract_sentences(texts)
    if not sentences:
        raise ValueError("the held-out documents contain no usable sentences "
                         "(see tasks.clean_sentence for the rule)")

    def n_tok(strings):
        return [len(e.ids) for e in tokenizer.encode_batch(list(strings),
                                                           add_special_tokens=False)]

    counts = word_counts(texts)
    vocab = sorted(w for w, n in counts.items() if n >= 2)
    tok_of = dict(zip(vocab, n_tok(" " + w for w in vocab)))
    pool = WordPool(counts, tok_of.__getitem__, min_count=2)
    sent_tokens = n_tok(" " + s.text for s in sentences)

    built = {
        "cloze_last4": _cloze_last(sentences, pool, n_items, 4, _task_rng(seed, "cloze_last4")),
        "cloze_mid4": _cloze_mid(sentences, pool, n_items, 4, _task_rng(seed, "cloze_mid4")),
        "cloze_last2": _cloze_last(sentences, pool, n_items, 2, _task_rng(seed, "cloze_last2")),
        "swap_adjacent": _swap_adjacent(sentences, n_items, _task_rng(seed, "swap_adjacent")),
        "agreement": _swap_from_map(sentences, n_items, _task_rng(seed, "agreement"),
                                    AGREEMENT_PAIRS),
        "article": _swap_from_map(sentences, n_items, _task_rng(seed, "article"),
                                  ARTICLE_PAIRS),
        "replace_word": _replace_word(sentences, pool, n_items, _task_rng(seed, "replace_word")),
        "next_sentence": _next_sentence(sentences, sent_tokens, n_items, 4,
                                        _task_rng(seed, "next_sentence")),
    }
    tasks = []
    for name, (desc, scoring) in PROJECT_TASKS.items():
        items = built[name]
        if not items:
            raise ValueError(f"task {name!r}: the held-out documents yield no items")
        tasks.append(Task(name, desc, chance_level(items), scoring, tuple(items), "project"))
    return tasks


def suite_table(suite: Sequence[Task]):
    """One row per task: name, source, scoring, items, options, chance accuracy and error.

    Examples
    --------
    >>> t = Task("toy", "toy", 0.5, "total", (Item("", ("x.", "y."), 0),))
    >>> suite_table([t])[["task", "n_items", "chance_error"]].to_dict("records")
    [{'task': 'toy', 'n_items': 1, 'chance_error': 0.5}]
    """
    import pandas as pd
    return pd.DataFrame([{
        "task": t.name, "source": t.source, "scoring": t.scoring, "n_items": len(t),
        "n_options": "/".join(str(k) for k in t.n_options),
        "chance_accuracy": round(t.chance, 4), "chance_error": round(1 - t.chance, 4),
        "description": t.description} for t in suite])


# ---------------------------------------------------------------------------
# BIG-bench tasks from the sdist tarball
# ---------------------------------------------------------------------------

def _bigbench_items(record: dict, name: str) -> list[Item]:
    examples = record.get("examples")
    if not isinstance(examples, list) or not examples:
        raise ValueError(f"BIG-bench task {name!r}: no 'examples' list in task.json")
    append = bool(record.get("append_choices_to_input", False))
    items = []
    for i, ex in enumerate(examples):
        scores = ex.get("target_scores")
        if not isinstance(scores, dict) or len(scores) < 2 or "input" not in ex:
            raise ValueError(f"BIG-bench task {name!r}, example {i}: not a multiple-choice "
                             "example with 'input' and 'target_scores'")
        opts = list(scores)
        best = [j for j, o in enumerate(opts) if scores[o] == max(scores.values())]
        if len(best) != 1:
            raise ValueError(f"BIG-bench task {name!r}, example {i}: no single right option")
        ctx = "Q: " + str(ex["input"]).strip()
        if append:
            ctx += "".join(f"\n  choice: {o}" for o in opts)
        ctx += "\nA:"
        items.append(Item(ctx, tuple(" " + o for o in opts), best[0]))
    return items


def read_bigbench_tasks(tarball, names: Sequence[str] = BIGBENCH_TASKS,
                        max_items: int = 1000, seed: int = 0) -> list[Task]:
    """Read multiple-choice BIG-bench JSON tasks from the ``bigbench`` sdist.

    The prompt follows BIG-bench's JSON-task format: ``"Q: <input>"``, the
    choices appended when the task asks for it, then ``"\\nA:"``; each option
    is a target string. Tasks with more than ``max_items`` examples are
    subsampled deterministically. Scoring is length-normalised unless every
    option of the task is a single character.

    Examples
    --------
    >>> read_bigbench_tasks("bigbench-1.0.0.tar.gz", ["hyperbaton"])  # doctest: +SKIP
    """
    path = Path(tarball)
    if not path.is_file():
        raise FileNotFoundError(f"BIG-bench sdist tarball not found: {path} "
                                "(corpora.bigbench_tarball() downloads it)")
    wanted = {f"/benchmark_tasks/{n}/task.json": n for n in names}
    found: dict[str, dict] = {}
    try:
        with tarfile.open(path, "r:*") as tf:
            for m in tf:
                key = next((k for k in wanted if m.name.endswith(k)), None)
                if key is None or not m.isfile():
                    continue
                found[wanted[key]] = json.load(tf.extractfile(m))
                if len(found) == len(wanted):
                    break
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ValueError(f"cannot read BIG-bench tarball {path}: {e}") from e
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"BIG-bench tasks {missing} not found in {path}")
    tasks = []
    for name in names:
        rec = found[name]
        items = _bigbench_items(rec, name)
        if len(items) > max_items:
            keep = np.sort(_task_rng(seed, name).choice(len(items), max_items, replace=False))
            items = [items[i] for i in keep]
        single = all(len(o.strip()) == 1 for it in items for o in it.options)
        desc = f"BIG-bench {name}: {str(rec.get('description', '')).strip()}"
        tasks.append(Task(name, desc, chance_level(items),
                          "total" if single else "normalised", tuple(items), "bigbench"))
    return tasks


# ---------------------------------------------------------------------------
# The cached suite
# ---------------------------------------------------------------------------

def _sha256_texts(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def save_suite(path, tasks: Sequence[Task], meta: dict | None = None) -> Path:
    """Write tasks as one JSON file atomically (temp file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"format": SUITE_FORMAT, "meta": dict(meta or {}),
           "tasks": [t.to_dict() for t in tasks]}
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=0), encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_suite(path) -> tuple[list[Task], dict]:
    """Read a suite JSON written by :func:`save_suite`; returns ``(tasks, meta)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"task suite file not found: {path}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"task suite file {path} is not valid JSON: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") != SUITE_FORMAT or "tasks" not in doc:
        raise ValueError(f"task suite file {path} has an unknown format "
                         f"(expected format {SUITE_FORMAT} with a 'tasks' list)")
    return [task_from_dict(t) for t in doc["tasks"]], doc.get("meta", {})


def build_suite(cache_dir=None, *, n_items: int = 1000, seed: int = 0,
                bigbench: bool = True, texts: Sequence[str] | None = None,
                tokenizer=None, bigbench_tarball=None, rebuild: bool = False) -> list[Task]:
    """The full task suite, built once and cached as ``<cache>/tasks/suite.json``.

    Parameters
    ----------
    cache_dir : path, optional
        Corpus cache (default: ``tokenizer.default_cache_dir()``).
    n_items : int
        Items per task (project tasks get at most this many; BIG-bench tasks
        are subsampled to it).
    seed : int
    bigbench : bool
        Also read :data:`BIGBENCH_TASKS` from the BIG-bench sdist.
    texts, tokenizer, bigbench_tarball : optional
        Inputs; by default ``corpora.load_texts("heldout_en")``,
        ``tokenizer.load_tokenizer()`` and ``corpora.bigbench_tarball()``.
    rebuild : bool
        Ignore an existing cache file.

    Returns
    -------
    list of Task
        Project tasks first, then BIG-bench ones.

    Examples
    --------
    >>> suite = build_suite()  # doctest: +SKIP
    >>> [t.name for t in suite if t.source == "bigbench"]  # doctest: +SKIP
    ['social_iqa', 'hyperbaton']
    """
    from scaling_lib.training import tokenizer as tokenizer_mod
    cache = tokenizer_mod.resolve_cache_dir(cache_dir)
    if texts is None:
        from scaling_lib.training import corpora
        texts = corpora.load_texts("heldout_en", cache_dir=cache_dir)
    if tokenizer is None:
        tokenizer = tokenizer_mod.load_tokenizer(cache_dir=cache_dir)
    texts = list(texts)
    meta = {"builder": BUILDER_VERSION, "n_items": int(n_items), "seed": int(seed), "bigbench": bool(bigbench),
            "heldout_sha256": _sha256_texts(texts),
            "tokenizer_sha256": hashlib.sha256(tokenizer.to_str().encode()).hexdigest()}
    path = cache / "tasks" / "suite.json"
    if path.is_file() and not rebuild:
        try:
            tasks, old = load_suite(path)
        except ValueError:
            tasks, old = None, None
        if old == meta:
            return tasks
    tasks = build_project_tasks(texts, tokenizer, n_items=n_items, seed=seed)
    if bigbench:
        if bigbench_tarball is None:
            from scaling_lib.training import corpora
            bigbench_tarball = corpora.bigbench_tarball(cache_dir=cache_dir)
        tasks += read_bigbench_tasks(bigbench_tarball, BIGBENCH_TASKS, max_items=n_items,
                                     seed=seed)
    save_suite(path, tasks, meta)
    return tasks


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m scaling_lib.training.tasks [--cache DIR] [--rebuild]``: build and print the suite."""
    import argparse
    ap = argparse.ArgumentParser(description="Build the downstream task suite and print its card.")
    ap.add_argument("--cache", default=None, help="corpus cache directory")
    ap.add_argument("--n-items", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rebuild", action="store_true", help="ignore a cached suite")
    args = ap.parse_args(argv)
    suite = build_suite(args.cache, n_items=args.n_items, seed=args.seed, rebuild=args.rebuild)
    print(suite_table(suite).drop(columns="description").to_markdown(index=False))


if __name__ == "__main__":
    main()
