"""``python -m layerscope.batch sweep GRID ...`` / ``gallery ...``."""

import sys

from .command import main

if __name__ == "__main__":  # not on a plain import (the package's import tests walk modules)
    sys.exit(main())
