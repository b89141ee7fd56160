"""Huber fits of log residuals: Gauss-Newton with an exact line search (private).

:func:`fit_huber` screens the start grid with the linear parameters solved by relative-weighted
bounded least squares, gives the best few points a smooth log-space stage and the best distinct
results the Huber stage, both by :func:`newton_huber` (Gauss-Newton on the Huber model with an
exact line search, analytic Jacobians from :func:`scaling_lib._jacobians.law_jacobian`, and the
linear parameters re-solved by weighted bounded least squares after every step: the variable
projection of the least-squares path with Huber weights). :func:`huber_solver` selects the
earlier threshold schedule of :mod:`scaling_lib._solver_core` instead.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, least_squares, minimize_scalar

from scaling_lib._jacobians import law_jacobian
from scaling_lib._solver_core import (SOLVER_ERRORS, _TINY, Problem, bounded_lstsq, clip_inside, start_row,
                                      start_template, wide_bracket)

# --- Huber fits: Gauss-Newton with an exact line search and variable projection ------------------

HUBER_SOLVERS = ("newton", "schedule")
"""Solvers for ``"huber_log"``: :func:`fit_huber` (default) and the earlier threshold schedule."""

_HUBER = {"solver": "newton"}


@contextlib.contextmanager
def huber_solver(name: str):
    """Select the ``"huber_log"`` solver inside a ``with`` block (for comparisons and benchmarks).

    ``"newton"`` (the default): :func:`fit_huber` and :func:`newton_huber`.
    ``"schedule"``: the earlier solver, scipy's trust-region least squares
    from every grid point, a smooth log-space stage, then Huber thresholds
    shrinking to ``delta`` (:meth:`Problem.solve`). The least-squares
    objective is the same either way.

    Examples
    --------
    >>> with huber_solver("schedule"):
    ...     _HUBER["solver"]
    'schedule'
    >>> _HUBER["solver"]
    'newton'
    """
    if name not in HUBER_SOLVERS:
        raise ValueError(f"unknown Huber solver {name!r}; choose from {HUBER_SOLVERS}")
    previous = _HUBER["solver"]
    _HUBER["solver"] = name
    try:
        yield
    finally:
        _HUBER["solver"] = previous


def huber_value(r: np.ndarray, delta: float) -> float:
    """Summed Huber loss of ``r`` with threshold ``delta``; half the sum of squares when ``delta`` is inf.

    Examples
    --------
    >>> huber_value(np.array([0.5, -3.0]), 1.0), huber_value(np.array([0.5, -3.0]), np.inf)
    (2.625, 4.625)
    """
    if not np.isfinite(delta):
        return float(0.5 * (r @ r))
    a = np.abs(r)
    return float(np.sum(np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))))


def _huber_psi(r, delta):
    return r if not np.isfinite(delta) else np.clip(r, -delta, delta)


def line_min(r: np.ndarray, s: np.ndarray, delta: float) -> float:
    """``argmin_{t >= 0} sum H(r + t s)``, exactly (a convex piecewise quadratic in ``t``).

    Returns 0 when ``s`` is no descent direction and ``inf`` when the
    function decreases without bound along it.

    Examples
    --------
    >>> line_min(np.array([2.0]), np.array([-1.0]), np.inf)
    2.0
    >>> line_min(np.array([3.0, -3.0]), np.array([-1.0, -1.0]), 1.0)
    0.0
    >>> line_min(np.array([3.0, 3.0]), np.array([-1.0, -2.0]), 1.0)
    1.75
    """
    d0 = float(_huber_psi(r, delta) @ s)
    if not d0 < 0:
        return 0.0
    if not np.isfinite(delta):
        ss = float(s @ s)
        return -d0 / ss if ss > 0 else math.inf
    nz = s != 0
    rr, sv = r[nz], s[nz]
    sign = np.sign(sv)
    t_in = (-delta * sign - rr) / sv   # r + t s enters the quadratic band here ...
    t_out = (delta * sign - rr) / sv   # ... and leaves it here
    s2 = sv * sv
    slope0 = float(s2[(t_in <= 0) & (t_out > 0)].sum())
    enter, leave = t_in > 0, t_out > 0
    ts = np.concatenate([t_in[enter], t_out[leave]])
    dv = np.concatenate([s2[enter], -s2[leave]])
    order = np.argsort(ts, kind="stable")
    ts, dv = ts[order], dv[order]
    slopes = slope0 + np.concatenate([[0.0], np.cumsum(dv)])  # slope after each breakpoint
    knots = np.concatenate([[0.0], ts])
    deriv = d0 + np.concatenate([[0.0], np.cumsum(slopes[:-1] * np.diff(knots))])
    j = int(np.argmax(deriv >= 0)) if np.any(deriv >= 0) else deriv.size
    if j < deriv.size:
        slope = slopes[j - 1]
        return float(knots[j - 1] - deriv[j - 1] / slope) if slope > 0 else float(knots[j])
    slope = slopes[-1]
    return float(knots[-1] - deriv[-1] / slope) if slope > 0 else math.inf


class HuberModel:
    """Log residuals of a :class:`Problem`, their Jacobian and the re-solve of its linear parameters.

    Evaluations that raise or overflow give infinite residuals (a rejected
    step); ``nfev`` counts evaluations.
    """

    def __init__(self, problem: Problem):
        self.problem = problem
        self.law = problem.law
        self.x = problem.x
        self.log_y = np.log(problem.y)
        self.jac_f = law_jacobian(problem.law)
        self.lin = problem.linear_index if problem.law.basis is not None else []
        self.nfev = 0

    def residuals(self, p):
        """``(log residuals, prediction)``; infinite residuals where the law cannot be evaluated."""
        self.nfev += 1
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                f = np.asarray(self.law.function(p, self.x), dtype=float)
                r = np.log(np.maximum(f, _TINY)) - self.log_y
        except SOLVER_ERRORS:
            return np.full(self.log_y.shape, np.inf), np.full(self.log_y.shape, np.nan)
        if not np.isfinite(r).all():
            r = np.where(np.isfinite(r), r, np.inf)
        return r, f

    def jacobian(self, p, f):
        """Jacobian of the log residuals (rows where the prediction is not positive use the target)."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            J = self.jac_f(p, self.x)
            scale = np.where(f > 0, f, np.exp(self.log_y))
            return J / scale[:, None]

    def resolve_linear(self, p, r, f, delta, lo, hi):
        """``p`` with its linear parameters re-solved: one Huber-weighted bounded least-squares step.

        The log residuals are linearised around the prediction ``f``
        (``log g - log y ~ r + (g - f) / f``), which is linear in the linear
        parameters; Huber's weights ``min(1, delta / |r|)`` make the step one
        of iteratively reweighted least squares. ``None`` where it cannot be
        formed.
        """
        if not self.lin or not (f > 0).all():
            return None
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                X = self.law.basis(p, self.x)
        except SOLVER_ERRORS:
            return None
        if not np.isfinite(X).all():
            return None
        if np.isfinite(delta):
            sw = np.sqrt(delta / np.maximum(np.abs(r), delta))
        else:
            sw = np.ones_like(r)
        A, z = X * (sw / f)[:, None], sw * (1.0 - r)
        lin_lo, lin_hi = lo[self.lin], hi[self.lin]
        # the normal equations of the column-scaled system are accurate enough for a proposal (the step
        # is accepted only if the objective falls); bounded_lstsq handles active bounds
        scale = np.sqrt(np.einsum("ij,ij->j", A, A))
        b = None
        if (scale > 0).all():
            As = A / scale
            try:
                b = np.linalg.solve(As.T @ As, As.T @ z) / scale
            except np.linalg.LinAlgError:
                b = None
        if b is None or not ((b >= lin_lo).all() and (b <= lin_hi).all() and np.isfinite(b).all()):
            b = bounded_lstsq(A, z, lin_lo, lin_hi)
        q = p.copy()
        q[self.lin] = b
        return q


