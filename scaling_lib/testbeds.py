"""Named testbeds: grids of (model shape, token multiplier) runs, as data.

A :class:`Testbed` lists model shapes, the runs to train (shape, multiplier
``M = D / N``, seed, role) and the per-size hyperparameter rule.  The sweep
(:mod:`scaling_lib.training.sweep`) trains every run of a testbed; the fitting chapters
select runs from the resulting run table with queries, the ``role`` column
only records the design intent:

* ``fit``: the runs the paper's protocol fits on (Gadre et al. 2024, Sec. 4):
  the four smallest shapes at ``M = 20`` and the smallest shape at ``M = 320``;
* ``target``: held-out runs with at least ten times the compute of the most
  expensive ``fit`` run (larger and/or more over-trained), to be predicted;
* ``grid``: the rest of the ``(N, M)`` grid (other multipliers, repeat seeds);
  the paper's error-law fit adds the next larger shape at ``M = 20`` to the
  ``fit`` runs, which is a ``grid`` run here.

Hyperparameter rule (the same for every run of a testbed)
---------------------------------------------------------
* learning rate ``lr = base_lr * (base_width / d_model) ** lr_width_exponent``:
  the peak learning rate shrinks with width; it does not depend on ``M`` (the
  paper keeps a shape's hyperparameters fixed across multipliers).  For
  ``cpu-tiny`` the exponent 0.5 comes from a learning-rate probe at
  ``M = 20`` on the widths 24 and 48 (best single-seed losses at 0.048 and
  >= 0.032), and ``base_lr`` is half of what that probe preferred, because
  repeat seeds at the higher rate sometimes stayed on the unigram plateau
  for a large part of the run (see the testbed's data card);
* batch ``batch_size`` sequences of ``seq_len`` tokens, fixed per testbed;
* warmup ``ceil(warmup_frac * steps of the shape's M = 20 run)`` steps, at
  most half the run's steps, so it scales with ``N`` but not with ``M``;
* cosine decay to ``min_lr_ratio * lr`` at the end of each run (every run has
  its own full schedule, as in the paper).

Examples
--------
>>> from scaling_lib import testbeds
>>> tb = testbeds.cpu_tiny()
>>> len(tb.runs), tb.runs[0].run_id
(31, 's1_M5_s0')

Every named design, the IsoFLOP sweep of :mod:`scaling_lib.isoflop` included, is
looked up by name with :func:`scaling_lib.designs.get_testbed`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from scaling_lib.configs import GPTConfig, TrainConfig
from scaling_lib.protocols import DESIGN_ROLES


@dataclass(frozen=True)
class Shape:
    """A named model shape (width, depth, heads).

    Examples
    --------
    >>> Shape("s1", 32, 2, 2).d_model
    32
    """

    name: str
    d_model: int
    n_layers: int
    n_heads: int


@dataclass(frozen=True)
class RunSpec:
    """One run of a testbed: a shape trained on ``multiplier * N`` tokens.

    Examples
    --------
    >>> RunSpec("s1", 20, role="fit").run_id
    's1_M20_s0'
    """

    shape: str
    multiplier: float
    seed: int = 0
    role: str = "grid"

    def __post_init__(self) -> None:
        if self.role not in DESIGN_ROLES:
            raise ValueError(f"RunSpec role must be one of {DESIGN_ROLES}, got {self.role!r}")
        if not self.multiplier > 0:
            raise ValueError(f"RunSpec multiplier must be positive, got {self.multiplier!r}")

    @property
    def run_id(self) -> str:
        """``<shape>_M<multiplier>_s<seed>``, unique within a testbed."""
        return f"{self.shape}_M{self.multiplier:g}_s{self.seed}"


@dataclass(frozen=True)
class Testbed:
    """A named grid of runs plus the rule that sets each run's hyperparameters.

    Parameters
    ----------
    name, description : str
    shapes : tuple of Shape
    runs : tuple of RunSpec
    vocab_size, seq_len : int
    batch_size : int
        Sequences per optimiser step.
    base_lr, base_width, lr_width_exponent : float
        ``lr = base_lr * (base_width / d_model) ** lr_width_exponent``.
    warmup_frac : float
        Warmup as a fraction of the shape's ``M = 20`` step count.
    min_lr_ratio, weight_decay : float
    train_split, val_split : str
        Corpus splits (see :mod:`scaling_lib.training.corpora`).
    eval_points, eval_seqs : int
        Validation curve resolution and slice size during training.
    checkpoint_every_s : float
        Seconds between training checkpoints.
    """

    name: str
    description: str
    shapes: tuple
    runs: tuple
    vocab_size: int = 1024
    seq_len: int = 128
    batch_size: int = 32
    base_lr: float = 0.015
    base_width: float = 64.0
    lr_width_exponent: float = 0.5
    warmup_frac: float = 0.1
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    train_split: str = "train_en"
    val_split: str = "val_en"
    eval_points: int = 20
    eval_seqs: int = 32
    checkpoint_every_s: float = 300.0
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        names = [s.name for s in self.shapes]
        if len(set(names)) != len(names):
            raise ValueError(f"testbed {self.name!r}: duplicate shape names in {names}")
        ids = [r.run_id for r in self.runs]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"testbed {self.name!r}: duplicate runs {dup}")
        unknown = sorted({r.shape for r in self.runs} - set(names))
        if unknown:
            raise ValueError(f"testbed {self.name!r}: runs use unknown shapes {unknown}")

    @property
    def loss_column(self) -> str:
        """The run-table column (and curve key) of the validation loss: ``loss_<set>`` for
        ``val_split = "val_<set>"``.

        Examples
        --------
        >>> cpu_tiny().loss_column
        'loss_en'
        """
        return f"loss_{self.val_split.removeprefix('val_')}"

    def shape(self, name: str) -> Shape:
        """The shape called ``name``."""
        for s in self.shapes:
            if s.name == name:
                return s
        raise KeyError(f"testbed {self.name!r} has no shape {name!r}")

    def gpt_config(self, shape: str | Shape) -> GPTConfig:
        """Model config of a shape in this testbed."""
        s = self.shape(shape) if isinstance(shape, str) else shape
        return GPTConfig(
            d_model=s.d_model, n_layers=s.n_layers, n_heads=s.n_heads,
            vocab_size=self.vocab_size, seq_len=self.seq_len,
        )

    def n_params(self, shape: str | Shape) -> int:
        """Total parameters ``N`` of a shape (embedding and head included)."""
        from scaling_lib import counting

        return int(counting.param_counts(self.gpt_config(shape).shape())["total"])

    def tokens(self, run: RunSpec) -> int:
        """Token budget ``D = round(M N)`` of a run."""
        return int(round(run.multiplier * self.n_params(run.shape)))

    def train_config(self, run: RunSpec) -> TrainConfig:
        """The full :class:`TrainConfig` of a run under this testbed's rule.

        Examples
        --------
        >>> tb = cpu_tiny()
        >>> cfg = tb.train_config(tb.runs[0])
        >>> cfg.tokens == tb.tokens(tb.runs[0])
        True
        """
        model = self.gpt_config(run.shape)
        tokens = self.tokens(run)
        tokens_per_step = self.batch_size * self.seq_len
        steps = -(-tokens // tokens_per_step)
        steps20 = -(-int(round(20 * self.n_params(run.shape))) // tokens_per_step)
        warmup = min(math.ceil(self.warmup_frac * steps20), max(1, steps // 2))
        return TrainConfig(
            model=model,
            tokens=tokens,
            batch_size=self.batch_size,
            lr=self.base_lr * (self.base_width / model.d_model) ** self.lr_width_exponent,
            warmup_steps=warmup,
            min_lr_ratio=self.min_lr_ratio,
            weight_decay=self.weight_decay,
            seed=run.seed,
            eval_points=self.eval_points,
            eval_seqs=self.eval_seqs,
            checkpoint_every_s=self.checkpoint_every_s,
        )

    def flops(self, run: RunSpec) -> float:
        """Training compute ``6 N D`` of a run."""
        return 6.0 * self.n_params(run.shape) * self.tokens(run)

    def table(self):
        """The design as a run table without results: the library's one design-table builder.

        Returns
        -------
        pandas.DataFrame
            One row per planned run: ``run_id``, ``model`` (the shape's name), ``N``, ``D``,
            ``M`` (the design's multiplier), ``flops`` (``6 N D``), ``seed``, the design
            ``role`` (:data:`scaling_lib.protocols.DESIGN_ROLES`), and the run's schedule:
            ``steps``, ``warmup_steps``, ``warmup_frac``, ``lr``.

        Examples
        --------
        >>> design = cpu_tiny().table()
        >>> sorted(design.loc[design["role"] == "target", "run_id"])
        ['s5_M40_s0', 's6_M20_s0']
        """
        import pandas as pd

        rows = []
        for r in self.runs:
            cfg = self.train_config(r)
            rows.append({"run_id": r.run_id, "model": r.shape, "N": float(self.n_params(r.shape)),
                         "D": float(self.tokens(r)), "M": float(r.multiplier), "flops": self.flops(r),
                         "seed": r.seed, "role": r.role, "steps": cfg.total_steps,
                         "warmup_steps": cfg.warmup_steps, "warmup_frac": cfg.warmup_steps / cfg.total_steps,
                         "lr": cfg.lr})
        return pd.DataFrame(rows)


def _grid(shape: str, multipliers, role: str = "grid", seed: int = 0) -> list[RunSpec]:
    return [RunSpec(shape, m, seed=seed, role=role) for m in multipliers]


def cpu_tiny() -> Testbed:
    """The cpu-tiny design: six shapes from 63k to 1.05M parameters, 31 runs (see its data card)."""
    shapes = (
        Shape("s1", 24, 2, 2),   # 63k parameters
        Shape("s2", 32, 2, 2),   # 91k
        Shape("s3", 48, 3, 3),   # 182k
        Shape("s4", 64, 3, 4),   # 282k
        Shape("s5", 96, 4, 6),   # 641k
        Shape("s6", 128, 4, 8),  # 1.05M
    )
    runs = (
        _grid("s1", (5, 10, 40, 80, 160))
        + [RunSpec("s1", 20, role="fit"), RunSpec("s1", 320, role="fit")]
        + [RunSpec("s1", 20, seed=1), RunSpec("s1", 20, seed=2)]
        + [RunSpec("s2", 20, seed=1), RunSpec("s2", 20, seed=2)]
        + [RunSpec(s, 20, role="fit") for s in ("s2", "s3", "s4")]
        + _grid("s2", (5, 10, 40, 80, 160))
        + _grid("s3", (5, 10, 40, 80))
        + _grid("s4", (5, 10, 40))
        + _grid("s5", (5, 10, 20))
        + [RunSpec("s5", 40, role="target"), RunSpec("s6", 20, role="target")]
    )
    return Testbed(
        name="cpu-tiny",
        description=(
            "Six shapes from 63k to 1.05M parameters (vocab 1024, context 128) for two CPU "
            "cores with one thread per worker; multipliers 5 to 320; fit runs: s1-s4 at M=20 "
            "and s1 at M=320; targets s5 at M=40 and s6 at M=20 (>= 10x the compute of the "
            "most expensive fit run).  About 2.5-3 hours on 2 one-thread workers of a shared "
            "2-core machine."
        ),
        shapes=shapes,
        runs=tuple(runs),
        batch_size=32,
        base_lr=0.015,
        base_width=64.0,
        lr_width_exponent=0.5,
    )


def gpu_small() -> Testbed:
    """The gpu-small design: six shapes from 1.05M to 33M parameters for one GPU."""
    shapes = (
        Shape("g1", 128, 4, 8),    # 1.05M parameters
        Shape("g2", 160, 5, 10),   # 1.9M
        Shape("g3", 192, 6, 12),   # 3.1M
        Shape("g4", 256, 6, 16),   # 5.3M
        Shape("g5", 384, 8, 24),   # 14.9M
        Shape("g6", 512, 10, 32),  # 33M
    )
    runs = (
        [RunSpec(s, 20, role="fit") for s in ("g1", "g2", "g3", "g4")]
        + [RunSpec("g1", 320, role="fit")]
        + _grid("g1", (5, 10, 40, 80))
        + _grid("g2", (5, 10, 40))
        + _grid("g3", (10, 40))
        + _grid("g4", (10, 40))
        + _grid("g5", (20,))
        + [RunSpec("g5", 40, role="target"), RunSpec("g6", 10, role="target")]
    )
    return Testbed(
        name="gpu-small",
        description=(
            "Six shapes from 1.05M to 33M parameters (vocab 1024, context 256) for one H100 "
            "(bf16 autocast, torch.compile): about 2.4B training tokens in all, roughly 20 "
            "minutes at ~2M tokens/s.  Our training corpus is far smaller than these budgets, "
            "so most runs repeat data (see the epochs column)."
        ),
        shapes=shapes,
        runs=tuple(runs),
        seq_len=256,
        batch_size=128,
        base_lr=0.015,
        base_width=64.0,
        lr_width_exponent=0.5,
        eval_points=20,
        eval_seqs=64,
    )
