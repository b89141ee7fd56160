"""Tests for scaling_lib.backtest: compute ratios, slopes per M, curve points, splits, backtests."""

import json

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from scaling_lib import backtest, laws, records, runs

TRUE = {"E": 1.8, "a": 40.0, "b": 120.0, "eta": 0.15}


def grid(sizes=(1e5, 2e5, 4e5, 8e5, 1.6e6), mults=(5.0, 10.0, 20.0, 40.0, 80.0, 320.0), noise=0.0,
         seed=0):
    """Over-training-law losses on a full (N, M) grid, times (1 + noise * normal)."""
    N, M = (a.ravel() for a in np.meshgrid(np.asarray(sizes, float), np.asarray(mults, float)))
    loss = laws.OVERTRAINING(TRUE, N=N, M=M)
    loss = loss * (1 + noise * np.random.default_rng(seed).standard_normal(loss.size))
    return pd.DataFrame({"run_id": [f"n{n:g}_m{m:g}" for n, m in zip(N, M)], "N": N, "D": N * M, "M": M,
                         "flops": 6 * N * N * M, "model": [f"n{n:g}" for n in N], "loss": loss})


# ------------------------------------------------------------------------------- compute ratios


def test_compute_ratios():
    fit = pd.DataFrame({"flops": [1e12, 4e12]})
    targets = pd.DataFrame({"flops": [4e13, 1e14]}, index=[7, 9])
    r = backtest.compute_ratios(fit, targets)
    assert r.index.tolist() == [7, 9]
    assert_allclose(r["to_largest_fit"], [10.0, 25.0])
    assert_allclose(r["to_fit_total"], [8.0, 20.0])
    with pytest.raises(backtest.BacktestInputError, match="empty"):
        backtest.compute_ratios(fit.iloc[:0], targets)


# ------------------------------------------------------------------------------------ slopes per M


def test_slope_per_M_recovers_common_exponent():
    df = grid()
    slopes = backtest.slope_per_M(df, "loss", offset=TRUE["E"], n_boot=20)
    assert slopes.index.tolist() == sorted(df["M"].unique())
    assert_allclose(slopes["slope"], -TRUE["eta"], atol=1e-6)
    assert (slopes["n_runs"] == 5).all()
    # noise-free data: both intervals collapse onto the slope
    assert_allclose(slopes["t_lo"], -TRUE["eta"], atol=1e-6)
    assert_allclose(slopes["lo"], -TRUE["eta"], atol=1e-6)


def test_slope_per_M_total_loss_is_flatter_and_intervals_cover_noise():
    df = grid(noise=0.01, seed=3)
    total = backtest.slope_per_M(df, "loss", n_boot=0)
    assert (total["slope"] > -TRUE["eta"]).all()  # the floor E flattens the total loss
    reducible = backtest.slope_per_M(df, "loss", offset=TRUE["E"], n_boot=50, seed=1)
    assert (reducible["t_lo"] < reducible["slope"]).all()
    assert (reducible["slope"] < reducible["t_hi"]).all()
    assert (reducible["lo"] <= reducible["hi"]).all()
    assert reducible["slope"].between(-0.25, -0.05).all()


def test_slope_per_M_small_groups():
    df = grid(sizes=(1e5, 2e5))
    df = pd.concat([df, grid(sizes=(1e5,), mults=(640.0,))], ignore_index=True)
    slopes = backtest.slope_per_M(df, "loss", n_boot=10)
    assert np.isnan(slopes.loc[640.0, "slope"])  # one run: no slope
    two = slopes.loc[20.0]
    assert np.isfinite(two["slope"]) and np.isnan(two["t_lo"]) and np.isnan(two["lo"])


def test_slope_per_M_bad_offset_names_runs():
    df = grid()
    with pytest.raises(backtest.BacktestInputError, match=r"must be positive.*n100000_m5.*\(M=5\)"):
        backtest.slope_per_M(df, "loss", offset=10.0)
    with pytest.raises(runs.MissingColumnError, match=r"run table lacks column\(s\) \['loss_xx'\]"):
        backtest.slope_per_M(df, "loss_xx")


