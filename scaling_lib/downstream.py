"""Downstream error from loss: fit sets, per-task error laws, task-subset studies.

Gadre et al. (2024, eq. 5) relate a model's *average* top-1 error over a
suite of tasks to its validation loss, ``Err(L) = eps - k exp(-gamma L)``
(:data:`scaling_lib.laws.ERROR`), and chain it with the loss law to predict
the error of a run from ``(N, M)`` alone. This module adds what is needed to
ask *which* errors can be predicted that way:

* :func:`average_members`: which task columns a stored average is the mean of;
* :func:`chance_levels`: each task's chance error from the suite's chance table;
* :func:`per_task_fits`: the error law fitted to every task on its own, with
  the held-out prediction error measured against how far the task moves;
* :func:`subset_study` and :func:`summarize_subsets`: the error law fitted to
  averages over random subsets of the tasks, and how its held-out prediction
  error shrinks with the number of tasks averaged;
* :func:`relative_errors_by_column`: one law fitted to several target columns
  (e.g. the loss on several evaluation sets) and its held-out relative errors.

All selections are queries on the table's data; no run, task or column name
is written into the functions.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from scaling_lib import fit as fitting
from scaling_lib import laws, protocols
from scaling_lib.runs import require_columns

def average_members(df, average, candidates, atol=1e-6):
    """The candidate columns whose row-wise mean is the column ``average``.

    Solves ``df[candidates] @ w = df[average]`` with ``w >= 0`` (non-negative
    least squares); the members are the columns of clearly non-zero weight,
    and their plain mean must reproduce ``average`` on every row.

    Parameters
    ----------
    df : pandas.DataFrame
    average : str
        The stored average (e.g. ``"err_avg"``).
    candidates : sequence of str
        Columns it may average (e.g. every ``err_<task>`` column).
    atol : float
        Largest allowed difference between the members' mean and ``average``.

    Returns
    -------
    list of str
        Members, in the order of ``candidates``.

    Raises
    ------
    ValueError
        No subset of the candidates reproduces the average (too few runs to
        tell the columns apart, NaN values, or an average of something else).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"a": [0.1, 0.5, 0.2], "b": [0.3, 0.1, 0.9],
    ...                    "c": [0.7, 0.2, 0.4]})
    >>> df["avg"] = (df["a"] + df["c"]) / 2
    >>> average_members(df, "avg", ["a", "b", "c"])
    ['a', 'c']
    """
    candidates = list(candidates)
    require_columns(df, [average, *candidates], "run table")
    if not candidates:  # (scipy's nnls crashes the process on a matrix without columns)
        raise ValueError(f"no task columns to tell which ones {average!r} averages")
    X = df[candidates].to_numpy(float)
    y = df[average].to_numpy(float)
    ok = np.isfinite(y) & np.all(np.isfinite(X), axis=1)
    if not ok.any():
        raise ValueError(f"no run has finite values of {average!r} and all of {candidates}")
    w, _ = nnls(X[ok], y[ok])
    members = [c for c, wi in zip(candidates, w) if wi > 0.5 / len(candidates) ** 2]
    if members:
        gap = np.max(np.abs(df.loc[ok, members].mean(axis=1).to_numpy() - y[ok]))
        if gap <= atol:
            return members
    raise ValueError(f"no subset of {candidates} averages to {average!r} on the {int(ok.sum())} "
                     "complete runs (too few runs to tell the columns apart, or not a plain mean)")


def chance_levels(path, columns):
    """Each task column's chance error, read from a table of ``task, chance_error``.

    Parameters
    ----------
    path : str or path-like
        A CSV with columns ``task`` and ``chance_error`` (as written by
        ``python -m scaling_lib.training.tasks --chance-csv``; the book's is
        ``data/tasks_chance.csv``).
    columns : iterable of str
        Task columns of a run table (``err_<task>``).

    Returns
    -------
    dict or None
        ``err_<task>`` -> chance error for every column, or ``None`` when the
        file does not exist or lacks one of the tasks (chance levels unknown).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "chance.csv"
    >>> _ = f.write_text("task,chance_error\\nswap,0.5\\ncloze,0.75\\n")
    >>> chance_levels(f, ["err_cloze", "err_swap"])
    {'err_cloze': 0.75, 'err_swap': 0.5}
    >>> chance_levels(f, ["err_other"]) is None
    True
    """
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        return None
    table = pd.read_csv(path)
    require_columns(table, ["task", "chance_error"], str(path))
    known = {f"err_{task}": float(c) for task, c in zip(table["task"], table["chance_error"])}
    columns = list(columns)
    if not set(columns) <= set(known):
        return None
    return {c: known[c] for c in columns}


def _error_fit(runs, error, loss, objective):
    return fitting.fit(laws.ERROR, runs, target=error, inputs={"L": loss}, objective=objective)


def _predict_error(result, heldout, loss, pred_loss):
    data = heldout if pred_loss is None else heldout.assign(**{loss: np.asarray(pred_loss, float)})
    return result.predict(data, interval=None)["pred"].to_numpy(float)


def _check_pred_loss(heldout, pred_loss):
    if pred_loss is not None and len(np.asarray(pred_loss)) != len(heldout):
        raise ValueError(f"pred_loss has {len(np.asarray(pred_loss))} values for "
                         f"{len(heldout)} held-out runs")


def per_task_fits(fit_runs, heldout, tasks, loss, *, pred_loss=None, chance=None,
                  objective="lsq"):
    """The error law fitted to each task's error on its own, and tested on held-out runs.

    Parameters
    ----------
    fit_runs, heldout : pandas.DataFrame
        Runs that fit the law and runs it predicts (``heldout`` may be empty).
    tasks : sequence of str
        Error columns, one per task (e.g. ``err_cloze_last4``).
    loss : str
        Loss column, the law's input.
    pred_loss : array-like, optional, keyword-only
        Predicted losses of the held-out runs (from a loss law): the chained
        prediction of Gadre et al. (2024). Default: their measured loss.
    chance : mapping, optional, keyword-only
        Chance-level error per task column; adds ``chance`` and
        ``above_chance`` (chance minus the lowest error seen).
    objective : str, keyword-only
        Fitting objective (see :func:`scaling_lib.fit.fit`).

    Returns
    -------
    pandas.DataFrame
        Indexed by task: ``eps``, ``k``, ``gamma``, ``success``, ``n_fit``,
        ``fit_rms`` (residual RMS on the fit runs), ``spread`` (largest minus
        smallest error over all runs given), ``heldout_mae`` (mean absolute
        error of the held-out predictions), ``heldout_rel_err_pct`` (mean of
        ``100 |pred - actual| / actual``) and ``mae_over_spread``: how far off
        the prediction is compared with how far the task moves. A task whose
        error barely moves has a large ratio, however small its error.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> L = np.linspace(3.5, 5.0, 8)
    >>> df = pd.DataFrame({"loss": L, "err_t": 0.7 - 1.4 * np.exp(-0.4 * L),
    ...                    "err_flat": 0.5 + 0.01 * np.cos(7 * L)})
    >>> out = per_task_fits(df.iloc[2:], df.iloc[:2], ["err_t", "err_flat"], "loss")
    >>> bool(out.loc["err_t", "mae_over_spread"] < 0.01)
    True
    >>> bool(out.loc["err_flat", "mae_over_spread"] > 0.1)
    True
    """
    tasks = list(tasks)
    require_columns(fit_runs, [loss, *tasks], "fit runs")
    if len(heldout):
        require_columns(heldout, [loss, *tasks], "held-out runs")
    _check_pred_loss(heldout, pred_loss)
    rows = []
    for task in tasks:
        res = _error_fit(fit_runs, task, loss, objective)
        both = pd.concat([fit_runs[task], heldout[task]]) if len(heldout) else fit_runs[task]
        row = {"task": task, **res.params, "success": res.success, "n_fit": res.n_data,
               "fit_rms": res.rmse, "spread": float(both.max() - both.min())}
        if len(heldout) and res.success:
            actual = heldout[task].to_numpy(float)
            miss = _predict_error(res, heldout, loss, pred_loss) - actual
            row["heldout_mae"] = float(np.mean(np.abs(miss)))
            row["heldout_rel_err_pct"] = float(np.mean(100 * np.abs(miss) / np.abs(actual)))
        else:
            row["heldout_mae"] = row["heldout_rel_err_pct"] = np.nan
        spread = row["spread"]
        row["mae_over_spread"] = row["heldout_mae"] / spread if spread > 0 else np.nan
        if chance is not None:
            if task not in chance:
                raise KeyError(f"chance has no level for task column {task!r}")
            row["chance"] = float(chance[task])
            row["above_chance"] = float(chance[task] - both.min())
        rows.append(row)
    columns = ["task", *laws.ERROR.param_names, "success", "n_fit", "fit_rms", "spread", "heldout_mae",
               "heldout_rel_err_pct", "mae_over_spread"] + (["chance", "above_chance"] if chance is not None else [])
    return pd.DataFrame(rows, columns=columns).set_index("task")


def _subsets(tasks, size, n_draws, rng):
    total = math.comb(len(tasks), size)
    if total <= n_draws:
        return [list(c) for c in itertools.combinations(tasks, size)]
    seen, out = set(), []
    while len(out) < n_draws:
        pick = tuple(sorted(rng.choice(len(tasks), size, replace=False)))
        if pick not in seen:
            seen.add(pick)
            out.append([tasks[i] for i in pick])
    return out


def subset_study(fit_runs, heldout, tasks, loss, *, pred_loss=None, sizes=None, n_draws=30,
                 seed=0, objective="lsq"):
    """Error-law predictions of averages over random subsets of the tasks.

    For each subset size ``s``, every subset of ``s`` tasks (or ``n_draws``
    distinct random ones when there are more) is averaged per run; the error
    law is fitted to that average on ``fit_runs`` and predicts it for
    ``heldout``.

    Parameters
    ----------
    fit_runs, heldout : pandas.DataFrame
        Fitting runs and (non-empty) held-out runs.
    tasks : sequence of str
        Error columns to draw from.
    loss : str
        Loss column.
    pred_loss : array-like, optional, keyword-only
        Predicted losses of the held-out runs (chained prediction); default:
        their measured loss.
    sizes : sequence of int, optional, keyword-only
        Subset sizes; default ``1 .. len(tasks)``.
    n_draws : int, keyword-only
        Largest number of subsets per size.
    seed : int, keyword-only
        Seed of the random subsets.
    objective : str, keyword-only

    Returns
    -------
    pandas.DataFrame
        One row per subset: ``size``, ``tasks`` (names joined by ``+``),
        ``success``, ``rel_err_pct`` (mean over held-out runs of
        ``100 |pred - actual| / actual``), ``mae`` (mean absolute error) and
        ``spread`` (range of the subset average over all runs).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> L = np.linspace(3.5, 5.0, 8)
    >>> df = pd.DataFrame({f"e{i}": 0.7 - 1.4 * np.exp(-0.4 * L) for i in range(3)})
    >>> df["loss"] = L
    >>> out = subset_study(df.iloc[2:], df.iloc[:2], ["e0", "e1", "e2"], "loss")
    >>> out["size"].tolist()
    [1, 1, 1, 2, 2, 2, 3]
    """
    tasks = list(tasks)
    if len(heldout) == 0:
        raise ValueError("subset_study needs at least one held-out run")
    require_columns(fit_runs, [loss, *tasks], "fit runs")
    require_columns(heldout, [loss, *tasks], "held-out runs")
    _check_pred_loss(heldout, pred_loss)
    sizes = range(1, len(tasks) + 1) if sizes is None else sizes
    if any(not 1 <= s <= len(tasks) for s in sizes):
        raise ValueError(f"subset sizes must lie in 1..{len(tasks)}, got {list(sizes)}")
    rng = np.random.default_rng(seed)
    rows = []
    for size in sizes:
        for subset in _subsets(tasks, int(size), int(n_draws), rng):
            fit_avg = fit_runs[[loss]].assign(avg=fit_runs[subset].mean(axis=1))
            held_avg = heldout[[loss]].assign(avg=heldout[subset].mean(axis=1))
            res = _error_fit(fit_avg, "avg", loss, objective)
            both = pd.concat([fit_avg["avg"], held_avg["avg"]])
            row = {"size": int(size), "tasks": "+".join(subset), "success": res.success,
                   "spread": float(both.max() - both.min())}
            if res.success:
                actual = held_avg["avg"].to_numpy(float)
                miss = _predict_error(res, held_avg, loss, pred_loss) - actual
                row["rel_err_pct"] = float(np.mean(100 * np.abs(miss) / np.abs(actual)))
                row["mae"] = float(np.mean(np.abs(miss)))
            else:
                row["rel_err_pct"] = row["mae"] = np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def summarize_subsets(study, column="rel_err_pct"):
    """Median and spread of a subset study's prediction error per subset size.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``size``: ``n_subsets``, ``median``, ``q25``, ``q75``,
        ``min``, ``max`` of ``column`` over the subsets that were fitted.

    Examples
    --------
    >>> import pandas as pd
    >>> study = pd.DataFrame({"size": [1, 1, 1, 2], "rel_err_pct": [1.0, 3.0, 8.0, 2.0],
    ...                       "success": True})
    >>> summarize_subsets(study)["median"].tolist()
    [3.0, 2.0]
    """
    require_columns(study, ["size", column, "success"], "subset study")
    ok = study[study["success"].astype(bool)]
    grouped = ok.groupby("size")[column]
    return pd.DataFrame({
        "n_subsets": grouped.size(), "median": grouped.median(),
        "q25": grouped.quantile(0.25), "q75": grouped.quantile(0.75),
        "min": grouped.min(), "max": grouped.max()})


def relative_errors_by_column(law, fit_runs, targets, columns, *, interval=None, **fit_kwargs):
    """Fit one law to several target columns and tabulate its held-out relative errors.

    Parameters
    ----------
    law : scaling_lib.laws.Law
        E.g. :data:`scaling_lib.laws.OVERTRAINING`.
    fit_runs, targets : pandas.DataFrame
        Fitting runs and held-out runs.
    columns : sequence of str
        Target columns, e.g. the loss on several evaluation sets.
    interval : float or None, keyword-only
        Level of a bootstrap prediction interval to add (``lo``, ``hi``,
        ``covered``); needs ``n_boot`` in ``fit_kwargs`` or runs the default.
    **fit_kwargs
        Passed to :func:`scaling_lib.fit.fit` (``objective``, ``n_boot``, ``seed``...).

    Returns
    -------
    tuple (dict, pandas.DataFrame)
        The fit per column, and one row per (column, held-out run): the
        columns of :func:`scaling_lib.protocols.relative_error_table` plus
        ``column``. A column whose fit fails has NaN predictions.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> N = np.array([1e5, 2e5, 4e5, 8e5, 1e5, 3.2e6])
    >>> M = np.array([20, 20, 20, 20, 320, 20.0])
    >>> p = {"E": 1.5, "a": 80.0, "b": 400.0, "eta": 0.2}
    >>> df = pd.DataFrame({"run_id": list("abcdef"), "N": N, "M": M,
    ...                    "x": laws.OVERTRAINING(p, N=N, M=M)})
    >>> df["y"] = 2 * df["x"]
    >>> fits, table = relative_errors_by_column(laws.OVERTRAINING, df[:5], df[5:], ["x", "y"])
    >>> table["rel_err_pct"].round(3).tolist()
    [0.0, 0.0]
    """
    fits, tables = {}, []
    for column in columns:
        res = fitting.fit(law, fit_runs, target=column, **fit_kwargs)
        fits[column] = res
        level = interval if res.success else None
        table = protocols.relative_error_table(res, targets, column, interval=level)
        tables.append(table.assign(column=column))
    return fits, pd.concat(tables, ignore_index=True)
