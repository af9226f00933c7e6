"""Records and seams of the engine tick: options, the tick report, the market/funding protocols.

Split from `engine.tick.engine` to keep the loop readable: what the engine reads (MarketView,
FundingSource, ReconfigurableExecutor), what it is configured with (EngineOptions), what each tick
reports (TickReport with its timing breakdown), and small pure helpers that turn broker results
and positions into the strategy's and the decision log's terms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from cluster.shard_core import ConfigSource
from engine.enums import DecisionPhase, DecisionStatus, GateCode, ReloadOutcome
from engine.execution.broker import OrderResult, Position
from engine.execution.fill_model import MarketQuote
from engine.marketdata.hub import KeysSnapshot, PriceQuote
from engine.runtime.clock import wall_ms as wall_ms  # re-exported: the tick's default clock
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
    heartbeat_secs: float = 30.0  # engine.heartbeat_every_s / AI_QUANT_HEARTBEAT_SECS; <= 0 disables


@dataclass(frozen=True, slots=True)
class TickTiming:
    keys_ms: float
    shards_ms: float
    exits_ms: float
    entries_ms: float
    funding_ms: float
    total_ms: float

    @classmethod
    def between(cls, *marks: float) -> TickTiming:
        """Build from the six `time.perf_counter()` marks: start, keys, shards, exits, entries, end."""
        start, keys, shards, exits, entries, end = (m * 1000.0 for m in marks)
        return cls(
            keys_ms=keys - start, shards_ms=shards - keys, exits_ms=exits - shards,
            entries_ms=entries - exits, funding_ms=end - entries, total_ms=end - start,
        )  # fmt: skip


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
    market: str = "ok"  # engine.tick.blind: `ok` or `blind:<reason>`
    heartbeat: str | None = None  # the `engine ok ...` line when one was due this tick

    def status_line(self, sources: str = "") -> str:
        """One line per tick; `sources` (`sources=ws:N,...`) sits with the market state, so the
        line still ends with the total (operators' and tests' parsers read it there)."""
        t = self.timing
        market = f"market={self.market} {sources} " if sources else f"market={self.market} "
        return (
            f"tick={self.tick_id} symbols={self.symbols} evaluated={self.evaluated} "
            f"open_pos={self.open_positions} opened={self.opened} added={self.added} "
            f"reduced={self.reduced} closed={self.closed} blocked={self.blocked} errors={self.errors} "
            f"cash={self.cash_usd:.2f} equity={self.equity_usd:.2f} config={self.reload.value} "
            f"{market}keys={t.keys_ms:.1f}ms shards={t.shards_ms:.1f}ms "
            f"exits={t.exits_ms:.1f}ms entries={t.entries_ms:.1f}ms funding={t.funding_ms:.1f}ms "
            f"total={t.total_ms:.1f}ms"
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
            "blocked": float(self.blocked), "market_blind": float(self.market != "ok"),
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


def market_quote(quote: PriceQuote, now: int, *, use_bbo: bool = True) -> MarketQuote:
    """Turn the hub's quote into the fill model's: the mid, plus the BBO when `use_bbo` (YAML
    `trade.use_bbo_for_fills`) and the hub had a fresh one. Without a BBO a paper fill prices at
    the mid; with one, a taker BUY fills at the ask and a SELL at the bid."""
    age_ms = None if quote.age_secs is None else int(quote.age_secs * 1000)
    mid_ms = None if age_ms is None else now - age_ms
    if not use_bbo or quote.bid is None or quote.ask is None or quote.bbo_age_secs is None:
        return MarketQuote(mid=quote.price, mid_ms=mid_ms)
    bbo_ms = now - int(quote.bbo_age_secs * 1000)
    return MarketQuote(mid=quote.price, mid_ms=mid_ms, bid=quote.bid, ask=quote.ask, bbo_ms=bbo_ms)


def pending_fields(action: TradeAction) -> dict[str, Any]:
    """Event fields of an order about to be sent: its decision is on disk before any fill can be."""
    return {
        "status": DecisionStatus.PENDING,
        "phase": DecisionPhase.EXECUTION,
        "action_taken": "pending",
        "action": action,
    }


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
    # A pre-send denial is keyed on its RiskReason, the same code the OMS DENY row stores.
    if result.deny is not None:
        return result.deny.reason.value
    return GateCode.BROKER_REJECTED.value if result.reject is None else f"broker_{result.reject.value}"


def reject_detail(result: OrderResult) -> dict[str, object]:
    if result.filled:
        return {}
    detail: dict[str, object] = {
        "broker_status": result.status.value,
        "broker_reject": None if result.reject is None else result.reject.value,
    }
    if result.deny is not None:
        detail["risk"] = dict(result.deny.details)
    return detail