@dataclass(frozen=True, eq=False)
class HuberSolve:
    """Outcome of :func:`newton_huber`: parameters, objective, iterations, evaluations, convergence."""

    params: np.ndarray
    value: float
    nit: int
    nfev: int
    success: bool
    message: str


def _newton_direction(J, g, inl, wi, p, lo, hi, lam):
    """Damped Gauss-Newton step on the free parameters (those at a bound and pushed outward stay)."""
    k = p.size
    free = ~(((p <= lo) & (g > 0)) | ((p >= hi) & (g < 0)))
    for _ in range(k):
        if not free.any():
            return None
        Jf = J[:, free]
        Ji = Jf[inl]
        scale = np.sqrt(np.maximum(np.einsum("ij,ij,i->j", Jf, Jf, wi), 1e-300))
        H = (Ji.T @ Ji) / np.outer(scale, scale)
        try:
            step = -np.linalg.solve(H + lam * np.eye(scale.size), g[free] / scale) / scale
        except np.linalg.LinAlgError:
            return None
        d = np.zeros(k)
        d[free] = step
        outward = ((p <= lo) & (d < 0)) | ((p >= hi) & (d > 0))
        if not outward.any():
            return d if np.isfinite(d).all() else None
        free &= ~outward
    return None


def newton_huber(model: HuberModel, p0: np.ndarray, lo: np.ndarray, hi: np.ndarray, delta: float,
                 max_iter: int | None = None, ftol: float = 1e-13, xtol: float = 1e-10,
                 polish: bool = True) -> HuberSolve:
    """Minimise ``sum H_delta(log residuals)`` (half their sum of squares for ``delta = inf``) from ``p0``.

    Each iteration takes the Gauss-Newton model of the Huber loss (the
    residuals linearised, the Hessian from the residuals inside the band),
    damps it like Levenberg-Marquardt, keeps parameters at a bound that the
    step would push outward, and moves along the step to the exact minimum
    of the linearised Huber loss (:func:`line_min`), clipped to the box.
    After the step the linear parameters are re-solved
    (:meth:`HuberModel.resolve_linear`), which keeps the iterate on the
    valley floor of the exponents. A step is accepted only if the true
    objective decreases; otherwise it is halved (up to four times), then
    more strongly damped.
    Stops when a step or its decrease is negligible, or the fit is exact
    (root mean square log residual about 1e-10). If that fails within
    ``max_iter`` iterations (default 40; well-posed fits take about 5 to
    20), scipy's trust-region least squares with Huber loss and the analytic
    Jacobian polishes the result (``polish=False``: it is returned, unsuccessful).
    """
    max_iter = 40 if max_iter is None else max(int(max_iter), 1)
    p = np.clip(np.asarray(p0, dtype=float), lo, hi)
    r, f = model.residuals(p)
    F = huber_value(r, delta)
    nfev0 = model.nfev - 1
    if not np.isfinite(F):
        return HuberSolve(p, math.inf, 0, 1, False, "objective not finite at the start")
    lam_min, lam = 1e-9, 1e-9
    f_floor = 1e-20 * r.size  # an exact fit: log residuals of about 1e-10, far below the data's precision
    if F <= f_floor:
        return HuberSolve(p, F, 0, 1, True, "converged (exact fit)")
    for it in range(1, max_iter + 1):
        J = model.jacobian(p, f)
        if not np.isfinite(J).all():
            return HuberSolve(p, F, it, model.nfev - nfev0, False, "Jacobian not finite")
        a = np.abs(r)
        inl = a <= delta
        g = J.T @ _huber_psi(r, delta)
        wi = np.minimum(1.0, delta / np.maximum(a, _TINY)) if np.isfinite(delta) else np.ones_like(r)
        accepted, first = False, True
        while lam < 1e6 and not accepted:
            d = _newton_direction(J, g, inl, wi, p, lo, hi, lam)
            if d is None:
                lam *= 10
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                t_box = np.where(d > 0, (hi - p) / d, np.where(d < 0, (lo - p) / d, np.inf))
            t_max = float(np.min(t_box))
            s_dir = J @ d
            t = min(line_min(r, s_dir, delta), t_max)
            if not (np.isfinite(t) and t > 0):
                lam *= 10
                continue
            if first and F - huber_value(r + t * s_dir, delta) <= 1e-3 * ftol * F:
                # the model promises no decrease worth a step: a stationary point
                return HuberSolve(p, F, it, model.nfev - nfev0, True, "converged (no decrease predicted)")
            first = False
            for _ in range(4):
                pn = np.clip(p + t * d, lo, hi)
                if t == t_max:  # land exactly on the bound that limits the step
                    hit = t_box <= t_max
                    pn[hit & (d > 0)] = hi[hit & (d > 0)]
                    pn[hit & (d < 0)] = lo[hit & (d < 0)]
                rn, fn = model.residuals(pn)
                Fn = huber_value(rn, delta)
                q = model.resolve_linear(pn, rn, fn, delta, lo, hi) if np.isfinite(Fn) else None
                if q is not None:
                    rq, fq = model.residuals(q)
                    Fq = huber_value(rq, delta)
                    if Fq < Fn:
                        pn, rn, fn, Fn = q, rq, fq, Fq
                if Fn < F:
                    accepted = True
                    break
                t *= 0.5
            if not accepted:
                lam = max(lam * 100, 1e-6)
        if not accepted:
            return HuberSolve(p, F, it, model.nfev - nfev0, True, "no further decrease")
        pred = F - huber_value(r + J @ (pn - p), delta)
        ratio = (F - Fn) / pred if pred > 0 else 1.0
        if ratio < 0.25:
            lam = max(lam * 4, 1e-8)
        elif ratio > 0.75:
            lam = max(lam * 0.1, lam_min)
        small_step = bool((np.abs(pn - p) <= xtol * (np.abs(p) + xtol)).all())
        small_decrease = F - Fn <= ftol * F
        p, r, f, F = pn, rn, fn, Fn
        if small_step or small_decrease or F <= f_floor:
            return HuberSolve(p, F, it, model.nfev - nfev0, True, "converged")
    if not polish:
        return HuberSolve(p, F, max_iter, model.nfev - nfev0, False, "iteration limit reached")
    return _polish_huber(model, p, lo, hi, delta, max_iter, model.nfev - nfev0)


