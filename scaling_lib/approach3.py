"""Chinchilla approach 3: a parametric law fitted to all runs, and its analytic compute optimum.

Fit :data:`scaling_lib.laws.CHINCHILLA` (``E + A N^-alpha + B D^-beta``) to all
runs with the Huber loss of log residuals (:func:`approach3`); minimising it at
fixed ``6 N D = C`` (:func:`chinchilla_optimum`) gives
``N* = G (C/6)^(beta/(alpha+beta))`` and ``D* = G^-1 (C/6)^(alpha/(alpha+beta))``
with ``G = (alpha A / (beta B))^(1/(alpha+beta))`` (Hoffmann et al. 2022, Sec. 3.3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scaling_lib import fit as _fit
from scaling_lib import laws as _laws
from scaling_lib.optimum_fits import ComputeOptimalError


@dataclass(frozen=True)
class ChinchillaOptimum:
    """The loss-optimal ``N*`` and ``D*`` of a Chinchilla law at given budgets.

    Attributes
    ----------
    C, N, D, loss : numpy.ndarray
        Budgets (``6 N D``), optimal parameters and tokens, and the law's loss there.
    a, b : float
        Exponents of ``N* ~ C^a`` (``beta / (alpha + beta)``) and ``D* ~ C^b``
        (``alpha / (alpha + beta)``).
    G : float
        ``(alpha A / (beta B))^(1/(alpha+beta))``.

    Examples
    --------
    >>> opt = chinchilla_optimum({"E": 1.7, "A": 406.4, "alpha": 0.34, "B": 410.7, "beta": 0.28}, [1e21])
    >>> print(opt)
    N* ~ C^0.452, D* ~ C^0.548 at 1 budget(s)
    >>> list(opt.to_frame().columns)
    ['C', 'N', 'D', 'loss']
    """

    C: np.ndarray
    N: np.ndarray
    D: np.ndarray
    loss: np.ndarray
    a: float
    b: float
    G: float

    def __str__(self) -> str:
        return f"N* ~ C^{self.a:.3f}, D* ~ C^{self.b:.3f} at {len(self.C)} budget(s)"

    def to_frame(self) -> pd.DataFrame:
        """One row per budget: ``C``, ``N``, ``D``, ``loss``."""
        return pd.DataFrame({"C": self.C, "N": self.N, "D": self.D, "loss": self.loss})


def chinchilla_optimum(params, C) -> ChinchillaOptimum:
    """Analytic minimiser of ``E + A N^-alpha + B D^-beta`` subject to ``6 N D = C``.

    ``N* = G (C/6)^(beta/(alpha+beta))``, ``D* = (C/6) / N*`` with
    ``G = (alpha A / (beta B))^(1/(alpha+beta))`` (Hoffmann et al. 2022, eq. 4).

    Parameters
    ----------
    params : mapping or sequence
        :data:`scaling_lib.laws.CHINCHILLA` parameters.
    C : float or array_like
        Compute budgets (FLOPs, ``6 N D``).

    Returns
    -------
    ChinchillaOptimum

    Raises
    ------
    ComputeOptimalError
        Non-positive ``A``, ``B``, ``alpha`` or ``beta``, or non-positive budgets.

    Examples
    --------
    >>> opt = chinchilla_optimum({"E": 1.7, "A": 406.4, "alpha": 0.34, "B": 410.7, "beta": 0.28}, 5.76e23)
    >>> round(opt.a, 3), round(float(opt.N[0]) / 1e9, 1)
    (0.452, 32.2)
    """
    p = _laws.CHINCHILLA.param_dict(params)
    if min(p["A"], p["B"], p["alpha"], p["beta"]) <= 0:
        raise ComputeOptimalError(f"chinchilla_optimum needs positive A, B, alpha, beta; got {p}")
    C = np.atleast_1d(np.asarray(C, dtype=float))
    if np.any(~np.isfinite(C) | (C <= 0)):
        raise ComputeOptimalError("chinchilla_optimum: compute budgets must be positive")
    s = p["alpha"] + p["beta"]
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1.0 / s)
    N = G * (C / 6.0) ** (p["beta"] / s)
    D = (C / 6.0) / N
    return ChinchillaOptimum(C=C, N=N, D=D, loss=_laws.CHINCHILLA(p, N=N, D=D), a=p["beta"] / s,
                             b=p["alpha"] / s, G=G)


@dataclass(frozen=True)
class Approach3:
    """A Chinchilla law fitted to all runs and its compute-optimal frontier.

    Attributes
    ----------
    fit : scaling_lib.fit.FitResult
    exponents : pandas.DataFrame
        Index ``a``, ``b``; columns ``estimate``, ``lo``, ``hi`` (bootstrap).
    frontier : pandas.DataFrame
        Per budget ``C``: ``N_opt``, ``N_lo``, ``N_hi``, ``D_opt``, ``D_lo``, ``D_hi``, ``loss_opt``.

    Examples
    --------
    See :func:`approach3`.
    """

    fit: _fit.FitResult
    exponents: pd.DataFrame
    frontier: pd.DataFrame

    def __str__(self) -> str:
        e = self.exponents
        return (f"approach 3 on {self.fit.target!r}: a = {e.loc['a', 'estimate']:.3f} "
                f"[{e.loc['a', 'lo']:.3f}, {e.loc['a', 'hi']:.3f}], b = {e.loc['b', 'estimate']:.3f} "
                f"[{e.loc['b', 'lo']:.3f}, {e.loc['b', 'hi']:.3f}]")


def approach3(df: pd.DataFrame, target: str, budgets, n_boot: int = 200, seed: int = 0, level: float = 0.95,
              inputs: Mapping | None = None) -> Approach3:
    """Chinchilla approach 3: Huber fit of ``E + A/N^alpha + B/D^beta``, then the analytic optimum.

    Intervals are percentile intervals over bootstrap refits (runs resampled
    with replacement, :meth:`scaling_lib.fit.FitResult.bootstrap`).

    Parameters
    ----------
    df : pandas.DataFrame
        Runs with ``N``, ``D`` (or the columns named in ``inputs``) and ``target``.
    target : str
        Loss column to fit.
    budgets : array_like
        Compute budgets at which to report ``N*`` and ``D*``.
    n_boot : int
        Bootstrap refits; 0 for none (NaN intervals).
    seed : int
    level : float
        Central probability of the intervals.
    inputs : mapping, optional
        ``{"N": column, "D": column}``, e.g. ``{"N": "N_eff"}`` after
        :func:`scaling_lib.flop_conventions.convention_columns`.

    Returns
    -------
    Approach3

    Raises
    ------
    ComputeOptimalError
        The fit did not converge.

    Examples
    --------
    >>> p = {"E": 1.8, "A": 300.0, "alpha": 0.32, "B": 900.0, "beta": 0.28}
    >>> N = np.repeat(np.logspace(4.5, 6.5, 5), 4)
    >>> D = N * np.tile([5.0, 20.0, 80.0, 320.0], 5)
    >>> runs = pd.DataFrame({"N": N, "D": D, "loss": _laws.CHINCHILLA(p, N=N, D=D)})
    >>> res = approach3(runs, "loss", budgets=[1e13], n_boot=0)
    >>> round(float(res.exponents.loc["a", "estimate"]), 3), type(res.fit).__name__
    (0.467, 'FitResult')
    """
    res = _fit.fit(_laws.CHINCHILLA, df, target=target, inputs=inputs, objective="huber_log", seed=seed,
                   n_boot=n_boot)
    if not res.success:
        raise ComputeOptimalError(f"approach3: the Chinchilla fit to {target!r} did not converge")
    budgets = np.atleast_1d(np.asarray(budgets, dtype=float))
    best = chinchilla_optimum(res.params, budgets)
    q = ((1 - level) / 2, (1 + level) / 2)
    ex = pd.DataFrame({"estimate": [best.a, best.b], "lo": np.nan, "hi": np.nan}, index=["a", "b"])
    frontier = pd.DataFrame({"C": budgets, "N_opt": best.N, "D_opt": best.D, "loss_opt": best.loss})
    if n_boot:
        boot = res.bootstrap(n_boot)
        boot = boot[boot["success"]]
        draws = []
        for _, row in boot.iterrows():
            try:
                draws.append(chinchilla_optimum({k: row[k] for k in _laws.CHINCHILLA.param_names}, budgets))
            except ComputeOptimalError:
                continue
        if len(draws) >= 2:
            for key in ("a", "b"):
                ex.loc[key, ["lo", "hi"]] = np.quantile([getattr(d, key) for d in draws], q)
            for key in ("N", "D"):
                stack = np.stack([getattr(d, key) for d in draws])
                frontier[f"{key}_lo"], frontier[f"{key}_hi"] = np.quantile(stack, q, axis=0)
    for key in ("N", "D"):
        if f"{key}_lo" not in frontier:
            frontier[f"{key}_lo"] = frontier[f"{key}_hi"] = np.nan
    frontier = frontier[["C", "N_opt", "N_lo", "N_hi", "D_opt", "D_lo", "D_hi", "loss_opt"]]
    return Approach3(fit=res, exponents=ex, frontier=frontier)
