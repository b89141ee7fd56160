"""FLOP conventions for compute-optimal fits: recount ``N`` and ``C``, and refit approach 2 under each.

The FLOP convention matters (Porian et al. 2024): :func:`convention_columns`
recounts ``N`` and ``C`` of each run under a
:func:`scaling_lib.counting.training_flops` convention, as an effective
parameter count ``N_eff`` (training FLOPs per token / 6) and ``C = 6 N_eff D``;
:func:`exponents_by_convention` refits the IsoFLOP exponents
(:func:`scaling_lib.isoflop_optima.isoflop_optima`) on the same runs under each
convention. :func:`scaling_lib.curves.curves_at_budgets` rebuilds exact IsoFLOP
groups under any convention from the training curves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from scaling_lib import counting
from scaling_lib.configs import GPTConfig
from scaling_lib.isoflop_optima import isoflop_optima, optimum_exponents
from scaling_lib.optimum_fits import ComputeOptimalError
from scaling_lib.runs import require_columns

SHAPE_COLUMNS = ("d_model", "n_layers", "n_heads", "vocab_size", "seq_len")
"""Run-table columns from which :func:`default_shape` builds a model's shape."""


def default_shape(row: Mapping) -> counting.TransformerShape:
    """Shape of one of this library's GPTs from run-table columns (:data:`SHAPE_COLUMNS`).

    Examples
    --------
    >>> s = default_shape(dict(d_model=32, n_layers=2, n_heads=2, vocab_size=64, seq_len=16))
    >>> counting.param_counts(s)["non_embedding"] > 0
    True
    """
    return GPTConfig(d_model=int(row["d_model"]), n_layers=int(row["n_layers"]), n_heads=int(row["n_heads"]),
                     vocab_size=int(row["vocab_size"]), seq_len=int(row["seq_len"])).shape()


def convention_columns(df: pd.DataFrame, convention: str, shape_of: Callable | None = None,
                       tokens_col: str = "D") -> pd.DataFrame:
    """Recount each run's parameters and compute under a FLOP convention.

    Parameters
    ----------
    df : pandas.DataFrame
        Run table; with the default ``shape_of`` it needs the columns
        :data:`SHAPE_COLUMNS`.
    convention : str
        One of :data:`scaling_lib.counting.FLOP_CONVENTIONS`.
    shape_of : callable, optional
        ``shape_of(row) -> counting.TransformerShape``; default
        :func:`default_shape`.
    tokens_col : str
        Training tokens column.

    Returns
    -------
    pandas.DataFrame
        A copy with ``N_eff`` (training FLOPs per token / 6 under the
        convention: ``N`` for ``"6ND"``, ``N_ne`` for ``"6N_ne_D"``, ...) and
        ``C`` (``6 N_eff D``).

    Raises
    ------
    scaling_lib.runs.MissingColumnError
        A shape or tokens column is missing.
    ComputeOptimalError
        An unknown convention.

    Examples
    --------
    >>> row = dict(d_model=32, n_layers=2, n_heads=2, vocab_size=64, seq_len=16, D=1000.0)
    >>> out = convention_columns(pd.DataFrame([row]), "6N_ne_D")
    >>> int(out["N_eff"][0]) == counting.param_counts(default_shape(row))["non_embedding"]
    True
    """
    if convention not in counting.FLOP_CONVENTIONS:
        raise ComputeOptimalError(f"unknown FLOP convention {convention!r}; choose one of {counting.FLOP_CONVENTIONS}")
    shape_of = shape_of or default_shape
    if shape_of is default_shape:
        require_columns(df, SHAPE_COLUMNS, "run table")
    require_columns(df, [tokens_col], "run table")
    per_token = np.array([counting.training_flops(shape_of(row), 1.0, convention)
                          for _, row in df.iterrows()], dtype=float)
    out = df.copy()
    out["N_eff"] = per_token / 6.0
    out["C"] = per_token * out[tokens_col].to_numpy(dtype=float)
    return out


def exponents_by_convention(df: pd.DataFrame, conventions=None, *, target: str, group: str = "budget",
                            tokens_col: str = "D", shape_of: Callable | None = None, n_boot: int = 200,
                            seed: int = 0, level: float = 0.95, resample: str = "residuals",
                            replicates_inside: bool = True) -> pd.DataFrame:
    """Approach 2 refitted with ``N`` and ``C`` recounted under each FLOP convention.

    The same runs and groups each time; only the counting changes
    (:func:`convention_columns`), so the spread of the exponents shows how
    much the convention alone moves them (Porian et al. 2024, Sec. 3.1).

    Parameters
    ----------
    df : pandas.DataFrame
        Run table (see :func:`convention_columns`) with ``group`` and ``target``.
    conventions : sequence of str, optional
        Default: every one of :data:`scaling_lib.counting.FLOP_CONVENTIONS`.
    target : str
        Loss column to minimise (required, keyword only).
    group, tokens_col, shape_of
        As in :func:`scaling_lib.isoflop_optima.isoflop_optima` and :func:`convention_columns`.
    n_boot, seed, level, resample, replicates_inside
        Passed to :func:`scaling_lib.isoflop_optima.isoflop_optima`.

    Returns
    -------
    pandas.DataFrame
        One row per convention: ``convention``, ``a``, ``a_lo``, ``a_hi``,
        ``b``, ``b_lo``, ``b_hi``, ``n_groups``.

    Examples
    --------
    >>> rows = [dict(budget=C, d_model=d, n_layers=2, n_heads=2, vocab_size=1024, seq_len=128)
    ...         for C in (1e12, 1e13, 1e14) for d in (16, 32, 64, 128, 256)]
    >>> df = convention_columns(pd.DataFrame(rows).assign(D=1.0), "6ND")
    >>> df["D"] = df["budget"] / (6 * df["N_eff"])
    >>> df["loss"] = 3 + 0.05 * np.log(df["N_eff"] / np.sqrt(df["budget"] / 120)) ** 2
    >>> t = exponents_by_convention(df.drop(columns=["N_eff", "C"]), ["6ND", "6N_ne_D"], target="loss",
    ...                             n_boot=0)
    >>> bool(t["a"][1] > t["a"][0])
    True
    """
    rows = []
    for conv in conventions or counting.FLOP_CONVENTIONS:
        recount = convention_columns(df, conv, shape_of=shape_of, tokens_col=tokens_col)
        opt = isoflop_optima(recount, group=group, target=target, n_col="N_eff", flops_col="C",
                             n_boot=n_boot, seed=seed, level=level, resample=resample,
                             replicates_inside=replicates_inside)
        ex = optimum_exponents(opt)
        rows.append({"convention": conv,
                     "a": ex.a.exponent, "a_lo": ex.a.exponent_lo, "a_hi": ex.a.exponent_hi,
                     "b": ex.b.exponent, "b_lo": ex.b.exponent_lo, "b_hi": ex.b.exponent_hi,
                     "n_groups": int(len(opt.table))})
    return pd.DataFrame(rows)
