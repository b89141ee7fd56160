"""Side-by-side backtests of the paper's laws and the laws of :mod:`scaling_lib.laws_beyond`.

Three comparisons, each a function returning one row per prediction:

* :func:`downstream_table`: the paper's two stages (loss law, then error law on the predicted
  loss; :func:`scaling_lib.protocols.chained_error_table`) against the direct laws of
  Krajewski et al. (2025), which fit ``-log(1 - err)`` to compute at a fixed ``M`` or to
  ``N`` and ``D``;
* :func:`loss_law_table`: the over-training law against Chinchilla and Kaplan on the same splits
  (the rows of :func:`scaling_lib.backtest.run_backtest`, one fit per law and split);
* curves: :func:`early_curve_table` predicts a run's final loss from the start of its curve with
  the loss-curve law of Tissue et al. (2024), and :func:`corrected_curve_points` turns mid-run
  evaluations into the losses of finished shorter runs, as extra fit points for a backtest.

:func:`summarise` reduces any of these tables to the median and worst relative error and the
interval coverage per group.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scaling_lib import backtest, laws, protocols
from scaling_lib import fit as fitting
from scaling_lib import laws_beyond as lb
from scaling_lib.records import curve_table, read_record
from scaling_lib.runs import require_columns

__all__ = ["DOWNSTREAM_METHODS", "downstream_table", "loss_law_table", "summarise", "common", "curve_frame",
           "fit_curve", "pooled_curves", "early_curve_table", "corrected_curve_points", "CURVE_POINTS",
           "curve_point_backtest", "pair_table"]

DOWNSTREAM_METHODS = ("two-stage", "direct, fixed M", "direct, N and D")
"""Methods of :func:`downstream_table`: the paper's chain and the two direct laws."""

_ROW = ("run_id", "N", "M", "flops")


def _warnings(result) -> int:
    return len(getattr(result, "warnings", []) or [])


def _rows(targets, method, actual, pred, lo=None, hi=None, n_fit=0, n_warn=0, **head):
    out = targets[[c for c in _ROW if c in targets.columns]].reset_index(drop=True).copy()
    for key, value in reversed(list({**head, "method": method}.items())):
        out.insert(0, key, value)
    out["n_fit"], out["n_warnings"] = n_fit, n_warn
    out["actual"], out["pred"] = np.asarray(actual, float), np.asarray(pred, float)
    nan = np.full(len(out), np.nan)
    out["lo"] = nan if lo is None else np.asarray(lo, float)
    out["hi"] = nan if hi is None else np.asarray(hi, float)
    has = np.isfinite(out["lo"]) & np.isfinite(out["hi"])
    inside = (out["lo"] <= out["actual"]) & (out["actual"] <= out["hi"])
    out["covered"] = pd.array(np.where(has, inside, False), dtype="boolean")
    out.loc[~has, "covered"] = pd.NA
    out["rel_err_pct"] = 100.0 * np.abs(out["pred"] - out["actual"]) / np.abs(out["actual"])
    return out


# --- downstream: two stages against direct laws --------------------------------------------------


def _direct_error(law, fit_runs, targets, error_col, inputs, objective, interval, n_boot, seed):
    """Fit ``law`` to ``-log(1 - err)`` and predict the error of ``targets`` (interval mapped back)."""
    data = fit_runs.assign(_q=lb.neg_log_accuracy(fit_runs[error_col]))
    res = fitting.fit(law, data, target="_q", inputs=inputs, objective=objective, seed=seed)
    if not res.success:
        return res, np.full(len(targets), np.nan), None, None
    p = res.predict(targets, interval=interval, n_boot=n_boot)
    to_err = lb.error_from_neg_log_accuracy
    lo = to_err(p["lo"]) if interval is not None else None
    hi = to_err(p["hi"]) if interval is not None else None
    return res, to_err(p["pred"]), lo, hi


