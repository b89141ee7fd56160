"""Tests for scaling_lib.training.evals: loss intervals, bits per byte, multiple-choice scoring."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from scaling_lib.training import evals, tasks
from scaling_lib.training.tokenizer import eot_id, train_tokenizer

SENTENCES = [
    "The old man walked slowly toward the quiet harbour in the morning.",
    "A young woman was reading an old letter beside the window.",
    "The sailors were tired and rested under the large tree.",
    "My brother has a small garden behind the stone house.",
    "The children ran across the field and waited near the river.",
    "An honest farmer is always welcome at the market on Sunday.",
    "The captain looked at the sea and called the men to work.",
    "Her friends have an orange boat that they sail every summer.",
]


class Uniform(torch.nn.Module):
    """Zero logits: every token has probability 1/V."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab = vocab

    def forward(self, idx):
        return torch.zeros(*idx.shape, self.vocab)


class PrefixMemory(torch.nn.Module):
    """Puts high probability on the next token seen after the exact same prefix."""

    def __init__(self, vocab, sequences):
        super().__init__()
        self.vocab = vocab
        self.next = {}
        for s in sequences:
            for t in range(1, len(s)):
                self.next[tuple(s[:t])] = s[t]

    def forward(self, idx):
        out = torch.zeros(*idx.shape, self.vocab)
        for b in range(idx.shape[0]):
            row = idx[b].tolist()
            for t in range(len(row)):
                nxt = self.next.get(tuple(row[:t + 1]))
                if nxt is not None:
                    out[b, t, nxt] = 8.0
        return out


