"""Tests of scaling_lib.compute_optimal on synthetic data with known optima."""

import math

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy.optimize import minimize_scalar

from scaling_lib import compute_optimal as co
from scaling_lib import counting, fit, laws, runs

CHIN = {"E": 1.8, "A": 300.0, "alpha": 0.32, "B": 900.0, "beta": 0.28}
A_TRUE = CHIN["beta"] / (CHIN["alpha"] + CHIN["beta"])


def isoflop_grid(budgets, n_sizes=7, span=1.0, params=CHIN, noise=0.0, seed=0):
    """Runs at each budget: sizes spread over +-span (in ln units... of log10) around the analytic optimum."""
    rng = np.random.default_rng(seed)
    rows = []
    for C in budgets:
        n_star = co.chinchilla_optimum(params, C).N[0]
        for k, f in enumerate(np.logspace(-span / 2, span / 2, n_sizes)):
            N = n_star * f
            D = C / (6 * N)
            loss = laws.CHINCHILLA(params, N=N, D=D)[0] + noise * rng.standard_normal()
            rows.append({"run_id": f"C{C:.0e}_{k}", "budget": C, "N": N, "D": D, "flops": 6 * N * D,
                         "loss_en": loss})
    return pd.DataFrame(rows)


# --- parabola --------------------------------------------------------------------------------


def test_parabola_recovers_vertex():
    x = np.linspace(10, 14, 6)
    p = co.fit_parabola(x, 2.5 + 0.3 * (x - 11.7) ** 2)
    assert_allclose([p.x_opt, p.y_opt], [11.7, 2.5], atol=1e-9)
    assert p.inside and p.n_points == 6
    assert_allclose(p(11.7), 2.5, atol=1e-9)


def test_parabola_vertex_outside_range_is_flagged():
    x = np.linspace(0, 1, 4)
    assert not co.fit_parabola(x, (x - 3.0) ** 2).inside


@pytest.mark.parametrize(
    "x, y, message",
    [
        ([1, 1, 2, 2], [1, 2, 3, 4], "at least 3 distinct"),
        ([0, 1, 2], [0, 1, 0], "opens downwards"),
        ([0, 1, 2], [0, 1], "differ in length"),
        ([0, 1, np.nan], [0, 1, 2], "finite"),
    ],
)
def test_parabola_bad_input(x, y, message):
    with pytest.raises(co.ComputeOptimalError, match=message):
        co.fit_parabola(x, y)


# --- approach 2 ------------------------------------------------------------------------------


def test_isoflop_optima_recover_known_optimum_and_exponents():
    budgets = [1e12, 3e12, 9e12, 2.7e13]
    df = isoflop_grid(budgets, span=0.8)
    res = co.isoflop_optima(df, target="loss_en", n_boot=0)
    truth = co.chinchilla_optimum(CHIN, budgets)
    # a parabola in ln N is an approximation of the true IsoFLOP profile: close, not exact
    assert_allclose(res.table["N_opt"], truth.N, rtol=0.03)
    assert_allclose(res.table["D_opt"], truth.D, rtol=0.03)
    assert_allclose(res.table["C"], budgets, rtol=1e-12)
    assert_allclose(res.table["D_opt"] * res.table["N_opt"] * 6, budgets, rtol=1e-12)
    assert res.table["inside"].all()
    ex = co.optimum_exponents(res)
    assert ex.a.method == "t"
    assert_allclose(ex.a.exponent, A_TRUE, atol=0.01)
    assert_allclose(ex.a.exponent + ex.b.exponent, 1.0, atol=1e-9)


