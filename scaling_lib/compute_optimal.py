"""Compute-optimal allocation: IsoFLOP parabolas, analytic optima, exponents, FLOP conventions.

Given runs that trade model size ``N`` against training tokens ``D`` at fixed
compute ``C``, find the loss-optimal ``N*(C)`` and ``D*(C)`` and the exponents
``a`` and ``b`` of ``N* ~ C^a`` and ``D* ~ C^b`` (Hoffmann et al. 2022, Sec. 3):

approach 1 (:func:`scaling_lib.curves.envelope`)
    For each compute level, the lowest loss over all runs' training curves
    (the lower envelope of loss against ``C = 6 N D`` along each curve).
approach 2 (:func:`fit_parabola`, :func:`isoflop_optima`)
    Within each IsoFLOP group (runs of one budget), fit a parabola of the loss
    in ``ln N``; its vertex is ``N*`` and ``D* = C / (6 N*)``. Intervals come
    from a bootstrap over the runs of each group.
approach 3 (:func:`chinchilla_optimum`, :func:`approach3`)
    Fit :data:`scaling_lib.laws.CHINCHILLA` (``E + A N^-alpha + B D^-beta``)
    to all runs with the Huber loss of log residuals; minimising it at fixed
    ``6 N D = C`` gives ``N* = G (C/6)^(beta/(alpha+beta))`` and
    ``D* = G^-1 (C/6)^(alpha/(alpha+beta))`` with
    ``G = (alpha A / (beta B))^(1/(alpha+beta))``.

The FLOP convention matters (Porian et al. 2024): :func:`convention_columns`
recounts ``N`` and ``C`` of each run under a
:func:`scaling_lib.counting.training_flops` convention, as an effective
parameter count ``N_eff`` (training FLOPs per token / 6) and ``C = 6 N_eff D``.
:func:`scaling_lib.curves.curves_at_budgets` rebuilds exact IsoFLOP groups
under any convention from the training curves.

:func:`optimal_lr` finds the loss-optimal learning rate of each model size
(parabola in ``ln lr``) for a trend fit with :func:`fit_power_trend`.

The over-training advisor (training plus inference cost) lives in
:mod:`scaling_lib.advisor`; the IsoFLOP sweep design in :mod:`scaling_lib.isoflop`.

:data:`PORIAN_EXPONENTS` lists the published exponents of Porian et al.
(2024) as citable reference values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scaling_lib import laws as _laws


class ComputeOptimalError(ValueError):
    """Data or parameters from which no compute-optimal point can be found."""


# --- published reference values --------------------------------------------------------------


@dataclass(frozen=True)
class PublishedExponent:
    """One published estimate of the exponent ``a`` in ``N* ~ C^a``.

    Attributes
    ----------
    step : str
        Short name of the experimental setting.
    a : float
        Point estimate of ``a``.
    dataset : str
    description : str
    source : str
        Citation key in ``book/references.bib``.
    """

    step: str
    a: float
    dataset: str
    description: str
    source: str


PORIAN_EXPONENTS = (
    PublishedExponent("kaplan_reproduction", 0.835, "RefinedWeb",
                      "Kaplan et al.'s setup reproduced: FLOPs without the output head, long "
                      "fixed warmup, one set of hyperparameters for every size",
                      "porian2024resolving"),
    PublishedExponent("count_head", 0.706, "RefinedWeb",
                      "as above, counting the output layer's FLOPs in the compute budget",
                      "porian2024resolving"),
    PublishedExponent("fix_warmup", 0.602, "RefinedWeb",
                      "as above, with a warmup no longer than the smallest runs allow",
                      "porian2024resolving"),
    PublishedExponent("tuned", 0.497, "RefinedWeb",
                      "as above, with learning rate, batch size and AdamW beta2 tuned per "
                      "model size (agrees with Hoffmann et al.'s a ~ 0.5)",
                      "porian2024resolving"),
)
"""Porian et al. (2024), Fig. 1: the compute-optimal exponent ``a`` on RefinedWeb as the
three factors they identify are corrected one after the other. Published facts for
comparison, not results of this library."""


def published_exponents() -> pd.DataFrame:
    """:data:`PORIAN_EXPONENTS` as a table (one row per setting, in order).

    Examples
    --------
    >>> published_exponents()["a"].round(3).tolist()
    [0.835, 0.706, 0.602, 0.497]
    """
    return pd.DataFrame([vars(p) for p in PORIAN_EXPONENTS])


# --- approach 2: parabolas in log N ----------------------------------------------------------


@dataclass(frozen=True)
class Parabola:
    """A parabola ``y = c0 + c1 x + c2 x^2`` fitted by least squares, and its vertex.

    Attributes
    ----------
    coeffs : tuple of float
        ``(c0, c1, c2)``.
    x_opt, y_opt : float
        Vertex ``-c1 / (2 c2)`` and the fitted value there.
    x_min, x_max : float
        Range of the data.
    n_points : int
    """

    coeffs: tuple
    x_opt: float
    y_opt: float
    x_min: float
    x_max: float
    n_points: int

    @property
    def inside(self) -> bool:
        """The vertex lies within the range of the data (not an extrapolation)."""
        return self.x_min <= self.x_opt <= self.x_max

    def __call__(self, x) -> np.ndarray:
        c0, c1, c2 = self.coeffs
        x = np.asarray(x, dtype=float)
        return c0 + c1 * x + c2 * x**2


def fit_parabola(x, y) -> Parabola:
    """Least-squares parabola through ``(x, y)`` and its minimum.

    Parameters
    ----------
    x, y : array_like
        E.g. ``ln N`` and the loss of the runs of one IsoFLOP group.

    Raises
    ------
    ComputeOptimalError
        Fewer than three distinct ``x``, non-finite values, or a parabola that
        opens downwards (no minimum).

    Examples
    --------
    >>> x = np.linspace(-2, 2, 5)
    >>> p = fit_parabola(x, 3.0 + 0.5 * (x - 0.4) ** 2)
    >>> round(p.x_opt, 6), round(p.y_opt, 6), p.inside
    (0.4, 3.0, True)
    """
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.size != y.size:
        raise ComputeOptimalError(f"fit_parabola: x and y differ in length ({x.size} vs {y.size})")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ComputeOptimalError("fit_parabola: x and y must be finite")
    if np.unique(x).size < 3:
        raise ComputeOptimalError(f"fit_parabola needs at least 3 distinct x values, got {np.unique(x).size}")
    c2, c1, c0 = np.polyfit(x, y, 2)
    if not c2 > 0:
        raise ComputeOptimalError(f"fit_parabola: the parabola opens downwards (c2={c2:.3g}); no minimum")
    x_opt = -c1 / (2 * c2)
    return Parabola((float(c0), float(c1), float(c2)), float(x_opt), float(c0 + c1 * x_opt + c2 * x_opt**2),
                    float(x.min()), float(x.max()), int(x.size))


def _need(df: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ComputeOptimalError(f"{what}: missing column(s) {missing}; available: {list(df.columns)}")


def _label(g) -> str:
    """A group key for messages: floats as ``%g``, other values as text."""
    if isinstance(g, (float, np.floating)):
        return f"{float(g):g}"
    return str(g.item() if isinstance(g, np.generic) else g)


def _log_c_line(x: np.ndarray, log_c: np.ndarray) -> tuple[float, float]:
    """``(slope, intercept)`` of ``ln C`` as a straight line in ``x = ln N`` (flat for an iso-FLOP group)."""
    if np.ptp(log_c) > 0:
        slope, icpt = np.polyfit(x, log_c, 1)
        return float(slope), float(icpt)
    return 0.0, float(log_c[0])


def _group_optimum(x: np.ndarray, y: np.ndarray, line: tuple[float, float]):
    """Vertex of the parabola of ``y`` in ``x`` and ``ln C`` there, read off ``line``."""
    par = fit_parabola(x, y)
    return par, line[1] + line[0] * par.x_opt


@dataclass(frozen=True)
class IsoFLOPOptima:
    """Loss-optimal ``N*`` and ``D*`` per IsoFLOP group, with bootstrap replicates.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per group: ``group``, ``C``, ``n_runs``, ``N_opt``, ``N_lo``,
        ``N_hi``, ``D_opt``, ``D_lo``, ``D_hi``, ``loss_opt``, ``inside``
        (vertex within the group's range of ``N``), ``boot_ok`` (replicates
        with a minimum).
    boot : pandas.DataFrame
        One row per (replicate, group): ``replicate``, ``group``, ``C``,
        ``N_opt``, ``D_opt`` (NaN where the replicate had no minimum).
    parabolas : dict
        ``group -> Parabola`` in ``ln N``.
    level : float
    """

    table: pd.DataFrame
    boot: pd.DataFrame
    parabolas: dict = field(repr=False)
    level: float = 0.95


def isoflop_optima(
    df: pd.DataFrame,
    group: str = "budget",
    target: str = "loss_en",
    n_col: str = "N",
    flops_col: str = "flops",
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
    resample: str = "residuals",
    replicates_inside: bool = True,
) -> IsoFLOPOptima:
    """Chinchilla approach 2: parabola of the loss in ``ln N`` per IsoFLOP group.

    For each group the vertex gives ``N*``; the group's compute ``C`` at the
    vertex is read off a straight line of ``ln C`` against ``ln N`` through the
    group (for a group that is iso-FLOP under ``flops_col`` this is the
    group's compute; for a group trained at one ``6ND`` budget and recounted
    under another convention it is the recounted compute of the interpolated
    optimum), and ``D* = C / (6 N*)``.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per run with the columns named below.
    group : str
        Column identifying the IsoFLOP group (e.g. the nominal budget).
    target : str
        Loss column to minimise.
    n_col, flops_col : str
        Parameter count and compute columns under one convention (``N`` and
        ``flops`` for ``6ND``; see :func:`convention_columns`).
    n_boot : int
        Bootstrap replicates (the same replicate index for every group); 0
        for none.
    seed : int
    level : float
        Central probability of the intervals ``N_lo``/``N_hi``.
    resample : {"residuals", "runs"}
        ``"residuals"`` (fixed design, the default): every replicate keeps the
        group's sizes and adds to the fitted parabola its residuals drawn with
        replacement, inflated by ``sqrt(n / (n - 3))`` for the three fitted
        coefficients (Efron and Tibshirani 1994, Sec. 9.5). ``"runs"``: runs
        resampled with replacement within each group; with five or six runs
        a replicate often keeps three sizes on one side of the minimum, and
        its vertex (and the interval) can run far outside the sampled range.
    replicates_inside : bool
        Count a replicate whose vertex lies outside the group's range of
        ``ln N`` as having no minimum (an extrapolated vertex is not an
        estimate of the optimum). The intervals are then conditional on an
        interior minimum; ``boot_ok`` says how many replicates remained.

    Returns
    -------
    IsoFLOPOptima

    Raises
    ------
    ComputeOptimalError
        A missing column, a group with fewer than three distinct sizes, or a
        group whose losses have no minimum in ``ln N``.

    Examples
    --------
    >>> N = np.repeat(np.logspace(4, 6, 7)[None], 2, 0).ravel()
    >>> C = np.repeat([1e12, 1e13], 7)
    >>> L = 3 + 0.1 * (np.log(N) - np.log(np.sqrt(C / 120))) ** 2
    >>> res = isoflop_optima(pd.DataFrame({"budget": C, "N": N, "flops": C, "loss_en": L}), n_boot=0)
    >>> (res.table["D_opt"] / res.table["N_opt"]).round(3).tolist()
    [20.0, 20.0]
    """
    _need(df, [group, target, n_col, flops_col], "isoflop_optima")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if resample not in ("residuals", "runs"):
        raise ValueError(f"resample must be 'residuals' or 'runs', got {resample!r}")
    rng = np.random.default_rng(seed)
    rows, boot_rows, parabolas = [], [], {}
    groups = list(pd.unique(df[group]))
    data = {}
    for g in groups:
        sub = df[df[group] == g]
        n = sub[n_col].to_numpy(dtype=float)
        c = sub[flops_col].to_numpy(dtype=float)
        y = sub[target].to_numpy(dtype=float)
        bad = ~(np.isfinite(n) & np.isfinite(c) & np.isfinite(y)) | (n <= 0) | (c <= 0)
        if bad.any():
            ids = sub["run_id"].tolist() if "run_id" in sub.columns else list(sub.index)
            raise ComputeOptimalError(
                f"isoflop_optima: group {_label(g)} has missing or non-positive {n_col}/{flops_col}/{target} "
                f"for run(s) {[ids[i] for i in np.flatnonzero(bad)][:5]}")
        x, lc = np.log(n), np.log(c)
        try:
            line = _log_c_line(x, lc)
            par, lc_opt = _group_optimum(x, y, line)
        except ComputeOptimalError as exc:
            raise ComputeOptimalError(f"isoflop_optima: group {_label(g)}: {exc}") from None
        parabolas[g] = par
        fitted = par(x)
        scale = math.sqrt(x.size / (x.size - 3)) if x.size > 3 else 0.0
        data[g] = (x, y, lc, line, fitted, scale * (y - fitted))
        rows.append({"group": g, "C": math.exp(lc_opt), "n_runs": int(x.size),
                     "N_opt": math.exp(par.x_opt), "D_opt": math.exp(lc_opt - par.x_opt) / 6.0,
                     "loss_opt": par.y_opt, "inside": par.inside})
    for b in range(int(n_boot)):
        for g in groups:
            x, y, lc, line, fitted, resid = data[g]
            idx = rng.integers(0, x.size, x.size)
            try:
                if resample == "runs":  # the sizes change, and so does the line of ln C
                    xb, yb = x[idx], y[idx]
                    line_b = _log_c_line(xb, lc[idx])
                else:  # fixed design: the sizes and the line of ln C stay
                    xb, yb, line_b = x, fitted + resid[idx], line
                par, lc_opt = _group_optimum(xb, yb, line_b)
                if replicates_inside and not par.inside:
                    raise ComputeOptimalError("vertex outside the sampled sizes")
                n_opt, d_opt = math.exp(par.x_opt), math.exp(lc_opt - par.x_opt) / 6.0
                c_opt = math.exp(lc_opt)
            except (ComputeOptimalError, np.linalg.LinAlgError, OverflowError):
                n_opt = d_opt = c_opt = np.nan
            boot_rows.append({"replicate": b, "group": g, "C": c_opt, "N_opt": n_opt, "D_opt": d_opt})
    table = pd.DataFrame(rows)
    boot = pd.DataFrame(boot_rows, columns=["replicate", "group", "C", "N_opt", "D_opt"])
    q = ((1 - level) / 2, (1 + level) / 2)
    for col in ("N", "D"):
        lo, hi = [], []
        for g in groups:
            vals = boot.loc[boot["group"] == g, f"{col}_opt"].dropna().to_numpy()
            lo.append(float(np.quantile(vals, q[0])) if vals.size >= 2 else np.nan)
            hi.append(float(np.quantile(vals, q[1])) if vals.size >= 2 else np.nan)
        table[f"{col}_lo"], table[f"{col}_hi"] = lo, hi
    table["boot_ok"] = [int(boot.loc[boot["group"] == g, "N_opt"].notna().sum()) for g in groups]
    table = table[["group", "C", "n_runs", "N_opt", "N_lo", "N_hi", "D_opt", "D_lo", "D_hi",
                   "loss_opt", "inside", "boot_ok"]]
    return IsoFLOPOptima(table=table, boot=boot, parabolas=parabolas, level=level)


# --- exponents ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PowerTrend:
    """``y = coef * x^exponent`` fitted by least squares on logs, with an interval.

    Attributes
    ----------
    exponent, coef : float
    exponent_lo, exponent_hi : float
        Percentile interval from bootstrap replicates when given, otherwise
        the t interval of the log-log regression (NaN with fewer than three
        points).
    n_points : int
    level : float
    method : str
        ``"bootstrap"`` or ``"t"``.
    n_replicates : int
        Replicates used (0 for ``"t"``).
    """

    exponent: float
    coef: float
    exponent_lo: float
    exponent_hi: float
    n_points: int
    level: float
    method: str
    n_replicates: int = 0

    def __call__(self, x) -> np.ndarray:
        return self.coef * np.asarray(x, dtype=float) ** self.exponent

    def summary(self) -> dict:
        """JSON-able dict of the fields."""
        return {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in vars(self).items()}


def _loglog(x: np.ndarray, y: np.ndarray) -> tuple:
    slope, icpt = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope), float(icpt)


def fit_power_trend(x, y, replicates=None, level: float = 0.95) -> PowerTrend:
    """Fit ``y = coef x^exponent`` on logs (the same fit as :data:`scaling_lib.laws.POWER`).

    Parameters
    ----------
    x, y : array_like
        Positive values, e.g. budgets ``C`` and optima ``N*``.
    replicates : sequence of (x_b, y_b), optional
        Bootstrap replicates of the data; the exponent is refitted on each
        (replicates with non-finite or non-positive values are skipped) and
        the interval is their percentile interval.
    level : float

    Raises
    ------
    ComputeOptimalError
        Fewer than two points, or non-positive values.

    Examples
    --------
    >>> t = fit_power_trend([1e12, 1e13, 1e14], [1e5, 10 ** 5.5, 1e6])
    >>> round(t.exponent, 6), t.method
    (0.5, 't')
    """
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.size != y.size or x.size < 2:
        raise ComputeOptimalError(f"fit_power_trend needs at least 2 (x, y) pairs of equal length, got {x.size}, {y.size}")
    if not (np.all(np.isfinite(x) & (x > 0)) and np.all(np.isfinite(y) & (y > 0))):
        raise ComputeOptimalError("fit_power_trend: x and y must be finite and positive")
    if np.unique(x).size < 2:
        raise ComputeOptimalError("fit_power_trend needs at least 2 distinct x values")
    slope, icpt = _loglog(x, y)
    if replicates is not None:
        slopes = []
        for xb, yb in replicates:
            xb, yb = np.asarray(xb, dtype=float), np.asarray(yb, dtype=float)
            ok = np.isfinite(xb) & np.isfinite(yb) & (xb > 0) & (yb > 0)
            if ok.sum() < x.size or np.unique(xb).size < 2:
                continue
            slopes.append(_loglog(xb, yb)[0])
        if len(slopes) < 2:
            raise ComputeOptimalError(f"fit_power_trend: fewer than 2 usable bootstrap replicates ({len(slopes)})")
        lo, hi = np.quantile(slopes, [(1 - level) / 2, (1 + level) / 2])
        return PowerTrend(slope, math.exp(icpt), float(lo), float(hi), int(x.size), level, "bootstrap", len(slopes))
    lo = hi = np.nan
    if x.size >= 3:
        from scipy import stats

        lx = np.log(x)
        resid = np.log(y) - (icpt + slope * lx)
        se = math.sqrt(np.sum(resid**2) / (x.size - 2) / np.sum((lx - lx.mean()) ** 2))
        t = stats.t.ppf((1 + level) / 2, x.size - 2)
        lo, hi = slope - t * se, slope + t * se
    return PowerTrend(slope, math.exp(icpt), float(lo), float(hi), int(x.size), level, "t")


def optimum_exponents(optima: IsoFLOPOptima) -> dict:
    """Exponents ``a`` (``N* ~ C^a``) and ``b`` (``D* ~ C^b``) of IsoFLOP optima.

    Intervals come from the joint bootstrap of :func:`isoflop_optima` (each
    replicate refits both trends on its optima of every group; a replicate
    with a group without a minimum is skipped), or the t interval of the
    regression if no replicates were run.

    Returns
    -------
    dict
        ``{"a": PowerTrend, "b": PowerTrend}``.

    Examples
    --------
    >>> C = np.repeat([1e12, 1e13, 1e14], 5)
    >>> N = np.sqrt(C / 120) * np.tile(np.logspace(-0.5, 0.5, 5), 3)
    >>> L = 3 + 0.1 * np.log(N / np.sqrt(C / 120)) ** 2
    >>> opt = isoflop_optima(pd.DataFrame({"budget": C, "N": N, "flops": C, "loss_en": L}), n_boot=20)
    >>> ex = optimum_exponents(opt)
    >>> round(ex["a"].exponent, 4), round(ex["b"].exponent, 4)
    (0.5, 0.5)
    """
    t = optima.table
    reps = {"N": [], "D": []}
    if len(optima.boot):
        for _, rep in optima.boot.groupby("replicate"):
            for col in reps:
                reps[col].append((rep["C"].to_numpy(), rep[f"{col}_opt"].to_numpy()))
    return {
        "a": fit_power_trend(t["C"], t["N_opt"], reps["N"] or None, optima.level),
        "b": fit_power_trend(t["C"], t["D_opt"], reps["D"] or None, optima.level),
    }


# --- FLOP conventions ------------------------------------------------------------------------


def _default_shape(row: Mapping):
    """Shape of one of this library's GPTs from run-table columns."""
    from scaling_lib.configs import GPTConfig

    return GPTConfig(d_model=int(row["d_model"]), n_layers=int(row["n_layers"]), n_heads=int(row["n_heads"]),
                     vocab_size=int(row["vocab_size"]), seq_len=int(row["seq_len"])).shape()


