"""Variables that several processes read (the driver, the sidecar, the hub): one parser, one bound.

The driver and its sidecar must agree on the interval and the history depth, so each such
variable is parsed here and nowhere else; every settings object calls these.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.config.env import ConfigError, env_int, env_str
from strategies.candle import interval_ms

DEFAULT_INTERVAL = "1h"
DEFAULT_LOOKBACK_BARS = 200
# The strategy's slowest indicator windows need ~50 closed bars; less history means no signal.
MIN_LOOKBACK_BARS = 50
MAX_LOOKBACK_BARS = 10_000


def env_interval(env: Mapping[str, str] | None = None) -> str:
    """AI_QUANT_INTERVAL (default 1h); ConfigError when it is not a candle interval."""
    interval = env_str("AI_QUANT_INTERVAL", DEFAULT_INTERVAL, env)
    try:
        interval_ms(interval)
    except ValueError as exc:
        raise ConfigError(f"AI_QUANT_INTERVAL={interval!r}: {exc}") from exc
    return interval


def env_lookback_bars(env: Mapping[str, str] | None = None) -> int:
    """AI_QUANT_LOOKBACK_BARS: closed bars kept and backfilled per symbol, in [50, 10000]."""
    return env_int(
        "AI_QUANT_LOOKBACK_BARS", DEFAULT_LOOKBACK_BARS, env, lo=MIN_LOOKBACK_BARS, hi=MAX_LOOKBACK_BARS
    )
