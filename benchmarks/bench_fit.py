"""Benchmark: fitting scaling laws with both objectives, and the over-training law against curve_fit.

Part 1, least squares against the Huber loss of log residuals (``objective="lsq"`` and
``"huber_log"`` of :func:`scaling_lib.fit.fit`), side by side: median CPU and wall time of each
(runs interleaved, so a shared machine's load hits both alike), their ratios, each objective's value, and
for the Huber fit the time, objective and largest relative parameter difference of the earlier
Huber solver (scipy's trust-region least squares through a schedule of thresholds from every grid
start, still selectable with ``scaling_lib._solver.huber_solver("schedule")``). Cases:

* the published open_lm testbed, per training set: the over-training law (Gadre et al. 2024
  eq. (4)) on the paper's fit runs (``protocols.select(group, "loss_fit")``) and the Chinchilla
  law on all runs, target ``loss_c4_val``;
* a seeded 240-run Chinchilla-sized synthetic set from the Chinchilla law with Epoch's parameters
  (E=1.82, A=482.01, alpha=0.3478, B=2085.43, beta=0.3658), log-normal noise on the loss;
* 200 bootstrap refits of each over-training fit and of the synthetic fit (for the Huber fit also
  how many replicates reach the earlier solver's objective, to 1e-6 relative, or a lower one).

Part 2, the over-training law on the paper's C4 fit set (``loss_c4_val``; the four small
shapes at M = 20 plus the smallest at M = 320) in two ways, with wall times (best of several runs,
and the median), residual sums of squares and the speedup:

(a) ``scaling_lib.fit.fit(laws.OVERTRAINING, ..., objective="lsq")``:
    variable projection over the law's six-value grid of ``eta`` with
    ``E, a, b`` solved exactly per value, then a Brent search on ``eta``;
(b) a 128-start ``scipy.optimize.curve_fit`` grid like the paper's code
    (``mlfoundations/scaling``, ``scaling/laws.py``): the same law written as
    ``A N^p + B 6^(p/2) (M N)^p + E`` (``p = -2 eta``), unbounded
    Levenberg-Marquardt from ``A, B in {1e2, 3e2, 1e3, 3e3}``,
    ``p in {-0.1, -0.3}``, ``E in {0, 1, 2, 10}``, ``maxfev=10000``, keeping
    the start with the smallest residual.

Usage::

    python benchmarks/bench_fit.py [--testbed PATH] [--repeats 5] [--n-boot 200] [--no-old]

The testbed path defaults to ``runs.default_openlm_path()`` (environment
variable ``SCALING_OPENLM_TESTBED`` or ``../shared/testbeds/gadre2024-openlm``).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import time
import warnings

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit

from scaling_lib import _solver, fit, laws, protocols, runs

SMALL_SHAPES = ("d=96_l=8_h=4", "d=512_l=8_h=4", "d=576_l=24_h=8", "d=1024_l=24_h=8")
SMALLEST = "d=96_l=8_h=4"
TARGET = "loss_c4_val"
EPOCH_CHINCHILLA = {"E": 1.82, "A": 482.01, "alpha": 0.3478, "B": 2085.43, "beta": 0.3658}
"""Epoch AI's refit of Hoffmann et al. (2022) approach 3 (Besiroglu et al. 2024)."""


def fit_set(table):
    """The paper's fit set, selected by a query on the run table."""
    query = (
        "train_set == 'C4' and model in @SMALL_SHAPES and (M == 20 or (model == @SMALLEST and M == 320))"
    )
    return table.query(query).sort_values("flops").reset_index(drop=True)


def _paper_form(nm, A, B, p, E):
    n, m = nm
    return A * np.power(n, p) + B * np.power(6.0, p / 2.0) * np.power(m * n, p) + E


def curve_fit_grid(df):
    """128-start curve_fit grid in the paper's parameterisation; returns the best as eq. (4) params."""
    xdata = np.array([df["N"].to_numpy(float), df["M"].to_numpy(float)])
    ydata = df[TARGET].to_numpy(float)
    grid = itertools.product((1e2, 3e2, 1e3, 3e3), (1e2, 3e2, 1e3, 3e3), (-0.1, -0.3), (0.0, 1.0, 2.0, 10.0))
    best, best_rss, failed = None, math.inf, 0
    for p0 in grid:
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", OptimizeWarning)
                popt, _ = curve_fit(_paper_form, xdata, ydata, p0=list(p0), maxfev=10000)
        except RuntimeError:
            failed += 1
            continue
        rss = float(np.sum((ydata - _paper_form(xdata, *popt)) ** 2))
        if rss < best_rss:
            best, best_rss = popt, rss
    A, B, p, E = best
    eta = -p / 2.0
    # A N^p = a 6^-eta N^-2eta  and  B 6^(p/2) D^p = b 6^-eta D^-2eta
    return {"E": E, "a": A * 6.0**eta, "b": B, "eta": eta}, failed


