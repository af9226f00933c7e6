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
    RISK_DENIED = "risk_denied"  # every mode: risk, gates or kill switch said no (detail has the code)
    DUPLICATE_INTENT = "duplicate_intent"  # an OPEN for this symbol/side/candle already exists
    OMS_UNAVAILABLE = "oms_unavailable"  # the intent could not be committed: nothing sent
    NOT_SENT = "not_sent"  # the transport did not send (budget, connect failed)
    UNKNOWN_SYMBOL = "unknown_symbol"  # not in the venue's meta
    LEVERAGE_UPDATE_FAILED = "leverage_update_failed"


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
    # Written before an order goes to the broker and replaced by its outcome right after; one left
    # behind means the daemon died in between (its fill, if any, is linked to it all the same).
    PENDING = "pending"


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
    REGIME_GATE = "regime_gate"
    BREADTH_FILTER = "breadth_filter"
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


# --- Hyperliquid wire vocabularies (owned by engine/venue/types.py and engine/venue/exchange_client.py) ---


class VenueSide(StrEnum):
    """Order/fill side as the venue writes it: "B" (bid, buy) or "A" (ask, sell)."""

    BUY = "B"
    SELL = "A"


class Tif(StrEnum):
    """Limit-order time in force, with the venue's casing."""

    GTC = "Gtc"
    IOC = "Ioc"
    ALO = "Alo"


class LeverageType(StrEnum):
    CROSS = "cross"
    ISOLATED = "isolated"


class VenueOrderStatus(StrEnum):
    """Order states reported by `orderStatus` / `orderUpdates` (Hyperliquid's documented list)."""

    OPEN = "open"
    FILLED = "filled"
    CANCELED = "canceled"
    TRIGGERED = "triggered"
    REJECTED = "rejected"
    MARGIN_CANCELED = "marginCanceled"
    VAULT_WITHDRAWAL_CANCELED = "vaultWithdrawalCanceled"
    OPEN_INTEREST_CAP_CANCELED = "openInterestCapCanceled"
    SELF_TRADE_CANCELED = "selfTradeCanceled"
    REDUCE_ONLY_CANCELED = "reduceOnlyCanceled"
    SIBLING_FILLED_CANCELED = "siblingFilledCanceled"
    DELISTED_CANCELED = "delistedCanceled"
    LIQUIDATED_CANCELED = "liquidatedCanceled"
    SCHEDULED_CANCEL = "scheduledCancel"
    TICK_REJECTED = "tickRejected"
    MIN_TRADE_NTL_REJECTED = "minTradeNtlRejected"
    PERP_MARGIN_REJECTED = "perpMarginRejected"
    REDUCE_ONLY_REJECTED = "reduceOnlyRejected"
    BAD_ALO_PX_REJECTED = "badAloPxRejected"
    IOC_CANCEL_REJECTED = "iocCancelRejected"
    BAD_TRIGGER_PX_REJECTED = "badTriggerPxRejected"
    MARKET_ORDER_NO_LIQUIDITY_REJECTED = "marketOrderNoLiquidityRejected"
    POSITION_INCREASE_AT_OI_CAP_REJECTED = "positionIncreaseAtOpenInterestCapRejected"
    POSITION_FLIP_AT_OI_CAP_REJECTED = "positionFlipAtOpenInterestCapRejected"
    TOO_AGGRESSIVE_AT_OI_CAP_REJECTED = "tooAggressiveAtOpenInterestCapRejected"
    OPEN_INTEREST_INCREASE_REJECTED = "openInterestIncreaseRejected"
    INSUFFICIENT_SPOT_BALANCE_REJECTED = "insufficientSpotBalanceRejected"
    ORACLE_REJECTED = "oracleRejected"
    PERP_MAX_POSITION_REJECTED = "perpMaxPositionRejected"


class InfoType(StrEnum):
    """`POST /info` request types the project's client sends."""

    META = "meta"
    SPOT_META = "spotMeta"
    META_AND_ASSET_CTXS = "metaAndAssetCtxs"
    ALL_MIDS = "allMids"
    CANDLE_SNAPSHOT = "candleSnapshot"
    L2_BOOK = "l2Book"
    CLEARINGHOUSE_STATE = "clearinghouseState"
    SPOT_CLEARINGHOUSE_STATE = "spotClearinghouseState"  # unified accounts keep their USDC here
    USER_ABSTRACTION = "userAbstraction"  # the account mode (standard / unified / portfolio margin)
    USER_RATE_LIMIT = "userRateLimit"  # the per-address request budget
    USER_ROLE = "userRole"  # user, agent (API wallet), vault, sub-account or missing
    OPEN_ORDERS = "openOrders"
    FRONTEND_OPEN_ORDERS = "frontendOpenOrders"
    USER_FILLS = "userFills"
    USER_FILLS_BY_TIME = "userFillsByTime"
    ORDER_STATUS = "orderStatus"
    FUNDING_HISTORY = "fundingHistory"
    USER_FUNDING = "userFunding"
    PERP_DEXS = "perpDexs"


