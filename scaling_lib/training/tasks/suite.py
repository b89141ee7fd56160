"""The cached task suite: task (de)serialisation, the suite file and its build.

:func:`build_suite` builds the project tasks and the BIG-bench ones once and
caches them as ``<cache>/tasks/suite.json``, keyed by the SHA-256 of the
held-out texts and of the tokenizer (and by :data:`BUILDER_VERSION`), so the
suite is rebuilt only when one of them changes. :func:`save_suite` and
:func:`load_suite` write and read that file; :func:`task_from_dict` is the
inverse of :meth:`~.items.Task.to_dict`; :func:`suite_table` is the suite's
card and :func:`main` the command line.

Examples
--------
>>> import tempfile
>>> t = Task("toy", "toy", 0.5, "total", (Item("", ("x y.", "y x."), 1),))
>>> path = save_suite(Path(tempfile.mkdtemp()) / "suite.json", [t], {"seed": 0})
>>> load_suite(path) == ([t], {"seed": 0})
True
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

from scaling_lib.training.tasks.bigbench import BIGBENCH_TASKS, read_bigbench_tasks
from scaling_lib.training.tasks.generators import build_project_tasks
from scaling_lib.training.tasks.items import Item, Task

SUITE_FORMAT = 1
BUILDER_VERSION = 3
"""Bumped whenever task construction changes, so cached suites are rebuilt."""


def task_from_dict(d: dict) -> Task:
    """Rebuild a :class:`Task` from :meth:`Task.to_dict` output.

    Examples
    --------
    >>> t = Task("toy", "toy", 0.5, "total", (Item("", ("x y.", "y x."), 1),))
    >>> task_from_dict(t.to_dict()) == t
    True
    """
    missing = {"name", "description", "chance", "scoring", "items"} - set(d)
    if missing:
        raise ValueError(f"task record lacks fields {sorted(missing)}")
    items = tuple(Item(it["context"], tuple(it["options"]), int(it["answer"]))
                  for it in d["items"])
    return Task(d["name"], d["description"], float(d["chance"]), d["scoring"], items,
                d.get("source", "project"))


def suite_table(suite: Sequence[Task]):
    """One row per task: name, source, scoring, items, options, chance accuracy and error.

    Examples
    --------
    >>> t = Task("toy", "toy", 0.5, "total", (Item("", ("x.", "y."), 0),))
    >>> suite_table([t])[["task", "n_items", "chance_error"]].to_dict("records")
    [{'task': 'toy', 'n_items': 1, 'chance_error': 0.5}]
    """
    import pandas as pd
    return pd.DataFrame([{
        "task": t.name, "source": t.source, "scoring": t.scoring, "n_items": len(t),
        "n_options": "/".join(str(k) for k in t.n_options),
        "chance_accuracy": round(t.chance, 4), "chance_error": round(1 - t.chance, 4),
        "description": t.description} for t in suite])


def _sha256_texts(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def save_suite(path, tasks: Sequence[Task], meta: dict | None = None) -> Path:
    """Write tasks as one JSON file atomically (temp file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"format": SUITE_FORMAT, "meta": dict(meta or {}),
           "tasks": [t.to_dict() for t in tasks]}
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=0), encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_suite(path) -> tuple[list[Task], dict]:
    """Read a suite JSON written by :func:`save_suite`; returns ``(tasks, meta)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"task suite file not found: {path}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"task suite file {path} is not valid JSON: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") != SUITE_FORMAT or "tasks" not in doc:
        raise ValueError(f"task suite file {path} has an unknown format "
                         f"(expected format {SUITE_FORMAT} with a 'tasks' list)")
    return [task_from_dict(t) for t in doc["tasks"]], doc.get("meta", {})


def build_suite(cache_dir=None, *, n_items: int = 1000, seed: int = 0,
                bigbench: bool = True, texts: Sequence[str] | None = None,
                tokenizer=None, bigbench_tarball=None, rebuild: bool = False) -> list[Task]:
    """The full task suite, built once and cached as ``<cache>/tasks/suite.json``.

    Parameters
    ----------
    cache_dir : path, optional
        Corpus cache (default: ``tokenizer.default_cache_dir()``).
    n_items : int
        Items per task (project tasks get at most this many; BIG-bench tasks
        are subsampled to it).
    seed : int
    bigbench : bool
        Also read :data:`BIGBENCH_TASKS` from the BIG-bench sdist.
    texts, tokenizer, bigbench_tarball : optional
        Inputs; by default ``corpora.load_texts("heldout_en")``,
        ``tokenizer.load_tokenizer()`` and ``corpora.bigbench_tarball()``.
    rebuild : bool
        Ignore an existing cache file.

    Returns
    -------
    list of Task
        Project tasks first, then BIG-bench ones.

    Examples
    --------
    >>> suite = build_suite()  # doctest: +SKIP
    >>> [t.name for t in suite if t.source == "bigbench"]  # doctest: +SKIP
    ['social_iqa', 'hyperbaton']
    """
    from scaling_lib.training import tokenizer as tokenizer_mod
    cache = tokenizer_mod.resolve_cache_dir(cache_dir)
    if texts is None:
        from scaling_lib.training import corpora
        texts = corpora.load_texts("heldout_en", cache_dir=cache_dir)
    if tokenizer is None:
        tokenizer = tokenizer_mod.load_tokenizer(cache_dir=cache_dir)
    texts = list(texts)
    meta = {"builder": BUILDER_VERSION, "n_items": int(n_items), "seed": int(seed), "bigbench": bool(bigbench),
            "heldout_sha256": _sha256_texts(texts),
            "tokenizer_sha256": hashlib.sha256(tokenizer.to_str().encode()).hexdigest()}
    path = cache / "tasks" / "suite.json"
    if path.is_file() and not rebuild:
        try:
            tasks, old = load_suite(path)
        except ValueError:
            tasks, old = None, None
        if old == meta:
            return tasks
    tasks = build_project_tasks(texts, tokenizer, n_items=n_items, seed=seed)
    if bigbench:
        if bigbench_tarball is None:
            from scaling_lib.training import corpora
            bigbench_tarball = corpora.bigbench_tarball(cache_dir=cache_dir)
        tasks += read_bigbench_tasks(bigbench_tarball, BIGBENCH_TASKS, max_items=n_items,
                                     seed=seed)
    save_suite(path, tasks, meta)
    return tasks


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m scaling_lib.training.tasks [--cache DIR] [--rebuild]``: build and print the suite."""
    import argparse
    ap = argparse.ArgumentParser(prog="python -m scaling_lib.training.tasks",
                                 description="Build the downstream task suite and print its card.")
    ap.add_argument("--cache", default=None, help="corpus cache directory")
    ap.add_argument("--n-items", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rebuild", action="store_true", help="ignore a cached suite")
    ap.add_argument("--chance-csv", default=None, metavar="PATH",
                    help="also write each task's chance error (task, chance_error) to PATH, the "
                         "table the analysis chapters read (data/tasks_chance.csv)")
    args = ap.parse_args(argv)
    suite = build_suite(args.cache, n_items=args.n_items, seed=args.seed, rebuild=args.rebuild)
    table = suite_table(suite)
    print(table.drop(columns="description").to_markdown(index=False))
    if args.chance_csv:
        chance = table[["task", "chance_error"]]
        chance.to_csv(args.chance_csv, index=False, float_format="%.6g")
        print(f"wrote {len(chance)} chance levels to {args.chance_csv}")
