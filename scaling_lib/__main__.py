"""``python -m scaling_lib``: the command line of :mod:`scaling_lib.cli` (fit, predict, backtest, laws)."""

import sys

from scaling_lib.cli import main

if __name__ == "__main__":
    sys.exit(main())
