"""Every named testbed design, looked up by name.

The designs themselves are plain data in :mod:`scaling_lib.testbeds` (cpu-tiny,
gpu-small) and :mod:`scaling_lib.isoflop` (the IsoFLOP sweep, which copies
cpu-tiny's hyperparameter rule); this module only names them, so that neither
of those modules needs the other's registry.

Examples
--------
>>> from scaling_lib import designs
>>> sorted(designs.known_testbeds())
['cpu-isoflop', 'cpu-isoflop-b8', 'cpu-tiny', 'gpu-small']
>>> designs.get_testbed("nope")
Traceback (most recent call last):
...
KeyError: "unknown testbed 'nope'; known testbeds: cpu-isoflop, cpu-isoflop-b8, cpu-tiny, gpu-small"
"""

from __future__ import annotations

import dataclasses

from scaling_lib import isoflop, testbeds
from scaling_lib.testbeds import Testbed


def known_testbeds() -> dict[str, Testbed]:
    """All named testbeds, by name."""
    cpu_tiny = testbeds.cpu_tiny()
    # the two smallest IsoFLOP budgets again at a quarter of the batch, so that every run of the
    # warmup comparison takes at least 300 optimizer steps (at batch 32 they take 89 to 336); the
    # long warmup keeps its length in tokens (800 steps of 8 sequences = 200 of 32)
    small_batch = isoflop.cpu_isoflop_design(
        budgets=(5e11, 1.5e12), warmup_budgets=2, long_warmup_steps=800, lr_scales=(),
        name="cpu-isoflop-b8",
        hparams_from=dataclasses.replace(cpu_tiny, name="cpu-tiny at batch 8", batch_size=8))
    found = (cpu_tiny, testbeds.gpu_small(), isoflop.cpu_isoflop_design(hparams_from=cpu_tiny), small_batch)
    return {tb.name: tb for tb in found}


def get_testbed(name: str) -> Testbed:
    """The testbed called ``name``; an unknown name raises ``KeyError`` listing the known ones."""
    known = known_testbeds()
    if name not in known:
        raise KeyError(f"unknown testbed {name!r}; known testbeds: {', '.join(sorted(known))}")
    return known[name]
