"""Scaling laws as small frozen objects.

A :class:`Law` knows its parameter names, the run-table columns it reads
(``inputs``), bounds, a start grid for multi-start fitting, how to evaluate
itself and how to print itself in LaTeX. It holds no data and no fit results;
:func:`scaling_lib.fit.fit` returns those.

Every law here is linear in some of its parameters once the exponents are
fixed (``linear_params``); ``basis`` returns the design matrix of those
parameters, so a fit can solve them exactly for each grid value of the
exponents before polishing all parameters together.

Laws
----
OVERTRAINING
    Gadre et al. (2024) eq. (4): :math:`L(C, M) = E + (a M^\\eta + b M^{-\\eta}) C^{-\\eta}`
    with :math:`C = 6ND = 6N^2M`; inputs ``N`` and ``M``.
CHINCHILLA
    Hoffmann et al. (2022) eq. (2): :math:`L = E + A N^{-\\alpha} + B D^{-\\beta}`.
SATURATING_POWER
    :math:`E + A x^{-\\alpha}`, e.g. loss against compute at fixed ``M``.
POWER
    :math:`A x^{\\alpha}`, e.g. compute-optimal ``N`` against ``C``; fitted in log space.
ERROR
    Gadre et al. (2024) eq. (5): :math:`\\mathrm{Err}(L) = \\epsilon - k \\exp(-\\gamma L)`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

INF = math.inf


@dataclass(frozen=True)
class Law:
    """A parametric scaling law.

    Parameters
    ----------
    name : str
        Short identifier.
    param_names : tuple of str
        Parameter names, in the order used by sequences of parameters.
    inputs : tuple of str
        Names of the law's inputs; by default also the run-table columns read.
    function : callable
        ``function(p, x) -> ndarray`` with ``p`` a float array in
        ``param_names`` order and ``x`` a dict of input arrays.
    bounds : tuple of (float, float)
        Lower and upper bound per parameter.
    start_grid : tuple of (str, tuple of float)
        Start values per gridded parameter; a fit tries their Cartesian product.
    latex_template : str
        LaTeX with ``{name}`` placeholders for every parameter.
    symbols : tuple of str
        LaTeX symbol per parameter (used when no values are given).
    linear_params : tuple of str
        Parameters the law is linear in when the others are fixed.
    basis : callable or None
        ``basis(p, x) -> ndarray (n, len(linear_params))``: the law equals
        ``basis(p, x) @ p[linear_params]`` for any values of the other parameters.
    fit_space : {"linear", "log"}
        Space of the residuals of a plain least-squares fit.
    description : str
        One line, with the reference.

    Examples
    --------
    >>> float(SATURATING_POWER({"E": 1.0, "A": 2.0, "alpha": 0.5}, x=4.0)[0])
    2.0
    """

    name: str
    param_names: tuple
    inputs: tuple
    function: Callable
    bounds: tuple
    start_grid: tuple
    latex_template: str
    symbols: tuple
    linear_params: tuple = ()
    basis: Callable | None = None
    fit_space: str = "linear"
    description: str = ""

    def __post_init__(self):
        k = len(self.param_names)
        if len(self.bounds) != k or len(self.symbols) != k:
            raise ValueError(f"law {self.name}: bounds and symbols need one entry per parameter")
        gridded = [name for name, _ in self.start_grid]
        for name in list(gridded) + list(self.linear_params):
            if name not in self.param_names:
                raise ValueError(f"law {self.name}: unknown parameter {name!r}")
        if self.fit_space not in ("linear", "log"):
            raise ValueError(f"law {self.name}: fit_space must be 'linear' or 'log'")

    @property
    def n_params(self) -> int:
        """Number of parameters."""
        return len(self.param_names)

    @property
    def grid(self) -> dict:
        """The start grid as ``{parameter: values}``."""
        return {name: tuple(values) for name, values in self.start_grid}

    def param_array(self, params) -> np.ndarray:
        """Parameters (a mapping or a sequence in ``param_names`` order) as a float array."""
        if isinstance(params, Mapping):
            missing = [n for n in self.param_names if n not in params]
            if missing:
                raise ValueError(f"law {self.name}: missing parameter(s) {missing}")
            return np.array([float(params[n]) for n in self.param_names])
        arr = np.asarray(params, dtype=float).ravel()
        if arr.size != self.n_params:
            raise ValueError(f"law {self.name}: expected {self.n_params} parameters {self.param_names}, got {arr.size}")
        return arr

    def param_dict(self, params) -> dict:
        """Parameters as ``{name: float}``."""
        return dict(zip(self.param_names, (float(v) for v in self.param_array(params))))

    def _inputs(self, values: Mapping) -> dict:
        missing = [n for n in self.inputs if n not in values]
        extra = [n for n in values if n not in self.inputs]
        if missing or extra:
            raise ValueError(
                f"law {self.name} takes inputs {self.inputs}; missing {missing}, unexpected {extra}"
            )
        return {n: np.atleast_1d(np.asarray(values[n], dtype=float)) for n in self.inputs}

    def __call__(self, params, **inputs) -> np.ndarray:
        """Evaluate the law: ``law(params, N=..., M=...)``."""
        return self.function(self.param_array(params), self._inputs(inputs))

    def evaluate(self, params, data, inputs: Mapping | None = None) -> np.ndarray:
        """Evaluate on the columns of a table.

        Parameters
        ----------
        params : mapping or sequence
        data : pandas.DataFrame or mapping of arrays
        inputs : mapping, optional
            ``{law_input: column}`` for inputs whose column has another name.
        """
        mapping = {n: n for n in self.inputs}
        mapping.update(inputs or {})
        return self(params, **{n: np.asarray(data[c], dtype=float) for n, c in mapping.items()})

    def start_points(self) -> list:
        """Every start of the grid as a dict of the gridded parameters."""
        names = [name for name, _ in self.start_grid]
        return [dict(zip(names, combo)) for combo in itertools.product(*(v for _, v in self.start_grid))]

    def latex(self, params=None, digits: int = 4) -> str:
        """The law in LaTeX, symbolic or with fitted values.

        Examples
        --------
        >>> print(POWER.latex())
        A\\, x^{\\alpha}
        >>> print(POWER.latex({"A": 2.0, "alpha": 0.5}))
        2\\, x^{0.5}
        """
        if params is None:
            values = dict(zip(self.param_names, self.symbols))
        else:
            values = {k: _fmt(v, digits) for k, v in self.param_dict(params).items()}
        return self.latex_template.format(**values)


def _fmt(value: float, digits: int) -> str:
    text = f"{value:.{digits}g}"
    if "e" in text:
        mant, exp = text.split("e")
        return f"{mant} \\times 10^{{{int(exp)}}}"
    return text


# --- the laws -------------------------------------------------------------------------------


def _overtraining(p, x):
    E, a, b, eta = p
    log_c = math.log(6.0) + 2.0 * np.log(x["N"]) + np.log(x["M"])
    log_m = np.log(x["M"])
    return E + a * np.exp(eta * (log_m - log_c)) + b * np.exp(-eta * (log_m + log_c))


def _overtraining_basis(p, x):
    eta = p[3]
    log_c = math.log(6.0) + 2.0 * np.log(x["N"]) + np.log(x["M"])
    log_m = np.log(x["M"])
    return np.column_stack(
        [np.ones_like(log_c), np.exp(eta * (log_m - log_c)), np.exp(-eta * (log_m + log_c))]
    )


OVERTRAINING = Law(
    name="overtraining",
    param_names=("E", "a", "b", "eta"),
    inputs=("N", "M"),
    function=_overtraining,
    bounds=((0.0, INF), (0.0, INF), (0.0, INF), (1e-4, 2.0)),
    start_grid=(("eta", (0.05, 0.1, 0.15, 0.2, 0.3, 0.45)),),
    latex_template=r"{E} + \left({a}\, M^{{{eta}}} + {b}\, M^{{-{eta}}}\right) C^{{-{eta}}}",
    symbols=("E", "a", "b", r"\eta"),
    linear_params=("E", "a", "b"),
    basis=_overtraining_basis,
    description="Gadre et al. 2024 eq. (4): E + (a M^eta + b M^-eta) C^-eta with C = 6 N D = 6 N^2 M",
)


def _chinchilla(p, x):
    E, A, alpha, B, beta = p
    return E + A * np.exp(-alpha * np.log(x["N"])) + B * np.exp(-beta * np.log(x["D"]))


def _chinchilla_basis(p, x):
    alpha, beta = p[2], p[4]
    log_n = np.log(x["N"])
    return np.column_stack(
        [np.ones_like(log_n), np.exp(-alpha * log_n), np.exp(-beta * np.log(x["D"]))]
    )


CHINCHILLA = Law(
    name="chinchilla",
    param_names=("E", "A", "alpha", "B", "beta"),
    inputs=("N", "D"),
    function=_chinchilla,
    bounds=((0.0, INF), (0.0, INF), (1e-4, 2.0), (0.0, INF), (1e-4, 2.0)),
    start_grid=(("alpha", (0.1, 0.25, 0.4, 0.6)), ("beta", (0.1, 0.25, 0.4, 0.6))),
    latex_template=r"{E} + \frac{{{A}}}{{N^{{{alpha}}}}} + \frac{{{B}}}{{D^{{{beta}}}}}",
    symbols=("E", "A", r"\alpha", "B", r"\beta"),
    linear_params=("E", "A", "B"),
    basis=_chinchilla_basis,
    description="Hoffmann et al. 2022 eq. (2): E + A / N^alpha + B / D^beta",
)


def _saturating(p, x):
    E, A, alpha = p
    return E + A * np.exp(-alpha * np.log(x["x"]))


def _saturating_basis(p, x):
    log_x = np.log(x["x"])
    return np.column_stack([np.ones_like(log_x), np.exp(-p[2] * log_x)])


SATURATING_POWER = Law(
    name="saturating_power",
    param_names=("E", "A", "alpha"),
    inputs=("x",),
    function=_saturating,
    bounds=((0.0, INF), (0.0, INF), (1e-4, 3.0)),
    start_grid=(("alpha", (0.03, 0.1, 0.2, 0.4, 0.8, 1.5)),),
    latex_template=r"{E} + {A}\, x^{{-{alpha}}}",
    symbols=("E", "A", r"\alpha"),
    linear_params=("E", "A"),
    basis=_saturating_basis,
    description="Saturating power law E + A x^-alpha (Gadre et al. 2024 eq. (1) at fixed M)",
)


def _power(p, x):
    A, alpha = p
    return A * np.exp(alpha * np.log(x["x"]))


def _power_basis(p, x):
    return np.exp(p[1] * np.log(x["x"]))[:, None]


POWER = Law(
    name="power",
    param_names=("A", "alpha"),
    inputs=("x",),
    function=_power,
    bounds=((0.0, INF), (-5.0, 5.0)),
    start_grid=(("alpha", (-0.5, 0.5)),),
    latex_template=r"{A}\, x^{{{alpha}}}",
    symbols=("A", r"\alpha"),
    linear_params=("A",),
    basis=_power_basis,
    fit_space="log",
    description="Power law A x^alpha, fitted on log values (compute-optimal trends)",
)


def _error(p, x):
    eps, k, gamma = p
    return eps - k * np.exp(-gamma * x["L"])


def _error_basis(p, x):
    L = x["L"]
    return np.column_stack([np.ones_like(L), -np.exp(-p[2] * L)])


ERROR = Law(
    name="error",
    param_names=("eps", "k", "gamma"),
    inputs=("L",),
    function=_error,
    bounds=((0.0, 1.0), (0.0, INF), (1e-4, 20.0)),
    start_grid=(("gamma", (0.1, 0.3, 1.0, 3.0)),),
    latex_template=r"{eps} - {k}\, e^{{-{gamma} L}}",
    symbols=(r"\epsilon", "k", r"\gamma"),
    linear_params=("eps", "k"),
    basis=_error_basis,
    description="Gadre et al. 2024 eq. (5): top-1 error eps - k exp(-gamma L) against loss L",
)

ALL_LAWS = (OVERTRAINING, CHINCHILLA, SATURATING_POWER, POWER, ERROR)
"""Every law defined here."""


# --- relations between the N, D form and the over-training form ---------------------------


def optimal_multiplier(params: Mapping) -> float:
    """The over-training law's own compute-optimal multiplier ``M* = (b / a) ** (1 / (2 eta))``.

    At fixed compute ``C`` the law's reducible loss ``(a M^eta + b M^-eta) C^-eta`` is smallest
    where its two terms balance (Gadre et al. 2024, from the Chinchilla form with equal exponents).

    Parameters
    ----------
    params : mapping
        ``a``, ``b`` and ``eta`` of :data:`OVERTRAINING` (``E`` is not needed).

    Returns
    -------
    float
        ``M*``; NaN where ``a``, ``b`` or ``eta`` is not positive (no interior minimum).

    Examples
    --------
    >>> round(optimal_multiplier({"a": 1.0, "b": 400.0, "eta": 1.0}), 6)
    20.0
    """
    a, b, eta = (float(params[k]) for k in ("a", "b", "eta"))
    if not (a > 0 and b > 0 and eta > 0):
        return float("nan")
    return (b / a) ** (1.0 / (2.0 * eta))


def overtraining_from_chinchilla(params: Mapping, rtol: float = 1e-6) -> dict:
    """Over-training parameters equal to a Chinchilla law with ``alpha == beta``.

    With ``C = 6 N^2 M`` and ``D = N M``, ``E + A N^-alpha + B D^-alpha`` equals
    eq. (4) of Gadre et al. (2024) with ``eta = alpha / 2``, ``a = A 6^eta``
    and ``b = B 6^eta``.

    Parameters
    ----------
    params : mapping
        ``E, A, alpha, B, beta``.
    rtol : float
        Allowed relative difference between ``alpha`` and ``beta``; the
        exponent used is their mean.

    Examples
    --------
    >>> p = overtraining_from_chinchilla({"E": 2.0, "A": 400.0, "alpha": 0.3, "B": 900.0, "beta": 0.3})
    >>> round(p["eta"], 3), round(p["a"], 2)
    (0.15, 523.34)
    """
    p = CHINCHILLA.param_dict(params)
    if not math.isclose(p["alpha"], p["beta"], rel_tol=rtol):
        raise ValueError(
            f"overtraining_from_chinchilla needs alpha == beta (got alpha={p['alpha']:.6g}, beta={p['beta']:.6g}); "
            "eq. (4) assumes equal exponents"
        )
    eta = 0.5 * (0.5 * (p["alpha"] + p["beta"]))  # half the common exponent
    scale = 6.0**eta
    return {"E": p["E"], "a": p["A"] * scale, "b": p["B"] * scale, "eta": eta}


def chinchilla_from_overtraining(params: Mapping) -> dict:
    """The Chinchilla form of an over-training law: ``alpha = beta = 2 eta``,
    ``A = a 6^-eta``, ``B = b 6^-eta``.

    Examples
    --------
    >>> p = chinchilla_from_overtraining({"E": 2.0, "a": 523.34, "b": 1177.5, "eta": 0.15})
    >>> round(p["alpha"], 3), round(p["A"], 1)
    (0.3, 400.0)
    """
    p = OVERTRAINING.param_dict(params)
    scale = 6.0 ** (-p["eta"])
    return {"E": p["E"], "A": p["a"] * scale, "alpha": 2 * p["eta"], "B": p["b"] * scale, "beta": 2 * p["eta"]}


def fit_inputs_for(law: Law, names: Sequence[str]) -> dict:
    """``{law_input: column}`` pairing a law's inputs with column names, in order.

    Examples
    --------
    >>> fit_inputs_for(ERROR, ["loss_c4_val"])
    {'L': 'loss_c4_val'}
    """
    if len(names) != len(law.inputs):
        raise ValueError(f"law {law.name} has inputs {law.inputs}; got {len(names)} column names")
    return dict(zip(law.inputs, names))
