"""Laws beyond Gadre et al. (2024): direct downstream laws, Kaplan's law, a loss-curve law.

Each law is a :class:`scaling_lib.laws.Law` and is fitted with :func:`scaling_lib.fit.fit`.

Laws
----
DOWNSTREAM_COMPUTE
    Krajewski et al. (2025), at a fixed token multiplier:
    :math:`-\\log(\\mathrm{acc}) = A\\, C^{-\\alpha}`, with accuracy ``1 - err``
    (:func:`neg_log_accuracy`); input ``C`` (training FLOPs), fitted on logs.
DOWNSTREAM_ND
    Krajewski et al. (2025), across multipliers:
    :math:`-\\log(\\mathrm{acc}) = A N^{-\\alpha} + B D^{-\\beta}`.
KAPLAN
    Kaplan et al. (2020) eq. (1.5):
    :math:`L(N, D) = [(N_c/N)^{\\alpha_N/\\alpha_D} + D_c/D]^{\\alpha_D}`; no irreducible
    loss. :data:`KAPLAN_PUBLISHED` holds the paper's fit and :func:`kaplan_starts` data-driven
    starts (the law has no linear parameter, so a fixed grid starts far from the optimum).
LR_ANNEALING
    Tissue et al. (2024): the loss at step ``s`` of one run,
    :math:`L(s) = L_0 + A S_1^{-\\alpha} - C S_2`, with the forward area ``S1`` and the
    annealing area ``S2`` of the learning-rate schedule (:func:`schedule_areas`).

The schedule of our runs (:func:`lr_multipliers`) is the one of
``scaling_lib.training.train.lr_lambda``, written again here without torch.
"""

from __future__ import annotations

import math

import numpy as np

from scaling_lib._solver import bounded_lstsq
from scaling_lib.laws import INF, Law

__all__ = ["DOWNSTREAM_COMPUTE", "DOWNSTREAM_ND", "KAPLAN", "KAPLAN_PUBLISHED", "LR_ANNEALING",
           "BEYOND_LAWS", "neg_log_accuracy", "error_from_neg_log_accuracy", "kaplan_starts",
           "lr_multipliers", "schedule_areas", "config_schedule"]


# --- direct downstream laws (Krajewski et al. 2025) -------------------------------------------


def neg_log_accuracy(err):
    """``-log(1 - err)``: the quantity the direct downstream laws describe.

    Examples
    --------
    >>> round(float(neg_log_accuracy(0.75)), 4)
    1.3863
    """
    err = np.asarray(err, dtype=float)
    if np.any((err < 0) | (err >= 1)):
        raise ValueError("a top-1 error must lie in [0, 1) to take -log(1 - err)")
    return -np.log1p(-err)


def error_from_neg_log_accuracy(q):
    """The error ``1 - exp(-q)`` of a predicted ``q = -log(accuracy)`` (inverse of :func:`neg_log_accuracy`).

    Examples
    --------
    >>> float(error_from_neg_log_accuracy(neg_log_accuracy(0.3)))
    0.3
    """
    return -np.expm1(-np.asarray(q, dtype=float))


def _down_compute(p, x):
    A, alpha = p
    return A * np.exp(-alpha * np.log(x["C"]))


DOWNSTREAM_COMPUTE = Law(
    name="downstream_compute",
    param_names=("A", "alpha"),
    inputs=("C",),
    function=_down_compute,
    bounds=((0.0, INF), (-2.0, 2.0)),
    start_grid=(("alpha", (0.01, 0.05, 0.2)),),
    latex_template=r"-\log \mathrm{{acc}} = {A}\, C^{{-{alpha}}}",
    symbols=("A", r"\alpha"),
    linear_params=("A",),
    basis=lambda p, x: np.exp(-p[1] * np.log(x["C"]))[:, None],
    fit_space="log",
    description="Krajewski et al. 2025, fixed M: -log(accuracy) = A C^-alpha, fitted on logs",
)


def _down_nd(p, x):
    A, alpha, B, beta = p
    return A * np.exp(-alpha * np.log(x["N"])) + B * np.exp(-beta * np.log(x["D"]))


def _down_nd_basis(p, x):
    return np.column_stack([np.exp(-p[1] * np.log(x["N"])), np.exp(-p[3] * np.log(x["D"]))])


DOWNSTREAM_ND = Law(
    name="downstream_nd",
    param_names=("A", "alpha", "B", "beta"),
    inputs=("N", "D"),
    function=_down_nd,
    bounds=((0.0, INF), (1e-4, 2.0), (0.0, INF), (1e-4, 2.0)),
    start_grid=(("alpha", (0.02, 0.1, 0.3)), ("beta", (0.02, 0.1, 0.3))),
    latex_template=r"-\log \mathrm{{acc}} = \frac{{{A}}}{{N^{{{alpha}}}}} + \frac{{{B}}}{{D^{{{beta}}}}}",
    symbols=("A", r"\alpha", "B", r"\beta"),
    linear_params=("A", "B"),
    basis=_down_nd_basis,
    description="Krajewski et al. 2025, across M: -log(accuracy) = A N^-alpha + B D^-beta",
)