def _polish_huber(model, p, lo, hi, delta, nit, nfev):
    """scipy's trust-region least squares (Huber loss, analytic Jacobian) from ``p``: the fallback."""
    def fun(q):
        return np.where(np.isfinite(rq := model.residuals(q)[0]), rq, 1e10)

    def jac(q):
        r, f = model.residuals(q)
        J = model.jacobian(q, f)
        return np.where(np.isfinite(J), J, 0.0)

    loss = ("linear", 1.0) if not np.isfinite(delta) else ("huber", delta)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        sol = least_squares(fun, clip_inside(p, lo, hi), jac=jac, bounds=(lo, hi), method="trf",
                            x_scale="jac", loss=loss[0], f_scale=loss[1])
    r, _ = model.residuals(sol.x)
    value = huber_value(r, delta)
    r0, _ = model.residuals(p)
    if not value <= huber_value(r0, delta):
        return HuberSolve(p, huber_value(r0, delta), nit, nfev + sol.nfev, False, "iteration limit reached")
    return HuberSolve(sol.x, value, nit + sol.nfev, nfev + sol.nfev, bool(sol.success),
                      f"polished by trust-region least squares: {sol.message}")


def _screen_start(problem: Problem, point: dict, lo, hi):
    """A grid point's start: its exponents, the linear parameters by relative-weighted bounded least squares.

    Minimising ``sum ((prediction - y) / y)^2`` is log-space least squares to
    first order; a point that names every parameter is used as given.
    """
    law = problem.law
    if all(name in point for name in law.param_names):
        return clip_inside(law.param_array(point), lo, hi)
    template = start_template(lo, hi)
    nl, lin = problem.nonlinear_index, problem.linear_index
    p = template.copy()
    for i in range(law.n_params):
        if law.param_names[i] in point:
            p[i] = float(point[law.param_names[i]])
    p[nl] = np.clip(p[nl], lo[nl], hi[nl])
    if law.basis is not None and lin:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            X = law.basis(p, problem.x)
        if not np.all(np.isfinite(X)):
            raise FloatingPointError("basis not finite at this start")
        w = 1.0 / problem.y
        p[lin] = bounded_lstsq(X * w[:, None], np.ones_like(w), lo[lin], hi[lin])
    return clip_inside(p, lo, hi)


