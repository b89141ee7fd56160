"""Downstream multiple-choice tasks for tiny language models.

A :class:`Task` is a named list of :class:`Item` objects. Each item is a
context string and two or more option strings; exactly one option is right.
A model is scored on an item by the log-likelihood it gives each option after
the context (see :mod:`scaling_lib.training.evals`), either in total (``"total"``) or
divided by the option's token count (``"normalised"``).

Two kinds of tasks live here:

* **Project-built tasks** (``source="project"``), made deterministically from
  held-out English documents that no model was trained or validated on. Each
  has about 1,000 items, the right answer is spread evenly over the option
  positions, and distractor words are matched to the answer on frequency
  (neighbours in the frequency ranking of the held-out pool) and on token
  count. The eight tasks are listed in :data:`PROJECT_TASKS`.
* **BIG-bench tasks** (``source="bigbench"``), read straight from the JSON in
  the ``bigbench==1.0.0`` source distribution (``social_iqa``,
  ``hyperbaton``). Models of a few million parameters stay at chance on them;
  they are reported to show that honestly and kept out of averages.

The whole suite is cached as one JSON file next to the corpora, keyed by the
SHA-256 of the held-out texts and of the tokenizer, so it is rebuilt only when
one of them changes.

Modules
-------
:mod:`~scaling_lib.training.tasks.items`
    :class:`Item`, :class:`Task` and :func:`chance_level`.
:mod:`~scaling_lib.training.tasks.sentences`
    Sentences and word statistics of held-out text (:class:`WordPool`).
:mod:`~scaling_lib.training.tasks.generators`
    The project's task builders (:func:`build_project_tasks`).
:mod:`~scaling_lib.training.tasks.bigbench`
    BIG-bench tasks from the sdist (:func:`read_bigbench_tasks`).
:mod:`~scaling_lib.training.tasks.suite`
    Task (de)serialisation and the cached suite (:func:`save_suite`,
    :func:`load_suite`, :func:`build_suite`, :func:`suite_table`).

This package re-exports their public names, so ``tasks.build_suite`` and
``from scaling_lib.training.tasks import Item, Task`` work as they always did.

Examples
--------
>>> item = Item(context="The cat sat on the", options=(" mat", " sky"), answer=0)
>>> task = Task(name="toy", description="toy cloze", chance=0.5,
...             scoring="normalised", items=(item,))
>>> task.n_options
(2,)
"""

from __future__ import annotations

from scaling_lib.training.tasks.bigbench import BIGBENCH_TASKS, read_bigbench_tasks
from scaling_lib.training.tasks.generators import AGREEMENT_PAIRS, ARTICLE_PAIRS, PROJECT_TASKS, build_project_tasks
from scaling_lib.training.tasks.items import SCORINGS, SOURCES, Item, Task, chance_level
from scaling_lib.training.tasks.sentences import (Sentence, WordPool, clean_sentence, extract_sentences,
                                                  split_sentences, word_counts)
from scaling_lib.training.tasks.suite import (BUILDER_VERSION, SUITE_FORMAT, build_suite, load_suite, main,
                                              save_suite, suite_table, task_from_dict)

# Private, but tests/test_evals.py builds a task with it as ``tasks._swap_adjacent``.
from scaling_lib.training.tasks.generators import _swap_adjacent  # noqa: F401

__all__ = [
    # items
    "SCORINGS", "SOURCES", "Item", "Task", "chance_level",
    # sentences
    "Sentence", "split_sentences", "clean_sentence", "extract_sentences", "word_counts", "WordPool",
    # generators
    "AGREEMENT_PAIRS", "ARTICLE_PAIRS", "PROJECT_TASKS", "build_project_tasks",
    # bigbench
    "BIGBENCH_TASKS", "read_bigbench_tasks",
    # suite
    "SUITE_FORMAT", "BUILDER_VERSION", "task_from_dict", "save_suite", "load_suite", "build_suite",
    "suite_table", "main",
]
