"""Tests for scaling_lib.ood_report on small synthetic run tables."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from numpy.testing import assert_allclose  # noqa: E402

from scaling_lib import downstream, laws  # noqa: E402
from scaling_lib import ood_report as report  # noqa: E402

TRUE = {"E": 1.5, "a": 80.0, "b": 400.0, "eta": 0.2}
DOMAINS = {"English": "x_en", "code": "x_code", "German": "x_de"}


def _runs():
    """The paper's five loss-fit runs, two targets and two repeat seeds of the smallest run."""
    N = np.array([1e5, 2e5, 4e5, 8e5, 1e5, 1.6e6, 3.2e6, 1e5, 1e5])
    M = np.array([20, 20, 20, 20, 320, 40, 20, 20, 20.0])
    roles = ["loss_fit"] * 5 + ["target"] * 2 + ["unused"] * 2
    df = pd.DataFrame({"run_id": [f"r{i}" for i in range(len(N))], "model": [f"s{n:g}" for n in N],
                       "N": N, "M": M, "flops": 6 * N * M * N, "seed": [0] * 7 + [1, 2],
                       "role": roles})
    base = laws.OVERTRAINING(TRUE, N=N, M=M)
    df["x_en"] = base
    df["x_code"] = 1.5 * base
    df["x_de"] = 5.0 + 0.001 * np.cos(np.arange(len(N)))  # a loss that does not move
    df.loc[7:, "x_en"] += [0.01, -0.02]
    return df


def test_protocol_runs_counts_and_the_fallback_to_unused_runs():
    df = _runs()
    sets = report.protocol_runs(df)
    assert sets.can_fit and sets.n_inside == 0 and len(sets.heldout) == 2
    design = pd.DataFrame({"role": ["fit"] * 6 + ["grid"]})
    assert report.protocol_runs(df, design).n_design_fit == 6
    early = report.protocol_runs(df[df["role"] != "target"])
    assert early.heldout_kind == "runs outside the fit set"
    assert early.n_inside == 2  # the repeat seeds lie inside the fit runs' compute
    assert not report.protocol_runs(df.iloc[:3]).can_fit


def test_movement_and_seed_spread():
    df = _runs()
    move = report.domain_movement(df, DOMAINS)
    assert_allclose(move.loc["code", "range / English range"], 1.5, rtol=1e-2)
    assert move.loc["German", "range / English range"] < 0.01
    noise = report.seed_spread(df, DOMAINS)
    assert list(noise.columns) == list(DOMAINS)
    assert_allclose(noise["English"].max(), 0.03, atol=1e-9)
    assert report.seed_spread(df.drop(columns="seed"), DOMAINS) is None


@pytest.fixture(scope="module")
def fitted():
    df = _runs()
    sets = report.protocol_runs(df)
    fits, table = downstream.relative_errors_by_column(
        laws.OVERTRAINING, sets.loss_fit, sets.heldout, list(DOMAINS.values()), objective="lsq")
    table["domain"] = table["column"].map({c: d for d, c in DOMAINS.items()})
    return df, sets, fits, report.with_baseline(table, sets.loss_fit)


def test_baseline_skill_and_summaries(fitted):
    df, sets, fits, table = fitted
    en = table[table["domain"] == "English"]
    assert (en["skill"] < 0.01).all()  # the law is exact on English
    best = sets.loss_fit["x_en"].min()
    assert_allclose(en["baseline_err"], (best - en["actual"]).abs())
    summary = report.domain_summary(table, list(DOMAINS)[::-1])
    assert summary.index.tolist() == ["German", "code", "English"]
    assert summary.index.name == "domain" and "covered" not in summary
    assert report.domain_summary(None, DOMAINS)["skill"].isna().all()
    view = report.skill_view(table, DOMAINS)
    assert view.index.tolist() == sorted(sets.heldout["run_id"])
    side = report.side_by_side({"ours": table, "none": None}, DOMAINS)
    assert_allclose(side[("ours", "rel. err (%)")], summary["rel_err_pct"][::-1])
    assert report.side_by_side({"none": None}, DOMAINS) is None


def test_fits_report_and_flat_domains(fitted):
    _, _, fits, _ = fitted
    text = report.fits_report(fits, DOMAINS)
    assert text.count("\n  - ") >= 1 and "German:" in text
    assert "German" in report.flat_domains(fits, DOMAINS)
    assert "English" not in report.flat_domains(fits, DOMAINS)


def test_figures_label_runs_by_size_and_multiplier(fitted):
    df, _, fits, table = fitted
    fig = report.domains_figure(df, DOMAINS, fits, flat=["German"])
    assert [ax.get_title() for ax in fig.axes[:3]] == list(DOMAINS)
    plt.close(fig)
    fig = report.side_by_side_figure({"ours": table, "none": None}, DOMAINS)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["1.6M, M=40", "3.2M, M=20"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(DOMAINS)
    plt.close(fig)
    fig = report.side_by_side_figure({}, DOMAINS)
    assert fig.axes[0].texts[0].get_text() == "no fits yet"
    plt.close(fig)


def test_run_labels_keep_two_runs_of_one_configuration_apart():
    t = pd.DataFrame({"run_id": ["a", "b"], "N": [1e6, 1e6], "M": [20.0, 20.0]})
    assert report._run_labels(t).tolist() == ["1M, M=20 (a)", "1M, M=20 (b)"]


def test_paper_vs_testbed_matches_runs_by_size_and_multiplier(fitted):
    _, _, _, ours = fitted
    pub = pd.DataFrame({"domain": ["English", "code", "English"], "N": [1.44e9, 1.44e9, 6.89e9],
                        "M": [80.0, 80.0, 20.0], "rel_err_pct": [1.498, 4.28, 4.295]})
    t = report.paper_vs_testbed(pub, ours, DOMAINS)
    assert t.index.tolist() == ["Gadre et al.: 1.4B, M=80", "Gadre et al.: 6.9B, M=20",
                                "ours: mean"]
    assert t.loc["Gadre et al.: 1.4B, M=80", "reported (%)"] == 1.5
    assert t.loc["Gadre et al.: 6.9B, M=20", "English (%)"] == pytest.approx(4.295)
    assert np.isnan(t.loc["Gadre et al.: 6.9B, M=20", "code (%)"])
    assert np.isnan(t.loc["ours: mean", "reported (%)"])
    assert_allclose(t.loc["ours: mean", "English (%)"],
                    ours.loc[ours["domain"] == "English", "rel_err_pct"].mean())
    empty = report.paper_vs_testbed(None, None, DOMAINS)
    assert empty.drop(columns="reported (%)").isna().all().all()
