"""Analytic Jacobians of the built-in laws, for the Huber solver (private).

:func:`law_jacobian` returns a law's Jacobian ``d f / d p`` (rows: data points, columns: the
law's parameters); a law without one here gets its linear columns from its basis and central
differences for the rest. The lookup is by the law's function object.
"""

from __future__ import annotations

import math

import numpy as np

from scaling_lib import laws as _laws
from scaling_lib.laws import Law


def _jac_overtraining(p, x):
    E, a, b, eta = p
    log_c = math.log(6.0) + 2.0 * np.log(x["N"]) + np.log(x["M"])
    log_m = np.log(x["M"])
    s, t = log_m - log_c, -(log_m + log_c)
    u, v = np.exp(eta * s), np.exp(eta * t)
    return np.column_stack([np.ones_like(u), u, v, a * s * u + b * t * v])


def _jac_chinchilla(p, x):
    E, A, alpha, B, beta = p
    log_n, log_d = np.log(x["N"]), np.log(x["D"])
    tn, td = np.exp(-alpha * log_n), np.exp(-beta * log_d)
    return np.column_stack([np.ones_like(tn), tn, -A * log_n * tn, td, -B * log_d * td])


def _jac_saturating(p, x):
    E, A, alpha = p
    log_x = np.log(x["x"])
    t = np.exp(-alpha * log_x)
    return np.column_stack([np.ones_like(t), t, -A * log_x * t])


def _jac_power(p, x):
    A, alpha = p
    log_x = np.log(x["x"])
    t = np.exp(alpha * log_x)
    return np.column_stack([t, A * log_x * t])


def _jac_error(p, x):
    eps, k, gamma = p
    L = x["L"]
    e = np.exp(-gamma * L)
    return np.column_stack([np.ones_like(e), -e, k * L * e])


_LAW_JACOBIANS = {
    _laws._overtraining: _jac_overtraining,
    _laws._chinchilla: _jac_chinchilla,
    _laws._saturating: _jac_saturating,
    _laws._power: _jac_power,
    _laws._error: _jac_error,
}


def law_jacobian(law: Law):
    """``jacobian(p, x) -> ndarray (n, n_params)``: derivatives of ``law.function`` in its parameters.

    Analytic for the laws of :mod:`scaling_lib.laws` (and for any law with a
    ``jacobian`` attribute); otherwise the linear parameters' columns come
    from ``law.basis`` (exact) and the others from central differences.

    Examples
    --------
    >>> from scaling_lib import laws
    >>> x = {"x": np.array([1.0, 10.0])}
    >>> np.round(law_jacobian(laws.POWER)(np.array([2.0, 0.5]), x), 4)
    array([[ 1.    ,  0.    ],
           [ 3.1623, 14.5628]])
    """
    own = getattr(law, "jacobian", None) or _LAW_JACOBIANS.get(law.function)
    if own is not None:
        return own
    lin = [law.param_names.index(n) for n in law.linear_params] if law.basis is not None else []
    others = [i for i in range(law.n_params) if i not in lin]

    def numeric(p, x):
        p = np.asarray(p, dtype=float)
        cols = [None] * law.n_params
        if lin:
            X = law.basis(p, x)
            for j, i in enumerate(lin):
                cols[i] = X[:, j]
        for i in others:
            h = 1e-6 * max(abs(p[i]), 1e-3)
            up, down = p.copy(), p.copy()
            up[i] += h
            down[i] -= h
            cols[i] = (law.function(up, x) - law.function(down, x)) / (2 * h)
        return np.column_stack(cols)

    return numeric
