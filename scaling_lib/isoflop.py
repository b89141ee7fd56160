"""An IsoFLOP sweep for two CPU cores, as data: budgets, shapes, warmup and learning-rate variants.

The design (:func:`cpu_isoflop_design`) trains, for each of four compute
budgets spaced by a factor of 3, six model shapes around the expected
optimum, each on exactly ``D = C / (6 N)`` tokens (under the design's FLOP
convention, ``6ND`` with ``N`` the total parameter count by default), so
that the runs of one budget share one compute (Hoffmann et al. 2022,
approach 2; analysed with :func:`scaling_lib.compute_optimal.isoflop_optima`).
Two variant families serve Porian et al.'s (2024) analyses:

* warmup: at the two smallest budgets every shape is trained a second time
  with a long fixed warmup (the same number of steps for every run, as a
  practitioner tuning for the largest model would set it) instead of the
  main grid's warmup scaled to the run's own length (10% of its steps);
* learning rate: every other shape of the ladder is trained at 0.5x and 2x
  its rule's learning rate at the budget closest to its expected optimum,
  for the optimal learning rate against ``N`` (:func:`scaling_lib.compute_optimal.optimal_lr`).

:func:`estimate_cost` predicts the wall time from measured single-thread
throughputs; :class:`IsoFLOPTestbed` turns the design into a
:class:`scaling_lib.testbeds.Testbed` that :func:`scaling_lib.training.sweep.run_sweep`
trains as it is, with per-run learning rates and warmups.

Command line (prints the plan and its estimated cost; the sweep trains it with
``python -m scaling_lib.training.sweep --testbed cpu-isoflop --workers 2 --no-evals``)::

    python -m scaling_lib.isoflop [--workers 2] [--load-factor 0.5]

Examples
--------
>>> from scaling_lib import isoflop
>>> design = isoflop.cpu_isoflop_design()
>>> t = design.table()
>>> sorted(t["purpose"].unique())
['isoflop', 'lr_sweep', 'warmup']
>>> bool((abs(6 * t["N"] * t["D"] / t["budget"] - 1) < 1e-4).all())
True
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scaling_lib import counting
from scaling_lib import testbeds as _testbeds
from scaling_lib.testbeds import RunSpec, Shape
from scaling_lib.configs import TrainConfig

WARMUP_KINDS = ("run_fraction", "fixed")
"""Warmup rules: a fraction of the run's own steps, or a fixed number of steps."""

SINGLE_THREAD_THROUGHPUT = ((91e3, 58e3), (182e3, 30e3), (333e3, 19e3), (641e3, 12.7e3), (1.45e6, 6.2e3))
"""``(N, training tokens per second)`` of one worker with one torch thread on the development
machine with little other load (batch 32 x 128, float32), from the cpu-tiny data card
(``data/testbeds/cpu-tiny/README.md``). In the cpu-tiny sweep each of two workers sharing the
machine with other jobs reached between about a quarter and four fifths of this (12k-47k tokens/s
at 63k-91k parameters), the ``load_factor`` of :func:`estimate_cost`."""


@dataclass(frozen=True)
class WarmupRule:
    """Warmup length of a run.

    Parameters
    ----------
    kind : {"run_fraction", "fixed"}
        ``"run_fraction"``: ``ceil(value * steps)`` of the run's own steps;
        ``"fixed"``: ``value`` steps for every run, at most the run's steps
        (a run shorter than the warmup never reaches its peak rate).
    value : float

    Examples
    --------
    >>> WarmupRule("run_fraction", 0.1).steps(250), WarmupRule("fixed", 200).steps(150)
    (25, 150)
    """

    kind: str
    value: float

    def __post_init__(self) -> None:
        if self.kind not in WARMUP_KINDS:
            raise ValueError(f"WarmupRule kind must be one of {WARMUP_KINDS}, got {self.kind!r}")
        if not self.value > 0 or (self.kind == "run_fraction" and self.value > 1):
            raise ValueError(f"WarmupRule value {self.value!r} is out of range for kind {self.kind!r}")

    def steps(self, run_steps: int) -> int:
        """Warmup steps of a run of ``run_steps`` optimiser steps."""
        if self.kind == "run_fraction":
            return max(1, math.ceil(self.value * run_steps))
        return int(min(self.value, run_steps))