def rss_of(params, df):
    pred = laws.OVERTRAINING.evaluate(params, df)
    return float(np.sum((df[TARGET].to_numpy(float) - pred) ** 2))


def timed(function, repeats):
    """Result and best-of-``repeats`` wall time (the least disturbed run on a shared machine)."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = function()
        times.append(time.perf_counter() - t0)
    return out, float(np.min(times)), float(np.median(times))


def synthetic_chinchilla(n=240, seed=0, noise=0.01):
    """A Chinchilla-sized run table: ``n`` runs from the Chinchilla law with Epoch's parameters,
    N log-uniform in [3e7, 3e10], D / N log-uniform in [1, 300], loss times exp(noise * normal)."""
    rng = np.random.default_rng(seed)
    N = 10 ** rng.uniform(7.5, 10.5, n)
    D = N * 10 ** rng.uniform(0.0, 2.5, n)
    loss = laws.CHINCHILLA(EPOCH_CHINCHILLA, N=N, D=D) * np.exp(noise * rng.standard_normal(n))
    return pd.DataFrame({"run_id": [f"syn{i}" for i in range(n)], "N": N, "D": D, "loss": loss})


def interleaved(functions, repeats):
    """Results, median wall times and median CPU times of several functions, run in turn ``repeats`` times.

    On a shared machine the CPU time (``time.process_time``) is the fairer measure: a short run
    often completes within one time slice, a longer one is preempted, which inflates its wall time.
    """
    walls = [[] for _ in functions]
    cpus = [[] for _ in functions]
    out = [None] * len(functions)
    for _ in range(repeats):
        for i, function in enumerate(functions):
            t0, c0 = time.perf_counter(), time.process_time()
            out[i] = function()
            cpus[i].append(time.process_time() - c0)
            walls[i].append(time.perf_counter() - t0)
    return out, [float(np.median(t)) for t in walls], [float(np.median(t)) for t in cpus]


def max_rel_diff(a: dict, b: dict) -> float:
    return max(abs(a[k] - b[k]) / max(abs(b[k]), 1e-12) for k in a)


def compare_objectives(cases, repeats, n_boot, old):
    """Part 1: one row per case (fit) and per bootstrap."""
    rows = []
    for name, law, df, target, boot in cases:
        for objective in ("lsq", "huber_log"):  # warm-up, untimed
            fit.fit(law, df, target=target, objective=objective)
        (lsq, hub), (w_lsq, w_hub), (c_lsq, c_hub) = interleaved(
            [lambda: fit.fit(law, df, target=target, objective="lsq"),
             lambda: fit.fit(law, df, target=target, objective="huber_log")], repeats)
        row = {"case": name, "n": len(df), "lsq cpu": c_lsq * 1e3, "huber cpu": c_hub * 1e3,
               "cpu ratio": c_hub / c_lsq, "lsq wall": w_lsq * 1e3, "huber wall": w_hub * 1e3,
               "wall ratio": w_hub / w_lsq, "lsq objective": lsq.objective_value,
               "huber objective": hub.objective_value}
        if old:
            with _solver.huber_solver("schedule"):
                (prev,), _, (c_prev,) = interleaved([lambda: fit.fit(law, df, target=target, objective="huber_log")],
                                                    max(1, repeats // 3))
            row.update({"old huber cpu": c_prev * 1e3,
                        "obj new/old-1": hub.objective_value / prev.objective_value - 1,
                        "max rel param diff": max_rel_diff(hub.params, prev.params)})
        rows.append(row)
        if boot and n_boot:
            (lb,), (w_lb,), (c_lb,) = interleaved([lambda: lsq.bootstrap(n_boot)], 1)
            (new_boot,), (w_hb,), (c_hb,) = interleaved([lambda: hub.bootstrap(n_boot)], 1)
            row = {"case": f"  {n_boot} bootstrap refits", "n": len(df), "lsq cpu": c_lb * 1e3,
                   "huber cpu": c_hb * 1e3, "cpu ratio": c_hb / c_lb, "lsq wall": w_lb * 1e3,
                   "huber wall": w_hb * 1e3, "wall ratio": w_hb / w_lb,
                   "lsq objective": float(lb["success"].sum()), "huber objective": float(new_boot["success"].sum())}
            if old:
                with _solver.huber_solver("schedule"):
                    prev = fit.fit(law, df, target=target, objective="huber_log")
                    (old_boot,), _, (c_ob,) = interleaved([lambda: prev.bootstrap(n_boot)], 1)
                same, worst = boot_agreement(hub, new_boot, old_boot, n_boot)
                row.update({"old huber cpu": c_ob * 1e3, "obj new/old-1": worst,
                            "max rel param diff": math.nan, "replicates at old optimum or lower": same})
            rows.append(row)
    return pd.DataFrame(rows)


def boot_agreement(result, new_boot, old_boot, n_boot):
    """Replicates whose new objective is at most the old one (1e-6 relative), and the worst excess."""
    rng = np.random.default_rng(result.seed)
    names = list(result.law.param_names)
    same, worst = 0, 0.0
    for b in range(n_boot):
        idx = rng.integers(0, result.n_data, result.n_data)
        if not (new_boot["success"][b] and old_boot["success"][b]):
            continue
        problem = result._problem.subset(idx)
        v_new = problem.value(new_boot.loc[b, names].to_numpy(float))
        v_old = problem.value(old_boot.loc[b, names].to_numpy(float))
        excess = (v_new - v_old) / max(v_old, 1e-300) if v_old > 1e-18 else 0.0
        same += excess <= 1e-6
        worst = max(worst, excess)
    n_ok = int((new_boot["success"] & old_boot["success"]).sum())
    return f"{same}/{n_ok}", worst


def print_objectives(table, old):
    print("fits: medians of interleaved runs, ms of CPU time (process_time) and of wall time; objective = the")
    print("minimised value (RSS, or summed Huber loss of log residuals); bootstrap rows: totals of one run, and")
    print("the objective columns count usable replicates; obj new/old-1 there is the worst replicate's")
    columns = ["case", "n", "lsq cpu", "huber cpu", "cpu ratio", "lsq wall", "huber wall", "wall ratio",
               "lsq objective", "huber objective"]
    if old:
        columns += ["old huber cpu", "obj new/old-1", "max rel param diff"]
    ms, ratio = "{:.1f}".format, "{:.2f}".format
    formats = {"lsq cpu": ms, "huber cpu": ms, "cpu ratio": ratio, "lsq wall": ms, "huber wall": ms,
               "wall ratio": ratio, "lsq objective": "{:.6e}".format, "huber objective": "{:.6e}".format,
               "old huber cpu": ms, "obj new/old-1": "{:+.1e}".format, "max rel param diff": "{:.1e}".format}
    print(table[columns].to_string(index=False, formatters=formats, na_rep="-"))
    if old and "replicates at old optimum or lower" in table:
        boots = table.dropna(subset=["replicates at old optimum or lower"])
        for _, row in boots.iterrows():
            print(f"  bootstrap of {row['n']} runs: {row['replicates at old optimum or lower']} usable replicates at "
                  "the old solver's objective or lower (1e-6 relative)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testbed", default=None, help="open_lm exp_data directory")
    parser.add_argument("--repeats", type=int, default=5, help="timing repeats (fits: interleaved, median)")
    parser.add_argument("--n-boot", type=int, default=200, help="bootstrap refits timed")
    parser.add_argument("--no-old", action="store_true", help="skip the earlier Huber solver (slow)")
    args = parser.parse_args(argv)
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")

    table = runs.load_openlm_testbed(runs.default_openlm_path(args.testbed))
    cases = []
    for train_set, group in table.groupby("train_set"):
        cases.append((f"{train_set}: overtraining, fit runs", laws.OVERTRAINING,
                      protocols.select(group, "loss_fit"), TARGET, True))
        cases.append((f"{train_set}: chinchilla, all runs", laws.CHINCHILLA, group, TARGET, False))
    cases.append(("synthetic 240: chinchilla", laws.CHINCHILLA, synthetic_chinchilla(), "loss", True))
    print("\n== Part 1: least squares and the Huber loss of log residuals ==")
    print_objectives(compare_objectives(cases, args.repeats, args.n_boot, not args.no_old), not args.no_old)

    print("\n== Part 2: the over-training law on the C4 fit set, against a 128-start curve_fit grid ==")
    df = fit_set(table)
    print(f"fit set: {len(df)} runs ({', '.join(df['run_id'])})")

    ours, t_ours, med_ours = timed(lambda: fit.fit(laws.OVERTRAINING, df, target=TARGET, objective="lsq"),
                                   10 * args.repeats)
    (paper, failed), t_paper, med_paper = timed(lambda: curve_fit_grid(df), args.repeats)

    rss_ours, rss_paper = rss_of(ours.params, df), rss_of(paper, df)
    print(f"(a) scaling_lib.fit: {ours.n_starts} starts ({ours.n_failed_starts} failed)  "
          f"wall {t_ours * 1e3:.1f} ms (median {med_ours * 1e3:.1f})  RSS {rss_ours:.6e}")
    print(f"    params {ours.params}")
    print(f"(b) curve_fit grid : 128 starts ({failed} failed)  "
          f"wall {t_paper * 1e3:.1f} ms (median {med_paper * 1e3:.1f})  RSS {rss_paper:.6e}")
    print(f"    params {paper}")
    print(f"speedup {t_paper / t_ours:.1f}x best-of-n (medians {med_paper / med_ours:.1f}x); "
          f"RSS (a)/(b) - 1 = {rss_ours / rss_paper - 1:+.2e}")
    t0 = time.perf_counter()
    ours.bootstrap(200)
    print(f"bootstrap over runs, 200 warm-started refits: {time.perf_counter() - t0:.2f} s")
    print(ours.report())
    print(f"\nload average at end: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
