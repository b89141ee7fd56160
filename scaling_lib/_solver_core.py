"""The least-squares core behind :func:`scaling_lib.fit.fit` (private: use that function).

Every law is linear in some parameters once its exponents are fixed
(``Law.linear_params``, ``Law.basis``). Variable projection uses this: for
given nonlinear parameters ``theta`` the linear ones are solved exactly by
bounded linear least squares (:func:`bounded_lstsq`), which leaves a
*profiled* objective of ``theta`` alone. :func:`fit_profile` scans the law's
start grid on it and refines the best grid points (a bounded Brent search for
one exponent, trust-region least squares for several); :class:`Problem` also
runs bounded trust-region least squares on all parameters, and the earlier
Huber solver, a schedule of Huber thresholds shrinking to ``delta``
(:func:`huber_schedule`). The Huber solver in use is in
:mod:`scaling_lib._huber`; :mod:`scaling_lib._solver` chooses between them.
A start that raises or fails is a recorded row, never an exception.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, least_squares, lsq_linear, minimize_scalar

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
