"""Tests for the Huber solver of scaling_lib._solver: agreement with least squares on exact data,
agreement with a slow reference optimiser on noisy data with outliers, Jacobians, the line search,
the selectable earlier solver, bookkeeping. No timing asserts (speed is in benchmarks/bench_fit.py)."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import OptimizeWarning, least_squares, minimize

from conftest import FRAGILE
from scaling_lib import _solver, fit, laws
from scaling_lib.laws import Law

TRUE = {
    "overtraining": {"E": 1.6, "a": 140.0, "b": 190.0, "eta": 0.12},
    "chinchilla": {"E": 1.82, "A": 482.01, "alpha": 0.3478, "B": 2085.43, "beta": 0.3658},
    "saturating_power": {"E": 2.0, "A": 300.0, "alpha": 0.12},
    "power": {"A": 0.1, "alpha": 0.5},
    "error": {"eps": 0.75, "k": 5.0, "gamma": 0.8},
}


def design(law: Law) -> pd.DataFrame:
    if law.name == "overtraining":
        N, M = np.meshgrid(np.logspace(7, 9, 5), [5.0, 20.0, 80.0, 320.0])
        return pd.DataFrame({"N": N.ravel(), "M": M.ravel()})
    if law.name == "chinchilla":
        N, M = np.meshgrid(np.logspace(7, 10, 6), [5.0, 20.0, 80.0, 320.0])
        return pd.DataFrame({"N": N.ravel(), "D": (N * M).ravel()})
    if law.name == "error":
        return pd.DataFrame({"L": np.linspace(2.5, 5.0, 12)})
    return pd.DataFrame({"x": np.logspace(15, 21, 10)})


def noisy_with_outliers(law: Law, seed: int, noise: float = 0.01, n_out: int = 3) -> pd.DataFrame:
    """Law values times exp(noise * normal), with ``n_out`` of them off by 5 to 10 percent."""
    df = design(law)
    rng = np.random.default_rng(seed)
    y = law.evaluate(TRUE[law.name], df) * np.exp(noise * rng.standard_normal(len(df)))
    out = rng.choice(len(df), n_out, replace=False)
    y[out] *= 1.0 + rng.uniform(0.05, 0.10, n_out) * rng.choice([-1.0, 1.0], n_out)
    df["y"] = y
    return df


def params_of(res) -> np.ndarray:
    return res.law.param_array(res.params)


# ----------------------------------------------------------------------------- exact data


@pytest.mark.parametrize("law", laws.ALL_LAWS, ids=lambda law: law.name)
def test_huber_and_lsq_agree_on_noise_free_data(law):
    df = design(law)
    df["y"] = law.evaluate(TRUE[law.name], df)
    lsq = fit.fit(law, df, "y", objective="lsq")
    hub = fit.fit(law, df, "y", objective="huber_log")
    assert lsq.success and hub.success
    np.testing.assert_allclose(params_of(hub), params_of(lsq), rtol=1e-5)
    np.testing.assert_allclose(params_of(hub), law.param_array(TRUE[law.name]), rtol=1e-5)
    assert hub.objective_value < 1e-16


# ----------------------------------------------------------------------------- a slow reference


def reference_huber(law: Law, df: pd.DataFrame, delta: float = 1e-3, n_random: int = 12, seed: int = 0):
    """The Huber loss of log residuals minimised the slow way: L-BFGS-B from the law's grid and from
    random starts (linear parameters on a log scale), the best polished by scipy's least squares."""
    x = {name: df[name].to_numpy(float) for name in law.inputs}
    log_y = np.log(df["y"].to_numpy(float))
    lo, hi = (np.array(b, dtype=float) for b in zip(*law.bounds))
    lin = [law.param_names.index(n) for n in law.linear_params]

    def resid(p):
        with np.errstate(all="ignore"):
            f = law.function(p, x)
        return np.log(np.maximum(f, 1e-300)) - log_y

    def huber(p):
        r = resid(p)
        a = np.abs(r)
        value = np.sum(np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta)))
        return float(value) if np.isfinite(value) else 1e10

    rng = np.random.default_rng(seed)
    starts = []
    scale = np.exp(np.mean(log_y))
    for _ in range(n_random):
        p = np.empty(law.n_params)
        for i in range(law.n_params):
            if i in lin:
                p[i] = scale * 10 ** rng.uniform(-2, 2) if np.isinf(hi[i]) else rng.uniform(lo[i], hi[i])
            else:
                p[i] = rng.uniform(max(lo[i], 0.02), min(hi[i], 1.5))
        starts.append(p)
    best = None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for p0 in starts:
            sol = minimize(huber, p0, method="L-BFGS-B", bounds=list(zip(lo, hi)),
                           options={"maxiter": 1000, "ftol": 1e-13, "gtol": 1e-10})
            if best is None or sol.fun < best.fun:
                best = sol
        p = best.x
        for _ in range(3):
            sol = least_squares(resid, np.clip(p, lo + 1e-12, hi - 1e-12), bounds=(lo, hi), loss="huber",
                                f_scale=delta, x_scale="jac", ftol=1e-15, xtol=1e-15, gtol=1e-15, max_nfev=20000)
            if huber(sol.x) <= huber(p):
                p = sol.x
    return p, huber(p)


