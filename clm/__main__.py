"""``python -m clm <command>``: see :mod:`clm.cli`."""

import sys

from clm.cli import main

if __name__ == "__main__":
    sys.exit(main())
