"""Training curves: loading them from sweep records, IsoFLOP groups and the envelope (approach 1).

A sweep (:mod:`scaling_lib.training.sweep`) stores each run's validation curve
(loss at evenly spaced steps) in ``runs/<run_id>.json``; :func:`load_curves`
reads them into one long table. From the curves:

* :func:`envelope` is Chinchilla approach 1 (Hoffmann et al. 2022, Sec. 3.1):
  at each compute level, the lowest loss reached on any curve, and which run
  (hence which ``N`` and ``D``) reached it;
* :func:`curves_at_budgets` reads exact IsoFLOP groups off the curves, under
  any FLOP convention (give ``N_eff`` from
  :func:`scaling_lib.compute_optimal.convention_columns`), for
  :func:`scaling_lib.compute_optimal.isoflop_optima`.

A point inside a run with a cosine schedule is not the loss of a run trained
to that length (its learning rate has not decayed yet): both analyses
therefore favour runs whose curve ends near the compute considered.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scaling_lib.optimum_fits import ComputeOptimalError
from scaling_lib.records import RecordError, curve_table, read_record, record_paths
from scaling_lib.runs import require_columns


def load_curves(path, target: str) -> pd.DataFrame:
    """Validation curves of a sweep's runs from its per-run JSON records.

    Parameters
    ----------
    path : str or path-like
        A testbed directory holding ``runs/<run_id>.json`` (as written by
        :mod:`scaling_lib.training.sweep`), or the ``runs`` directory itself.
    target : str
        The curve's loss field to read (for example ``"loss_en"``).

    Returns
    -------
    pandas.DataFrame
        ``run_id``, ``N`` (total parameters), ``N_ne``, ``step``, ``tokens``,
        ``loss``: the input of :func:`envelope` and :func:`curves_at_budgets`
        (pass ``n_col="N"``).

    Raises
    ------
    FileNotFoundError
        No such directory, or no records in it.
    scaling_lib.records.RecordError
        A record without a curve or parameter counts (names the file).
    """
    try:
        files = record_paths(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"load_curves: no directory {path}") from None
    if not files:
        raise FileNotFoundError(f"load_curves: no run records (*.json) in {path}")
    parts = []
    for f in files:
        rec = read_record(f, need=("param_counts", "curve"))
        try:
            counts = rec["param_counts"]
            n, n_ne = float(counts["total"]), float(counts["non_embedding"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"{f}: unreadable parameter counts ({type(exc).__name__}: {exc})") from None
        curve = curve_table(f, target, record=rec)
        parts.append(pd.DataFrame({"run_id": str(rec.get("run_id", f.stem)), "N": n, "N_ne": n_ne,
                                   "step": curve["step"].astype(int), "tokens": curve["tokens"],
                                   "loss": curve[target]}))
    return pd.concat(parts, ignore_index=True)[["run_id", "N", "N_ne", "step", "tokens", "loss"]]


def _curve_arrays(curves: pd.DataFrame, run_col: str, tokens_col: str, target: str, n_col: str):
    require_columns(curves, [run_col, tokens_col, target, n_col], "training curves")
    out = []
    for run, sub in curves.groupby(run_col, sort=False):
        sub = sub.sort_values(tokens_col)
        t = sub[tokens_col].to_numpy(dtype=float)
        y = sub[target].to_numpy(dtype=float)
        n = sub[n_col].to_numpy(dtype=float)
        if np.ptp(n) > 0:
            raise ComputeOptimalError(f"training curve of run {run!r} has more than one {n_col} value")
        ok = np.isfinite(t) & np.isfinite(y) & (t > 0)
        if ok.sum() >= 2:
            out.append((run, float(n[0]), t[ok], y[ok]))
    if not out:
        raise ComputeOptimalError("training curves: no run has two or more finite points")
    return out


def curves_at_budgets(curves: pd.DataFrame, budgets, run_col: str = "run_id", tokens_col: str = "tokens",
                      target: str = "loss", n_col: str = "N_eff") -> pd.DataFrame:
    """IsoFLOP groups read off training curves, exact under any convention.

    For each budget ``C`` and each run whose curve covers ``D = C / (6 N)``,
    the loss at ``D`` interpolated linearly in ``ln D``. Note that a point
    inside a run with a cosine schedule is not the loss of a run trained to
    that length (its learning rate has not decayed yet), so these groups
    favour models whose curve ends near the budget.

    Returns
    -------
    pandas.DataFrame
        ``budget``, ``run_id``, ``N``, ``D``, ``flops`` (= ``budget``) and
        ``loss``: the input of :func:`isoflop_optima` (``n_col="N"``).

    Examples
    --------
    >>> cur = pd.DataFrame({"run_id": ["r"] * 3, "N_eff": 10.0, "tokens": [100.0, 1000.0, 10000.0],
    ...                     "loss": [3.0, 2.0, 1.0]})
    >>> round(float(curves_at_budgets(cur, [6 * 10 * 10 ** 2.5])["loss"][0]), 6)
    2.5
    """
    rows = []
    for C in np.asarray(budgets, dtype=float).ravel():
        for run, n, t, y in _curve_arrays(curves, run_col, tokens_col, target, n_col):
            d = C / (6.0 * n)
            if t[0] <= d <= t[-1]:
                rows.append({"budget": C, "run_id": run, "N": n, "D": d, "flops": C,
                             "loss": float(np.interp(np.log(d), np.log(t), y))})
    return pd.DataFrame(rows, columns=["budget", "run_id", "N", "D", "flops", "loss"])


def envelope(curves: pd.DataFrame, n_levels: int = 30, run_col: str = "run_id", tokens_col: str = "tokens",
             target: str = "loss", n_col: str = "N_eff") -> pd.DataFrame:
    """Chinchilla approach 1: the lowest loss at each compute over all training curves.

    Compute levels are ``n_levels`` log-spaced values of ``C = 6 N D``
    between the smallest and largest compute reached on any curve; at each
    level every run whose curve covers it is interpolated (linearly in
    ``ln D``) and the run with the lowest loss is kept.

    Returns
    -------
    pandas.DataFrame
        ``C``, ``loss``, ``run_id``, ``N`` and ``D`` of the best run per
        level; ``n_covering`` counts the runs that reached the level. Fit
        ``N ~ C^a`` with :func:`fit_power_trend`.

    Examples
    --------
    >>> cur = pd.DataFrame({"run_id": ["small"] * 2 + ["big"] * 2, "N_eff": [1.0] * 2 + [100.0] * 2,
    ...                     "tokens": [1.0, 1e4, 1.0, 1e4], "loss": [3.0, 2.5, 4.0, 1.0]})
    >>> envelope(cur, n_levels=3)["run_id"].tolist()
    ['small', 'small', 'big']
    """
    if n_levels < 2:
        raise ValueError(f"envelope needs n_levels >= 2, got {n_levels}")
    arrays = _curve_arrays(curves, run_col, tokens_col, target, n_col)
    c_min = min(6 * n * t[0] for _, n, t, _ in arrays)
    c_max = max(6 * n * t[-1] for _, n, t, _ in arrays)
    rows = []
    for C in np.geomspace(c_min, c_max, n_levels):
        best, covering = None, 0
        for run, n, t, y in arrays:
            d = C / (6.0 * n)
            if t[0] * (1 - 1e-12) <= d <= t[-1] * (1 + 1e-12):
                covering += 1
                loss = float(np.interp(np.log(d), np.log(t), y))
                if best is None or loss < best["loss"]:
                    best = {"C": C, "loss": loss, "run_id": run, "N": n, "D": d}
        if best is not None:
            rows.append({**best, "n_covering": covering})
    return pd.DataFrame(rows, columns=["C", "loss", "run_id", "N", "D", "n_covering"])