def downstream_table(df, error_col, loss_col, *, roles=None, objective="lsq", interval=0.95, n_boot=40,
                     seed=0, flops_column="flops", **head):
    """Downstream error of the targets predicted three ways, one row per method and target.

    Parameters
    ----------
    df : pandas.DataFrame
        One training set: ``run_id``, ``N``, ``D``, ``M``, ``flops``, the loss and error columns.
    error_col, loss_col : str
        Average top-1 error (accuracy ``1 - err``) and the loss of the paper's first stage.
    roles : pandas.Series, optional
        :data:`scaling_lib.protocols.ROLES` per run (default
        :func:`scaling_lib.protocols.table_roles`): the loss law fits ``loss_fit``, the error law
        and both direct laws fit ``loss_fit`` and ``error_fit``, ``target`` runs are predicted.
    objective : str, keyword-only
        Objective of every fit.
    interval, n_boot, seed : keyword-only
        Prediction intervals of the direct laws (the chain has none).
    **head
        Constant columns put first (e.g. ``testbed=``, ``train_set=``).

    Returns
    -------
    pandas.DataFrame
        ``method`` (one of :data:`DOWNSTREAM_METHODS`), ``run_id``, ``N``, ``M``, ``flops``,
        ``n_fit``, ``n_warnings`` (sentences of :attr:`FitResult.warnings`), ``actual``,
        ``pred``, ``lo``, ``hi``, ``covered`` (missing without an interval), ``rel_err_pct``.
        ``direct, fixed M`` fits, for each ``M`` of the targets, the error-fit runs at that
        ``M`` (``-log acc = A C^-alpha``) and predicts only targets whose ``M`` has runs of
        at least two sizes.
    """
    require_columns(df, ["run_id", "N", "D", "M", flops_column, error_col, loss_col], "run table")
    roles = protocols.table_roles(df) if roles is None else roles
    loss_fit = df[roles.to_numpy() == "loss_fit"]
    error_fit = df[np.isin(roles.to_numpy(), ["loss_fit", "error_fit"])]
    targets = df[roles.to_numpy() == "target"]
    parts = []
    if targets.empty:
        return pd.DataFrame()
    loss_res = fitting.fit(laws.OVERTRAINING, loss_fit, target=loss_col, objective=objective)
    err_res = fitting.fit(laws.ERROR, error_fit, target=error_col, inputs={"L": loss_col}, objective=objective)
    chain = protocols.chained_error_table(loss_res, err_res, targets, loss_col, error_col)
    parts.append(_rows(targets, DOWNSTREAM_METHODS[0], chain["actual"], chain["pred"], n_fit=len(error_fit),
                       n_warn=_warnings(loss_res) + _warnings(err_res), **head))
    for m, group in targets.groupby("M", sort=True):
        at_m = error_fit[np.isclose(error_fit["M"], m)]
        if at_m["N"].nunique() < 2:
            continue
        res, pred, lo, hi = _direct_error(lb.DOWNSTREAM_COMPUTE, at_m, group, error_col, {"C": flops_column},
                                          objective, interval, n_boot, seed)
        parts.append(_rows(group, DOWNSTREAM_METHODS[1], group[error_col], pred, lo, hi, len(at_m),
                           _warnings(res), **head))
    res, pred, lo, hi = _direct_error(lb.DOWNSTREAM_ND, error_fit, targets, error_col, None, objective,
                                      interval, n_boot, seed)
    parts.append(_rows(targets, DOWNSTREAM_METHODS[2], targets[error_col], pred, lo, hi, len(error_fit),
                       _warnings(res), **head))
    return pd.concat(parts, ignore_index=True)


# --- loss laws on the same splits ------------------------------------------------------------------


