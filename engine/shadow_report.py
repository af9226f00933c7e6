"""`python -m engine.shadow_report`: entry point of `engine.tools.shadow_report`."""

import sys

from engine.tools.shadow_report import main

if __name__ == "__main__":
    sys.exit(main())
