"""The two small fits behind every compute-optimal analysis: a parabola's vertex and a power trend.

:func:`fit_parabola` finds an optimum: the vertex of a least-squares parabola,
e.g. of the loss in ``ln N`` within one IsoFLOP group
(:func:`scaling_lib.isoflop_optima.isoflop_optima`) or in ``ln lr`` for one
model size (:func:`scaling_lib.lr_optimum.optimal_lr`).

:func:`fit_power_trend` says how optima move: ``y = coef x^exponent`` fitted
on logs, with a bootstrap or t interval, e.g. ``N* ~ C^a``.

:class:`ComputeOptimalError` is the error of the compute-optimal modules for
data or parameters from which no optimum can be found (a missing column is a
:class:`scaling_lib.runs.MissingColumnError` instead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


class ComputeOptimalError(ValueError):
    """Data or parameters from which no compute-optimal point can be found."""


def group_label(g) -> str:
    """A group key for messages: floats as ``%g``, other values as text.

    Examples
    --------
    >>> group_label(np.float64(3e12)), group_label(np.int64(4)), group_label("m1")
    ('3e+12', '4', 'm1')
    """
    if isinstance(g, (float, np.floating)):
        return f"{float(g):g}"
    return str(g.item() if isinstance(g, np.generic) else g)


@dataclass(frozen=True)
class Line:
    """A straight line ``y = intercept + slope x``.

    Attributes
    ----------
    slope, intercept : float

    Examples
    --------
    >>> Line(slope=2.0, intercept=1.0)(3.0)
    7.0
    """

    slope: float
    intercept: float

    def __call__(self, x):
        return self.intercept + self.slope * x


# --- parabolas -------------------------------------------------------------------------------


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

    Examples
    --------
    >>> p = Parabola((1.0, -2.0, 1.0), 1.0, 0.0, 0.0, 2.0, 3)
    >>> p.inside, float(p(3.0))
    (True, 4.0)
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

    Returns
    -------
    Parabola

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


# --- power trends ----------------------------------------------------------------------------


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

    Examples
    --------
    >>> t = PowerTrend(0.5, 2.0, 0.45, 0.55, 4, 0.95, "bootstrap", 200)
    >>> float(t(100.0)), str(t)
    (20.0, '0.500 [0.450, 0.550] (95% bootstrap interval, 4 points)')
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

    def __str__(self) -> str:
        if not (np.isfinite(self.exponent_lo) and np.isfinite(self.exponent_hi)):
            return f"{self.exponent:.3f} (no interval, {self.n_points} points)"
        return (f"{self.exponent:.3f} [{self.exponent_lo:.3f}, {self.exponent_hi:.3f}] "
                f"({self.level:.0%} {self.method} interval, {self.n_points} points)")

    def summary(self) -> dict:
        """JSON-able dict of the fields."""
        return {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in vars(self).items()}


def _loglog(x: np.ndarray, y: np.ndarray) -> Line:
    slope, icpt = np.polyfit(np.log(x), np.log(y), 1)
    return Line(float(slope), float(icpt))


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

    Returns
    -------
    PowerTrend

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
    line = _loglog(x, y)
    slope, icpt = line.slope, line.intercept
    if replicates is not None:
        slopes = []
        for xb, yb in replicates:
            xb, yb = np.asarray(xb, dtype=float), np.asarray(yb, dtype=float)
            ok = np.isfinite(xb) & np.isfinite(yb) & (xb > 0) & (yb > 0)
            if ok.sum() < x.size or np.unique(xb).size < 2:
                continue
            slopes.append(_loglog(xb, yb).slope)
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