def loss_law_table(df, splits, target, *, law_set=(laws.OVERTRAINING, laws.CHINCHILLA, lb.KAPLAN),
                   objectives=("lsq",), interval=0.95, n_boot=40, seed=0, **head):
    """Backtests of several loss laws on the same splits (as :func:`scaling_lib.backtest.run_backtest`).

    Laws with inputs ``N`` and ``D`` read a ``D`` column. :data:`~scaling_lib.laws_beyond.KAPLAN`
    has no linear parameter; its grid is replaced by the three best
    :func:`~scaling_lib.laws_beyond.kaplan_starts` of each split's fit runs.

    Returns
    -------
    pandas.DataFrame
        One row per law, split, objective and predicted run: ``law`` (and ``**head``) first, then
        ``split``, ``kind``, ``value``, ``objective``, ``status``, ``run_id``, ``N``, ``M``,
        ``flops``, ``n_fit``, ``n_warnings`` (sentences of the fit's warnings), ``actual``,
        ``pred``, ``lo``, ``hi``, ``covered``, ``rel_err_pct``, ``to_largest_fit``.
    """
    table = df.set_index(df["run_id"].astype(str).to_numpy())
    parts = []
    for law in law_set:
        for split in splits:
            fit_runs, pred_runs = table.loc[list(split.fit_ids)], table.loc[list(split.predict_ids)]
            ratio = backtest.compute_ratios(fit_runs, pred_runs)["to_largest_fit"].to_numpy()
            for objective in objectives:
                pred = lo = hi = np.full(len(pred_runs), np.nan)
                status, n_warn = "too few runs", np.nan
                if len(fit_runs) >= law.n_params:
                    starts = None
                    if law is lb.KAPLAN:
                        starts = _best_starts(lb.kaplan_starts(fit_runs["N"], fit_runs["D"], fit_runs[target]),
                                              fit_runs, target)
                    res = fitting.fit(law, fit_runs, target=target, objective=objective, starts=starts, seed=seed)
                    status, n_warn = ("ok" if res.success else "failed"), _warnings(res)
                    if res.success:
                        p = res.predict(pred_runs, interval=interval, n_boot=n_boot)
                        pred, lo, hi = (p[c].to_numpy(float) for c in ("pred", "lo", "hi"))
                part = _rows(pred_runs.reset_index(drop=True), law.name, pred_runs[target], pred, lo, hi,
                             len(fit_runs), n_warn, **head, split=split.name, kind=split.kind, value=split.value,
                             objective=objective, status=status)
                part["to_largest_fit"] = ratio
                parts.append(part.rename(columns={"method": "law"}))
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)
    first = [*head, "law"]
    return out[first + [c for c in out.columns if c not in first]]


def common(table, method="law", keys=("split", "objective", "run_id")):
    """The scored rows of predictions that every ``method`` made (a fair comparison).

    Examples
    --------
    >>> t = pd.DataFrame({"law": ["a", "a", "b"], "run_id": ["x", "y", "x"], "rel_err_pct": [1.0, 2.0, 3.0]})
    >>> common(t, keys=("run_id",))["run_id"].tolist()
    ['x', 'x']
    """
    ok = table[table["status"] == "ok"] if "status" in table else table
    ok = ok[np.isfinite(ok["rel_err_pct"])]
    keys = [k for k in keys if k in ok.columns]
    n_methods = ok[method].nunique()
    count = ok.groupby(keys, dropna=False)[method].transform("nunique")
    return ok[count == n_methods]


def _best_starts(starts, data, target, keep=3):
    """The ``keep`` starts of :data:`~scaling_lib.laws_beyond.KAPLAN` closest to the data (None: none)."""
    if not starts:
        return None
    y = data[target].to_numpy(float)

    def sse(start):
        with np.errstate(all="ignore"):
            r = np.log(lb.KAPLAN(start, N=data["N"], D=data["D"]) / y)
        return float(np.sum(r * r)) if np.all(np.isfinite(r)) else np.inf

    return sorted(starts, key=sse)[:keep]


