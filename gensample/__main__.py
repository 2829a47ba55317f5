"""``python -m gensample``: the command line (see :mod:`gensample.cli`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
