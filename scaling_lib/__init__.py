"""scaling_lib: counting, scaling laws, fitting and run tables; a small GPT testbed in ``training``.

The package comes in two halves:

* the analysis side, the modules of this package itself (:mod:`~scaling_lib.counting`,
  :mod:`~scaling_lib.laws`, :mod:`~scaling_lib.fit`, :mod:`~scaling_lib.runs`,
  :mod:`~scaling_lib.protocols`, :mod:`~scaling_lib.backtest`, :mod:`~scaling_lib.downstream`,
  :mod:`~scaling_lib.compute_optimal`, :mod:`~scaling_lib.curves`, :mod:`~scaling_lib.advisor`,
  the testbed designs as plain data in :mod:`~scaling_lib.testbeds`, :mod:`~scaling_lib.isoflop`
  and :mod:`~scaling_lib.designs`, ...), never imports torch;
* the training side, :mod:`scaling_lib.training`, holds what needs torch or builds corpora (the
  corpora, the tokenizer, the tasks, the model, the trainer and the sweep). Nothing on the
  analysis side imports it (``tests/test_layout.py`` checks both, and that there is no import
  cycle).

Modules are imported on demand (``from scaling_lib import fit``); ``python -m scaling_lib``
is the command line (:mod:`scaling_lib.cli`).
"""

__version__ = "0.1.0"