# ------------------------------------------------------------------------------------ curve points


def _write_curves(tmp_path, df, bias=0.05):
    """Run records whose curves follow the loss law in D, measured with a constant bias."""
    for _, run in df.iterrows():
        tokens = np.linspace(run["D"] / 5, run["D"], 5)
        curve = [{"step": int(i + 1) * 10, "tokens": float(t),
                  "loss_en": float(laws.OVERTRAINING(TRUE, N=run["N"], M=t / run["N"])[0] + bias)}
                 for i, t in enumerate(tokens)]
        record = {"run_id": run["run_id"], "config": {}, "curve": curve}
        (tmp_path / f"{run['run_id']}.json").write_text(json.dumps(record))


def test_curve_points_aligned_to_final_loss(tmp_path):
    df = grid(sizes=(1e5, 2e5), mults=(20.0,)).rename(columns={"loss": "loss_en"})
    _write_curves(tmp_path, df, bias=0.05)
    pts = backtest.curve_points(df, tmp_path, target="loss_en")
    assert len(pts) == 2 * 4  # the final point is the finished run itself
    assert set(pts["parent_run"]) == set(df["run_id"])
    assert_allclose(pts["offset"], -0.05)
    assert_allclose(pts["M"], pts["D"] / pts["N"])
    assert_allclose(pts["flops"], 6 * pts["N"] * pts["D"])
    assert_allclose(pts["loss_en"], laws.OVERTRAINING(TRUE, N=pts["N"], M=pts["M"]), rtol=1e-9)
    assert pts["run_id"].str.contains("@").all() and (pts["frac"] < 1).all()
    raw = backtest.curve_points(df, tmp_path, target="loss_en", align="none", min_frac=0.5,
                                include_final=True)
    assert raw["frac"].min() >= 0.5 and np.isclose(raw["frac"].max(), 1.0)
    assert_allclose(raw["offset"], 0.0)


def test_curve_points_errors(tmp_path):
    df = grid(sizes=(1e5,), mults=(20.0,)).rename(columns={"loss": "loss_en"})
    with pytest.raises(FileNotFoundError, match="no run record"):
        backtest.curve_points(df, tmp_path, target="loss_en")
    run_id = df["run_id"].iloc[0]
    def record(curve):
        text = json.dumps({"run_id": run_id, "config": {}, "curve": curve})
        (tmp_path / f"{run_id}.json").write_text(text)

    record([{"step": 1, "tokens": 10.0}])
    with pytest.raises(records.RecordError, match="lack key.*loss_en"):
        backtest.curve_points(df, tmp_path, target="loss_en")
    record([{"step": 1, "tokens": 10.0, "loss_en": 5.0}])
    with pytest.raises(backtest.BacktestInputError, match="ends at 10 tokens"):
        backtest.curve_points(df, tmp_path, target="loss_en")
    record([])
    with pytest.raises(records.RecordError, match="curve is empty"):
        backtest.curve_points(df, tmp_path, target="loss_en")
    (tmp_path / f"{run_id}.json").write_text(json.dumps({"run_id": run_id}))
    with pytest.raises(records.RecordError, match="no 'curve' list"):
        backtest.curve_points(df, tmp_path, target="loss_en")
    (tmp_path / f"{run_id}.json").write_text("{not json")
    with pytest.raises(records.RecordError, match="not a JSON run record"):
        backtest.curve_points(df, tmp_path, target="loss_en")


# ------------------------------------------------------------------------------------------ splits


def test_shape_splits_are_nested_and_disjoint():
    df = grid()
    splits = backtest.shape_splits(df)
    assert [s.value for s in splits] == [1, 2, 3, 4]
    sizes = sorted(df["N"].unique())
    by_id = df.set_index("run_id")
    for s in splits:
        k = int(s.value)
        fit, pred = by_id.loc[list(s.fit_ids)], by_id.loc[list(s.predict_ids)]
        assert set(fit.loc[fit["M"] == 20, "N"]) == set(sizes[:k])
        assert set(fit.loc[fit["M"] == 320, "N"]) == {sizes[0]}
        assert set(fit["M"]) == {20.0, 320.0}
        assert set(pred["N"]) == set(sizes[k:])
        assert len(pred) == len(df[df["N"] > sizes[k - 1]])  # every M of the larger sizes
    for small, big in zip(splits, splits[1:]):
        assert set(small.fit_ids) < set(big.fit_ids)