# --- Kaplan et al. (2020) eq. (1.5) -------------------------------------------------------------


def _kaplan(p, x):
    n_c, d_c, a_n, a_d = p
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        inner = np.exp((a_n / a_d) * (math.log(n_c) - np.log(x["N"]))) + d_c / x["D"]
        return np.exp(a_d * np.log(inner))


KAPLAN = Law(
    name="kaplan",
    param_names=("N_c", "D_c", "alpha_N", "alpha_D"),
    inputs=("N", "D"),
    function=_kaplan,
    bounds=((1.0, INF), (1.0, INF), (1e-3, 2.0), (1e-3, 2.0)),
    start_grid=(("N_c", (1e10, 1e14)), ("D_c", (1e10, 1e14)), ("alpha_N", (0.05, 0.1, 0.3)),
                ("alpha_D", (0.05, 0.1, 0.3))),
    latex_template=(r"\left[\left(\frac{{{N_c}}}{{N}}\right)^{{{alpha_N}/{alpha_D}}}"
                    r" + \frac{{{D_c}}}{{D}}\right]^{{{alpha_D}}}"),
    symbols=("N_c", "D_c", r"\alpha_N", r"\alpha_D"),
    description="Kaplan et al. 2020 eq. (1.5): [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D",
)

KAPLAN_PUBLISHED = {"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095}
"""Kaplan et al. (2020), Sec. 1.2 and Table 2: non-embedding ``N``, ``D`` in tokens, loss in nats."""


def kaplan_starts(N, D, loss, alpha_N=(0.05, 0.1, 0.2, 0.4), alpha_D=(0.05, 0.1, 0.2, 0.4)) -> list:
    """Start points of :data:`KAPLAN` with ``N_c`` and ``D_c`` solved for each pair of exponents.

    For fixed exponents, ``L^(1 / alpha_D) = N_c^p N^-p + D_c / D`` with ``p = alpha_N / alpha_D``
    is linear in ``N_c^p`` and ``D_c``: a bounded linear least squares gives both.

    Returns
    -------
    list of dict
        One complete start per pair of exponents whose solve is finite (``fit(..., starts=...)``).

    Examples
    --------
    >>> N, D = np.array([1e6, 1e7, 1e6, 1e7]), np.array([1e8, 1e8, 1e9, 1e9])
    >>> L = KAPLAN(KAPLAN_PUBLISHED, N=N, D=D)
    >>> starts = kaplan_starts(N, D, L)
    >>> len(starts), sorted(starts[0])
    (16, ['D_c', 'N_c', 'alpha_D', 'alpha_N'])
    """
    N, D, loss = (np.asarray(v, dtype=float) for v in (N, D, loss))
    starts = []
    for a_n in alpha_N:
        for a_d in alpha_D:
            p = a_n / a_d
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                y = np.exp(np.log(loss) / a_d)
                X = np.column_stack([np.exp(-p * np.log(N)), 1.0 / D])
                scale = np.abs(X).max(axis=0)
            if not (np.all(np.isfinite(y)) and np.all(np.isfinite(X)) and np.all(scale > 0)):
                continue
            w = 1.0 / y  # relative residuals
            coef = bounded_lstsq(X / scale * w[:, None], y * w, np.zeros(2), np.full(2, np.inf)) / scale
            if np.all(coef > 0) and np.all(np.isfinite(coef)):
                n_c = float(np.exp(np.log(coef[0]) / p))
                if math.isfinite(n_c) and n_c >= 1.0 and coef[1] >= 1.0:
                    starts.append({"N_c": n_c, "D_c": float(coef[1]), "alpha_N": a_n, "alpha_D": a_d})
    return starts


# --- the learning-rate schedule and the loss-curve law (Tissue et al. 2024) --------------------


def lr_multipliers(total_steps: int, warmup_steps: int, min_lr_ratio: float) -> np.ndarray:
    """Multiplier of the peak learning rate at optimiser steps ``0 .. total_steps - 1``.

    Linear warmup ``(k + 1) / warmup`` for ``k < warmup``, then a cosine from 1 to
    ``min_lr_ratio`` reached at the last step: ``scaling_lib.training.train.lr_lambda``.

    Examples
    --------
    >>> np.round(lr_multipliers(10, 2, 0.1)[[0, 1, 2, 9]], 3).tolist()
    [0.5, 1.0, 1.0, 0.1]
    """
    if total_steps < 1 or warmup_steps < 0:
        raise ValueError(f"need total_steps >= 1 and warmup_steps >= 0, got {total_steps}, {warmup_steps}")
    k = np.arange(int(total_steps), dtype=float)
    span = max(1, total_steps - 1 - warmup_steps)
    progress = np.clip((k - warmup_steps) / span, None, 1.0)
    cosine = min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + np.cos(np.pi * progress))
    return np.where(k < warmup_steps, (k + 1) / max(warmup_steps, 1), cosine)


