"""Tests for scaling_lib.fit and its solver (scaling_lib._solver): recovery, multi-start bookkeeping,
bootstrap, errors."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import OptimizeWarning, curve_fit

from scaling_lib import fit, laws, runs
from scaling_lib.laws import Law

from conftest import FRAGILE, OPENLM, needs_openlm

# ----------------------------------------------------------------------------- synthetic data

TRUE = {
    "overtraining": {"E": 1.6, "a": 140.0, "b": 190.0, "eta": 0.12},
    "chinchilla": {"E": 1.69, "A": 406.4, "alpha": 0.34, "B": 410.7, "beta": 0.28},
    "saturating_power": {"E": 2.0, "A": 300.0, "alpha": 0.12},
    "power": {"A": 0.1, "alpha": 0.5},
    "error": {"eps": 0.75, "k": 5.0, "gamma": 0.8},
}


def synthetic(law: Law, noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Noise-free law values (times 1 + noise * standard normal) on a fixed design."""
    if law.name == "overtraining":
        N, M = np.meshgrid(np.logspace(7, 9, 5), [5.0, 20.0, 80.0, 320.0])
        cols = {"N": N.ravel(), "M": M.ravel()}
    elif law.name == "chinchilla":
        N, M = np.meshgrid(np.logspace(7, 10, 6), [5.0, 20.0, 80.0, 320.0])
        cols = {"N": N.ravel(), "D": (N * M).ravel()}
    elif law.name == "error":
        cols = {"L": np.linspace(2.5, 5.0, 12)}
    else:
        cols = {"x": np.logspace(15, 21, 10)}
    df = pd.DataFrame(cols)
    y = law.evaluate(TRUE[law.name], df)
    rng = np.random.default_rng(seed)
    df["y"] = y * (1.0 + noise * rng.standard_normal(y.size))
    df["truth"] = y
    df["run_id"] = [f"r{i}" for i in range(len(df))]
    return df


@pytest.mark.parametrize("objective", ["lsq", "huber_log"])
@pytest.mark.parametrize("law", laws.ALL_LAWS, ids=lambda law: law.name)
def test_recovers_parameters(law, objective):
    df = synthetic(law, noise=1e-4, seed=3)
    res = fit.fit(law, df, target="y", objective=objective)
    assert res.success
    got = [res.params[n] for n in law.param_names]
    want = [TRUE[law.name][n] for n in law.param_names]
    np.testing.assert_allclose(got, want, rtol=1e-2)
    assert res.n_data == len(df) and res.n_params == law.n_params
    assert res.dof == len(df) - law.n_params


def test_profile_and_full_methods_agree():
    df = synthetic(laws.OVERTRAINING, noise=0.01, seed=5)
    prof = fit.fit(laws.OVERTRAINING, df, "y", method="profile")
    full = fit.fit(laws.OVERTRAINING, df, "y", method="full")
    assert prof.method == "profile" and full.method == "full"
    assert prof.objective_value <= full.objective_value * (1 + 1e-6)
    np.testing.assert_allclose([prof.params[n] for n in "E a b eta".split()],
                               [full.params[n] for n in "E a b eta".split()], rtol=1e-3)


def test_auto_method_choice():
    df = synthetic(laws.POWER)
    assert fit.fit(laws.POWER, df, "y").method == "full"  # log fit space
    assert fit.fit(laws.SATURATING_POWER, synthetic(laws.SATURATING_POWER), "y").method == "profile"
    assert fit.fit(laws.SATURATING_POWER, synthetic(laws.SATURATING_POWER), "y",
                   objective="huber_log").method == "full"


def test_dof_counts_runs_minus_parameters():
    df = synthetic(laws.OVERTRAINING).iloc[:5]
    res = fit.fit(laws.OVERTRAINING, df, "y")
    assert (res.n_data, res.n_params, res.dof) == (5, 4, 1)
    assert len(res.residuals) == 5 and list(res.run_ids) == [f"r{i}" for i in range(5)]


