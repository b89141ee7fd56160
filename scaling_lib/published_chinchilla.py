"""Chinchilla on its own points: Epoch's extraction of Hoffmann et al.'s runs and their fits.

Besiroglu et al. (2024; ``besiroglu2024chinchilla``) read the 245 training runs of Hoffmann et al.
(2022; ``hoffmann2022training``), Figure 4, off the published figure. This module loads them
(:func:`load_epoch_chinchilla`, with the IsoFLOP budget each run belongs to from
:func:`flop_groups`), refits the Chinchilla law with Epoch's protocol (:func:`fit_epoch`:
``log L = LSE(a - alpha log N, b - beta log D, e)`` by the Huber loss of log residuals, delta
1e-3, L-BFGS-B from a grid of starts, the five highest-loss runs dropped, bootstrap intervals),
compares parameter sets on the same points (:func:`residual_table`) and runs approach 2 on the
IsoFLOP budgets (:func:`budget_exponents`).

The points are read where they lie (``../shared/testbeds/epoch2024-chinchilla`` by default, or
``$SCALING_EPOCH_CHINCHILLA``, or an argument) and never copied into the project.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scaling_lib import compute_optimal as co
from scaling_lib.published_isoflop import (EPOCH_ENV, EPOCH_FILE, _positive, _read, _require, _resolve,
                                           default_epoch_path, parabola_groups)

__all__ = [
    "EPOCH_GRID", "EPOCH_PARAMS", "HOFFMANN_PARAMS", "ChinchillaRefit", "budget_exponents", "fit_epoch",
    "flop_groups", "huber_log_objective", "load_epoch_chinchilla", "residual_table", "start_grid",
]

EPOCH_PARAMS = {"E": 1.82, "A": 482.01, "alpha": 0.3478, "B": 2085.43, "beta": 0.3658}
"""Besiroglu et al. (2024), Table 1: their refit of the Chinchilla law to the extracted points."""

HOFFMANN_PARAMS = {"E": 1.69, "A": 406.4, "alpha": 0.34, "B": 410.7, "beta": 0.28}
"""Hoffmann et al. (2022), eq. (10): the parameters they published for approach 3."""

EPOCH_GRID = {"alpha": (0.0, 0.5, 1.0, 1.5, 2.0), "beta": (0.0, 0.5, 1.0, 1.5, 2.0),
              "e": (-1.0, -0.5, 0.0, 0.5, 1.0), "a": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
              "b": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)}
"""The grid of starts of Hoffmann et al. (2022, App. D.2), which Epoch reused: 4,500 starts of
``(a, b, e, alpha, beta)`` with ``A = e^a``, ``B = e^b``, ``E = e^e``."""

_ORDER = ("a", "b", "e", "alpha", "beta")


# ----------------------------------------------------------------------------- the points


def flop_groups(flops, *, bandwidth: float = 0.05, min_separation: float = 0.2,
                min_density: float = 0.25) -> np.ndarray:
    """Group training FLOPs that cluster around a few budgets; the budget of each run.

    The budgets are the modes of a Gaussian kernel density of ``log10 C``: taken from the
    highest, a mode is a budget if it lies at least ``min_separation`` decades from every budget
    already taken and its density is at least ``min_density`` times the highest. A run belongs
    to the nearest budget within half of ``min_separation``; others belong to none.

    Parameters
    ----------
    flops : array_like
        Positive training FLOPs.
    bandwidth, min_separation : float
        In decades of ``C``.
    min_density : float
        Relative density below which a mode is not a budget.

    Returns
    -------
    numpy.ndarray
        Per run, its budget (``10**mode`` FLOPs), NaN for a run near no budget.

    Examples
    --------
    >>> c = np.r_[np.full(5, 1e19), np.full(4, 1.1e19), np.full(6, 1e20), 3e21]
    >>> np.unique(np.round(np.log10(flop_groups(c)), 2)).tolist()
    [19.02, 20.0, nan]
    """
    x = np.log10(np.asarray(flops, dtype=float))
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError("flop_groups needs positive finite FLOPs")
    grid = np.arange(x.min() - 3 * bandwidth, x.max() + 3 * bandwidth, bandwidth / 10)
    dens = np.exp(-0.5 * ((grid[:, None] - x[None, :]) / bandwidth) ** 2).sum(axis=1)
    peaks = np.flatnonzero((dens[1:-1] > dens[:-2]) & (dens[1:-1] >= dens[2:])) + 1
    centres: list[float] = []
    for i in peaks[np.argsort(-dens[peaks])]:
        if dens[i] < min_density * dens.max():
            break
        if all(abs(grid[i] - c) >= min_separation for c in centres):
            centres.append(float(grid[i]))
    centres_arr = np.sort(np.array(centres))
    dist = np.abs(x[:, None] - centres_arr[None, :])
    nearest = dist.argmin(axis=1)
    return np.where(dist[np.arange(x.size), nearest] <= min_separation / 2, 10.0 ** centres_arr[nearest], np.nan)


def load_epoch_chinchilla(path=None, **grouping) -> pd.DataFrame:
    """Chinchilla's training runs as Epoch extracted them from Hoffmann et al.'s Figure 4.

    Parameters
    ----------
    path : str or path-like, optional
        ``svg_extracted_data.csv`` or its folder; default :func:`default_epoch_path`.
    **grouping
        Keywords of :func:`flop_groups` (how the IsoFLOP budgets are found).

    Returns
    -------
    pandas.DataFrame
        One row per run, in file order: ``run`` (its line in the file), ``N`` (``Model
        Size``), ``C`` (``Training FLOP``), ``D = C / (6N)``, ``loss``, and ``budget`` (the
        IsoFLOP budget the run belongs to, NaN for none).

    Raises
    ------
    FileNotFoundError, PublishedDataError

    Examples
    --------
    >>> pts = load_epoch_chinchilla()  # doctest: +SKIP
    >>> len(pts), pts["budget"].nunique()  # doctest: +SKIP
    (245, 10)
    """
    file = _resolve(default_epoch_path(path), EPOCH_FILE, EPOCH_ENV)
    df = _read(file)
    _require(df, ("Model Size", "Training FLOP", "loss"), file)
    n, c, loss = (_positive(df, col, file) for col in ("Model Size", "Training FLOP", "loss"))
    out = pd.DataFrame({"run": np.arange(len(df)) + 2, "N": n, "C": c, "D": c / (6.0 * n), "loss": loss})
    out["budget"] = flop_groups(c, **grouping)
    return out


# ----------------------------------------------------------------------------- the fit


def start_grid(**values) -> np.ndarray:
    """Starts ``(a, b, e, alpha, beta)`` for :func:`fit_epoch`: the product of :data:`EPOCH_GRID`
    with any of its axes replaced by ``values``.

    Examples
    --------
    >>> start_grid().shape, start_grid(a=(5.0,), b=(5.0,)).shape
    ((4500, 5), (125, 5))
    """
    unknown = set(values) - set(_ORDER)
    if unknown:
        raise ValueError(f"start_grid: unknown axis {sorted(unknown)}; axes are {list(_ORDER)}")
    axes = [tuple(values.get(k, EPOCH_GRID[k])) for k in _ORDER]
    return np.array(list(itertools.product(*axes)), dtype=float)


def huber_log_objective(theta, log_n, log_d, log_loss, delta: float = 1e-3):
    """Epoch's objective and its gradient: the summed Huber loss of
    ``LSE(a - alpha log N, b - beta log D, e) - log L`` at ``theta = (a, b, e, alpha, beta)``.

    Examples
    --------
    >>> v, g = huber_log_objective(np.zeros(5), np.zeros(2), np.zeros(2), np.log(3.0) * np.ones(2))
    >>> round(v, 12), bool(np.abs(g).max() < 1e-9)
    (0.0, True)
    """
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    top = terms.max(axis=0)
    w = np.exp(terms - top)
    total = w.sum(axis=0)
    r = top + np.log(total) - log_loss
    w /= total
    small = np.abs(r) <= delta
    value = float(np.sum(np.where(small, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))))
    h = np.where(small, r, delta * np.sign(r))
    grad = np.array([np.sum(h * w[0]), np.sum(h * w[1]), np.sum(h * w[2]),
                     -np.sum(h * w[0] * log_n), -np.sum(h * w[1] * log_d)])
    return value, grad


@contextlib.contextmanager
def _one_blas_thread():
    """Run L-BFGS-B on one OpenBLAS thread. Its vectors have five entries, so threads gain
    nothing, and on a loaded machine OpenBLAS's waiting threads slow each iteration some
    fifty times. OpenBLAS's per-thread setting ``openblas_set_num_threads_local`` is set for
    the calling thread and restored; without a loaded OpenBLAS this does nothing."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line}
    except OSError:
        paths = set()
    restore = []
    for path in sorted(paths):
        try:
            setter = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        setter.restype, setter.argtypes = ctypes.c_int, [ctypes.c_int]
        restore.append((setter, setter(1)))
    try:
        yield
    finally:
        for setter, previous in restore:
            setter(previous)


