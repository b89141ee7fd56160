"""Training curves and per-run records of a sweep, as tables.

A sweep (:mod:`scaling_lib.sweep`) writes one JSON record per finished run to
``<testbed dir>/runs/<run_id>.json``: the run's configuration, its validation
curve (a list of ``{"step", "tokens", "loss_<set>"}`` points taken at evenly
spaced steps during training), the final evaluations, the training and
evaluation wall times and the device.  This module turns a directory of such
records into two pandas tables:

* :func:`load_curves`: one row per curve point (long format, ready to plot
  with one line per run);
* :func:`load_records`: one row per run with its bookkeeping (wall times,
  training throughput, device, threads, code version, resumption).

Examples
--------
>>> import json, pathlib, tempfile
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> (d / "runs").mkdir()
>>> rec = {"run_id": "r1", "multiplier": 20, "role": "fit",
...        "config": {"tokens": 800, "seed": 0, "model": {"d_model": 8}},
...        "curve": [{"step": 1, "tokens": 400, "loss_en": 5.0},
...                  {"step": 2, "tokens": 800, "loss_en": 4.5}],
...        "train_wall_s": 2.0, "eval_wall_s": 1.0}
>>> _ = (d / "runs" / "r1.json").write_text(json.dumps(rec))
>>> load_curves(d)[["run_id", "tokens", "loss_en"]].values.tolist()
[['r1', 400, 5.0], ['r1', 800, 4.5]]
>>> float(load_records(d)["tokens_per_s"].iloc[0])
400.0
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

CURVE_KEYS = ("step", "tokens")
"""Keys every curve point must have; every other key is a validation loss."""


class CurveError(ValueError):
    """A run record is unreadable or lacks a field this module needs."""


def record_paths(path: str | os.PathLike) -> list[Path]:
    """The run-record files under ``path``, sorted by name.

    Parameters
    ----------
    path : str or path-like
        A testbed directory holding ``runs/``, the ``runs/`` directory itself,
        or a single ``.json`` record.

    Returns
    -------
    list of pathlib.Path
        Possibly empty (a sweep that has not finished a run yet).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.

    Examples
    --------
    >>> import tempfile
    >>> record_paths(tempfile.mkdtemp())
    []
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no run records at {path}")
    if path.is_file():
        return [path]
    folder = path / "runs" if (path / "runs").is_dir() else path
    return sorted(folder.glob("*.json"))


def read_record(path: str | os.PathLike) -> dict:
    """One run record, checked for the fields this module reads.

    Raises
    ------
    CurveError
        The file is not JSON, or it lacks ``run_id``, ``config``, or a
        ``curve`` list whose points all have ``step`` and ``tokens``; the
        message names the file and the field.
    """
    path = Path(path)
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CurveError(f"{path}: not a JSON run record ({exc})") from exc
    if not isinstance(rec, dict):
        raise CurveError(f"{path}: a run record must be a JSON object")
    for key in ("run_id", "config", "curve"):
        if key not in rec:
            raise CurveError(f"{path}: run record has no {key!r} field")
    if not isinstance(rec["curve"], list):
        raise CurveError(f"{path}: 'curve' must be a list of points")
    for i, point in enumerate(rec["curve"]):
        missing = [k for k in CURVE_KEYS if k not in point]
        if missing:
            raise CurveError(f"{path}: curve point {i} of run {rec['run_id']!r} lacks {missing}")
    return rec


def _run_fields(rec: dict) -> dict:
    cfg = rec["config"]
    model = cfg.get("model", {}) if isinstance(cfg, dict) else {}
    return {
        "run_id": str(rec["run_id"]),
        "role": rec.get("role"),
        "multiplier": rec.get("multiplier"),
        "seed": cfg.get("seed") if isinstance(cfg, dict) else None,
        "d_model": model.get("d_model"),
        "n_layers": model.get("n_layers"),
    }


def load_curves(path: str | os.PathLike) -> pd.DataFrame:
    """Validation curves of every run under ``path``, one row per point.

    Parameters
    ----------
    path : str or path-like
        See :func:`record_paths`.

    Returns
    -------
    pandas.DataFrame
        Columns ``run_id, role, multiplier, seed, d_model, n_layers, step,
        tokens``, one column per validation set recorded in the curve (e.g.
        ``loss_en``), and ``frac`` (``tokens`` over the run's budget, 1 at the
        end).  Empty, with those identity columns, when there is no record.

    Raises
    ------
    CurveError
        A record is malformed (see :func:`read_record`).
    """
    rows = []
    for p in record_paths(path):
        rec = read_record(p)
        fields = _run_fields(rec)
        budget = rec["config"].get("tokens")
        for point in rec["curve"]:
            row = {**fields, **point}
            row["frac"] = point["tokens"] / budget if budget else float("nan")
            rows.append(row)
    if not rows:
        return pd.DataFrame(columns=[*_run_fields({"run_id": "", "config": {}}), *CURVE_KEYS, "frac"])
    return pd.DataFrame(rows)


def load_records(path: str | os.PathLike) -> pd.DataFrame:
    """Bookkeeping of every run under ``path``, one row per run.

    Returns
    -------
    pandas.DataFrame
        Columns ``run_id, role, multiplier, seed, d_model, n_layers, tokens``
        (the budget), ``train_wall_s, eval_wall_s``, ``tokens_per_s``
        (training tokens per second of training wall time), ``device``,
        ``torch_threads``, ``resumed_from_step``, ``code_version`` and
        ``finished_at`` (missing fields are left empty).

    Raises
    ------
    CurveError
        A record is malformed, or its training wall time is not positive.

    Examples
    --------
    >>> import tempfile
    >>> load_records(tempfile.mkdtemp()).empty
    True
    """
    rows = []
    for p in record_paths(path):
        rec = read_record(p)
        tokens = rec["config"].get("tokens")
        wall = rec.get("train_wall_s")
        if wall is not None and not wall > 0:
            raise CurveError(f"{p}: train_wall_s must be positive, got {wall!r}")
        rows.append({
            **_run_fields(rec),
            "tokens": tokens,
            "train_wall_s": wall,
            "eval_wall_s": rec.get("eval_wall_s"),
            "tokens_per_s": tokens / wall if tokens and wall else float("nan"),
            "device": rec.get("device"),
            "torch_threads": rec.get("torch_threads"),
            "resumed_from_step": rec.get("resumed_from_step"),
            "code_version": rec.get("code_version"),
            "finished_at": rec.get("finished_at"),
        })
    columns = [*_run_fields({"run_id": "", "config": {}}), "tokens", "train_wall_s", "eval_wall_s",
               "tokens_per_s", "device", "torch_threads", "resumed_from_step", "code_version",
               "finished_at"]
    return pd.DataFrame(rows, columns=columns)
