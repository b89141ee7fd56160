"""Chinchilla approach 2: IsoFLOP parabolas, their optima and the exponents ``a`` and ``b``.

Within each IsoFLOP group (runs of one compute budget ``C``), a parabola of the
loss in ``ln N`` has its vertex at the loss-optimal model size ``N*``, and
``D* = C / (6 N*)`` (Hoffmann et al. 2022, Sec. 3.2): :func:`isoflop_optima`,
with intervals from a bootstrap within each group. Straight lines through
``(ln C, ln N*)`` and ``(ln C, ln D*)`` give the exponents of ``N* ~ C^a`` and
``D* ~ C^b``: :func:`optimum_exponents`, with intervals refitted on every
bootstrap replicate of the optima.

The same analysis under other FLOP conventions is in
:mod:`scaling_lib.flop_conventions`; IsoFLOP groups read off training curves in
:func:`scaling_lib.curves.curves_at_budgets`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scaling_lib.optimum_fits import ComputeOptimalError, Line, PowerTrend, fit_parabola, fit_power_trend, group_label
from scaling_lib.runs import require_columns


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
        ``group -> scaling_lib.optimum_fits.Parabola`` in ``ln N``.
    level : float

    Examples
    --------
    See :func:`isoflop_optima`.
    """

    table: pd.DataFrame
    boot: pd.DataFrame
    parabolas: dict = field(repr=False)
    level: float = 0.95


@dataclass(frozen=True, eq=False)
class _Group:
    """One IsoFLOP group's data and fit, kept for its bootstrap replicates."""

    x: np.ndarray          # ln N
    y: np.ndarray          # loss
    log_c: np.ndarray      # ln C
    line: Line             # ln C against ln N
    fitted: np.ndarray     # the parabola at x
    residuals: np.ndarray  # y - fitted, inflated for the three fitted coefficients


def _log_c_line(x: np.ndarray, log_c: np.ndarray) -> Line:
    """``ln C`` as a straight line in ``x = ln N`` (flat for an iso-FLOP group)."""
    if np.ptp(log_c) > 0:
        slope, icpt = np.polyfit(x, log_c, 1)
        return Line(float(slope), float(icpt))
    return Line(0.0, float(log_c[0]))


