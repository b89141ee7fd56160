"""Fitting scaling laws to run tables: multi-start, bootstrap, reports.

Two objectives:

``"lsq"``
    Plain least squares on the target (on its logarithm for laws whose
    ``fit_space`` is ``"log"``, such as :data:`~scaling_lib.laws.POWER`).
    This is the protocol of Gadre et al. (2024), whose code (the public
    ``mlfoundations/scaling`` repository, ``scaling/laws.py``) fits eq. (4)
    with ``scipy.optimize.curve_fit`` (unbounded Levenberg-Marquardt) on raw
    losses from a grid of 128 initial points and keeps the fit with the
    smallest residual; it fits the error law eq. (5) the same way, from
    curve_fit's default start. Here the fit is bounded (``E, a, b >= 0``).
``"huber_log"``
    Hoffmann et al. (2022) approach 3: minimise the Huber loss
    (``delta = 1e-3``) of ``log(prediction) - log(target)``. It down-weights
    outliers and treats errors as relative rather than absolute.

Every law here is linear in some parameters once its exponents are fixed
(``Law.linear_params``, ``Law.basis``). For ``"lsq"`` in a linear fit space
the default method is therefore variable projection: scan the law's start
grid of exponents with the linear parameters solved exactly (bounded linear
least squares), then minimise this profiled objective from the best grid
points (a bounded Brent search for one exponent, trust-region least squares
for several). A grid of a few exponents so replaces the paper's 128 blind
starts. Other cases run bounded trust-region least squares
(``scipy.optimize.least_squares``) on all parameters from every grid point,
each start profiled first; ``"huber_log"`` does a smooth log-space
least-squares stage and then minimises Huber losses with a threshold
shrinking to ``delta``. A start that raises or fails to converge is
recorded and counted, never fatal.

Uncertainty comes from a bootstrap over runs: resample the rows with
replacement, refit from the full-data optimum (one warm start), and take
quantiles of parameters (:meth:`FitResult.ci`) or predictions
(:meth:`FitResult.predict`).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, least_squares, lsq_linear, minimize_scalar

from scaling_lib.laws import Law

OBJECTIVES = ("lsq", "huber_log")
"""Objectives accepted by :func:`fit`."""

DEFAULT_N_BOOT = 200
"""Bootstrap replicates run on demand when an interval is asked for and none were run."""

_TINY = 1e-300


class FitInputError(ValueError):
    """Data that cannot be fitted: a missing column, NaN or non-positive values, too few runs."""


# --- data preparation ------------------------------------------------------------------------


def _run_labels(data, run_id_column: str) -> np.ndarray:
    if isinstance(data, pd.DataFrame) and run_id_column in data.columns:
        return data[run_id_column].astype(str).to_numpy()
    if isinstance(data, pd.DataFrame):
        return np.array([f"row {i}" for i in data.index])
    n = len(next(iter(data.values()))) if len(data) else 0
    return np.array([f"row {i}" for i in range(n)])


def _column(data, column: str, role: str) -> np.ndarray:
    columns = list(data.columns) if isinstance(data, pd.DataFrame) else list(data)
    if column not in columns:
        raise FitInputError(f"column {column!r} ({role}) is not in the data; available columns: {columns}")
    try:
        return np.asarray(data[column], dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise FitInputError(f"column {column!r} ({role}) is not numeric: {exc}") from None


def _check_values(values: np.ndarray, column: str, labels: np.ndarray, positive: bool) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise FitInputError(
            f"column {column!r} has NaN or infinite values for run(s) {list(labels[bad][:5])}"
        )
    if positive:
        bad = values <= 0
        if bad.any():
            raise FitInputError(
                f"column {column!r} must be positive; non-positive values for run(s) {list(labels[bad][:5])}"
            )


def _prepare(law: Law, data, target: str, inputs: Mapping | None, objective: str, run_id_column: str):
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {OBJECTIVES}")
    mapping = {name: name for name in law.inputs}
    for key, column in (inputs or {}).items():
        if key not in mapping:
            raise FitInputError(f"law {law.name} has no input {key!r}; its inputs are {law.inputs}")
        mapping[key] = column
    labels = _run_labels(data, run_id_column)
    x = {}
    for name, column in mapping.items():
        values = _column(data, column, f"input {name!r} of law {law.name}")
        _check_values(values, column, labels, positive=True)
        x[name] = values
    y = _column(data, target, "fit target")
    positive_target = objective == "huber_log" or law.fit_space == "log"
    _check_values(y, target, labels, positive=positive_target)
    n, k = y.size, law.n_params
    if n < k:
        raise FitInputError(
            f"fewer data points ({n}) than parameters ({k}: {', '.join(law.param_names)}) for law {law.name}"
        )
    return mapping, x, y, labels


# --- bounded linear least squares ----------------------------------------------------------------


def bounded_lstsq(X: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``argmin ||X b - y||`` subject to ``lo <= b <= hi``.

    The unconstrained solution when it is feasible; otherwise, for up to four
    coefficients, the best feasible solution over every choice of
    coefficients held at a bound (the problem is convex, so its optimum is
    one of them); for more, ``scipy.optimize.lsq_linear``.

    Examples
    --------
    >>> X = np.column_stack([np.ones(4), np.arange(4.0)])
    >>> bounded_lstsq(X, np.array([3.0, 2.0, 1.0, 0.0]), np.array([0.0, 0.0]), np.array([np.inf, np.inf]))
    array([1.5, 0. ])
    """
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    if np.all(beta >= lo) and np.all(beta <= hi):
        return beta
    k = X.shape[1]
    if k > 4:
        return lsq_linear(X, y, bounds=(lo, hi)).x
    best, best_rss = None, math.inf
    choices = [[None] + [v for v in (lo[j], hi[j]) if np.isfinite(v)] for j in range(k)]
    for fixed in itertools.product(*choices):
        free = [j for j in range(k) if fixed[j] is None]
        b = np.array([0.0 if v is None else v for v in fixed])
        if free:
            rhs = y - X @ b
            b[free] = np.linalg.lstsq(X[:, free], rhs, rcond=None)[0]
        if np.any(b < lo - 1e-12 * np.abs(lo)) or np.any(b > hi + 1e-12 * np.abs(hi)):
            continue
        r = X @ b - y
        rss = float(r @ r)
        if rss < best_rss:
            best, best_rss = np.clip(b, lo, hi), rss
    return best if best is not None else np.clip(beta, lo, hi)


