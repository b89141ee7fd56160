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

import contextlib
import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, least_squares, lsq_linear, minimize_scalar

from scaling_lib import laws as _laws
from scaling_lib.laws import Law

_TINY = 1e-300

SOLVER_ERRORS = (ValueError, FloatingPointError, np.linalg.LinAlgError)
"""Exceptions a start or a bootstrap refit may raise; they are recorded, never fatal."""


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


# --- the problem: residuals, objective, profile, solvers -----------------------------------------


@dataclass(frozen=True, eq=False)
class RefinedProfile:
    """Outcome of :meth:`Problem.refine_profile`.

    Attributes
    ----------
    params : numpy.ndarray
        All parameters: the refined nonlinear ones and their optimal linear ones.
    value : float
        Objective at ``params``.
    success : bool
        The optimiser reported convergence.
    nfev : int
        Profiled-objective evaluations.
    message : str
        The optimiser's message.
    """

    params: np.ndarray
    value: float
    success: bool
    nfev: int
    message: str


@dataclass(frozen=True)
class Problem:
    """A law, its data and an objective: what every start and bootstrap refit minimises.

    Parameters
    ----------
    law : Law
    x : dict
        ``{law_input: values}``.
    y : numpy.ndarray
        The target.
    objective : {"lsq", "huber_log"}
    delta : float
        Huber threshold (``"huber_log"`` only).

    Examples
    --------
    >>> from scaling_lib import laws
    >>> x = np.logspace(15, 20, 6)
    >>> y = laws.SATURATING_POWER({"E": 2.0, "A": 300.0, "alpha": 0.15}, x=x)
    >>> problem = Problem(laws.SATURATING_POWER, {"x": x}, y, "lsq", 1e-3)
    >>> problem.linear_index, problem.nonlinear_index
    ([0, 1], [2])
    >>> lo, hi = law_bounds(laws.SATURATING_POWER)
    >>> [round(float(v), 6) for v in problem.profile(np.array([0.15]), start_template(lo, hi), lo, hi)]
    [2.0, 300.0, 0.15]
    """

    law: Law
    x: dict
    y: np.ndarray
    objective: str
    delta: float

    @property
    def log_residuals(self) -> bool:
        """Residuals are differences of logarithms (``"huber_log"`` or a law fitted in log space)."""
        return self.objective == "huber_log" or self.law.fit_space == "log"

    def residuals(self, p: np.ndarray) -> np.ndarray:
        """Prediction minus target, in the space the objective measures."""
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
        """Positions of the law's linear parameters."""
        return [self.law.param_names.index(n) for n in self.law.linear_params]

    @property
    def nonlinear_index(self) -> list:
        """Positions of the other parameters (the exponents)."""
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
        except SOLVER_ERRORS:
            return math.inf
        return value if np.isfinite(value) else math.inf

    def refine_profile(self, theta0: np.ndarray, bracket, template, lo, hi) -> RefinedProfile:
        """Minimise the profiled objective over the nonlinear parameters.

        One nonlinear parameter: bounded Brent search inside ``bracket``
        (a pair of values). Several: bounded trust-region least squares on
        the profiled residuals from ``theta0`` (``bracket`` is ignored).
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
            return RefinedProfile(p, self.value(p), bool(sol.success), int(sol.nfev), str(sol.message))

        def resid(theta):
            p = self.profile(theta, template, lo, hi)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                r = self.residuals(p)
            return np.where(np.isfinite(r), r, 1e10)

        with np.errstate(over="ignore", invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            sol = least_squares(resid, clip_inside(theta0, lo[nl], hi[nl]), bounds=(lo[nl], hi[nl]), method="trf")
        p = self.profile(sol.x, template, lo, hi)
        return RefinedProfile(p, self.value(p), bool(sol.success), int(sol.nfev), str(sol.message))

    def subset(self, idx: np.ndarray) -> Problem:
        """The same problem on the rows ``idx`` (with repeats, for a bootstrap replicate)."""
        return Problem(self.law, {k: v[idx] for k, v in self.x.items()}, self.y[idx], self.objective, self.delta)

    def solve(self, p0: np.ndarray, lo: np.ndarray, hi: np.ndarray, max_nfev: int | None,
              smooth_first: bool = True, memo: dict | None = None):
        """Bounded trust-region least squares from ``p0`` (a ``scipy.optimize.OptimizeResult``).

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
            for scale in huber_schedule(np.abs(self.residuals(x)), self.delta):
                sol = least_squares(
                    self.residuals, clip_inside(x, lo, hi), bounds=(lo, hi), method="trf", x_scale="jac",
                    max_nfev=max_nfev, loss="huber", f_scale=scale,
                )
                nfev += sol.nfev
                x = sol.x
            sol.nfev = nfev
            if memo is not None:
                memo[key] = sol
            return sol


