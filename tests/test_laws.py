"""Tests for scaling_lib.laws: formulas, the N-D relation, the law objects' contract."""

import dataclasses
import math

import numpy as np
import pytest

from scaling_lib import laws

N = np.array([1e7, 8e7, 4e8, 1.4e9])
M = np.array([5.0, 20.0, 80.0, 640.0])


def test_overtraining_formula():
    p = {"E": 1.9, "a": 120.0, "b": 800.0, "eta": 0.12}
    C = 6 * N * (N * M)
    expected = 1.9 + (120.0 * M**0.12 + 800.0 * M**-0.12) * C**-0.12
    np.testing.assert_allclose(laws.OVERTRAINING(p, N=N, M=M), expected, rtol=1e-12)
    # a sequence in param_names order works too
    np.testing.assert_allclose(laws.OVERTRAINING([1.9, 120.0, 800.0, 0.12], N=N, M=M), expected, rtol=1e-12)


def test_other_formulas():
    D = N * M
    np.testing.assert_allclose(
        laws.CHINCHILLA({"E": 1.69, "A": 406.4, "alpha": 0.34, "B": 410.7, "beta": 0.28}, N=N, D=D),
        1.69 + 406.4 / N**0.34 + 410.7 / D**0.28, rtol=1e-12)
    x = np.array([1e15, 1e18, 1e21])
    np.testing.assert_allclose(laws.SATURATING_POWER({"E": 2.0, "A": 50.0, "alpha": 0.1}, x=x),
                               2.0 + 50.0 * x**-0.1, rtol=1e-12)
    np.testing.assert_allclose(laws.POWER({"A": 0.3, "alpha": 0.5}, x=x), 0.3 * x**0.5, rtol=1e-12)
    L = np.array([2.5, 3.0, 4.0])
    np.testing.assert_allclose(laws.ERROR({"eps": 0.7, "k": 1.4, "gamma": 0.4}, L=L),
                               0.7 - 1.4 * np.exp(-0.4 * L), rtol=1e-12)


def test_overtraining_equals_chinchilla_with_equal_exponents():
    chin = {"E": 1.8, "A": 300.0, "alpha": 0.26, "B": 700.0, "beta": 0.26}
    over = laws.overtraining_from_chinchilla(chin)
    assert over["eta"] == pytest.approx(0.13)
    assert over["a"] == pytest.approx(300.0 * 6**0.13)
    assert over["b"] == pytest.approx(700.0 * 6**0.13)
    np.testing.assert_allclose(laws.OVERTRAINING(over, N=N, M=M), laws.CHINCHILLA(chin, N=N, D=N * M), rtol=1e-12)
    back = laws.chinchilla_from_overtraining(over)
    for key, value in chin.items():
        assert back[key] == pytest.approx(value)
    with pytest.raises(ValueError, match="needs alpha == beta"):
        laws.overtraining_from_chinchilla({**chin, "beta": 0.3})


def test_overtraining_is_stable_at_large_compute():
    # C = 6 N^2 M reaches 1e30 here; the law is evaluated in log space
    values = laws.OVERTRAINING({"E": 1.5, "a": 100.0, "b": 200.0, "eta": 0.5}, N=np.array([1e12]), M=np.array([1e3]))
    assert np.isfinite(values).all() and values[0] == pytest.approx(1.5, abs=1e-9)


@pytest.mark.parametrize("law", laws.ALL_LAWS, ids=lambda law: law.name)
def test_law_contract(law):
    assert len(law.param_names) == law.n_params == len(law.bounds)
    assert set(law.linear_params) <= set(law.param_names)
    # every grid value lies inside the bounds
    for name, values in law.grid.items():
        lo, hi = law.bounds[law.param_names.index(name)]
        assert all(lo <= v <= hi for v in values), name
    assert len(law.start_points()) == math.prod(len(v) for v in law.grid.values())
    # the basis reproduces the law for any values of the other parameters
    rng = np.random.default_rng(1)
    p = np.array([rng.uniform(0.1, 0.9) if math.isfinite(hi) else rng.uniform(0.5, 5.0)
                  for lo, hi in law.bounds])
    x = {name: rng.uniform(1.0, 10.0, 6) * (1e8 if name in ("N", "D") else 1.0) for name in law.inputs}
    idx = [law.param_names.index(n) for n in law.linear_params]
    np.testing.assert_allclose(law.basis(p, x) @ p[idx], law.function(p, x), rtol=1e-10)
    # latex: symbolic and numeric
    assert all(sym in law.latex() for sym in law.symbols)
    numeric = law.latex(p)
    assert all(f"{v:.4g}" in numeric for v in p)
    # frozen
    with pytest.raises(dataclasses.FrozenInstanceError):
        law.name = "other"


def test_latex_with_values():
    text = laws.OVERTRAINING.latex({"E": 1.9, "a": 120.0, "b": 8.0e6, "eta": 0.12})
    assert "1.9" in text and "120" in text and r"8 \times 10^{6}" in text and "0.12" in text
    assert laws.OVERTRAINING.latex() == r"E + \left(a\, M^{\eta} + b\, M^{-\eta}\right) C^{-\eta}"


def test_param_errors():
    with pytest.raises(ValueError, match=r"missing parameter\(s\) \['eta'\]"):
        laws.OVERTRAINING({"E": 1.0, "a": 1.0, "b": 1.0}, N=N, M=M)
    with pytest.raises(ValueError, match="expected 4 parameters"):
        laws.OVERTRAINING([1.0, 2.0], N=N, M=M)
    with pytest.raises(ValueError, match=r"missing \['M'\]"):
        laws.OVERTRAINING([1.0, 1.0, 1.0, 0.1], N=N)
    with pytest.raises(ValueError, match=r"unexpected \['D'\]"):
        laws.OVERTRAINING([1.0, 1.0, 1.0, 0.1], N=N, M=M, D=N)


def test_evaluate_reads_columns_and_renames():
    import pandas as pd

    df = pd.DataFrame({"loss_c4_val": [3.0, 4.0]})
    p = {"eps": 0.7, "k": 1.4, "gamma": 0.4}
    np.testing.assert_allclose(laws.ERROR.evaluate(p, df, inputs={"L": "loss_c4_val"}),
                               laws.ERROR(p, L=[3.0, 4.0]))
    assert laws.fit_inputs_for(laws.ERROR, ["loss_c4_val"]) == {"L": "loss_c4_val"}
    with pytest.raises(ValueError, match="has inputs"):
        laws.fit_inputs_for(laws.OVERTRAINING, ["N"])


def test_docstring_examples():
    import doctest

    from scaling_lib import laws as module

    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
