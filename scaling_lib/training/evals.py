"""Evaluations of a language model: validation loss and downstream tasks.

* :func:`eval_loss`: mean next-token loss (nats/token) on a token array, over
  ``n_seqs`` windows of ``seq_len + 1`` tokens at evenly spaced offsets, with
  a 95% Student-t interval over the per-window mean losses.
* :func:`bits_per_byte`: converts a per-token loss to bits per UTF-8 byte,
  which compares across tokenizers.
* :func:`option_scores` / :func:`eval_task` / :func:`eval_tasks`:
  multiple-choice scoring by likelihood. Every option is scored as a
  continuation of ``[EOT] + context``: ``"total"`` tasks use the summed
  log-likelihood of the option's tokens, ``"normalised"`` tasks its mean per
  token. Inputs longer than the model's context are cut from the left (the
  option tokens are kept). Ties between the best options count as a fraction
  of a right answer (the expectation under random tie-breaking), so a model
  that cannot tell the options apart scores exactly at chance.
* :func:`evaluate`: everything above as run-table columns.

The model is any ``torch.nn.Module`` mapping ``idx (B, T)`` to logits
``(B, T, V)``; it is run in eval mode, without gradients, in float32.

Examples
--------
>>> bits_per_byte(2.0, bytes_per_token=2.0)  # 2 nats/token, 2 bytes/token
1.4426950408889634
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from scipy import stats

from scaling_lib.training.tasks import Item, Task

SPLITS = {"en": "val_en", "code": "val_code", "de": "val_de"}


def _model_device(model: torch.nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


class _EvalMode:
    """Context manager: eval mode, no grad, and the previous mode restored."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()
        self.no_grad = torch.inference_mode()
        self.no_grad.__enter__()
        return self.model

    def __exit__(self, *exc):
        self.no_grad.__exit__(*exc)
        self.model.train(self.was_training)
        return False


