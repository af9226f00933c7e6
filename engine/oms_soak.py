"""`python -m engine.oms_soak`: entry point of `engine.tools.oms_soak`."""

import sys

from engine.tools.oms_soak import main

if __name__ == "__main__":
    sys.exit(main())
