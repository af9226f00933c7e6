"""`python -m engine.sidecar`: the market-data sidecar."""

import sys

from engine.sidecar.entry import main

sys.exit(main())