def _logits(model, x: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
    out = model(x)
    if not isinstance(out, torch.Tensor) or out.dim() != 3 or out.shape[:2] != x.shape:
        raise ValueError("the model must map idx (B, T) to logits (B, T, V); got "
                         f"{type(out).__name__} {getattr(out, 'shape', '')} for input "
                         f"{tuple(x.shape)}")
    if targets is not None and targets.numel() and int(targets.max()) >= out.shape[-1]:
        raise ValueError(f"token id {int(targets.max())} is outside the model's vocabulary of "
                         f"{out.shape[-1]}: tokens and tokenizer must match the model")
    return out.float()


# ---------------------------------------------------------------------------
# Validation loss
# ---------------------------------------------------------------------------

def window_starts(n_tokens: int, seq_len: int, n_seqs: int) -> np.ndarray:
    """Deterministic offsets of ``n_seqs`` windows of ``seq_len + 1`` tokens.

    The windows are spread evenly over the array (they overlap only when the
    array is shorter than ``n_seqs * (seq_len + 1)``).

    Examples
    --------
    >>> window_starts(1000, 9, 4).tolist()
    [0, 330, 660, 990]
    """
    last = n_tokens - (seq_len + 1)
    if last < 0:
        raise ValueError(f"token array of length {n_tokens} is shorter than one window of "
                         f"seq_len + 1 = {seq_len + 1} tokens")
    if n_seqs < 1:
        raise ValueError(f"n_seqs must be positive, got {n_seqs}")
    if n_seqs == 1:
        return np.zeros(1, dtype=np.int64)
    return np.floor(np.linspace(0, last, n_seqs)).astype(np.int64)


def eval_loss(model: torch.nn.Module, tokens, seq_len: int, n_seqs: int = 64,
              batch_size: int = 32, level: float = 0.95) -> dict:
    """Mean next-token cross-entropy with a confidence interval over sequences.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``idx (B, T)`` to logits ``(B, T, V)``.
    tokens : array-like of int
        A validation token stream (documents joined by EOT).
    seq_len : int
        Model context; each window has ``seq_len`` inputs and targets.
    n_seqs : int
        Number of windows (see :func:`window_starts`).
    batch_size : int
    level : float
        Confidence level of the Student-t interval over per-window means.

    Returns
    -------
    dict
        ``loss`` (nats/token), ``lo``, ``hi`` and ``n_seqs``.

    Examples
    --------
    >>> import torch, numpy as np
    >>> class Uniform(torch.nn.Module):
    ...     def forward(self, idx):
    ...         return torch.zeros(*idx.shape, 8)
    >>> r = eval_loss(Uniform(), np.arange(200) % 8, seq_len=16, n_seqs=4)
    >>> round(r["loss"], 4) == round(float(np.log(8)), 4)
    True
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be a 1-D array, got shape {tokens.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    starts = window_starts(len(tokens), seq_len, n_seqs)
    device = _model_device(model)
    offs = np.arange(seq_len + 1)
    per_seq = []
    with _EvalMode(model):
        for b in range(0, len(starts), batch_size):
            win = torch.from_numpy(tokens[starts[b:b + batch_size, None] + offs].astype(np.int64))
            win = win.to(device)                                  # (B, T+1)
            logits = _logits(model, win[:, :-1], win[:, 1:])      # (B, T, V)
            nll = torch.nn.functional.cross_entropy(
                logits.transpose(1, 2), win[:, 1:], reduction="none")  # (B, T)
            per_seq.append(nll.mean(dim=1).double().cpu().numpy())
    per_seq = np.concatenate(per_seq)
    mean = float(per_seq.mean())
    n = len(per_seq)
    if n > 1:
        half = float(stats.t.ppf(0.5 + level / 2, n - 1) * per_seq.std(ddof=1) / math.sqrt(n))
    else:
        half = float("nan")
    return {"loss": mean, "lo": mean - half, "hi": mean + half, "n_seqs": n}


def bits_per_byte(loss_nats_per_token, bytes_per_token):
    """Convert nats per token to bits per byte: ``loss / bytes_per_token / ln 2``.

    Examples
    --------
    >>> round(bits_per_byte(math.log(2), 1.0), 12)
    1.0
    """
    bpt = np.asarray(bytes_per_token, dtype=float)
    if np.any(~np.isfinite(bpt)) or np.any(bpt <= 0):
        raise ValueError(f"bytes_per_token must be positive and finite, got {bytes_per_token}")
    out = np.asarray(loss_nats_per_token, dtype=float) / bpt / math.log(2)
    return float(out) if out.ndim == 0 else out


# ---------------------------------------------------------------------------
# Multiple-choice scoring
# ---------------------------------------------------------------------------

def document_start_id(tokenizer) -> int:
    """Id of the end-of-document token, used as the first token of every item."""
    from scaling_lib.training.tokenizer import eot_id
    return eot_id(tokenizer)


def encode_option(tokenizer, context: str, option: str, bos_id: int,
                  seq_len: int | None = None) -> tuple[list[int], int]:
    """Token ids of ``[bos] + context + option`` and the option's token count.

    Context and option are encoded separately, so the option's tokens are the
    same for every context. With ``seq_len`` set, the sequence is cut from the
    left to ``seq_len + 1`` tokens (the last ``seq_len`` option tokens at most
    are kept).

    Examples
    --------
    >>> class Tok:  # one token per character
    ...     def encode(self, s, add_special_tokens=False):
    ...         return type("E", (), {"ids": [ord(c) for c in s]})()
    >>> encode_option(Tok(), "ab", "cd", bos_id=0)
    ([0, 97, 98, 99, 100], 2)
    >>> encode_option(Tok(), "ab", "cd", bos_id=0, seq_len=2)
    ([98, 99, 100], 2)
    """
    ctx = tokenizer.encode(context, add_special_tokens=False).ids if context else []
    opt = tokenizer.encode(option, add_special_tokens=False).ids
    if not opt:
        raise ValueError(f"option {option!r} encodes to no tokens")
    ids = [int(bos_id)] + list(ctx) + list(opt)
    n_opt = len(opt)
    if seq_len is not None and len(ids) > seq_len + 1:
        ids = ids[-(seq_len + 1):]
        n_opt = min(n_opt, seq_len)
    return ids, n_opt


def _score_sequences(model, seqs: Sequence[list[int]], n_opt: Sequence[int],
                     batch_size: int) -> np.ndarray:
    """Summed log-probability of the last ``n_opt[i]`` tokens of each sequence."""
    device = _model_device(model)
    order = np.argsort([len(s) for s in seqs], kind="stable")
    out = np.zeros(len(seqs))
    with _EvalMode(model):
        for b in range(0, len(order), batch_size):
            idx = order[b:b + batch_size]
            T = max(len(seqs[i]) for i in idx) - 1
            x = torch.zeros(len(idx), T, dtype=torch.long)
            y = torch.zeros(len(idx), T, dtype=torch.long)
            mask = torch.zeros(len(idx), T, dtype=torch.bool)
            for r, i in enumerate(idx):
                s = torch.tensor(seqs[i], dtype=torch.long)
                L = len(s) - 1
                x[r, :L], y[r, :L] = s[:-1], s[1:]        # right padding keeps prefixes intact
                mask[r, L - n_opt[i]:L] = True
            logits = _logits(model, x.to(device), y)               # (B, T, V)
            rows = logits[mask.to(device)]                         # (n_option_tokens, V)
            lp = rows.gather(1, y.to(device)[mask.to(device)][:, None])[:, 0] \
                - torch.logsumexp(rows, dim=1)                    # (n_option_tokens,)
            # sum per sequence: option tokens of row r are contiguous in mask order
            counts = mask.sum(dim=1).tolist()
            sums = torch.split(lp.double().cpu(), counts)
            for r, i in enumerate(idx):
                out[i] = float(sums[r].sum())
    return out


def option_scores(model, tokenizer, task: Task, seq_len: int, batch_size: int = 64,
                  max_items: int | None = None, bos_id: int | None = None) -> list[np.ndarray]:
    """Score of every option of every item (higher is better).

    Parameters
    ----------
    model : torch.nn.Module
    tokenizer : tokenizers.Tokenizer
    task : Task
        ``task.scoring`` picks the total or per-token log-likelihood.
    seq_len : int
        Model context length; longer inputs are cut from the left.
    batch_size : int
    max_items : int, optional
        Score only the first ``max_items`` items.
    bos_id : int, optional
        First token of every sequence; default the tokenizer's EOT token.

    Returns
    -------
    list of numpy.ndarray
        One array of option scores per item.
    """
    if bos_id is None:
        bos_id = document_start_id(tokenizer)
    items = task.items if max_items is None else task.items[:max_items]
    seqs, n_opt, owner = [], [], []
    for k, it in enumerate(items):
        for o in it.options:
            ids, n = encode_option(tokenizer, it.context, o, bos_id, seq_len)
            seqs.append(ids)
            n_opt.append(n)
            owner.append(k)
    totals = _score_sequences(model, seqs, n_opt, batch_size)
    if task.scoring == "normalised":
        totals = totals / np.asarray(n_opt, dtype=float)
    owner = np.asarray(owner)
    return [totals[owner == k] for k in range(len(items))]


def item_accuracy(scores: np.ndarray, answer: int, rtol: float = 1e-6) -> float:
    """1 if the answer scores best, ``1/k`` if it ties with ``k-1`` others, else 0.

    Examples
    --------
    >>> item_accuracy(np.array([-1.0, -2.0]), 0), item_accuracy(np.array([-1.0, -1.0]), 1)
    (1.0, 0.5)
    """
    scores = np.asarray(scores, dtype=float)
    best = scores.max()
    tol = rtol * max(1.0, abs(best))
    top = np.flatnonzero(scores >= best - tol)
    return 1.0 / len(top) if answer in top else 0.0


def eval_task(model, tokenizer, task: Task, seq_len: int, batch_size: int = 64,
              max_items: int | None = None, bos_id: int | None = None) -> float:
    """Top-1 error of the model on ``task`` (ties shared, see :func:`item_accuracy`).

    Examples
    --------
    >>> eval_task(model, tok, suite[0], seq_len=128)  # doctest: +SKIP
    0.42
    """
    scores = option_scores(model, tokenizer, task, seq_len, batch_size, max_items, bos_id)
    items = task.items[:len(scores)]
    if not items:
        raise ValueError(f"task {task.name!r} has no items to evaluate")
    acc = np.mean([item_accuracy(s, it.answer) for s, it in zip(scores, items)])
    return float(1.0 - acc)


def eval_tasks(model, tokenizer, suite: Sequence[Task], seq_len: int = 128,
               batch_size: int = 64, max_items: int | None = None,
               bos_id: int | None = None) -> dict:
    """Error of the model on every task of ``suite``: ``{task name: error}``.

    Examples
    --------
    >>> eval_tasks(model, tok, suite, seq_len=128)  # doctest: +SKIP
    {'cloze_last4': 0.61, ...}
    """
    names = [t.name for t in suite]
    if len(set(names)) != len(names):
        raise ValueError(f"task names in a suite must be unique, got {names}")
    return {t.name: eval_task(model, tokenizer, t, seq_len, batch_size, max_items, bos_id)
            for t in suite}


def suite_average(errors: dict, suite: Sequence[Task], source: str = "project") -> dict:
    """``err_avg`` and ``chance_avg`` over the tasks of one ``source``.

    ``chance_avg`` is the top-1 error of uniform guessing (``1 - chance``),
    averaged like ``err_avg`` so the two columns compare directly.

    Examples
    --------
    >>> t = Task("t", "t", 0.25, "total", (Item("", ("a", "b", "c", "d"), 0),))
    >>> suite_average({"t": 0.5}, [t])
    {'err_avg': 0.5, 'chance_avg': 0.75}
    """
    chosen = [t for t in suite if t.source == source]
    if not chosen:
        raise ValueError(f"no task with source {source!r} in the suite")
    return {"err_avg": float(np.mean([errors[t.name] for t in chosen])),
            "chance_avg": float(np.mean([1.0 - t.chance for t in chosen]))}


def evaluate(model, tokenizer, seq_len: int, suite: Sequence[Task] | None = None,
             splits: Sequence[str] = ("en", "code", "de"), *, n_seqs: int = 128,
             batch_size: int = 64, max_items: int | None = 500,
             max_items_bigbench: int | None = 200, cache_dir=None, val_tokens: dict | None = None,
             bytes_per_token: dict | None = None) -> dict:
    """Validation losses and downstream errors as run-table columns.

    Parameters
    ----------
    model : torch.nn.Module
    tokenizer : tokenizers.Tokenizer
    seq_len : int
        Model context length.
    suite : list of Task, optional
        Default ``tasks.build_suite(cache_dir)``; an empty list skips tasks.
    splits : sequence of {"en", "code", "de"}
        Validation sets (``val_<split>`` in :mod:`scaling_lib.training.corpora`).
    n_seqs : int
        Windows of ``seq_len + 1`` tokens per validation set.
    batch_size : int
    max_items : int or None
        Items scored per project-built task (the first ones, which are
        balanced over answer positions; None = all).
    max_items_bigbench : int or None
        Items scored per BIG-bench task. The defaults keep the whole
        evaluation of a 0.3M-parameter model near 15 s on one CPU thread;
        500 items give each task's error to about +-0.045 (95%) and the
        eight-task average to about +-0.016.
    cache_dir : path, optional
        Corpus cache.
    val_tokens, bytes_per_token : dict, optional
        ``{split: array}`` and ``{split: float}`` to use instead of the
        corpora cache (e.g. in tests).

    Returns
    -------
    dict
        ``loss_<s>``, ``loss_<s>_lo``, ``loss_<s>_hi``, ``bpb_<s>`` per split;
        ``err_<task>`` per task; ``err_avg`` and ``chance_avg`` over the
        project-built tasks only (BIG-bench tasks are reported, not averaged).

    Examples
    --------
    >>> row = evaluate(model, tok, seq_len=128)  # doctest: +SKIP
    >>> sorted(row)[:3]  # doctest: +SKIP
    ['bpb_code', 'bpb_de', 'bpb_en']
    """
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown validation splits {unknown}; known: {sorted(SPLITS)}")
    row: dict = {}
    for s in splits:
        if val_tokens is not None and s in val_tokens:
            toks = val_tokens[s]
        else:
            from scaling_lib.training import corpora
            toks = corpora.load_tokens(SPLITS[s], cache_dir=cache_dir)
        if bytes_per_token is not None and s in bytes_per_token:
            bpt = bytes_per_token[s]
        else:
            from scaling_lib.training import corpora
            st = corpora.split_stats(SPLITS[s], cache_dir=cache_dir)
            bpt = st["n_bytes"] / st["n_tokens"]
        r = eval_loss(model, toks, seq_len, n_seqs=n_seqs, batch_size=batch_size)
        row[f"loss_{s}"] = r["loss"]
        row[f"loss_{s}_lo"] = r["lo"]
        row[f"loss_{s}_hi"] = r["hi"]
        row[f"bpb_{s}"] = bits_per_byte(r["loss"], bpt)
    if suite is None:
        from scaling_lib.training import tasks as tasks_mod
        suite = tasks_mod.build_suite(cache_dir)
    if suite:
        names = [t.name for t in suite]
        if len(set(names)) != len(names):
            raise ValueError(f"task names in a suite must be unique, got {names}")
        errors = {t.name: eval_task(model, tokenizer, t, seq_len, batch_size,
                                    max_items_bigbench if t.source == "bigbench" else max_items)
                  for t in suite}
        row.update({f"err_{k}": v for k, v in errors.items()})
        if any(t.source == "project" for t in suite):
            row.update(suite_average(errors, suite, "project"))
    return row
