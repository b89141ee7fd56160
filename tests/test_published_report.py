"""The published-testbed chapter's tables and figures (scaling_lib.published_report)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from conftest import needs_openlm
from scaling_lib import fit, laws, protocols
from scaling_lib import published_report as report

TRUE = {"E": 1.8, "a": 150.0, "b": 300.0, "eta": 0.13}
"""Over-training law parameters of the synthetic testbed (M* = 2^(1/0.26), about 14.4)."""


def synthetic_testbed(noise=0.0, seed=0):
    """Two training sets with the paper's layout: four small shapes at eight M, 1.4B, 6.9B."""
    rng = np.random.default_rng(seed)
    rows = []
    for train_set in ("A", "B"):
        for n in (1.1e7, 7.9e7, 1.5e8, 4.1e8):
            rows += [(train_set, n, m) for m in (5, 10, 20, 40, 80, 160, 320, 640)]
        rows += [(train_set, 1.4e9, 20.0), (train_set, 1.4e9, 640.0), (train_set, 6.9e9, 20.0)]
    df = pd.DataFrame(rows, columns=["train_set", "N", "M"])
    df["D"] = df["N"] * df["M"]
    df["flops"] = 6 * df["N"] * df["D"]
    df["model"] = [f"n{n:.0e}" for n in df["N"]]
    df["run_id"] = [f"{t}-{n:.0e}-{m:g}" for t, n, m in df[["train_set", "N", "M"]].to_numpy()]
    loss = laws.OVERTRAINING(TRUE, N=df["N"].to_numpy(), M=df["M"].to_numpy())
    df["loss_x"] = loss * np.exp(noise * rng.standard_normal(len(df)))
    df["err_x"] = 0.85 - 2.0 * np.exp(-0.7 * df["loss_x"])
    df["chance_x"] = 0.8
    df["role"] = protocols.assign_roles(df)
    return df


def fitted(df):
    loss_fits, error_fits, data = {}, {}, {}
    for ts, g in df.groupby("train_set"):
        data[ts] = protocols.select(g, "loss_fit")
        loss_fits[ts] = fit.fit(laws.OVERTRAINING, data[ts], target="loss_x")
        error_fits[ts] = fit.fit(laws.ERROR, protocols.select(g, "error_fit"), target="err_x",
                                 inputs={"L": "loss_x"})
    return loss_fits, error_fits, data


def test_m_star_formula_and_edges():
    assert_allclose(report.m_star(TRUE), (300 / 150) ** (1 / 0.26))
    assert report.m_star({"a": 0.0, "b": 1.0, "eta": 0.1}) == float("inf")
    assert report.m_star({"a": 1.0, "b": 0.0, "eta": 0.1}) == 0.0
    assert np.isnan(report.m_star({"a": 1.0, "b": 1.0, "eta": 0.0}))


def test_paper_values_are_complete_and_cited():
    paper = report.paper_relative_errors()
    assert len(paper) == 18
    assert set(paper["train_set"]) == {"C4", "RedPajama", "RefinedWeb"}
    assert paper.groupby(["train_set", "quantity"]).size().eq(3).all()
    assert paper["source"].str.match(r"(Fig\. (5|12)|Table 2)").all()
    # the headline figures of the paper's Sec. 4
    rpj = paper.set_index(["train_set", "N", "M", "quantity"])["pct"]
    assert rpj[("RedPajama", 1.4e9, 640, "loss")] == 0.7
    assert rpj[("RedPajama", 6.9e9, 20, "error")] == 0.05
    assert set(report.PAPER_M_STAR) == {"C4", "RedPajama", "RefinedWeb"}


def test_paper_comparison_agrees_at_the_printed_precision():
    ours = pd.DataFrame({"train_set": ["RedPajama", "RedPajama"], "N": [1.44e9, 6.89e9],
                         "M": [640.0, 20.0], "quantity": ["loss", "error"],
                         "role": ["target", "target"], "rel_err_pct": [0.749, 0.056]})
    table = report.paper_comparison(ours).set_index(["train_set", "N", "M", "quantity"])
    assert table.loc[("RedPajama", 1.4e9, 640.0, "loss"), "agrees"]      # 0.749 rounds to 0.7
    assert not table.loc[("RedPajama", 6.9e9, 20.0, "error"), "agrees"]  # 0.056 is not 0.05
    assert_allclose(table.loc[("RedPajama", 1.4e9, 640.0, "loss"), "difference"], 0.049)
    missing = table.loc[("C4", 1.4e9, 80.0, "loss")]
    assert np.isnan(missing["ours"]) and not missing["agrees"]


def test_held_out_errors_are_zero_on_noiseless_data():
    df = synthetic_testbed()
    loss_fits, error_fits, _ = fitted(df)
    ours = report.held_out_errors(df, loss_fits, error_fits, "loss_x", "err_x")
    assert len(ours) == 2 * 2 * 3                     # sets x quantities x runs above the small shapes
    assert set(ours["role"]) == {"target", "error_fit"}
    assert ours["rel_err_pct"].max() < 1e-3


