"""Tests for scaling_lib.compute_optimal_report: the compute-optimal chapter's plumbing."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from scaling_lib import compute_optimal as co
from scaling_lib import compute_optimal_report as cor
from scaling_lib import curves, laws


def _curves():
    """Three runs at two budgets: the small budget's runs end early, the big run starts high."""
    rows = []
    for run, n, tokens, start, end in (("s1", 1e3, 1e5, 5.0, 3.0), ("s2", 2e3, 5e4, 5.5, 3.2),
                                        ("b1", 4e3, 2e5, 6.0, 2.5)):
        t = np.geomspace(tokens / 20, tokens, 20)
        loss = end + (start - end) * (1 - np.log(t / t[0]) / np.log(t[-1] / t[0])) ** 2
        rows.append(pd.DataFrame({"run_id": run, "N": n, "tokens": t, "loss": loss}))
    return pd.concat(rows, ignore_index=True)


def test_monotone_envelope_never_rises_and_never_above_a_curve():
    cur = _curves()
    env = cor.monotone_envelope(cur, n_levels=400)
    assert env["loss"].is_monotonic_decreasing
    compute = 6 * cur["N"] * cur["tokens"]
    for C, loss in zip(compute, cur["loss"]):
        later = env[env["C"] >= C * (1 + 1e-9)]
        if len(later):
            assert later["loss"].iloc[0] <= loss + 0.02  # the grid's spacing, linear in ln D
    assert_allclose(env["loss"].iloc[-1], cur["loss"].min())


def test_monotone_envelope_fixes_the_rise_of_the_running_envelope():
    cur = _curves()
    old = curves.envelope(cur, n_levels=60, n_col="N")
    new = cor.monotone_envelope(cur, n_levels=60)
    assert (old["loss"].diff() > 0).any()
    assert not (new["loss"].diff() > 0).any()
    assert (new["loss"].to_numpy() <= old.set_index("C")["loss"].reindex(new["C"]).to_numpy() + 1e-12).all()


def test_monotone_envelope_range_and_bad_input():
    env = cor.monotone_envelope(_curves(), n_levels=10, c_range=(1e9, 2e9))
    assert_allclose([env["C"].min(), env["C"].max()], [1e9, 2e9])
    with pytest.raises(ValueError, match="n_levels >= 2"):
        cor.monotone_envelope(_curves(), n_levels=1)
    with pytest.raises(ValueError, match="no curves"):
        cor.monotone_envelope(_curves().iloc[:0])


def _chinchilla_runs(noise=0.0, seed=0):
    p = {"E": 2.0, "A": 300.0, "alpha": 0.4, "B": 900.0, "beta": 0.35}
    rng = np.random.default_rng(seed)
    rows = []
    for C in (1e11, 1e12, 1e13, 1e14):
        N = np.geomspace(1e4, 1e6, 6)
        D = C / (6 * N)
        loss = laws.CHINCHILLA(p, N=N, D=D) * np.exp(noise * rng.standard_normal(N.size))
        rows.append(pd.DataFrame({"N": N, "D": D, "M": D / N, "flops": 6 * N * D, "budget": C,
                                  "loss": loss}))
    return p, pd.concat(rows, ignore_index=True)


def test_law_backtest_recovers_the_true_law_and_ranks_it_first():
    p, runs = _chinchilla_runs()
    t = cor.law_backtest(runs, [cor.LawCandidate("chinchilla", laws.CHINCHILLA),
                                cor.LawCandidate("over-training", laws.OVERTRAINING)], "loss")
    assert t["held_out_rmse"].idxmin() == "chinchilla"
    assert t.loc["chinchilla", "held_out_rmse"] < 1e-3
    assert_allclose(t.loc["chinchilla", "fit"].params["alpha"], p["alpha"], rtol=1e-3)
    assert [c for c in t if c.startswith("held_out ")] == ["held_out 1e+11", "held_out 1e+12",
                                                           "held_out 1e+13", "held_out 1e+14"]


def test_law_backtest_needs_two_groups():
    _, runs = _chinchilla_runs()
    with pytest.raises(ValueError, match="at least two values of 'budget'"):
        cor.law_backtest(runs[runs["budget"] == 1e11], [cor.LawCandidate("c", laws.CHINCHILLA)], "loss")


