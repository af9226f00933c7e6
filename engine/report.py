"""`python -m engine.report`: entry point of `engine.tools.report`."""

import sys

from engine.tools.report import main

if __name__ == "__main__":
    sys.exit(main())
