"""``python -m layerscope COMMAND``: the same command line as ``layerscope COMMAND``."""

import sys

from .cli import main

if __name__ == "__main__":  # not on a plain import (the package's import tests walk modules)
    sys.exit(main())