def convention_columns(df: pd.DataFrame, convention: str, shape_of: Callable | None = None,
                       tokens_col: str = "D") -> pd.DataFrame:
    """Recount each run's parameters and compute under a FLOP convention.

    Parameters
    ----------
    df : pandas.DataFrame
        Run table; with the default ``shape_of`` it needs ``d_model``,
        ``n_layers``, ``n_heads``, ``vocab_size`` and ``seq_len``.
    convention : str
        One of :data:`scaling_lib.counting.FLOP_CONVENTIONS`.
    shape_of : callable, optional
        ``shape_of(row) -> counting.TransformerShape``; default: the shape of
        :class:`scaling_lib.configs.GPTConfig` built from the row's columns.
    tokens_col : str
        Training tokens column.

    Returns
    -------
    pandas.DataFrame
        A copy with ``N_eff`` (training FLOPs per token / 6 under the
        convention: ``N`` for ``"6ND"``, ``N_ne`` for ``"6N_ne_D"``, ...) and
        ``C`` (``6 N_eff D``).

    Examples
    --------
    >>> from scaling_lib import counting
    >>> row = dict(d_model=32, n_layers=2, n_heads=2, vocab_size=64, seq_len=16, D=1000.0)
    >>> out = convention_columns(pd.DataFrame([row]), "6N_ne_D")
    >>> shape = _default_shape(row)
    >>> int(out["N_eff"][0]) == counting.param_counts(shape)["non_embedding"]
    True
    """
    from scaling_lib import counting

    if convention not in counting.FLOP_CONVENTIONS:
        raise ComputeOptimalError(f"unknown FLOP convention {convention!r}; choose one of {counting.FLOP_CONVENTIONS}")
    shape_of = shape_of or _default_shape
    if shape_of is _default_shape:
        _need(df, ["d_model", "n_layers", "n_heads", "vocab_size", "seq_len"], "convention_columns")
    _need(df, [tokens_col], "convention_columns")
    per_token = np.array([counting.training_flops(shape_of(row), 1.0, convention)
                          for _, row in df.iterrows()], dtype=float)
    out = df.copy()
    out["N_eff"] = per_token / 6.0
    out["C"] = per_token * out[tokens_col].to_numpy(dtype=float)
    return out


