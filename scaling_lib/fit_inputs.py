"""The data a fit takes: its errors and the checks and conversion of a run table into arrays.

:func:`scaling_lib.fit.fit` calls :func:`_prepare` on its input; the objectives and the two
errors are re-exported by :mod:`scaling_lib.fit`, where callers use them.

Examples
--------
>>> import pandas as pd
>>> from scaling_lib import laws
>>> df = pd.DataFrame({"x": [1e10, 1e11, 1e12, 1e13], "loss": [4.0, 3.5, 3.2, 3.0]})
>>> mapping, x, y, labels = _prepare(laws.POWER, df, "loss", None, "lsq", "run_id")
>>> mapping, labels.tolist()
({'x': 'x'}, ['row 0', 'row 1', 'row 2', 'row 3'])
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from scaling_lib.laws import Law
from scaling_lib.runs import require_columns

OBJECTIVES = ("lsq", "huber_log")
"""Objectives accepted by :func:`fit`."""


class FitFailedError(RuntimeError):
    """A prediction or interval asked of a fit that converged from no start."""


class FitInputError(ValueError):
    """Data that cannot be fitted: non-numeric, NaN or non-positive values, too few runs, an unknown input.

    A missing column raises :class:`scaling_lib.runs.MissingColumnError` instead.
    """


# --- data preparation ------------------------------------------------------------------------


def _run_labels(data, run_id_column: str) -> np.ndarray:
    if isinstance(data, pd.DataFrame) and run_id_column in data.columns:
        return data[run_id_column].astype(str).to_numpy()
    if isinstance(data, pd.DataFrame):
        return np.array([f"row {i}" for i in data.index])
    n = len(next(iter(data.values()))) if len(data) else 0
    return np.array([f"row {i}" for i in range(n)])


def _numeric(data, column: str, role: str) -> np.ndarray:
    """A column (present: see ``require_columns``) as a flat float array."""
    try:
        return np.asarray(data[column], dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise FitInputError(f"column {column!r} ({role}) is not numeric: {exc}") from None


def _check_values(values: np.ndarray, column: str, labels: np.ndarray, positive: bool) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise FitInputError(
            f"column {column!r} has NaN or infinite values for run(s) {list(labels[bad][:5])}"
        )
    if positive:
        bad = values <= 0
        if bad.any():
            raise FitInputError(
                f"column {column!r} must be positive; non-positive values for run(s) {list(labels[bad][:5])}"
            )


def _prepare(law: Law, data, target: str, inputs: Mapping | None, objective: str, run_id_column: str):
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {OBJECTIVES}")
    mapping = {name: name for name in law.inputs}
    for key, column in (inputs or {}).items():
        if key not in mapping:
            raise FitInputError(f"law {law.name} has no input {key!r}; its inputs are {law.inputs}")
        mapping[key] = column
    require_columns(data, [*mapping.values(), target],
                    f"fit data of law {law.name} (inputs {mapping}, target {target!r})")
    labels = _run_labels(data, run_id_column)
    x = {}
    for name, column in mapping.items():
        values = _numeric(data, column, f"input {name!r} of law {law.name}")
        _check_values(values, column, labels, positive=True)
        x[name] = values
    y = _numeric(data, target, "fit target")
    positive_target = objective == "huber_log" or law.fit_space == "log"
    _check_values(y, target, labels, positive=positive_target)
    n, k = y.size, law.n_params
    if n < k:
        raise FitInputError(
            f"fewer data points ({n}) than parameters ({k}: {', '.join(law.param_names)}) for law {law.name}"
        )
    return mapping, x, y, labels