def test_shape_splits_skip_a_size_without_reference_run():
    df = grid()
    df = df[~((df["N"] == 4e5) & (df["M"] == 20))]  # the third size has no M=20 run
    splits = backtest.shape_splits(df)
    assert [s.value for s in splits] == [1, 2, 4]
    by_id = df.set_index("run_id")
    assert 4e5 in set(by_id.loc[list(splits[1].predict_ids), "N"])
    assert set(by_id.loc[list(splits[2].fit_ids), "N"]) == {1e5, 2e5, 8e5}


def test_compute_splits():
    df = grid()
    cut = np.sort(df["flops"].unique())[10]
    (s,) = backtest.compute_splits(df, [cut, 0.0, 1e40])
    by_id = df.set_index("run_id")
    assert (by_id.loc[list(s.fit_ids), "flops"] <= cut).all()
    assert (by_id.loc[list(s.predict_ids), "flops"] > cut).all()
    assert len(s.fit_ids) + len(s.predict_ids) == len(df)


def test_split_rejects_overlap_and_duplicate_ids():
    with pytest.raises(backtest.BacktestInputError, match="both fitted and predicted"):
        backtest.Split("x", "shapes", 1.0, ("a", "b"), ("b",))
    df = grid()
    df.loc[1, "run_id"] = df.loc[0, "run_id"]
    with pytest.raises(backtest.BacktestInputError, match="unique"):
        backtest.shape_splits(df)


# ---------------------------------------------------------------------------------------- backtest


def test_backtest_exact_data_predicts_exactly():
    df = grid()
    splits = backtest.shape_splits(df, [1, 2, 3, 4])
    bt = backtest.run_backtest(df, splits, "loss", objectives=("lsq", "huber_log"), interval=None)
    ok = bt[bt["status"] == "ok"]
    # k shapes at M=20 plus the smallest at M=320: k + 1 runs for four parameters
    assert (bt.loc[bt["value"] < 3, "status"] == "too few runs").all()
    assert bt.loc[bt["value"] < 3, "pred"].isna().all()
    assert set(ok["value"]) == {3.0, 4.0} and set(ok["objective"]) == {"lsq", "huber_log"}
    assert_allclose(ok["pred"], ok["actual"], rtol=1e-4)
    assert_allclose(ok["eta"], TRUE["eta"], rtol=1e-3)
    big = bt[(bt["value"] == 4) & (bt["objective"] == "lsq")]
    assert_allclose(big["to_largest_fit"], big["flops"] / (6 * 8e5**2 * 20))


def test_backtest_error_grows_with_extrapolation_on_noisy_data():
    df = grid(noise=0.01, seed=4)
    bt = backtest.run_backtest(df, backtest.shape_splits(df, [3, 4]), "loss", interval=None)
    mean = bt.groupby("value")["rel_err_pct"].mean()
    assert mean[3.0] > mean[4.0]


def test_backtest_extra_points_join_only_their_parents():
    df = grid()
    half = df["M"] / 2
    extra = pd.DataFrame({"parent_run": df["run_id"], "N": df["N"], "M": half,
                          "loss": laws.OVERTRAINING(TRUE, N=df["N"], M=half)})
    splits = backtest.shape_splits(df, [1])
    bt = backtest.run_backtest(df, splits, "loss", extra=extra, interval=None)
    # two fit runs alone are too few for four parameters; their two extra points make four
    assert (bt["n_extra"] == 2).all() and (bt["n_fit"] == 2).all()
    assert (bt["status"] != "too few runs").all()
    with pytest.raises(backtest.BacktestInputError, match="not in the run table"):
        backtest.run_backtest(df.iloc[5:], splits, "loss")


# ---------------------------------------------------------------------------------------- coverage