def summarise(table, by):
    """Median and worst relative error and interval coverage per group.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows with ``rel_err_pct`` and, optionally, ``covered`` (nullable boolean) and ``status``
        (only ``ok`` rows count).
    by : list of str

    Returns
    -------
    pandas.DataFrame
        Indexed by ``by``: ``n`` (predictions scored), ``median_pct``, ``worst_pct``,
        ``coverage`` (share of intervals holding the measured value; NaN without intervals) and
        ``warned`` (share of predictions whose fit gave warnings; NaN without ``n_warnings``).

    Examples
    --------
    >>> t = pd.DataFrame({"m": ["a", "a", "b"], "rel_err_pct": [1.0, 3.0, 2.0],
    ...                   "covered": pd.array([True, False, None], dtype="boolean")})
    >>> summarise(t, ["m"]).to_dict("index")["a"]
    {'n': 2, 'median_pct': 2.0, 'worst_pct': 3.0, 'coverage': 0.5, 'warned': nan}
    """
    ok = table[table["status"] == "ok"] if "status" in table else table
    ok = ok[np.isfinite(ok["rel_err_pct"])]
    rows = []
    for key, sub in ok.groupby(list(by), sort=False, dropna=False):
        cov = sub["covered"].astype("boolean").dropna() if "covered" in sub else pd.Series([], dtype=bool)
        key = key if isinstance(key, tuple) else (key,)
        warn = sub["n_warnings"].dropna() if "n_warnings" in sub else pd.Series([], dtype=float)
        rows.append({**dict(zip(by, key)), "n": len(sub), "median_pct": float(sub["rel_err_pct"].median()),
                     "worst_pct": float(sub["rel_err_pct"].max()),
                     "coverage": float(cov.astype(bool).mean()) if len(cov) else np.nan,
                     "warned": float((warn > 0).mean()) if len(warn) else np.nan})
    cols = list(by) + ["n", "median_pct", "worst_pct", "coverage", "warned"]
    return pd.DataFrame(rows, columns=cols).set_index(list(by))


# --- curves: the loss-curve law ----------------------------------------------------------------------


def curve_frame(path, target, *, decay=0.999, offset=0.0):
    """A run record's validation curve with its schedule's areas, points after the warmup only.

    Parameters
    ----------
    path : str or Path
        ``runs/<run_id>.json`` with a ``config`` (:class:`scaling_lib.configs.TrainConfig` fields).
    target : str
        The curve's loss field.
    decay : float, keyword-only
        Momentum decay of the annealing area (:func:`scaling_lib.laws_beyond.schedule_areas`).
    offset : float, keyword-only
        Added to every loss (e.g. the shift aligning the curve with the final evaluation).

    Returns
    -------
    pandas.DataFrame
        ``point`` (``<run_id>@<step>``), ``step``, ``tokens``, ``frac`` (of the run's steps),
        ``S1``, ``S2`` and ``target``, for the points past the warmup (``S2 > 0``: the law's
        inputs must be positive).
    """
    rec = read_record(path, need=("config",))
    curve = curve_table(path, target, record=rec)
    lrs, warm = lb.config_schedule(rec["config"])
    steps = np.clip(curve["step"].to_numpy(int), 1, len(lrs))
    s1, s2 = lb.schedule_areas(lrs, steps, decay=decay, warmup_steps=warm)
    out = curve.assign(frac=steps / len(lrs), S1=s1, S2=s2)
    out.insert(0, "point", [f"{Path(path).stem}@{k}" for k in steps])
    out[target] = out[target] + offset
    return out[out["S2"] > 0].reset_index(drop=True)


def fit_curve(curve, target, *, objective="lsq"):
    """The loss-curve law :data:`~scaling_lib.laws_beyond.LR_ANNEALING` fitted to a :func:`curve_frame`."""
    return fitting.fit(lb.LR_ANNEALING, curve, target=target, objective=objective, run_id_column="point")