def test_isoflop_bootstrap_interval_covers_truth_and_is_deterministic():
    budgets = [1e12, 3e12, 9e12, 2.7e13]
    df = isoflop_grid(budgets, span=1.0, noise=0.01, seed=3)
    res = co.isoflop_optima(df, target="loss_en", n_boot=100, seed=1)
    again = co.isoflop_optima(df, target="loss_en", n_boot=100, seed=1)
    pd.testing.assert_frame_equal(res.table, again.table)
    t = res.table
    assert (t["N_lo"] <= t["N_opt"]).all() and (t["N_opt"] <= t["N_hi"]).all()
    assert (t["boot_ok"] > 50).all()
    ex = co.optimum_exponents(res)
    assert ex.a.method == "bootstrap"
    assert ex.a.exponent_lo < A_TRUE < ex.a.exponent_hi
    assert ex.a.exponent_hi - ex.a.exponent_lo < 0.3


@pytest.mark.parametrize("resample", ["residuals", "runs"])
def test_isoflop_bootstrap_schemes_cover_truth(resample):
    budgets = [1e12, 3e12, 9e12, 2.7e13]
    df = isoflop_grid(budgets, span=1.0, noise=0.01, seed=5)
    ex = co.optimum_exponents(co.isoflop_optima(df, target="loss_en", n_boot=100, seed=2, resample=resample))
    assert ex.a.exponent_lo < A_TRUE < ex.a.exponent_hi


def test_residual_bootstrap_keeps_the_design_and_collapses_without_noise():
    budgets = [1e12, 3e12, 9e12]
    exact = co.isoflop_optima(isoflop_grid(budgets, span=1.0), target="loss_en", n_boot=20,
                               resample="residuals")
    # a parabola does not fit the true profile exactly, so residuals are tiny but not zero
    width = (exact.table["N_hi"] - exact.table["N_lo"]) / exact.table["N_opt"]
    assert (width < 0.05).all()
    noisy = isoflop_grid(budgets, span=1.0, noise=0.02, seed=4)
    by_runs = co.isoflop_optima(noisy, target="loss_en", n_boot=200, seed=0, resample="runs").table
    by_res = co.isoflop_optima(noisy, target="loss_en", n_boot=200, seed=0, resample="residuals").table
    # with the sizes fixed, every replicate keeps a vertex near the sampled range
    assert (by_res["N_lo"] > 0.2 * by_res["N_opt"]).all()
    assert ((by_res["N_hi"] - by_res["N_lo"]) <= (by_runs["N_hi"] - by_runs["N_lo"]) * 1.5).all()


def test_replicates_outside_the_sampled_sizes_are_dropped():
    # one group whose minimum sits at the edge of its sizes: many replicates extrapolate
    N = np.logspace(4, 5, 6)
    rng = np.random.default_rng(0)
    loss = 3 + 0.05 * np.log(N / N[0]) ** 2 + rng.normal(0, 0.02, N.size)
    df = pd.DataFrame({"budget": 1e12, "N": N, "flops": 1e12, "loss_en": loss})
    kept = co.isoflop_optima(df, target="loss_en", n_boot=200, seed=0)
    loose = co.isoflop_optima(df, target="loss_en", n_boot=200, seed=0, replicates_inside=False)
    assert kept.table["boot_ok"][0] < loose.table["boot_ok"][0]
    inside = kept.boot["N_opt"].dropna()
    assert ((inside >= N.min() * (1 - 1e-9)) & (inside <= N.max() * (1 + 1e-9))).all()
    assert (loose.boot["N_opt"].dropna() < N.min()).any()


def test_isoflop_bad_resample():
    with pytest.raises(ValueError, match="resample must be"):
        co.isoflop_optima(isoflop_grid([1e12, 3e12]), target="loss_en", resample="jackknife")


def test_isoflop_group_compute_is_read_at_the_optimum():
    # a group whose recounted compute rises with N: C at the vertex follows the line of ln C in ln N
    N = np.logspace(4, 6, 5)
    x = np.log(N)
    C = 1e12 * (N / 1e5) ** 0.2
    df = pd.DataFrame({"budget": 1, "N": N, "flops": C, "loss_en": 3 + (x - np.log(1e5)) ** 2})
    row = co.isoflop_optima(df, target="loss_en", n_boot=0).table.iloc[0]
    assert_allclose([row["N_opt"], row["C"]], [1e5, 1e12], rtol=1e-9)
    assert_allclose(row["D_opt"], 1e12 / 6e5, rtol=1e-9)