def test_huber_log_resists_an_outlier():
    df = synthetic(laws.SATURATING_POWER, noise=1e-3, seed=2)
    df.loc[4, "y"] += 0.5
    true_alpha = TRUE["saturating_power"]["alpha"]
    lsq = fit.fit(laws.SATURATING_POWER, df, "y", objective="lsq")
    hub = fit.fit(laws.SATURATING_POWER, df, "y", objective="huber_log")
    assert abs(hub.params["alpha"] - true_alpha) < 0.02 * true_alpha
    assert abs(hub.params["alpha"] - true_alpha) < abs(lsq.params["alpha"] - true_alpha)


# ----------------------------------------------------------------------------- starts


def test_failed_starts_are_counted_not_fatal():
    df = synthetic(laws.SATURATING_POWER)
    res = fit.fit(FRAGILE, df, "y", method="profile")
    assert res.success and res.n_starts == 4 and res.n_failed_starts == 2
    failed = res.starts[~res.starts["success"]]
    assert sorted(failed["start_alpha"]) == [2.0, 3.0]
    assert failed["message"].str.contains("exponent out of the supported range").all()
    np.testing.assert_allclose(res.params["alpha"], TRUE["saturating_power"]["alpha"], rtol=1e-3)

    full = fit.fit(FRAGILE, df, "y", method="full")
    assert full.success and full.n_failed_starts >= 2


def test_no_converged_start_gives_an_unsuccessful_result():
    df = synthetic(laws.SATURATING_POWER)
    res = fit.fit(FRAGILE, df, "y", starts=[{"alpha": 2.0}, {"alpha": 4.0}])
    assert not res.success and res.n_failed_starts == 2
    assert all(np.isnan(v) for v in res.params.values())