def pooled_curves(df, curves_dir, target, *, decay=0.999, run_id_column="run_id"):
    """The :func:`curve_frame` of every run of ``df``, aligned to its final loss, in one table.

    Each curve is shifted so that its last point equals the run's final ``target`` (as
    :func:`scaling_lib.backtest.curve_points` with ``align="final"``); column ``run_id`` names
    the run. Fitting :func:`fit_curve` to the runs of one shape with several lengths uses several
    schedules, which is what separates the annealing term from the forward term.
    """
    require_columns(df, [run_id_column, target], "run table")
    parts = []
    for run_id, final in zip(df[run_id_column].astype(str), df[target].astype(float)):
        path = Path(curves_dir) / f"{run_id}.json"
        if not path.is_file():
            raise FileNotFoundError(f"run {run_id}: no run record at {path}")
        last = curve_table(path, target).iloc[-1][target]
        parts.append(curve_frame(path, target, decay=decay, offset=final - last).assign(run_id=run_id))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _saturating_tokens(curve, target):
    data = pd.DataFrame({"x": curve["tokens"].to_numpy(float), "y": curve[target].to_numpy(float)})
    return fitting.fit(laws.SATURATING_POWER, data, target="y")


def early_curve_table(df, curves_dir, target, *, fractions=(0.5, 0.25), decay=0.999, min_points=5,
                      interval=0.95, n_boot=40):
    """Predict each run's final curve loss from the first part of its curve.

    Two predictions per run and fraction ``f`` of its steps, both fitted to the curve points
    past the warmup with ``frac <= f``: the loss-curve law evaluated at the end of the run's own
    schedule, and a schedule-blind saturating power law in tokens
    (:data:`scaling_lib.laws.SATURATING_POWER`) evaluated at the run's ``D``.

    Returns
    -------
    pandas.DataFrame
        ``run_id``, ``N``, ``M``, ``fraction``, ``method`` (``curve law`` or ``power law in
        tokens``), ``n_fit`` (curve points), ``n_warnings``, ``actual`` (last curve point),
        ``pred``, ``lo``, ``hi``, ``covered``, ``rel_err_pct``. A run with fewer than
        ``min_points`` points in its first part gets no row for that fraction.
    """
    require_columns(df, ["run_id", "N", "M", "D"], "run table")
    parts = []
    for _, run in df.iterrows():
        path = Path(curves_dir) / f"{run['run_id']}.json"
        curve = curve_frame(path, target, decay=decay)
        last = curve.iloc[[-1]]
        row = pd.DataFrame([run])
        for f in fractions:
            early = curve[curve["frac"] <= f + 1e-9]
            if len(early) < min_points:
                continue
            res = fit_curve(early, target)
            if res.success:
                p = res.predict(last, interval=interval, n_boot=n_boot)
                parts.append(_rows(row, "curve law", last[target], p["pred"], p["lo"], p["hi"], len(early),
                                   _warnings(res), fraction=f))
            res = _saturating_tokens(early, target)
            if res.success:
                p = res.predict(pd.DataFrame({"x": [float(last["tokens"].iloc[0])]}), interval=interval,
                                n_boot=n_boot)
                parts.append(_rows(row, "power law in tokens", last[target], p["pred"], p["lo"], p["hi"],
                                   len(early), _warnings(res), fraction=f))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def corrected_curve_points(df, curves_dir, target, *, group="model", decay=0.999, min_frac=0.0,
                           run_id_column="run_id"):
    """Mid-run evaluations corrected to the loss of a finished run of that length.

    :func:`scaling_lib.backtest.curve_points` (aligned to each run's final loss) gives the raw
    points. The loss-curve law is fitted to the aligned curves of the runs of ``df`` in each
    ``group`` (one shape: runs of several lengths are several schedules, which is what separates
    the annealing term from the forward term); a point after ``s`` steps, ``D'`` tokens, is then
    moved by the law's difference between a run of ``D'`` tokens with its own full schedule
    (same peak, warmup and floor, cosine over ``D'``) at its end and the actual schedule at
    step ``s``: ``L_corr = L(s) + law(S1', S2') - law(S1(s), S2(s))``.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`~scaling_lib.backtest.curve_points`, ``target`` replaced by the
        corrected loss, plus ``raw`` (the aligned loss before the correction) and ``correction``.
        Points of a group whose law cannot be fitted are dropped.
    """
    pts = backtest.curve_points(df, curves_dir, target=target, min_frac=min_frac, run_id_column=run_id_column)
    groups = df.groupby(group, sort=False) if group in df.columns else [(None, df)]
    parts, law = [], lb.LR_ANNEALING
    for _, runs_of in groups:
        ids = [r for r in runs_of[run_id_column].astype(str) if r in set(pts["parent_run"])]
        pooled = pooled_curves(runs_of, curves_dir, target, decay=decay, run_id_column=run_id_column)
        if len(pooled) <= law.n_params:
            continue
        res = fit_curve(pooled, target)
        if not res.success:
            continue
        for run_id in ids:
            sub = pts[pts["parent_run"] == run_id]
            config = read_record(Path(curves_dir) / f"{run_id}.json", need=("config",))["config"]
            lrs, warm = lb.config_schedule(config)
            s1, s2 = lb.schedule_areas(lrs, np.clip(sub["step"].to_numpy(int), 1, len(lrs)), decay=decay,
                                       warmup_steps=warm)
            ends = [_end_areas(config, d, decay) for d in sub["D"].to_numpy(float)]
            end1, end2 = (np.array([e[k][0] for e in ends]) for k in (0, 1))
            shift = law(res.params, S1=end1, S2=end2) - law(res.params, S1=s1, S2=s2)
            part = sub.assign(raw=sub[target].to_numpy(), correction=shift)
            part[target] = part["raw"] + part["correction"]
            parts.append(part[s2 > 0])
    return pd.concat(parts, ignore_index=True) if parts else pts.iloc[0:0].assign(raw=[], correction=[])


