"""`python -m engine.kernel_shadow_report`: entry point of `engine.tools.kernel_shadow_report`."""

import sys

from engine.tools.kernel_shadow_report import main

if __name__ == "__main__":
    sys.exit(main())
