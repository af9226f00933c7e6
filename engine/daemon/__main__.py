"""`python -m engine.daemon`: the driver process."""

import sys

from engine.daemon.cli import main

sys.exit(main())
