"""Tests of scaling_lib.published_isoflop and scaling_lib.published_chinchilla.

Loaders on good and damaged files, the two protocols on a synthetic IsoFLOP set with a known
exponent, and reference checks on the published files (skipped when ../shared is absent).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from scaling_lib import published_chinchilla as pc
from scaling_lib import published_isoflop as pi

PORIAN = pi.default_porian_path() / pi.PORIAN_FILE
EPOCH = pi.default_epoch_path() / pi.EPOCH_FILE
needs_porian = pytest.mark.skipif(not PORIAN.is_file(), reason=f"Porian et al.'s points not found at {PORIAN}")
needs_epoch = pytest.mark.skipif(not EPOCH.is_file(), reason=f"Epoch's Chinchilla points not found at {EPOCH}")

CONFIG = {"source": "summary_df", "dataset": "rw", "hparams": "base", "warmup": "short", "decay": "kaplan",
          "param_count": "standard", "loss_split": "val", "experiment": "toy"}


def synthetic_isoflop(a=0.6, budgets=8, sizes=9, noise=0.0, seed=0, experiment="toy"):
    """IsoFLOP points whose loss-optimal size is N* = 0.05 C^a exactly."""
    rng = np.random.default_rng(seed)
    flops = 1e16 * 2.0 ** np.arange(budgets)
    rows = []
    for c in flops:
        n_star = 0.05 * c**a
        for n in n_star * np.geomspace(0.1, 10, sizes):
            loss = 3.0 + 0.08 * np.log(n / n_star) ** 2 + 0.01 * np.log(n / n_star) ** 3 / 10
            rows.append(CONFIG | {"experiment": experiment, "flops": c, "N": n, "D": c / (6 * n),
                                  "loss": loss + noise * rng.standard_normal()})
    return pd.DataFrame(rows)


def write(tmp_path, df, name=pi.PORIAN_FILE):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


# ----------------------------------------------------------------------------- Porian loader


def test_porian_loader_reads_a_good_file_and_its_folder(tmp_path):
    pts = synthetic_isoflop(budgets=3, sizes=4)
    write(tmp_path, pts)
    for where in (tmp_path, tmp_path / pi.PORIAN_FILE):
        got = pi.load_porian_isoflop(where)
        assert len(got) == 12 and list(got.columns) == list(pi.CONFIG_COLUMNS) + ["flops", "N", "D", "loss"]
        assert_allclose(got["loss"], pts["loss"])


def test_porian_loader_environment_variable(tmp_path, monkeypatch):
    write(tmp_path, synthetic_isoflop(budgets=2, sizes=3))
    monkeypatch.setenv(pi.PORIAN_ENV, str(tmp_path))
    assert pi.default_porian_path() == tmp_path
    assert len(pi.load_porian_isoflop()) == 6


def test_porian_loader_missing_file_says_where_and_which_variable(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nowhere'}.*{pi.PORIAN_ENV}"):
        pi.load_porian_isoflop(tmp_path / "nowhere")


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.drop(columns="loss"), r"missing column\(s\) \['loss'\]"),
    (lambda d: d.assign(N=d["N"].astype(object).where(d.index != 2, "big")), r"column 'N'.*line 4 \('big'\)"),
    (lambda d: d.assign(loss=d["loss"].where(d.index != 0, -1.0)), r"column 'loss'.*line 2"),
    (lambda d: d.assign(decay=d["decay"].where(d.index != 5, "linear")), r"'decay'.*'linear'.*line 7"),
    (lambda d: pd.concat([d, d.iloc[[0]]]), r"appears twice.*line 14"),
])
def test_porian_loader_names_file_column_and_row(tmp_path, damage, message):
    path = write(tmp_path, damage(synthetic_isoflop(budgets=3, sizes=4)))
    with pytest.raises(pi.PublishedDataError, match=message) as info:
        pi.load_porian_isoflop(path)
    assert str(path) in str(info.value)


def test_porian_loader_empty_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(pi.PublishedDataError, match="empty"):
        pi.load_porian_isoflop(empty)
    header = tmp_path / "header.csv"
    header.write_text(",".join(list(pi.CONFIG_COLUMNS) + ["flops", "N", "D", "loss"]) + "\n")
    with pytest.raises(pi.PublishedDataError, match="no rows"):
        pi.load_porian_isoflop(header)


# ----------------------------------------------------------------------------- Epoch loader


def epoch_frame(n=12):
    rng = np.random.default_rng(1)
    N = 10 ** rng.uniform(8, 9.5, n)
    C = np.repeat([1e19, 1e20, 1e21], n // 3)
    return pd.DataFrame({"x": 1.0, "y": 1.0, "color": "#000", "Model Size": N, "Training FLOP": C,
                         "hex_color": "#000", "loss": 2.5 + rng.uniform(0, 0.3, n)})


def test_epoch_loader_derives_d_and_budgets(tmp_path):
    path = write(tmp_path, epoch_frame(), pi.EPOCH_FILE)
    got = pc.load_epoch_chinchilla(tmp_path)
    assert list(got.columns) == ["run", "N", "C", "D", "loss", "budget"]
    assert_allclose(got["D"], got["C"] / (6 * got["N"]))
    assert got["run"].tolist() == list(range(2, 14))
    assert_allclose(np.sort(got["budget"].unique()), [1e19, 1e20, 1e21], rtol=0.02)
    assert pc.load_epoch_chinchilla(path).equals(got)


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.drop(columns="Training FLOP"), r"missing column\(s\) \['Training FLOP'\]"),
    (lambda d: d.assign(loss=d["loss"].astype(object).where(d.index != 3, "n/a")), r"'loss'.*line 5 \(empty\)"),
    (lambda d: d.assign(loss=d["loss"].astype(object).where(d.index != 4, "low")), r"'loss'.*line 6 \('low'\)"),
    (lambda d: d.assign(loss=d["loss"].where(d.index != 0, -2.0)), r"'loss'.*line 2"),
])
def test_epoch_loader_damaged(tmp_path, damage, message):
    path = write(tmp_path, damage(epoch_frame()), pi.EPOCH_FILE)
    with pytest.raises(pi.PublishedDataError, match=message):
        pc.load_epoch_chinchilla(path)


def test_epoch_loader_empty_and_missing(tmp_path, monkeypatch):
    (tmp_path / pi.EPOCH_FILE).write_text("")
    with pytest.raises(pi.PublishedDataError, match="empty"):
        pc.load_epoch_chinchilla(tmp_path)
    monkeypatch.setenv(pi.EPOCH_ENV, str(tmp_path / "gone"))
    with pytest.raises(FileNotFoundError, match=pi.EPOCH_ENV):
        pc.load_epoch_chinchilla()


def test_flop_groups_leaves_a_lone_run_out():
    c = np.r_[np.full(6, 1e19), np.full(6, 1e20) * np.geomspace(0.9, 1.1, 6), 5e21]
    budgets = pc.flop_groups(c)
    assert np.isnan(budgets[-1]) and len(np.unique(budgets[:-1])) == 2


# ----------------------------------------------------------------------------- protocols


@pytest.mark.parametrize("protocol", ["paper", "default"])
def test_porian_table_recovers_a_known_exponent(protocol):
    pts = pd.concat([synthetic_isoflop(a=0.6, noise=0.002), synthetic_isoflop(a=0.45, experiment="flat")])
    t = pi.porian_table(pts, protocol, n_boot=100, seed=1).set_index("experiment")
    assert_allclose(t.loc[["toy", "flat"], "a"], [0.6, 0.45], atol=0.02)
    assert_allclose(t["a"] + t["b"], 1.0, atol=0.02)
    assert (t["a_lo"] <= t["a"]).all() and (t["a"] <= t["a_hi"]).all()
    assert (t["n_budgets"] == 8).all()


def test_paper_protocol_drops_a_budget_without_an_interior_minimum():
    pts = synthetic_isoflop(a=0.6, budgets=4)
    last = pts["flops"] == pts["flops"].max()
    pts.loc[last, "loss"] = 3.0 - 0.01 * np.log(pts.loc[last, "N"])  # loss falling across the whole range
    opt = pi.interpolated_optima(pts, noise_sd=0.002, n_boot=50)
    assert opt["ok"].tolist() == [True, True, True, False]
    assert pi.porian_table(pts, n_boot=50)["n_budgets"].item() == 3


def test_porian_table_rejects_an_unknown_protocol():
    with pytest.raises(ValueError, match="protocol"):
        pi.porian_table(synthetic_isoflop(budgets=3), "kaplan")


def test_epoch_fit_recovers_parameters():
    rng = np.random.default_rng(3)
    N, D = 10 ** rng.uniform(7.5, 10, 120), 10 ** rng.uniform(9, 11.5, 120)
    loss = pc._predict(pc.EPOCH_PARAMS, N, D)
    fit = pc.fit_epoch(pd.DataFrame({"N": N, "D": D, "loss": loss}), drop_highest=0,
                       starts=pc.start_grid(a=(5.0,), b=(5.0,), e=(0.0, 1.0), alpha=(0.5,), beta=(0.5,)))
    assert_allclose([fit.params[k] for k in ("alpha", "beta")], [0.3478, 0.3658], atol=2e-3)
    assert fit.n_failed == 0 and fit.n_starts == 2


# ----------------------------------------------------------------------------- reference checks


@pytest.fixture(scope="module")
def porian_points():
    return pi.load_porian_isoflop()


@needs_porian
def test_porian_file_shape(porian_points):
    assert len(porian_points) == 1745
    assert porian_points.groupby(["experiment", "dataset"]).ngroups == 15
    assert porian_points["flops"].nunique() == 12


@needs_porian
def test_paper_protocol_reproduces_the_headline_exponents(porian_points):
    table = pi.porian_table(porian_points, "paper", n_boot=200, seed=0)
    cmp = pi.porian_comparison(table, table).dropna(subset=["a_published"])
    assert len(cmp) == 5
    assert_allclose(cmp["a_paper"], cmp["a_published"], atol=0.01)
    assert ((cmp["a_lo"] <= cmp["a_published"]) & (cmp["a_published"] <= cmp["a_hi"])).all()


@needs_epoch
def test_epoch_refit_is_close_to_epoch_and_far_from_hoffmann():
    pts = pc.load_epoch_chinchilla()
    assert len(pts) == 245
    assert pts["budget"].nunique() == 9  # Hoffmann et al.'s nine IsoFLOP budgets
    fit = pc.fit_epoch(pts, starts=pc.start_grid(a=(5.0, 15.0), b=(5.0, 15.0), e=(-1.0, 0.0, 1.0),
                                                 alpha=(0.0, 0.5, 1.0), beta=(0.0, 0.5, 1.0)))
    assert fit.n_points == 240
    for name in ("alpha", "beta"):
        assert abs(fit.params[name] - pc.EPOCH_PARAMS[name]) < 0.005
    assert abs(fit.params["E"] - pc.EPOCH_PARAMS["E"]) < 0.01
    res = pc.residual_table(pts.drop(fit.dropped.index),
                            {"refit": fit.params, "Epoch": pc.EPOCH_PARAMS, "Hoffmann": pc.HOFFMANN_PARAMS})
    assert res.loc["refit", "huber"] <= res.loc["Epoch", "huber"] < res.loc["Hoffmann", "huber"]


def test_porian_comparison_flags_the_default_inside_the_paper_interval():
    paper = pd.DataFrame({"experiment": ["x", "y"], "dataset": ["rw", "owt2"], "a": [0.5, 0.7],
                          "a_lo": [0.45, 0.68], "a_hi": [0.55, 0.72], "b": [0.5, 0.3], "n_budgets": [6, 6]})
    default = paper.assign(a=[0.52, 0.75], n_budgets=[5, 4])
    cmp = pi.porian_comparison(paper, default)
    assert cmp["default_inside"].tolist() == [True, False]
    assert_allclose(cmp["gap"], [0.02, 0.05])
    assert_allclose(cmp["width"], [0.1, 0.04])
    assert cmp["a_published"].isna().all()  # neither row is a published step


def test_residual_table_is_zero_for_the_generating_parameters():
    rng = np.random.default_rng(4)
    N, D = 10 ** rng.uniform(8, 10, 30), 10 ** rng.uniform(9, 11, 30)
    pts = pd.DataFrame({"N": N, "D": D, "loss": pc._predict(pc.HOFFMANN_PARAMS, N, D)})
    res = pc.residual_table(pts, {"Hoffmann": pc.HOFFMANN_PARAMS, "Epoch": pc.EPOCH_PARAMS})
    assert_allclose(res.loc["Hoffmann", ["mean", "rms", "huber"]].astype(float), 0.0, atol=1e-12)
    assert res.loc["Epoch", "rms"] > 0.01 and (res["n"] == 30).all()


def test_start_grid_rejects_an_unknown_axis():
    with pytest.raises(ValueError, match="unknown axis"):
        pc.start_grid(gamma=(1.0,))


@needs_epoch
def test_approach2_on_chinchillas_budgets_agrees_with_hoffmann():
    optima, ex, usable = pc.budget_exponents(pc.load_epoch_chinchilla(), n_boot=50)
    assert usable.all() and len(optima.table) == 9
    assert ex.a.exponent_lo <= 0.49 <= ex.a.exponent_hi  # Hoffmann et al. (2022), Table 2
    assert_allclose(ex.a.exponent + ex.b.exponent, 1.0, atol=0.01)