def _same_point(p, q, rtol=1e-6):
    return bool(np.all(np.abs(p - q) <= rtol * np.maximum(np.abs(p), np.abs(q)) + 1e-12))


def fit_huber(problem: Problem, grid: list, lo: np.ndarray, hi: np.ndarray, max_nfev: int | None,
              n_smooth: int | None = None, n_huber: int = 2) -> list:
    """The ``"huber_log"`` driver: screen the grid, smooth the best starts, Huber-fit the best results.

    1. Every grid point becomes a start (:func:`_screen_start`), ranked by
       the log-space sum of squares.
    2. The best ``n_smooth`` starts (by default a third of the grid, at
       least 2 and at most 3) are refined on that smooth objective
       (:func:`newton_huber` with ``delta = inf``, to a loose tolerance: the
       stage only ranks the starts and brings them near the optimum).
    3. The best ``n_huber`` distinct smooth optima are refined on the Huber
       loss (:func:`newton_huber` at ``delta``); starts whose smooth stage
       ended at the same point share the result. Should an unrefined start
       still have a lower Huber loss than every refined one, it is refined too.

    ``max_nfev`` (when given) caps the iterations of each stage, and a stage
    that reaches it is an unsuccessful row (no polishing fallback). Returns
    one :func:`start_row` per grid point; rows not refined keep their start
    as ``final_<p>`` (``refined`` False), like the profile method's.
    """
    law = problem.law
    model = HuberModel(problem)
    max_iter = max_nfev
    polish = max_nfev is None  # a caller's evaluation limit is not overridden by the fallback
    n = len(grid)
    starts, smooth_values, rows = [None] * n, np.full(n, np.inf), []
    for i, point in enumerate(grid):
        try:
            p = _screen_start(problem, point, lo, hi)
        except SOLVER_ERRORS as exc:
            rows.append(start_row(law, np.full(law.n_params, np.nan), np.full(law.n_params, np.nan), math.nan,
                                  False, False, 0, f"error: {exc}"))
            continue
        r, _ = model.residuals(p)
        value, smooth_value = huber_value(r, problem.delta), huber_value(r, math.inf)
        ok = bool(np.isfinite(value))
        starts[i] = p
        smooth_values[i] = smooth_value if ok else np.inf
        rows.append(start_row(law, p, p, value if ok else math.nan, ok, False, 1,
                              "screened (not refined)" if ok else "objective not finite at the start"))
    order = [int(i) for i in np.argsort(smooth_values, kind="stable") if np.isfinite(smooth_values[i])]
    if not order:
        return rows

    # smooth stage on the best few starts
    smooth = {}
    if n_smooth is None:
        n_smooth = min(3, max(2, math.ceil(n / 3)))
    for i in order[: max(int(n_smooth), 1)]:
        try:
            smooth[i] = newton_huber(model, starts[i], lo, hi, math.inf, max_iter, ftol=1e-8, xtol=1e-6,
                                     polish=polish)
        except SOLVER_ERRORS as exc:
            rows[i] = start_row(law, starts[i], np.full(law.n_params, np.nan), math.nan, False, True, 0,
                                f"error: {exc}")
    distinct = []  # (smooth result, [start indices])
    for i in sorted(smooth, key=lambda j: smooth[j].value):
        for res, members in distinct:
            if _same_point(res.params, smooth[i].params, rtol=1e-4):
                members.append(i)
                break
        else:
            distinct.append((smooth[i], [i]))

    huber_done = {}

    def huber_stage(p_from, members, nfev_before):
        try:
            out = newton_huber(model, p_from, lo, hi, problem.delta, max_iter, polish=polish)
        except SOLVER_ERRORS as exc:
            for i in members:
                rows[i] = start_row(law, starts[i], np.full(law.n_params, np.nan), math.nan, False, True,
                                    nfev_before.get(i, 0), f"error: {exc}")
            return
        value = problem.value(out.params)
        ok = bool(out.success and np.isfinite(value) and np.all(np.isfinite(out.params)))
        for i in members:
            huber_done[i] = value
            rows[i] = start_row(law, starts[i], out.params, value, ok, True, nfev_before.get(i, 0) + out.nfev,
                                out.message)

    nfev_smooth = {i: res.nfev for i, res in smooth.items()}
    for rank, (res, members) in enumerate(distinct):
        if rank < max(int(n_huber), 1):
            huber_stage(res.params, members, nfev_smooth)
        else:
            value = problem.value(res.params)
            for i in members:
                rows[i] = start_row(law, starts[i], res.params, value, bool(res.success and np.isfinite(value)),
                                    True, res.nfev, "log-space least squares only (not among the best for the "
                                                    "Huber stage)")
    # no unrefined row may beat the refined ones
    for _ in range(n):
        best = min((v for v in huber_done.values() if np.isfinite(v)), default=math.inf)
        pending = [i for i in range(n) if i not in huber_done and rows[i]["success"]
                   and rows[i]["objective"] < best]
        if not pending:
            break
        i = min(pending, key=lambda j: rows[j]["objective"])
        p_from = np.array([rows[i][f"final_{name}"] for name in law.param_names])
        huber_stage(p_from, [i], {i: int(rows[i]["nfev"])})
    return rows


