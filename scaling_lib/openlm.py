"""The published open_lm testbed of Gadre et al. (2024) as a run table.

:func:`load_openlm_testbed` reads the ``exp_data/`` folder of the public ``mlfoundations/scaling``
repository (one JSON file per model in ``models/``, one per evaluation in ``evals/``, and
``eval_metadata.csv``) into the schema of :mod:`scaling_lib.runs`;
:func:`default_openlm_path` says where it is looked for.  :func:`scaling_lib.runs.load_runs`
calls it for such a folder, and :mod:`scaling_lib.runs` re-exports both.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from scaling_lib.schema import RunTableError, validate_runs

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
