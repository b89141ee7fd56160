"""Tests of scaling_lib.training_report on small synthetic tables (no torch, no corpus)."""

from __future__ import annotations

import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from numpy.testing import assert_allclose  # noqa: E402

from scaling_lib import testbeds  # noqa: E402
from scaling_lib import training_report as report  # noqa: E402


@pytest.fixture(scope="module")
def tb():
    return testbeds.cpu_tiny()


@pytest.fixture
def table(tb):
    """A finished run table for the cpu-tiny design, with made-up losses."""
    planned = tb.table()
    rng = np.random.default_rng(0)
    df = planned.rename(columns={"warmup_steps": "warmup"}).copy()
    df["loss_en"] = 10 * df["N"] ** -0.1 + 30 * df["D"] ** -0.15 + rng.normal(0, 0.01, len(df))
    df["loss_en_lo"], df["loss_en_hi"] = df["loss_en"] - 0.05, df["loss_en"] + 0.05
    for dom, scale in (("en", 0.6), ("code", 0.8), ("de", 1.0)):
        df[f"bpb_{dom}"] = scale * df["loss_en"] + (2.0 if dom == "de" else 0.0)
    df["err_avg"] = 0.1 * df["loss_en"]
    df["err_a"] = 0.1 * df["loss_en"]
    df["err_b"] = rng.uniform(0.4, 0.6, len(df))
    df["chance_avg"] = 0.7
    df["wall_s"] = df["D"] / (1e5 * (df["N"] / 6e4) ** -0.4)
    return df


def test_module_does_not_import_torch():
    code = ("import sys; import scaling_lib.training_report; "
            "print('torch' in sys.modules)")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_corpus_splits_and_sources():
    stats = {"splits": {"train_en": {"n_docs": 3, "n_bytes": 100, "n_tokens": 40,
                                     "bytes_per_token": 2.5},
                        "val_de": {"n_docs": 1, "n_bytes": 18, "n_tokens": 10,
                                   "bytes_per_token": 1.8}},
             "sources": [{"language": "en", "name": "x", "n_bytes": 1e6},
                         {"language": "de", "name": "y", "n_bytes": 5e5}]}
    splits = report.corpus_splits(stats)
    assert list(splits.columns) == ["n_docs", "n_bytes", "n_tokens", "bytes_per_token"]
    assert splits.loc["val_de", "n_tokens"] == 10.0
    assert report.sources_text(stats).splitlines() == [
        "en: 1.0 MB from 1 sources", "  x", "de: 0.5 MB from 1 sources", "  y"]


def test_unigram_loss_is_the_entropy_of_the_smoothed_counts():
    train = np.array([0, 0, 0, 1, 2, 2])
    val = np.array([0, 1, 2])
    p = (np.bincount(train, minlength=4) + 1.0) / (len(train) + 4)
    assert_allclose(report.unigram_loss(train, val, 4), -np.log(p[val]).mean())
    # the uniform model is the upper bound for a corpus the counts describe
    assert report.unigram_loss(train, train, 4) < math.log(4)


def test_shape_table_counts_every_parameter(tb):
    shapes = report.shape_table(tb)
    assert list(shapes.index) == [s.name for s in tb.shapes]
    assert (shapes["N"] == shapes["N_ne"] + shapes["emb."] + shapes["head"]).all()
    assert shapes["emb+head"].is_monotonic_decreasing


def test_recipe_table_follows_the_rule(tb):
    t = report.recipe_table(tb, multiplier=40)
    assert "steps at M=40" in t.columns
    assert_allclose(t["lr"], [tb.train_config(testbeds.RunSpec(s.name, 40)).lr for s in tb.shapes])


def test_live_testbed_parses_json_and_keeps_the_recipe(tb):
    live = report.live_testbed(tb, json.dumps([["s2", 10], ["s3", 5]]))
    assert [r.run_id for r in live.runs] == ["s2_M10_s0", "s3_M5_s0"]
    assert live.base_lr == tb.base_lr and live.shapes == tb.shapes
    assert report.plan_text(live).count("\n") == 1
    with pytest.raises(ValueError, match="unknown shapes"):
        report.live_testbed(tb, [["nope", 5]])


def test_compare_twins_needs_the_same_recipe():
    row = {"run_id": "a", "lr": 0.1, "warmup": 2, "D": 10, "data_version": "v"}
    curve = pd.DataFrame({"run_id": "a", "tokens": [5, 10], "loss": [5.0, 4.0]})
    same = report.compare_twins(pd.DataFrame([row]), pd.DataFrame([row]), curve, curve)
    assert same.twins == ["a"] and same.worst == 0.0
    other = report.compare_twins(pd.DataFrame([row]), pd.DataFrame([{**row, "lr": 0.2}]),
                                 curve, curve)
    assert other.twins == [] and math.isnan(other.worst)
    assert other.committed_curves.empty


def test_schedule_gap_interpolates_in_log_tokens():
    c = pd.DataFrame({"run_id": ["long"] * 3 + ["short"] * 2, "tokens": [1, 100, 1000, 1, 10],
                      "loss": [6.0, 4.0, 3.0, 6.0, 4.5]})
    g = report.schedule_gap(c)
    assert (g.short_id, g.long_id, g.tokens) == ("short", "long", 10.0)
    assert_allclose(g.long_loss, 5.0)  # halfway between 1 and 100 in log tokens
    assert_allclose(g.gap, 0.5)