def huber_schedule(abs_residuals: np.ndarray, delta: float) -> list:
    """Huber thresholds from the largest residual down to ``delta``, a factor ~3 apart.

    Minimising a sequence of Huber losses with a shrinking threshold keeps the
    solver in the region where most residuals are quadratic, so it moves
    towards the robust optimum instead of stalling on an L1-like surface.

    Examples
    --------
    >>> [round(float(s), 6) for s in huber_schedule(np.array([0.027, 0.001]), 1e-3)]
    [0.009, 0.003, 0.001]
    >>> huber_schedule(np.array([1e-4]), 1e-3)
    [0.001]
    """
    top = float(np.max(abs_residuals)) if abs_residuals.size else delta
    if not np.isfinite(top) or top <= delta:
        return [delta]
    steps = int(np.ceil(np.log(top / delta) / np.log(3.0)))
    return list(np.geomspace(top, delta, steps + 1)[1:])


# --- bounds, brackets and start templates --------------------------------------------------------


def law_bounds(law: Law) -> tuple[np.ndarray, np.ndarray]:
    """The law's lower and upper parameter bounds as two float arrays.

    Examples
    --------
    >>> from scaling_lib import laws
    >>> law_bounds(laws.POWER)
    (array([ 0., -5.]), array([inf,  5.]))
    """
    lo, hi = (np.array(b, dtype=float) for b in zip(*law.bounds))
    return lo, hi


def clip_inside(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Clip into the open box so the trust-region solver accepts the start.

    Examples
    --------
    >>> clip_inside(np.array([0.0, 2.0]), np.array([0.0, 0.0]), np.array([np.inf, 1.0])) > [0.0, 0.99]
    array([ True,  True])
    """
    span = np.where(np.isfinite(hi - lo), hi - lo, np.maximum(np.abs(p), 1.0))
    return np.clip(p, lo + 1e-9 * span, hi - 1e-9 * span)


def start_template(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Placeholder values inside the bounds for parameters a start does not give.

    Examples
    --------
    >>> start_template(np.array([0.0, 1e-4]), np.array([np.inf, 2.0]))
    array([1.     , 1.00005])
    """
    return np.array([0.5 * (l + h) if np.isfinite(l + h) else max(l, 0.0) + 1.0 for l, h in zip(lo, hi)])


def wide_bracket(theta: np.ndarray, lo: np.ndarray, hi: np.ndarray, problem: Problem):
    """Search interval for a warm-started one-parameter refit: the value +- 3 times its size."""
    i = problem.nonlinear_index[0]
    t = float(theta[0])
    width = 3.0 * max(abs(t), 1e-3)
    return max(lo[i], t - width), min(hi[i], t + width)


# --- methods and multi-start drivers -------------------------------------------------------------


def choose_method(law: Law, objective: str, method: str) -> str:
    """Resolve ``method`` (``"auto"``, ``"profile"`` or ``"full"``) for a law and objective.

    ``"profile"`` is exact only for ``"lsq"`` on a law with a linear basis and
    a linear fit space; ``"auto"`` picks it there and ``"full"`` elsewhere.

    Examples
    --------
    >>> from scaling_lib import laws
    >>> choose_method(laws.OVERTRAINING, "lsq", "auto"), choose_method(laws.POWER, "lsq", "auto")
    ('profile', 'full')
    """
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


def start_row(law: Law, start: np.ndarray, final: np.ndarray, value: float, ok: bool, refined: bool, nfev: int,
              msg: str) -> dict:
    """One row of :attr:`scaling_lib.fit.FitResult.starts`."""
    row = {f"start_{n}": v for n, v in zip(law.param_names, start)}
    row.update({f"final_{n}": v for n, v in zip(law.param_names, final)})
    row.update({"objective": value, "success": ok, "refined": refined, "nfev": nfev, "message": msg})
    return row


def fit_profile(problem: Problem, grid: list, lo: np.ndarray, hi: np.ndarray, n_refine: int) -> list:
    """The ``"profile"`` method: scan ``grid`` on the profiled objective, refine the best points.

    With one nonlinear parameter the candidates are the scan's local minima,
    each refined between its grid neighbours; with several, the best points.
    At most ``n_refine`` (at least one) are refined. Returns one
    :func:`start_row` per grid point.
    """
    law = problem.law
    nl = problem.nonlinear_index
    template = start_template(lo, hi)
    thetas, profiled, values, errors = [], [], [], []
    for point in grid:
        theta = np.array([float(point.get(law.param_names[i], template[i])) for i in nl])
        theta = np.clip(theta, lo[nl], hi[nl])
        error = ""
        try:
            p = problem.profile(theta, template, lo, hi)
            value = problem.value(p) if np.all(np.isfinite(p)) else math.nan
        except SOLVER_ERRORS as exc:
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
        start_row(law, profiled[i], profiled[i], values[i], bool(finite[i]), False, 1, errors[i])
        for i in range(len(grid))
    ]
    for i, bracket in candidates:
        try:
            refined = problem.refine_profile(thetas[i], bracket, profiled[i], lo, hi)
            p, value = refined.params, refined.value
            ok = bool(refined.success and np.isfinite(value) and np.all(np.isfinite(p)))
            rows[i] = start_row(law, profiled[i], p, value, ok, True, refined.nfev + 1, refined.message)
        except SOLVER_ERRORS as exc:
            rows[i] = start_row(law, profiled[i], np.full(law.n_params, np.nan), math.nan, False, True, 0,
                                f"error: {exc}")
    return rows


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