def exponents_by_convention(df: pd.DataFrame, conventions=None, group: str = "budget", target: str = "loss_en",
                            tokens_col: str = "D", shape_of: Callable | None = None, n_boot: int = 200,
                            seed: int = 0, level: float = 0.95, resample: str = "residuals",
                            replicates_inside: bool = True) -> pd.DataFrame:
    """Approach 2 refitted with ``N`` and ``C`` recounted under each FLOP convention.

    The same runs and groups each time; only the counting changes
    (:func:`convention_columns`), so the spread of the exponents shows how
    much the convention alone moves them (Porian et al. 2024, Sec. 3.1).
    ``n_boot``, ``seed``, ``level``, ``resample`` and ``replicates_inside`` go to
    :func:`isoflop_optima`.

    Returns
    -------
    pandas.DataFrame
        One row per convention: ``convention``, ``a``, ``a_lo``, ``a_hi``,
        ``b``, ``b_lo``, ``b_hi``, ``n_groups``.

    Examples
    --------
    >>> rows = [dict(budget=C, d_model=d, n_layers=2, n_heads=2, vocab_size=1024, seq_len=128)
    ...         for C in (1e12, 1e13, 1e14) for d in (16, 32, 64, 128, 256)]
    >>> df = convention_columns(pd.DataFrame(rows).assign(D=1.0), "6ND")
    >>> df["D"] = df["budget"] / (6 * df["N_eff"])
    >>> df["loss_en"] = 3 + 0.05 * np.log(df["N_eff"] / np.sqrt(df["budget"] / 120)) ** 2
    >>> t = exponents_by_convention(df.drop(columns=["N_eff", "C"]), ["6ND", "6N_ne_D"], n_boot=0)
    >>> bool(t["a"][1] > t["a"][0])
    True
    """
    from scaling_lib import counting

    rows = []
    for conv in conventions or counting.FLOP_CONVENTIONS:
        recount = convention_columns(df, conv, shape_of=shape_of, tokens_col=tokens_col)
        opt = isoflop_optima(recount, group=group, target=target, n_col="N_eff", flops_col="C",
                             n_boot=n_boot, seed=seed, level=level, resample=resample,
                             replicates_inside=replicates_inside)
        ex = optimum_exponents(opt)
        rows.append({"convention": conv,
                     "a": ex["a"].exponent, "a_lo": ex["a"].exponent_lo, "a_hi": ex["a"].exponent_hi,
                     "b": ex["b"].exponent, "b_lo": ex["b"].exponent_lo, "b_hi": ex["b"].exponent_hi,
                     "n_groups": int(len(opt.table))})
    return pd.DataFrame(rows)


