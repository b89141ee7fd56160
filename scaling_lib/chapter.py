"""Checks a chapter runs right after its parameters cell: one clear error instead of a traceback.

Every chapter takes a run table and names the columns it needs through papermill parameters
(``runs_path``, ``loss_col``, ``error_col``, ...).  :func:`run_table` loads the table and checks,
before any fitting starts, that

* the table can be read at all (the message names the ``runs_path`` parameter and the file);
* every column the chapter needs is there (the message names the *parameter* that chose the
  column, the column, and the columns of that kind the table does have);
* a chosen training set exists, when the table holds several (``train_set`` is optional: a table
  without that column is one training set);
* there are enough runs for the chapter's fits.

Anything wrong raises :class:`ChapterInputError`, a ``ValueError`` whose message is one or two
lines; ``scripts/rerun_chapter.sh`` prints exactly that message when a rerun fails.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"run_id": ["a", "b"], "N": [1e6, 2e6], "D": [2e7, 4e7], "M": [20.0, 20.0],
...                    "flops": [1.2e14, 4.8e14], "loss_en": [4.0, 3.8]})
>>> check_table(df, {"loss_col": "loss_en"}, source="runs.csv")["loss_en"].tolist()
[4.0, 3.8]
>>> check_table(df, {"loss_col": "loss_xx"}, source="runs.csv")
Traceback (most recent call last):
...
scaling_lib.chapter.ChapterInputError: parameter loss_col = 'loss_xx': runs.csv has no column 'loss_xx'; its loss columns: loss_en
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from scaling_lib import runs
from scaling_lib.prose import short

__all__ = ["ChapterInputError", "check_table", "run_table", "check_choice"]


class ChapterInputError(ValueError):
    """A chapter's parameters or run table cannot give the chapter what it needs.

    The message names the parameter (or column) at fault in one or two lines.
    """


def _kind(column: str) -> str:
    """The prefix of a column's kind: ``loss_c4_val`` -> ``loss``, ``err_avg`` -> ``err``."""
    return column.split("_", 1)[0] if "_" in column else column


def _listing(df: pd.DataFrame, column: str) -> str:
    kind = _kind(column)
    same = [c for c in df.columns if c.startswith(kind + "_") and not c.endswith(("_lo", "_hi"))]
    names = {"loss": "loss", "err": "error", "bpb": "bits-per-byte", "chance": "chance"}
    label = names.get(kind, kind)
    if not same:
        return f"it has no {label} column at all"
    shown = ", ".join(same[:12]) + (f" (+{len(same) - 12} more)" if len(same) > 12 else "")
    return f"its {label} columns: {shown}"


def check_choice(parameter: str, value, allowed, what: str) -> None:
    """Raise :class:`ChapterInputError` unless ``value`` is one of ``allowed``.

    Examples
    --------
    >>> check_choice("objective", "l2", ("lsq", "huber_log"), "fit objective")
    Traceback (most recent call last):
    ...
    scaling_lib.chapter.ChapterInputError: parameter objective = 'l2': not a known fit objective; choose from lsq, huber_log
    """
    allowed = list(allowed)
    if value not in allowed:
        raise ChapterInputError(f"parameter {parameter} = {value!r}: not a known {what}; "
                                f"choose from {', '.join(map(str, allowed))}")


def check_table(df: pd.DataFrame, columns: Mapping, *, source: str, train_set=None,
                min_runs: int = 1) -> pd.DataFrame:
    """Check a loaded run table for a chapter; returns the runs of the chosen training set.

    Parameters
    ----------
    df : pandas.DataFrame
        The run table.
    columns : mapping
        Parameter name -> the column it names, for every column the chapter needs.
        A list value names several columns (for example ``published_cols``).
    source : str
        The table's file or folder, for messages.
    train_set : str or None, keyword-only
        The chosen training set, when the table has a ``train_set`` column; ``None`` keeps the
        first in sorted order.  Ignored when the column is absent.
    min_runs : int, keyword-only
        Fewest runs the chapter's fits need.

    Returns
    -------
    pandas.DataFrame
        The runs of the training set (all runs when there is no ``train_set`` column),
        index reset.

    Raises
    ------
    ChapterInputError
    """
    for parameter, value in columns.items():
        for column in ([value] if isinstance(value, str) else list(value)):
            if column not in df.columns:
                raise ChapterInputError(f"parameter {parameter} = {column!r}: {source} has no column "
                                        f"{column!r}; {_listing(df, column)}")
    if "train_set" in df.columns:
        sets = sorted(df["train_set"].dropna().astype(str).unique())
        chosen = sets[0] if train_set is None and sets else train_set
        if chosen not in sets:
            raise ChapterInputError(f"parameter train_set = {train_set!r}: {source} holds training sets "
                                    f"{', '.join(sets) or 'none'}")
        df = df[df["train_set"].astype(str) == chosen]
    if len(df) < min_runs:
        raise ChapterInputError(f"{source}: {len(df)} runs, and this chapter's fits need at least {min_runs}")
    return df.reset_index(drop=True)


def run_table(runs_path, columns: Mapping, *, train_set=None, min_runs: int = 1,
              parameter: str = "runs_path") -> pd.DataFrame:
    """Load a chapter's run table and :func:`check_table` it; one error names what is wrong.

    Parameters
    ----------
    runs_path : str or path-like
        A run-table CSV, a testbed folder or a published ``exp_data/`` folder
        (:func:`scaling_lib.runs.load_runs`).
    columns, train_set, min_runs
        As in :func:`check_table`.
    parameter : str, keyword-only
        The name of the parameter that gave ``runs_path``.

    Returns
    -------
    pandas.DataFrame
        The whole table as loaded (the chapter selects its training set itself); the checks
        ran on the runs of the chosen training set.  A table without the optional ``model``
        column gets one that names each size by its parameter count (``"1.1M"``), since the
        chapters' tables have a row per model.

    Raises
    ------
    ChapterInputError
        The table cannot be read, lacks a column, has no such training set, or too few runs.
    """
    try:
        table = runs.load_runs(runs_path)
    except (FileNotFoundError, runs.RunTableError) as exc:
        raise ChapterInputError(f"parameter {parameter} = {str(runs_path)!r}: {exc}") from None
    check_table(table, columns, source=str(runs_path), train_set=train_set, min_runs=min_runs)
    if "model" not in table.columns:
        table = table.assign(model=[short(n) for n in table["N"]])
    return table
