"""The run table: one row per trained model, loadable in one call into pandas.

Schema
------
Every run table is a :class:`pandas.DataFrame` with one row per run.

Required columns

========== ============================================================
run_id     unique run identifier (str)
N          total parameters, embeddings and output head included
D          training tokens
M          token multiplier ``D / N`` (20 is "Chinchilla optimal")
flops      training compute ``6 N D``
========== ============================================================

Optional columns (present when known)

* configuration: ``testbed``, ``train_set``, ``model`` (shape name),
  ``d_model``, ``n_layers``, ``n_heads``, ``vocab_size``, ``seq_len``,
  ``N_ne`` (non-embedding parameters), ``N_emb``, ``seed``, ``epochs``,
  ``lr``, ``batch_size``, ``warmup``;
* next-token loss on an evaluation set ``<set>`` in nats per token:
  ``loss_<set>`` with a 95% interval ``loss_<set>_lo`` / ``loss_<set>_hi``,
  and ``bpb_<set>`` (bits per byte);
* downstream top-1 error in ``[0, 1]``: ``err_<task>``; averages
  ``err_avg`` / ``chance_avg`` (the project's own suite), ``err_avg17`` /
  ``chance_avg17`` and ``err_avg46`` / ``chance_avg46`` (the published
  open_lm testbed: the paper's 17-task subset and all 46 tasks). A
  ``chance_*`` column is the top-1 *error* of random guessing averaged over
  the same tasks;
* provenance: ``wall_s``, ``device``, ``code_version``.

Sources
-------
:func:`load_runs` reads a run-table CSV, a testbed directory holding
``runs.csv``, or a published open_lm ``exp_data`` directory (``models/`` and
``evals/``, the layout of the public ``mlfoundations/scaling`` repository),
which :func:`load_openlm_testbed` turns into the schema above.
:func:`append_run` adds one row to a CSV atomically, so a sweep can resume.

Every problem with the input raises :class:`RunTableError` (or
:class:`FileNotFoundError` for a missing path) naming the file and the run.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

import pandas as pd

from scaling_lib.openlm import (OPENLM_NAMED_SHAPES, OPENLM_SUBSET17, OPENLM_TESTBED_ENV,  # noqa: F401
                                OPENLM_TRAIN_SETS, default_openlm_path, eval_set_name, load_openlm_testbed,
                                parse_shape)
from scaling_lib.schema import (REQUIRED_COLUMNS, MissingColumnError, RunTableError, require_columns,  # noqa: F401
                                validate_runs)

__all__ = ["REQUIRED_COLUMNS", "MissingColumnError", "RunTableError", "require_columns", "validate_runs",
           "load_runs", "append_run", "load_openlm_testbed", "default_openlm_path", "eval_set_name", "parse_shape",
           "OPENLM_NAMED_SHAPES", "OPENLM_SUBSET17", "OPENLM_TESTBED_ENV", "OPENLM_TRAIN_SETS"]


# ----------------------------------------------------------------------------- loading


def load_runs(path):
    """Load a run table in one call.

    Parameters
    ----------
    path : str or path-like
        A run-table CSV file; a directory holding ``runs.csv`` (a testbed
        written by a sweep); or a published open_lm ``exp_data`` directory
        with ``models/`` and ``evals/`` (see :func:`load_openlm_testbed`).

    Returns
    -------
    pandas.DataFrame
        The validated run table (see the module docstring for its schema).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    RunTableError
        The directory is of no known layout, or the table fails
        :func:`validate_runs`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "runs.csv").write_text("run_id,N,D,M,flops\\nr0,1e6,2e7,20,1.2e14\\n")
    >>> load_runs(d)["M"].tolist()
    [20.0]
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"run table not found: {path}")
    if path.is_dir():
        if (path / "runs.csv").is_file():
            return _read_csv(path / "runs.csv")
        if (path / "models").is_dir() or (path / "exp_data").is_dir():
            return load_openlm_testbed(path)
        raise RunTableError(f"{path}: a run-table directory needs runs.csv, or models/ and "
                            "evals/ (a published open_lm exp_data directory)")
    return _read_csv(path)