# --- approach 3 -----------------------------------------------------------------------------


def chinchilla_optimum(params, C) -> dict:
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
    dict
        ``N``, ``D``, ``loss`` (arrays), ``a`` (``beta / (alpha + beta)``), ``b`` and ``G``.

    Examples
    --------
    >>> opt = chinchilla_optimum({"E": 1.7, "A": 406.4, "alpha": 0.34, "B": 410.7, "beta": 0.28}, 5.76e23)
    >>> round(opt["a"], 3), round(float(opt["N"][0]) / 1e9, 1)
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
    return {"N": N, "D": D, "loss": _laws.CHINCHILLA(p, N=N, D=D), "a": p["beta"] / s, "b": p["alpha"] / s, "G": G}


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
    """

    fit: object
    exponents: pd.DataFrame
    frontier: pd.DataFrame


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
    budgets : array_like
        Compute budgets at which to report ``N*`` and ``D*``.
    n_boot, seed, level
    inputs : mapping, optional
        ``{"N": column, "D": column}``, e.g. ``{"N": "N_eff"}`` after :func:`convention_columns`.
    """
    from scaling_lib import fit as _fit

    res = _fit.fit(_laws.CHINCHILLA, df, target=target, inputs=inputs, objective="huber_log", seed=seed,
                   n_boot=n_boot)
    if not res.success:
        raise ComputeOptimalError(f"approach3: the Chinchilla fit to {target!r} did not converge")
    budgets = np.atleast_1d(np.asarray(budgets, dtype=float))
    best = chinchilla_optimum(res.params, budgets)
    q = ((1 - level) / 2, (1 + level) / 2)
    ex = pd.DataFrame({"estimate": [best["a"], best["b"]], "lo": np.nan, "hi": np.nan}, index=["a", "b"])
    frontier = pd.DataFrame({"C": budgets, "N_opt": best["N"], "D_opt": best["D"], "loss_opt": best["loss"]})
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
                ex.loc[key, ["lo", "hi"]] = np.quantile([d[key] for d in draws], q)
            for key in ("N", "D"):
                stack = np.stack([d[key] for d in draws])
                frontier[f"{key}_lo"], frontier[f"{key}_hi"] = np.quantile(stack, q, axis=0)
    for key in ("N", "D"):
        if f"{key}_lo" not in frontier:
            frontier[f"{key}_lo"] = frontier[f"{key}_hi"] = np.nan
    frontier = frontier[["C", "N_opt", "N_lo", "N_hi", "D_opt", "D_lo", "D_hi", "loss_opt"]]
    return Approach3(fit=res, exponents=ex, frontier=frontier)