def _minimise(starts, log_n, log_d, log_loss, delta):
    from scipy.optimize import minimize

    with _one_blas_thread():
        return _minimise_all(minimize, starts, log_n, log_d, log_loss, delta)


def _minimise_all(minimize, starts, log_n, log_d, log_loss, delta):
    def scaled(theta):  # the objective over delta: the same minimum, a gradient of order one
        value, grad = huber_log_objective(theta, log_n, log_d, log_loss, delta)
        return value / delta, grad / delta

    best, n_failed = None, 0
    for start in starts:
        try:
            res = minimize(scaled, start, jac=True,
                           method="L-BFGS-B", options={"ftol": 1e-10, "gtol": 1e-6, "maxiter": 500})
        except (ValueError, FloatingPointError):
            n_failed += 1
            continue
        if not (res.success and np.all(np.isfinite(res.x))):
            n_failed += 1
            continue
        if best is None or res.fun < best.fun:
            best = res
    if best is not None:
        best.fun = best.fun * delta
    return best, n_failed


def _params(theta) -> dict:
    a, b, e, alpha, beta = (float(v) for v in theta)
    return {"E": math.exp(e), "A": math.exp(a), "alpha": alpha, "B": math.exp(b), "beta": beta}


@dataclass(frozen=True)
class ChinchillaRefit:
    """The Chinchilla law refitted by Epoch's protocol.

    Attributes
    ----------
    params : dict
        ``E``, ``A``, ``alpha``, ``B``, ``beta``.
    table : pandas.DataFrame
        Index the parameters and ``a`` (``beta / (alpha + beta)``, the exponent of ``N*``);
        columns ``estimate``, ``lo``, ``hi`` (bootstrap percentile interval, NaN without one).
    objective : float
        The summed Huber loss at the optimum.
    n_points : int
        Runs fitted.
    dropped : pandas.DataFrame
        The runs left out (the highest losses).
    n_starts, n_failed : int
        Starts tried and starts that failed (counted, not fatal).
    boot : pandas.DataFrame
        One row per bootstrap replicate: the parameters and ``a``.
    level : float

    Examples
    --------
    See :func:`fit_epoch`.
    """

    params: dict
    table: pd.DataFrame
    objective: float
    n_points: int
    dropped: pd.DataFrame = field(repr=False)
    n_starts: int
    n_failed: int
    boot: pd.DataFrame = field(repr=False)
    level: float = 0.95

    def predict(self, N, D) -> np.ndarray:
        """The law's loss at ``N`` parameters and ``D`` tokens."""
        return _predict(self.params, N, D)

    def report(self) -> str:
        """One line per parameter: estimate and interval."""
        lines = [f"{self.n_points} runs ({len(self.dropped)} dropped), {self.n_starts} starts "
                 f"({self.n_failed} failed), objective {self.objective:.5g}"]
        for name, r in self.table.iterrows():
            lines.append(f"  {name:5s} = {r.estimate:10.4g}  [{r.lo:.4g}, {r.hi:.4g}]")
        return "\n".join(lines)


