"""Closed vocabularies of the driver. Values are what goes into SQLite, logs and alerts.

Strategy-level words (Signal, Confidence, PositionSide, TradeAction) live in strategies.enums.
Add new enums here rather than scattering string literals.
"""

from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    PAPER = "paper"
    DRY_LIVE = "dry_live"
    LIVE = "live"


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class PriceSource(StrEnum):
    REDIS_MID = "redis_mid"
    REDIS_BBO = "redis_bbo"
    REST_MIDS = "rest_all_mids"
    LAST_CLOSE = "last_close"
    NONE = "none"


# --- driver building blocks (broker, paper fills, audit trail, alerts, config reload) -------------


class OrderSide(StrEnum):
    """Side of one order or fill on the venue (a LONG position is opened by BUY, closed by SELL)."""

    BUY = "BUY"
    SELL = "SELL"


class FeeMode(StrEnum):
    """Which Hyperliquid fee tier a paper fill pays; maker fills take the passive side, no slippage."""

    TAKER = "taker"
    MAKER = "maker"


class LedgerKind(StrEnum):
    """Kind of a row in the trades ledger: the four position actions, funding, and the cash seed."""

    OPEN = "OPEN"
    ADD = "ADD"
    REDUCE = "REDUCE"
    CLOSE = "CLOSE"
    FUNDING = "FUNDING"
    SEED = "SEED"


class ExecutionStatus(StrEnum):
    """Outcome of one broker call. PENDING = ambiguous (in flight, reconcile); WOULD_SEND = dry_live."""

    FILLED = "FILLED"
    REJECTED = "REJECTED"
    PENDING = "PENDING"
    WOULD_SEND = "WOULD_SEND"


class BrokerReject(StrEnum):
    """Why a broker refused an intent before (or instead of) reaching the venue."""

    NO_POSITION = "no_position"
    POSITION_EXISTS = "position_exists"
    SIDE_MISMATCH = "side_mismatch"
    NO_PRICE = "no_price"
    INVALID_SIZE = "invalid_size"
    INSUFFICIENT_CASH = "insufficient_cash"
    VENUE_REJECTED = "venue_rejected"


class DecisionEventType(StrEnum):
    ENTRY_SIGNAL = "entry_signal"
    EXIT_CHECK = "exit_check"
    GATE_BLOCK = "gate_block"
    FILL = "fill"
    FUNDING = "funding"


class DecisionStatus(StrEnum):
    EXECUTED = "executed"
    BLOCKED = "blocked"
    REJECTED = "rejected"
    HOLD = "hold"


class DecisionPhase(StrEnum):
    SIGNAL_GENERATION = "signal_generation"
    GATE_EVALUATION = "gate_evaluation"
    RISK_CHECK = "risk_check"
    EXECUTION = "execution"


class GateCode(StrEnum):
    """Entry gates of Phase 2; a decision event names the first one that failed."""

    NOT_READY = "not_ready"
    FLAT_MODE = "flat_mode"
    ZERO_PRICE = "zero_price"
    STALE_CANDLE = "stale_candle"
    CANDLE_DEDUPE = "candle_dedupe"
    LOW_CONFIDENCE = "low_confidence"
    MAX_OPEN_POSITIONS = "max_open_positions"
    REENTRY_COOLDOWN = "reentry_cooldown"
    ENTRY_COOLDOWN = "entry_cooldown"
    ENTRY_BUDGET = "entry_budget"
    SSF = "ssf"
    REEF = "reef"
    DATA_STALE = "data_stale"
    MARGIN_CAP = "margin_cap"
    MIN_NOTIONAL = "min_notional"
    SIGNAL_FLIP = "signal_flip"
    SHARD_TIMEOUT = "shard_timeout"
    BROKER_REJECTED = "broker_rejected"


class AlertKind(StrEnum):
    RESTART = "restart"
    SHUTDOWN = "shutdown"
    CONFIG = "config"
    RISK = "risk"
    HEALTH = "health"
    SHARD = "shard"
    TRADE = "trade"


class AlertChannel(StrEnum):
    DISCORD = "discord"
    TELEGRAM = "telegram"
    SLACK = "slack"
    WEBHOOK = "webhook"
    EMAIL = "email"


class ReloadOutcome(StrEnum):
    """Result of one strategy-config poll."""

    UNCHANGED = "unchanged"
    RELOADED = "reloaded"
    KEPT_LAST_GOOD = "kept_last_good"
    RESTART_REQUIRED = "restart_required"
