"""`python -m engine.status`: entry point of `engine.tools.status`."""

import sys

from engine.tools.status import main

if __name__ == "__main__":
    sys.exit(main())