# --- learning rate ---------------------------------------------------------------------------


def optimal_lr(df: pd.DataFrame, group: str = "model", lr_col: str = "lr", target: str = "loss_en",
               n_col: str = "N") -> pd.DataFrame:
    """Loss-optimal learning rate per model size: parabola of the loss in ``ln lr``.

    Groups with fewer than three distinct learning rates, or whose losses
    have no minimum in ``ln lr``, get NaN and a ``note``.

    Returns
    -------
    pandas.DataFrame
        ``group``, ``N``, ``n_lrs``, ``lr_opt``, ``loss_opt``, ``inside``
        (optimum within the tried range), ``note``. Fit the trend with
        ``fit_power_trend(t["N"], t["lr_opt"])`` on the rows with ``inside``.

    Examples
    --------
    >>> lr = np.array([0.01, 0.02, 0.04] * 2)
    >>> N = np.repeat([1e5, 4e5], 3)
    >>> best = 0.06 * (N / 1e5) ** -0.5
    >>> t = optimal_lr(pd.DataFrame({"model": np.repeat(["a", "b"], 3), "N": N, "lr": lr,
    ...                              "loss_en": 3 + np.log(lr / best) ** 2}))
    >>> t["lr_opt"].round(4).tolist(), t["inside"].tolist()
    ([0.06, 0.03], [False, True])
    """
    _need(df, [group, lr_col, target, n_col], "optimal_lr")
    rows = []
    for g, sub in df.groupby(group, sort=False):
        n = sub[n_col].to_numpy(dtype=float)
        if np.ptp(n) > 0:
            raise ComputeOptimalError(f"optimal_lr: group {_label(g)!r} mixes model sizes {sorted(set(n))}")
        lr = sub[lr_col].to_numpy(dtype=float)
        y = sub[target].to_numpy(dtype=float)
        row = {"group": g, "N": float(n[0]), "n_lrs": int(np.unique(lr).size), "lr_opt": np.nan,
               "loss_opt": np.nan, "inside": False, "note": ""}
        try:
            if np.any(lr <= 0):
                raise ComputeOptimalError("non-positive learning rate")
            par = fit_parabola(np.log(lr), y)
            row.update(lr_opt=math.exp(par.x_opt), loss_opt=par.y_opt, inside=par.inside)
        except ComputeOptimalError as exc:
            row["note"] = str(exc)
        rows.append(row)
    return pd.DataFrame(rows)