def test_starts_table_and_user_starts():
    df = synthetic(laws.OVERTRAINING, noise=0.003)
    res = fit.fit(laws.OVERTRAINING, df, "y")
    assert res.n_starts == len(laws.OVERTRAINING.start_points())
    assert {"start_eta", "final_eta", "objective", "success", "refined", "nfev", "message"} <= set(res.starts)
    assert 1 <= res.starts["refined"].sum() <= 3
    assert res.starts["objective"].min() == pytest.approx(res.objective_value)
    custom = fit.fit(laws.OVERTRAINING, df, "y", starts=[{"eta": 0.1}, {"E": 1.0, "a": 10.0, "b": 10.0, "eta": 0.3}],
                     method="full")
    assert custom.n_starts == 2
    assert custom.starts.loc[1, "start_E"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown parameter"):
        fit.fit(laws.OVERTRAINING, df, "y", starts=[{"zeta": 1.0}])


def test_deterministic():
    df = synthetic(laws.OVERTRAINING, noise=0.01, seed=11)
    a = fit.fit(laws.OVERTRAINING, df, "y", seed=7, n_boot=30)
    b = fit.fit(laws.OVERTRAINING, df, "y", seed=7, n_boot=30)
    assert a.params == b.params
    pd.testing.assert_frame_equal(a.starts, b.starts)
    pd.testing.assert_frame_equal(a.bootstrap(30), b.bootstrap(30))
    c = fit.fit(laws.OVERTRAINING, df, "y", seed=8, n_boot=30)
    assert c.params == a.params
    assert not c.bootstrap(30).equals(a.bootstrap(30))


# ----------------------------------------------------------------------------- uncertainty


def test_prediction_intervals_cover_the_truth():
    law = laws.SATURATING_POWER
    covered = []
    for seed in range(6):
        df = synthetic(law, noise=0.01, seed=seed)
        res = fit.fit(law, df, "y", seed=seed, n_boot=100)
        out = res.predict(df, interval=0.9)
        assert (out["lo"] <= out["pred"]).all() and (out["pred"] <= out["hi"]).all()
        covered.append(((out["lo"] <= df["truth"]) & (df["truth"] <= out["hi"])).mean())
    assert 0.65 <= np.mean(covered) <= 1.0
    # and they are not trivially wide: the median width is under 10% of the loss
    assert float(((out["hi"] - out["lo"]) / out["pred"]).median()) < 0.1


def test_predict_runs_a_default_bootstrap_deterministically():
    df = synthetic(laws.ERROR, noise=0.01, seed=1)
    res = fit.fit(laws.ERROR, df.rename(columns={"L": "loss_c4_val"}), "y", inputs={"L": "loss_c4_val"})
    new = pd.DataFrame({"loss_c4_val": [2.0, 3.0, 6.0]}, index=["a", "b", "c"])
    first = res.predict(new)
    assert list(first.index) == ["a", "b", "c"] and list(first.columns) == ["pred", "lo", "hi", "extrapolation"]
    assert len(res.parametric_bootstrap()) > 0.9 * fit.DEFAULT_N_BOOT
    old = res.predict(new, interval_method="bootstrap")
    assert len(res.bootstrap()) == fit.DEFAULT_N_BOOT
    assert (old["lo"] <= old["hi"]).all()
    again = fit.fit(laws.ERROR, df.rename(columns={"L": "loss_c4_val"}), "y", inputs={"L": "loss_c4_val"})
    pd.testing.assert_frame_equal(first, again.predict(new))
    bare = res.predict(new, interval=None)
    assert bare["lo"].isna().all()
    np.testing.assert_allclose(bare["pred"], laws.ERROR(res.params, L=new["loss_c4_val"]))


def test_ci_summary_report():
    df = synthetic(laws.OVERTRAINING, noise=0.005, seed=4)
    res = fit.fit(laws.OVERTRAINING, df, "y", n_boot=50)
    table = res.ci(0.9)
    assert list(table.index) == list(laws.OVERTRAINING.param_names)
    assert (table["lo"] <= table["estimate"]).all() and (table["estimate"] <= table["hi"]).all()
    summary = res.summary()
    assert json.loads(json.dumps(summary))["dof"] == len(df) - 4
    assert summary["bootstrap"]["n_boot"] == 50
    text = res.report()
    assert "overtraining" in text and "dof=16" in text and "95% CI" in text
    with pytest.raises(ValueError, match="interval level must lie in"):
        res.predict(df, interval=1.5)


# ----------------------------------------------------------------------------- bad input


def test_bad_input_messages():
    df = synthetic(laws.OVERTRAINING)
    bad = df.copy()
    bad.loc[3, "N"] = np.nan
    with pytest.raises(fit.FitInputError, match=r"column 'N' has NaN.*'r3'"):
        fit.fit(laws.OVERTRAINING, bad, "y")
    bad = df.copy()
    bad.loc[1, "M"] = 0.0
    with pytest.raises(fit.FitInputError, match=r"column 'M' must be positive.*'r1'"):
        fit.fit(laws.OVERTRAINING, bad, "y")
    bad = df.copy()
    bad["M"] = "twenty"
    with pytest.raises(fit.FitInputError, match=r"column 'M' \(input 'M' of law overtraining\) is not numeric"):
        fit.fit(laws.OVERTRAINING, bad, "y")
    with pytest.raises(fit.FitInputError, match=r"has no input 'D'"):
        fit.fit(laws.OVERTRAINING, df, "y", inputs={"D": "N"})
    with pytest.raises(fit.FitInputError, match=r"fewer data points \(3\) than parameters \(4"):
        fit.fit(laws.OVERTRAINING, df.iloc[:3], "y")
    bad = df.copy()
    bad.loc[2, "y"] = -1.0
    with pytest.raises(fit.FitInputError, match=r"column 'y' must be positive.*'r2'"):
        fit.fit(laws.OVERTRAINING, bad, "y", objective="huber_log")
    with pytest.raises(ValueError, match="unknown objective 'mse'"):
        fit.fit(laws.OVERTRAINING, df, "y", objective="mse")
    with pytest.raises(ValueError, match="method='profile' needs objective='lsq'"):
        fit.fit(laws.OVERTRAINING, df, "y", objective="huber_log", method="profile")


def test_missing_columns_raise_the_projects_column_error():
    df = synthetic(laws.OVERTRAINING)
    with pytest.raises(runs.MissingColumnError, match=r"target 'loss_c4_val'\) lacks column\(s\) \['loss_c4_val'\]"):
        fit.fit(laws.OVERTRAINING, df, "loss_c4_val")
    with pytest.raises(runs.MissingColumnError, match=r"'M': 'tokens_per_param'.*lacks column\(s\) \['tokens_per_param'\]"):
        fit.fit(laws.OVERTRAINING, df, "y", inputs={"M": "tokens_per_param"})
    with pytest.raises(runs.MissingColumnError, match=r"lacks column\(s\) \['N', 'M'\]; it has \['x', 'y'\]"):
        fit.fit(laws.OVERTRAINING, {"x": df["N"].to_numpy(), "y": df["y"].to_numpy()}, "y")
    res = fit.fit(laws.OVERTRAINING, df, "y")
    with pytest.raises(runs.MissingColumnError, match=r"prediction data of law overtraining.*lacks column\(s\) \['M'\]"):
        res.predict(df.drop(columns="M"), interval=None)
    assert issubclass(runs.MissingColumnError, ValueError)


def test_no_public_default_names_a_testbed_column():
    import inspect

    for name in fit.__all__:
        obj = getattr(fit, name)
        funcs = [obj] if inspect.isfunction(obj) else [m for _, m in inspect.getmembers(obj, inspect.isfunction)]
        for func in funcs:
            for param in inspect.signature(func).parameters.values():
                default = param.default
                assert not (isinstance(default, str) and default.startswith(("loss_", "err_", "bpb_"))), (func, param)


def test_refine_profile_returns_named_fields():
    from scaling_lib import _solver

    df = synthetic(laws.SATURATING_POWER)
    problem = _solver.Problem(laws.SATURATING_POWER, {"x": df["x"].to_numpy()}, df["y"].to_numpy(), "lsq", 1e-3)
    lo, hi = _solver.law_bounds(laws.SATURATING_POWER)
    template = _solver.start_template(lo, hi)
    out = problem.refine_profile(np.array([0.1]), (0.03, 0.4), template, lo, hi)
    assert isinstance(out, _solver.RefinedProfile) and out.success and out.nfev > 0 and out.message
    np.testing.assert_allclose(out.params, [TRUE["saturating_power"][n] for n in ("E", "A", "alpha")], rtol=1e-5)
    assert out.value == pytest.approx(problem.value(out.params))
    with pytest.raises(AttributeError):
        out.value = 0.0


def test_bounded_lstsq_matches_scipy():
    from scipy.optimize import lsq_linear

    rng = np.random.default_rng(0)
    for _ in range(20):
        X = rng.standard_normal((8, 3))
        y = rng.standard_normal(8)
        lo, hi = np.array([0.0, 0.0, -0.2]), np.array([np.inf, 0.5, 0.2])
        ours = fit.bounded_lstsq(X, y, lo, hi)
        ref = lsq_linear(X, y, bounds=(lo, hi), tol=1e-12).x
        assert np.sum((X @ ours - y) ** 2) <= np.sum((X @ ref - y) ** 2) + 1e-10


# ----------------------------------------------------------------------------- published testbed


def _paper_form(nm, A, B, p, E):
    n, m = nm
    return A * n**p + B * 6.0 ** (p / 2) * (m * n) ** p + E


@needs_openlm
def test_published_fit_set_matches_curve_fit():
    table = runs.load_openlm_testbed(OPENLM)
    small = ["d=96_l=8_h=4", "d=512_l=8_h=4", "d=576_l=24_h=8", "d=1024_l=24_h=8"]
    df = table.query("train_set == 'C4' and model in @small and (M == 20 or (model == 'd=96_l=8_h=4' and M == 320))")
    assert len(df) == 5
    res = fit.fit(laws.OVERTRAINING, df, "loss_c4_val")
    y = df["loss_c4_val"].to_numpy()
    best = np.inf
    for p0 in ([1e2, 1e2, -0.1, 0.0], [3e2, 1e3, -0.3, 1.0], [1e3, 3e2, -0.1, 2.0]):
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", OptimizeWarning)
            popt, _ = curve_fit(_paper_form, np.array([df["N"], df["M"]]), y, p0=p0, maxfev=10000)
        best = min(best, float(np.sum((y - _paper_form(np.array([df["N"], df["M"]]), *popt)) ** 2)))
    assert res.rss <= best * (1 + 1e-6)
    assert 0.05 < res.params["eta"] < 0.3 and 1.0 < res.params["E"] < 3.0


def test_unidentified_bootstrap_replicates_are_left_out():
    df = synthetic(laws.OVERTRAINING, noise=0.01, seed=9).iloc[[0, 6, 12, 18, 19]]
    res = fit.fit(laws.OVERTRAINING, df, "y", n_boot=60)
    boot = res.bootstrap(60)
    assert (~boot.loc[boot["n_unique"] < 4, "success"]).all()
    assert boot["success"].sum() >= 2 and (boot["n_unique"] < 4).any()
    assert "unusable" in res.report()


def test_accepts_a_mapping_of_arrays():
    df = synthetic(laws.SATURATING_POWER)
    res = fit.fit(laws.SATURATING_POWER, {"x": df["x"].to_numpy(), "y": df["y"].to_numpy()}, "y")
    assert res.run_ids[0] == "row 0"
    np.testing.assert_allclose(res.params["alpha"], TRUE["saturating_power"]["alpha"], rtol=1e-6)


@pytest.mark.parametrize("name", ["fit", "_solver_core", "_huber"])
def test_docstring_examples(name):
    import doctest
    import importlib

    module = importlib.import_module(f"scaling_lib.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# ----------------------------------------------------------------------------- warnings, failed fits


def test_predict_on_a_failed_fit_raises():
    df = synthetic(laws.SATURATING_POWER)
    res = fit.fit(FRAGILE, df, "y", starts=[{"alpha": 2.0}, {"alpha": 4.0}])
    with pytest.raises(fit.FitFailedError, match=r"failed, no start converged \(error: exponent out of the supported"):
        res.predict(df, interval=None)
    assert issubclass(fit.FitFailedError, RuntimeError)


def test_summary_keeps_its_keys_and_adds_warnings():
    df = synthetic(laws.OVERTRAINING, noise=0.005, seed=4)
    summary = fit.fit(laws.OVERTRAINING, df, "y", n_boot=20).summary()
    old = {"law", "formula", "target", "inputs", "objective", "delta", "params", "n_data", "n_params", "dof",
           "objective_value", "rss", "rmse", "n_starts", "n_failed_starts", "success", "seed", "run_ids", "bootstrap"}
    assert old <= set(summary) and {"warnings", "checklist", "noise_floor", "held_out"} <= set(summary)
    assert summary["warnings"] == [] and json.loads(json.dumps(summary))["checklist"]["held-out check"] == "none"


def test_interval_methods_share_the_point_prediction():
    df = synthetic(laws.OVERTRAINING, noise=0.01, seed=2)
    res = fit.fit(laws.OVERTRAINING, df, "y", n_boot=30)
    new = pd.DataFrame({"N": [3e9], "M": [40.0]})
    param = res.predict(new)
    assert set(res._draws) == {30}  # as many parametric replicates as the run bootstrap has
    assert list(res.parametric_bootstrap(30).columns) == ["E", "a", "b", "eta", "sigma"]
    boot = res.predict(new, interval_method="bootstrap")
    assert param["pred"].iloc[0] == boot["pred"].iloc[0]
    assert param["hi"].iloc[0] - param["lo"].iloc[0] > boot["hi"].iloc[0] - boot["lo"].iloc[0]  # adds the run's noise
    wider = res.predict(new, extrapolation_noise=0.05)
    assert wider["hi"].iloc[0] - wider["lo"].iloc[0] > param["hi"].iloc[0] - param["lo"].iloc[0]
    with pytest.raises(ValueError, match="unknown interval_method"):
        res.predict(new, interval_method="profile")