def test_backtest_intervals_and_covered_column():
    df = grid(noise=0.01, seed=5)
    bt = backtest.run_backtest(df, backtest.shape_splits(df, [4]), "loss", n_boot=40)
    assert {"lo", "hi", "covered"} <= set(bt.columns)
    assert (bt["lo"] <= bt["pred"]).all() and (bt["pred"] <= bt["hi"]).all()
    inside = (bt["lo"] <= bt["actual"]) & (bt["actual"] <= bt["hi"])
    assert (bt["covered"].astype(bool) == inside).all()
    assert backtest.coverage(bt, by=()).loc[0, "coverage"] >= 0.5
    old = backtest.run_backtest(df, backtest.shape_splits(df, [4]), "loss", n_boot=40, interval_method="bootstrap")
    assert_allclose(old["pred"], bt["pred"])  # only the interval changes
    none = backtest.run_backtest(df, backtest.shape_splits(df, [1]), "loss", interval=None)
    assert none["covered"].isna().all() and none["lo"].isna().all()


def test_coverage_on_a_hand_made_table():
    t = pd.DataFrame({
        "kind": ["shapes"] * 4 + ["compute"] * 2,
        "objective": ["lsq", "lsq", "huber_log", "huber_log", "lsq", "lsq"],
        "actual": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "lo": [0.9, 2.1, 2.0, np.nan, 4.0, 5.0],
        "hi": [1.1, 2.2, 4.0, np.nan, 6.0, 7.0],
        "covered": pd.array([True, False, True, None, True, True], dtype="boolean"),
    })
    by_kind = backtest.coverage(t, by="kind")
    assert by_kind.index.tolist() == ["shapes", "compute"]
    assert by_kind.loc["shapes", ["n", "n_interval", "n_covered"]].tolist() == [4, 3, 2]
    assert by_kind.loc["shapes", "coverage"] == pytest.approx(2 / 3)
    assert by_kind.loc["compute", "coverage"] == 1.0
    assert by_kind.loc["compute", "median_halfwidth_pct"] == pytest.approx(np.median([100 / 5, 100 / 6]) / 1)
    both = backtest.coverage(t, by=["kind", "objective"])
    assert both.loc[("shapes", "huber_log"), "n_interval"] == 1
    total = backtest.coverage(t, by=())
    assert total.loc[0, "n_covered"] == 4 and total.loc[0, "coverage"] == pytest.approx(4 / 5)
    empty = t.assign(covered=pd.array([None] * 6, dtype="boolean"))
    assert np.isnan(backtest.coverage(empty, by=()).loc[0, "coverage"])
    with pytest.raises(runs.MissingColumnError, match="covered"):
        backtest.coverage(t.drop(columns="covered"))


def test_coverage_of_the_cpu_tiny_backtests_per_variant():
    from scaling_lib import backtest_coverage

    cases = backtest_coverage.cpu_tiny_cases()
    assert {c.family for c in cases} == {"shapes", "compute"}
    assert all(c.noise_floor and 0.001 < c.noise_floor < 0.05 for c in cases)  # from the seed repeats
    picked = [c for c in cases if c.split in ("4 smallest", "C <= 7.9e+12")]
    table = backtest_coverage.predictions(picked, objectives=("lsq",), n_boot=10)
    assert set(table["variant"]) == set(backtest_coverage.VARIANTS)
    # the point prediction is the same whichever interval
    assert table.groupby(["split", "run_id"])["pred"].nunique().max() == 1
    tables = backtest_coverage.coverage_tables(table)
    assert list(tables["by split family"].columns) == list(backtest_coverage.VARIANTS)
    assert tables["by testbed"].loc["cpu-tiny", "default"].endswith(f"/{len(table) // 4})")


def test_docstring_examples():
    import doctest

    result = doctest.testmod(backtest, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_testbed_warnings_flag_the_design_fit():
    from scaling_lib import backtest_coverage

    table = backtest_coverage.testbed_warnings(objectives=("lsq",), n_boot=10)
    design = table[(table["testbed"] == "cpu-tiny") & (table["fit"] == "fit runs")]["warning"]
    assert design.str.contains(r"\(dof = 1\)").any()
