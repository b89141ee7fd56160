"""The training side of the library: everything that needs torch or builds corpora.

* :mod:`~scaling_lib.training.corpora` and :mod:`~scaling_lib.training.textclean`: the training
  and evaluation corpora, built from the package registries;
* :mod:`~scaling_lib.training.tokenizer`: the byte-level BPE;
* :mod:`~scaling_lib.training.tasks` and :mod:`~scaling_lib.training.evals`: downstream tasks and
  their scoring;
* :mod:`~scaling_lib.training.model` and :mod:`~scaling_lib.training.train`: the GPT and its
  training loop;
* :mod:`~scaling_lib.training.sweep`: trains a testbed design (:mod:`scaling_lib.testbeds`)
  resumably into a run table.

The analysis side (:mod:`scaling_lib` itself) never imports this package.
"""
