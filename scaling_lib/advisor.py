"""Over-training advisor: the model that reaches a target loss at the least total cost.

Gadre et al. (2024) motivate over-training by inference: a model that will
serve many tokens should be smaller and trained on more tokens than the
compute-optimal one. Given a fitted loss law ``L(N, D)`` (inputs ``(N, D)``
such as :data:`scaling_lib.laws.CHINCHILLA`, or ``(N, M)`` such as
:data:`scaling_lib.laws.OVERTRAINING`), a target loss and an expected number
of inference tokens ``T_inf``, :func:`advise` finds the model size ``N`` and
token multiplier ``M = D / N`` that minimise training FLOPs ``6 N D`` plus
inference FLOPs ``2 N T_inf`` (a forward pass costs about ``2 N`` per token),
and :func:`cost_vs_multiplier` tabulates that cost against ``M`` for a figure.

With ``T_inf = 0`` the advisor returns the compute-optimal model for the
target loss; for the Chinchilla law with ``alpha = beta`` and
``t = target - E`` that is ``N = (2A/t)^(1/alpha)``, ``D = (2B/t)^(1/alpha)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import brentq, minimize_scalar

from scaling_lib.optimum_fits import ComputeOptimalError


@dataclass(frozen=True)
class Advice:
    """The model that reaches a target loss at the least training plus inference FLOPs.

    Attributes
    ----------
    target_loss, inference_tokens : float
        The question: the loss to reach and the tokens the model will serve.
    N, D, M : float
        The answer: parameters, training tokens and token multiplier ``M = D / N``
        (the names of the columns of :func:`cost_vs_multiplier`).
    train_flops, inference_flops, total_flops : float
        ``6 N D``, ``2 N T_inf`` and their sum.
    at_bound : bool
        The optimum hit a bound of the search range of ``M``.

    Examples
    --------
    >>> a = Advice(2.0, 0.0, 1e6, 2e7, 20.0, 1.2e14, 0.0, 1.2e14, False)
    >>> print(a)
    N = 1e+06, D = 2e+07 (M = 20) for loss 2: 1.2e+14 training + 0 inference = 1.2e+14 FLOPs
    """

    target_loss: float
    inference_tokens: float
    N: float
    D: float
    M: float
    train_flops: float
    inference_flops: float
    total_flops: float
    at_bound: bool

    def __str__(self) -> str:
        note = " (at a bound of M)" if self.at_bound else ""
        return (f"N = {self.N:.4g}, D = {self.D:.4g} (M = {self.M:.4g}) for loss {self.target_loss:.4g}: "
                f"{self.train_flops:.4g} training + {self.inference_flops:.4g} inference = "
                f"{self.total_flops:.4g} FLOPs{note}")


def loss_function(law, params) -> Callable:
    """``loss(N, D)`` of a fitted law whose inputs are ``(N, D)`` or ``(N, M)``.

    Examples
    --------
    >>> from scaling_lib import laws
    >>> f = loss_function(laws.OVERTRAINING, {"E": 2.0, "a": 10.0, "b": 10.0, "eta": 0.1})
    >>> round(float(f(1e6, 2e7)[0]), 4) == round(float(laws.OVERTRAINING(
    ...     {"E": 2.0, "a": 10.0, "b": 10.0, "eta": 0.1}, N=1e6, M=20.0)[0]), 4)
    True
    """
    p = law.param_array(params)
    if tuple(law.inputs) == ("N", "D"):
        return lambda N, D: law(p, N=N, D=D)
    if tuple(law.inputs) == ("N", "M"):
        return lambda N, D: law(p, N=N, M=np.asarray(D, dtype=float) / np.asarray(N, dtype=float))
    raise ComputeOptimalError(f"law {law.name} has inputs {law.inputs}; the advisor needs (N, D) or (N, M)")


def _n_for_target(loss, M: float, target: float, n_bounds) -> float:
    """Smallest ``N`` with ``loss(N, M N) = target`` (the loss falls with ``N`` at fixed ``M``)."""
    lo, hi = (math.log(b) for b in n_bounds)

    def gap(log_n):
        n = math.exp(log_n)
        return float(loss(n, M * n)[0]) - target

    g_lo, g_hi = gap(lo), gap(hi)
    if g_hi > 0:
        return np.nan  # even the largest model at this M misses the target
    if g_lo <= 0:
        return math.exp(lo)
    return math.exp(brentq(gap, lo, hi, xtol=1e-12, rtol=1e-12))


def cost_vs_multiplier(law, params, target_loss: float, inference_tokens: float, multipliers,
                       n_bounds=(1e2, 1e15)) -> pd.DataFrame:
    """Training plus inference FLOPs of the model that reaches ``target_loss`` at each ``M = D / N``.

    For each token multiplier the model size ``N`` that reaches the target
    is found by root finding (``N`` within ``n_bounds``); its cost is training
    ``6 N D`` plus inference ``2 N`` FLOPs per token for ``inference_tokens``.

    Returns
    -------
    pandas.DataFrame
        ``M``, ``N``, ``D``, ``train_flops``, ``inference_flops``,
        ``total_flops`` (NaN where no ``N`` within bounds reaches the target).

    Examples
    --------
    >>> p = {"E": 1.0, "A": 100.0, "alpha": 0.3, "B": 100.0, "beta": 0.3}
    >>> from scaling_lib import laws
    >>> t = cost_vs_multiplier(laws.CHINCHILLA, p, 2.0, 0.0, [1.0])
    >>> round(float(t["N"][0] ** 0.3 / 200), 6)   # A N^-a + B N^-a = 1 at M = 1
    1.0
    """
    if inference_tokens < 0:
        raise ComputeOptimalError(f"inference_tokens must be >= 0, got {inference_tokens}")
    loss = loss_function(law, params)
    rows = []
    for M in np.atleast_1d(np.asarray(multipliers, dtype=float)):
        if not M > 0:
            raise ComputeOptimalError(f"token multipliers must be positive, got {M}")
        N = _n_for_target(loss, float(M), float(target_loss), n_bounds)
        D = M * N
        train = 6.0 * N * D
        infer = 2.0 * N * inference_tokens
        rows.append({"M": M, "N": N, "D": D, "train_flops": train, "inference_flops": infer,
                     "total_flops": train + infer})
    return pd.DataFrame(rows)


def advise(law, params, target_loss: float, inference_tokens: float, m_bounds=(1e-2, 1e6),
           n_bounds=(1e2, 1e15)) -> Advice:
    """The ``N`` and ``M`` that reach ``target_loss`` at the least training plus inference FLOPs.

    Minimises ``6 N D + 2 N T_inf`` over the token multiplier ``M = D / N``
    (bounded search in ``ln M``), the model size at each ``M`` being the one
    that reaches the target loss under the law. With ``inference_tokens = 0``
    this is the compute-optimal model for that loss.

    Parameters
    ----------
    law : scaling_lib.laws.Law
        A loss law with inputs ``(N, D)`` or ``(N, M)``.
    params : mapping or sequence
    target_loss : float
        Must exceed the law's irreducible loss.
    inference_tokens : float
        Tokens the model will process at inference time.
    m_bounds, n_bounds : (float, float)
        Search ranges of ``M`` and ``N``.

    Returns
    -------
    Advice
        ``N``, ``D``, ``M``, ``train_flops``, ``inference_flops``, ``total_flops``, ``at_bound``
        (the optimum hit a bound of ``m_bounds``).

    Raises
    ------
    ComputeOptimalError
        A target at or below the irreducible loss, or no model within bounds reaching it.

    Examples
    --------
    With equal exponents and no inference, the optimum is ``N = (2A/t)^(1/alpha)`` and
    ``D = (2B/t)^(1/alpha)`` for ``t = target - E``:

    >>> p = {"E": 1.0, "A": 100.0, "alpha": 0.3, "B": 400.0, "beta": 0.3}
    >>> from scaling_lib import laws
    >>> best = advise(laws.CHINCHILLA, p, 2.0, 0.0)
    >>> round(best.N / 200 ** (1 / 0.3), 4), round(best.M / 4 ** (1 / 0.3), 4)
    (1.0, 1.0)
    """
    pdict = law.param_dict(params)
    floor = pdict.get("E", -np.inf)
    if not target_loss > floor:
        raise ComputeOptimalError(f"target loss {target_loss} is not above the irreducible loss E={floor}")
    lo, hi = (math.log(b) for b in m_bounds)

    def total(log_m):
        t = cost_vs_multiplier(law, params, target_loss, inference_tokens, [math.exp(log_m)], n_bounds)
        v = float(t["total_flops"][0])
        return math.log(v) if np.isfinite(v) and v > 0 else 1e300

    grid = np.linspace(lo, hi, 61)
    vals = np.array([total(g) for g in grid])
    if not np.any(vals < 1e300):
        raise ComputeOptimalError(
            f"no model with N in {n_bounds} and M in {m_bounds} reaches the target loss {target_loss}")
    i = int(np.argmin(vals))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = minimize_scalar(total, bounds=(a, b), method="bounded", options={"xatol": 1e-10})
    log_m = res.x if res.fun <= vals[i] else grid[i]
    row = cost_vs_multiplier(law, params, target_loss, inference_tokens, [math.exp(log_m)], n_bounds).iloc[0]
    return Advice(target_loss=float(target_loss), inference_tokens=float(inference_tokens),
                  **{k: float(row[k]) for k in ("N", "D", "M", "train_flops", "inference_flops", "total_flops")},
                  at_bound=bool(min(log_m - lo, hi - log_m) < 1e-3 * (hi - lo)))
