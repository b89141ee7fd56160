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
import csv
import json
import math
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("run_id", "N", "D", "M", "flops")
"""Columns every run table must have."""

OPENLM_TESTBED_ENV = "SCALING_OPENLM_TESTBED"
"""Environment variable naming the published open_lm testbed directory."""

OPENLM_TRAIN_SETS = {"c4_original": "C4", "rpj": "RedPajama", "rw_original": "RefinedWeb"}
"""Readable names of the published testbed's training sets (raw name -> name)."""

OPENLM_NAMED_SHAPES = {"open_lm_1b": (2048, 24, 16), "open_lm_7b": (4096, 32, 32)}
"""(d_model, n_layers, n_heads) of the open_lm shapes that are named, not spelled out."""

OPENLM_SUBSET17 = (
    "hellaswag_zeroshot", "hellaswag", "boolq", "arc_easy", "coqa", "lambada_openai",
    "bigbench_operators", "pubmed_qa_labeled", "bigbench_dyck_languages",
    "bigbench_novel_concepts", "winograd", "bigbench_cs_algorithms", "commonsense_qa",
    "bigbench_qa_wikidata", "copa", "squad", "piqa",
)
"""The 17 downstream tasks Gadre et al. (2024) average as "17-task average error"."""

_SHAPE_RE = re.compile(r"d=(\d+)_l=(\d+)_h=(\d+)")
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
    scaling_lib.runs.MissingColumnError: fit runs lacks column(s) ['loss']; it has ['N']
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


def default_openlm_path(path=None):
    """Where the published open_lm testbed lives.

    Parameters
    ----------
    path : str or path-like, optional
        An explicit location (a notebook parameter); returned as a Path.

    Returns
    -------
    pathlib.Path
        ``path`` if given; else the environment variable
        ``SCALING_OPENLM_TESTBED`` if set; else
        ``<repository root>/../shared/testbeds/gadre2024-openlm``. The path
        is not checked for existence.

    Examples
    --------
    >>> default_openlm_path("/data/exp_data").as_posix()
    '/data/exp_data'
    """
    if path is not None:
        return Path(path)
    env = os.environ.get(OPENLM_TESTBED_ENV)
    if env:
        return Path(env)
    repo_root = Path(__file__).resolve().parents[1]
    return repo_root.parent / "shared" / "testbeds" / "gadre2024-openlm"


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise RunTableError(f"{path}: malformed JSON ({exc})") from exc
    except OSError as exc:
        raise RunTableError(f"{path}: cannot read ({exc})") from exc


def _get(mapping, keys, path):
    """mapping[k0][k1]...; a clear error naming the file and the key path if absent."""
    value = mapping
    for i, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            where = ".".join(keys[: i + 1])
            raise RunTableError(f"{path}: missing key {where!r}")
        value = value[key]
    return value


def _number(value, what, path, *, positive=False):
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise RunTableError(f"{path}: {what} is not a number ({value!r})") from None
    if not math.isfinite(x) or (positive and x <= 0):
        raise RunTableError(f"{path}: {what} must be a {'positive ' if positive else ''}"
                            f"finite number, got {value!r}")
    return x


def eval_set_name(val_data_path):
    """Name of a published evaluation set from its ``val_data`` path.

    The name is the folder holding the shard (``.../c4_val/shard-0.tar`` ->
    ``c4_val``), unless the file name itself contains that folder's name
    (``.../de-en/val_de-en_100.tar`` -> ``val_de-en_100``).

    Examples
    --------
    >>> eval_set_name("training/eval_data/val_tok_mult/paloma_ptb/00000001.tar")
    'paloma_ptb'
    >>> eval_set_name("training/eval_data/val_tok_mult/de-en/val_de-en_100.tar")
    'val_de-en_100'
    """
    p = Path(str(val_data_path))
    stem = p.name.split(".")[0]
    folder = p.parent.name
    if folder and folder in stem:
        return stem
    if not folder:
        raise RunTableError(f"val_data path {val_data_path!r} has no folder to name the set by")
    return folder


def parse_shape(model_name):
    """(d_model, n_layers, n_heads) of an open_lm shape name, or None if unknown.

    Examples
    --------
    >>> parse_shape("scaling/open_lm_configs/d=576_l=24_h=8.json")
    (576, 24, 8)
    >>> parse_shape("open_lm_1b")
    (2048, 24, 16)
    """
    name = Path(str(model_name)).name.removesuffix(".json")
    m = _SHAPE_RE.fullmatch(name)
    if m:
        return tuple(int(g) for g in m.groups())
    return OPENLM_NAMED_SHAPES.get(name)


