"""The `Broker` protocol: the one seam between the mode-blind engine and paper, dry_live or live.

Everything above a broker (UnifiedEngine, exits, ranking, gates, sizing) sees only this module's
records and protocol. Each mode implements it once: `engine.execution.paper_broker.PaperBroker` fills
locally through `engine.execution.fill_model`; the dry_live broker signs and records but cannot POST; the
live broker sends through the OMS. All records are immutable facts stamped with an event time
(when it happened on the market) and a recorded time (when we wrote it), both UTC epoch ms.
Sizes are coins, prices USD per coin, money USD.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from engine.config.perp_dexes import normalise_symbol
from engine.enums import (
    BrokerReject,
    ExecutionStatus,
    FeeMode,
    ForcedExitReason,
    LedgerKind,
    Mode,
    OrderSide,
    PriceSource,
)
from engine.execution.fill_model import MarketQuote
from engine.execution.verdicts import Deny, RiskVerdict
from strategies.enums import Confidence, EntryKind, ExitReason, PositionSide, TradeAction


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderIntent:
    """What the engine wants done to one symbol's net position, and why.

    `size_coins` is required for OPEN, ADD and REDUCE and ignored for CLOSE (the whole position).
    `reference_price` is the decision price (the fallback fill price in paper); `quote` the market
    at decision time; `reason` the code of why: the entry path (`EntryKind`) for OPEN/ADD, the
    `ExitReason` for REDUCE/CLOSE; its value is what the ledgers store. `decision_id` links the
    fill back to its decision event.
    """

    symbol: str
    action: TradeAction
    side: PositionSide
    reference_price: float
    event_ms: int
    reason: EntryKind | ExitReason | ForcedExitReason
    size_coins: float | None = None
    quote: MarketQuote | None = None
    confidence: Confidence | None = None
    leverage: float = 1.0
    entry_atr: float | None = None
    entry_adx_threshold: float | None = None
    decision_id: str | None = None

    def __post_init__(self) -> None:
        if not self.symbol or self.symbol != normalise_symbol(self.symbol):
            raise ValueError(
                f"OrderIntent.symbol must be a non-empty upper-case name or an exact dex:COIN, "
                f"got {self.symbol!r}"
            )
        if not math.isfinite(self.reference_price) or self.reference_price < 0:
            raise ValueError(
                f"OrderIntent.reference_price must be finite and >= 0, got {self.reference_price!r}"
            )
        entry = self.action in (TradeAction.OPEN, TradeAction.ADD)
        expected = (EntryKind,) if entry else (ExitReason, ForcedExitReason)
        if not isinstance(self.reason, expected):
            names = " or ".join(e.__name__ for e in expected)
            raise ValueError(f"OrderIntent.reason of {self.action} must be an {names}, got {self.reason!r}")
        if not math.isfinite(self.leverage) or self.leverage < 1:
            raise ValueError(f"OrderIntent.leverage must be finite and >= 1, got {self.leverage!r}")
        if self.action is not TradeAction.CLOSE:
            size = self.size_coins
            if size is None or not math.isfinite(size) or size <= 0:
                raise ValueError(
                    f"OrderIntent.size_coins must be finite and > 0 for {self.action}, got {size!r}"
                )


@dataclass(frozen=True, slots=True, kw_only=True)
class Fill:
    """One execution (or a funding/seed cash movement) as written to the trades ledger.

    `cash_delta_usd` = realised_pnl_usd - fee_usd + funding_usd, and `balance_usd` is the cash
    after it, so the ledger alone proves cash == seed - sum(fees) + sum(realised) + sum(funding).
    """

    trade_id: int
    mode: Mode
    kind: LedgerKind
    symbol: str
    position_side: PositionSide | None
    order_side: OrderSide | None
    size_coins: float
    price: float
    notional_usd: float
    fee_usd: float
    fee_rate: float
    liquidity: FeeMode | None
    realised_pnl_usd: float
    funding_usd: float
    cash_delta_usd: float
    balance_usd: float
    reason: str
    event_ms: int
    recorded_ms: int
    price_source: PriceSource | None = None
    leverage: float = 1.0
    margin_used_usd: float = 0.0
    decision_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderResult:
    """The outcome of one `Broker.execute` call.

    FILLED carries the fills; REJECTED a reject code and no fills; PENDING means the venue outcome
    is unknown (keep it in flight and reconcile, never treat it as rejected); WOULD_SEND is dry_live.
    `deny` is the pre-send check's typed verdict when it refused the order (reject RISK_DENIED).
    """

    intent: OrderIntent
    status: ExecutionStatus
    fills: tuple[Fill, ...] = ()
    reject: BrokerReject | None = None
    detail: Mapping[str, object] = field(default_factory=dict)
    deny: Deny | None = None

    @property
    def filled(self) -> bool:
        return self.status is ExecutionStatus.FILLED


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    """One net position per symbol, with the strategy state exits need (trailing stop, TP1)."""

    symbol: str
    side: PositionSide
    size_coins: float
    entry_price: float
    leverage: float
    margin_used_usd: float
    open_trade_id: int
    opened_ms: int
    last_funding_ms: int
    entry_atr: float | None = None
    entry_adx_threshold: float | None = None
    confidence: Confidence | None = None
    adds_count: int = 0
    last_add_ms: int = 0
    tp1_taken: bool = False
    trailing_sl: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExitState:
    """Strategy-owned fields of a position that exits update between fills (persisted by the broker)."""

    trailing_sl: float | None
    tp1_taken: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountSnapshot:
    """Cash and equity at `recorded_ms`. Equity = cash + unrealised - estimated close fees.

    `marks_stale` is True when some position had no mark and was valued at its entry price; the
    engine blocks new entries on a stale account (fail closed).
    """

    mode: Mode
    cash_usd: float
    equity_usd: float
    unrealised_pnl_usd: float
    margin_used_usd: float
    open_positions: int
    recorded_ms: int
    marks_stale: bool = False


PreSendCheck = Callable[[OrderIntent, AccountSnapshot, Mapping[str, Position], int], RiskVerdict]
"""(intent, the broker's account, its positions, now_ms) -> Allow() or Deny(reason, details).

Injected into every broker's constructor and called right before each send with the broker's own
view; `RiskManager.check` fits as a bound method. An exception or a non-verdict denies."""


@runtime_checkable
class Broker(Protocol):
    """What the engine calls, identically in every mode."""

    @property
    def mode(self) -> Mode: ...

    def execute(self, intent: OrderIntent, now_ms: int) -> OrderResult:
        """Carry out an OPEN, ADD, REDUCE or CLOSE; never raise for a refusal (return REJECTED)."""
        ...

    def positions(self) -> Mapping[str, Position]:
        """Return the open positions by symbol (a read-only view)."""
        ...

    def account(self, marks: Mapping[str, float], now_ms: int) -> AccountSnapshot:
        """Return cash and equity, valuing positions at `marks` (USD per coin by symbol)."""
        ...

    def update_exit_state(self, symbol: str, state: ExitState, now_ms: int) -> None:
        """Persist the trailing stop and TP1 flag of an open position; raise KeyError if none."""
        ...

    def accrue_funding(
        self, rates: Mapping[str, float], marks: Mapping[str, float], now_ms: int
    ) -> tuple[Fill, ...]:
        """Apply hourly funding due up to `now_ms` (rates per hour by symbol); return the ledger rows.

        Live brokers ingest the venue's funding instead and may return ().
        """
        ...
