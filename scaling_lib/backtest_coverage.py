"""Coverage of prediction intervals on the committed testbeds' backtests.

``python -m scaling_lib.backtest_coverage`` prints,
per testbed and split family, the share of held-out runs whose measured loss lies inside its
95% prediction interval, for the interval methods weighed:

``bootstrap``
    the earlier default: percentiles of refits over resampled runs
    (``interval_method="bootstrap"``);
``residual``
    parametric refits with the noise drawn from the residuals alone
    (``dof`` degrees of freedom), no noise floor, no extrapolation term;
``floor``
    the same with the seed-repeat noise floor where the testbed has repeats;
``default``
    ``floor`` plus the extrapolation term :data:`scaling_lib.fit.EXTRAPOLATION_NOISE`
    (what :meth:`scaling_lib.fit.FitResult.predict` does by default).

The backtests:

* ``cpu-tiny`` (``data/testbeds/cpu-tiny``, target ``loss_en``, main seed only): the shape
  splits and compute splits of the chapter ``notebooks/overtraining_loss.md``
  (:func:`scaling_lib.backtest.shape_splits`, :func:`scaling_lib.backtest.compute_splits`);
  the noise floor is :func:`scaling_lib.diagnostics.seed_noise` of its seed repeats;
* ``openlm`` (the published testbed of Gadre et al. 2024,
  :func:`scaling_lib.runs.load_openlm_testbed`): per training set, the paper's loss-law fit set
  predicts its targets (:func:`scaling_lib.protocols.select`), for every eval-set loss column.

Both objectives (``lsq``, ``huber_log``) are fitted on every split. ``--warnings`` prints the
warnings of the testbeds' main fits instead (:func:`testbed_warnings`).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from scaling_lib import backtest, diagnostics, laws, protocols, runs
from scaling_lib import fit as fitting

__all__ = ["VARIANTS", "Case", "coverage_tables", "cpu_tiny_cases", "main", "openlm_cases", "predictions",
           "testbed_warnings"]

VARIANTS = {
    "bootstrap": {"interval_method": "bootstrap", "floor": False, "extrapolation_noise": 0.0},
    "residual": {"interval_method": "parametric", "floor": False, "extrapolation_noise": 0.0},
    "floor": {"interval_method": "parametric", "floor": True, "extrapolation_noise": 0.0},
    "default": {"interval_method": "parametric", "floor": True, "extrapolation_noise": fitting.EXTRAPOLATION_NOISE},
}
"""The interval methods compared: ``predict`` options and whether the testbed's noise floor is used."""

CPU_TINY = Path(__file__).resolve().parents[1] / "data" / "testbeds" / "cpu-tiny"


@dataclasses.dataclass(frozen=True)
class Case:
    """One fit set and its held-out runs."""

    testbed: str
    family: str
    split: str
    target: str
    fit_runs: pd.DataFrame
    held_out: pd.DataFrame
    noise_floor: float | None


def cpu_tiny_cases(path=CPU_TINY, target="loss_en", n_compute_splits=4):
    """The chapter's shape and compute splits of the cpu-tiny testbed (main seed), as :class:`Case` objects."""
    table = runs.load_runs(path).copy()
    table["role"] = protocols.table_roles(table, role_column="role", error_fit=False)
    seeds = table["seed"] if "seed" in table else pd.Series(0, index=table.index)
    df = table[seeds == seeds.mode().iloc[0]].copy()
    floor = diagnostics.seed_noise(table, target)
    fit_runs = df[df["role"] == "loss_fit"]
    ref_M = float(fit_runs["M"].mode().iloc[0])
    over_M = tuple(sorted(set(fit_runs["M"]) - {ref_M})) or (320.0,)
    n_law = laws.OVERTRAINING.n_params
    flops = np.sort(df["flops"].unique())
    cutoffs = []
    if len(flops) > n_law + 2:
        cutoffs = flops[np.unique(np.linspace(n_law, len(flops) - 2, n_compute_splits).astype(int))]
    splits = (backtest.shape_splits(df, reference_M=ref_M, overtrained_M=over_M)
              + backtest.compute_splits(df, cutoffs))
    by_id = df.set_index("run_id", drop=False)
    return [Case("cpu-tiny", s.kind, s.name, target, by_id.loc[list(s.fit_ids)], by_id.loc[list(s.predict_ids)],
                 floor) for s in splits]


def openlm_cases(path=None):
    """Per training set and eval-set loss column, the paper's fit set and its targets."""
    table = runs.load_openlm_testbed(path)
    columns = [c for c in table.columns if c.startswith("loss_") and not c.endswith(("_lo", "_hi"))]
    cases = []
    for train_set, group in table.groupby("train_set"):
        fit_runs, targets = protocols.select(group, "loss_fit"), protocols.select(group, "target")
        for column in columns:
            cases.append(Case("openlm", "train set x eval set", f"{train_set}: {column}", column, fit_runs, targets,
                              None))
    return cases