def _read_eval_metadata(path):
    if not path.is_file():
        raise FileNotFoundError(f"eval metadata not found: {path}")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        need = {"Eval Task", "Random baseline"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise RunTableError(f"{path}: needs columns {sorted(need)}, has {reader.fieldnames}")
        chance_error = {}
        for line, row in enumerate(reader, start=2):
            pct = _number(row["Random baseline"], f"'Random baseline' on line {line}", path)
            if not 0 <= pct <= 100:
                raise RunTableError(f"{path}: 'Random baseline' on line {line} must be a "
                                    f"percentage in [0, 100], got {pct}")
            chance_error[row["Eval Task"].strip()] = 1.0 - pct / 100.0
    return chance_error


def _resolve_exp_data(path):
    path = default_openlm_path(path)
    if not path.exists():
        raise FileNotFoundError(f"open_lm testbed not found: {path} (set the path argument or "
                                f"the {OPENLM_TESTBED_ENV} environment variable)")
    if not (path / "models").is_dir() and (path / "exp_data" / "models").is_dir():
        path = path / "exp_data"  # a clone of the whole public repository
    if not (path / "models").is_dir():
        raise FileNotFoundError(f"open_lm testbed {path}: no models/ directory")
    return path


def _openlm_row(model_path, evals_dir, chance_error, subset):
    spec = _read_json(model_path)
    hp = _get(spec, ["hyperparameters"], model_path)
    run_id = str(spec.get("name") or model_path.stem)
    N = _number(_get(spec, ["hyperparameters", "params"], model_path),
                "hyperparameters.params", model_path, positive=True)
    D = _number(_get(spec, ["hyperparameters", "tokens"], model_path),
                "hyperparameters.tokens", model_path, positive=True)
    mult = _number(_get(spec, ["hyperparameters", "chinchilla_multiplier"], model_path),
                   "hyperparameters.chinchilla_multiplier", model_path, positive=True)
    M = 20.0 * mult
    if abs(D / N / M - 1.0) > 0.01:
        raise RunTableError(f"{model_path}: run {run_id}: tokens / params = {D / N:.4g} but "
                            f"20 x chinchilla_multiplier = {M:.4g}")
    raw_model = str(_get(spec, ["hyperparameters", "model"], model_path))
    model = Path(raw_model).name.removesuffix(".json")
    raw_set = str(spec.get("dataset_name", run_id.split("-")[0]))
    row = {"run_id": run_id, "testbed": "gadre2024-openlm",
           "train_set": OPENLM_TRAIN_SETS.get(raw_set, raw_set), "model": model,
           "N": N, "D": D, "M": M, "flops": 6.0 * N * D}
    shape = parse_shape(raw_model)
    row.update(zip(("d_model", "n_layers", "n_heads"), shape or (np.nan,) * 3))
    if "params_no_embed" in hp:
        n_ne = _number(hp["params_no_embed"], "hyperparameters.params_no_embed", model_path,
                       positive=True)
        row.update(N_ne=n_ne, N_emb=N - n_ne)
        if shape:
            row["vocab_size"] = (N - n_ne) / shape[0]
    row["seed"] = _seed(spec, hp)
    for key, col in (("lr", "lr"), ("warmup", "warmup"), ("global_bs", "batch_size")):
        row[col] = _number(hp[key], f"hyperparameters.{key}", model_path) if key in hp else np.nan
    if "open_lm_version" in spec:
        row["code_version"] = f"open_lm {spec['open_lm_version']}"

    results = _get(spec, ["results"], model_path)
    if not isinstance(results, list) or not results:
        raise RunTableError(f"{model_path}: 'results' must be a non-empty list")
    for i, res in enumerate(results):
        val_data = _get(res, ["val_data"], f"{model_path} results[{i}]")
        if not isinstance(val_data, list) or not val_data:
            raise RunTableError(f"{model_path}: results[{i}].val_data must be a non-empty list")
        name = eval_set_name(val_data[0])
        if f"loss_{name}" in row:
            raise RunTableError(f"{model_path}: evaluation set {name!r} appears twice in results")
        for key, suffix in (("loss", ""), ("loss_sequences_lower_95", "_lo"),
                            ("loss_sequences_upper_95", "_hi")):
            value = _get(res, [key], f"{model_path} results[{i}]")
            row[f"loss_{name}{suffix}"] = _number(value, f"results[{i}].{key}", model_path,
                                                 positive=True)

    eval_path = evals_dir / f"evaluation_{run_id}_heavy.json"
    if not eval_path.is_file():
        raise FileNotFoundError(f"downstream evaluation for run {run_id} not found: {eval_path}")
    icl = _get(_read_json(eval_path), ["eval_metrics", "icl"], eval_path)
    if not isinstance(icl, dict) or not icl:
        raise RunTableError(f"{eval_path}: eval_metrics.icl must be a non-empty mapping")
    errors = {}
    for task, acc in icl.items():
        acc = _number(acc, f"accuracy of task {task!r}", eval_path)
        if not 0.0 <= acc <= 1.0:
            raise RunTableError(f"{eval_path}: accuracy of task {task!r} is {acc}, not in [0, 1]")
        errors[task] = 1.0 - acc
    unknown = sorted(set(errors) - set(chance_error))
    if unknown:
        raise RunTableError(f"{eval_path}: task(s) {unknown} have no row in eval_metadata.csv")
    missing = [t for t in subset if t not in errors]
    if missing:
        raise RunTableError(f"{eval_path}: run {run_id} lacks subset task(s) {missing}")
    row.update({f"err_{t}": e for t, e in errors.items()})
    row["err_avg17"] = float(np.mean([errors[t] for t in subset]))
    row["chance_avg17"] = float(np.mean([chance_error[t] for t in subset]))
    row["err_avg46"] = float(np.mean(list(errors.values())))
    row["chance_avg46"] = float(np.mean([chance_error[t] for t in errors]))
    return row, frozenset(errors)


def _seed(spec, hp):
    if "seed" in hp:
        return int(hp["seed"])
    args = spec.get("open_lm_args") or []
    for flag, value in zip(args, args[1:]):
        if flag == "--seed":
            with contextlib.suppress(ValueError):
                return int(value)
    return np.nan


def load_openlm_testbed(path=None, *, subset=OPENLM_SUBSET17):
    """Read the published open_lm testbed of Gadre et al. (2024) into a run table.

    Parameters
    ----------
    path : str or path-like, optional
        The ``exp_data`` directory (``models/``, ``evals/``,
        ``eval_metadata.csv``) or a clone of the repository holding it;
        default :func:`default_openlm_path`.
    subset : sequence of str, optional
        Tasks averaged into ``err_avg17`` / ``chance_avg17``; default the
        paper's 17-task subset.

    Returns
    -------
    pandas.DataFrame
        One row per ``models/*.json``, sorted by training set, N and M:
        ``N`` = ``params``, ``N_ne`` = ``params_no_embed`` (as published it
        excludes only the input embedding; the untied output head counts as
        non-embedding), ``N_emb`` = ``N - N_ne``, ``vocab_size`` =
        ``N_emb / d_model``, ``D`` = ``tokens``, ``M`` = 20 x
        ``chinchilla_multiplier`` (checked against ``D / N``), ``flops`` =
        ``6 N D``, the shape (``model``, ``d_model``, ``n_layers``,
        ``n_heads``), ``train_set`` (C4, RedPajama, RefinedWeb), ``lr``,
        ``warmup``, ``batch_size`` (the published ``global_bs``), ``seed``,
        ``loss_<set>`` with ``_lo`` / ``_hi`` (the 95% bounds over sequences)
        for each evaluation set, ``err_<task>`` = 1 - accuracy for each
        downstream task, and ``err_avg17`` / ``chance_avg17``, ``err_avg46``
        / ``chance_avg46`` (chance = 1 - random-baseline accuracy).

    Raises
    ------
    FileNotFoundError
        The directory, ``models/``, ``eval_metadata.csv`` or a run's
        ``evals/evaluation_<run>_heavy.json`` is missing.
    RunTableError
        A file is malformed or lacks a field (the file and the field are named).

    Examples
    --------
    >>> df = load_openlm_testbed()  # doctest: +SKIP
    >>> df.groupby("train_set").size().to_dict()  # doctest: +SKIP
    {'C4': 34, 'RedPajama': 35, 'RefinedWeb': 35}
    """
    root = _resolve_exp_data(path)
    chance_error = _read_eval_metadata(root / "eval_metadata.csv")
    model_files = sorted((root / "models").glob("*.json"))
    if not model_files:
        raise RunTableError(f"{root / 'models'}: no model JSON files")
    rows, task_sets = [], {}
    for model_path in model_files:
        row, tasks = _openlm_row(model_path, root / "evals", chance_error, tuple(subset))
        rows.append(row)
        task_sets.setdefault(tasks, row["run_id"])
    if len(task_sets) > 1:
        raise RunTableError(f"{root / 'evals'}: runs were evaluated on different task sets "
                            f"(e.g. {sorted(task_sets.values())}); the all-task average "
                            "would not be comparable")
    df = pd.DataFrame(rows).sort_values(["train_set", "N", "M"], ignore_index=True)
    return validate_runs(df, source=root)


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