# --- objective and single fits -----------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    law: Law
    x: dict
    y: np.ndarray
    objective: str
    delta: float

    @property
    def log_residuals(self) -> bool:
        return self.objective == "huber_log" or self.law.fit_space == "log"

    def residuals(self, p: np.ndarray) -> np.ndarray:
        pred = self.law.function(p, self.x)
        if self.log_residuals:
            return np.log(np.maximum(pred, _TINY)) - np.log(self.y)
        return pred - self.y

    def value(self, p: np.ndarray) -> float:
        """The objective minimised: RSS for lsq, summed Huber loss for huber_log."""
        r = self.residuals(p)
        if self.objective == "lsq":
            return float(np.sum(r * r))
        a = np.abs(r)
        return float(np.sum(np.where(a <= self.delta, 0.5 * r * r, self.delta * (a - 0.5 * self.delta))))

    # -- variable projection: the linear parameters solved for given exponents
    @property
    def linear_index(self) -> list:
        return [self.law.param_names.index(n) for n in self.law.linear_params]

    @property
    def nonlinear_index(self) -> list:
        lin = set(self.linear_index)
        return [i for i in range(self.law.n_params) if i not in lin]

    def profile(self, theta: np.ndarray, template: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Full parameters with the nonlinear ones at ``theta`` and the linear ones optimal."""
        p = template.copy()
        p[self.nonlinear_index] = theta
        lin = self.linear_index
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            X = self.law.basis(p, self.x)
        if not np.all(np.isfinite(X)):
            p[lin] = np.nan
            return p
        p[lin] = bounded_lstsq(X, self.y, lo[lin], hi[lin])
        return p

    def profile_value(self, theta, template, lo, hi) -> float:
        """Profiled objective; ``inf`` where the law cannot be evaluated."""
        try:
            value = self.value(self.profile(np.atleast_1d(theta), template, lo, hi))
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            return math.inf
        return value if np.isfinite(value) else math.inf

    def refine_profile(self, theta0: np.ndarray, bracket, template, lo, hi):
        """Minimise the profiled objective over the nonlinear parameters.

        One nonlinear parameter: bounded Brent search inside ``bracket``.
        Several: bounded trust-region least squares on the profiled residuals.
        Returns ``(params, objective, success, nfev, message)``.
        """
        nl = self.nonlinear_index
        if len(nl) == 1:
            a, b = bracket
            with np.errstate(invalid="ignore", over="ignore"):
                sol = minimize_scalar(
                    self.profile_value, bounds=(a, b), method="bounded",
                    args=(template, lo, hi), options={"xatol": 1e-9 * max(1.0, abs(theta0[0]))},
                )
            p = self.profile(np.atleast_1d(sol.x), template, lo, hi)
            return p, self.value(p), bool(sol.success), int(sol.nfev), str(sol.message)

        def resid(theta):
            p = self.profile(theta, template, lo, hi)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                r = self.residuals(p)
            return np.where(np.isfinite(r), r, 1e10)

        with np.errstate(over="ignore", invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            sol = least_squares(resid, _inside(theta0, lo[nl], hi[nl]), bounds=(lo[nl], hi[nl]), method="trf")
        p = self.profile(sol.x, template, lo, hi)
        return p, self.value(p), bool(sol.success), int(sol.nfev), str(sol.message)

    def subset(self, idx: np.ndarray) -> _Problem:
        return _Problem(self.law, {k: v[idx] for k, v in self.x.items()}, self.y[idx], self.objective, self.delta)

    def solve(self, p0: np.ndarray, lo: np.ndarray, hi: np.ndarray, max_nfev: int | None,
              smooth_first: bool = True, memo: dict | None = None):
        """Bounded trust-region least squares from ``p0``.

        For ``huber_log`` a smooth stage (plain least squares on the log
        residuals) runs first and the Huber loss is minimised from its result:
        started far away, where every residual exceeds ``delta``, the Huber
        objective is close to an L1 loss and the solver stalls.
        ``smooth_first=False`` skips the smooth stage (for a warm start at a
        Huber optimum). ``memo`` shares the Huber stage between starts whose
        smooth stages ended at the same point.
        """
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            nfev = 0
            if smooth_first or self.objective != "huber_log":
                sol = least_squares(self.residuals, p0, bounds=(lo, hi), method="trf", x_scale="jac",
                                    max_nfev=max_nfev)
                if self.objective != "huber_log":
                    return sol
                nfev, x = sol.nfev, sol.x
            else:
                x = p0
            key = tuple(f"{v:.7g}" for v in x)
            if memo is not None and key in memo:
                return memo[key]
            for scale in _huber_schedule(np.abs(self.residuals(x)), self.delta):
                sol = least_squares(
                    self.residuals, _inside(x, lo, hi), bounds=(lo, hi), method="trf", x_scale="jac",
                    max_nfev=max_nfev, loss="huber", f_scale=scale,
                )
                nfev += sol.nfev
                x = sol.x
            sol.nfev = nfev
            if memo is not None:
                memo[key] = sol
            return sol


def _huber_schedule(abs_residuals: np.ndarray, delta: float) -> list:
    """Huber thresholds from the largest residual down to ``delta``, a factor ~3 apart.

    Minimising a sequence of Huber losses with a shrinking threshold keeps the
    solver in the region where most residuals are quadratic, so it moves
    towards the robust optimum instead of stalling on an L1-like surface.
    """
    top = float(np.max(abs_residuals)) if abs_residuals.size else delta
    if not np.isfinite(top) or top <= delta:
        return [delta]
    steps = int(np.ceil(np.log(top / delta) / np.log(3.0)))
    return list(np.geomspace(top, delta, steps + 1)[1:])


def _inside(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Clip into the open box so the trust-region solver accepts the start."""
    span = np.where(np.isfinite(hi - lo), hi - lo, np.maximum(np.abs(p), 1.0))
    return np.clip(p, lo + 1e-9 * span, hi - 1e-9 * span)


# --- result ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class FitResult:
    """A fitted law with its data, every start and a bootstrap over runs.

    Attributes
    ----------
    law : Law
    target : str
        Column fitted.
    inputs : dict
        ``{law_input: column}`` used.
    objective : str
    params : dict
        Best parameters.
    n_data, n_params, dof : int
        Runs, parameters and degrees of freedom ``n_data - n_params``.
    residuals : numpy.ndarray
        ``target - prediction`` per run, in the target's own units.
    run_ids : numpy.ndarray
    starts : pandas.DataFrame
        One row per start: ``start_<p>``, ``final_<p>``, ``objective``,
        ``success``, ``refined``, ``nfev``, ``message``. With the
        ``"profile"`` method a start that is not refined keeps its profiled
        parameters as ``final_<p>``.
    method : str
        ``"profile"`` or ``"full"`` (see :func:`fit`).
    success : bool
        At least one start converged.
    seed : int
        Seed of the bootstrap.
    """

    law: Law
    target: str
    inputs: dict
    objective: str
    params: dict
    n_data: int
    n_params: int
    dof: int
    residuals: np.ndarray
    run_ids: np.ndarray
    starts: pd.DataFrame
    success: bool
    seed: int
    delta: float
    method: str
    _problem: _Problem = field(repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items())
        return (f"FitResult({self.law.name}, target={self.target!r}, objective={self.objective!r}, "
                f"n={self.n_data}, k={self.n_params}, params=({params}), success={self.success})")

    # -- summaries of the fit itself
    @property
    def n_starts(self) -> int:
        """Starts tried."""
        return len(self.starts)

    @property
    def n_failed_starts(self) -> int:
        """Starts that raised or did not converge."""
        return int((~self.starts["success"].astype(bool)).sum())

    @property
    def objective_value(self) -> float:
        """Minimised objective at the best parameters."""
        return self._problem.value(self.law.param_array(self.params))

    @property
    def rss(self) -> float:
        """Residual sum of squares of the target (its own units)."""
        return float(np.sum(self.residuals**2))

    @property
    def rmse(self) -> float:
        """Root mean squared residual."""
        return math.sqrt(self.rss / self.n_data)

    # -- bootstrap
    def bootstrap(self, n_boot: int | None = None) -> pd.DataFrame:
        """Bootstrap refits over runs (cached per ``n_boot``).

        Each replicate resamples the runs with replacement (seeded by
        ``seed``) and refits from the full-data optimum with one start. A
        replicate with fewer distinct runs than parameters cannot identify
        the law; it is recorded as unsuccessful and left out of intervals.

        Returns
        -------
        pandas.DataFrame
            One row per replicate: a column per parameter, ``success`` and
            ``n_unique`` (distinct runs drawn).
        """
        n_boot = DEFAULT_N_BOOT if n_boot is None else int(n_boot)
        if n_boot <= 0:
            raise ValueError("bootstrap needs n_boot >= 1")
        if n_boot in self._cache:
            return self._cache[n_boot]
        lo, hi = (np.array(b, dtype=float) for b in zip(*self.law.bounds))
        p_best = _inside(self.law.param_array(self.params), lo, hi)
        rng = np.random.default_rng(self.seed)
        rows = []
        for _ in range(n_boot):
            idx = rng.integers(0, self.n_data, self.n_data)
            n_unique = int(np.unique(idx).size)
            if n_unique < self.n_params:
                # fewer distinct runs than parameters: the law is not identified
                rows.append({**dict.fromkeys(self.law.param_names, np.nan), "success": False, "n_unique": n_unique})
                continue
            try:
                sub = self._problem.subset(idx)
                if self.method == "profile":
                    theta = p_best[sub.nonlinear_index]
                    values, _, ok, _, _ = sub.refine_profile(theta, _wide_bracket(theta, lo, hi, sub), p_best, lo, hi)
                else:
                    sol = sub.solve(p_best, lo, hi, max_nfev=None, smooth_first=False)
                    ok, values = bool(sol.success), sol.x
                ok = bool(ok and np.all(np.isfinite(values)))
            except (ValueError, FloatingPointError, np.linalg.LinAlgError):
                ok, values = False, np.full(self.n_params, np.nan)
            rows.append({**dict(zip(self.law.param_names, values)), "success": ok, "n_unique": n_unique})
        table = pd.DataFrame(rows)
        self._cache[n_boot] = table
        return table

    def _boot_ok(self, n_boot: int | None) -> pd.DataFrame:
        if n_boot is None:
            done = sorted(self._cache)
            n_boot = done[-1] if done else None
        table = self.bootstrap(n_boot)
        good = table[table["success"]]
        if len(good) < 2:
            raise RuntimeError(f"bootstrap of law {self.law.name}: fewer than 2 of {len(table)} refits succeeded")
        return good

    def ci(self, level: float = 0.95, n_boot: int | None = None) -> pd.DataFrame:
        """Percentile bootstrap intervals of the parameters.

        Returns
        -------
        pandas.DataFrame
            Index: parameter names; columns ``estimate``, ``lo``, ``hi``, ``std``.
        """
        _check_level(level)
        good = self._boot_ok(n_boot)
        q = [(1 - level) / 2, (1 + level) / 2]
        out = pd.DataFrame(index=pd.Index(self.law.param_names, name="param"))
        out["estimate"] = [self.params[p] for p in self.law.param_names]
        out["lo"] = [float(np.quantile(good[p], q[0])) for p in self.law.param_names]
        out["hi"] = [float(np.quantile(good[p], q[1])) for p in self.law.param_names]
        out["std"] = [float(np.std(good[p], ddof=1)) for p in self.law.param_names]
        return out

    # -- prediction
    def predict(self, data, interval: float | None = 0.95, n_boot: int | None = None) -> pd.DataFrame:
        """Predictions with a bootstrap interval.

        Parameters
        ----------
        data : pandas.DataFrame or mapping of arrays
            Holds the input columns used in the fit (``self.inputs``).
        interval : float or None
            Central probability of the interval from the bootstrap refits'
            predictions; ``None`` gives ``lo`` and ``hi`` as NaN.
        n_boot : int, optional
            Replicates; by default the largest bootstrap already run, or
            :data:`DEFAULT_N_BOOT` run now (deterministic given ``seed``).

        Returns
        -------
        pandas.DataFrame
            Columns ``pred``, ``lo``, ``hi`` (index of ``data`` when it is a DataFrame).
        """
        x = {}
        for name, column in self.inputs.items():
            values = _column(data, column, f"input {name!r} of law {self.law.name}")
            x[name] = values
        pred = self.law.function(self.law.param_array(self.params), x)
        lo = hi = np.full(pred.shape, np.nan)
        if interval is not None:
            _check_level(interval)
            good = self._boot_ok(n_boot)
            with np.errstate(over="ignore", invalid="ignore"):
                draws = np.stack([self.law.function(row, x) for row in good[list(self.law.param_names)].to_numpy()])
            lo = np.nanquantile(draws, (1 - interval) / 2, axis=0)
            hi = np.nanquantile(draws, (1 + interval) / 2, axis=0)
        index = data.index if isinstance(data, pd.DataFrame) else None
        return pd.DataFrame({"pred": pred, "lo": lo, "hi": hi}, index=index)

    # -- reporting
    def summary(self) -> dict:
        """A JSON-able summary: law, data, objective, parameters, starts and any bootstrap CIs."""
        out = {
            "law": self.law.name,
            "formula": self.law.latex(),
            "target": self.target,
            "inputs": dict(self.inputs),
            "objective": self.objective,
            "delta": self.delta if self.objective == "huber_log" else None,
            "params": {k: float(v) for k, v in self.params.items()},
            "n_data": int(self.n_data),
            "n_params": int(self.n_params),
            "dof": int(self.dof),
            "objective_value": float(self.objective_value),
            "rss": self.rss,
            "rmse": self.rmse,
            "n_starts": int(self.n_starts),
            "n_failed_starts": int(self.n_failed_starts),
            "success": bool(self.success),
            "seed": int(self.seed),
            "run_ids": [str(r) for r in self.run_ids],
        }
        if self._cache:
            n_boot = max(self._cache)
            table = self.ci(0.95, n_boot=n_boot)
            out["bootstrap"] = {
                "n_boot": int(n_boot),
                "n_failed": int((~self._cache[n_boot]["success"]).sum()),
                "ci95": {p: [float(table.loc[p, "lo"]), float(table.loc[p, "hi"])] for p in table.index},
            }
        return out

    def report(self) -> str:
        """A plain-text report of the fit."""
        lines = [
            f"law        {self.law.name}: {self.law.description}",
            f"target     {self.target}  inputs {self.inputs}",
            f"objective  {self.objective}" + (f" (delta={self.delta:g})" if self.objective == "huber_log" else ""),
            f"data       n={self.n_data}  k={self.n_params}  dof={self.dof}",
            f"starts     {self.n_starts} tried, {self.n_failed_starts} failed; success={self.success}",
            f"fit        objective={self.objective_value:.6g}  RSS={self.rss:.6g}  RMSE={self.rmse:.6g}",
        ]
        table = self.ci(0.95, n_boot=max(self._cache)) if self._cache else None
        for name in self.law.param_names:
            text = f"  {name:<8s} {self.params[name]:.6g}"
            if table is not None:
                text += f"   95% CI [{table.loc[name, 'lo']:.6g}, {table.loc[name, 'hi']:.6g}]"
            lines.append(text)
        if table is None:
            lines.append("  (no bootstrap run: call ci() or predict() with an interval)")
        else:
            boot = self._cache[max(self._cache)]
            lines.append(f"  bootstrap over runs: {len(boot)} replicates, {int((~boot['success']).sum())} unusable "
                         "(not converged or fewer distinct runs than parameters)")
        if self.dof <= 0:
            lines.append("  warning: no residual degrees of freedom; the fit interpolates the data")
        return "\n".join(lines)


def _check_level(level: float) -> None:
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"interval level must lie in (0, 1), got {level!r}")


