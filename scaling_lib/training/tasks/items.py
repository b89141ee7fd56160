"""The data types of the task suite: :class:`Item` and :class:`Task`.

An :class:`Item` is a context and two or more options, exactly one of them
right; a :class:`Task` is a named tuple of items with its scoring rule and its
chance level (:func:`chance_level`). :func:`_task_rng` gives every task its own
random generator, seeded by the suite seed and the task's name, so that adding
or changing one task leaves the others as they were.

Examples
--------
>>> item = Item(context="It", options=(" is", " are"), answer=0)
>>> task = Task("toy", "toy agreement", chance_level([item]), "total", (item,))
>>> task.chance, task.n_options, task.source
(0.5, (2,), 'project')
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Sequence

import numpy as np

SCORINGS = ("total", "normalised")
SOURCES = ("project", "bigbench")


@dataclasses.dataclass(frozen=True)
class Item:
    """One multiple-choice item.

    Parameters
    ----------
    context : str
        Text the options continue (may be empty: the option is then a whole
        sentence scored after the document-start token).
    options : tuple of str
        Candidate continuations; each is scored as the text right after
        ``context`` (so it usually starts with a space).
    answer : int
        Index of the right option.

    Examples
    --------
    >>> Item("It", (" is", " are"), 0).options[0]
    ' is'
    """

    context: str
    options: tuple[str, ...]
    answer: int

    def __post_init__(self):
        object.__setattr__(self, "options", tuple(self.options))
        if len(self.options) < 2:
            raise ValueError(f"an item needs at least two options, got {len(self.options)}")
        if not 0 <= int(self.answer) < len(self.options):
            raise ValueError(f"answer index {self.answer} out of range for "
                             f"{len(self.options)} options")
        if len(set(self.options)) != len(self.options):
            raise ValueError(f"duplicate options in item: {self.options!r}")


@dataclasses.dataclass(frozen=True)
class Task:
    """A named multiple-choice task.

    Parameters
    ----------
    name : str
        Short identifier; run-table column ``err_<name>``.
    description : str
        One line saying how the task is built.
    chance : float
        Expected *accuracy* of uniform guessing, the mean of ``1 / n_options``
        over items (error at chance is ``1 - chance``).
    scoring : {"total", "normalised"}
        Sum of option log-likelihoods, or the per-token mean.
    items : tuple of Item
    source : {"project", "bigbench"}
        Project-built tasks enter the suite average; BIG-bench ones do not.

    Examples
    --------
    >>> t = Task("toy", "toy", 0.5, "total", (Item("", ("A b.", "B a."), 0),))
    >>> len(t), t.source
    (1, 'project')
    """

    name: str
    description: str
    chance: float
    scoring: str
    items: tuple[Item, ...]
    source: str = "project"

    def __post_init__(self):
        object.__setattr__(self, "items", tuple(self.items))
        if self.scoring not in SCORINGS:
            raise ValueError(f"task {self.name!r}: scoring must be one of {SCORINGS}, "
                             f"got {self.scoring!r}")
        if self.source not in SOURCES:
            raise ValueError(f"task {self.name!r}: source must be one of {SOURCES}, "
                             f"got {self.source!r}")
        if not 0.0 < self.chance < 1.0:
            raise ValueError(f"task {self.name!r}: chance must lie in (0, 1), got {self.chance}")

    def __len__(self) -> int:
        return len(self.items)

    @property
    def n_options(self) -> tuple[int, ...]:
        """Sorted distinct option counts over the items."""
        return tuple(sorted({len(it.options) for it in self.items}))

    def to_dict(self) -> dict:
        """JSON-able form (see :func:`~scaling_lib.training.tasks.suite.task_from_dict`)."""
        return {"name": self.name, "description": self.description,
                "chance": self.chance, "scoring": self.scoring, "source": self.source,
                "items": [{"context": it.context, "options": list(it.options),
                           "answer": int(it.answer)} for it in self.items]}


def chance_level(items: Sequence[Item]) -> float:
    """Expected accuracy of uniform guessing: mean of ``1/len(options)``.

    Examples
    --------
    >>> chance_level([Item("", ("a", "b"), 0), Item("", ("a", "b", "c", "d"), 0)])
    0.375
    """
    if not items:
        raise ValueError("chance level of an empty item list is undefined")
    return float(np.mean([1.0 / len(it.options) for it in items]))


def _task_rng(seed: int, name: str) -> np.random.Generator:
    """The random generator of task ``name``, seeded by ``(seed, crc32(name))``."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])
