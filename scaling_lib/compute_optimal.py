"""Compute-optimal allocation: one import for the modules that find ``N*(C)`` and ``D*(C)``.

Given runs that trade model size ``N`` against training tokens ``D`` at fixed
compute ``C``, find the loss-optimal ``N*(C)`` and ``D*(C)`` and the exponents
``a`` and ``b`` of ``N* ~ C^a`` and ``D* ~ C^b`` (Hoffmann et al. 2022, Sec. 3).
This module re-exports the public names of:

:mod:`scaling_lib.optimum_fits`
    :func:`fit_parabola` (an optimum: the vertex of a parabola),
    :func:`fit_power_trend` (how optima move: ``y = coef x^exponent``) and
    :class:`ComputeOptimalError`.
:mod:`scaling_lib.isoflop_optima` (approach 2)
    :func:`isoflop_optima`: a parabola of the loss in ``ln N`` per IsoFLOP
    group, bootstrap intervals; :func:`optimum_exponents`: ``a`` and ``b``.
:mod:`scaling_lib.flop_conventions`
    :func:`convention_columns` recounts ``N`` and ``C`` under a FLOP
    convention (Porian et al. 2024); :func:`exponents_by_convention` refits
    approach 2 under each.
:mod:`scaling_lib.approach3`
    :func:`approach3`: the Chinchilla law fitted to all runs (Huber loss of
    log residuals) and :func:`chinchilla_optimum`, its analytic optimum.
:mod:`scaling_lib.lr_optimum`
    :func:`optimal_lr`: the loss-optimal learning rate per model size.
:mod:`scaling_lib.published`
    :data:`PORIAN_EXPONENTS`, :func:`published_exponents`: published values.

Approach 1 (the envelope of training curves) is
:func:`scaling_lib.curves.envelope`; the over-training advisor (training plus
inference cost) :mod:`scaling_lib.advisor`; the IsoFLOP sweep design
:mod:`scaling_lib.isoflop`.

Examples
--------
>>> from scaling_lib import compute_optimal as co
>>> round(co.chinchilla_optimum({"E": 1.7, "A": 406.4, "alpha": 0.34, "B": 410.7, "beta": 0.28}, 1e21).a, 3)
0.452
"""

from __future__ import annotations

from scaling_lib.approach3 import Approach3, ChinchillaOptimum, approach3, chinchilla_optimum
from scaling_lib.flop_conventions import SHAPE_COLUMNS, convention_columns, default_shape, exponents_by_convention
from scaling_lib.isoflop_optima import IsoFLOPOptima, OptimumExponents, isoflop_optima, optimum_exponents
from scaling_lib.lr_optimum import optimal_lr
from scaling_lib.optimum_fits import (ComputeOptimalError, Line, Parabola, PowerTrend, fit_parabola,
                                      fit_power_trend)
from scaling_lib.published import PORIAN_EXPONENTS, PublishedExponent, published_exponents

__all__ = [
    "Approach3", "ChinchillaOptimum", "ComputeOptimalError", "IsoFLOPOptima", "Line", "OptimumExponents",
    "PORIAN_EXPONENTS", "Parabola", "PowerTrend", "PublishedExponent", "SHAPE_COLUMNS", "approach3",
    "chinchilla_optimum", "convention_columns", "default_shape", "exponents_by_convention", "fit_parabola",
    "fit_power_trend", "isoflop_optima", "optimal_lr", "optimum_exponents", "published_exponents",
]