def test_m_star_bootstrap_recovers_the_truth_and_names_unidentified_replicates():
    df = synthetic_testbed()
    loss_fits, _, data = fitted(df)
    assert_allclose(report.m_star(loss_fits["A"].params), report.m_star(TRUE), rtol=1e-3)
    boot = report.m_star_bootstrap(loss_fits["A"], data["A"], n_boot=40, seed=1)
    assert list(boot.columns) == ["M_star", "n_unique", "n_M", "identified"]
    one_m = boot["n_M"] < 2
    assert one_m.any() and not boot.loc[one_m, "identified"].any()
    assert_allclose(boot.loc[boot["identified"], "M_star"], report.m_star(TRUE), rtol=1e-2)
    table = report.m_star_table(loss_fits, data, n_boot=40, seed=1)
    assert list(table.index) == ["A", "B"]
    assert (table["lo"] <= table["M_star"]).all() and (table["M_star"] <= table["hi"]).all()
    assert not table["inside"].any()                 # 14.4 < 20: below the fitted multipliers
    assert table[["fit_M_min", "fit_M_max"]].iloc[0].tolist() == [20.0, 320.0]


def test_m_star_table_without_bootstrap_has_no_interval():
    df = synthetic_testbed()
    loss_fits, _, data = fitted(df)
    table = report.m_star_table(loss_fits, data, n_boot=0)
    assert table["lo"].isna().all() and (table["identified"] == 0).all()


def test_relative_residuals_sign():
    df = synthetic_testbed()
    loss_fits, _, _ = fitted(df)
    worse = df.assign(loss_x=df["loss_x"] * 1.02)
    resid = report.relative_residuals(worse, loss_fits, "loss_x")
    assert resid.index.equals(df.index)
    assert_allclose(resid, 2.0, atol=1e-3)


def test_eval_set_and_objective_tables():
    df = synthetic_testbed(noise=0.003)
    per_set = report.eval_set_errors(df, ["x"], "err_x")
    assert len(per_set) == 4 and per_set["n_warnings"].eq(0).all()
    assert per_set["target"].iloc[0] == "A 1.4B M=640"
    cmp = report.objective_comparison(df, "loss_x", n_boot=20)
    assert set(cmp.table["objective"]) == {"lsq", "huber_log"}
    assert set(cmp.fits) == {(o, t) for o in ("lsq", "huber_log") for t in ("A", "B")}
    assert 0 < cmp.usable <= 1 and 0 <= cmp.exactly_k <= 1
    assert (cmp.table["width_pct"] >= 0).all()


def test_warnings_are_listed_per_fit():
    df = synthetic_testbed(noise=0.003)
    loss_fits, error_fits, _ = fitted(df)
    table = report.warnings_table({("loss", "A"): loss_fits["A"], "error A": error_fits["A"]})
    assert list(table.columns) == ["fit", "warning"]
    assert table.loc[table["fit"] == "loss A", "warning"].str.contains("dof = 1").any()
    text = report.warnings_text({"error A": error_fits["A"]})
    assert text.startswith("error A:\n  - ")


def test_figures_have_one_row_or_panel_per_training_set():
    df = synthetic_testbed(noise=0.003)
    loss_fits, error_fits, _ = fitted(df)
    fig = report.loss_figure(df, "loss_x", loss_fits, df["role"])
    assert len(fig.axes) == 4 and len(fig.legends) == 2
    plt.close(fig)
    fig = report.error_figure(df, "err_x", "loss_x", error_fits, "chance_x", df["role"])
    assert len(fig.axes) == 2 and [ax.get_title() for ax in fig.axes] == ["A", "B"]
    plt.close(fig)


@needs_openlm
def test_reproduces_every_published_relative_error(openlm):
    """Reference check: the paper's 18 relative errors on C4 eval, to their printed precision."""
    df = openlm.assign(role=protocols.assign_roles(openlm))
    loss_fits, error_fits = {}, {}
    for ts, g in df.groupby("train_set"):
        loss_fits[ts] = fit.fit(laws.OVERTRAINING, protocols.select(g, "loss_fit"),
                                target="loss_c4_val")
        error_fits[ts] = fit.fit(laws.ERROR, protocols.select(g, "error_fit"), target="err_avg17",
                                 inputs={"L": "loss_c4_val"})
    ours = report.held_out_errors(df, loss_fits, error_fits, "loss_c4_val", "err_avg17")
    table = report.paper_comparison(ours)
    assert table["agrees"].all(), table[~table["agrees"]]
    mstar = {ts: report.m_star(r.params) for ts, r in loss_fits.items()}
    assert all(report.PAPER_M_STAR[ts] < m < 20 for ts, m in mstar.items())


def test_paper_comparison_rejects_nothing_silently():
    with pytest.raises(KeyError):
        report.paper_comparison(pd.DataFrame({"train_set": ["C4"]}))