@pytest.mark.parametrize("law,seed", [(laws.OVERTRAINING, 1), (laws.CHINCHILLA, 2), (laws.SATURATING_POWER, 3),
                                      (laws.ERROR, 4)], ids=lambda v: getattr(v, "name", str(v)))
def test_huber_optimum_matches_a_slow_reference(law, seed):
    df = noisy_with_outliers(law, seed)
    res = fit.fit(law, df, "y", objective="huber_log")
    p_ref, v_ref = reference_huber(law, df)
    assert res.success
    # the same optimum: objective within 1e-6 relative (never worse), parameters to 4 significant digits
    assert res.objective_value <= v_ref * (1 + 1e-6)
    assert abs(res.objective_value - v_ref) <= 1e-6 * v_ref
    np.testing.assert_allclose(params_of(res), p_ref, rtol=5e-5)


def test_new_and_schedule_solvers_reach_the_same_optimum():
    df = noisy_with_outliers(laws.CHINCHILLA, 7)
    new = fit.fit(laws.CHINCHILLA, df, "y", objective="huber_log")
    with _solver.huber_solver("schedule"):
        old = fit.fit(laws.CHINCHILLA, df, "y", objective="huber_log")
    assert new.objective_value <= old.objective_value * (1 + 1e-6)
    np.testing.assert_allclose(params_of(new), params_of(old), rtol=5e-5)


def test_huber_solver_selection_is_scoped_and_checked():
    assert _solver._HUBER["solver"] == "newton"
    with _solver.huber_solver("schedule"):
        assert _solver._HUBER["solver"] == "schedule"
    assert _solver._HUBER["solver"] == "newton"
    with pytest.raises(ValueError, match="unknown Huber solver"):
        with _solver.huber_solver("irls"):
            pass


# ----------------------------------------------------------------------------- pieces


@pytest.mark.parametrize("law", laws.ALL_LAWS, ids=lambda law: law.name)
def test_analytic_jacobians_match_finite_differences(law):
    x = {name: design(law)[name].to_numpy(float) for name in law.inputs}
    p = law.param_array(TRUE[law.name])
    J = _solver.law_jacobian(law)(p, x)
    assert J.shape == (len(next(iter(x.values()))), law.n_params)
    for i in range(law.n_params):
        h = 1e-6 * max(abs(p[i]), 1e-3)
        up, down = p.copy(), p.copy()
        up[i] += h
        down[i] -= h
        fd = (law.function(up, x) - law.function(down, x)) / (2 * h)
        np.testing.assert_allclose(J[:, i], fd, rtol=1e-6, atol=1e-9 * np.max(np.abs(fd)))


