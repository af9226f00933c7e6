"""The seam between the node and a mode's broker stack: what a stack is given, and what it does.

The node (engine/daemon/node.py) starts the same services, engine and loop in every mode; a
`BrokerFactory` is the only thing that differs: paper builds `PaperStack` (engine/daemon/paper.py),
dry_live and live build `LiveStack` (engine/daemon/live.py: OMS, venue broker, reconciler,
account-event pump). Both check every order with the one `RiskManager` the node built.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from engine.alerts.alerting import Alerter
from engine.daemon.config import DriverConfig
from engine.daemon.stop import StopFlag
from engine.execution.broker import Broker
from engine.execution.trade_store import TradeStore
from engine.risk.manager import RiskManager
from engine.runtime.redis_runtime import RedisRuntime
from engine.tick.protections import Protections
from engine.tick.strategy_manager import StrategyManager
from engine.venue.rate_budget import RateBudget


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerContext:
    """What the node has built when it asks for the broker stack."""

    config: DriverConfig
    store: TradeStore
    risk: RiskManager
    strategy: StrategyManager
    venue_url: str
    budget: RateBudget  # one budget for every REST call of this process
    redis: RedisRuntime
    alerter: Alerter
    venue_clock_ms: Callable[[], int]  # the clock the engine ticks on (the venue's)
    protections: Protections | None = None  # health guard and drawdown close-all (engine.tick.protections)
    dex_fee_multipliers: tuple[tuple[str, float], ...] = ()  # HIP-3 builder dexes' fee multipliers


class BrokerStack(Protocol):
    """A mode's broker and what keeps it in step with the truth (the ledger, the venue)."""

    @property
    def broker(self) -> Broker: ...

    @property
    def funding_enabled(self) -> bool: ...

    def start(self, stop: StopFlag) -> Any:
        """Once, before the shards start (live: the start-up reconcile)."""
        ...

    def before_tick(self) -> bool:
        """Every loop iteration: sync, poll risk; return whether the engine may tick now."""
        ...

    def final_sync(self) -> None:
        """At shutdown, after the last tick."""
        ...

    def close(self) -> None:
        """Release what the stack opened; never raises."""
        ...


BrokerFactory = Callable[[BrokerContext], BrokerStack]


def close_in_order(closers: Iterable[tuple[str, Callable[[], object] | None]], log: logging.Logger) -> None:
    """Call each `(name, close)` in order, skipping None; a close that raises is logged under `name`
    and the next still runs (teardown must reach every later step)."""
    for name, closer in closers:
        if closer is None:
            continue
        try:
            closer()
        except Exception:  # teardown must reach every later step
            log.exception("closing %s failed", name)