def schedule_areas(lrs, steps, decay: float = 0.999, warmup_steps: int = 0):
    """Forward area ``S1`` and annealing area ``S2`` after ``steps`` optimiser steps.

    ``S1(s) = sum_{i <= s} eta_i``; ``S2(s) = sum_{i <= s} m_i`` with the momentum
    ``m_i = decay * m_{i-1} + (eta_{i-1} - eta_i)`` (Tissue et al. 2024). Our choice: the
    warmup counts towards ``S1`` only, the momentum starts at the end of the warmup
    (``m_i = 0`` before), so a rising learning rate gives no negative annealing area.

    Parameters
    ----------
    lrs : array
        Learning rate of every step ``0 .. T - 1``.
    steps : array of int
        Steps done (1 .. T) at which to read the areas.
    decay : float
        ``lambda`` of the momentum, in ``[0, 1)``.
    warmup_steps : int

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``S1`` and ``S2`` at each of ``steps``.

    Examples
    --------
    >>> s1, s2 = schedule_areas([1.0, 1.0, 0.5, 0.5], [1, 3, 4], decay=0.5)
    >>> s1.tolist(), s2.tolist()
    ([1.0, 2.5, 3.0], [0.0, 0.5, 0.75])
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must lie in [0, 1), got {decay!r}")
    lrs = np.asarray(lrs, dtype=float)
    steps = np.asarray(steps, dtype=int)
    if steps.size and (steps.min() < 1 or steps.max() > lrs.size):
        raise ValueError(f"steps must lie in 1 .. {lrs.size} (the schedule's length)")
    drop = np.r_[0.0, lrs[:-1] - lrs[1:]]
    drop[: int(warmup_steps) + 1] = 0.0
    m = np.empty_like(lrs)
    acc = 0.0
    for i, d in enumerate(drop):
        acc = decay * acc + d
        m[i] = acc
    return np.cumsum(lrs)[steps - 1], np.cumsum(m)[steps - 1]


def config_schedule(config: dict, tokens: int | None = None) -> tuple:
    """Learning rates of a run record's ``config`` and its warmup: ``(lrs, warmup_steps)``.

    ``tokens`` replaces the budget (a run of the same shape trained for fewer tokens); the
    warmup is kept, at most half the steps, as the testbeds set it (:mod:`scaling_lib.testbeds`).

    Examples
    --------
    >>> cfg = {"tokens": 4096 * 10, "batch_size": 32, "lr": 1e-3, "warmup_steps": 2,
    ...        "min_lr_ratio": 0.1, "model": {"seq_len": 128}}
    >>> lrs, warm = config_schedule(cfg)
    >>> len(lrs), warm, round(float(lrs[-1]), 6)
    (10, 2, 0.0001)
    """
    per_step = int(config["batch_size"]) * int(config["model"]["seq_len"])
    tokens = int(config["tokens"] if tokens is None else tokens)
    total = -(-tokens // per_step)
    warm = int(config["warmup_steps"])
    if tokens != int(config["tokens"]):
        warm = min(warm, max(1, total // 2))
    mult = lr_multipliers(total, warm, float(config.get("min_lr_ratio", 0.1)))
    return float(config["lr"]) * mult, warm


def _annealing(p, x):
    L0, A, alpha, C = p
    return L0 + A * np.exp(-alpha * np.log(x["S1"])) - C * x["S2"]


def _annealing_basis(p, x):
    return np.column_stack([np.ones_like(x["S1"]), np.exp(-p[2] * np.log(x["S1"])), -x["S2"]])


LR_ANNEALING = Law(
    name="lr_annealing",
    param_names=("L0", "A", "alpha", "C"),
    inputs=("S1", "S2"),
    function=_annealing,
    bounds=((0.0, INF), (0.0, INF), (1e-3, 3.0), (0.0, INF)),
    start_grid=(("alpha", (0.05, 0.15, 0.3, 0.5, 0.8, 1.2)),),
    latex_template=r"{L0} + {A}\, S_1^{{-{alpha}}} - {C}\, S_2",
    symbols=("L_0", "A", r"\alpha", "C"),
    linear_params=("L0", "A", "C"),
    basis=_annealing_basis,
    description="Tissue et al. 2024: L(s) = L0 + A S1^-alpha - C S2 (forward and annealing areas)",
)

BEYOND_LAWS = (DOWNSTREAM_COMPUTE, DOWNSTREAM_ND, KAPLAN, LR_ANNEALING)
"""Every law defined here."""
