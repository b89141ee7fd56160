"""Training loop for :class:`scaling_lib.training.model.GPT` with an exact token budget.

One call to :func:`train` trains one model on exactly ``TrainConfig.tokens``
target tokens (the paper's ``D = M N``, Gadre et al. 2024 Sec. 3): the last
step uses only as many tokens as remain, with the surplus target positions
masked out of the loss.  The optimiser is AdamW (beta2 0.95, decoupled weight
decay on matrices only), the learning rate warms up linearly and then follows a
cosine down to a floor, gradients are clipped, and a z-loss of 1e-4 is added
as in open_lm.

The order of the training data is a pure function of ``(seed, step)``: the
token array is cut into non-overlapping windows of ``seq_len + 1`` tokens
(inputs and shifted targets), each epoch visits them in a permutation drawn
from ``numpy.random.default_rng([seed, epoch])``, and step ``s`` takes global
samples ``s B ... (s + 1) B - 1``.  A run stopped at any point and resumed
from its last checkpoint therefore sees the same batches and, on CPU in
float32, ends at the same loss.

On CUDA the step runs under bf16 autocast with ``torch.compile`` and a fused
AdamW; on CPU everything is float32.  Under an initialised
``torch.distributed`` process group (``torchrun``, or the gloo backend on
CPU) each rank takes a strided share of every global batch and gradients are
averaged by DistributedDataParallel; the loss is normalised by the global
number of target tokens so the update equals the single-process one.

Training that diverges stops with :class:`TrainingDiverged` as soon as it
shows: the training loss is checked after every step (it is computed
anyway), the weights at every evaluation point and, with the optimiser
state, before every checkpoint save, so no non-finite checkpoint or result
is ever written or returned.  Checkpoints carry a SHA-256 checksum of their
payload, verified by :func:`load_checkpoint`.

Examples
--------
>>> import numpy as np
>>> from scaling_lib.training.model import GPTConfig
>>> from scaling_lib.training.train import TrainConfig, train
>>> toks = (np.arange(5000) % 17).astype(np.uint16)
>>> cfg = TrainConfig(model=GPTConfig(d_model=16, n_layers=1, n_heads=2, vocab_size=17, seq_len=16),
...                   tokens=2048, batch_size=8, lr=1e-2, warmup_steps=2, eval_seqs=4)
>>> res = train(cfg, toks, toks[:1000], progress=False)
>>> res.tokens_seen
2048
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from scaling_lib.configs import GPTConfig, TrainConfig  # noqa: F401  (part of this module's API)
from scaling_lib.training.model import GPT, lm_loss
from scaling_lib.training.checkpoint import (CHECKPOINT_FORMAT, CHECKPOINT_MAGIC,  # noqa: F401  (API)
                                             CheckpointError, load_checkpoint, save_checkpoint)


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss or non-finite weights.

    Attributes
    ----------
    step : int
        Completed steps when the problem was found (the step whose update or
        loss was non-finite is this one).
    reason : str
        What was non-finite (the loss, a named parameter, ...).
    """

    def __init__(self, message: str, *, step: int, reason: str) -> None:
        super().__init__(message)
        self.step = step
        self.reason = reason


def _run_label(cfg: TrainConfig, desc: str | None = None) -> str:
    """The run's essentials for error messages.

    Examples
    --------
    >>> from scaling_lib.training.model import GPTConfig
    >>> _run_label(TrainConfig(model=GPTConfig(d_model=16, n_layers=1, n_heads=2), tokens=4096,
    ...                        batch_size=8, lr=1e-2, warmup_steps=1), "r0")
    'run r0 (d_model=16, n_layers=1, n_heads=2, lr=0.01, batch_size=8, tokens=4096, seed=0)'
    """
    m = cfg.model
    name = f"run {desc} " if desc else "run "
    return (f"{name}(d_model={m.d_model}, n_layers={m.n_layers}, n_heads={m.n_heads}, lr={cfg.lr:g}, "
            f"batch_size={cfg.batch_size}, tokens={cfg.tokens}, seed={cfg.seed})")


