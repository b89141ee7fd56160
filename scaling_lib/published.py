"""Published compute-optimal exponents, kept as citable data for comparison with our fits.

:data:`PORIAN_EXPONENTS` lists the exponent ``a`` of ``N* ~ C^a`` reported by
Porian et al. (2024, Fig. 1; ``porian2024resolving`` in ``book/references.bib``)
as they correct Kaplan et al.'s setup one factor at a time, each step named as in
their released IsoFLOP points (:mod:`scaling_lib.published_isoflop` reads the
values from here). These are facts from the literature, not results of this
library.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class PublishedExponent:
    """One published estimate of the exponent ``a`` in ``N* ~ C^a``.

    Attributes
    ----------
    step : str
        Short name of the experimental setting.
    a : float
        Point estimate of ``a``.
    dataset : str
    description : str
    source : str
        Citation key in ``book/references.bib``.
    experiment : str
        The step's name in the ``experiment`` column of Porian et al.'s released points.

    Examples
    --------
    >>> PORIAN_EXPONENTS[-1].step, PORIAN_EXPONENTS[-1].a
    ('tuned', 0.497)
    """

    step: str
    a: float
    dataset: str
    description: str
    source: str
    experiment: str


PORIAN_EXPONENTS = (
    PublishedExponent("kaplan_reproduction", 0.835, "RefinedWeb",
                      "Kaplan et al.'s setup reproduced: FLOPs without the output head, long "
                      "fixed warmup, one set of hyperparameters for every size",
                      "porian2024resolving", "Reproducing Kaplan et al."),
    PublishedExponent("count_head", 0.706, "RefinedWeb",
                      "as above, counting the output layer's FLOPs in the compute budget",
                      "porian2024resolving", "Counting last layer FLOPs"),
    PublishedExponent("fix_warmup", 0.602, "RefinedWeb",
                      "as above, with a warmup no longer than the smallest runs allow",
                      "porian2024resolving", "Correcting warmup"),
    PublishedExponent("cosine_decay", 0.571, "RefinedWeb",
                      "as above, with a cosine learning-rate decay fitted to each run's length",
                      "porian2024resolving", "Cosine decay"),
    PublishedExponent("tuned", 0.497, "RefinedWeb",
                      "the corrected counting and warmup, no learning-rate decay, and learning "
                      "rate, batch size and AdamW beta2 tuned per model size (agrees with "
                      "Hoffmann et al.'s a ~ 0.5)",
                      "porian2024resolving", "Optimizer tuning (no decay)"),
)
"""Porian et al. (2024), Fig. 1: the compute-optimal exponent ``a`` on RefinedWeb for their
five steps, as the factors they identify are corrected one after the other. Published facts
for comparison, not results of this library; the OpenWebText2 values are not recorded."""


def published_exponents() -> pd.DataFrame:
    """:data:`PORIAN_EXPONENTS` as a table (one row per setting, in order).

    Returns
    -------
    pandas.DataFrame
        ``step``, ``a``, ``dataset``, ``description``, ``source``, ``experiment``.

    Examples
    --------
    >>> published_exponents()["a"].round(3).tolist()
    [0.835, 0.706, 0.602, 0.571, 0.497]
    """
    return pd.DataFrame([vars(p) for p in PORIAN_EXPONENTS])
