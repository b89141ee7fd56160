"""Shared markers and fixtures of the test suite.

* ``needs_openlm``: skip a test when the published testbed of Gadre et al. (2024) is not found
  (``../shared/testbeds/gadre2024-openlm`` or ``$SCALING_OPENLM_TESTBED``, see
  :func:`scaling_lib.runs.default_openlm_path`);
* ``openlm_path`` (the published ``exp_data`` folder) and ``openlm`` (its run table, loaded once
  per session).
"""

from __future__ import annotations

import pytest

from scaling_lib import runs

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
