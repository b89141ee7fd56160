"""Shared markers and fixtures of the test suite.

* ``needs_openlm``: skip a test when the published testbed of Gadre et al. (2024) is not found
  (``../shared/testbeds/gadre2024-openlm`` or ``$SCALING_OPENLM_TESTBED``, see
  :func:`scaling_lib.runs.default_openlm_path`);
* ``openlm_path`` (the published ``exp_data`` folder) and ``openlm`` (its run table, loaded once
  per session);
* ``FRAGILE``: a law whose function raises for part of its start grid (starts that fail must be
  recorded, never fatal).
"""

from __future__ import annotations

import numpy as np
import pytest

from scaling_lib import runs
from scaling_lib.laws import Law

OPENLM = runs.default_openlm_path()
"""Where the published testbed is looked for."""

needs_openlm = pytest.mark.skipif(not (OPENLM / "models").is_dir(),
                                  reason=f"published testbed not found at {OPENLM}")
"""Marker: the test reads the published testbed."""


@pytest.fixture(scope="session")
def openlm_path():
    """The published testbed's folder (``models/``, ``evals/``, ``eval_metadata.csv``)."""
    return OPENLM


@pytest.fixture(scope="session")
def openlm():
    """The published testbed as one run table (:func:`scaling_lib.runs.load_openlm_testbed`)."""
    return runs.load_openlm_testbed(OPENLM)


def _fragile(p, x):
    if p[2] > 1.0:
        raise ValueError("exponent out of the supported range")
    return p[0] + p[1] * x["x"] ** -p[2]


def _fragile_basis(p, x):
    if p[2] > 1.0:
        raise ValueError("exponent out of the supported range")
    return np.column_stack([np.ones_like(x["x"]), x["x"] ** -p[2]])


FRAGILE = Law(
    name="fragile", param_names=("E", "A", "alpha"), inputs=("x",), function=_fragile,
    bounds=((0.0, np.inf), (0.0, np.inf), (1e-4, 5.0)),
    start_grid=(("alpha", (0.05, 0.2, 2.0, 3.0)),),
    latex_template="{E} + {A} x^{{-{alpha}}}", symbols=("E", "A", r"\alpha"),
    linear_params=("E", "A"), basis=_fragile_basis,
)