def test_isoflop_optima_bad_input():
    df = isoflop_grid([1e12], n_sizes=5)
    with pytest.raises(runs.MissingColumnError, match=r"run table lacks column\(s\) \['flops'\]"):
        co.isoflop_optima(df.drop(columns="flops"), target="loss_en")
    with pytest.raises(runs.MissingColumnError, match=r"\['loss'\]"):
        co.isoflop_optima(df, target="loss")
    bad = df.copy()
    bad.loc[2, "N"] = -1.0
    with pytest.raises(co.ComputeOptimalError, match=r"group 1e\+12.*C1e\+12_2"):
        co.isoflop_optima(bad, target="loss_en", n_boot=0)
    with pytest.raises(co.ComputeOptimalError, match="at least 3 distinct"):
        co.isoflop_optima(df.head(2), target="loss_en", n_boot=0)


def test_target_is_required():
    df = isoflop_grid([1e12, 3e12])
    with pytest.raises(TypeError, match="target"):
        co.isoflop_optima(df)
    with pytest.raises(TypeError, match="target"):
        co.exponents_by_convention(df, ["6ND"])
    with pytest.raises(TypeError, match="target"):
        co.optimal_lr(df)


def test_optimum_exponents_is_a_named_pair_of_trends():
    res = co.isoflop_optima(isoflop_grid([1e12, 3e12, 9e12], noise=0.01, seed=2), target="loss_en", n_boot=30)
    ex = co.optimum_exponents(res)
    assert isinstance(ex, co.OptimumExponents)
    assert isinstance(ex.a, co.PowerTrend) and isinstance(ex.b, co.PowerTrend)
    frame = ex.to_frame()
    assert list(frame.index) == ["a", "b"]
    assert frame.loc["a", "estimate"] == ex.a.exponent and frame.loc["b", "hi"] == ex.b.exponent_hi
    assert frame.loc["a", "method"] == "bootstrap" and frame.loc["a", "n_points"] == 3
    lines = str(ex).splitlines()
    assert lines[0].startswith(f"a = {ex.a.exponent:.3f} [") and "95% bootstrap interval, 3 points" in lines[0]
    assert lines[1].startswith("b = ")


def test_power_trend_text_without_interval():
    t = co.fit_power_trend([1.0, 2.0], [3.0, 6.0])
    assert str(t) == "1.000 (no interval, 2 points)"
    assert t.summary()["method"] == "t"


def test_power_trend_bad_input():
    with pytest.raises(co.ComputeOptimalError, match="positive"):
        co.fit_power_trend([1.0, 2.0, 3.0], [1.0, -1.0, 2.0])
    with pytest.raises(co.ComputeOptimalError, match="at least 2"):
        co.fit_power_trend([1.0], [1.0])


# --- conventions -----------------------------------------------------------------------------


