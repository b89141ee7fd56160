"""Configuration of a model and of a training run, as plain torch-free dataclasses.

:class:`GPTConfig` fixes the shape and numerics of a
:class:`scaling_lib.training.model.GPT`; :class:`TrainConfig` everything that
determines one training run of :func:`scaling_lib.training.train.train` (and the
identity of its checkpoint).  Both live here, apart from the model and the
trainer, so that testbed designs (:mod:`scaling_lib.testbeds`,
:mod:`scaling_lib.isoflop`) can be read, listed and costed without importing
torch.

Examples
--------
>>> cfg = TrainConfig(model=GPTConfig(d_model=32, n_layers=2, n_heads=2), tokens=100_000,
...                   batch_size=32, lr=3e-3, warmup_steps=5)
>>> cfg.total_steps, cfg.model.hidden
(25, 88)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


def swiglu_width(d_model: int, multiple: int = 8) -> int:
    """Parameter-matched SwiGLU hidden width: ``8 d / 3`` rounded up to ``multiple``.

    Examples
    --------
    >>> swiglu_width(64)
    176
    """
    raw = int(8 * d_model / 3)
    return multiple * ((raw + multiple - 1) // multiple)


@dataclass(frozen=True)
class GPTConfig:
    """Shape and numerics of a :class:`GPT`.

    Parameters
    ----------
    d_model, n_layers, n_heads : int
        Width, depth and number of attention heads (``d_model % n_heads == 0``).
    vocab_size : int
        Vocabulary size (input embedding rows and output head columns).
    seq_len : int
        Maximum context length (rotary tables are built for it).
    d_ff : int or None
        SwiGLU hidden width; ``None`` means :func:`swiglu_width` of ``d_model``.
    norm_eps : float
        Epsilon of every layer norm.
    rope_base : float
        Base of the rotary frequencies.
    init_std : float
        Standard deviation of the normal initialisation of every matrix; the
        output projections of each block are scaled down by
        ``1 / sqrt(2 n_layers)`` (GPT-2 style).

    Examples
    --------
    >>> GPTConfig(d_model=64, n_layers=2, n_heads=4).hidden
    176
    """

    d_model: int
    n_layers: int
    n_heads: int
    vocab_size: int = 1024
    seq_len: int = 128
    d_ff: int | None = None
    norm_eps: float = 1e-5
    rope_base: float = 10000.0
    init_std: float = 0.02

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers", "n_heads", "vocab_size", "seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(
                f"GPTConfig: d_model={self.d_model} is not divisible by n_heads={self.n_heads}"
            )
        if (self.d_model // self.n_heads) % 2 != 0:
            raise ValueError(
                f"GPTConfig: head dimension {self.d_model // self.n_heads} must be even for rotary embeddings"
            )
        if self.d_ff is not None and self.d_ff <= 0:
            raise ValueError(f"GPTConfig.d_ff must be positive or None, got {self.d_ff!r}")

    @property
    def head_dim(self) -> int:
        """Channels per attention head."""
        return self.d_model // self.n_heads

    @property
    def hidden(self) -> int:
        """SwiGLU hidden width actually used."""
        return self.d_ff if self.d_ff is not None else swiglu_width(self.d_model)

    def shape(self):
        """The :class:`scaling_lib.counting.TransformerShape` of this model.

        Examples
        --------
        >>> from scaling_lib import counting
        >>> cfg = GPTConfig(d_model=32, n_layers=2, n_heads=2, vocab_size=64, seq_len=16)
        >>> counting.param_counts(cfg.shape())["total"]
        29472
        """
        from scaling_lib import counting

        return counting.TransformerShape(
            d_model=self.d_model,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            vocab_size=self.vocab_size,
            seq_len=self.seq_len,
            d_ff=self.hidden,
            ffn="swiglu",
            tied_embeddings=False,
            learned_positions=False,
            bias=False,
            norm="layernorm_gain",
            qk_norm=True,
        )



@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (and its checkpoint's identity).

    Parameters
    ----------
    model : GPTConfig
        Model shape.
    tokens : int
        Training budget ``D`` in target tokens, used exactly.
    batch_size : int
        Global batch in sequences of ``model.seq_len`` tokens.
    lr : float
        Peak learning rate.
    warmup_steps : int
        Linear warmup length in optimiser steps.
    min_lr_ratio : float
        Floor of the cosine decay as a fraction of ``lr``.
    weight_decay : float
        Decoupled (AdamW) weight decay, applied to matrices only (not to gains).
    beta1, beta2, adam_eps : float
        AdamW moments and epsilon.
    grad_clip : float
        Maximum global gradient norm (0 disables clipping).
    z_loss : float
        Coefficient of the z-loss.
    seed : int
        Seed of the initialisation and of the data order.
    micro_batch_size : int or None
        Sequences per forward pass (gradient accumulation); ``None`` means the
        whole per-rank batch at once.
    eval_points : int
        Number of evenly spaced validation evaluations kept in the curve (the
        final step is always evaluated).
    eval_seqs : int
        Validation sequences per curve evaluation.
    checkpoint_every : int
        Save a checkpoint every this many steps (0: only on time).
    checkpoint_every_s : float
        Also save when this many seconds passed since the last save.

    Examples
    --------
    >>> cfg = TrainConfig(model=GPTConfig(d_model=32, n_layers=2, n_heads=2), tokens=100_000,
    ...                   batch_size=32, lr=3e-3, warmup_steps=5)
    >>> cfg.total_steps
    25
    """

    model: GPTConfig
    tokens: int
    batch_size: int
    lr: float
    warmup_steps: int
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    adam_eps: float = 1e-8
    grad_clip: float = 1.0
    z_loss: float = 1e-4
    seed: int = 0
    micro_batch_size: int | None = None
    eval_points: int = 20
    eval_seqs: int = 16
    checkpoint_every: int = 0
    checkpoint_every_s: float = 300.0

    def __post_init__(self) -> None:
        if not isinstance(self.tokens, int) or self.tokens <= 0:
            raise ValueError(f"TrainConfig.tokens must be a positive int, got {self.tokens!r}")
        if self.batch_size <= 0:
            raise ValueError(f"TrainConfig.batch_size must be positive, got {self.batch_size!r}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be positive, got {self.lr!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"TrainConfig.warmup_steps must be >= 0, got {self.warmup_steps!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"TrainConfig.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        if self.micro_batch_size is not None and self.micro_batch_size <= 0:
            raise ValueError(f"TrainConfig.micro_batch_size must be positive, got {self.micro_batch_size!r}")

    @property
    def tokens_per_step(self) -> int:
        """Target tokens in one full global batch."""
        return self.batch_size * self.model.seq_len

    @property
    def total_steps(self) -> int:
        """Optimiser steps: ``ceil(tokens / tokens_per_step)``."""
        return -(-self.tokens // self.tokens_per_step)

    def to_dict(self) -> dict:
        """JSON-able nested dict of all fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["model"] = GPTConfig(**d["model"])
        return cls(**d)