def _jac_overtraining(p, x):
    E, a, b, eta = p
    log_c = math.log(6.0) + 2.0 * np.log(x["N"]) + np.log(x["M"])
    log_m = np.log(x["M"])
    s, t = log_m - log_c, -(log_m + log_c)
    u, v = np.exp(eta * s), np.exp(eta * t)
    return np.column_stack([np.ones_like(u), u, v, a * s * u + b * t * v])


def _jac_chinchilla(p, x):
    E, A, alpha, B, beta = p
    log_n, log_d = np.log(x["N"]), np.log(x["D"])
    tn, td = np.exp(-alpha * log_n), np.exp(-beta * log_d)
    return np.column_stack([np.ones_like(tn), tn, -A * log_n * tn, td, -B * log_d * td])


def _jac_saturating(p, x):
    E, A, alpha = p
    log_x = np.log(x["x"])
    t = np.exp(-alpha * log_x)
    return np.column_stack([np.ones_like(t), t, -A * log_x * t])


def _jac_power(p, x):
    A, alpha = p
    log_x = np.log(x["x"])
    t = np.exp(alpha * log_x)
    return np.column_stack([t, A * log_x * t])


def _jac_error(p, x):
    eps, k, gamma = p
    L = x["L"]
    e = np.exp(-gamma * L)
    return np.column_stack([np.ones_like(e), -e, k * L * e])


_LAW_JACOBIANS = {
    _laws._overtraining: _jac_overtraining,
    _laws._chinchilla: _jac_chinchilla,
    _laws._saturating: _jac_saturating,
    _laws._power: _jac_power,
    _laws._error: _jac_error,
}


def law_jacobian(law: Law):
    """``jacobian(p, x) -> ndarray (n, n_params)``: derivatives of ``law.function`` in its parameters.

    Analytic for the laws of :mod:`scaling_lib.laws` (and for any law with a
    ``jacobian`` attribute); otherwise the linear parameters' columns come
    from ``law.basis`` (exact) and the others from central differences.

    Examples
    --------
    >>> from scaling_lib import laws
    >>> x = {"x": np.array([1.0, 10.0])}
    >>> np.round(law_jacobian(laws.POWER)(np.array([2.0, 0.5]), x), 4)
    array([[ 1.    ,  0.    ],
           [ 3.1623, 14.5628]])
    """
    own = getattr(law, "jacobian", None) or _LAW_JACOBIANS.get(law.function)
    if own is not None:
        return own
    lin = [law.param_names.index(n) for n in law.linear_params] if law.basis is not None else []
    others = [i for i in range(law.n_params) if i not in lin]

    def numeric(p, x):
        p = np.asarray(p, dtype=float)
        cols = [None] * law.n_params
        if lin:
            X = law.basis(p, x)
            for j, i in enumerate(lin):
                cols[i] = X[:, j]
        for i in others:
            h = 1e-6 * max(abs(p[i]), 1e-3)
            up, down = p.copy(), p.copy()
            up[i] += h
            down[i] -= h
            cols[i] = (law.function(up, x) - law.function(down, x)) / (2 * h)
        return np.column_stack(cols)

    return numeric


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