def test_multiplier_table_measured_and_law_values():
    p, runs = _chinchilla_runs(noise=0.002)
    opt = co.isoflop_optima(runs, target="loss", n_boot=20, seed=0)
    from scaling_lib.fit import fit
    chin = fit(laws.CHINCHILLA, runs, target="loss")
    ot = fit(laws.OVERTRAINING, runs, target="loss")
    t = cor.multiplier_table(opt.table, {"chin": chin, "ot": ot}, 1e13)
    row = opt.table.set_index("group").loc[1e13]
    assert_allclose(t.loc["IsoFLOP vertex", "M*"], 1e13 / (6 * row["N_opt"] ** 2))
    assert t.loc["IsoFLOP vertex", "lo"] <= t.loc["IsoFLOP vertex", "M*"] <= t.loc["IsoFLOP vertex", "hi"]
    best = co.chinchilla_optimum(chin.params, 1e13)
    assert_allclose(t.loc["chin", "M*"], best.D[0] / best.N[0])
    assert_allclose(t.loc["ot", "M*"], laws.optimal_multiplier(ot.params))
    assert t["kind"].tolist() == ["measured", "law", "law"]


def test_advice_table_over_trains_with_inference():
    p = {"E": 1.0, "A": 100.0, "alpha": 0.3, "B": 400.0, "beta": 0.3}
    base, t = cor.advice_table(laws.CHINCHILLA, p, 2.0)
    assert_allclose(t.loc[0, "M"], base.M, rtol=1e-6)
    assert_allclose(t.loc[0, "saving vs M*"], 0.0, atol=1e-9)
    assert t["M"].is_monotonic_increasing and t["N"].is_monotonic_decreasing
    assert (t["saving vs M*"] >= -1e-12).all()


def test_paper_table_uses_the_published_values():
    ours = {k: 0.1 for k in ("a1", "a2", "a3", "a_kaplan", "a_head", "a_head_scaled")} | {"M": 21.0}
    t = cor.paper_table(ours)
    por = {p.step: p.a for p in co.PORIAN_EXPONENTS}
    assert t.loc["a, head counted, long warmup", "Porian et al. 2024"] == por["count_head"]
    assert t.loc["a, approach 3 (parametric)", "Hoffmann et al. 2022"] == 0.46
    assert t.loc["tokens per parameter at the optimum", "ours"] == 21.0
    with pytest.raises(KeyError):
        cor.paper_table({"a1": 0.1})


def test_join_design_and_shape_shares():
    table = pd.DataFrame({"run_id": ["a", "b"], "model": ["m1", "m2"], "d_model": [8, 16],
                          "N": [100.0, 200.0], "N_ne": [20.0, 80.0], "N_emb": [40.0, 60.0]})
    plan = pd.DataFrame({"run_id": ["a", "b", "c"], "purpose": ["isoflop"] * 3})
    sweep = cor.join_design(table, plan)
    assert sweep.missing == ["c"]
    assert cor.join_design(table, None).missing == []
    shares = cor.shape_shares(sweep.runs)
    assert_allclose(shares["head share"], [0.4, 0.3])
    with pytest.raises(ValueError, match=r"runs \['b'\] are not in the design"):
        cor.join_design(table, plan.iloc[[0]], "the run table")


def test_warmup_pairs_and_phrases():
    main = pd.DataFrame({"model": ["m1", "m2"], "budget": [1.0, 1.0], "N": [1.0, 2.0], "steps": [100, 50],
                         "warmup": [10, 5], "loss": [3.0, 3.5], "purpose": "isoflop"})
    longw = main.assign(warmup=[40, 40], loss=[2.5, 3.6], purpose="warmup")
    pairs = cor.warmup_pairs(pd.concat([main, longw]), main, "loss")
    assert_allclose(pairs["loss_change"], [-0.5, 0.1])
    assert_allclose(pairs["warmup_frac_long"], [0.4, 0.8])
    w = cor.warmup_phrases(pairs, 0.05)
    assert (w["n_helped"], w["n_hurt"]) == (1, 1)
    assert w["hurt_frac"] == "80%" and w["helped_steps"] == "100"


def test_formatting_helpers():
    assert cor.interval(0.5, 0.4, 0.6) == "0.50 [0.40, 0.60]"
    assert cor.interval(0.5, np.nan, 0.6, digits=1) == "0.5"
    assert cor.span(2, 2) == "2" and cor.span(0.1, 0.25, "{:.0%}") == "10% to 25%"
    assert_allclose(cor.bars([1.0, 1.0], [0.8, 1.2], [1.5, 1.1]), [[0.2, 0.0], [0.5, 0.1]])


def test_figures_draw():
    import matplotlib.pyplot as plt

    cur = _curves()
    env = cor.monotone_envelope(cur, n_levels=20)
    fig = cor.plot_envelope(cur, env, "loss", (env["C"].min(), env["C"].max()))
    assert fig.axes[0].get_xscale() == "log"
    by_conv = pd.DataFrame({"a": [0.6, 0.5], "a_lo": [0.5, 0.4], "a_hi": [0.7, 0.6]}, index=["x", "y"])
    assert len(cor.plot_conventions(by_conv).axes) == 1
    plt.close("all")
