"""Run records: the one reader of the per-run JSON a sweep writes, and its bookkeeping table.

A sweep (:mod:`scaling_lib.training.sweep`) writes one JSON record per finished run to
``<testbed dir>/runs/<run_id>.json``: the run's configuration, its validation
curve (:func:`curve_table`, read for every run by
:func:`scaling_lib.curves.load_curves`), the final
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


def read_record(path: str | os.PathLike, *, need=("run_id",)) -> dict:
    """One run record as a dict: the library's only reader of run-record JSON.

    Parameters
    ----------
    path : str or path-like
        A ``runs/<run_id>.json`` file.
    need : iterable of str, keyword-only
        Top-level fields the caller needs.

    Raises
    ------
    RecordError
        The file is not a JSON object or lacks one of ``need``; the message
        names the file and the field.

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "r1.json"
    >>> _ = f.write_text(json.dumps({"run_id": "r1"}))
    >>> read_record(f)["run_id"]
    'r1'
    >>> read_record(f, need=("curve",))
    Traceback (most recent call last):
    ...
    scaling_lib.records.RecordError: .../r1.json: run record has no 'curve' field
    """
    path = Path(path)
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: not a JSON run record ({exc})") from exc
    if not isinstance(rec, dict):
        raise RecordError(f"{path}: a run record must be a JSON object")
    for key in need:
        if key not in rec:
            raise RecordError(f"{path}: run record has no {key!r} field")
    return rec


def curve_table(path: str | os.PathLike, target: str, record: dict | None = None) -> pd.DataFrame:
    """The validation curve stored in a run record.

    Parameters
    ----------
    path : str or path-like
        The record (``runs/<run_id>.json``), with a ``curve`` list of
        ``{step, tokens, <target>, ...}`` points.
    target : str
        The curve's loss field to read (for example ``"loss_en"``).
    record : dict, optional
        The record already read from ``path`` (it is then not read again).

    Returns
    -------
    pandas.DataFrame
        Columns ``step``, ``tokens`` and ``target`` as floats, sorted by step.

    Raises
    ------
    RecordError
        Not a JSON object, no ``curve`` list, an empty curve, points without
        ``target``, non-finite values or non-positive token counts; the message
        names the file.

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "r1.json"
    >>> pts = [{"step": 2, "tokens": 20, "loss_en": 4.0}, {"step": 1, "tokens": 10, "loss_en": 5.0}]
    >>> _ = f.write_text(json.dumps({"run_id": "r1", "curve": pts}))
    >>> curve_table(f, "loss_en")["loss_en"].tolist()
    [5.0, 4.0]
    """
    path = Path(path)
    rec = read_record(path, need=()) if record is None else record
    curve = rec.get("curve")
    if not isinstance(curve, list):
        raise RecordError(f"{path}: the run record has no 'curve' list")
    if not curve or not all(isinstance(point, dict) for point in curve):
        raise RecordError(f"{path}: the run record's curve is empty or not a list of points")
    table = pd.DataFrame(curve)
    missing = [c for c in ("step", "tokens", target) if c not in table.columns]
    if missing:
        raise RecordError(f"{path}: curve points lack key(s) {missing}")
    try:
        table = table[["step", "tokens", target]].astype(float)
    except (TypeError, ValueError) as exc:
        raise RecordError(f"{path}: curve points are not numeric ({exc})") from None
    values = table.to_numpy()
    if not (values == values).all() or not abs(values).max() < float("inf") or (table["tokens"] <= 0).any():
        raise RecordError(f"{path}: curve has non-finite values or non-positive token counts")
    return table.sort_values("step").reset_index(drop=True)


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
        A record is not a JSON object, lacks ``run_id`` or ``config`` (with
        the token budget ``tokens``), or its ``train_wall_s`` is not a
        positive number.

    Examples
    --------
    >>> import tempfile
    >>> load_records(tempfile.mkdtemp()).empty
    True
    """
    rows = []
    for p in record_paths(path):
        rec = read_record(p, need=("run_id", "config"))
        if not isinstance(rec["config"], dict) or "tokens" not in rec["config"]:
            raise RecordError(f"{p}: run record's 'config' has no 'tokens' (the token budget)")
        wall = rec.get("train_wall_s")
        if wall is not None and not (isinstance(wall, (int, float)) and wall > 0):
            raise RecordError(f"{p}: train_wall_s must be a positive number, got {wall!r}")
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
