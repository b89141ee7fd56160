"""``python -m scaling_lib.training.tasks [--cache DIR] [--rebuild]``: the command line of
:func:`scaling_lib.training.tasks.suite.main`."""

from scaling_lib.training.tasks.suite import main

if __name__ == "__main__":
    main()
