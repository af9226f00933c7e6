"""The two values every shard of a pool is built from: how it runs (`ShardSettings`) and the
picklable recipe of its per-symbol strategy configs (`ConfigSource`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from strategies.config import LiveDefaults, StrategyConfig, StrategyOverrides
from strategies.sdk.plan import StrategyPlan


@dataclass(frozen=True, slots=True)
class ConfigSource:
    """Picklable recipe for per-symbol strategy configs (the parsed YAML plus run context)."""

    overrides: StrategyOverrides = field(default_factory=StrategyOverrides)
    live: bool = False
    strategy_mode: str | None = None
    live_defaults: LiveDefaults = field(default_factory=LiveDefaults)

    def resolve(self, symbol: str | None) -> StrategyConfig:
        """Return the merged config of `symbol` (None = the global view); raises StrategyConfigError.

        The one merge the driver (StrategyManager) and the shards share, live defaults included."""
        return self.overrides.resolve(
            symbol, live=self.live, strategy_mode=self.strategy_mode, live_defaults=self.live_defaults
        )

    @property
    def plan(self) -> StrategyPlan:
        """The YAML's `strategies:` block: each symbol's primary and its shadow variants."""
        return self.overrides.plan


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardSettings:
    """How a shard runs; the same object goes to every shard of a pool."""

    interval: str
    signal_on_candle_close: bool = True  # False: keys are forming-candle open times (module docstring)
    anchor_symbol: str = "BTC"
    checkpoint_every: int = 16  # candles per symbol between checkpoints (>= 1); replay <= 2x this
    cold_chunk: int = 256  # symbols per store read while catching up from no state (bounds memory)
    columnar: bool = True  # SDK indicator states as numpy columns across the shard (cluster.columnar_book)

    def __post_init__(self) -> None:
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if self.cold_chunk < 1:
            raise ValueError(f"cold_chunk must be >= 1, got {self.cold_chunk}")
