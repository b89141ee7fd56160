"""``python -m scaling_lib.training.corpora {build,ensure,stats}``: the command line of
:func:`scaling_lib.training.corpora.build.main`."""

from scaling_lib.training.corpora.build import main

if __name__ == "__main__":
    raise SystemExit(main())