def _end_areas(config, tokens, decay):
    """``(S1, S2)`` at the end of a run of ``tokens`` with the schedule rule of ``config``."""
    lrs, warm = lb.config_schedule(config, tokens=int(round(tokens)))
    return lb.schedule_areas(lrs, [len(lrs)], decay=decay, warmup_steps=warm)


CURVE_POINTS = ("none", "raw", "corrected")
"""Fit sets of :func:`curve_point_backtest`: finished runs only, plus raw or corrected curve points."""


def curve_point_backtest(df, splits, curves_dir, target, *, decay=0.999, min_frac=0.0,
                         objectives=("lsq",), interval=None, n_boot=40, seed=0):
    """The over-training law backtested with no curve points, raw ones and corrected ones.

    For each split the raw points (:func:`scaling_lib.backtest.curve_points`) and the corrected
    points (:func:`corrected_curve_points`, the curve law fitted to that split's fit runs only)
    of its fit runs join its fit set (:func:`scaling_lib.backtest.run_backtest` with ``extra``).

    Returns
    -------
    pandas.DataFrame
        The rows of :func:`~scaling_lib.backtest.run_backtest` with ``points`` (one of
        :data:`CURVE_POINTS`) first.
    """
    raw = backtest.curve_points(df, curves_dir, target=target, min_frac=min_frac)
    parts = []
    for split in splits:
        fit_runs = df[df["run_id"].astype(str).isin(split.fit_ids)]
        corrected = corrected_curve_points(fit_runs, curves_dir, target, decay=decay, min_frac=min_frac)
        for name, extra in zip(CURVE_POINTS, (None, raw, corrected)):
            bt = backtest.run_backtest(df, [split], target, objectives=objectives, extra=extra,
                                       interval=interval, n_boot=n_boot, seed=seed)
            if len(bt):
                bt.insert(0, "points", name)
                parts.append(bt)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def pair_table(table):
    """Mean relative error per ``(split, objective)`` pair and fit set of a :func:`curve_point_backtest`.

    Returns
    -------
    pandas.DataFrame
        Index ``(split, objective)``, one column per :data:`CURVE_POINTS` (NaN where that fit set
        could not be fitted).
    """
    ok = table[table["status"] == "ok"]
    out = ok.groupby(["split", "objective", "points"])["rel_err_pct"].mean().unstack("points")
    return out.reindex(columns=list(CURVE_POINTS))
