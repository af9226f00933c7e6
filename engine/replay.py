"""`python -m engine.replay`: entry point of `engine.tools.replay`."""

import sys

from engine.tools.replay import main

if __name__ == "__main__":
    sys.exit(main())
