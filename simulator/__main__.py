"""``python -m simulator``: run the loopback Hyperliquid venue (see simulator/cli.py for flags)."""

from __future__ import annotations

import sys

from simulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