def test_stale_runs_and_design_grid(tb, table):
    assert report.stale_runs(table, tb) == []
    changed = table.copy()
    changed.loc[0, "warmup"] += 1
    stale = report.stale_runs(changed, tb)
    assert stale == [table.loc[0, "run_id"]]
    done = table["run_id"].iloc[1:]
    grid = report.design_grid(tb, done=done, stale=stale)
    assert grid.shape == (len(tb.shapes), len({r.multiplier for r in tb.runs}))
    assert grid.iloc[0, 0] == "G!"
    assert sum(cell.count("\u2713") for cell in grid.to_numpy().ravel()) == len(done)
    assert report.run_name(tb.runs[0]) == "s1 at M=5"
    assert report.run_name(testbeds.RunSpec("s2", 20, seed=1)) == "s2 at M=20 (seed 1)"


def test_committed_table_adds_the_columns_the_figures_read(tmp_path, table):
    table[["run_id", "N", "D", "M", "flops", "model", "seed", "loss_en"]].to_csv(
        tmp_path / "runs.csv", index=False)
    df = report.committed_table(tmp_path, domains=["en", "xx"])
    assert len(df) == len(table)
    assert df["bpb_xx"].isna().all() and df["loss_en"].notna().all()
    assert report.records_table(tmp_path / "missing").empty


def test_curve_reading():
    c = pd.DataFrame({"run_id": ["a"] * 3 + ["b"] * 3, "tokens": [1, 10, 100] * 2,
                      "loss": [6.9, 5.5, 4.0, 6.8, 6.5, 5.9]})
    r = report.curve_reading(c, reference=6.0)
    assert (r.n_runs, r.first_max, r.n_below) == (2, 6.9, 2)
    assert_allclose(r.median_crossing, 55.0)
    none = report.curve_reading(c.iloc[:0], reference=6.0)
    assert none.n_runs == 0 and math.isnan(none.median_crossing)


def test_seed_noise_against_the_doubling_gain(table):
    seeds = table[table["seed"] == 0].copy()
    first = seeds.iloc[[0]].assign(seed=1, loss_en=seeds["loss_en"].iloc[0] + 0.02)
    noise = report.seed_noise(pd.concat([seeds, first]), "loss_en")
    assert len(noise.spread) == 1 and noise.worst == (first["model"].iloc[0], first["M"].iloc[0])
    assert_allclose(noise.spread["range"].iloc[0], 0.02, atol=1e-12)
    assert noise.doubling_gain > 0 and 0 < noise.ratio < 1


def test_bpb_table_and_ranges(table):
    t = report.bpb_table(table, ["en", "de"])
    assert list(t.columns) == ["worst run", "best run", "gain", "largest run"]
    assert_allclose(t["gain"], t["worst run"] - t["best run"])
    top = table.loc[table["flops"].idxmax()]
    assert t.loc["en", "largest run"] == top["bpb_en"]
    r = report.range_over_multipliers(table, "bpb_de")
    assert set(r.index) == set(table["model"]) and (r >= 0).all()
    spread = report.seed_range(table, "bpb_de", multiplier=20)
    assert set(spread.index) == set(table.loc[table["seed"] > 0, "model"])


def test_throughput_recovers_the_slope(table):
    rec = pd.DataFrame({"run_id": table["run_id"], "tokens_per_s": table["D"] / table["wall_s"],
                        "train_wall_s": table["wall_s"] * 0.9, "eval_wall_s": table["wall_s"] * 0.1,
                        "device": "cpu", "finished_at": "2026-01-01T00:00:00+00:00"})
    tp = report.throughput(rec, table)
    assert_allclose(tp.slope, -0.4)
    assert_allclose(tp.eval_pct, 10.0)
    assert tp.devices == "cpu" and tp.per_shape["runs"].sum() == len(table)
    assert_allclose(tp.worker_hours, table["wall_s"].sum() / 3600)
    one = report.throughput(rec.iloc[:1], table)
    assert math.isnan(one.slope)


def test_task_table(table):
    per_task = report.task_table(table, "loss_en")
    assert list(per_task.index) == ["a", "b"]
    assert_allclose(per_task.loc["a", "corr. with loss"], 1.0)


def test_figures_draw_on_a_full_and_an_empty_table(tb, table):
    curves = pd.DataFrame({"run_id": table["run_id"].repeat(2).to_numpy(), "tokens": [1, 10] * len(table),
                           "loss": [6.0, 5.0] * len(table)}).merge(
        tb.table()[["run_id", "M", "seed", "role"]], on="run_id")
    colors = report.shape_colors(table["model"].unique())
    empty = table.iloc[:0]
    figs = [report.param_share_figure(tb),
            report.lr_schedule_figure(tb, lambda cfg: (lambda step: 1.0)),
            report.live_curves_figure(curves[curves["run_id"] == "s1_M5_s0"], curves),
            report.curves_figure(tb, curves), report.curves_figure(tb, curves.iloc[:0]),
            report.final_loss_figure(table, colors), report.final_loss_figure(empty, colors),
            report.bpb_figure(table, ["en", "code", "de"], colors),
            report.error_vs_loss_figure(table), report.error_vs_loss_figure(empty),
            report.throughput_figure(pd.DataFrame(columns=["N", "tokens_per_s", "finished_at"]))]
    for fig in figs:
        assert fig.axes
        plt.close(fig)
