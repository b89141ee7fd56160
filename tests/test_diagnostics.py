"""Tests for scaling_lib.diagnostics: fit warnings on constructed cases, extrapolation, seed noise, checklist."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from scaling_lib import diagnostics, fit, laws

TRUE = {"E": 1.6, "a": 140.0, "b": 190.0, "eta": 0.12}


def design(mults=(5.0, 20.0, 80.0, 320.0), noise=0.005, seed=0, params=TRUE):
    """Over-training-law losses on 5 sizes x the given multipliers, times (1 + noise * normal)."""
    N, M = (a.ravel() for a in np.meshgrid(np.logspace(7, 9, 5), np.asarray(mults, float)))
    y = laws.OVERTRAINING(params, N=N, M=M)
    y = y * (1 + noise * np.random.default_rng(seed).standard_normal(y.size))
    return pd.DataFrame({"run_id": [f"r{i}" for i in range(N.size)], "N": N, "M": M, "y": y})


def joined(result):
    return " | ".join(result.warnings)


def test_a_sound_fit_has_no_warnings():
    res = fit.fit(laws.OVERTRAINING, design(), "y", n_boot=50)
    assert res.success and res.warnings == []
    assert res.summary()["warnings"] == []
    assert "warnings   none" in res.report()


def test_one_multiplier_names_the_parameters_that_trade_off():
    res = fit.fit(laws.OVERTRAINING, design(mults=(20.0,)), "y")
    assert res.success
    text = joined(res)
    assert "near-singular" in text and ("b and a trade off" in text or "a and b trade off" in text)


def test_rising_losses_warn_of_bounds_and_an_undetermined_exponent():
    df = design()
    C = 6 * df["N"] ** 2 * df["M"]
    df["y"] = 2.0 + 0.1 * np.log(C / C.min()) * (1 + 0.01 * np.random.default_rng(1).standard_normal(len(df)))
    res = fit.fit(laws.OVERTRAINING, df, "y", n_boot=50)
    text = joined(res)
    assert "a = 0 lies at its lower bound 0" in text and "b = 0 lies at its lower bound 0" in text
    assert "eta has no effect on the fitted values" in text
    assert "fits no better than a constant" in text


def test_pure_noise_warns():
    df = design()
    df["y"] = 3.0 * (1 + 0.01 * np.random.default_rng(2).standard_normal(len(df)))
    for objective in ("lsq", "huber_log"):
        res = fit.fit(laws.OVERTRAINING, df, "y", objective=objective)
        assert res.success and res.warnings, objective
        assert "fits no better than a constant" in joined(res)


def test_a_parameter_at_its_bound_is_named():
    res = fit.fit(laws.OVERTRAINING, design(params={**TRUE, "E": 0.0}, noise=0.0), "y")
    assert [w for w in res.warnings if w.startswith("E = ") and "lower bound 0" in w]
    # within a hair of the bound counts too: E moved off 0 by 1e-7 changes no fitted value
    near = fit.fit(laws.OVERTRAINING, design(params={**TRUE, "E": 0.0}, noise=0.0), "y",
                   starts=[{"E": 1e-7, "a": 140.0, "b": 190.0, "eta": 0.12}], method="full")
    assert any(w.startswith("E = ") for w in near.warnings)


def test_few_dof_and_few_usable_replicates():
    df = design(noise=0.01).iloc[[0, 6, 12, 18, 19]]
    res = fit.fit(laws.OVERTRAINING, df, "y", n_boot=40)
    text = joined(res)
    assert "(dof = 1)" in text
    assert "bootstrap replicates" in text and "usable" in text


def test_interval_excluding_its_estimate_is_named():
    res = fit.fit(laws.OVERTRAINING, design(), "y", n_boot=20)
    res.bootstrap(20).loc[:, "eta"] = 0.4  # every replicate far from the estimate
    assert any("bootstrap interval of eta, [0.4, 0.4], does not contain its estimate" in w for w in res.warnings)


def test_predict_on_a_failed_fit_raises_with_the_optimisers_message():
    from test_fit import FRAGILE, synthetic

    res = fit.fit(FRAGILE, synthetic(laws.SATURATING_POWER), "y", starts=[{"alpha": 2.0}, {"alpha": 4.0}])
    assert not res.success
    with pytest.raises(fit.FitFailedError, match=r"fit of law fragile to 'y' failed.*exponent out of the supported"):
        res.predict(pd.DataFrame({"x": [1e20]}))
    with pytest.raises(fit.FitFailedError, match="failed"):
        res.bootstrap(10)
    assert res.warnings and res.warnings[0].startswith("no start converged")


def test_extrapolation_column_and_warning():
    res = fit.fit(laws.OVERTRAINING, design(), "y")
    new = pd.DataFrame({"N": [1e8, 1e11], "M": [20.0, 20.0]})
    out = res.predict(new, interval=None)
    assert out["extrapolation"].iloc[0] == 1.0
    assert out["extrapolation"].iloc[1] == pytest.approx(1e22 / 1e18 * 20 / 320)
    assert len(out.attrs["warnings"]) == 1 and "outside the fitted range of compute" in out.attrs["warnings"][0]
    assert res.predict(new.iloc[:1], interval=None).attrs["warnings"] == []


def test_parametric_intervals_cover_measured_values():
    law = laws.SATURATING_POWER
    x = np.logspace(15, 21, 12)
    truth = law({"E": 2.0, "A": 300.0, "alpha": 0.12}, x=x)
    rng = np.random.default_rng(0)
    hits = []
    for seed in range(5):
        y = truth * np.exp(0.01 * rng.standard_normal(x.size))
        res = fit.fit(law, pd.DataFrame({"x": x, "y": y}), "y", seed=seed)
        fresh = truth * np.exp(0.01 * rng.standard_normal(x.size))  # new runs at the same points
        out = res.predict(pd.DataFrame({"x": x}), interval=0.9, n_boot=60)
        assert (out["lo"] <= out["pred"]).all() and (out["pred"] <= out["hi"]).all()
        hits.append(((out["lo"] <= fresh) & (fresh <= out["hi"])).mean())
    assert 0.75 <= np.mean(hits) <= 1.0


def test_dof_zero_without_floor_gives_no_interval_and_says_so():
    df = design().iloc[[0, 6, 12, 18]]
    res = fit.fit(laws.OVERTRAINING, df, "y")
    out = res.predict(df, n_boot=20)
    assert out["lo"].isna().all() and "no prediction interval" in " ".join(out.attrs["warnings"])
    floored = fit.fit(laws.OVERTRAINING, df, "y", noise_floor=0.01)
    assert floored.predict(df, n_boot=20)["lo"].notna().all()


def test_seed_noise():
    df = pd.DataFrame({"N": [1, 1, 1, 2, 2, 3], "M": [20] * 6, "seed": [0, 1, 2, 0, 1, 0],
                       "loss": [3.0, 3.0 * math.exp(0.02), 3.0 * math.exp(-0.02), 2.0, 2.0 * math.exp(0.03), 1.0]})
    # pooled: (2 * 0.02^2 + 2 * 0.015^2) / (2 + 1)
    assert diagnostics.seed_noise(df, "loss") == pytest.approx(math.sqrt((8e-4 + 4.5e-4) / 3))
    assert diagnostics.seed_noise(df[df["seed"] == 0], "loss") is None
    assert diagnostics.seed_noise(df.drop(columns="seed"), "loss") is None


def test_report_summary_checklist_and_held_out():
    df = design().iloc[[0, 6, 12, 18, 19]]
    res = fit.fit(laws.OVERTRAINING, df, "y", n_boot=20, noise_floor=0.006)
    text = res.report()
    assert "warnings   " in text and "(dof = 1)" in text
    for item in ("checklist", "objective", "optimiser", "starts", "range N", "range M", "range compute",
                 "range target", "noise floor     0.006", "held-out check  none"):
        assert item in text, item
    checked = res.with_held_out("2 targets, 1.2% mean error")
    assert "held-out check  2 targets, 1.2% mean error" in checked.report()
    summary = json.loads(json.dumps(checked.summary()))
    assert summary["held_out"] == "2 targets, 1.2% mean error" and summary["noise_floor"] == 0.006
    assert summary["checklist"]["points"].startswith("5 runs for 4 parameters")
    assert summary["warnings"] == checked.warnings and summary["warnings"]


def test_docstring_examples():
    import doctest

    result = doctest.testmod(diagnostics, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_an_interval_reaching_a_bound_is_named():
    res = fit.fit(laws.OVERTRAINING, design(), "y", n_boot=20)
    res.bootstrap(20).loc[:3, "E"] = 0.0  # a few replicates at the bound
    res.bootstrap(20).loc[4:, "E"] = res.params["E"]
    assert any("interval of E, [0," in w and "reaches its lower bound 0" in w for w in res.warnings)
