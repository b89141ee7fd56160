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
each start profiled first. ``"huber_log"`` screens the grid with the linear
parameters solved by weighted bounded least squares, gives the best few
points a smooth log-space stage and then minimises the Huber loss at
``delta`` by Gauss-Newton with an exact line search, analytic Jacobians and
the linear parameters re-solved after every step (about as fast as least
squares). A start that raises or fails to converge is recorded and counted,
never fatal. (The solvers live in the private modules ``scaling_lib._solver``,
``_solver_core`` and ``_huber``.)

Parameter intervals (:meth:`FitResult.ci`) come from a bootstrap over runs
(resample the rows, refit from the optimum, take quantiles). Prediction
intervals (:meth:`FitResult.predict`) are by default intervals for a
*measured* value: parametric refits with a relative noise drawn from the
residuals (never below ``noise_floor``, e.g. from seed repeats), times the
new run's noise and an extrapolation term (:data:`EXTRAPOLATION_NOISE`);
``interval_method="bootstrap"`` keeps the earlier percentiles of the run
bootstrap. :attr:`FitResult.warnings` says when a fit means little
(:mod:`scaling_lib.diagnostics`); predicting from a failed fit raises
:class:`FitFailedError`.

A column the fit needs and the data lack raises
:class:`scaling_lib.runs.MissingColumnError`; other data that cannot be
fitted raise :class:`FitInputError` (both are ``ValueError``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from scaling_lib import _solver, diagnostics
from scaling_lib._solver import bounded_lstsq
from scaling_lib.laws import Law
from scaling_lib.fit_inputs import OBJECTIVES, FitFailedError, FitInputError, _numeric, _prepare  # noqa: F401 (API)
from scaling_lib.runs import require_columns

__all__ = ["DEFAULT_N_BOOT", "EXTRAPOLATION_NOISE", "INTERVAL_METHODS", "OBJECTIVES", "FitFailedError",
           "FitInputError", "FitResult", "bounded_lstsq", "fit"]

DEFAULT_N_BOOT = 200
"""Bootstrap replicates run on demand when an interval is asked for and none were run."""


INTERVAL_METHODS = ("parametric", "bootstrap")
"""Prediction-interval methods of :meth:`FitResult.predict` (the first is the default)."""

EXTRAPOLATION_NOISE = 0.01
"""Relative noise added per e-fold of compute beyond the fitted range (parametric intervals).

Chosen on the leave-future-out backtests of :mod:`scaling_lib.backtest_coverage` (200 replicates,
two seeds): of the grid 0, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02, the smallest value whose 95%
intervals cover at least 80% of the held-out runs in every split family of both testbeds (cpu-tiny
compute splits 80-85% depending on the Monte Carlo seed, shape splits 87-93%, published testbed 94%);
from 0.015 on the published testbed's intervals cover every target (too wide)."""


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
    noise_floor : float or None
        Smallest relative noise of one run assumed by parametric prediction
        intervals (e.g. from seed repeats); ``None``: the residuals alone.
    held_out : str
        The held-out check made of this fit, for :meth:`report` (``"none"``
        until a caller sets it, see :meth:`with_held_out`).
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
    _problem: _solver.Problem = field(repr=False)
    noise_floor: float | None = None
    held_out: str = "none"
    _cache: dict = field(default_factory=dict, repr=False)
    _draws: dict = field(default_factory=dict, repr=False)

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

    @property
    def warnings(self) -> list:
        """Plain sentences naming each problem of the fit (empty for a sound fit).

        A parameter at a bound, a direction the data do not determine,
        ``dof <= 1``, and once a bootstrap has run, too few usable
        replicates or an interval that excludes its estimate
        (:func:`scaling_lib.diagnostics.fit_warnings`).
        """
        return diagnostics.fit_warnings(self)

    def with_held_out(self, text: str) -> FitResult:
        """The same fit (sharing its bootstraps) with a held-out check recorded for :meth:`report`."""
        return replace(self, held_out=str(text))

    def _require_success(self, what: str) -> None:
        if not self.success:
            raise FitFailedError(f"cannot {what}: the fit of law {self.law.name} to {self.target!r} failed, "
                                 f"no start converged ({diagnostics.failure_reason(self)})")

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
        self._require_success("bootstrap")
        n_boot = DEFAULT_N_BOOT if n_boot is None else int(n_boot)
        if n_boot <= 0:
            raise ValueError("bootstrap needs n_boot >= 1")
        if n_boot in self._cache:
            return self._cache[n_boot]
        lo, hi = _solver.law_bounds(self.law)
        p_best = _solver.clip_inside(self.law.param_array(self.params), lo, hi)
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
                values, ok = _solver.warm_refit(self._problem.subset(idx), self.method, p_best, lo, hi)
            except _solver.SOLVER_ERRORS:
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

    @property
    def residual_sigma(self) -> float:
        """Relative noise of one run from the residuals (:func:`scaling_lib.diagnostics.residual_sigma`)."""
        return diagnostics.residual_sigma(self)

    def parametric_bootstrap(self, n_boot: int | None = None) -> pd.DataFrame:
        """Parametric refits behind the default prediction intervals (cached per ``n_boot``).

        Each replicate draws a relative noise ``sigma_b``, from
        ``dof * s^2 / chi2(dof)`` with ``s`` = :attr:`residual_sigma` and
        never below :attr:`noise_floor`, redraws every fitted value as
        ``fit * exp(sigma_b z)`` and refits from the optimum (one warm start).

        Returns
        -------
        pandas.DataFrame
            One row per usable replicate: a column per parameter and ``sigma``
            (its ``sigma_b``); empty when neither the residuals (``dof = 0``)
            nor a noise floor give a noise.
        """
        self._require_success("bootstrap")
        n_boot = DEFAULT_N_BOOT if n_boot is None else int(n_boot)
        if n_boot <= 0:
            raise ValueError("bootstrap needs n_boot >= 1")
        if n_boot not in self._draws:
            self._draws[n_boot] = diagnostics.parametric_refits(self, n_boot)
        return self._draws[n_boot]

    # -- prediction
    def predict(self, data, interval: float | None = 0.95, n_boot: int | None = None, *,
                interval_method: str = "parametric",
                extrapolation_noise: float = EXTRAPOLATION_NOISE) -> pd.DataFrame:
        """Predictions with an interval for the measured value.

        Parameters
        ----------
        data : pandas.DataFrame or mapping of arrays
            Holds the input columns used in the fit (``self.inputs``).
        interval : float or None
            Central probability of the interval; ``None`` gives ``lo`` and
            ``hi`` as NaN.
        n_boot : int, optional
            Replicates; by default the largest bootstrap of the method
            already run (for ``"parametric"``, else as many as the largest
            run bootstrap), or :data:`DEFAULT_N_BOOT` run now (deterministic
            given ``seed``).
        interval_method : {"parametric", "bootstrap"}, keyword-only
            ``"parametric"``: quantiles of parametric refits
            (:meth:`parametric_bootstrap`) times the new run's noise and an
            extrapolation term (see the module docstring); NaN when no noise
            can be estimated (``dof = 0`` and no noise floor).
            ``"bootstrap"``: percentiles of the refits over resampled runs
            (the earlier method; it ignores the run's own noise).
        extrapolation_noise : float, keyword-only
            Relative noise per e-fold of compute beyond the fitted range
            (``"parametric"`` only; 0 turns it off).

        Returns
        -------
        pandas.DataFrame
            Columns ``pred``, ``lo``, ``hi`` and ``extrapolation`` (the factor
            by which a point lies outside the fitted range of compute, 1
            inside; :func:`scaling_lib.diagnostics.extrapolation`), index of
            ``data`` when it is a DataFrame. ``attrs["warnings"]`` lists
            sentences about the predictions (far extrapolation, no interval).

        Raises
        ------
        FitFailedError
            The fit converged from no start (the message gives the optimiser's).
        scaling_lib.runs.MissingColumnError
            ``data`` lacks an input column.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from scaling_lib import laws
        >>> x = np.logspace(15, 20, 8)
        >>> df = pd.DataFrame({"x": x, "loss": laws.SATURATING_POWER({"E": 2.0, "A": 300.0, "alpha": 0.15}, x=x)})
        >>> res = fit(laws.SATURATING_POWER, df, target="loss")
        >>> res.predict(pd.DataFrame({"x": [1e21]}), interval=None).round(4)
             pred  lo  hi  extrapolation
        0  2.2124 NaN NaN           10.0
        """
        self._require_success("predict")
        if interval_method not in INTERVAL_METHODS:
            raise ValueError(f"unknown interval_method {interval_method!r}; choose one of {INTERVAL_METHODS}")
        require_columns(data, list(self.inputs.values()),
                        f"prediction data of law {self.law.name} (inputs {self.inputs})")
        x = {name: _numeric(data, column, f"input {name!r} of law {self.law.name}")
             for name, column in self.inputs.items()}
        pred = self.law.function(self.law.param_array(self.params), x)
        factor = diagnostics.extrapolation(self._problem.x, x)
        notes = diagnostics.extrapolation_warnings(factor)
        lo = hi = np.full(pred.shape, np.nan)
        if interval is not None:
            _check_level(interval)
            if interval_method == "bootstrap":
                rows, sigmas = self._boot_ok(n_boot)[list(self.law.param_names)].to_numpy(), None
            else:
                if n_boot is None:  # the largest parametric bootstrap run, else the size of the run bootstrap
                    n_boot = max(self._draws) if self._draws else (max(self._cache) if self._cache else None)
                table = self.parametric_bootstrap(n_boot)
                rows, sigmas = table[list(self.law.param_names)].to_numpy(), table["sigma"].to_numpy()
            draws = diagnostics.replicate_predictions(self, x, rows, sigmas, float(extrapolation_noise), factor)
            if len(draws) >= 2:
                lo = np.nanquantile(draws, (1 - interval) / 2, axis=0)
                hi = np.nanquantile(draws, (1 + interval) / 2, axis=0)
                if interval_method == "parametric":  # an interval for the value always holds its estimate
                    lo, hi = np.minimum(lo, pred), np.maximum(hi, pred)
            else:
                notes.append("no prediction interval: with dof = 0 and no noise floor the noise of a run is unknown")
        index = data.index if isinstance(data, pd.DataFrame) else None
        out = pd.DataFrame({"pred": pred, "lo": lo, "hi": hi, "extrapolation": factor}, index=index)
        out.attrs["warnings"] = notes
        return out

    # -- reporting
    def summary(self) -> dict:
        """A JSON-able summary: law, data, objective, parameters, starts, any bootstrap CIs, warnings, checklist."""
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
            "noise_floor": None if self.noise_floor is None else float(self.noise_floor),
            "held_out": self.held_out,
            "warnings": self.warnings,
            "checklist": diagnostics.checklist(self).to_dict(),
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
        """A plain-text report of the fit: parameters and intervals, its warnings and a fit checklist."""
        return diagnostics.report_text(self)


def _check_level(level: float) -> None:
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"interval level must lie in (0, 1), got {level!r}")


