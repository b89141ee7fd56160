"""Tests for scaling_lib.downstream_report on small synthetic run tables."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from numpy.testing import assert_allclose  # noqa: E402

from scaling_lib import downstream, fit, laws, protocols, published_report  # noqa: E402
from scaling_lib import downstream_report as report  # noqa: E402

TRUE_ERR = {"eps": 0.7, "k": 1.4, "gamma": 0.4}


def _runs(n=10, seed=0):
    """Runs with roles, loss falling with size, and two tasks that follow the error law."""
    rng = np.random.default_rng(seed)
    N = np.geomspace(1e5, 3e6, n)
    L = np.linspace(5.0, 3.4, n)
    roles = ["loss_fit"] * 4 + ["error_fit"] + ["unused"] * (n - 7) + ["target"] * 2
    df = pd.DataFrame({"run_id": [f"r{i}" for i in range(n)], "model": [f"m{i}" for i in range(n)],
                       "N": N, "M": 20.0, "flops": 6 * N * 20 * N, "loss": L, "role": roles})
    for t in range(3):
        df[f"err_t{t}"] = laws.ERROR(TRUE_ERR, L=L) + rng.normal(0, 0.005, n)
    df["err_flat"] = 0.5 + rng.normal(0, 0.005, n)
    df["err_avg"] = df[[f"err_t{t}" for t in range(3)]].mean(axis=1)
    return df


def test_one_train_set_keeps_the_chosen_set_and_renumbers():
    t = pd.DataFrame({"train_set": ["x", "y", "x"], "N": [1, 2, 3]}, index=[7, 8, 9])
    pick = report.one_train_set(t, "x")
    assert pick.train_set == "x"
    assert pick.runs.index.tolist() == [0, 1]
    assert report.one_train_set(t).train_set == "x"


def test_role_grid_orders_shapes_by_size_and_shows_first_seed():
    runs = pd.DataFrame({"model": ["big", "small", "small"], "N": [2e6, 1e6, 1e6],
                         "M": [20.0, 20.0, 20.0], "seed": [0, 1, 0],
                         "role": ["target", "unused", "loss_fit"]})
    grid = report.role_grid(runs)
    assert grid.index.tolist() == ["small", "big"]
    assert grid.loc["small", "20"] == "loss_fit"


def test_fit_sets_fall_back_to_unused_runs_without_targets():
    df = _runs()
    sets = report.fit_sets(df, df)
    assert len(sets.loss_fit) == 4 and len(sets.error_fit) == 5 and len(sets.heldout) == 2
    assert sets.extra_run["run_id"] == "r4"
    assert_allclose(sets.extra_ratio, df["flops"][4] / df["flops"][3])
    early = df[df["role"] != "target"]
    sets = report.fit_sets(early, early)
    assert sets.heldout_kind == "runs outside the fit sets"
    assert set(sets.heldout["role"]) == {"unused"}
    no_extra = report.fit_sets(df, df[df["role"] != "error_fit"])
    assert no_extra.extra_run["run_id"] == "none" and np.isnan(no_extra.extra_ratio)


def test_line_vs_law_on_a_straight_line():
    L = np.linspace(3.0, 5.0, 8)
    runs = pd.DataFrame({"L": L, "err": 0.9 - 0.1 * L})
    res = fit.fit(laws.ERROR, runs, target="err", inputs={"L": "L"}, objective="lsq")
    c = report.line_vs_law(res, runs, runs, "L", "err")
    assert c.rms_line < 1e-12
    assert c.span == pytest.approx(2.0)
    assert "straight line 0.0000" in c.report()


def test_chain_split_recovers_the_two_links():
    df = _runs()
    sets = report.fit_sets(df, df)
    err_fit = fit.fit(laws.ERROR, sets.error_fit, target="err_avg", inputs={"L": "loss"},
                      objective="lsq")
    chain = pd.DataFrame({"actual": sets.heldout["err_avg"].to_numpy(),
                          "pred_loss": sets.heldout["loss"].to_numpy() * 1.02,
                          "pred_from_actual_loss": err_fit.predict(sets.heldout, interval=None)[
                              "pred"].to_numpy(),
                          "rel_err_pct": [1.0, 3.0]})
    split = report.chain_split(chain, sets.heldout, "loss")
    assert split.loss_err == pytest.approx(2.0)
    assert split.chain_err == pytest.approx(2.0)
    assert split.alone_err < 1.0


def test_per_task_view_and_spread_rank_the_tasks():
    df = _runs()
    sets = report.fit_sets(df, df)
    tasks = ["err_t0", "err_t1", "err_t2", "err_flat"]
    per_task = report.label_tasks(downstream.per_task_fits(sets.error_fit, sets.heldout, tasks,
                                                           "loss"), tasks[:3])
    assert per_task.index.tolist() == ["t0", "t1", "t2", "flat"]
    view = report.per_task_view(per_task)
    assert view.index[-1] == "flat"
    assert list(view.columns) == list(report.PER_TASK_COLUMNS.values())
    spread = report.task_spread(df, tasks, tasks[:3], per_task)
    assert spread.outside_max < spread.inside_median
    assert spread.best in {"t0", "t1", "t2"} and "flat" not in spread.ranked
    assert " and " in spread.worst_two


def test_figures_draw_one_panel_per_task_and_readable_ticks():
    df = _runs()
    names = ["t0", "t1", "flat"]
    fig = report.task_panels(df, None, names, ["err_t0", "err_t1"], "loss",
                             chance={"err_t0": 0.8, "err_t1": 0.8, "err_flat": 0.5})
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["t0", "t1", "flat (not in avg)"]
    plt.close(fig)
    fig = report.task_panels(df, None, [], [], "loss")
    assert "no per-task" in fig.axes[0].texts[0].get_text()
    plt.close(fig)
    study = pd.DataFrame({"size": [1, 1, 2, 2, 3], "rel_err_pct": [40.0, 0.4, 9.0, 3.0, 2.0],
                          "success": True})
    by_size = downstream.summarize_subsets(study)
    by_size["median, measured loss"] = by_size["median"] / 2
    fig = report.subsets_figure(study, by_size)
    fig.canvas.draw()
    ax = fig.axes[0]
    shown = [t.get_text() for t in ax.yaxis.get_ticklabels(minor=True) if t.get_text()]
    assert shown == []
    majors = {t.get_text() for t in ax.yaxis.get_ticklabels() if t.get_text()}
    assert {"1", "2", "5", "10"} <= majors
    plt.close(fig)


def test_paper_values_match_the_published_report():
    paper = published_report.paper_relative_errors()
    c4 = paper[paper["train_set"] == "C4"]
    for p in report.PAPER_HELDOUT:
        rows = c4[(c4["N"] == p.N) & (c4["M"] == p.M)].set_index("quantity")["pct"]
        assert rows["loss"] == p.loss_pct and rows["error"] == p.error_pct


def test_paper_vs_testbed_averages_ours():
    chain = pd.DataFrame({"pred_loss": [3.03, 2.94], "rel_err_pct": [1.0, 5.0]})
    ours = pd.DataFrame({"N": [6.4e5, 1.05e6], "M": [40.0, 20.0], "loss": [3.0, 3.0]})
    t = report.paper_vs_testbed(chain, ours, "loss")
    assert t.index.tolist() == ["Gadre et al.: 1.4B, M=80", "Gadre et al.: 6.9B, M=20",
                                "ours: 640k, M=40", "ours: 1.1M, M=20", "ours: mean"]
    assert_allclose(t.loc["ours: mean"], [1.5, 3.0])
    assert t.loc["Gadre et al.: 6.9B, M=20", "chained error (%)"] == 0.14


def test_role_names_are_the_protocol_roles():
    assert {"loss_fit", "error_fit", "target", "unused"} == set(protocols.ROLES)
