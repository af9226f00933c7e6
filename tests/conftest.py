"""Shared pytest set-up: Ray must bind to loopback, and fixtures come from tests/fixtures/.

Each fixtures module is owned by one area (redis, ray, simulator); add new shared fixtures
there rather than here.
"""

from __future__ import annotations

import os

# Ray 2.60 binds to the machine's non-loopback address unless every process sets this, and
# token auth must be either on everywhere or off everywhere. Set both before anything imports ray.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

pytest_plugins = [
    "tests.fixtures.ci",
    "tests.fixtures.redis_fixtures",
    "tests.fixtures.ray_fixtures",
    "tests.fixtures.sim_fixtures",
    "tests.fixtures.xdist_plan",
]