def predictions(cases, *, objectives=("lsq", "huber_log"), variants=VARIANTS, n_boot=fitting.DEFAULT_N_BOOT,
                level=0.95, seed=0):
    """One row per case, objective, variant and held-out run.

    Returns
    -------
    pandas.DataFrame
        ``testbed``, ``family``, ``split``, ``target``, ``objective``,
        ``variant``, ``n_fit``, ``dof``, ``run_id``, ``actual``, ``pred``,
        ``lo``, ``hi``, ``extrapolation``, ``covered`` (nullable boolean).
    """
    law = laws.OVERTRAINING
    out = []
    for case in cases:
        if len(case.fit_runs) < law.n_params:
            continue
        for objective in objectives:
            base = fitting.fit(law, case.fit_runs, case.target, objective=objective, seed=seed)
            if not base.success:
                continue
            floored = dataclasses.replace(base, noise_floor=case.noise_floor, _draws={})
            actual = case.held_out[case.target].to_numpy(float)
            for name, spec in variants.items():
                res = floored if spec["floor"] else base
                pred = res.predict(case.held_out, interval=level, n_boot=n_boot,
                                   interval_method=spec["interval_method"],
                                   extrapolation_noise=spec["extrapolation_noise"])
                rows = pd.DataFrame({
                    "testbed": case.testbed, "family": case.family, "split": case.split, "target": case.target,
                    "objective": objective, "variant": name, "n_fit": len(case.fit_runs), "dof": base.dof,
                    "run_id": case.held_out["run_id"].astype(str).to_numpy(), "actual": actual,
                    "pred": pred["pred"].to_numpy(), "lo": pred["lo"].to_numpy(), "hi": pred["hi"].to_numpy(),
                    "extrapolation": pred["extrapolation"].to_numpy()})
                rows["covered"] = backtest._covered(actual, rows["lo"].to_numpy(), rows["hi"].to_numpy())
                out.append(rows)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def coverage_tables(table) -> dict:
    """Coverage per testbed and family (and per objective), one column per variant: ``{name: DataFrame}``."""
    def wide(by):
        cov = backtest.coverage(table, by=[*by, "variant"])
        text = cov.apply(lambda r: f"{r['coverage']:.0%} ({int(r['n_covered'])}/{int(r['n_interval'])})"
                         if r["n_interval"] else "-", axis=1)
        return text.unstack("variant").reindex(columns=[v for v in VARIANTS if v in set(table["variant"])])

    width = backtest.coverage(table, by=["testbed", "variant"])["median_halfwidth_pct"].unstack("variant")
    return {"by testbed": wide(["testbed"]), "by split family": wide(["testbed", "family"]),
            "by objective": wide(["testbed", "family", "objective"]),
            "median half-width (% of the measured loss)": width.round(1)}


def testbed_warnings(objectives=("lsq", "huber_log"), n_boot=fitting.DEFAULT_N_BOOT, seed=0):
    """The warnings of the committed testbeds' main fits, one row per warning (or ``none``).

    cpu-tiny: its design's fit runs, and all its runs (with the seed-repeat noise floor); the
    published testbed: per training set, the paper's loss-law fit set on ``loss_c4_val``.
    """
    table = runs.load_runs(CPU_TINY)
    floor = diagnostics.seed_noise(table, "loss_en")
    fits = [("cpu-tiny", "fit runs", table[table["role"] == "fit"], "loss_en"),
            ("cpu-tiny", "all runs", table, "loss_en")]
    openlm = runs.default_openlm_path()
    if (openlm / "models").is_dir():
        published = runs.load_openlm_testbed(openlm)
        fits += [("openlm", f"{name} loss_fit", protocols.select(group, "loss_fit"), "loss_c4_val")
                 for name, group in published.groupby("train_set")]
    rows = []
    for testbed, name, data, target in fits:
        for objective in objectives:
            res = fitting.fit(laws.OVERTRAINING, data, target, objective=objective, n_boot=n_boot, seed=seed,
                              noise_floor=floor if testbed == "cpu-tiny" else None)
            rows += [{"testbed": testbed, "fit": name, "objective": objective, "warning": w}
                     for w in res.warnings or ["none"]]
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    """Print the coverage tables (``--n-boot``, ``--csv`` to save the predictions)."""
    parser = argparse.ArgumentParser(prog="python -m scaling_lib.backtest_coverage", description=__doc__.split("\n")[0])
    parser.add_argument("--n-boot", type=int, default=fitting.DEFAULT_N_BOOT,
                        help=f"replicates per fit (default {fitting.DEFAULT_N_BOOT})")
    parser.add_argument("--csv", help="write every prediction to this CSV")
    parser.add_argument("--no-openlm", action="store_true", help="skip the published testbed")
    parser.add_argument("--warnings", action="store_true", help="print the warnings of the testbeds' fits instead")
    args = parser.parse_args(argv)
    if args.warnings:
        for (testbed, name, objective), group in testbed_warnings(n_boot=args.n_boot).groupby(
                ["testbed", "fit", "objective"], sort=False):
            print(f"{testbed}, {name}, {objective}:")
            print("\n".join(f"  - {w}" for w in group["warning"]))
        return 0
    cases = cpu_tiny_cases()
    openlm = runs.default_openlm_path()
    if not args.no_openlm and (openlm / "models").is_dir():
        cases += openlm_cases(openlm)
    elif not args.no_openlm:
        print(f"(published testbed not found at {openlm}: cpu-tiny only)")
    table = predictions(cases, n_boot=args.n_boot)
    if args.csv:
        table.to_csv(args.csv, index=False)
    print("Share of held-out runs inside their 95% prediction interval (covered/with an interval);")
    print("before: 'bootstrap' (the earlier default), after: 'default' (FitResult.predict now).")
    print("Variants: " + "; ".join(f"{k} = {v}" for k, v in VARIANTS.items()))
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        for name, frame in coverage_tables(table).items():
            print(f"\n{name}\n{frame.to_string()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