def first_nonfinite(tensors) -> str | None:
    """Name of the first tensor holding a NaN or an infinity, or ``None`` if all are finite.

    Parameters
    ----------
    tensors : iterable of (name, tensor)
        E.g. ``model.named_parameters()``; one device synchronisation in all.

    Examples
    --------
    >>> first_nonfinite([("a", torch.ones(2)), ("b", torch.tensor([1.0, float("nan")]))])
    'b'
    >>> first_nonfinite([("a", torch.ones(2))]) is None
    True
    """
    named = [(n, t) for n, t in tensors if torch.is_tensor(t) and t.is_floating_point()]
    if not named:
        return None
    flags = [torch.isfinite(t.detach()).all() for _, t in named]
    by_device: dict = {}
    for i, flag in enumerate(flags):  # optimiser step counters may live on the CPU beside CUDA weights
        by_device.setdefault(flag.device, []).append(i)
    ok = [True] * len(named)
    for idx in by_device.values():
        for i, good in zip(idx, torch.stack([flags[i] for i in idx]).cpu().tolist()):
            ok[i] = good
    return next((name for (name, _), good in zip(named, ok) if not good), None)


def _state_tensors(model: torch.nn.Module, optimizer: torch.optim.Optimizer):
    """(name, tensor) of every parameter and every optimiser state tensor."""
    for name, p in model.named_parameters():
        yield name, p
        for key, value in optimizer.state.get(p, {}).items():
            yield f"{key} of {name} (optimiser state)", value


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    config : TrainConfig
    model : GPT
        The trained model (unwrapped, on the training device).
    final_loss : float
        Validation loss (nats/token) on the curve's validation slice at the end.
    train_loss : float
        Mean training cross-entropy of the last step.
    curve : list of (step, tokens, loss_en)
        Validation loss during training.
    tokens_seen : int
        Target tokens trained on; equals ``config.tokens``.
    steps : int
    wall_s : float
        Training wall time summed over all resumed segments.
    device : str
    resumed_from_step : int
        Step of the checkpoint this call resumed from (0 for a fresh start).
    """

    config: TrainConfig
    model: GPT
    final_loss: float
    train_loss: float
    curve: list = field(default_factory=list)
    tokens_seen: int = 0
    steps: int = 0
    wall_s: float = 0.0
    device: str = "cpu"
    resumed_from_step: int = 0


# ----------------------------------------------------------------------------- data order


class DataOrder:
    """Deterministic assignment of training windows to ``(step, row)``.

    Parameters
    ----------
    n_tokens : int
        Length of the training token array.
    seq_len : int
        Inputs per window (each window reads ``seq_len + 1`` tokens).
    seed : int

    Examples
    --------
    >>> order = DataOrder(1000, 9, seed=0)
    >>> order.n_windows
    111
    >>> bool((order.starts(0, 4) == DataOrder(1000, 9, seed=0).starts(0, 4)).all())
    True
    """

    def __init__(self, n_tokens: int, seq_len: int, seed: int) -> None:
        self.seq_len = seq_len
        self.seed = seed
        self.n_windows = (n_tokens - 1) // seq_len
        if self.n_windows < 1:
            raise ValueError(
                f"training data has {n_tokens} tokens, fewer than one window of {seq_len + 1}"
            )
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) >= 2:
                self._perms.pop(min(self._perms))
            rng = np.random.default_rng([self.seed, epoch])
            self._perms[epoch] = rng.permutation(self.n_windows)
        return self._perms[epoch]

    def starts(self, first_sample: int, count: int) -> np.ndarray:
        """Token offsets of global samples ``first_sample ... first_sample + count - 1``."""
        idx = np.arange(first_sample, first_sample + count)
        out = np.empty(count, dtype=np.int64)
        for epoch in np.unique(idx // self.n_windows):
            sel = idx // self.n_windows == epoch
            out[sel] = self._perm(int(epoch))[idx[sel] % self.n_windows] * self.seq_len
        return out


def step_batch(
    tokens: np.ndarray, order: DataOrder, cfg: TrainConfig, step: int, rank: int = 0, world: int = 1
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Inputs, targets and the global valid-target count of ``step`` for one rank.

    The rank takes rows ``rank, rank + world, ...`` of the global batch.  In
    the final, partial step only the remaining budget is used: whole windows
    plus a prefix of one more, the rest of its targets set to -100.

    Returns
    -------
    x, y : LongTensor (b, T)
    n_global : int
        Valid targets in the whole global batch (the loss normaliser).
    """
    T = cfg.model.seq_len
    done = step * cfg.tokens_per_step
    n_global = min(cfg.tokens_per_step, cfg.tokens - done)
    if n_global <= 0:
        raise ValueError(f"step {step} is past the token budget of {cfg.tokens}")
    n_rows = -(-n_global // T)
    starts = order.starts(step * cfg.batch_size, n_rows)
    rows = np.arange(rank, n_rows, world)
    x = np.empty((len(rows), T), dtype=np.int64)
    y = np.empty((len(rows), T), dtype=np.int64)
    for i, r in enumerate(rows):
        window = tokens[starts[r] : starts[r] + T + 1].astype(np.int64)
        x[i], y[i] = window[:-1], window[1:]
        valid = n_global - r * T
        if valid < T:
            y[i, valid:] = -100
    return torch.from_numpy(x), torch.from_numpy(y), n_global


def lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    """Multiplier of the peak lr at each step: linear warmup, cosine to ``min_lr_ratio``.

    Examples
    --------
    >>> from scaling_lib.training.model import GPTConfig
    >>> cfg = TrainConfig(model=GPTConfig(d_model=32, n_layers=1, n_heads=2), tokens=4096 * 10,
    ...                   batch_size=32, lr=1e-3, warmup_steps=2)
    >>> f = lr_lambda(cfg)
    >>> [round(f(s), 3) for s in (0, 1, 2, 9)]
    [0.5, 1.0, 1.0, 0.1]
    """
    total, warm, floor = cfg.total_steps, cfg.warmup_steps, cfg.min_lr_ratio

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        span = max(1, total - 1 - warm)
        progress = min(1.0, (step - warm) / span)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return f


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def val_loss(model: torch.nn.Module, tokens: np.ndarray, seq_len: int, n_seqs: int, batch_size: int = 16) -> float:
    """Mean next-token loss (nats) on ``n_seqs`` evenly spaced windows of ``tokens``.

    The windows are fixed by the array alone, so every evaluation of every run
    uses the same slice.

    Examples
    --------
    >>> import numpy as np
    >>> from scaling_lib.training.model import GPT, GPTConfig
    >>> m = GPT(GPTConfig(d_model=16, n_layers=1, n_heads=2, vocab_size=10, seq_len=8))
    >>> 0 < val_loss(m, np.arange(200) % 10, 8, 4) < 5
    True
    """
    n_avail = (len(tokens) - 1) // seq_len
    if n_avail < 1:
        raise ValueError(f"validation data has {len(tokens)} tokens, fewer than one window of {seq_len + 1}")
    n = min(n_seqs, n_avail)
    starts = (np.linspace(0, n_avail - 1, n).round().astype(np.int64)) * seq_len
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for i in range(0, n, batch_size):
        win = np.stack([tokens[s : s + seq_len + 1] for s in starts[i : i + batch_size]]).astype(np.int64)
        win = torch.from_numpy(win).to(device)
        logits = model(win[:, :-1])
        ce, _ = lm_loss(logits, win[:, 1:])
        total += float(ce)
        count += win[:, 1:].numel()
    model.train(was_training)
    return total / count


# ----------------------------------------------------------------------------- helpers


def code_version(repo: str | os.PathLike | None = None) -> str:
    """``git describe --always --dirty`` of the repository holding this package, or ``"unknown"``."""
    repo = Path(repo) if repo is not None else Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=repo, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def default_device() -> str:
    """``"cuda"`` when available, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on weight matrices, none on norm gains."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith("norm.weight") or p.ndim < 2 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


# ----------------------------------------------------------------------------- training


def train(
    cfg: TrainConfig,
    train_tokens: np.ndarray,
    val_tokens: np.ndarray,
    *,
    checkpoint_path: str | os.PathLike | None = None,
    device: str | None = None,
    progress: bool = True,
    desc: str | None = None,
    on_step: Callable[[int], None] | None = None,
    gpu_settings: bool | None = None,
) -> TrainResult:
    """Train a fresh GPT (or resume one from ``checkpoint_path``) on exactly ``cfg.tokens`` tokens.

    Parameters
    ----------
    cfg : TrainConfig
    train_tokens, val_tokens : np.ndarray of ints
        Token ids; the trainer never reads corpora itself.
    checkpoint_path : path-like, optional
        Where checkpoints are written; if the file exists the run resumes from
        it (it must match ``cfg``, else :class:`CheckpointError`).  The file
        is left in place at the end; removing it is up to the caller.
    device : str, optional
        ``"cpu"`` or ``"cuda"``; default :func:`default_device`.
    progress : bool
        Show a tqdm bar with tokens/s (rank 0 only).
    desc : str, optional
        Label of the progress bar.
    on_step : callable, optional
        Called with the number of completed steps after every step (and any
        checkpoint it triggers); raising from it stops the run as a crash would.
    gpu_settings : bool, optional
        Train with the GPU path's settings: bf16 autocast, ``torch.compile`` and
        a fused AdamW. ``None`` (the default) means exactly on CUDA; ``True`` on
        the CPU runs the same path there (compiled with the ``aot_eager``
        backend, since the default backend's compilation takes tens of seconds
        on a CPU), so it can be tested without a GPU.

    Returns
    -------
    TrainResult
        Its ``final_loss``, ``train_loss`` and curve are finite.

    Raises
    ------
    TrainingDiverged
        The training loss of a step was NaN or infinite, or the weights were
        at an evaluation point, or the weights or optimiser state were before
        a checkpoint save (nothing is saved then: the last checkpoint on disk
        is an earlier, finite one), or a validation loss was.  The message
        names the step and the run's essentials (``desc``, shape, lr, batch,
        tokens, seed).
    CheckpointError
        ``checkpoint_path`` exists but is corrupt, unverifiable or of another
        config; it is never resumed from then.

    Examples
    --------
    A learning rate far too high diverges within a few steps:

    >>> import numpy as np
    >>> from scaling_lib.training.model import GPTConfig
    >>> toks = (np.arange(5000) % 17).astype(np.uint16)
    >>> cfg = TrainConfig(model=GPTConfig(d_model=16, n_layers=1, n_heads=2, vocab_size=17, seq_len=16),
    ...                   tokens=4096, batch_size=8, lr=1e30, warmup_steps=1, grad_clip=0.0, eval_seqs=4)
    >>> train(cfg, toks, toks[:1000], progress=False, desc="r0")
    Traceback (most recent call last):
    ...
    scaling_lib.training.train.TrainingDiverged: run r0 (d_model=16, ...) diverged at step ...
    """
    from tqdm.auto import tqdm

    device = device or default_device()
    distributed = dist.is_available() and dist.is_initialized()
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    if world > cfg.batch_size:
        raise ValueError(f"world size {world} exceeds the global batch of {cfg.batch_size} sequences")
    if int(np.max(train_tokens)) >= cfg.model.vocab_size:
        raise ValueError(
            f"training tokens contain id {int(np.max(train_tokens))} >= vocab_size {cfg.model.vocab_size}"
        )
    on_cuda = device.startswith("cuda")
    gpu_path = on_cuda if gpu_settings is None else bool(gpu_settings)

    torch.manual_seed(cfg.seed)
    model = GPT(cfg.model).to(device)
    optimizer = torch.optim.AdamW(
        _decay_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
        eps=cfg.adam_eps,
        fused=gpu_path,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))

    label = _run_label(cfg, desc)
    total = cfg.total_steps

    def diverged(step: int, reason: str) -> TrainingDiverged:
        return TrainingDiverged(f"{label} diverged at step {step} of {total}: {reason}; "
                                "nothing of this step was checkpointed or recorded (try a lower lr)",
                                step=step, reason=reason)

    start_step, curve, wall_before, resumed = 0, [], 0.0, 0
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        state = load_checkpoint(checkpoint_path, cfg)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_step, curve, wall_before = state["step"], [tuple(c) for c in state["curve"]], state["wall_s"]
        resumed = start_step
        bad = first_nonfinite(_state_tensors(model, optimizer))
        if bad is not None:  # a checksummed file was saved so: never written by this version
            raise CheckpointError(f"checkpoint {checkpoint_path} holds non-finite values in {bad}; "
                                  "delete it to restart the run from scratch")

    step_model = model
    if gpu_path:
        step_model = torch.compile(model) if on_cuda else torch.compile(model, backend="aot_eager")
    if distributed:
        step_model = DistributedDataParallel(step_model, device_ids=[torch.cuda.current_device()] if on_cuda else None)

    order = DataOrder(len(train_tokens), cfg.model.seq_len, cfg.seed)
    eval_steps = set(np.linspace(0, total, cfg.eval_points + 1).round().astype(int)[1:].tolist())
    eval_steps.add(total)
    micro = cfg.micro_batch_size
    amp = torch.autocast("cuda" if on_cuda else "cpu", dtype=torch.bfloat16, enabled=gpu_path)

    def checkpoint(step: int, wall: float) -> None:
        if checkpoint_path is None or rank != 0:
            return
        bad = first_nonfinite(_state_tensors(model, optimizer))
        if bad is not None:
            raise diverged(step, f"{bad} is non-finite before the checkpoint save")
        save_checkpoint(
            checkpoint_path,
            {
                "format": CHECKPOINT_FORMAT,
                "config": cfg.to_dict(),
                "step": step,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "curve": [list(c) for c in curve],
                "wall_s": wall,
            },
        )

    bar = tqdm(
        total=cfg.tokens,
        initial=min(cfg.tokens, start_step * cfg.tokens_per_step),
        unit="tok",
        unit_scale=True,
        desc=desc,
        disable=not progress or rank != 0,
        smoothing=0.1,
        mininterval=2.0 if sys.stderr.isatty() else 60.0,
    )
    t0 = time.perf_counter()
    last_ckpt = t0
    train_loss = float("nan")
    model.train()
    try:
        for step in range(start_step, total):
            x, y, n_global = step_batch(train_tokens, order, cfg, step, rank, world)
            if len(x) == 0:  # this rank has no rows in a partial final batch: a fully masked dummy row
                x = torch.zeros((1, cfg.model.seq_len), dtype=torch.long)
                y = torch.full((1, cfg.model.seq_len), -100, dtype=torch.long)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            chunk = micro or len(x)
            ce_total = 0.0
            for i in range(0, len(x), chunk):
                sync = distributed and i + chunk < len(x)
                ctx = step_model.no_sync() if sync else torch.enable_grad()
                with ctx, amp:
                    logits = step_model(x[i : i + chunk])  # (b, T, V)
                    ce, z = lm_loss(logits, y[i : i + chunk], cfg.z_loss)
                    # DDP averages gradients over ranks, hence the factor `world`
                    loss = (ce + z) * world / n_global
                loss.backward()
                ce_total += float(ce.detach())
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            if distributed:
                ce_sum = torch.tensor(ce_total, dtype=torch.float64)
                dist.all_reduce(ce_sum)
                ce_total = float(ce_sum)
            train_loss = ce_total / n_global
            done = step + 1
            if not math.isfinite(train_loss):
                raise diverged(done, f"training loss is {train_loss}")
            tokens_done = min(cfg.tokens, done * cfg.tokens_per_step)
            bar.update(tokens_done - bar.n)
            if done in eval_steps:
                bad = first_nonfinite(model.named_parameters())
                if bad is not None:
                    raise diverged(done, f"weight {bad} is non-finite")
                loss_en = val_loss(model, val_tokens, cfg.model.seq_len, cfg.eval_seqs)
                if not math.isfinite(loss_en):
                    raise diverged(done, f"validation loss is {loss_en}")
                curve.append((done, tokens_done, loss_en))
                bar.set_postfix(loss_en=f"{loss_en:.3f}", refresh=False)
            now = time.perf_counter()
            if done < total and (
                (cfg.checkpoint_every and done % cfg.checkpoint_every == 0)
                or now - last_ckpt >= cfg.checkpoint_every_s
            ):
                checkpoint(done, wall_before + now - t0)
                last_ckpt = now
            if on_step is not None:
                on_step(done)
    finally:
        bar.close()
    wall = wall_before + time.perf_counter() - t0
    final = curve[-1][2] if curve else val_loss(model, val_tokens, cfg.model.seq_len, cfg.eval_seqs)
    if not (math.isfinite(final) and math.isfinite(train_loss)):
        raise diverged(total, f"final validation loss {final}, training loss {train_loss}")
    return TrainResult(
        config=cfg,
        model=model,
        final_loss=float(final),
        train_loss=float(train_loss),
        curve=[(int(s), int(t), float(v)) for s, t, v in curve],
        tokens_seen=cfg.tokens,
        steps=total,
        wall_s=float(wall),
        device=device if not on_cuda else torch.cuda.get_device_name(),
        resumed_from_step=resumed,
    )