# --- the fit -------------------------------------------------------------------------------------


def _choose_method(law: Law, objective: str, method: str) -> str:
    exact = objective == "lsq" and law.fit_space == "linear" and law.basis is not None and bool(law.linear_params)
    if method == "auto":
        return "profile" if exact else "full"
    if method == "profile" and not exact:
        raise ValueError(
            f"method='profile' needs objective='lsq', a linear fit space and a linear basis; "
            f"law {law.name} with objective {objective!r} does not qualify (use 'full' or 'auto')"
        )
    if method not in ("profile", "full"):
        raise ValueError(f"unknown method {method!r}; choose 'auto', 'profile' or 'full'")
    return method


def _template(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Placeholder values inside the bounds for parameters a start does not give."""
    return np.array([0.5 * (l + h) if np.isfinite(l + h) else max(l, 0.0) + 1.0 for l, h in zip(lo, hi)])


def _wide_bracket(theta: np.ndarray, lo: np.ndarray, hi: np.ndarray, problem: _Problem):
    """Search interval for a warm-started one-parameter refit: the value +- 3 times its size."""
    i = problem.nonlinear_index[0]
    t = float(theta[0])
    width = 3.0 * max(abs(t), 1e-3)
    return max(lo[i], t - width), min(hi[i], t + width)


def _row(law: Law, start: np.ndarray, final: np.ndarray, value: float, ok: bool, refined: bool, nfev: int, msg: str):
    row = {f"start_{n}": v for n, v in zip(law.param_names, start)}
    row.update({f"final_{n}": v for n, v in zip(law.param_names, final)})
    row.update({"objective": value, "success": ok, "refined": refined, "nfev": nfev, "message": msg})
    return row


def _fit_profile(problem: _Problem, grid: list, lo: np.ndarray, hi: np.ndarray, n_refine: int) -> list:
    law = problem.law
    nl = problem.nonlinear_index
    template = _template(lo, hi)
    thetas, profiled, values, errors = [], [], [], []
    for point in grid:
        theta = np.array([float(point.get(law.param_names[i], template[i])) for i in nl])
        theta = np.clip(theta, lo[nl], hi[nl])
        error = ""
        try:
            p = problem.profile(theta, template, lo, hi)
            value = problem.value(p) if np.all(np.isfinite(p)) else math.nan
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
            p, value, error = template.copy(), math.nan, f"error: {exc}"
            p[nl] = theta
            p[problem.linear_index] = np.nan
        thetas.append(theta)
        profiled.append(p)
        values.append(value if np.isfinite(value) else math.nan)
        errors.append(error or ("profiled" if np.isfinite(value) else "profile not finite"))
    values = np.array(values)
    finite = np.isfinite(values)

    # candidates to refine, each with its search interval (one nonlinear parameter) or none
    candidates = []
    if len(nl) == 1:
        order = np.argsort([t[0] for t in thetas], kind="stable")
        t_sorted = np.array([thetas[i][0] for i in order])
        v_sorted = np.where(finite[order], values[order], np.inf)
        for j, i in enumerate(order):
            if not np.isfinite(v_sorted[j]):
                continue
            left = v_sorted[j - 1] if j > 0 else np.inf
            right = v_sorted[j + 1] if j + 1 < len(order) else np.inf
            if v_sorted[j] <= left and v_sorted[j] <= right:
                a = t_sorted[j - 1] if j > 0 else lo[nl[0]]
                b = t_sorted[j + 1] if j + 1 < len(order) else hi[nl[0]]
                candidates.append((int(i), (float(a), float(b))))
    else:
        candidates = [(int(i), None) for i in np.argsort(np.where(finite, values, np.inf), kind="stable") if finite[i]]
    candidates = sorted(candidates, key=lambda c: values[c[0]])[: max(int(n_refine), 1)]

    rows = [
        _row(law, profiled[i], profiled[i], values[i], bool(finite[i]), False, 1, errors[i])
        for i in range(len(grid))
    ]
    for i, bracket in candidates:
        try:
            p, value, ok, nfev, msg = problem.refine_profile(thetas[i], bracket, profiled[i], lo, hi)
            ok = bool(ok and np.isfinite(value) and np.all(np.isfinite(p)))
            rows[i] = _row(law, profiled[i], p, value, ok, True, nfev + 1, msg)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
            rows[i] = _row(law, profiled[i], np.full(law.n_params, np.nan), math.nan, False, True, 0, f"error: {exc}")
    return rows


def _fit_full(problem: _Problem, grid: list, lo: np.ndarray, hi: np.ndarray, max_nfev: int | None) -> list:
    law = problem.law
    rows, memo = [], {}
    for point in grid:
        p0 = np.full(law.n_params, np.nan)
        try:
            if all(name in point for name in law.param_names):
                p0 = law.param_array(point)
            else:
                template = _template(lo, hi)
                theta = [float(point.get(law.param_names[i], template[i])) for i in problem.nonlinear_index]
                p0 = problem.profile(np.clip(theta, lo[problem.nonlinear_index], hi[problem.nonlinear_index]),
                                     template, lo, hi)
            p0 = _inside(p0, lo, hi)
            sol = problem.solve(p0, lo, hi, max_nfev, memo=memo)
            value = problem.value(sol.x)
            ok = bool(sol.success and np.isfinite(value))
            rows.append(_row(law, p0, sol.x, value, ok, True, int(sol.nfev), str(sol.message)))
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
            rows.append(_row(law, p0, np.full(law.n_params, np.nan), math.nan, False, True, 0, f"error: {exc}"))
    return rows


def fit(
    law: Law,
    data,
    target: str,
    inputs: Mapping | None = None,
    objective: str = "lsq",
    seed: int = 0,
    n_boot: int = 0,
    delta: float = 1e-3,
    starts=None,
    max_nfev: int | None = None,
    run_id_column: str = "run_id",
    method: str = "auto",
    n_refine: int = 3,
) -> FitResult:
    """Fit a law to a run table by multi-start bounded least squares.

    Parameters
    ----------
    law : Law
        E.g. :data:`scaling_lib.laws.OVERTRAINING`.
    data : pandas.DataFrame or mapping of arrays
        One row per run.
    target : str
        Column to fit, e.g. ``"loss_c4_val"``.
    inputs : mapping, optional
        ``{law_input: column}`` for inputs whose column has another name,
        e.g. ``{"L": "loss_c4_val"}`` for :data:`~scaling_lib.laws.ERROR`.
    objective : {"lsq", "huber_log"}
        Plain least squares (the paper's protocol) or the Huber loss of log
        residuals (Chinchilla approach 3); see the module docstring.
    seed : int
        Seed of the bootstrap; the fit itself is deterministic.
    n_boot : int
        Bootstrap replicates to run now (0: none until asked for).
    delta : float
        Huber threshold for ``"huber_log"``.
    starts : sequence of mappings, optional
        Start points replacing the law's grid. A start that gives only some
        parameters has the rest solved as in the grid.
    max_nfev : int, optional
        Evaluation limit per start (scipy's default when ``None``).
    run_id_column : str
        Column naming runs in error messages and in ``run_ids``.
    method : {"auto", "profile", "full"}
        ``"profile"`` (variable projection): scan the grid of the nonlinear
        parameters with the linear ones solved exactly, then minimise the
        profiled objective from the best ``n_refine`` grid points (for one
        nonlinear parameter, the best local minima of the scan, each refined
        by a bounded Brent search between its grid neighbours). Exact for
        ``"lsq"`` on laws with a linear basis and a linear fit space.
        ``"full"``: bounded trust-region least squares on all parameters from
        every grid point. ``"auto"`` picks ``"profile"`` where it is exact.
    n_refine : int
        Grid points refined by the ``"profile"`` method.

    Returns
    -------
    FitResult

    Raises
    ------
    FitInputError
        Missing column, NaN or non-positive input, fewer runs than parameters.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from scaling_lib import laws
    >>> x = np.logspace(15, 20, 8)
    >>> df = pd.DataFrame({"x": x, "loss": laws.SATURATING_POWER({"E": 2.0, "A": 300.0, "alpha": 0.15}, x=x)})
    >>> res = fit(laws.SATURATING_POWER, df, target="loss")
    >>> round(res.params["alpha"], 4), res.dof
    (0.15, 5)
    """
    mapping, x, y, labels = _prepare(law, data, target, inputs, objective, run_id_column)
    problem = _Problem(law, x, y, objective, float(delta))
    method = _choose_method(law, objective, method)
    lo, hi = (np.array(b, dtype=float) for b in zip(*law.bounds))
    grid = law.start_points() if starts is None else [dict(s) for s in starts]
    if not grid:
        grid = [{}]
    for point in grid:
        unknown = [k for k in point if k not in law.param_names]
        if unknown:
            raise ValueError(f"start {point} names unknown parameter(s) {unknown} of law {law.name}")

    if method == "profile":
        rows = _fit_profile(problem, grid, lo, hi, n_refine)
    else:
        rows = _fit_full(problem, grid, lo, hi, max_nfev)
    ok_rows = [r for r in rows if r["success"]]
    best = None
    if ok_rows:
        top = min(ok_rows, key=lambda r: r["objective"])
        best = np.array([top[f"final_{n}"] for n in law.param_names])

    columns = (
        [f"start_{n}" for n in law.param_names]
        + [f"final_{n}" for n in law.param_names]
        + ["objective", "success", "refined", "nfev", "message"]
    )
    table = pd.DataFrame(rows).reindex(columns=columns)
    success = best is not None
    if best is None:
        best = np.full(law.n_params, np.nan)
    residuals = y - law.function(best, x)
    result = FitResult(
        law=law,
        target=target,
        inputs=mapping,
        objective=objective,
        params=law.param_dict(best),
        n_data=int(y.size),
        n_params=law.n_params,
        dof=int(y.size - law.n_params),
        residuals=residuals,
        run_ids=labels,
        starts=table,
        success=success,
        seed=int(seed),
        delta=float(delta),
        method=method,
        _problem=problem,
    )
    if n_boot and success:
        result.bootstrap(n_boot)
    return result
