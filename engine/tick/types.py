"""Records and seams of the engine tick: options, the tick report, the market/funding protocols.

Split from `engine.tick.engine` to keep the loop readable: what the engine reads (MarketView,
FundingSource, ReconfigurableExecutor), what it is configured with (EngineOptions), what each tick
reports (TickReport with its timing breakdown), and small pure helpers that turn broker results
and positions into the strategy's and the decision log's terms.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from cluster.shard_core import ConfigSource
from engine.enums import DecisionPhase, DecisionStatus, GateCode, ReloadOutcome
from engine.execution.broker import OrderResult, Position
from engine.execution.fill_model import MarketQuote
from engine.marketdata.hub import KeysSnapshot, PriceQuote
from engine.tick.decision_log import DecisionEvent
from strategies.enums import Confidence, TradeAction
from strategies.exits import PositionState


class MarketView(Protocol):
    """The slice of `engine.marketdata.hub.MarketDataHub` the engine reads."""

    def venue_now_ms(self) -> int: ...

    def candle_keys(self, symbols: Sequence[str], interval: str | None = None) -> KeysSnapshot: ...

    def get_mids(
        self, symbols: Sequence[str], max_age_secs: float | None = None
    ) -> dict[str, PriceQuote]: ...


class FundingSource(Protocol):
    def funding_rates(self) -> Mapping[str, float]:
        """Return the current hourly funding rate by symbol (metaAndAssetCtxs `funding`)."""
        ...


@runtime_checkable
class ReconfigurableExecutor(Protocol):
    def update_configs(self, configs: ConfigSource) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineOptions:
    """Engine knobs fixed for the process (from DaemonSettings)."""

    interval: str
    entry_max_delay_ms: int = 0
    retry_on_capacity: bool = False
    shard_deadline_ms: float | None = None
    funding_enabled: bool = True
    funding_poll_ms: int = 60_000
    mid_max_age_secs: float | None = None
    dust_notional_usd: float = 3.0


@dataclass(frozen=True, slots=True)
class TickTiming:
    keys_ms: float
    shards_ms: float
    exits_ms: float
    entries_ms: float
    funding_ms: float
    total_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TickReport:
    """What one tick did; `status_line()` is the per-tick log line."""

    tick_id: int
    now_ms: int
    symbols: int
    evaluated: int
    opened: int
    added: int
    reduced: int
    closed: int
    blocked: int
    errors: int
    open_positions: int
    cash_usd: float
    equity_usd: float
    reload: ReloadOutcome
    timing: TickTiming

    def status_line(self) -> str:
        t = self.timing
        return (
            f"tick={self.tick_id} symbols={self.symbols} evaluated={self.evaluated} "
            f"open_pos={self.open_positions} opened={self.opened} added={self.added} "
            f"reduced={self.reduced} closed={self.closed} blocked={self.blocked} errors={self.errors} "
            f"cash={self.cash_usd:.2f} equity={self.equity_usd:.2f} config={self.reload.value} "
            f"keys={t.keys_ms:.1f}ms shards={t.shards_ms:.1f}ms exits={t.exits_ms:.1f}ms "
            f"entries={t.entries_ms:.1f}ms funding={t.funding_ms:.1f}ms total={t.total_ms:.1f}ms"
        )

    def metrics(self) -> dict[str, float]:
        """Flat numeric view for a metrics exporter (names carry units)."""
        t = self.timing
        return {
            "tick_keys_ms": t.keys_ms, "tick_shards_ms": t.shards_ms, "tick_exits_ms": t.exits_ms,
            "tick_entries_ms": t.entries_ms, "tick_funding_ms": t.funding_ms, "tick_total_ms": t.total_ms,
            "symbols": float(self.symbols), "evaluated": float(self.evaluated),
            "open_positions": float(self.open_positions), "opened": float(self.opened),
            "added": float(self.added), "reduced": float(self.reduced), "closed": float(self.closed),
            "blocked": float(self.blocked),
            "errors": float(self.errors), "cash_usd": self.cash_usd, "equity_usd": self.equity_usd,
        }  # fmt: skip


@dataclass
class TickCounts:
    opened: int = 0
    added: int = 0
    reduced: int = 0
    closed: int = 0
    blocked: int = 0
    errors: int = 0
    entries: int = 0
    events: list[DecisionEvent] = field(default_factory=list)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def position_state(position: Position) -> PositionState:
    """Convert the broker's position record into the strategy's exit/add input."""
    return PositionState(
        side=position.side,
        entry_price=position.entry_price,
        size_coins=position.size_coins,
        entry_atr=position.entry_atr or 0.0,
        entry_time_ms=position.opened_ms,
        confidence=position.confidence or Confidence.MEDIUM,
        entry_adx_threshold=position.entry_adx_threshold or 0.0,
        leverage=position.leverage,
        trailing_sl=position.trailing_sl,
        tp1_taken=position.tp1_taken,
        adds_count=position.adds_count,
        last_add_time_ms=position.last_add_ms,
    )


def snapshot_number(snapshot: Mapping[str, object], key: str) -> float:
    value = snapshot.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else float("nan")


def market_quote(quote: PriceQuote, now: int) -> MarketQuote:
    age_ms = None if quote.age_secs is None else int(quote.age_secs * 1000)
    return MarketQuote(mid=quote.price, mid_ms=None if age_ms is None else now - age_ms)


def execution_fields(
    result: OrderResult, action: TradeAction, reason_if_filled: str | None
) -> dict[str, Any]:
    """Event fields common to every executed-or-rejected order: status, action taken, reason, trade."""
    filled = result.filled
    return {
        "status": DecisionStatus.EXECUTED if filled else DecisionStatus.REJECTED,
        "phase": DecisionPhase.EXECUTION,
        "action_taken": action.value.lower() if filled else "rejected",
        "action": action,
        "reason_code": reason_if_filled if filled else _reject_code(result),
        "trade_id": result.fills[0].trade_id if result.fills else None,
    }


def _reject_code(result: OrderResult) -> str:
    return GateCode.BROKER_REJECTED.value if result.reject is None else f"broker_{result.reject.value}"


def reject_detail(result: OrderResult) -> dict[str, object]:
    if result.filled:
        return {}
    detail: dict[str, object] = {
        "broker_status": result.status.value,
        "broker_reject": None if result.reject is None else result.reject.value,
    }
    if "reason" in result.detail:  # e.g. the risk manager's reason code behind risk_denied
        detail["broker_reason"] = str(result.detail["reason"])
    return detail