def test_generic_jacobian_for_a_law_without_an_analytic_one():
    law = Law(name="sat_copy", param_names=("E", "A", "alpha"), inputs=("x",),
              function=lambda p, x: p[0] + p[1] * x["x"] ** -p[2],
              bounds=laws.SATURATING_POWER.bounds, start_grid=laws.SATURATING_POWER.start_grid,
              latex_template="{E} + {A} x^{{-{alpha}}}", symbols=("E", "A", r"\alpha"),
              linear_params=("E", "A"), basis=lambda p, x: np.column_stack([np.ones_like(x["x"]), x["x"] ** -p[2]]))
    x = {"x": np.logspace(15, 21, 10)}
    p = np.array([2.0, 300.0, 0.12])
    np.testing.assert_allclose(_solver.law_jacobian(law)(p, x), _solver.law_jacobian(laws.SATURATING_POWER)(p, x),
                               rtol=1e-7)
    df = noisy_with_outliers(laws.SATURATING_POWER, 5)
    a = fit.fit(law, df, "y", objective="huber_log")
    b = fit.fit(laws.SATURATING_POWER, df, "y", objective="huber_log")
    assert abs(a.objective_value - b.objective_value) <= 1e-8 * b.objective_value
    np.testing.assert_allclose(params_of(a), params_of(b), rtol=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_line_min_is_the_exact_minimum_along_the_line(seed):
    rng = np.random.default_rng(seed)
    r, s = rng.normal(0, 3, 30), rng.normal(0, 1, 30)
    s = s if _solver._huber_psi(r, 1.0) @ s < 0 else -s
    t = _solver.line_min(r, s, 1.0)
    grid = np.linspace(0, 4 * t, 4001)
    values = [_solver.huber_value(r + u * s, 1.0) for u in grid]
    assert _solver.huber_value(r + t * s, 1.0) <= min(values) + 1e-12
    assert _solver.line_min(r, -s, 1.0) == 0.0
    np.testing.assert_allclose(_solver.line_min(r, s, math.inf), -(r @ s) / (s @ s))


def test_huber_value_matches_the_problem_objective():
    df = noisy_with_outliers(laws.OVERTRAINING, 3)
    x = {"N": df["N"].to_numpy(float), "M": df["M"].to_numpy(float)}
    problem = _solver.Problem(laws.OVERTRAINING, x, df["y"].to_numpy(float), "huber_log", 1e-3)
    p = laws.OVERTRAINING.param_array(TRUE["overtraining"])
    r, _ = _solver.HuberModel(problem).residuals(p)
    assert _solver.huber_value(r, 1e-3) == problem.value(p)


# ----------------------------------------------------------------------------- bookkeeping


def test_starts_table_of_a_huber_fit():
    df = noisy_with_outliers(laws.CHINCHILLA, 8)
    res = fit.fit(laws.CHINCHILLA, df, "y", objective="huber_log")
    assert res.n_starts == len(laws.CHINCHILLA.start_points()) and res.n_failed_starts == 0
    best = res.starts.loc[res.starts["objective"].idxmin()]
    assert bool(best["refined"]) and bool(best["success"])
    assert 1 <= res.starts["refined"].sum() <= 3
    assert (res.starts.loc[~res.starts["refined"], "message"] == "screened (not refined)").all()


def test_huber_starts_that_raise_are_recorded():
    df = noisy_with_outliers(laws.SATURATING_POWER, 9)
    res = fit.fit(FRAGILE, df, "y", objective="huber_log")
    assert res.success and res.n_failed_starts == 2
    failed = res.starts[~res.starts["success"]]
    assert failed["message"].str.contains("exponent out of the supported range").all()
    plain = fit.fit(laws.SATURATING_POWER, df, "y", objective="huber_log")
    np.testing.assert_allclose(params_of(res), params_of(plain), rtol=1e-6)
    none = fit.fit(FRAGILE, df, "y", objective="huber_log", starts=[{"alpha": 2.0}, {"alpha": 4.0}])
    assert not none.success and none.n_failed_starts == 2


def test_huber_bootstrap_refits_match_the_schedule_solver():
    df = noisy_with_outliers(laws.OVERTRAINING, 10)
    new = fit.fit(laws.OVERTRAINING, df, "y", objective="huber_log", seed=3)
    boot = new.bootstrap(20)
    assert boot["success"].all()
    assert boot.equals(fit.fit(laws.OVERTRAINING, df, "y", objective="huber_log", seed=3).bootstrap(20))
    with _solver.huber_solver("schedule"):
        old = fit.fit(laws.OVERTRAINING, df, "y", objective="huber_log", seed=3).bootstrap(20)
    rng = np.random.default_rng(3)
    names = list(laws.OVERTRAINING.param_names)
    for b in range(20):
        idx = rng.integers(0, len(df), len(df))
        problem = new._problem.subset(idx)
        v_new = problem.value(boot.loc[b, names].to_numpy(float))
        v_old = problem.value(old.loc[b, names].to_numpy(float))
        assert v_new <= v_old * (1 + 1e-6)


def test_exact_fit_stops_at_once():
    df = design(laws.SATURATING_POWER)
    df["y"] = laws.SATURATING_POWER.evaluate(TRUE["saturating_power"], df)
    x = {"x": df["x"].to_numpy(float)}
    problem = _solver.Problem(laws.SATURATING_POWER, x, df["y"].to_numpy(float), "huber_log", 1e-3)
    lo, hi = _solver.law_bounds(laws.SATURATING_POWER)
    out = _solver.newton_huber(_solver.HuberModel(problem), laws.SATURATING_POWER.param_array(TRUE["saturating_power"]),
                               lo, hi, 1e-3)
    assert out.success and out.nit == 0 and out.value == 0.0