def isoflop_optima(
    df: pd.DataFrame,
    *,
    target: str,
    group: str = "budget",
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
    target : str
        Loss column to minimise (required, keyword only).
    group : str
        Column identifying the IsoFLOP group (e.g. the nominal budget).
    n_col, flops_col : str
        Parameter count and compute columns under one convention (``N`` and
        ``flops`` for ``6ND``; see
        :func:`scaling_lib.flop_conventions.convention_columns`).
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
    scaling_lib.runs.MissingColumnError
        A column named above is missing.
    ComputeOptimalError
        A group with fewer than three distinct sizes, missing or non-positive
        values, or losses without a minimum in ``ln N``.

    Examples
    --------
    >>> N = np.repeat(np.logspace(4, 6, 7)[None], 2, 0).ravel()
    >>> C = np.repeat([1e12, 1e13], 7)
    >>> L = 3 + 0.1 * (np.log(N) - np.log(np.sqrt(C / 120))) ** 2
    >>> runs = pd.DataFrame({"budget": C, "N": N, "flops": C, "loss": L})
    >>> res = isoflop_optima(runs, target="loss", n_boot=0)
    >>> (res.table["D_opt"] / res.table["N_opt"]).round(3).tolist()
    [20.0, 20.0]
    """
    require_columns(df, [group, target, n_col, flops_col], "run table")
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
                f"isoflop_optima: group {group_label(g)} has missing or non-positive {n_col}/{flops_col}/{target} "
                f"for run(s) {[ids[i] for i in np.flatnonzero(bad)][:5]}")
        x, lc = np.log(n), np.log(c)
        try:
            line = _log_c_line(x, lc)
            par = fit_parabola(x, y)
        except ComputeOptimalError as exc:
            raise ComputeOptimalError(f"isoflop_optima: group {group_label(g)}: {exc}") from None
        lc_opt = line(par.x_opt)
        parabolas[g] = par
        fitted = par(x)
        scale = math.sqrt(x.size / (x.size - 3)) if x.size > 3 else 0.0
        data[g] = _Group(x=x, y=y, log_c=lc, line=line, fitted=fitted, residuals=scale * (y - fitted))
        rows.append({"group": g, "C": math.exp(lc_opt), "n_runs": int(x.size),
                     "N_opt": math.exp(par.x_opt), "D_opt": math.exp(lc_opt - par.x_opt) / 6.0,
                     "loss_opt": par.y_opt, "inside": par.inside})
    for b in range(int(n_boot)):
        for g in groups:
            d = data[g]
            idx = rng.integers(0, d.x.size, d.x.size)
            try:
                if resample == "runs":  # the sizes change, and so does the line of ln C
                    xb, yb = d.x[idx], d.y[idx]
                    line_b = _log_c_line(xb, d.log_c[idx])
                else:  # fixed design: the sizes and the line of ln C stay
                    xb, yb, line_b = d.x, d.fitted + d.residuals[idx], d.line
                par = fit_parabola(xb, yb)
                lc_opt = line_b(par.x_opt)
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
class OptimumExponents:
    """The exponents ``a`` of ``N* ~ C^a`` and ``b`` of ``D* ~ C^b``, each a fitted trend.

    Attributes
    ----------
    a, b : scaling_lib.optimum_fits.PowerTrend
        ``N*`` and ``D*`` against ``C``; ``a.coef * C ** a.exponent`` is the
        fitted ``N*``.

    Examples
    --------
    >>> t = PowerTrend(0.5, 0.09, 0.45, 0.55, 4, 0.95, "bootstrap", 200)
    >>> ex = OptimumExponents(a=t, b=t)
    >>> print(ex)
    a = 0.500 [0.450, 0.550] (95% bootstrap interval, 4 points)
    b = 0.500 [0.450, 0.550] (95% bootstrap interval, 4 points)
    >>> ex.to_frame()[["estimate", "lo", "hi"]]
       estimate    lo    hi
    a       0.5  0.45  0.55
    b       0.5  0.45  0.55
    """

    a: PowerTrend
    b: PowerTrend

    def __str__(self) -> str:
        return f"a = {self.a}\nb = {self.b}"

    def to_frame(self) -> pd.DataFrame:
        """Index ``a``, ``b``; columns ``estimate``, ``lo``, ``hi``, ``coef``, ``method``, ``n_points``."""
        return pd.DataFrame(
            {"estimate": [t.exponent for t in (self.a, self.b)], "lo": [t.exponent_lo for t in (self.a, self.b)],
             "hi": [t.exponent_hi for t in (self.a, self.b)], "coef": [t.coef for t in (self.a, self.b)],
             "method": [t.method for t in (self.a, self.b)], "n_points": [t.n_points for t in (self.a, self.b)]},
            index=["a", "b"])


def optimum_exponents(optima: IsoFLOPOptima) -> OptimumExponents:
    """Exponents ``a`` (``N* ~ C^a``) and ``b`` (``D* ~ C^b``) of IsoFLOP optima.

    Intervals come from the joint bootstrap of :func:`isoflop_optima` (each
    replicate refits both trends on its optima of every group; a replicate
    with a group without a minimum is skipped), or the t interval of the
    regression if no replicates were run.

    Parameters
    ----------
    optima : IsoFLOPOptima

    Returns
    -------
    OptimumExponents

    Examples
    --------
    >>> C = np.repeat([1e12, 1e13, 1e14], 5)
    >>> N = np.sqrt(C / 120) * np.tile(np.logspace(-0.5, 0.5, 5), 3)
    >>> L = 3 + 0.1 * np.log(N / np.sqrt(C / 120)) ** 2
    >>> runs = pd.DataFrame({"budget": C, "N": N, "flops": C, "loss": L})
    >>> ex = optimum_exponents(isoflop_optima(runs, target="loss", n_boot=20))
    >>> round(ex.a.exponent, 4), round(ex.b.exponent, 4), ex.a.method
    (0.5, 0.5, 'bootstrap')
    """
    t = optima.table
    reps = {"N": [], "D": []}
    if len(optima.boot):
        for _, rep in optima.boot.groupby("replicate"):
            for col in reps:
                reps[col].append((rep["C"].to_numpy(), rep[f"{col}_opt"].to_numpy()))
    return OptimumExponents(
        a=fit_power_trend(t["C"], t["N_opt"], reps["N"] or None, optima.level),
        b=fit_power_trend(t["C"], t["D_opt"], reps["D"] or None, optima.level),
    )
