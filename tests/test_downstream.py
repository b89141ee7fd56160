"""Tests for scaling_lib.downstream on synthetic run tables."""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from scaling_lib import downstream, laws, protocols, runs

TRUE_ERR = {"eps": 0.7, "k": 1.4, "gamma": 0.4}
NOGROUP = protocols.Protocol(group_by=None)


def _err(L, p=TRUE_ERR):
    return laws.ERROR(p, L=L)


def _runs(n=12, seed=0, n_tasks=6, noise=0.02, flat=("err_flat",)):
    """Runs with loss from 3.4 to 5.0; tasks share the error law plus task noise."""
    rng = np.random.default_rng(seed)
    L = np.linspace(5.0, 3.4, n)
    df = pd.DataFrame({"run_id": [f"r{i}" for i in range(n)], "loss": L})
    for t in range(n_tasks):
        df[f"err_t{t}"] = _err(L) + rng.normal(0, noise, n)
    for name in flat:
        df[name] = 0.5 + rng.normal(0, noise, n)
    return df


# --- the design table of a testbed (scaling_lib.testbeds.Testbed.table) ----------------------


def test_design_table_gives_the_roles_of_the_finished_table():
    from scaling_lib import designs
    tb = designs.get_testbed("cpu-tiny")
    design = tb.table()
    assert len(design) == len(tb.runs)
    assert_allclose(design["D"] / design["N"], design["M"], rtol=1e-3)
    roles = protocols.table_roles(design, NOGROUP)
    assert (roles == "loss_fit").sum() == (design["role"] == "fit").sum()
    # the error-law run: the next size above the fit sizes, at the M nearest to 20, not a target
    extra = design[roles == "error_fit"]
    assert len(extra) == 1
    next_size = design.loc[design["N"] > design.loc[design["role"] == "fit", "N"].max(), "N"].min()
    pool = design[(design["N"] == next_size) & (design["role"] != "target")]
    best = np.abs(np.log(pool["M"] / 20.0)).min()
    assert extra["N"].iloc[0] == next_size
    assert np.isclose(np.abs(np.log(extra["M"].iloc[0] / 20.0)), best)


# --- average_members ----------------------------------------------------------------------------


def test_average_members_recovers_the_averaged_columns():
    df = _runs(n=14, n_tasks=6)
    members = ["err_t1", "err_t3", "err_t4"]
    df["avg"] = df[members].mean(axis=1)
    candidates = [c for c in df.columns if c.startswith("err_")]
    assert downstream.average_members(df, "avg", candidates) == members


def test_average_members_without_candidates_is_an_error_not_a_crash():
    with pytest.raises(ValueError, match="no task columns"):
        downstream.average_members(_runs().assign(err_avg=0.5), "err_avg", [])


def test_average_members_rejects_a_weighted_average():
    df = _runs(n=14, n_tasks=4)
    df["avg"] = 0.8 * df["err_t0"] + 0.2 * df["err_t1"]
    with pytest.raises(ValueError, match="averages to 'avg'"):
        downstream.average_members(df, "avg", ["err_t0", "err_t1", "err_t2"])
    with pytest.raises(runs.MissingColumnError, match=r"lacks column\(s\) \[.err_missing.\]"):
        downstream.average_members(df, "avg", ["err_t0", "err_missing"])


# --- per_task_fits ------------------------------------------------------------------------------


def test_per_task_fits_recovers_law_and_flags_flat_tasks():
    df = _runs(n=10, n_tasks=1, noise=0.0, flat=())
    rng = np.random.default_rng(1)
    df["err_flat"] = 0.5 + rng.normal(0, 0.015, len(df))
    fit_runs, heldout = df.iloc[:7], df.iloc[7:]
    out = downstream.per_task_fits(fit_runs, heldout, ["err_t0", "err_flat"], "loss",
                                   chance={"err_t0": 0.75, "err_flat": 0.5})
    assert_allclose([out.loc["err_t0", p] for p in ("eps", "k", "gamma")],
                    [0.7, 1.4, 0.4], rtol=1e-3)
    assert out.loc["err_t0", "heldout_mae"] < 1e-4
    assert out.loc["err_t0", "n_fit"] == 7
    assert out.loc["err_flat", "mae_over_spread"] > 20 * out.loc["err_t0", "mae_over_spread"]
    assert_allclose(out.loc["err_t0", "above_chance"], 0.75 - df["err_t0"].min())


def test_per_task_fits_chained_loss_changes_the_prediction():
    df = _runs(n=10, n_tasks=1, noise=0.0, flat=())
    fit_runs, heldout = df.iloc[:7], df.iloc[7:]
    exact = downstream.per_task_fits(fit_runs, heldout, ["err_t0"], "loss",
                                     pred_loss=heldout["loss"].to_numpy())
    shifted = downstream.per_task_fits(fit_runs, heldout, ["err_t0"], "loss",
                                       pred_loss=heldout["loss"].to_numpy() + 0.1)
    assert exact.loc["err_t0", "heldout_mae"] < 1e-4
    slope = TRUE_ERR["k"] * TRUE_ERR["gamma"] * np.exp(-TRUE_ERR["gamma"] * heldout["loss"])
    assert_allclose(shifted.loc["err_t0", "heldout_mae"], np.mean(0.1 * slope), rtol=0.05)