class ExchangeActionType(StrEnum):
    """`POST /exchange` action types the project signs."""

    ORDER = "order"
    CANCEL = "cancel"
    CANCEL_BY_CLOID = "cancelByCloid"
    UPDATE_LEVERAGE = "updateLeverage"
    SCHEDULE_CANCEL = "scheduleCancel"
    BATCH_MODIFY = "batchModify"


class ExchangeOutcomeKind(StrEnum):
    """What happened to one POST /exchange: ambiguous is never a rejection (keep in flight)."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    AMBIGUOUS = "ambiguous"
    NOT_SENT = "not_sent"


class VenueRejectReason(StrEnum):
    VENUE_ERROR = "venue_error"  # HTTP 200 {"status":"err"}
    HTTP_CLIENT_ERROR = "http_client_error"  # 4xx other than 429
    RATE_LIMITED = "rate_limited"  # 429: the venue did not process it


class AmbiguousReason(StrEnum):
    TIMEOUT = "timeout"
    CONNECTION_LOST = "connection_lost"
    SERVER_ERROR = "server_error"
    UNREADABLE_RESPONSE = "unreadable_response"


class NotSentReason(StrEnum):
    RATE_BUDGET = "rate_budget"
    CONNECT_FAILED = "connect_failed"


class RoundDirection(StrEnum):
    NEAREST = "nearest"
    UP = "up"
    DOWN = "down"


class CandleSource(StrEnum):
    """Where MarketDataHub.get_candles_df / candle_keys got their data (fallback order)."""

    REDIS = "redis"
    SQLITE = "sqlite"
    REST = "rest"


class MarketHealthReason(StrEnum):
    """Why the market-data path is (un)healthy, judged from the sidecar heartbeat."""

    OK = "ok"
    REDIS_DOWN = "redis_down"
    NO_HEARTBEAT = "no_heartbeat"
    HEARTBEAT_STALE = "heartbeat_stale"
    SIDECAR_DISCONNECTED = "sidecar_disconnected"


# --- risk, kill switches, live gates (owned by engine/risk*.py, kill_switch.py, live_gates.py) ---


class RiskReason(StrEnum):
    """Why the RiskManager denied an order or cancel; the code alerts, metrics and events key on."""

    HARD_KILL = "hard_kill"
    TRADING_HALTED = "trading_halted"
    TRADING_REDUCING = "trading_reducing"
    ACCOUNT_INVALID = "account_invalid"
    DRAWDOWN = "drawdown"
    DAILY_LOSS = "daily_loss"
    SLIPPAGE_GUARD = "slippage_guard"
    ENTRY_RATE = "entry_rate"
    ENTRY_RATE_SYMBOL = "entry_rate_symbol"
    EXIT_RATE = "exit_rate"
    CANCEL_RATE = "cancel_rate"
    MAX_POSITIONS = "max_positions"
    ORDER_NOTIONAL = "order_notional"
    SYMBOL_NOTIONAL = "symbol_notional"
    GROSS_NOTIONAL = "gross_notional"
    DEX_NOTIONAL = "dex_notional"  # one perp dex's gross notional above risk.max_dex_notional_usd
    COLLATERAL_NOTIONAL = "collateral_notional"  # one collateral token's, above max_collateral_notional_usd
    LEVERAGE = "leverage"
    CHECK_FAILED = "check_failed"  # the check raised or answered no verdict: denied (fail closed)
    ADDRESS_BUDGET = "address_budget"  # the per-address request budget is low: entries shed, exits kept


class TradingStateEvent(StrEnum):
    """What moves the persisted trading state (engine/risk/state.py holds the transition table)."""

    KILL_CLOSE_ONLY = "kill_close_only"
    KILL_HALT_ALL = "kill_halt_all"
    CLEAR = "clear"
    DRAWDOWN_BREACH = "drawdown_breach"
    DAILY_LOSS_BREACH = "daily_loss_breach"
    SLIPPAGE_BREACH = "slippage_breach"
    RECONCILE_MISMATCH = "reconcile_mismatch"
    HEALTH_BREACH = "health_breach"  # the health guard (engine/risk/health_guard.py) asked for close_only
    LIQUIDATION_CLOSE_ONLY = "liquidation_close_only"  # the venue liquidated us; policy "reducing"
    LIQUIDATION_HALT = "liquidation_halt"  # the venue liquidated us; policy "halted"


class DrawdownPolicy(StrEnum):
    """What a drawdown breach does besides stopping entries (YAML `risk.drawdown_reduce_policy`)."""

    NONE = "none"  # REDUCING only: open positions run their normal exits
    CLOSE_ALL = "close_all"  # REDUCING, and every open position is closed until flat or CLEAR


class ForcedExitReason(StrEnum):
    """Reason codes of exits the protections force (not the strategy's ExitReason)."""

    DRAWDOWN_CLOSE_ALL = "drawdown_close_all"


class ProtectionKind(StrEnum):
    """A venue-side protective trigger order of a live position (engine/execution/protection.py);
    the value is the OMS intent's `reason` and the trades row's reason when it fills."""

    STOP_LOSS = "protective_stop"
    TAKE_PROFIT = "protective_take_profit"


class ProtectionStep(StrEnum):
    """What the protection planner asks for: place a missing order, modify one that is out of step
    (size, trigger price or side), cancel one no position needs."""

    PLACE = "place"
    MODIFY = "modify"
    CANCEL = "cancel"


class HealthKey(StrEnum):
    """What the health guard (engine/risk/health_guard.py) watches; one alert per activation."""

    PENDING_FILLS = "pending_fills"  # fills received but not yet in the ledger above the limit
    FILL_INGEST_FAILED = "fill_ingest_failed"  # consecutive failed fill ingests
    UNMATCHED_FILLS = "unmatched_fills"  # ledger fills that no intent explains
    RISK_STATE_UNPERSISTED = "risk_state_unpersisted"  # a risk-state write failed (held in memory)
    CLOSE_ALL_BLOCKED = "close_all_blocked"  # a forced close could not be sent or was refused


class KillCommand(StrEnum):
    """An operator's kill-switch command (AI_QUANT_KILL_SWITCH or the kill file)."""

    CLOSE_ONLY = "close_only"
    HALT_ALL = "halt_all"
    CLEAR = "clear"


class KillSource(StrEnum):
    ENV = "env"
    FILE = "file"


class GateReason(StrEnum):
    """Result of the live send gates (engine/execution/gates.py); OPEN is the only one that sends."""

    OPEN = "open"
    NOT_LIVE_MODE = "not_live_mode"
    HARD_KILL = "hard_kill"
    LIVE_NOT_ENABLED = "live_not_enabled"
    CONFIRM_MISSING = "confirm_missing"
    CONFIRM_WRONG = "confirm_wrong"
    INVALID_VALUE = "invalid_value"


class LiquidationPolicy(StrEnum):
    """The trading state a venue liquidation moves us to (AI_QUANT_LIQUIDATION_RISK_STATE)."""

    REDUCING = "reducing"  # entries stop, exits of what is left still run (the default)
    HALTED = "halted"  # entries and exits stop until the operator's `clear`


class AccountAbstraction(StrEnum):
    """The venue's account mode (`userAbstraction`): where the collateral is reported."""

    DEFAULT = "default"  # standard: USDC collateral in the perp clearinghouse
    DISABLED = "disabled"
    DEX_ABSTRACTION = "dexAbstraction"
    UNIFIED_ACCOUNT = "unifiedAccount"  # balances and holds in spotClearinghouseState
    PORTFOLIO_MARGIN = "portfolioMargin"  # likewise

    @property
    def spot_collateral(self) -> bool:
        """True when equity must be read from the spot balances, not the perp accountValue."""
        return self in (AccountAbstraction.UNIFIED_ACCOUNT, AccountAbstraction.PORTFOLIO_MARGIN)


class UserRole(StrEnum):
    """What the venue knows an address as (`userRole`)."""

    MISSING = "missing"
    USER = "user"
    AGENT = "agent"  # an API wallet: signs for its master, has no account of its own
    VAULT = "vault"
    SUB_ACCOUNT = "subAccount"


class RequestPriority(StrEnum):
    """How an /exchange request ranks when the per-address request budget runs low."""

    ESSENTIAL = "essential"  # exits, protective orders and their cancels: never shed
    NON_ESSENTIAL = "non_essential"  # entries, cosmetic cancels/modifies, non-urgent re-places
