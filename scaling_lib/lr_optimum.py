"""The loss-optimal learning rate of each model size: a parabola of the loss in ``ln lr``.

:func:`optimal_lr` reads the optimum of each model size off a learning-rate
sweep; :func:`scaling_lib.optimum_fits.fit_power_trend` then fits its trend
against ``N`` (Porian et al. 2024 tune the learning rate per size this way).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from scaling_lib.optimum_fits import ComputeOptimalError, fit_parabola, group_label
from scaling_lib.runs import require_columns


def optimal_lr(df: pd.DataFrame, *, target: str, group: str = "model", lr_col: str = "lr",
               n_col: str = "N") -> pd.DataFrame:
    """Loss-optimal learning rate per model size: parabola of the loss in ``ln lr``.

    Groups with fewer than three distinct learning rates, or whose losses
    have no minimum in ``ln lr``, get NaN and a ``note``.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per run with the columns named below.
    target : str
        Loss column to minimise (required, keyword only).
    group : str
        Column naming the model (one size per group).
    lr_col, n_col : str
        Learning rate and parameter count columns.

    Returns
    -------
    pandas.DataFrame
        ``group``, ``N``, ``n_lrs``, ``lr_opt``, ``loss_opt``, ``inside``
        (optimum within the tried range), ``note``. Fit the trend with
        ``fit_power_trend(t["N"], t["lr_opt"])`` on the rows with ``inside``.

    Raises
    ------
    scaling_lib.runs.MissingColumnError
        A column named above is missing.
    ComputeOptimalError
        A group that mixes model sizes.

    Examples
    --------
    >>> lr = np.array([0.01, 0.02, 0.04] * 2)
    >>> N = np.repeat([1e5, 4e5], 3)
    >>> best = 0.06 * (N / 1e5) ** -0.5
    >>> t = optimal_lr(pd.DataFrame({"model": np.repeat(["a", "b"], 3), "N": N, "lr": lr,
    ...                              "loss": 3 + np.log(lr / best) ** 2}), target="loss")
    >>> t["lr_opt"].round(4).tolist(), t["inside"].tolist()
    ([0.06, 0.03], [False, True])
    """
    require_columns(df, [group, lr_col, target, n_col], "run table")
    rows = []
    for g, sub in df.groupby(group, sort=False):
        n = sub[n_col].to_numpy(dtype=float)
        if np.ptp(n) > 0:
            raise ComputeOptimalError(f"optimal_lr: group {group_label(g)!r} mixes model sizes {sorted(set(n))}")
        lr = sub[lr_col].to_numpy(dtype=float)
        y = sub[target].to_numpy(dtype=float)
        row = {"group": g, "N": float(n[0]), "n_lrs": int(np.unique(lr).size), "lr_opt": np.nan,
               "loss_opt": np.nan, "inside": False, "note": ""}
        try:
            if np.any(lr <= 0):
                raise ComputeOptimalError("non-positive learning rate")
            par = fit_parabola(np.log(lr), y)
            row.update(lr_opt=math.exp(par.x_opt), loss_opt=par.y_opt, inside=par.inside)
        except ComputeOptimalError as exc:
            row["note"] = str(exc)
        rows.append(row)
    return pd.DataFrame(rows)