@dataclass(frozen=True)
class IsoFLOPRunSpec(RunSpec):
    """One run of an IsoFLOP design: a shape trained to a compute budget.

    ``multiplier`` holds ``D / N`` of the run (informative; the token count
    comes from ``budget``). ``warmup`` names a rule of the design;
    ``lr_scale`` multiplies the design's learning-rate rule; ``purpose`` is
    ``"isoflop"`` (main grid), ``"warmup"`` or ``"lr_sweep"``.

    Examples
    --------
    >>> IsoFLOPRunSpec("i3", 20.0, budget=1.5e12, lr_scale=0.5).run_id
    'i3_C1.5e12_lr0.5'
    """

    budget: float = 0.0
    lr_scale: float = 1.0
    warmup: str = "scaled"
    purpose: str = "isoflop"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.budget > 0:
            raise ValueError(f"IsoFLOPRunSpec budget must be positive, got {self.budget!r}")
        if not self.lr_scale > 0:
            raise ValueError(f"IsoFLOPRunSpec lr_scale must be positive, got {self.lr_scale!r}")

    @property
    def run_id(self) -> str:
        """``<shape>_C<budget>`` plus ``_lr<scale>``, ``_w<warmup>``, ``_s<seed>`` where not the default."""
        mant, exp = f"{self.budget:.3g}".split("e") if "e" in f"{self.budget:.3g}" else (f"{self.budget:.3g}", "0")
        text = f"{self.shape}_C{mant}e{int(exp)}"
        if self.lr_scale != 1.0:
            text += f"_lr{self.lr_scale:g}"
        if self.warmup != "scaled":
            text += f"_w{self.warmup}"
        if self.seed:
            text += f"_s{self.seed}"
        return text


