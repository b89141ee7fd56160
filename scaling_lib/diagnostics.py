"""Diagnostics of a fitted law: plain sentences that say when a fit means little.

:func:`fit_warnings` is what :attr:`scaling_lib.fit.FitResult.warnings`
returns: an empty list for a sound fit, otherwise one sentence per problem.
Each check is a small function of its own:

* :func:`bound_warnings`: a parameter on (or within a hair of) a bound, where
  moving it onto the bound changes no fitted value by more than
  :data:`BOUND_RTOL`;
* :func:`direction_warnings`: a direction the data leave free: starts that
  end at very different parameters with a near-equal objective, or a
  near-singular Jacobian of the residuals at the optimum (the parameters that
  trade off are named);
* :func:`trend_warnings`: the law fits no better than a constant (rising
  losses, pure noise);
* :func:`dof_warnings`: ``dof <= 1``;
* :func:`bootstrap_warnings` (once a bootstrap has run): too few usable
  replicates, a parameter interval that does not contain its estimate, and
  one that reaches a bound.

The noise model of the default prediction intervals lives here too
(:func:`parametric_refits`, :func:`replicate_predictions`).

:func:`extrapolation` measures how far points lie outside the fitted range of
compute (used by :meth:`~scaling_lib.fit.FitResult.predict`),
:func:`seed_noise` estimates the noise of one run from seed repeats (a floor
for prediction intervals), and :func:`checklist` lists what a reader needs
to judge a fit, after the (Mis)Fitting survey of Li et al. (2025,
arXiv 2502.18969): law, objective, optimiser, starts, the points used and
their range, and the held-out check.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from scaling_lib import _solver

__all__ = [
    "BOUND_RTOL", "EXTRAPOLATION_WARN", "MIN_BOOT_SHARE", "SINGULAR_RTOL", "START_RTOL", "bootstrap_warnings",
    "bound_warnings", "checklist", "compute_of", "direction_warnings", "dof_warnings", "extrapolation",
    "extrapolation_warnings", "failure_reason", "fit_warnings", "jacobian", "parametric_refits", "replicate_predictions",
    "report_text", "residual_sigma", "seed_noise", "trend_warnings",
]

BOUND_RTOL = 1e-4
"""A parameter is *at* its bound when moving it there changes no fitted value by more than this (relative)."""

SINGULAR_RTOL = 1e-6
"""Smallest singular value of the column-normalised Jacobian, relative to the largest, below which a
direction of the parameters is called undetermined."""

START_RTOL = 1e-3
"""Starts whose objective lies within this relative distance of the best count as near-equal."""

MIN_BOOT_SHARE = 0.8
"""Share of usable bootstrap replicates below which the intervals are flagged."""

EXTRAPOLATION_WARN = 10.0
"""A prediction at more than this factor beyond the fitted range of compute is flagged."""


def _fmt(value: float) -> str:
    return f"{value:.4g}"


# --- the checks -----------------------------------------------------------------------------------


def _fitted(result, p) -> np.ndarray:
    with np.errstate(all="ignore"):
        return result.law.function(np.asarray(p, float), result._problem.x)


def bound_warnings(result) -> list:
    """Parameters on or within a hair of a bound.

    A parameter counts as at its bound when it equals it, or when setting it
    to the bound changes every fitted value by less than :data:`BOUND_RTOL`
    of the target (so ``E = 4e-6`` on losses of 3 is at its bound 0) while
    a large move away from it does change them (a parameter with no effect
    at all is left to :func:`direction_warnings`).
    """
    law, p = result.law, result.law.param_array(result.params)
    y = np.maximum(np.abs(result._problem.y), 1e-300)
    base = _fitted(result, p)

    def change(i, value):
        q = p.copy()
        q[i] = value
        moved = _fitted(result, q)
        return float(np.max(np.abs(moved - base) / y)) if np.all(np.isfinite(moved)) else math.inf

    out = []
    for i, (name, (lo, hi)) in enumerate(zip(law.param_names, law.bounds)):
        far = 0.5 * (lo + hi) if np.isfinite(lo + hi) else (p[i] + 1.0) * 2.0 if np.isfinite(lo) else p[i] - 1.0
        for side, bound in (("lower", lo), ("upper", hi)):
            if not np.isfinite(bound):
                continue
            if p[i] == bound or (change(i, bound) < BOUND_RTOL and change(i, far) >= BOUND_RTOL):
                out.append(f"{name} = {_fmt(p[i])} lies at its {side} bound {_fmt(bound)}: the data push it "
                           "there, so its value (and any interval of it) says little")
                break
    return out


def _free_mask(result) -> np.ndarray:
    """Parameters not at a bound (the bound check names the others)."""
    names = {w.split(" = ")[0] for w in bound_warnings(result)}
    return np.array([n not in names for n in result.law.param_names])


def jacobian(result, p=None) -> np.ndarray:
    """Forward-difference Jacobian of the fit residuals (in the objective's space), ``(n_data, n_params)``."""
    problem = result._problem
    p = result.law.param_array(result.params) if p is None else np.asarray(p, float)
    with np.errstate(all="ignore"):
        r0 = problem.residuals(p)
        cols = []
        for i in range(p.size):
            h = 1e-6 * max(abs(p[i]), 1e-6)
            lo, hi = result.law.bounds[i]
            step = -h if p[i] + h > hi else h
            q = p.copy()
            q[i] += step
            cols.append((problem.residuals(q) - r0) / step)
    return np.column_stack(cols)


def direction_warnings(result) -> list:
    """Directions of the parameters that the data do not determine.

    Two signs: starts that end at parameters differing by more than a factor
    two with objectives within :data:`START_RTOL` of the best, and a
    near-singular Jacobian at the optimum (its columns normalised; the
    parameters with large weights in the smallest singular direction are the
    ones that trade off). Parameters at a bound are left out of the
    Jacobian check.
    """
    law, out = result.law, []
    starts = result.starts[result.starts["success"].astype(bool)]
    best = result.objective_value
    if len(starts) > 1 and np.isfinite(best):
        scale = float(np.sum(result._problem.y ** 2)) * 1e-12
        near = starts[starts["objective"] <= best + START_RTOL * abs(best) + scale]
        p = result.law.param_array(result.params)
        differ = []
        for i, name in enumerate(law.param_names):
            values = near[f"final_{name}"].to_numpy(float)
            values = values[np.isfinite(values)]
            if values.size < 2:
                continue
            spread = np.max(np.abs(values - p[i]))
            if spread > 0.5 * max(abs(p[i]), np.max(np.abs(values)) * 0.5, 1e-12):
                differ.append(f"{name} from {_fmt(values.min())} to {_fmt(values.max())}")
        if differ:
            out.append(f"{len(near)} starts reach a near-equal objective at very different parameters "
                       f"({'; '.join(differ)}): the data do not determine them")
    free = _free_mask(result)
    J = jacobian(result)[:, free]
    names = [n for n, f in zip(law.param_names, free) if f]
    if J.size == 0 or not np.all(np.isfinite(J)):
        return out
    norms = np.linalg.norm(J, axis=0)
    dead = [n for n, v in zip(names, norms) if v == 0]
    if dead:
        out.append(f"{', '.join(dead)} {'has' if len(dead) == 1 else 'have'} no effect on the fitted values at "
                   "the optimum: the data do not determine "
                   f"{'it' if len(dead) == 1 else 'them'}")
    keep = norms > 0
    if keep.sum() >= 2:
        _, s, vt = np.linalg.svd(J[:, keep] / norms[keep], full_matrices=False)
        if s[-1] < SINGULAR_RTOL * s[0]:
            kept = [n for n, k in zip(names, keep) if k]
            v = vt[-1]
            trade = [kept[j] for j in np.argsort(-np.abs(v)) if abs(v[j]) > 0.2]
            out.append(f"the Jacobian at the optimum is near-singular (condition {s[0] / max(s[-1], 1e-300):.2g}): "
                       f"{' and '.join(trade)} trade off and the data do not separate them")
    return out


def trend_warnings(result, alpha: float = 0.05) -> list:
    """The law explains no more of the target than a constant (an F test at level ``alpha``).

    Compares the fit's residual sum of squares with that of the mean, in
    the objective's space (log values for ``huber_log`` and laws fitted in
    log space): rising losses or pure noise leave the law no trend to fit.
    """
    from scipy import stats

    problem, k, dof = result._problem, result.n_params, result.dof
    if dof <= 0 or k < 2:
        return []
    y = np.log(problem.y) if problem.log_residuals else problem.y
    rss0 = float(np.sum((y - y.mean()) ** 2))
    r = problem.residuals(result.law.param_array(result.params))
    rss1 = float(np.sum(r * r))
    if rss0 <= 0:
        return []
    F = max(rss0 - rss1, 0.0) / (k - 1) / max(rss1 / dof, 1e-300)
    p = float(stats.f.sf(F, k - 1, dof))
    if p <= alpha:
        return []
    return [f"the law fits no better than a constant (F test p = {p:.2g}; residual sum of squares {rss1:.3g} "
            f"against {rss0:.3g} for the mean): the data show no trend for it to describe"]


def dof_warnings(result) -> list:
    """Too few residual degrees of freedom to check the law or estimate the noise."""
    if result.dof > 1:
        return []
    return [f"{result.n_data} points for {result.n_params} parameters (dof = {result.dof}): the residuals "
            "cannot check the law" + (", and the noise is estimated from one degree of freedom"
                                      if result.dof == 1 else ", and the fit interpolates the data")]


def bootstrap_warnings(result, level: float = 0.95) -> list:
    """Checks of the largest bootstrap run so far (none before one has run)."""
    if not result._cache:
        return []
    n_boot = max(result._cache)
    boot = result._cache[n_boot]
    ok = int(boot["success"].sum())
    out = []
    if ok < MIN_BOOT_SHARE * len(boot):
        out.append(f"only {ok} of {len(boot)} bootstrap replicates ({ok / len(boot):.0%}) are usable (not converged "
                   "or fewer distinct runs than parameters): the parameter intervals rest on few refits")
    if ok >= 2:
        table = result.ci(level, n_boot=n_boot)
        at_bound = {w.split(" = ")[0] for w in bound_warnings(result)}
        for (name, row), (lo, hi) in zip(table.iterrows(), result.law.bounds):
            tol = 1e-9 * max(abs(row["estimate"]), 1e-12)
            text = f"the {level:.0%} bootstrap interval of {name}, [{_fmt(row['lo'])}, {_fmt(row['hi'])}],"
            if not (row["lo"] - tol <= row["estimate"] <= row["hi"] + tol):
                out.append(f"{text} does not contain its estimate {_fmt(row['estimate'])}")
            elif name not in at_bound:
                for side, bound, end in (("lower", lo, row["lo"]), ("upper", hi, row["hi"])):
                    if np.isfinite(bound) and abs(end - bound) <= 1e-6 * max(abs(bound), abs(row["estimate"]), 1e-12):
                        out.append(f"{text} reaches its {side} bound {_fmt(bound)}: the data do not exclude "
                                   f"{name} = {_fmt(bound)}")
    return out


def fit_warnings(result) -> list:
    """Every warning about a fit, as plain sentences (empty for a sound fit)."""
    if not result.success:
        return [f"no start converged: {failure_reason(result)}"]
    return (bound_warnings(result) + direction_warnings(result) + trend_warnings(result) + dof_warnings(result)
            + bootstrap_warnings(result))


def failure_reason(result) -> str:
    """The optimiser's messages of a failed fit, deduplicated."""
    messages = [str(m) for m in result.starts["message"].dropna().unique()]
    return "; ".join(messages[:3]) or "no start was tried"


# --- extrapolation --------------------------------------------------------------------------------


def compute_of(x: dict) -> tuple:
    """The compute of each point, from a law's inputs: ``(values, name)``.

    ``6 N^2 M`` for inputs ``N`` and ``M``, ``6 N D`` for ``N`` and ``D``;
    a law of one input uses that input.

    Examples
    --------
    >>> compute_of({"N": np.array([10.0]), "M": np.array([20.0])})[0].tolist()
    [12000.0]
    """
    if {"N", "M"} <= set(x):
        return 6.0 * np.asarray(x["N"], float) ** 2 * np.asarray(x["M"], float), "compute 6 N^2 M"
    if {"N", "D"} <= set(x):
        return 6.0 * np.asarray(x["N"], float) * np.asarray(x["D"], float), "compute 6 N D"
    name = next(iter(x))
    return np.asarray(x[name], float), name


def extrapolation(fit_x: dict, x: dict) -> np.ndarray:
    """Factor by which each point lies outside the fitted range of compute (1 inside).

    Examples
    --------
    >>> fit_x = {"N": np.array([1.0, 2.0]), "M": np.array([20.0, 20.0])}
    >>> extrapolation(fit_x, {"N": np.array([1.5, 20.0]), "M": np.array([20.0, 20.0])}).tolist()
    [1.0, 100.0]
    """
    c_fit, _ = compute_of(fit_x)
    c, _ = compute_of(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.maximum(1.0, np.maximum(c / c_fit.max(), c_fit.min() / c))


def extrapolation_warnings(factor: np.ndarray) -> list:
    """A sentence when some prediction lies more than :data:`EXTRAPOLATION_WARN` beyond the fitted range."""
    factor = np.asarray(factor, float)
    far = factor > EXTRAPOLATION_WARN
    if not far.any():
        return []
    return [f"{int(far.sum())} of {factor.size} predictions lie far outside the fitted range of compute "
            f"(up to {factor.max():.3g}x beyond it): they extrapolate the law, and the interval's "
            "extrapolation term is what covers that"]


# --- the noise model of prediction intervals ------------------------------------------------------


def residual_sigma(result) -> float:
    """Relative noise of one run from the residuals, ``sqrt(sum(log(y / fit)^2) / dof)`` (NaN at ``dof = 0``)."""
    if result.dof <= 0:
        return math.nan
    with np.errstate(all="ignore"):
        r = np.log(result._problem.y / _fitted(result, result.law.param_array(result.params)))
    return math.sqrt(float(np.sum(r * r)) / result.dof)


def parametric_refits(result, n_boot: int) -> pd.DataFrame:
    """Parametric refits of a fit (see :meth:`scaling_lib.fit.FitResult.parametric_bootstrap`)."""
    from scaling_lib import _solver  # the fit's private solver

    law, problem = result.law, result._problem
    lo, hi = _solver.law_bounds(law)
    p_best = _solver.clip_inside(law.param_array(result.params), lo, hi)
    fitted = law.function(p_best, problem.x)
    s, floor, dof = residual_sigma(result), result.noise_floor or 0.0, result.dof
    rng = np.random.default_rng([result.seed, 1])
    params, sigmas = [], []
    for _ in range(n_boot if (np.isfinite(s) or floor > 0) else 0):
        sigma = max(math.sqrt(dof * s * s / rng.chisquare(dof)), floor) if np.isfinite(s) else floor
        y = fitted * np.exp(sigma * rng.standard_normal(fitted.size))
        try:
            values, ok = _solver.warm_refit(_solver.Problem(law, problem.x, y, problem.objective, problem.delta),
                                            result.method, p_best, lo, hi)
        except _solver.SOLVER_ERRORS:
            ok = False
        if ok:
            params.append(values)
            sigmas.append(sigma)
    table = pd.DataFrame(np.array(params).reshape(-1, law.n_params), columns=list(law.param_names))
    table["sigma"] = np.array(sigmas, dtype=float)
    return table


def replicate_predictions(result, x: dict, rows: np.ndarray, sigmas, extrapolation_noise: float,
                          factor: np.ndarray) -> np.ndarray:
    """Predictions of replicate parameters ``rows`` at ``x``, ``(n_rows, n_points)``.

    With ``sigmas`` (parametric replicates) each prediction is multiplied by
    the new run's noise, ``exp(sqrt(sigma^2 + (extrapolation_noise log factor)^2) z)``.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        draws = (np.stack([result.law.function(row, x) for row in rows]) if len(rows)
                 else np.empty((0, factor.size)))
    if sigmas is not None and len(rows):
        rng = np.random.default_rng([result.seed, 2])
        spread = np.sqrt(np.asarray(sigmas)[:, None] ** 2 + (extrapolation_noise * np.log(factor))[None, :] ** 2)
        draws = draws * np.exp(spread * rng.standard_normal(draws.shape))
    return draws


# --- noise from repeats ---------------------------------------------------------------------------


def seed_noise(table, target: str, *, keys=("N", "M"), seed_column: str = "seed") -> float | None:
    """Relative noise of one run's ``target``, pooled over repeats that differ only in seed.

    The pooled standard deviation of ``log(target)`` within groups of
    ``keys`` holding runs of several seeds: a floor for the noise of a
    prediction interval (``fit(..., noise_floor=...)``).

    Returns
    -------
    float or None
        ``None`` when the table holds no repeats.

    Examples
    --------
    >>> df = pd.DataFrame({"N": [1, 1, 2], "M": [20, 20, 20], "seed": [0, 1, 0],
    ...                    "loss": [3.0, 3.0 * math.exp(0.02), 2.5]})
    >>> round(seed_noise(df, "loss"), 4)
    0.0141
    """
    keys = [k for k in keys if k in table.columns]
    if seed_column not in table.columns or not keys:
        return None
    ss, dof = 0.0, 0
    for _, group in table.groupby(keys):
        if group[seed_column].nunique() < 2:
            continue
        values = np.log(group[target].to_numpy(float))
        ss += float(np.sum((values - values.mean()) ** 2))
        dof += len(values) - 1
    return math.sqrt(ss / dof) if dof else None


# --- the checklist ---------------------------------------------------------------------------------


def _span(values: np.ndarray) -> str:
    values = np.asarray(values, float)
    return f"{_fmt(values.min())} .. {_fmt(values.max())}"


def checklist(result) -> pd.Series:
    """What a reader needs to judge the fit (after Li et al. 2025, arXiv 2502.18969).

    Returns
    -------
    pandas.Series
        ``law``, ``objective``, ``optimiser``, ``starts``, ``points`` and one
        ``range <input>`` per input, ``range compute``, ``range target``,
        ``noise floor`` and ``held-out check``.
    """
    law, problem = result.law, result._problem
    optimiser = {
        "profile": "variable projection: bounded linear least squares for the linear parameters, "
                   "grid scan then bounded Brent / trust-region search of the exponents",
        "full": ("Gauss-Newton on the Huber loss with an exact line search and the linear parameters "
                 "re-solved each step, after a smooth log-space stage from the best grid points"
                 if result.objective == "huber_log" and _solver._HUBER["solver"] == "newton"
                 else "bounded trust-region least squares (scipy least_squares, trf) on all parameters"
                 + (", Huber thresholds shrinking to delta" if result.objective == "huber_log" else "")),
    }[result.method]
    objective = {"lsq": "least squares on the target" + (" (log)" if law.fit_space == "log" else ""),
                 "huber_log": f"Huber loss (delta={result.delta:g}) of log residuals"}[result.objective]
    items = {
        "law": f"{law.name}: {law.description}",
        "objective": objective,
        "optimiser": f"{result.method}: {optimiser}",
        "starts": f"{result.n_starts} tried from the law's grid, {result.n_failed_starts} failed",
        "points": f"{result.n_data} runs for {result.n_params} parameters (dof {result.dof})",
    }
    for name, values in problem.x.items():
        items[f"range {name}"] = _span(values)
    c, label = compute_of(problem.x)
    if label not in problem.x:
        items["range compute"] = f"{_span(c)} ({label})"
    items["range target"] = f"{_span(problem.y)} ({result.target})"
    items["noise floor"] = ("none given" if result.noise_floor is None
                            else f"{result.noise_floor:.3g} relative (e.g. from seed repeats)")
    items["held-out check"] = result.held_out or "none"
    return pd.Series(items, name="checklist")


def report_text(result) -> str:
    """The text of :meth:`scaling_lib.fit.FitResult.report`."""
    lines = [
        f"law        {result.law.name}: {result.law.description}",
        f"target     {result.target}  inputs {result.inputs}",
        f"objective  {result.objective}" + (f" (delta={result.delta:g})" if result.objective == "huber_log" else ""),
        f"data       n={result.n_data}  k={result.n_params}  dof={result.dof}",
        f"starts     {result.n_starts} tried, {result.n_failed_starts} failed; success={result.success}",
        f"fit        objective={result.objective_value:.6g}  RSS={result.rss:.6g}  RMSE={result.rmse:.6g}",
    ]
    table = result.ci(0.95, n_boot=max(result._cache)) if result._cache else None
    for name in result.law.param_names:
        text = f"  {name:<8s} {result.params[name]:.6g}"
        if table is not None:
            text += f"   95% CI [{table.loc[name, 'lo']:.6g}, {table.loc[name, 'hi']:.6g}]"
        lines.append(text)
    if table is None:
        lines.append("  (no bootstrap run: call ci() or bootstrap())")
    else:
        boot = result._cache[max(result._cache)]
        lines.append(f"  bootstrap over runs: {len(boot)} replicates, {int((~boot['success']).sum())} unusable "
                     "(not converged or fewer distinct runs than parameters)")
    warnings = result.warnings
    lines.append(f"warnings   {len(warnings) or 'none'}")
    lines += [f"  - {w}" for w in warnings]
    lines.append("checklist  (after Li et al. 2025, (Mis)Fitting scaling laws)")
    lines += [f"  {k:<15s} {v}" for k, v in checklist(result).items()]
    return "\n".join(lines)
