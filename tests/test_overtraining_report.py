"""Tests of scaling_lib.overtraining_report on small synthetic run tables."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from numpy.testing import assert_allclose  # noqa: E402

from scaling_lib import backtest, fit, laws  # noqa: E402
from scaling_lib import overtraining_figures as otf  # noqa: E402
from scaling_lib import overtraining_report as otr  # noqa: E402

TRUE = {"E": 1.8, "a": 40.0, "b": 120.0, "eta": 0.15}


@pytest.fixture
def grid():
    """Four shapes at M = 20, 80, 320 on the exact over-training law, with design roles."""
    N, M = (a.ravel() for a in np.meshgrid([1e5, 2e5, 4e5, 8e5], [20.0, 80.0, 320.0]))
    df = pd.DataFrame({"run_id": [f"r{i}" for i in range(N.size)],
                       "model": [f"s{int(np.log2(n / 1e5)) + 1}" for n in N],
                       "N": N, "M": M, "D": N * M, "flops": 6 * N * N * M, "seed": 0,
                       "loss": laws.OVERTRAINING(TRUE, N=N, M=M)})
    role = np.where((df["M"] == 20) & (df["N"] < 8e5), "loss_fit", "unused")
    role[(df["M"] == 320) & (df["N"] == 1e5)] = "loss_fit"
    role[(df["M"] == 20) & (df["N"] == 8e5)] = "target"
    return df.assign(role=role)


def test_split_seeds_takes_the_most_common_seed_unless_told():
    t = pd.DataFrame({"seed": [1, 1, 2, 3], "loss": [1.0, 2.0, 3.0, 4.0]})
    assert otr.split_seeds(t).seed == 1
    chosen = otr.split_seeds(t, main_seed=3)
    assert chosen.main["loss"].tolist() == [4.0] and len(chosen.repeats) == 3
    no_seed = otr.split_seeds(t.drop(columns="seed"))
    assert no_seed.seed == 0 and len(no_seed.main) == 4 and no_seed.repeats.empty


def test_one_train_set_keeps_a_single_set():
    t = pd.DataFrame({"train_set": ["c4", "c4"], "loss": [1.0, 2.0]})
    assert otr.one_train_set(t) is t
    assert otr.one_train_set(t.drop(columns="train_set")).shape == (2, 1)


def test_loss_grid_marks_roles(grid):
    g = otr.loss_grid(grid, "loss")
    assert g.shape == (4, 3) and list(g.columns) == ["20", "80", "320"]
    assert g.loc["s4 (800k)", "20"].endswith(" t") and g.loc["s1 (100k)", "320"].endswith(" f")


def test_seed_spread_keeps_repeated_cells_only():
    t = pd.DataFrame({"model": ["s1", "s1", "s2"], "M": [20.0, 20.0, 20.0],
                      "loss": [4.0, 4.4, 3.0]})
    spread = otr.seed_spread(t, "loss")
    assert spread.index.tolist() == [("s1", 20.0)]
    assert_allclose(spread["range (%)"], 100 * 0.4 / 4.2)


def test_common_slope_detects_lines_that_disagree():
    s = pd.DataFrame({"slope": [-0.1, -0.05], "t_lo": [-0.11, -0.06], "t_hi": [-0.09, -0.04]})
    a = otr.common_slope(s)
    assert not a.parallel and a.observed == "the intervals of 2 lines share no common value"
    assert (a.n, a.lo, a.hi) == (2, -0.1, -0.05)


def test_slope_table_on_a_parallel_grid(grid):
    slopes = backtest.slope_per_M(grid, "loss", offset=TRUE["E"], n_boot=0)
    assert_allclose(slopes["slope"], -TRUE["eta"], rtol=1e-6)
    table = otr.slope_table(slopes, slopes)
    assert list(table.columns) == ["runs", "total loss (t)", "L - E (t)", "L - E (bootstrap)"]
    assert table.loc["20", "L - E (t)"].startswith("-0.150")
    rng = np.random.default_rng(0)
    noisy = grid.assign(loss=TRUE["E"] + (grid["loss"] - TRUE["E"])
                        * np.exp(0.01 * rng.standard_normal(len(grid))))
    agreement = otr.common_slope(backtest.slope_per_M(noisy, "loss", offset=TRUE["E"], n_boot=0))
    assert agreement.n == 3 and agreement.parallel
    assert -0.17 < agreement.lo <= agreement.hi < -0.13


def test_predictions_and_stacked_on_the_exact_law(grid):
    fit_runs = grid[grid["role"] == "loss_fit"]
    targets, others = grid[grid["role"] == "target"], grid[grid["role"] == "unused"]
    res = fit.fit(laws.OVERTRAINING, fit_runs, target="loss")
    p = otr.predictions(res, fit_runs, targets, others, "loss", interval=None)
    assert len(p.targets) == 1 and len(p.grid) == len(others)
    assert_allclose(p.targets["rel_err_pct"], 0.0, atol=1e-3)
    largest = fit_runs["flops"].max()
    assert_allclose(p.grid["C ratio"], others["flops"].to_numpy() / largest)
    ratios = otr.target_ratios(fit_runs, targets)
    assert ratios.index.tolist() == ["r3"] and ratios.loc["r3", "to_largest_fit"] > 1
    assert otr.target_ratios(fit_runs.iloc[:0], targets).empty
    p_ci = otr.predictions(res, fit_runs, targets, others, "loss")
    table = otr.stacked({"lsq": p_ci.targets, "again": p_ci.targets})
    assert table.index.names == ["objective", "model", "size", "M"]
    assert list(table.columns) == otr.PREDICTION_COLUMNS and len(table) == 2
    assert otr.stacked({}).empty
    assert otr.predictions(res, fit_runs, targets.iloc[:0], others, "loss").targets.empty


def test_m_star_table_recovers_the_law_optimum(grid):
    res = fit.fit(laws.OVERTRAINING, grid, target="loss")
    table = otr.m_star_table({"all": res, "none": None}, n_boot=5)
    assert table.index.tolist() == ["all"]
    expected = (TRUE["b"] / TRUE["a"]) ** (1 / (2 * TRUE["eta"]))
    assert_allclose(table.loc["all", "M*"], expected, rtol=1e-3)


def test_backtest_bookkeeping(grid):
    splits = backtest.shape_splits(grid, reference_M=20.0, overtrained_M=(320.0,))
    # 12 runs but 6 distinct budgets (6 N^2 M repeats across shapes): too few for 4 parameters
    assert otr.compute_cutoffs(grid, laws.OVERTRAINING.n_params, 2) == []
    cut = otr.compute_cutoffs(grid, 2, 2)
    assert len(cut) == 2 and cut[0] < cut[1]
    bt = backtest.run_backtest(grid, splits + backtest.compute_splits(grid, cut), "loss",
                               objectives=("lsq",), interval=None)
    ok = otr.scored(bt)
    assert (ok["status"] == "ok").all() and len(ok) < len(bt)
    assert set(otr.of_kind(bt, "compute")["kind"]) == {"compute"}
    summary = otr.split_summary(bt)
    assert {"fit", "pred", "max_ratio", "mean % (lsq)", "max % (lsq)"} <= set(summary.columns)
    assert (summary["mean % (lsq)"] < 1e-3).all()
    ext = otr.extrapolation_errors(ok)
    assert ext.median_beyond < 1e-3 and np.isfinite(ext.rho)
    assert otr.split_summary(bt.iloc[:0]).empty


def test_extrapolation_errors_without_far_runs_has_no_correlation():
    bt = pd.DataFrame({"to_largest_fit": [0.5, 0.9, 2.0], "rel_err_pct": [1.0, 2.0, 3.0]})
    ext = otr.extrapolation_errors(bt)
    assert ext.median_cheaper == 1.5 and ext.median_beyond == 3.0 and np.isnan(ext.rho)


def test_paired_wins_ignores_unpaired_predictions():
    bt = pd.DataFrame({"split": ["k"] * 3, "run_id": ["a", "a", "b"],
                       "objective": ["lsq", "hub", "lsq"], "rel_err_pct": [2.0, 1.0, 3.0]})
    assert otr.paired_wins(bt, "hub", "lsq") == (1, 1)


def test_schedule_gaps_without_curves_is_empty(grid):
    assert otr.schedule_gaps(grid, None, "loss").empty


def test_curve_comparison_pairs_the_two_fit_sets():
    row = {"value": 3, "split": "3 smallest", "objective": "lsq", "status": "ok"}
    final = pd.DataFrame([{**row, "eta": 0.1, "rel_err_pct": 2.0},
                          {**row, "eta": 0.1, "rel_err_pct": 4.0}])
    curves = pd.DataFrame([{**row, "eta": 0.2, "rel_err_pct": 5.0}])
    cmp = otr.curve_comparison(final, curves)
    assert cmp.loc[("3 smallest", "lsq"), ("err", "final only")] == 3.0
    assert cmp.loc[("3 smallest", "lsq"), ("eta", "final + curves")] == 0.2
    assert otr.curve_comparison(final, pd.DataFrame()).empty


def test_table_or_note_prints_the_note(capsys):
    assert otr.table_or_note(pd.DataFrame(index=[0]), "empty") is None
    assert capsys.readouterr().out == "empty\n"


def test_figures_draw(grid):
    fit_runs = grid[grid["role"] == "loss_fit"]
    res = fit.fit(laws.OVERTRAINING, fit_runs, target="loss")
    preds = {"lsq": otr.predictions(res, fit_runs, grid[grid["role"] == "target"],
                                    grid[grid["role"] == "unused"], "loss", interval=None)}
    preds["lsq"].targets["lo"] = preds["lsq"].targets["hi"] = preds["lsq"].targets["pred"]
    preds["lsq"].grid["lo"] = preds["lsq"].grid["hi"] = preds["lsq"].grid["pred"]
    slopes = backtest.slope_per_M(grid, "loss", n_boot=0)
    bt = backtest.run_backtest(grid, backtest.shape_splits(grid), "loss", interval=None)
    figs = [otf.loss_lines_figure(grid, "loss", grid["role"]),
            otf.slopes_figure(slopes.assign(lo=slopes["t_lo"], hi=slopes["t_hi"])),
            otf.fit_figure(grid, "loss", {"lsq": res, "again": res}, preds, grid["role"]),
            otf.fit_figure(grid, "loss", {}, {}, grid["role"]),
            otf.backtest_figure([(bt, "a"), (bt.iloc[:0], "b")], ("lsq",))]
    assert [len(f.axes) for f in figs] == [2, 2, 4, 1, 4]
    for f in figs:
        plt.close(f)


def test_pct_and_docstring_examples():
    import doctest

    assert otr.pct(np.nan) == "n/a" and otr.pct(3.14159, 2) == "3.14%"
    result = doctest.testmod(otr, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