# --- the fit -------------------------------------------------------------------------------------


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
    noise_floor: float | None = None,
    held_out: str = "none",
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
    noise_floor : float, optional
        Smallest relative noise of one run's target that prediction
        intervals assume, e.g. :func:`scaling_lib.diagnostics.seed_noise` of
        seed repeats (``None``: the residuals alone).
    held_out : str
        The held-out check of this fit, shown by :meth:`FitResult.report`.

    Returns
    -------
    FitResult

    Raises
    ------
    scaling_lib.runs.MissingColumnError
        ``data`` lacks the target or an input column.
    FitInputError
        Non-numeric, NaN or non-positive input, fewer runs than parameters,
        an ``inputs`` key the law does not have.
    ValueError
        Unknown ``objective`` or ``method``, a start naming an unknown parameter.

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
    problem = _solver.Problem(law, x, y, objective, float(delta))
    method = _solver.choose_method(law, objective, method)
    lo, hi = _solver.law_bounds(law)
    grid = law.start_points() if starts is None else [dict(s) for s in starts]
    if not grid:
        grid = [{}]
    for point in grid:
        unknown = [k for k in point if k not in law.param_names]
        if unknown:
            raise ValueError(f"start {point} names unknown parameter(s) {unknown} of law {law.name}")

    if method == "profile":
        rows = _solver.fit_profile(problem, grid, lo, hi, n_refine)
    else:
        rows = _solver.fit_full(problem, grid, lo, hi, max_nfev)
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
        noise_floor=None if noise_floor is None else float(noise_floor),
        held_out=str(held_out),
    )
    if n_boot and success:
        result.bootstrap(n_boot)
    return result