def ladder(widths=(16, 24, 32, 48, 64, 96, 128), D=1e6):
    rows = [{"run_id": f"w{d}", "d_model": d, "n_layers": 2 + i // 2, "n_heads": d // 8, "vocab_size": 1024,
             "seq_len": 128, "D": D} for i, d in enumerate(widths)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("convention", counting.FLOP_CONVENTIONS)
def test_convention_switch_changes_compute_as_counting_says(convention):
    df = ladder()
    out = co.convention_columns(df, convention)
    for (_, row), c, n_eff in zip(df.iterrows(), out["C"], out["N_eff"]):
        shape = co.default_shape(row)
        assert_allclose(c, counting.training_flops(shape, row["D"], convention), rtol=1e-12)
        assert_allclose(c, 6 * n_eff * row["D"], rtol=1e-12)
    assert "C" not in df.columns  # the input is not modified


def test_convention_order_and_6nd_equals_total_params():
    df = ladder()
    c = {conv: co.convention_columns(df, conv)["C"].to_numpy() for conv in counting.FLOP_CONVENTIONS}
    assert np.all(c["6N_ne_D"] < c["with_head"]) and np.all(c["with_head"] < c["6ND"])
    assert np.all(c["6ND"] < c["with_attention"])
    totals = [counting.param_counts(co.default_shape(r))["total"] for _, r in df.iterrows()]
    assert_allclose(co.convention_columns(df, "6ND")["N_eff"], totals)


def test_convention_bad_input():
    with pytest.raises(co.ComputeOptimalError, match="unknown FLOP convention"):
        co.convention_columns(ladder(), "7ND")
    with pytest.raises(runs.MissingColumnError, match=r"lacks column\(s\) \['d_model'\]"):
        co.convention_columns(ladder().drop(columns="d_model"), "6ND")


# --- approach 3 ------------------------------------------------------------------------------


def test_chinchilla_optimum_matches_numeric_minimisation():
    for C in (1e12, 1e18, 5.76e23):
        opt = co.chinchilla_optimum(CHIN, C)

        def loss(log_n):
            N = math.exp(log_n)
            return float(laws.CHINCHILLA(CHIN, N=N, D=C / (6 * N))[0])

        res = minimize_scalar(loss, bounds=(0, 60), method="bounded", options={"xatol": 1e-10})
        assert_allclose(opt.N[0], math.exp(res.x), rtol=1e-5)
        assert_allclose(opt.loss[0], res.fun, rtol=1e-10)
        assert_allclose(6 * opt.N[0] * opt.D[0], C, rtol=1e-12)
        assert_allclose(opt.C, [C])
    assert_allclose(opt.a + opt.b, 1.0)
    assert isinstance(opt, co.ChinchillaOptimum)
    assert_allclose(opt.to_frame()["N"], opt.N)


def test_chinchilla_optimum_bad_input():
    with pytest.raises(co.ComputeOptimalError, match="positive A, B"):
        co.chinchilla_optimum({**CHIN, "B": 0.0}, 1e12)
    with pytest.raises(co.ComputeOptimalError, match="budgets must be positive"):
        co.chinchilla_optimum(CHIN, [1e12, -1.0])


def test_approach3_recovers_exponents():
    rng = np.random.default_rng(0)
    N = np.repeat(np.logspace(4.5, 6.5, 6), 4)
    D = N * np.tile([5.0, 20.0, 80.0, 320.0], 6)
    loss = laws.CHINCHILLA(CHIN, N=N, D=D) * np.exp(0.002 * rng.standard_normal(N.size))
    df = pd.DataFrame({"run_id": [f"r{i}" for i in range(N.size)], "N": N, "D": D, "loss": loss})
    res = co.approach3(df, "loss", budgets=[1e13, 1e15], n_boot=30)
    assert_allclose(res.exponents.loc["a", "estimate"], A_TRUE, atol=0.03)
    assert res.exponents.loc["a", "lo"] <= res.exponents.loc["a", "estimate"] <= res.exponents.loc["a", "hi"]
    truth = co.chinchilla_optimum(CHIN, [1e13, 1e15])
    assert_allclose(res.frontier["N_opt"], truth.N, rtol=0.3)
    assert (res.frontier["N_lo"] <= res.frontier["N_hi"]).all()
    assert isinstance(res.fit, fit.FitResult) and res.fit.target == "loss"
    assert str(res).startswith("approach 3 on 'loss': a = ")


# --- learning rate ---------------------------------------------------------------------------


def test_optimal_lr_and_trend():
    N = np.array([6e4, 1.8e5, 6e5])
    best = 0.05 * (N / 6e4) ** -0.4
    rows = []
    for name, n, b in zip("abc", N, best):
        for f in (0.5, 1.0, 2.0):
            rows.append({"model": name, "N": n, "lr": b * f * 1.1, "loss_en": 3 + 0.2 * np.log(b * f * 1.1 / b) ** 2})
    rows.append({"model": "d", "N": 1e6, "lr": 0.01, "loss_en": 3.0})  # one lr only
    t = co.optimal_lr(pd.DataFrame(rows), target="loss_en")
    assert_allclose(t["lr_opt"][:3], best, rtol=1e-9)
    assert t["inside"][:3].all()
    assert np.isnan(t["lr_opt"][3]) and "distinct" in t["note"][3]
    trend = co.fit_power_trend(t["N"][:3], t["lr_opt"][:3])
    assert_allclose(trend.exponent, -0.4, atol=1e-9)


def test_optimal_lr_mixed_sizes_error():
    df = pd.DataFrame({"model": ["a", "a", "a"], "N": [1.0, 2.0, 1.0], "lr": [0.1, 0.2, 0.3], "loss_en": [1, 0, 1]})
    with pytest.raises(co.ComputeOptimalError, match="group 'a' mixes model sizes"):
        co.optimal_lr(df, target="loss_en")


def test_published_exponents_table():
    t = co.published_exponents()
    assert list(t["step"]) == ["kaplan_reproduction", "count_head", "fix_warmup", "cosine_decay", "tuned"]
    assert (np.diff(t["a"]) < 0).all() and set(t["source"]) == {"porian2024resolving"}


# --- the convention moves the exponent; curves from sweep records ------------------------------


def test_convention_switch_moves_the_exponent_as_derived():
    # a loss that is a Chinchilla law in total N: 6ND recovers a; counting N_ne (which grows faster
    # than N along the ladder) gives a larger exponent, as Porian et al. found for Kaplan's counting
    widths = np.arange(16, 400, 8)
    base = pd.DataFrame([{"d_model": int(d), "n_layers": 2, "n_heads": 2, "vocab_size": 1024, "seq_len": 128,
                          "D": 1.0} for d in widths])
    N = co.convention_columns(base, "6ND")["N_eff"].to_numpy()
    rows = []
    for C in (3e11, 1e12, 3e12, 1e13):
        n_star = co.chinchilla_optimum(CHIN, C).N[0]
        pick = np.argsort(np.abs(np.log(N / n_star)))[:7]
        for i in pick:
            row = base.iloc[i].to_dict()
            row.update(budget=C, D=C / (6 * N[i]), loss_en=laws.CHINCHILLA(CHIN, N=N[i], D=C / (6 * N[i]))[0])
            rows.append(row)
    df = pd.DataFrame(rows)
    t = co.exponents_by_convention(df, ["6ND", "6N_ne_D", "with_head"], target="loss_en", n_boot=0).set_index("convention")
    assert_allclose(t.loc["6ND", "a"], A_TRUE, atol=0.02)
    assert t.loc["6N_ne_D", "a"] > t.loc["with_head", "a"] > t.loc["6ND", "a"]
    assert (t["n_groups"] == 4).all()


# --- the facade ------------------------------------------------------------------------------


def test_facade_reexports_the_modules_public_names():
    from scaling_lib import approach3, flop_conventions, isoflop_optima, lr_optimum, optimum_fits, published

    for module in (approach3, flop_conventions, isoflop_optima, lr_optimum, optimum_fits, published):
        for name in dir(module):
            obj = getattr(module, name)
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if name in ("group_label",):  # a message helper, not part of the facade
                continue
            assert getattr(co, name) is obj, f"compute_optimal.{name}"
            assert name in co.__all__
    assert co.ComputeOptimalError is optimum_fits.ComputeOptimalError
    assert co.PORIAN_EXPONENTS is published.PORIAN_EXPONENTS


def test_missing_columns_are_the_projects_one_error():
    assert issubclass(runs.MissingColumnError, ValueError)
    with pytest.raises(runs.MissingColumnError, match=r"\['lr'\]"):
        co.optimal_lr(pd.DataFrame({"model": ["a"], "N": [1.0], "loss_en": [1.0]}), target="loss_en")
    with pytest.raises(runs.MissingColumnError, match=r"\['D'\]"):
        co.convention_columns(ladder().drop(columns="D"), "6ND")
