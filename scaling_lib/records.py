"""Per-run bookkeeping of a sweep (wall time, throughput, device) as a table.

A sweep (:mod:`scaling_lib.training.sweep`) writes one JSON record per finished run to
``<testbed dir>/runs/<run_id>.json``: the run's configuration, its validation
curve (read by :func:`scaling_lib.curves.load_curves`), the final
evaluations, the training and evaluation wall times, the device, the number
of torch threads, the code version and the time it finished.
:func:`load_records` turns a directory of such records into one row per run,
for questions the run table does not answer: how fast did each run train,
how much of its time went into evaluation, was it resumed from a checkpoint.

Examples
--------
>>> import json, pathlib, tempfile
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> (d / "runs").mkdir()
>>> rec = {"run_id": "r1", "multiplier": 20, "role": "fit",
...        "config": {"tokens": 800, "seed": 0},
...        "train_wall_s": 2.0, "eval_wall_s": 1.0, "device": "cpu"}
>>> _ = (d / "runs" / "r1.json").write_text(json.dumps(rec))
>>> load_records(d)[["run_id", "tokens_per_s", "device"]].values.tolist()
[['r1', 400.0, 'cpu']]
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

COLUMNS = ("run_id", "role", "multiplier", "seed", "tokens", "train_wall_s", "eval_wall_s",
           "tokens_per_s", "device", "torch_threads", "resumed_from_step", "code_version",
           "finished_at")
"""Columns of :func:`load_records`, in order."""


class RecordError(ValueError):
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
    """One run record, checked for the fields :func:`load_records` needs.

    Raises
    ------
    RecordError
        The file is not a JSON object; it lacks ``run_id`` or ``config``
        (with the token budget ``tokens``); or its ``train_wall_s`` is not a
        positive number.  The message names the file and the field.
    """
    path = Path(path)
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: not a JSON run record ({exc})") from exc
    if not isinstance(rec, dict):
        raise RecordError(f"{path}: a run record must be a JSON object")
    for key in ("run_id", "config"):
        if key not in rec:
            raise RecordError(f"{path}: run record has no {key!r} field")
    if not isinstance(rec["config"], dict) or "tokens" not in rec["config"]:
        raise RecordError(f"{path}: run record's 'config' has no 'tokens' (the token budget)")
    wall = rec.get("train_wall_s")
    if wall is not None and not (isinstance(wall, (int, float)) and wall > 0):
        raise RecordError(f"{path}: train_wall_s must be a positive number, got {wall!r}")
    return rec


def load_records(path: str | os.PathLike) -> pd.DataFrame:
    """Bookkeeping of every run under ``path``, one row per run.

    Parameters
    ----------
    path : str or path-like
        See :func:`record_paths`.

    Returns
    -------
    pandas.DataFrame
        The :data:`COLUMNS`: ``tokens`` is the run's budget,
        ``tokens_per_s`` the budget over the training wall time (evaluation
        excluded); fields missing from a record are left empty.  No rows when
        there is no record yet.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    RecordError
        A record is malformed (see :func:`read_record`).

    Examples
    --------
    >>> import tempfile
    >>> load_records(tempfile.mkdtemp()).empty
    True
    """
    rows = []
    for p in record_paths(path):
        rec = read_record(p)
        cfg = rec["config"]
        tokens, wall = cfg["tokens"], rec.get("train_wall_s")
        rows.append({
            "run_id": str(rec["run_id"]),
            "role": rec.get("role"),
            "multiplier": rec.get("multiplier"),
            "seed": cfg.get("seed"),
            "tokens": tokens,
            "train_wall_s": wall,
            "eval_wall_s": rec.get("eval_wall_s"),
            "tokens_per_s": tokens / wall if wall else float("nan"),
            "device": rec.get("device"),
            "torch_threads": rec.get("torch_threads"),
            "resumed_from_step": rec.get("resumed_from_step"),
            "code_version": rec.get("code_version"),
            "finished_at": rec.get("finished_at"),
        })
    return pd.DataFrame(rows, columns=list(COLUMNS))