def _predict(params: Mapping, N, D) -> np.ndarray:
    p = params
    return p["E"] + p["A"] * np.asarray(N, float) ** -p["alpha"] + p["B"] * np.asarray(D, float) ** -p["beta"]


def fit_epoch(points: pd.DataFrame, *, drop_highest: int = 5, delta: float = 1e-3, starts=None,
              n_boot: int = 0, seed: int = 0, level: float = 0.95) -> ChinchillaRefit:
    """Fit ``L = E + A / N^alpha + B / D^beta`` to Chinchilla's points as Besiroglu et al. (2024) did.

    Minimise :func:`huber_log_objective` with L-BFGS-B from every start and keep the lowest.
    Each bootstrap replicate resamples the runs with replacement and refits from the full-data
    optimum (one warm start, where Epoch restarted the grid: a shortcut that keeps a replicate in
    the basin of the full fit).

    Parameters
    ----------
    points : pandas.DataFrame
        ``N``, ``D``, ``loss`` (as from :func:`load_epoch_chinchilla`).
    drop_highest : int
        The runs of highest loss left out before fitting (Epoch: 5).
    delta : float
        Huber threshold on log residuals.
    starts : array_like of shape (k, 5), optional
        Starts ``(a, b, e, alpha, beta)``; default :func:`start_grid` (4,500 starts).
    n_boot, seed, level
        Bootstrap replicates, their seed, the interval's central probability.

    Returns
    -------
    ChinchillaRefit

    Raises
    ------
    ValueError
        Too few runs, missing columns, or no start that converged.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> N, D = 10 ** rng.uniform(7, 10, 60), 10 ** rng.uniform(9, 11.5, 60)
    >>> pts = pd.DataFrame({"N": N, "D": D, "loss": _predict(EPOCH_PARAMS, N, D)})
    >>> fit = fit_epoch(pts, drop_highest=0, starts=[[6.0, 7.6, 0.6, 0.35, 0.37]])
    >>> round(fit.params["alpha"], 3), round(fit.params["beta"], 3)
    (0.348, 0.366)
    """
    missing = [c for c in ("N", "D", "loss") if c not in points.columns]
    if missing:
        raise ValueError(f"fit_epoch: points lack column(s) {missing}")
    order = points.sort_values("loss", ascending=False, kind="stable")
    dropped, kept = order.iloc[:drop_highest], order.iloc[drop_highest:].sort_index()
    if len(kept) < 6:
        raise ValueError(f"fit_epoch: {len(kept)} runs left after dropping {drop_highest}; the law has 5 parameters")
    log_n, log_d, log_l = (np.log(kept[c].to_numpy(float)) for c in ("N", "D", "loss"))
    starts = start_grid() if starts is None else np.atleast_2d(np.asarray(starts, dtype=float))
    best, n_failed = _minimise(starts, log_n, log_d, log_l, delta)
    if best is None:
        raise ValueError(f"fit_epoch: none of {len(starts)} starts converged")
    params = _params(best.x)
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(int(n_boot)):
        idx = rng.integers(0, log_n.size, log_n.size)
        res, _failed = _minimise([best.x], log_n[idx], log_d[idx], log_l[idx], delta)
        if res is not None:
            reps.append(_params(res.x))
    boot = pd.DataFrame(reps, columns=list(params))
    boot["a"] = boot["beta"] / (boot["alpha"] + boot["beta"])
    est = pd.Series(params | {"a": params["beta"] / (params["alpha"] + params["beta"])})
    q = ((1 - level) / 2, (1 + level) / 2)
    enough = len(boot) >= 2
    table = pd.DataFrame({"estimate": est,
                          "lo": boot.quantile(q[0]) if enough else np.nan,
                          "hi": boot.quantile(q[1]) if enough else np.nan})
    return ChinchillaRefit(params=params, table=table, objective=float(best.fun), n_points=int(log_n.size),
                           dropped=dropped, n_starts=len(starts), n_failed=n_failed, boot=boot, level=level)


