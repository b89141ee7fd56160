"""Tests for scaling_lib.beyond on small synthetic run tables and run records."""

import json

import numpy as np
import pandas as pd
import pytest

from scaling_lib import backtest, beyond, laws
from scaling_lib import laws_beyond as lb

LOSS = {"E": 1.8, "a": 40.0, "b": 120.0, "eta": 0.15}
ERR = {"eps": 0.9, "k": 3.0, "gamma": 0.8}


def grid_table():
    """A 5-shape grid with the paper's roles: 4 shapes at M = 20 and the smallest at M = 320 fit."""
    N, M = (a.ravel() for a in np.meshgrid([1e6, 2e6, 4e6, 8e6, 3.2e7], [20.0, 80.0, 320.0]))
    df = pd.DataFrame({"run_id": [f"r{i}" for i in range(N.size)], "N": N, "M": M, "D": N * M,
                       "flops": 6 * N * N * M})
    df["loss"] = laws.OVERTRAINING(LOSS, N=N, M=M)
    df["err"] = laws.ERROR(ERR, L=df["loss"].to_numpy())
    rank = df["N"].rank(method="dense").astype(int) - 1
    role = np.where(((rank < 4) & (df["M"] == 20)) | ((rank == 0) & (df["M"] == 320)), "loss_fit", "unused")
    role = np.where((rank == 4) & (df["M"] == 20), "error_fit", role)
    role = np.where((rank == 4) & (df["M"] != 20), "target", role)
    return df, pd.Series(role, index=df.index)


def test_downstream_table_two_stage_exact_on_its_own_laws():
    df, roles = grid_table()
    roles = roles.where(~((df["N"] == 3.2e7) & (df["M"] == 20)), "target")
    roles = roles.where(~((df["N"] == 8e6) & (df["M"] == 80)), "error_fit")
    out = beyond.downstream_table(df, "err", "loss", roles=roles, n_boot=10, testbed="synthetic")
    assert set(out["method"]) == set(beyond.DOWNSTREAM_METHODS)
    assert (out["testbed"] == "synthetic").all()
    chain = out[out["method"] == "two-stage"]
    assert len(chain) == 3 and chain["rel_err_pct"].max() < 1e-3  # data drawn from the two laws
    assert chain["covered"].isna().all()
    fixed = out[out["method"] == "direct, fixed M"]
    assert set(fixed["M"]) == {20.0}  # M = 80 has an error-fit run of one size only: no fixed-M law
    direct = out[out["method"] == "direct, N and D"]
    assert len(direct) == 3 and np.isfinite(direct["pred"]).all() and (direct["lo"] <= direct["pred"]).all()


def test_downstream_table_without_targets_is_empty():
    df, roles = grid_table()
    assert beyond.downstream_table(df, "err", "loss", roles=roles.replace("target", "unused")).empty


def test_loss_law_table_and_common_rows():
    df, _ = grid_table()
    splits = backtest.shape_splits(df, [3, 4])
    out = beyond.loss_law_table(df, splits, "loss", interval=None, testbed="synthetic")
    assert set(out["law"]) == {"overtraining", "chinchilla", "kaplan"}
    ot = out[out["law"] == "overtraining"]
    assert ot["rel_err_pct"].max() < 1e-3
    fair = beyond.common(out)
    # chinchilla (5 parameters) cannot fit the 3-shape split's 4 runs: only shared predictions remain
    assert set(fair["split"]) == {"4 smallest"}
    counts = fair.groupby("law").size()
    assert counts.nunique() == 1
    table = beyond.summarise(fair, ["law"])
    assert table.loc["overtraining", "median_pct"] < 1e-3
    assert list(table.columns) == ["n", "median_pct", "worst_pct", "coverage", "warned"]


