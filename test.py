"""Evaluate a checkpoint as the authors' README does: ``python test.py --dataset 'movingmnist' ...``.

A thin wrapper of ``swinlstm test`` (see ``python test.py --help``).
"""

import sys

from swinlstm.cli.test import main

if __name__ == "__main__":
    sys.exit(main())