def residual_table(points: pd.DataFrame, params: Mapping[str, Mapping], delta: float = 1e-3) -> pd.DataFrame:
    """How well each parameter set describes the same points.

    Parameters
    ----------
    points : pandas.DataFrame
        ``N``, ``D``, ``loss``.
    params : mapping
        Name -> ``{E, A, alpha, B, beta}``.
    delta : float
        Huber threshold of the ``huber`` column.

    Returns
    -------
    pandas.DataFrame
        Index the names; columns ``mean`` and ``rms`` of the log residual ``log L - log
        prediction``, ``max_abs``, ``huber`` (Epoch's objective at these parameters), ``n``.

    Examples
    --------
    >>> pts = pd.DataFrame({"N": [1e9], "D": [2e10], "loss": [_predict(HOFFMANN_PARAMS, 1e9, 2e10)]})
    >>> residual_table(pts, {"Hoffmann": HOFFMANN_PARAMS})["rms"].round(12).tolist()
    [0.0]
    """
    rows = {}
    for name, p in params.items():
        r = np.log(points["loss"].to_numpy(float)) - np.log(_predict(p, points["N"], points["D"]))
        huber = np.where(np.abs(r) <= delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta)).sum()
        rows[name] = {"mean": r.mean(), "rms": math.sqrt(np.mean(r**2)), "max_abs": np.abs(r).max(),
                      "huber": float(huber), "n": int(r.size)}
    return pd.DataFrame.from_dict(rows, orient="index")


def budget_exponents(points: pd.DataFrame, *, n_boot: int = 200, seed: int = 0, level: float = 0.95):
    """Approach 2 on Chinchilla's IsoFLOP budgets: parabolas of the loss in ``ln N``
    (:func:`scaling_lib.compute_optimal.isoflop_optima`) on the budgets of :func:`flop_groups`
    whose parabola has a minimum inside the sampled sizes, and the exponents ``a`` and ``b``.

    Returns
    -------
    tuple
        ``(optima, exponents, usable)``: :class:`scaling_lib.compute_optimal.IsoFLOPOptima`,
        :class:`scaling_lib.compute_optimal.OptimumExponents` and the boolean
        :func:`scaling_lib.published_isoflop.parabola_groups` series of every budget.
    """
    grouped = points.dropna(subset=["budget"])
    usable = parabola_groups(grouped, group="budget", target="loss").sort_index()
    keep = grouped[grouped["budget"].isin(usable.index[usable])]
    optima = co.isoflop_optima(keep, target="loss", group="budget", n_col="N", flops_col="C",
                               n_boot=n_boot, seed=seed, level=level)
    return optima, co.optimum_exponents(optima), usable