@dataclass(frozen=True)
class IsoFLOPTestbed(_testbeds.Testbed):
    """A :class:`scaling_lib.testbeds.Testbed` whose runs are :class:`IsoFLOPRunSpec`.

    Token budgets come from each run's compute budget under ``convention``;
    each run has its own learning-rate scale and warmup rule (``warmup_rules``:
    ``(name, WarmupRule)`` pairs). The sweep trains it like any testbed.
    """

    convention: str = "6ND"
    warmup_rules: tuple = (("scaled", WarmupRule("run_fraction", 0.1)),)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.convention not in counting.FLOP_CONVENTIONS:
            raise ValueError(f"unknown FLOP convention {self.convention!r}; choose one of {counting.FLOP_CONVENTIONS}")
        rules = dict(self.warmup_rules)
        for run in self.runs:
            if not isinstance(run, IsoFLOPRunSpec):
                raise TypeError(f"testbed {self.name!r}: run {run.run_id!r} is not an IsoFLOPRunSpec")
            if run.warmup not in rules:
                raise ValueError(f"testbed {self.name!r}: run {run.run_id!r} names unknown warmup rule "
                                 f"{run.warmup!r}; known: {sorted(rules)}")

    def flops_per_token(self, shape: str | Shape) -> float:
        """Training FLOPs per token of a shape under the design's convention."""
        return float(counting.training_flops(self.gpt_config(shape).shape(), 1.0, self.convention))

    def tokens(self, run: RunSpec) -> int:
        """``D = round(C / flops per token)``: the run's budget under the convention."""
        return int(round(run.budget / self.flops_per_token(run.shape)))

    def base_lr_of(self, shape: str | Shape) -> float:
        """The testbed's learning-rate rule for a shape (before ``lr_scale``)."""
        d = self.gpt_config(shape).d_model
        return self.base_lr * (self.base_width / d) ** self.lr_width_exponent

    def train_config(self, run: RunSpec) -> TrainConfig:
        """The run's :class:`TrainConfig`: its tokens, scaled learning rate and warmup rule."""
        model = self.gpt_config(run.shape)
        tokens = self.tokens(run)
        steps = -(-tokens // (self.batch_size * self.seq_len))
        return TrainConfig(
            model=model, tokens=tokens, batch_size=self.batch_size,
            lr=self.base_lr_of(run.shape) * run.lr_scale,
            warmup_steps=dict(self.warmup_rules)[run.warmup].steps(steps),
            min_lr_ratio=self.min_lr_ratio, weight_decay=self.weight_decay, seed=run.seed,
            eval_points=self.eval_points, eval_seqs=self.eval_seqs,
        )

    def table(self) -> pd.DataFrame:
        """:meth:`scaling_lib.testbeds.Testbed.table` with the IsoFLOP design's columns: ``budget``,
        ``purpose``, ``warmup_rule``, ``lr_scale``, ``N_eff`` (FLOPs per token / 6); ``M`` is the
        realised multiplier ``D / N`` (the token budget is rounded to whole tokens)."""
        t = super().table()
        t["M"] = t["D"] / t["N"]
        t["budget"] = [run.budget for run in self.runs]
        t["purpose"] = [run.purpose for run in self.runs]
        t["warmup_rule"] = [run.warmup for run in self.runs]
        t["lr_scale"] = [run.lr_scale for run in self.runs]
        t["N_eff"] = [self.flops_per_token(run.shape) / 6.0 for run in self.runs]
        return t


def throughput(N, table=SINGLE_THREAD_THROUGHPUT) -> np.ndarray:
    """Training tokens per second at ``N`` parameters, interpolated in log-log.

    Outside the measured range the nearest measurement is used (no extrapolation:
    small models are limited by per-step overheads that a power law would miss).

    Examples
    --------
    >>> round(float(throughput(91e3)[0])), round(float(throughput(1e4)[0]))
    (58000, 58000)
    """
    tn, tt = (np.array(v, dtype=float) for v in zip(*sorted(table)))
    return np.exp(np.interp(np.log(np.atleast_1d(np.asarray(N, dtype=float))), np.log(tn), np.log(tt)))


@dataclass(frozen=True)
class CostEstimate:
    """Predicted cost of a design (:func:`estimate_cost`).

    Attributes
    ----------
    per_run : pandas.DataFrame
        The design table (:meth:`IsoFLOPTestbed.table`) with the predicted
        seconds of each run in ``est_s``.
    worker_s : float
        Sum of ``est_s``: worker-seconds of the whole design.
    by_purpose : dict
        Worker-seconds per purpose (``isoflop``, ``warmup``, ``lr_sweep``).
    wall_h : float
        Hours on ``workers`` workers, longest run first onto the least loaded one.
    workers : int
    """

    per_run: pd.DataFrame
    worker_s: float
    by_purpose: dict
    wall_h: float
    workers: int

    def __str__(self) -> str:
        parts = ", ".join(f"{k} {v:.0f}" for k, v in self.by_purpose.items())
        return (f"{len(self.per_run)} runs; {self.worker_s:.0f} worker-seconds ({parts}); "
                f"about {self.wall_h:.2f} h on {self.workers} workers")


def estimate_cost(testbed: IsoFLOPTestbed, table=SINGLE_THREAD_THROUGHPUT, load_factor: float = 0.5,
                  overhead_s: float = 15.0, workers: int = 2) -> CostEstimate:
    """Predicted wall time of a design from measured throughput.

    Parameters
    ----------
    testbed : IsoFLOPTestbed
    table : sequence of (N, tokens/s)
        Measured single-worker throughput (default :data:`SINGLE_THREAD_THROUGHPUT`).
    load_factor : float
        Fraction of that throughput each worker reaches in the sweep.
    overhead_s : float
        Per-run start-up and final evaluation time.
    workers : int

    Returns
    -------
    CostEstimate
    """
    if not 0 < load_factor <= 1:
        raise ValueError(f"load_factor must be in (0, 1], got {load_factor}")
    t = testbed.table()
    t["est_s"] = t["D"] / (throughput(t["N"], table) * load_factor) + overhead_s
    finish = np.zeros(max(1, int(workers)))
    for s in sorted(t["est_s"], reverse=True):  # longest first onto the least loaded worker
        finish[np.argmin(finish)] += s
    return CostEstimate(per_run=t, worker_s=float(t["est_s"].sum()),
                        by_purpose=t.groupby("purpose")["est_s"].sum().to_dict(),
                        wall_h=float(finish.max() / 3600), workers=len(finish))


CPU_LADDER = (
    Shape("i0", 16, 2, 1),    # 40k parameters
    Shape("i1", 24, 2, 2),    # 63k
    Shape("i2", 32, 2, 2),    # 91k
    Shape("i3", 40, 2, 2),    # 122k
    Shape("i4", 48, 3, 3),    # 182k
    Shape("i5", 56, 3, 4),    # 230k
    Shape("i6", 64, 3, 4),    # 282k
    Shape("i7", 80, 4, 5),    # 475k
    Shape("i8", 96, 4, 6),    # 641k
    Shape("i9", 112, 4, 7),   # 841k
)
"""Model shapes of the CPU IsoFLOP design (vocabulary 1024, context 128, as cpu-tiny)."""


def _window(ns: np.ndarray, n_star: float, k: int) -> np.ndarray:
    """Indices of ``k`` consecutive ladder entries whose geometric centre is nearest ``n_star``."""
    starts = range(0, len(ns) - k + 1)
    best = min(starts, key=lambda i: abs(np.mean(np.log(ns[i:i + k])) - math.log(n_star)))
    return np.arange(best, best + k)


def cpu_isoflop_design(
    budgets=(5e11, 1.5e12, 4.5e12, 1.35e13),
    shapes=CPU_LADDER,
    sizes_per_budget: int = 6,
    expected_m: float = 20.0,
    warmup_budgets: int = 2,
    long_warmup_steps: int = 200,
    lr_scales=(0.5, 2.0),
    lr_every: int = 2,
    name: str = "cpu-isoflop",
    hparams_from: _testbeds.Testbed | None = None,
) -> IsoFLOPTestbed:
    """The IsoFLOP sweep for two CPU workers.

    Parameters
    ----------
    budgets : sequence of float
        Compute budgets (FLOPs under ``6ND``).
    shapes : sequence of Shape
        Size ladder, smallest first.
    sizes_per_budget : int
        Consecutive ladder shapes per budget, centred (geometrically) on the
        expected optimum ``N* = sqrt(C / (6 expected_m))``.
    expected_m : float
        Token multiplier assumed optimal when centring the windows (20, as
        Hoffmann et al. 2022); the analysis does not assume it.
    warmup_budgets : int
        The smallest budgets whose runs are repeated with the long fixed warmup.
    long_warmup_steps : int
        Steps of the long fixed warmup.
    lr_scales : sequence of float
        Extra learning-rate multipliers, each swept shape trained at the
        budget whose expected optimum is nearest its size.
    lr_every : int
        Sweep the learning rate of every ``lr_every``-th ladder shape
        (smallest first) that appears in the grid.
    name : str
    hparams_from : scaling_lib.testbeds.Testbed or None
        The testbed whose vocabulary, context, batch, learning-rate rule,
        schedule floor and weight decay the design copies, so that the two
        sweeps differ only in their grids and warmups; ``None`` means
        :func:`scaling_lib.testbeds.cpu_tiny`.

    Returns
    -------
    IsoFLOPTestbed
        Main-grid warmup 10% of each run's steps.
    """
    if hparams_from is None:
        hparams_from = _testbeds.cpu_tiny()
    if not isinstance(hparams_from, _testbeds.Testbed):
        raise TypeError(f"cpu_isoflop_design: hparams_from must be a Testbed or None, got {hparams_from!r} "
                        "(look a design up by name with scaling_lib.designs.get_testbed)")
    ref = hparams_from
    shared = {k: getattr(ref, k) for k in ("vocab_size", "seq_len", "batch_size", "base_lr", "base_width",
                                            "lr_width_exponent", "min_lr_ratio", "weight_decay",
                                            "train_split", "val_split", "eval_points", "eval_seqs")}
    budgets = tuple(sorted(float(b) for b in budgets))
    proto = IsoFLOPTestbed(name=name, description="", shapes=tuple(shapes), runs=(), **shared)
    ns = np.array([proto.n_params(s) for s in shapes], dtype=float)
    if np.any(np.diff(ns) <= 0):
        raise ValueError("cpu_isoflop_design: shapes must be ordered by increasing parameter count")
    if not 3 <= sizes_per_budget <= len(shapes):
        raise ValueError(f"sizes_per_budget must be between 3 and {len(shapes)}, got {sizes_per_budget}")
    runs, home = [], {}
    for C in budgets:
        n_star = math.sqrt(C / (6.0 * expected_m))
        for i in _window(ns, n_star, sizes_per_budget):
            s = shapes[i].name
            runs.append(IsoFLOPRunSpec(s, C / (6.0 * ns[i] ** 2), budget=C))
            gap = abs(math.log(ns[i] / n_star))
            if s not in home or gap < home[s][1]:
                home[s] = (C, gap)
    for C in budgets[:warmup_budgets]:
        for run in [r for r in runs if r.budget == C and r.purpose == "isoflop"]:
            runs.append(IsoFLOPRunSpec(run.shape, run.multiplier, budget=C, warmup="long", purpose="warmup"))
    names = [sh.name for sh in shapes]
    swept = [s for s in names if s in home][::max(1, int(lr_every))]
    for s in swept:
        C = home[s][0]
        i = names.index(s)
        for scale in lr_scales:
            runs.append(IsoFLOPRunSpec(s, C / (6.0 * ns[i] ** 2), budget=C, lr_scale=float(scale), purpose="lr_sweep"))
    return IsoFLOPTestbed(
        name=name,
        description=(
            f"IsoFLOP sweep: {len(budgets)} budgets ({', '.join(f'{b:.3g}' for b in budgets)} FLOPs, 6ND), "
            f"{sizes_per_budget} shapes each around N* = sqrt(C / {6 * expected_m:g}); long fixed warmup "
            f"({long_warmup_steps} steps) repeats at the {warmup_budgets} smallest budgets; learning rates "
            f"x{', x'.join(f'{s:g}' for s in lr_scales)} for shapes {', '.join(swept)} at their nearest budgets; "
            f"other hyperparameters as {ref.name}."
        ),
        shapes=tuple(shapes),
        runs=tuple(runs),
        warmup_rules=(("scaled", WarmupRule("run_fraction", 0.1)), ("long", WarmupRule("fixed", long_warmup_steps))),
        **shared,
    )


def design_frame(testbed: IsoFLOPTestbed) -> pd.DataFrame:
    """The design columns to join onto a sweep's run table by ``run_id``:
    ``budget``, ``purpose``, ``warmup_rule``, ``lr_scale``."""
    return testbed.table()[["run_id", "budget", "purpose", "warmup_rule", "lr_scale"]]


def main(argv=None) -> int:
    """Print the design and its estimated cost (the sweep of :mod:`scaling_lib.training.sweep` trains it)."""
    parser = argparse.ArgumentParser(prog="python -m scaling_lib.isoflop", description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--load-factor", type=float, default=0.5)
    args = parser.parse_args(argv)
    tb = cpu_isoflop_design()
    cost = estimate_cost(tb, load_factor=args.load_factor, workers=args.workers)
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(cost.per_run.round(4).to_string(index=False))
    print(cost)
    print(f"train it with: python -m scaling_lib.training.sweep --testbed {tb.name} --workers {args.workers} --no-evals")
    return 0


if __name__ == "__main__":
    sys.exit(main())