def test_per_task_fits_bad_input():
    df = _runs(n=8)
    with pytest.raises(ValueError, match="pred_loss has 2 values for 3"):
        downstream.per_task_fits(df.iloc[:5], df.iloc[5:], ["err_t0"], "loss",
                                 pred_loss=[4.0, 4.1])
    with pytest.raises(KeyError, match="chance has no level"):
        downstream.per_task_fits(df.iloc[:5], df.iloc[5:], ["err_t0"], "loss", chance={})
    with pytest.raises(runs.MissingColumnError, match="err_nope"):
        downstream.per_task_fits(df.iloc[:5], df.iloc[5:], ["err_nope"], "loss")


def test_per_task_fits_without_heldout_runs():
    df = _runs(n=8)
    out = downstream.per_task_fits(df, df.iloc[:0], ["err_t0"], "loss")
    assert out["heldout_mae"].isna().all() and out.loc["err_t0", "success"]


# --- subset_study -------------------------------------------------------------------------------


def test_subset_study_error_shrinks_with_more_tasks():
    df = _runs(n=12, n_tasks=8, noise=0.03, flat=())
    tasks = [f"err_t{i}" for i in range(8)]
    study = downstream.subset_study(df.iloc[3:], df.iloc[:3], tasks, "loss", n_draws=20, seed=3)
    summary = downstream.summarize_subsets(study)
    assert summary.index.tolist() == list(range(1, 9))
    assert summary.loc[8, "n_subsets"] == 1 and summary.loc[1, "n_subsets"] == 8
    assert summary.loc[4, "n_subsets"] == 20  # C(8, 4) = 70 > 20 draws
    assert len(set(study.loc[study["size"] == 4, "tasks"])) == 20
    assert summary.loc[8, "median"] < summary.loc[1, "median"]
    again = downstream.subset_study(df.iloc[3:], df.iloc[:3], tasks, "loss", n_draws=20, seed=3)
    pd.testing.assert_frame_equal(study, again)


def test_subset_study_full_average_matches_direct_fit():
    df = _runs(n=10, n_tasks=3, noise=0.02, flat=())
    tasks = ["err_t0", "err_t1", "err_t2"]
    study = downstream.subset_study(df.iloc[2:], df.iloc[:2], tasks, "loss", sizes=[3])
    df["avg"] = df[tasks].mean(axis=1)
    direct = downstream.per_task_fits(df.iloc[2:], df.iloc[:2], ["avg"], "loss")
    assert_allclose(study["rel_err_pct"].iloc[0], direct.loc["avg", "heldout_rel_err_pct"])


def test_subset_study_bad_input():
    df = _runs(n=8)
    with pytest.raises(ValueError, match="held-out"):
        downstream.subset_study(df, df.iloc[:0], ["err_t0"], "loss")
    with pytest.raises(ValueError, match="subset sizes"):
        downstream.subset_study(df.iloc[2:], df.iloc[:2], ["err_t0", "err_t1"], "loss",
                                sizes=[3])


def test_summarize_subsets_skips_failed_fits():
    study = pd.DataFrame({"size": [1, 1, 2], "rel_err_pct": [1.0, np.nan, 2.0],
                          "success": [True, False, True]})
    out = downstream.summarize_subsets(study)
    assert out["n_subsets"].tolist() == [1, 1]


# --- relative_errors_by_column -------------------------------------------------------------------


def test_relative_errors_by_column_recovers_each_column():
    N = np.array([1e5, 2e5, 4e5, 8e5, 1e5, 3e5, 3.2e6])
    M = np.array([20, 20, 20, 20, 320, 5, 20.0])
    p1 = {"E": 1.5, "a": 80.0, "b": 400.0, "eta": 0.2}
    p2 = {"E": 3.0, "a": 10.0, "b": 90.0, "eta": 0.15}
    df = pd.DataFrame({"run_id": [f"r{i}" for i in range(7)], "N": N, "M": M,
                       "x": laws.OVERTRAINING(p1, N=N, M=M), "y": laws.OVERTRAINING(p2, N=N, M=M)})
    fits, table = downstream.relative_errors_by_column(laws.OVERTRAINING, df.iloc[:6],
                                                       df.iloc[6:], ["x", "y"])
    assert table["column"].tolist() == ["x", "y"]
    assert_allclose(table["rel_err_pct"], 0.0, atol=1e-3)
    assert_allclose(fits["y"].params["eta"], 0.15, rtol=1e-3)
    _, with_ci = downstream.relative_errors_by_column(
        laws.OVERTRAINING, df.iloc[:6], df.iloc[6:], ["x"], interval=0.9, n_boot=20)
    assert {"lo", "hi", "covered"} <= set(with_ci.columns)
