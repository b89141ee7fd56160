"""Backtests of scaling-law extrapolation: fit on cheap runs, predict expensive ones.

Gadre et al. (2024, Sec. 2-4) rest on two claims that a run table can test:

* at a fixed token multiplier ``M`` the (reducible) loss is a power law in
  compute, with one exponent for every ``M`` (the lines of loss against
  compute are parallel on log-log axes): :func:`slope_per_M`;
* the over-training law, eq. (4), fitted on small runs predicts much larger
  and more over-trained ones. A backtest measures how the prediction error
  grows as the fit set shrinks or the extrapolation grows: build several
  fit/predict splits (:func:`shape_splits`, :func:`compute_splits`) and fit
  and score each (:func:`run_backtest`).

Intermediate evaluations of a run can add fit points
(:func:`curve_points`); they are points of a run whose learning-rate
schedule has not finished, not finished runs with fewer tokens.

Splits are queries on the run table (sizes ranked, compute cut-offs), never
lists of model names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from scaling_lib import laws, protocols
from scaling_lib import fit as fitting
from scaling_lib.records import curve_table
from scaling_lib.runs import require_columns

class BacktestInputError(ValueError):
    """A run table, curve file or split that cannot be used: the message names the problem."""


def _unique_ids(df, run_id_column="run_id"):
    require_columns(df, [run_id_column], "run table")
    ids = df[run_id_column].astype(str)
    dup = ids[ids.duplicated()].unique().tolist()
    if dup:
        raise BacktestInputError(f"run ids must be unique; repeated: {dup[:5]}")
    return ids


# --- compute ratios ----------------------------------------------------------------------------


def compute_ratios(fit_runs, targets, *, flops_column="flops"):
    """How much more compute each target used than the fit set.

    Parameters
    ----------
    fit_runs, targets : pandas.DataFrame
        The runs fitted on and the runs predicted.
    flops_column : str, keyword-only

    Returns
    -------
    pandas.DataFrame
        Indexed like ``targets``: ``to_largest_fit`` (target compute over
        the most expensive fit run: how far the law extrapolates) and
        ``to_fit_total`` (over the summed compute of all fit runs: what the
        prediction saves).

    Examples
    --------
    >>> import pandas as pd
    >>> f = pd.DataFrame({"flops": [1.0, 3.0]})
    >>> compute_ratios(f, pd.DataFrame({"flops": [30.0]})).iloc[0].tolist()
    [10.0, 7.5]
    """
    require_columns(fit_runs, [flops_column], "fit set")
    require_columns(targets, [flops_column], "targets")
    if len(fit_runs) == 0:
        raise BacktestInputError("compute_ratios: the fit set is empty")
    c = targets[flops_column].to_numpy(float)
    fit_c = fit_runs[flops_column].to_numpy(float)
    return pd.DataFrame({"to_largest_fit": c / fit_c.max(), "to_fit_total": c / fit_c.sum()},
                        index=targets.index)


# --- slopes per token multiplier -------------------------------------------------------------


def slope_per_M(df, target, *, x="flops", group="M", offset=0.0, level=0.95, n_boot=200, seed=0,
                run_id_column="run_id"):
    """The log-log slope of ``target - offset`` against ``x`` for each ``M``.

    At fixed ``M`` the over-training law (Gadre et al. 2024, eq. 4) makes
    the reducible loss ``L - E`` a power law in compute with exponent
    ``-eta`` for every ``M``: the fitted slopes should agree. Each group is
    fitted with :data:`scaling_lib.laws.POWER` (least squares on logs, so
    the slope is the ordinary log-log regression slope). With ``offset=0``
    the slope is that of the total loss, which flattens as the loss nears
    its floor; with ``offset=E`` it is the slope of the reducible loss.

    Parameters
    ----------
    df : pandas.DataFrame
        Runs with ``x``, ``group`` and ``target`` columns.
    target : str
        Loss column.
    x : str, keyword-only
        Compute column (``flops``).
    group : str, keyword-only
        Column whose values get one line each (``M``).
    offset : float, keyword-only
        Subtracted from the target before taking logs (an irreducible loss).
    level : float, keyword-only
        Central probability of the intervals.
    n_boot : int, keyword-only
        Bootstrap refits over the group's runs (0: no bootstrap interval).
    seed : int, keyword-only

    Returns
    -------
    pandas.DataFrame
        One row per group value, sorted: ``n_runs``, ``x_min``, ``x_max``,
        ``slope``, ``lo``/``hi`` (bootstrap percentile interval; needs 3
        distinct runs), ``t_lo``/``t_hi`` (the regression's Student-t
        interval with ``n_runs - 2`` degrees of freedom; needs 3 runs).
        Groups with fewer than 2 runs get NaN slopes.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> C = np.array([1e12, 1e13, 1e14, 1e15] * 2)
    >>> M = np.repeat([20.0, 80.0], 4)
    >>> df = pd.DataFrame({"flops": C, "M": M, "loss": 2 + (1 + M / 80) * 30 * C ** -0.1})
    >>> slope_per_M(df, "loss", offset=2.0, n_boot=0)["slope"].round(3).tolist()
    [-0.1, -0.1]
    """
    require_columns(df, [x, group, target], "run table")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    rows = []
    for value, sub in df.groupby(group, sort=True):
        labels = (sub[run_id_column].astype(str) if run_id_column in sub
                  else pd.Series([f"row {i}" for i in sub.index], index=sub.index))
        y = sub[target].to_numpy(float) - offset
        if not np.all(np.isfinite(y)) or np.any(y <= 0):
            bad = labels[~(np.isfinite(y) & (y > 0))].tolist()
            raise BacktestInputError(
                f"{target} - {offset:g} must be positive and finite to take logs; "
                f"not so for run(s) {bad[:5]} ({group}={value:g})")
        row = {group: value, "n_runs": len(sub), "x_min": sub[x].min(), "x_max": sub[x].max(),
               "slope": np.nan, "lo": np.nan, "hi": np.nan, "t_lo": np.nan, "t_hi": np.nan}
        n_distinct = sub[x].nunique()
        if n_distinct >= 2:
            data = pd.DataFrame({"x": sub[x].to_numpy(float), "y": y, "run_id": labels.to_numpy()})
            res = fitting.fit(laws.POWER, data, target="y", seed=seed)
            row["slope"] = res.params["alpha"]
            if n_distinct >= 3:
                lx, ly = np.log(data["x"]), np.log(data["y"])
                reg = stats.linregress(lx, ly)
                half = stats.t.ppf(0.5 + level / 2, len(sub) - 2) * reg.stderr
                row["t_lo"], row["t_hi"] = reg.slope - half, reg.slope + half
                if n_boot:
                    ci = res.ci(level, n_boot=n_boot)
                    row["lo"], row["hi"] = ci.loc["alpha", "lo"], ci.loc["alpha", "hi"]
        rows.append(row)
    return pd.DataFrame(rows).set_index(group)


# --- intermediate evaluations ----------------------------------------------------------------


def curve_points(df, curves_dir, *, target, align="final", min_frac=0.0,
                 include_final=False, run_id_column="run_id", keep=("model", "seed", "role")):
    """Intermediate evaluations of finished runs as rows of a run table.

    Each point of a run's validation curve becomes a row with ``N`` of the
    run, ``D`` = tokens seen so far, ``M = D / N`` and ``flops = 6 N D``.
    Such a point is *not* a finished run with that budget: its learning
    rate has not decayed, so its loss lies above that of a run trained for
    ``D`` tokens with its own full schedule.

    Parameters
    ----------
    df : pandas.DataFrame
        Finished runs (``run_id``, ``N``, ``D`` and ``target``).
    curves_dir : str or Path
        Directory holding ``<run_id>.json`` run records.
    target : str, keyword-only
        Curve key and run-table column of the loss.
    align : {"final", "none"}, keyword-only
        ``"final"`` shifts each curve so that its last point, taken at the
        end of training, equals the run's final ``target`` (curves are
        measured on a smaller validation slice than the final evaluation,
        with a bias of their own); ``"none"`` keeps the raw values.
    min_frac : float, keyword-only
        Keep points with at least this fraction of the run's tokens.
    include_final : bool, keyword-only
        Keep the last point (a duplicate of the finished run).
    keep : tuple of str, keyword-only
        Run-table columns copied to the points when present.

    Returns
    -------
    pandas.DataFrame
        ``run_id`` (``<parent>@<step>``), ``parent_run``, ``step``,
        ``frac`` (tokens over the run's ``D``), ``N``, ``D``, ``M``,
        ``flops``, ``target``, ``offset`` (the shift applied), and the
        ``keep`` columns.

    Raises
    ------
    scaling_lib.records.RecordError
        A run record is unreadable or its curve is malformed (names the file).
    """
    if align not in ("final", "none"):
        raise ValueError(f"align must be 'final' or 'none', got {align!r}")
    require_columns(df, [run_id_column, "N", "D", target], "run table")
    ids = _unique_ids(df, run_id_column)
    curves_dir = Path(curves_dir)
    if not curves_dir.is_dir():
        raise FileNotFoundError(f"no directory of run records at {curves_dir}")
    parts = []
    for run_id, (_, run) in zip(ids, df.iterrows()):
        path = curves_dir / f"{run_id}.json"
        if not path.is_file():
            raise FileNotFoundError(f"run {run_id}: no run record at {path}")
        curve = curve_table(path, target)
        D, N = float(run["D"]), float(run["N"])
        last = curve.iloc[-1]
        offset = 0.0
        if align == "final":
            if not math.isclose(last["tokens"], D, rel_tol=1e-3):
                raise BacktestInputError(
                    f"run {run_id}: the curve ends at {last['tokens']:.0f} tokens, not at D = {D:.0f}; "
                    "it cannot be aligned to the final loss (use align='none')")
            offset = float(run[target]) - float(last[target])
        frac = curve["tokens"] / D
        mask = frac >= min_frac
        if not include_final:
            mask &= ~np.isclose(curve["tokens"], D, rtol=1e-3)
        sub = curve[mask]
        part = pd.DataFrame({
            "run_id": [f"{run_id}@{int(s)}" for s in sub["step"]],
            "parent_run": run_id, "step": sub["step"].astype(int).to_numpy(),
            "frac": frac[mask].to_numpy(), "N": N, "D": sub["tokens"].to_numpy(),
        })
        part["M"] = part["D"] / N
        part["flops"] = 6.0 * N * part["D"]
        part[target] = sub[target].to_numpy() + offset
        part["offset"] = offset
        for column in keep:
            if column in df.columns:
                part[column] = run[column]
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["run_id", "parent_run", "step", "frac", "N", "D", "M", "flops",
                                     target, "offset"])
    return pd.concat(parts, ignore_index=True)


# --- splits ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """One fit/predict split of a run table.

    Attributes
    ----------
    name : str
        Short label.
    kind : str
        How it was built (``"shapes"`` or ``"compute"``).
    value : float
        The split's parameter: number of small shapes, or compute cut-off.
    fit_ids, predict_ids : tuple of str
        Run ids fitted on and predicted (disjoint).
    """

    name: str
    kind: str
    value: float
    fit_ids: tuple
    predict_ids: tuple

    def __post_init__(self):
        both = set(self.fit_ids) & set(self.predict_ids)
        if both:
            raise BacktestInputError(
                f"split {self.name}: runs both fitted and predicted: {sorted(both)[:5]}")


def shape_splits(df, ks=None, *, reference_M=20.0, overtrained_M=(320.0,), n_overtrained_shapes=1,
                 size_column="N", run_id_column="run_id"):
    """Fit on the ``k`` smallest shapes, predict every run of the larger ones.

    For each ``k``: the fit set is the ``k`` smallest sizes at
    ``reference_M`` plus the smallest ``n_overtrained_shapes`` sizes at each
    of ``overtrained_M`` (the paper's loss-law design with ``k = 4``); the
    predicted runs are all runs of larger sizes, at every ``M``. Built with
    :func:`scaling_lib.protocols.assign_roles`.

    Parameters
    ----------
    df : pandas.DataFrame
        One group of runs (one training set).
    ks : iterable of int, optional
        Numbers of small shapes; default every ``k`` from 1 to the number
        of sizes minus one.
    reference_M, overtrained_M, n_overtrained_shapes, size_column : keyword-only
        As in :class:`scaling_lib.protocols.Protocol`.

    Returns
    -------
    list of Split
        One per ``k``, in the order given. A ``k`` with no run to predict is
        left out, and so is one whose fit set equals that of an earlier
        ``k`` (its ``k``-th size has no run at ``reference_M``).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"run_id": list("abcde"), "N": [1, 1, 2, 3, 3],
    ...                    "M": [20, 320, 20, 20, 80]})
    >>> [(s.fit_ids, s.predict_ids) for s in shape_splits(df, [2])]
    [(('a', 'b', 'c'), ('d', 'e'))]
    """
    require_columns(df, [size_column, "M"], "run table")
    ids = _unique_ids(df, run_id_column)
    n_sizes = df[size_column].nunique()
    ks = range(1, n_sizes) if ks is None else ks
    splits, seen = [], set()
    for k in ks:
        k = int(k)
        if k < 1:
            raise BacktestInputError(f"shape_splits: k must be at least 1, got {k}")
        proto = protocols.Protocol(
            n_small_shapes=k, reference_M=float(reference_M),
            overtrained_M=tuple(float(m) for m in overtrained_M),
            n_overtrained_shapes=min(int(n_overtrained_shapes), k), n_error_extra_shapes=0,
            size_column=size_column, group_by=None)
        roles = protocols.assign_roles(df, proto)
        fit_ids, predict = tuple(ids[roles == "loss_fit"]), tuple(ids[roles == "target"])
        if predict and fit_ids not in seen:
            seen.add(fit_ids)
            splits.append(Split(f"{k} smallest", "shapes", float(k), fit_ids, predict))
    return splits


def compute_splits(df, cutoffs, *, flops_column="flops", run_id_column="run_id"):
    """Fit on runs with compute up to a cut-off, predict the runs above it.

    Parameters
    ----------
    df : pandas.DataFrame
    cutoffs : iterable of float
        Compute cut-offs (FLOPs); a run with ``flops <= cutoff`` is fitted.

    Returns
    -------
    list of Split
        One per cut-off that leaves runs on both sides.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"run_id": list("abc"), "flops": [1.0, 2.0, 4.0]})
    >>> [(s.fit_ids, s.predict_ids) for s in compute_splits(df, [2.0, 9.0])]
    [(('a', 'b'), ('c',))]
    """
    require_columns(df, [flops_column], "run table")
    ids = _unique_ids(df, run_id_column)
    c = df[flops_column].to_numpy(float)
    splits = []
    for cut in cutoffs:
        below = c <= float(cut)
        if below.any() and (~below).any():
            splits.append(Split(f"C <= {float(cut):.2g}", "compute", float(cut),
                                tuple(ids[below]), tuple(ids[~below])))
    return splits


# --- the backtest -------------------------------------------------------------------------------


def run_backtest(df, splits, target, *, law=laws.OVERTRAINING, objectives=("lsq",), extra=None,
                 extra_parent="parent_run", run_id_column="run_id", keep=("model", "N", "M"),
                 interval=0.95, interval_method="parametric", n_boot=None, noise_floor=None, seed=0):
    """Fit a law on each split's fit runs and score its predictions of the others.

    Parameters
    ----------
    df : pandas.DataFrame
        The run table the splits refer to.
    splits : list of Split
    target : str
        Column fitted and predicted.
    law : scaling_lib.laws.Law, keyword-only
    objectives : tuple of str, keyword-only
        Objectives of :func:`scaling_lib.fit.fit`; each split is fitted once per objective.
    extra : pandas.DataFrame, optional, keyword-only
        Additional fit points (e.g. :func:`curve_points`): those whose
        ``extra_parent`` run is in a split's fit set join that fit.
    extra_parent : str, keyword-only
    keep : tuple of str, keyword-only
        Columns of the predicted runs copied to the result.
    interval : float or None, keyword-only
        Level of the prediction intervals (``None``: none, and no bootstrap).
    interval_method : {"parametric", "bootstrap"}, keyword-only
        As in :meth:`scaling_lib.fit.FitResult.predict`.
    n_boot : int, optional, keyword-only
        Replicates per fit for the intervals (default
        :data:`scaling_lib.fit.DEFAULT_N_BOOT`).
    noise_floor : float, optional, keyword-only
        Passed to :func:`scaling_lib.fit.fit` (e.g. the seed noise of the testbed).
    seed : int, keyword-only
        Seed of the bootstraps.

    Returns
    -------
    pandas.DataFrame
        One row per split, objective and predicted run: ``split``,
        ``kind``, ``value``, ``objective``, ``n_fit`` (runs), ``n_extra``
        (extra points), ``status`` (``ok``, ``too few runs`` or
        ``failed``), the law's parameters, ``run_id``, the ``keep``
        columns, ``flops``, ``actual``, ``pred``, ``lo`` and ``hi`` (the
        prediction interval; NaN without one), ``covered`` (``lo <= actual
        <= hi``; missing, ``pd.NA``, without an interval), ``rel_err_pct``
        (100 |pred - actual| / actual) and the :func:`compute_ratios`
        columns. Predictions are NaN where the fit is not ``ok``.
        Summarise ``covered`` with :func:`coverage`.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> N, M = (a.ravel() for a in np.meshgrid([1e5, 2e5, 4e5, 8e5], [20.0, 80.0, 320.0]))
    >>> true = {"E": 1.8, "a": 40.0, "b": 120.0, "eta": 0.15}
    >>> df = pd.DataFrame({"run_id": [f"r{i}" for i in range(N.size)], "N": N, "M": M,
    ...                    "flops": 6 * N * N * M, "loss": laws.OVERTRAINING(true, N=N, M=M)})
    >>> bt = run_backtest(df, shape_splits(df, [3]), "loss", interval=None)
    >>> len(bt), bool(bt["rel_err_pct"].max() < 1e-3)
    (3, True)
    """
    ids = _unique_ids(df, run_id_column)
    require_columns(df, [target, "flops"], "run table")
    table = df.set_index(ids.to_numpy())
    if extra is not None:
        require_columns(extra, [extra_parent, target], "extra fit points")
    out = []
    for split in splits:
        unknown = [r for r in split.fit_ids + split.predict_ids if r not in table.index]
        if unknown:
            raise BacktestInputError(f"split {split.name}: run(s) {unknown[:5]} not in the run table")
        fit_runs, pred_runs = table.loc[list(split.fit_ids)], table.loc[list(split.predict_ids)]
        points = fit_runs
        n_extra = 0
        if extra is not None:
            more = extra[extra[extra_parent].isin(split.fit_ids)]
            n_extra = len(more)
            points = pd.concat([fit_runs, more], ignore_index=True)
        ratios = compute_ratios(fit_runs, pred_runs)
        actual = pred_runs[target].to_numpy(float)
        for objective in objectives:
            head = {"split": split.name, "kind": split.kind, "value": split.value, "objective": objective,
                    "n_fit": len(fit_runs), "n_extra": n_extra}
            params = dict.fromkeys(law.param_names, np.nan)
            pred = lo = hi = np.full(len(pred_runs), np.nan)
            if len(fit_runs) + n_extra < law.n_params or len(fit_runs) == 0:
                status = "too few runs"
            else:
                res = fitting.fit(law, points, target=target, objective=objective,
                                  run_id_column=run_id_column, noise_floor=noise_floor, seed=seed)
                status = "ok" if res.success else "failed"
                if res.success:
                    params = res.params
                    out_pred = res.predict(pred_runs, interval=interval, n_boot=n_boot,
                                           interval_method=interval_method)
                    pred, lo, hi = (out_pred[c].to_numpy(float) for c in ("pred", "lo", "hi"))
            rows = pd.DataFrame({"run_id": pred_runs.index.to_numpy()})
            for column in keep:
                if column in pred_runs.columns:
                    rows[column] = pred_runs[column].to_numpy()
            rows["flops"] = pred_runs["flops"].to_numpy(float)
            rows["actual"], rows["pred"] = actual, pred
            rows["lo"], rows["hi"] = lo, hi
            rows["covered"] = _covered(actual, lo, hi)
            rows["rel_err_pct"] = 100.0 * np.abs(pred - actual) / np.abs(actual)
            rows["to_largest_fit"] = ratios["to_largest_fit"].to_numpy()
            rows["to_fit_total"] = ratios["to_fit_total"].to_numpy()
            for name, value in reversed(list({**head, "status": status, **params}.items())):
                rows.insert(0, name, value)
            out.append(rows)
    if not out:
        return pd.DataFrame()
    return pd.concat(out, ignore_index=True)


def _covered(actual, lo, hi) -> pd.Series:
    """``lo <= actual <= hi`` as a nullable boolean: missing where there is no interval."""
    has = np.isfinite(lo) & np.isfinite(hi)
    inside = (lo <= actual) & (actual <= hi)
    return pd.Series(pd.array(np.where(has, inside, False), dtype="boolean")).mask(~has)


def coverage(table, by=("kind",)):
    """Share of predictions whose measured value lies inside its interval.

    Parameters
    ----------
    table : pandas.DataFrame
        A backtest table (:func:`run_backtest`) or any table with a
        ``covered`` column (nullable boolean; missing: no interval), plus
        ``lo``, ``hi`` and ``actual`` for the widths.
    by : str or sequence of str
        Columns to group by (``()``: one row for the whole table).

    Returns
    -------
    pandas.DataFrame
        One row per group: ``n`` (predictions), ``n_interval`` (with an
        interval), ``n_covered``, ``coverage`` (``n_covered / n_interval``;
        NaN without intervals) and ``median_halfwidth_pct`` (half the
        interval's width over the measured value, in %).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"kind": ["a", "a", "a", "b"], "actual": [1.0, 2.0, 3.0, 4.0],
    ...                   "lo": [0.9, 2.1, float("nan"), 3.0], "hi": [1.1, 2.3, float("nan"), 5.0],
    ...                   "covered": pd.array([True, False, None, True], dtype="boolean")})
    >>> coverage(t)[["n", "n_interval", "n_covered", "coverage"]]
          n  n_interval  n_covered  coverage
    kind
    a     3           2          1       0.5
    b     1           1          1       1.0
    """
    require_columns(table, ["covered"], "backtest table")
    by = [by] if isinstance(by, str) else list(by)
    covered = table["covered"].astype("boolean")
    frame = pd.DataFrame({"has": covered.notna(), "hit": covered.fillna(False).astype(bool)}, index=table.index)
    if {"lo", "hi", "actual"} <= set(table.columns):
        frame["half"] = 50.0 * (table["hi"] - table["lo"]) / table["actual"].abs()
    else:
        frame["half"] = np.nan
    for column in by:
        frame[column] = table[column]
    groups = frame.groupby(by, sort=False) if by else [((), frame)]
    rows = []
    for key, sub in groups:
        n_int = int(sub["has"].sum())
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "n": len(sub), "n_interval": n_int, "n_covered": int(sub["hit"].sum()),
                     "coverage": sub["hit"].sum() / n_int if n_int else np.nan,
                     "median_halfwidth_pct": float(sub.loc[sub["has"], "half"].median()) if n_int else np.nan})
    out = pd.DataFrame(rows)
    return out.set_index(by) if by else out