class Unigram(torch.nn.Module):
    """Fixed random logits independent of the context (a trainable vector)."""

    def __init__(self, vocab, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.logits = torch.nn.Parameter(torch.randn(vocab, generator=g))

    def forward(self, idx):
        return self.logits.expand(*idx.shape, -1)


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(SENTENCES * 5, vocab_size=300)


def _swap_task(tok):
    docs = [" ".join(SENTENCES[i:] + SENTENCES[:i]) for i in range(len(SENTENCES))]
    sents = tasks.extract_sentences(docs)
    items = tasks._swap_adjacent(sents, 40, np.random.default_rng(0))
    return tasks.Task("swap", "adjacent swap", 0.5, "total", tuple(items))


def test_oracle_gets_zero_error_on_swap_task(tok):
    task = _swap_task(tok)
    assert len(task) >= 8
    bos = eot_id(tok)
    originals = [evals.encode_option(tok, it.context, it.options[it.answer], bos)[0]
                 for it in task.items]
    model = PrefixMemory(tok.get_vocab_size(), originals)
    assert evals.eval_task(model, tok, task, seq_len=64, batch_size=5) == 0.0
    # the reversed preference gets everything wrong
    flipped = tasks.Task("flip", "d", 0.5, "total", tuple(
        tasks.Item(it.context, it.options, 1 - it.answer) for it in task.items))
    assert evals.eval_task(model, tok, flipped, seq_len=64, batch_size=5) == 1.0


def test_uniform_model_is_exactly_at_chance_with_normalised_scores(tok):
    rng = np.random.default_rng(0)
    items = []
    for i in range(40):
        opts = tuple(f" word{i} {j} of {'x ' * int(rng.integers(1, 4))}end" for j in range(4))
        items.append(tasks.Item("Some context", opts, i % 4))
    task = tasks.Task("u", "d", 0.25, "normalised", tuple(items))
    err = evals.eval_task(Uniform(tok.get_vocab_size()), tok, task, seq_len=32)
    assert err == pytest.approx(0.75)


def test_uniform_model_at_chance_on_every_built_task():
    sys.path.insert(0, str(Path(__file__).parent))
    from test_tasks import make_docs          # the synthetic English of the task tests

    docs = make_docs(n_docs=30)
    tk = train_tokenizer(docs, vocab_size=300)
    suite = tasks.build_project_tasks(docs, tk, n_items=60, seed=0)
    errors = evals.eval_tasks(Uniform(tk.get_vocab_size()), tk, suite, seq_len=64)
    for t in suite:
        # balanced answer positions and directions: no length or position preference helps
        assert errors[t.name] == pytest.approx(1 - t.chance, abs=0.02), t.name


def test_random_unigram_model_near_chance_on_swap_task(tok):
    task = _swap_task(tok)
    errs = [evals.eval_task(Unigram(tok.get_vocab_size(), seed=s), tok, task, seq_len=64)
            for s in range(3)]
    # a context-free model scores a sentence and its reordering identically
    assert errs == [pytest.approx(0.5)] * 3


def test_scores_equal_log_likelihood_by_hand(tok):
    model = Unigram(tok.get_vocab_size(), seed=1)
    lp = torch.log_softmax(model.logits.detach(), 0).double().numpy()
    item = tasks.Item("The old man", (" walked slowly", " ran"), 0)
    for scoring in ("total", "normalised"):
        task = tasks.Task("t", "d", 0.5, scoring, (item,))
        got = evals.option_scores(model, tok, task, seq_len=32)[0]
        for o, g in zip(item.options, got):
            ids = tok.encode(o).ids
            want = lp[ids].sum() / (len(ids) if scoring == "normalised" else 1)
            assert g == pytest.approx(want, rel=1e-5)


def test_left_truncation_keeps_option(tok):
    ctx = " ".join(SENTENCES)
    ids, n = evals.encode_option(tok, ctx, " the end", eot_id(tok), seq_len=16)
    assert len(ids) == 17 and ids[-n:] == tok.encode(" the end").ids
    model = Unigram(tok.get_vocab_size())
    task = tasks.Task("t", "d", 0.5, "total", (tasks.Item(ctx, (" the end", " a start"), 0),))
    assert len(evals.option_scores(model, tok, task, seq_len=16)[0]) == 2


def test_item_accuracy_ties():
    assert evals.item_accuracy(np.array([0.0, 0.0, 0.0, -1.0]), 2) == pytest.approx(1 / 3)
    assert evals.item_accuracy(np.array([0.0, 0.0, 0.0, -1.0]), 3) == 0.0
    assert evals.item_accuracy(np.array([-3.0, -1.0]), 1) == 1.0


def test_eval_loss_uniform_and_interval():
    V = 16
    toks = np.random.default_rng(0).integers(0, V, 5000)
    r = evals.eval_loss(Uniform(V), toks, seq_len=32, n_seqs=10, batch_size=4)
    assert r["loss"] == pytest.approx(math.log(V), rel=1e-6)
    assert r["n_seqs"] == 10


def test_eval_loss_interval_contains_mean_and_shrinks():
    V = 32
    toks = np.random.default_rng(1).integers(0, V, 20000)
    model = Unigram(V, seed=3)
    small = evals.eval_loss(model, toks, seq_len=16, n_seqs=8, batch_size=8)
    large = evals.eval_loss(model, toks, seq_len=16, n_seqs=256, batch_size=64)
    for r in (small, large):
        assert r["lo"] < r["loss"] < r["hi"]
    assert (large["hi"] - large["lo"]) < 0.5 * (small["hi"] - small["lo"])
    # deterministic
    assert evals.eval_loss(model, toks, seq_len=16, n_seqs=8) == small
    # cross-check against the closed form for a context-free model
    lp = torch.log_softmax(model.logits.detach(), 0).double().numpy()
    starts = evals.window_starts(len(toks), 16, 256)
    want = -np.mean([lp[toks[s + 1:s + 17]].mean() for s in starts])
    assert large["loss"] == pytest.approx(want, rel=1e-5)


def test_eval_loss_errors():
    with pytest.raises(ValueError, match="shorter than one window"):
        evals.eval_loss(Uniform(4), np.zeros(10, dtype=int), seq_len=16, n_seqs=2)
    with pytest.raises(ValueError, match="1-D array"):
        evals.eval_loss(Uniform(4), np.zeros((10, 10), dtype=int), seq_len=4, n_seqs=2)

    class Bad(torch.nn.Module):
        def forward(self, idx):
            return idx.float()
    with pytest.raises(ValueError, match=r"logits \(B, T, V\)"):
        evals.eval_loss(Bad(), np.zeros(100, dtype=int), seq_len=4, n_seqs=2)


def test_vocabulary_mismatch_is_a_clear_error(tok):
    small = Uniform(8)
    with pytest.raises(ValueError, match="outside the model's vocabulary of 8"):
        evals.eval_loss(small, np.arange(100) % 20, seq_len=8, n_seqs=2)
    task = tasks.Task("t", "d", 0.5, "total", (tasks.Item("The man", (" ran", " sat"), 0),))
    with pytest.raises(ValueError, match="tokenizer must match the model"):
        evals.eval_task(small, tok, task, seq_len=16)


def test_bits_per_byte():
    assert evals.bits_per_byte(math.log(2), 1.0) == pytest.approx(1.0)
    # 3 nats/token at 4 byt/token: 3 / 4 / ln 2 bits per byte
    assert evals.bits_per_byte(3.0, 4.0) == pytest.approx(1.0820212806667225)
    np.testing.assert_allclose(evals.bits_per_byte(np.array([2.0, 4.0]), 2.0),
                               [1 / math.log(2), 2 / math.log(2)])
    with pytest.raises(ValueError, match="bytes_per_token must be positive"):
        evals.bits_per_byte(1.0, 0.0)


def test_evaluate_columns_and_average(tok):
    V = tok.get_vocab_size()
    swap = _swap_task(tok)
    bb = tasks.Task("bb", "big", 1 / 3, "normalised",
                    (tasks.Item("Q: x\nA:", (" yes", " no", " maybe"), 0),), "bigbench")
    toks = np.random.default_rng(0).integers(0, V, 3000)
    model = Uniform(V)
    train_mode = model.training
    row = evals.evaluate(model, tok, seq_len=32, suite=[swap, bb], splits=("en", "de"),
                         n_seqs=8, val_tokens={"en": toks, "de": toks},
                         bytes_per_token={"en": 3.0, "de": 2.0})
    assert model.training == train_mode
    assert set(row) == {"loss_en", "loss_en_lo", "loss_en_hi", "bpb_en", "loss_de",
                        "loss_de_lo", "loss_de_hi", "bpb_de", "err_swap", "err_bb",
                        "err_avg", "chance_avg"}
    assert row["bpb_en"] == pytest.approx(math.log(V) / 3.0 / math.log(2))
    assert row["err_bb"] == pytest.approx(2 / 3)
    assert row["err_avg"] == row["err_swap"]          # BIG-bench kept out of the average
    assert row["chance_avg"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown validation splits"):
        evals.evaluate(model, tok, seq_len=32, suite=[], splits=("fr",))