def test_summarise_skips_failed_and_counts_coverage():
    t = pd.DataFrame({"m": ["a", "a", "a"], "status": ["ok", "ok", "failed"], "rel_err_pct": [1.0, 5.0, 9.0],
                      "covered": pd.array([True, True, None], dtype="boolean")})
    row = beyond.summarise(t, ["m"]).loc["a"]
    assert (row["n"], row["median_pct"], row["worst_pct"], row["coverage"]) == (2, 3.0, 5.0, 1.0)


# --- curves -----------------------------------------------------------------------------------------

TRUE_CURVE = {"L0": 2.5, "A": 1.0, "alpha": 0.5, "C": 0.3}
DECAY = 0.99


def write_record(folder, run_id, tokens, n=1e5, n_points=20):
    config = {"tokens": tokens, "batch_size": 8, "lr": 0.02, "warmup_steps": 20, "min_lr_ratio": 0.1,
              "model": {"seq_len": 64}}
    lrs, warm = lb.config_schedule(config)
    steps = np.unique(np.linspace(len(lrs) / n_points, len(lrs), n_points).round().astype(int))
    s1, s2 = lb.schedule_areas(lrs, steps, decay=DECAY, warmup_steps=warm)
    loss = lb.LR_ANNEALING(TRUE_CURVE, S1=s1, S2=s2)
    per_step = 8 * 64
    curve = [{"step": int(s), "tokens": int(min(s * per_step, tokens)), "loss": float(v)} for s, v in zip(steps, loss)]
    (folder / f"{run_id}.json").write_text(json.dumps({"run_id": run_id, "config": config, "curve": curve}))
    return {"run_id": run_id, "N": n, "D": float(tokens), "M": tokens / n, "model": "s1", "loss": curve[-1]["loss"]}


@pytest.fixture()
def curve_runs(tmp_path):
    rows = [write_record(tmp_path, "long", 512 * 800), write_record(tmp_path, "short", 512 * 300)]
    return pd.DataFrame(rows), tmp_path


def test_curve_frame_keeps_points_after_warmup(curve_runs):
    df, folder = curve_runs
    c = beyond.curve_frame(folder / "long.json", "loss", decay=DECAY, offset=0.5)
    assert (c["S2"] > 0).all() and (c["step"] > 20).all()
    assert c["loss"].iloc[-1] == pytest.approx(df.loc[0, "loss"] + 0.5)


def test_early_curve_table_curve_law_exact_on_its_own_curves(curve_runs):
    df, folder = curve_runs
    out = beyond.early_curve_table(df, folder, "loss", fractions=(0.5,), decay=DECAY, n_boot=10)
    law = out[out["method"] == "curve law"]
    assert set(law["run_id"]) == {"long", "short"}
    assert law["rel_err_pct"].max() < 0.5
    assert set(out["method"]) == {"curve law", "power law in tokens"}


def test_corrected_curve_points_give_finished_shorter_runs(curve_runs):
    df, folder = curve_runs
    out = beyond.corrected_curve_points(df, folder, "loss", decay=DECAY)
    assert {"raw", "correction", "parent_run"} <= set(out.columns)
    # the law is exact here: a corrected point equals the law at the end of its own shorter schedule
    config = json.loads((folder / "long.json").read_text())["config"]
    for _, p in out[out["parent_run"] == "long"].iterrows():
        lrs, warm = lb.config_schedule(config, tokens=int(round(p["D"])))
        s1, s2 = lb.schedule_areas(lrs, [len(lrs)], decay=DECAY, warmup_steps=warm)
        assert p["loss"] == pytest.approx(lb.LR_ANNEALING(TRUE_CURVE, S1=s1, S2=s2)[0], abs=2e-3)
    # a mid-run point of a cosine schedule reads above the finished shorter run
    assert (out["correction"] < 0).mean() > 0.5


def test_corrected_curve_points_missing_record(curve_runs, tmp_path):
    df, folder = curve_runs
    with pytest.raises(FileNotFoundError, match="no run record"):
        beyond.corrected_curve_points(df.assign(run_id=["long", "gone"]), folder, "loss")
