"""The run-table schema's checks: the required columns, the one column check, validation.

:mod:`scaling_lib.runs` re-exports everything here (``runs.validate_runs``,
``runs.require_columns``, ``runs.MissingColumnError``, ...); this module exists so that the
loaders of :mod:`scaling_lib.runs` and :mod:`scaling_lib.openlm` share the checks without
importing each other.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("run_id", "N", "D", "M", "flops")
"""Columns every run table must have."""

_CONSISTENCY_RTOL = 0.05


class RunTableError(ValueError):
    """A run table or one of its source files is missing data or malformed."""


class MissingColumnError(RunTableError):
    """A table lacks a column that a function needs; the message names the table, the column(s)
    and the columns it has.  The one error every module raises for a missing column."""


# ----------------------------------------------------------------------------- validation


def require_columns(df, columns, what="run table"):
    """Raise :class:`MissingColumnError` unless ``df`` has every one of ``columns``.

    Parameters
    ----------
    df : pandas.DataFrame or mapping
        The table (a mapping's keys count as its columns).
    columns : iterable of str or None
        Needed columns; ``None`` entries are ignored (an optional column left unset).
    what : str
        The table's name in the message (a file, "fit runs", "training curves", ...).

    Examples
    --------
    >>> require_columns(pd.DataFrame({"N": [1.0]}), ["N", "loss"], "fit runs")
    Traceback (most recent call last):
    ...
    scaling_lib.schema.MissingColumnError: fit runs lacks column(s) ['loss']; it has ['N']
    """
    have = list(df.columns) if isinstance(df, pd.DataFrame) else list(df)
    missing = [c for c in columns if c is not None and c not in have]
    if missing:
        raise MissingColumnError(f"{what} lacks column(s) {missing}; it has {have}")


def validate_runs(df, source="<run table>"):
    """Check a run table against the schema and return it unchanged.

    Parameters
    ----------
    df : pandas.DataFrame
        The run table.
    source : str or path-like, optional
        Where the table came from; named in every error message.

    Returns
    -------
    pandas.DataFrame
        ``df`` itself, so calls can be chained.

    Raises
    ------
    RunTableError
        A required column is missing; ``N``, ``D``, ``M`` or ``flops`` is NaN,
        infinite or non-positive for some run (the run ids are named); a
        ``run_id`` occurs twice; or ``M`` / ``flops`` disagree with ``D / N``
        / ``6 N D`` by more than 5% (a unit mix-up such as M given as the
        Chinchilla multiplier).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"run_id": ["a"], "N": [1e6], "D": [2e7], "M": [20.0], "flops": [1.2e14]})
    >>> validate_runs(df, source="example").shape
    (1, 5)
    """
    if not isinstance(df, pd.DataFrame):
        raise RunTableError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise MissingColumnError(f"{source}: missing required column(s) {missing}; "
                                 f"a run table needs {list(REQUIRED_COLUMNS)}")
    if df["run_id"].isna().any():
        rows = list(np.flatnonzero(df["run_id"].isna()))
        raise RunTableError(f"{source}: empty run_id in row(s) {rows}")
    ids = df["run_id"].astype(str)
    dup = sorted(set(ids[ids.duplicated()]))
    if dup:
        raise RunTableError(f"{source}: duplicate run_id {dup}")
    for col in ("N", "D", "M", "flops"):
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values <= 0)
        if bad.any():
            raise RunTableError(f"{source}: column {col!r} must be a positive finite number; "
                                f"bad value(s) for run_id {list(ids[bad])}: {list(df[col][bad])}")
    N, D = df["N"].to_numpy(float), df["D"].to_numpy(float)
    for col, expected in (("M", D / N), ("flops", 6.0 * N * D)):
        rel = np.abs(df[col].to_numpy(float) / expected - 1.0)
        bad = rel > _CONSISTENCY_RTOL
        if bad.any():
            rule = "D / N" if col == "M" else "6 N D"
            raise RunTableError(f"{source}: column {col!r} disagrees with {rule} by more than "
                                f"{_CONSISTENCY_RTOL:.0%} for run_id {list(ids[bad])}")
    return df
