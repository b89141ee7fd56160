"""BIG-bench multiple-choice tasks, read from the ``bigbench==1.0.0`` sdist.

:func:`read_bigbench_tasks` reads ``task.json`` of each task in
:data:`BIGBENCH_TASKS` straight from the source tarball (which
:func:`scaling_lib.training.corpora.bigbench_tarball` downloads), never
installing it, and turns every example into an :class:`~.items.Item` in
BIG-bench's JSON-task prompt format. Models of a few million parameters stay at
chance on these tasks; they are reported, and kept out of suite averages.

Examples
--------
>>> BIGBENCH_TASKS
('social_iqa', 'hyperbaton')
>>> _bigbench_items({"examples": [{"input": "Sky?", "target_scores": {"blue": 1, "green": 0}}]}, "toy")
[Item(context='Q: Sky?\\nA:', options=(' blue', ' green'), answer=0)]
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Sequence

import numpy as np

from scaling_lib.training.tasks.items import Item, Task, _task_rng, chance_level

BIGBENCH_TASKS = ("social_iqa", "hyperbaton")
"""The BIG-bench tasks of the suite, by their path under ``benchmark_tasks/``."""


def _bigbench_items(record: dict, name: str) -> list[Item]:
    examples = record.get("examples")
    if not isinstance(examples, list) or not examples:
        raise ValueError(f"BIG-bench task {name!r}: no 'examples' list in task.json")
    append = bool(record.get("append_choices_to_input", False))
    items = []
    for i, ex in enumerate(examples):
        scores = ex.get("target_scores")
        if not isinstance(scores, dict) or len(scores) < 2 or "input" not in ex:
            raise ValueError(f"BIG-bench task {name!r}, example {i}: not a multiple-choice "
                             "example with 'input' and 'target_scores'")
        opts = list(scores)
        best = [j for j, o in enumerate(opts) if scores[o] == max(scores.values())]
        if len(best) != 1:
            raise ValueError(f"BIG-bench task {name!r}, example {i}: no single right option")
        ctx = "Q: " + str(ex["input"]).strip()
        if append:
            ctx += "".join(f"\n  choice: {o}" for o in opts)
        ctx += "\nA:"
        items.append(Item(ctx, tuple(" " + o for o in opts), best[0]))
    return items


def read_bigbench_tasks(tarball, names: Sequence[str] = BIGBENCH_TASKS,
                        max_items: int = 1000, seed: int = 0) -> list[Task]:
    """Read multiple-choice BIG-bench JSON tasks from the ``bigbench`` sdist.

    The prompt follows BIG-bench's JSON-task format: ``"Q: <input>"``, the
    choices appended when the task asks for it, then ``"\\nA:"``; each option
    is a target string. Tasks with more than ``max_items`` examples are
    subsampled deterministically. Scoring is length-normalised unless every
    option of the task is a single character.

    Examples
    --------
    >>> read_bigbench_tasks("bigbench-1.0.0.tar.gz", ["hyperbaton"])  # doctest: +SKIP
    """
    path = Path(tarball)
    if not path.is_file():
        raise FileNotFoundError(f"BIG-bench sdist tarball not found: {path} "
                                "(corpora.bigbench_tarball() downloads it)")
    wanted = {f"/benchmark_tasks/{n}/task.json": n for n in names}
    found: dict[str, dict] = {}
    try:
        with tarfile.open(path, "r:*") as tf:
            for m in tf:
                key = next((k for k in wanted if m.name.endswith(k)), None)
                if key is None or not m.isfile():
                    continue
                found[wanted[key]] = json.load(tf.extractfile(m))
                if len(found) == len(wanted):
                    break
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ValueError(f"cannot read BIG-bench tarball {path}: {e}") from e
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"BIG-bench tasks {missing} not found in {path}")
    tasks = []
    for name in names:
        rec = found[name]
        items = _bigbench_items(rec, name)
        if len(items) > max_items:
            keep = np.sort(_task_rng(seed, name).choice(len(items), max_items, replace=False))
            items = [items[i] for i in keep]
        single = all(len(o.strip()) == 1 for it in items for o in it.options)
        desc = f"BIG-bench {name}: {str(rec.get('description', '')).strip()}"
        tasks.append(Task(name, desc, chance_level(items),
                          "total" if single else "normalised", tuple(items), "bigbench"))
    return tasks
