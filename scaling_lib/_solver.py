"""The numerical core behind :func:`scaling_lib.fit.fit` (private: use that function).

Every law is linear in some parameters once its exponents are fixed
(``Law.linear_params``, ``Law.basis``). Variable projection uses this: for
given nonlinear parameters ``theta`` the linear ones are solved exactly by
bounded linear least squares (:func:`bounded_lstsq`), which leaves a
*profiled* objective of ``theta`` alone. :func:`fit_profile` scans the law's
start grid on it and refines the best grid points (a bounded Brent search for
one exponent, trust-region least squares for several). :func:`fit_full`
instead runs bounded trust-region least squares on all parameters from every
grid point. ``"huber_log"`` (Huber loss of log residuals) has its own
driver, :func:`fit_huber`: the grid is screened with the linear parameters
solved by relative-weighted bounded least squares, the best few points get a
smooth log-space stage and the best distinct results the Huber stage, both by
:func:`newton_huber` (Gauss-Newton on the Huber model with an exact line
search, analytic Jacobians from :func:`law_jacobian`, and the linear
parameters re-solved by weighted bounded least squares after every step, the
variable projection of the least-squares path with Huber weights). The
earlier solver (scipy's trust-region least squares from every grid point
through a schedule of Huber thresholds shrinking to ``delta``,
:func:`huber_schedule`) stays selectable with :func:`huber_solver`. A start
that raises or fails is a recorded row, never an exception.
"""

from __future__ import annotations

import math

import numpy as np

from scaling_lib._huber import (HUBER_SOLVERS, _HUBER, HuberModel, HuberSolve, _huber_psi, fit_huber,  # noqa: F401
                                huber_solver, huber_value, huber_warm_refit, line_min, newton_huber,
                                relative_profile_start)
from scaling_lib._jacobians import law_jacobian  # noqa: F401
from scaling_lib._solver_core import (SOLVER_ERRORS, _TINY, Problem, RefinedProfile, bounded_lstsq,  # noqa: F401
                                      choose_method, clip_inside, fit_profile, huber_schedule, law_bounds,
                                      start_row, start_template, wide_bracket)

def fit_full(problem: Problem, grid: list, lo: np.ndarray, hi: np.ndarray, max_nfev: int | None) -> list:
    """The ``"full"`` method: :meth:`Problem.solve` on all parameters from every grid point.

    A point that names every parameter starts there; one that names only
    some has the others profiled first. Returns one :func:`start_row` per
    grid point. ``"huber_log"`` goes to :func:`fit_huber` unless
    :func:`huber_solver` selects the earlier ``"schedule"``.
    """
    if problem.objective == "huber_log" and _HUBER["solver"] == "newton":
        return fit_huber(problem, grid, lo, hi, max_nfev)
    law = problem.law
    rows, memo = [], {}
    for point in grid:
        p0 = np.full(law.n_params, np.nan)
        try:
            if all(name in point for name in law.param_names):
                p0 = law.param_array(point)
            else:
                template = start_template(lo, hi)
                theta = [float(point.get(law.param_names[i], template[i])) for i in problem.nonlinear_index]
                p0 = problem.profile(np.clip(theta, lo[problem.nonlinear_index], hi[problem.nonlinear_index]),
                                     template, lo, hi)
            p0 = clip_inside(p0, lo, hi)
            sol = problem.solve(p0, lo, hi, max_nfev, memo=memo)
            value = problem.value(sol.x)
            ok = bool(sol.success and np.isfinite(value))
            rows.append(start_row(law, p0, sol.x, value, ok, True, int(sol.nfev), str(sol.message)))
        except SOLVER_ERRORS as exc:
            rows.append(start_row(law, p0, np.full(law.n_params, np.nan), math.nan, False, True, 0, f"error: {exc}"))
    return rows


def warm_refit(problem: Problem, method: str, p_start: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """One refit started at a nearby optimum (a bootstrap replicate): ``(params, success)``.

    ``"profile"``: a Brent search around the start's exponent (or trust-region
    least squares for several); ``"full"``: :meth:`Problem.solve` with no
    smooth stage (for ``"huber_log"``, :func:`newton_huber` at ``delta``
    unless :func:`huber_solver` selects ``"schedule"``). ``success`` also
    requires finite parameters.
    """
    if method == "profile":
        theta = p_start[problem.nonlinear_index]
        refined = problem.refine_profile(theta, wide_bracket(theta, lo, hi, problem), p_start, lo, hi)
        ok, values = refined.success, refined.params
    elif problem.objective == "huber_log" and _HUBER["solver"] == "newton":
        out = huber_warm_refit(problem, p_start, lo, hi)
        ok, values = out.success, out.params
    else:
        sol = problem.solve(p_start, lo, hi, max_nfev=None, smooth_first=False)
        ok, values = bool(sol.success), sol.x
    return values, bool(ok and np.all(np.isfinite(values)))
