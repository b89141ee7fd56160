"""Tests of scaling_lib.advisor: closed-form optima and the effect of inference tokens."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from scaling_lib import advisor, compute_optimal, laws

EQUAL = {"E": 1.5, "A": 200.0, "alpha": 0.3, "B": 800.0, "beta": 0.3}
UNEQUAL = {"E": 1.8, "A": 300.0, "alpha": 0.32, "B": 900.0, "beta": 0.28}


def test_no_inference_equal_exponents_closed_form():
    # minimise 6ND subject to A N^-a + B D^-a = t: u = v = t/2, so N = (2A/t)^(1/a), D = (2B/t)^(1/a)
    target = 2.3
    t = target - EQUAL["E"]
    best = advisor.advise(laws.CHINCHILLA, EQUAL, target, 0.0)
    assert_allclose(best.N, (2 * EQUAL["A"] / t) ** (1 / 0.3), rtol=1e-5)
    assert_allclose(best.D, (2 * EQUAL["B"] / t) ** (1 / 0.3), rtol=1e-5)
    assert best.inference_flops == 0.0 and not best.at_bound


def test_no_inference_returns_the_compute_optimal_point():
    C = 3e15
    opt = compute_optimal.chinchilla_optimum(UNEQUAL, C)
    best = advisor.advise(laws.CHINCHILLA, UNEQUAL, float(opt.loss[0]), 0.0)
    assert_allclose([best.N, best.D, best.train_flops], [opt.N[0], opt.D[0], C], rtol=1e-4)


def test_inference_tokens_favour_smaller_longer_trained_models():
    target = 2.6
    base = advisor.advise(laws.CHINCHILLA, UNEQUAL, target, 0.0)
    heavy = advisor.advise(laws.CHINCHILLA, UNEQUAL, target, 1e3 * base.D)
    assert heavy.N < base.N and heavy.M > base.M
    assert heavy.train_flops > base.train_flops
    # the optimum is no worse than any point of a dense scan
    scan = advisor.cost_vs_multiplier(laws.CHINCHILLA, UNEQUAL, target, 1e3 * base.D, np.geomspace(0.1, 1e5, 400))
    assert heavy.total_flops <= scan["total_flops"].min() * (1 + 1e-9)
    # every model of the scan reaches the target
    reached = laws.CHINCHILLA(UNEQUAL, N=scan["N"], D=scan["D"])
    assert_allclose(reached, target, rtol=1e-9)


def test_overtraining_form_gives_the_same_answer():
    ot = laws.overtraining_from_chinchilla(EQUAL)
    a = advisor.advise(laws.CHINCHILLA, EQUAL, 2.2, 1e12)
    b = advisor.advise(laws.OVERTRAINING, ot, 2.2, 1e12)
    assert_allclose([a.N, a.M], [b.N, b.M], rtol=1e-4)


def test_advice_is_a_named_result():
    best = advisor.advise(laws.CHINCHILLA, UNEQUAL, 2.6, 1e12)
    assert isinstance(best, advisor.Advice)
    assert best.target_loss == 2.6 and best.inference_tokens == 1e12
    assert_allclose(best.M, best.D / best.N, rtol=1e-12)
    assert_allclose(best.total_flops, best.train_flops + best.inference_flops, rtol=1e-12)
    assert_allclose(best.inference_flops, 2 * best.N * 1e12, rtol=1e-12)
    text = str(best)
    assert text.startswith(f"N = {best.N:.4g}, D = {best.D:.4g}") and text.endswith("FLOPs")


def test_unreachable_multiplier_gives_nan():
    t = advisor.cost_vs_multiplier(laws.CHINCHILLA, UNEQUAL, 1.81, 0.0, [1e-6], n_bounds=(1e2, 1e6))
    assert np.isnan(t["N"][0]) and np.isnan(t["total_flops"][0])


def test_bad_input():
    with pytest.raises(compute_optimal.ComputeOptimalError, match="not above the irreducible loss"):
        advisor.advise(laws.CHINCHILLA, UNEQUAL, 1.7, 0.0)
    with pytest.raises(compute_optimal.ComputeOptimalError, match="inference_tokens must be >= 0"):
        advisor.cost_vs_multiplier(laws.CHINCHILLA, UNEQUAL, 2.5, -1.0, [20.0])
    with pytest.raises(compute_optimal.ComputeOptimalError, match="token multipliers must be positive"):
        advisor.cost_vs_multiplier(laws.CHINCHILLA, UNEQUAL, 2.5, 0.0, [0.0])
    with pytest.raises(compute_optimal.ComputeOptimalError, match=r"inputs \('L',\)"):
        advisor.advise(laws.ERROR, {"eps": 0.9, "k": 1.0, "gamma": 1.0}, 0.5, 0.0)
    with pytest.raises(compute_optimal.ComputeOptimalError, match="reaches the target"):
        advisor.advise(laws.CHINCHILLA, UNEQUAL, 1.8001, 0.0, n_bounds=(1e2, 1e4))