def relative_profile_start(problem: Problem, p_start: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A start near the log-space least-squares optimum, by variable projection around ``p_start``.

    For a law with one nonlinear parameter: a bounded Brent search over it
    (:func:`wide_bracket` around its value in ``p_start``) of the relative
    sum of squares ``sum ((prediction - y) / y)^2``, the linear parameters
    solved exactly by bounded least squares at every value. This is the
    least-squares path's profile with relative weights; to first order it is
    log-space least squares, and an exact fit is one of both. Laws with
    several nonlinear parameters (or none) get ``p_start`` back.
    """
    nl, lin = problem.nonlinear_index, problem.linear_index
    if len(nl) != 1 or problem.law.basis is None or not lin:
        return p_start
    w = 1.0 / problem.y
    ones = np.ones_like(w)

    def params(theta):
        p = p_start.copy()
        p[nl] = theta
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            X = problem.law.basis(p, problem.x) * w[:, None]
        if not np.isfinite(X).all():
            return None, X
        p[lin] = bounded_lstsq(X, ones, lo[lin], hi[lin])
        return p, X

    def value(theta):
        try:
            p, X = params(np.atleast_1d(theta))
        except SOLVER_ERRORS:
            return math.inf
        if p is None:
            return math.inf
        r = X @ p[lin] - ones
        return float(r @ r)

    a, b = wide_bracket(p_start[nl], lo, hi, problem)
    with np.errstate(invalid="ignore", over="ignore"):
        sol = minimize_scalar(value, bounds=(a, b), method="bounded",
                              options={"xatol": 1e-9 * max(1.0, abs(float(p_start[nl[0]])))})
    p, _ = params(np.atleast_1d(sol.x))
    return p if p is not None and np.isfinite(p).all() else p_start


def huber_warm_refit(problem: Problem, p_start: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> HuberSolve:
    """A ``"huber_log"`` refit from a nearby optimum (a bootstrap replicate).

    :func:`newton_huber` from ``p_start``, which converges in a few
    iterations when the replicate's optimum is near. A replicate whose
    optimum lies far along a valley (one the law fits exactly, say) gets up
    to two more tries: with one nonlinear parameter a restart from
    :func:`relative_profile_start`, with several more iterations from where
    the first stopped; then, if neither converged, the earlier solver
    (:meth:`Problem.solve`: scipy's trust-region least squares through the
    Huber threshold schedule, no smooth stage). The lowest converged result
    is kept.
    """
    model = HuberModel(problem)
    first = newton_huber(model, p_start, lo, hi, problem.delta, max_iter=8, polish=False)
    if first.success:
        return first
    tries = [first]
    try:
        if len(problem.nonlinear_index) == 1:
            p1, more = relative_profile_start(problem, p_start, lo, hi), 40
        else:
            p1, more = first.params, 60
        tries.append(newton_huber(model, p1, lo, hi, problem.delta, max_iter=more, polish=False))
    except SOLVER_ERRORS:
        pass
    if not tries[-1].success:
        try:
            sol = problem.solve(p_start, lo, hi, max_nfev=None, smooth_first=False)
            value = problem.value(sol.x)
            tries.append(HuberSolve(sol.x, value if np.isfinite(value) else math.inf, int(sol.nfev),
                                    int(sol.nfev), bool(sol.success), f"threshold schedule: {sol.message}"))
        except SOLVER_ERRORS:
            pass
    done = [t for t in tries if t.success and np.isfinite(t.value)]
    return min(done, key=lambda t: t.value) if done else first