def _read_csv(path):
    try:
        df = pd.read_csv(path, dtype={"run_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise RunTableError(f"{path}: not a readable CSV run table ({exc})") from exc
    validate_runs(df, source=path)
    return df.astype({c: float for c in REQUIRED_COLUMNS[1:]})


# ----------------------------------------------------------------------------- appending


@contextlib.contextmanager
def _locked(directory):
    """An exclusive advisory lock on ``directory`` (POSIX), so parallel appends do not race.

    Yields True while the lock is held, False where there is no ``fcntl``
    (non-POSIX: atomic replace only).  The lock dies with its process.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX: atomic replace only
        yield False
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield True
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def append_run(path, row, *, on_duplicate="skip"):
    """Append one run to a run-table CSV atomically.

    The table is rewritten to a temporary file in the same directory
    (``.<name>.<pid>.<random>.tmp``) which then replaces the old file
    (``os.replace``), so a crash never leaves a half-written table; an
    advisory lock on the directory serialises concurrent writers.  The
    temporary file is removed on any failure, and one left by a writer that
    was killed is removed by the next append (under the lock no other writer
    can own it).  The table gets the process's normal file mode (``0o666``
    less the umask, e.g. ``0o644``), as any file the process creates.

    Parameters
    ----------
    path : str or path-like
        The CSV file; created if absent.
    row : dict
        Column -> value for the new run; must hold the required columns.
        Columns not yet in the table are added (empty for older runs).
    on_duplicate : {"skip", "error"}, keyword-only
        What to do if ``row["run_id"]`` is already in the table.

    Returns
    -------
    bool
        True if the row was written, False if it was skipped as a duplicate.

    Raises
    ------
    RunTableError
        The row lacks a required column or fails :func:`validate_runs`, a
        loss column (``loss*``, ``train_loss``, ``bpb_*``) of the row is NaN
        or infinite, or the run is a duplicate and ``on_duplicate="error"``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "runs.csv"
    >>> r = {"run_id": "r0", "N": 1e6, "D": 2e7, "M": 20.0, "flops": 1.2e14}
    >>> append_run(p, r), append_run(p, r)
    (True, False)
    """
    if on_duplicate not in ("skip", "error"):
        raise ValueError(f"on_duplicate must be 'skip' or 'error', got {on_duplicate!r}")
    path = Path(path)
    row = dict(row)
    missing = [c for c in REQUIRED_COLUMNS if c not in row]
    if missing:
        raise RunTableError(f"{path}: new run {row.get('run_id', '?')!r} lacks required "
                            f"column(s) {missing}")
    run_id = str(row["run_id"])
    bad = {}
    for col, value in row.items():
        if col.startswith(("loss", "train_loss", "bpb_")):
            try:
                ok = value is None or math.isfinite(float(value))
            except (TypeError, ValueError):
                ok = False
            if not ok:
                bad[col] = value
    if bad:
        raise RunTableError(f"{path}: new run {run_id!r} has non-finite loss column(s) {bad}; "
                            "a diverged or broken run is not recorded")
    new = pd.DataFrame([row])
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.parent) as exclusive:
        if exclusive:  # temporary files of writers killed mid-append
            for stale in path.parent.glob(f".{path.name}.*.tmp"):
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
        if path.exists():
            table = _read_csv(path)
            if run_id in set(table["run_id"].astype(str)):
                if on_duplicate == "error":
                    raise RunTableError(f"{path}: run_id {run_id!r} is already in the table")
                return False
            table = pd.concat([table, new], ignore_index=True)
        else:
            table = new
        validate_runs(table, source=f"{path} (after appending {run_id!r})")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        try:
            # os.open with 0o666 lets the umask set the mode (tempfile.mkstemp would give 0o600)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "w", newline="") as fh:
                table.to_csv(fh, index=False)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return True
