"""`python -m engine.download`: entry point of `engine.tools.download`."""

import sys

from engine.tools.download import main

if __name__ == "__main__":
    sys.exit(main())
