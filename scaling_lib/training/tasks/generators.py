"""The project's own tasks, built deterministically from held-out English.

:func:`build_project_tasks` makes the eight tasks of :data:`PROJECT_TASKS`
(cloze, word order, agreement, articles, word replacement, next sentence) from
documents that no model was trained or validated on. Every task draws from its
own generator, answers are spread evenly over the option positions, and
distractors are matched to the answer on frequency and token count
(:class:`~.sentences.WordPool`).

Examples
--------
>>> sorted(PROJECT_TASKS)[:3]
['agreement', 'article', 'cloze_last2']
>>> AGREEMENT_PAIRS["was"]
'were'
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from scaling_lib.training.tasks.items import Item, Task, _task_rng, chance_level
from scaling_lib.training.tasks.sentences import _LOWER_WORD, WordPool, extract_sentences, word_counts

# Agreement pairs: each word is swapped for its partner.
AGREEMENT_PAIRS = {"is": "are", "are": "is", "was": "were", "were": "was",
                   "has": "have", "have": "has"}
ARTICLE_PAIRS = {"a": "an", "an": "a"}


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
