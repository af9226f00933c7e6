"""`python -m engine.sidecar`: the market-data sidecar."""

import sys

from engine.sidecar.service import main

sys.exit(main())
