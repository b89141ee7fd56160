"""Tests of scaling_lib.curves: sweep records, IsoFLOP groups from curves, the envelope."""

import json

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from scaling_lib import compute_optimal as co
from scaling_lib import curves, laws, records, runs

CHIN = {"E": 1.8, "A": 300.0, "alpha": 0.32, "B": 900.0, "beta": 0.28}
A_TRUE = CHIN["beta"] / (CHIN["alpha"] + CHIN["beta"])


def synthetic_curves(N_values, params=CHIN, n_points=30, t_range=(1e4, 1e9)):
    rows = []
    for i, N in enumerate(N_values):
        for t in np.geomspace(*t_range, n_points):
            rows.append({"run_id": f"r{i}", "N_eff": N, "tokens": t,
                         "loss": laws.CHINCHILLA(params, N=N, D=t)[0]})
    return pd.DataFrame(rows)


def test_curves_at_budgets_build_exact_isoflop_groups():
    cur = synthetic_curves(np.logspace(4, 6, 9))
    groups = curves.curves_at_budgets(cur, [1e12, 1e13])
    assert_allclose(6 * groups["N"] * groups["D"], groups["budget"], rtol=1e-12)
    # interpolation error of a 30-point curve is small against the law itself
    exact = laws.CHINCHILLA(CHIN, N=groups["N"], D=groups["D"])
    assert_allclose(groups["loss"], exact, rtol=3e-3)
    res = co.isoflop_optima(groups, target="loss", n_boot=0)
    assert_allclose(res.table["N_opt"], co.chinchilla_optimum(CHIN, [1e12, 1e13]).N, rtol=0.05)


def test_curves_bad_input():
    cur = synthetic_curves([1e4, 1e5])
    cur.loc[0, "N_eff"] = 7.0
    with pytest.raises(co.ComputeOptimalError, match="run 'r0' has more than one N_eff"):
        curves.envelope(cur)
    with pytest.raises(runs.MissingColumnError, match=r"training curves lacks column\(s\) \['tokens'\]"):
        curves.envelope(cur.drop(columns="tokens"))




def test_envelope_is_the_lowest_curve_and_tracks_the_optimum():
    N_values = np.logspace(4, 6.5, 21)
    cur = synthetic_curves(N_values, n_points=60)
    env = curves.envelope(cur, n_levels=12)
    for _, row in env.iterrows():  # brute force: every run's interpolated loss at this C
        d = row["C"] / (6 * N_values)
        ok = (d >= 1e4) & (d <= 1e9)
        losses = laws.CHINCHILLA(CHIN, N=N_values[ok], D=d[ok])
        assert row["loss"] <= losses.min() * (1 + 3e-3)
    inner = env[(env["N"] > N_values[1]) & (env["N"] < N_values[-2])]
    trend = co.fit_power_trend(inner["C"], inner["N"])
    assert abs(trend.exponent - A_TRUE) < 0.05



def test_load_curves_reads_sweep_records(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    rec = {"run_id": "a", "param_counts": {"total": 100, "non_embedding": 40},
           "curve": [{"step": 1, "tokens": 10, "loss_en": 5.0}, {"step": 2, "tokens": 20, "loss_en": 4.0}]}
    (runs / "a.json").write_text(json.dumps(rec))
    cur = curves.load_curves(tmp_path, target="loss_en")
    assert cur["loss"].tolist() == [5.0, 4.0] and cur["N"].tolist() == [100.0, 100.0]
    env = curves.envelope(cur, n_col="N", n_levels=2)
    assert env["run_id"].tolist() == ["a", "a"]
    (runs / "b.json").write_text(json.dumps({"run_id": "b", "curve": []}))
    with pytest.raises(records.RecordError, match=r"b\.json: run record has no 'param_counts'"):
        curves.load_curves(tmp_path, target="loss_en")
    (runs / "b.json").write_text(json.dumps({"run_id": "b", "param_counts": {"total": 9, "non_embedding": 4},
                                             "curve": []}))
    with pytest.raises(records.RecordError, match=r"b\.json: the run record's curve is empty"):
        curves.load_curves(tmp_path, target="loss_en")
    with pytest.raises(FileNotFoundError, match="no directory"):
        curves.load_curves(tmp_path / "nope", target="loss_en")
