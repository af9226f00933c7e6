"""The pre-trade risk check: a pure function of the order, the account and the risk state.

`check(intent, account, positions, limits, state, now_ms)` returns `Allow()` or
`Deny(reason, details)` (engine/execution/verdicts.py) with a RiskReason code and the numbers behind
it, and never writes anything. Order of checks:

1. hard kill (`AI_QUANT_HARD_KILL_SWITCH`) → every order denied, exits included;
2. trading state HALTED (operator `halt_all`) → every order denied, exits included;
3. exits (REDUCE/CLOSE): only the exit rate limit applies — no entry limit, breaker or exposure
   cap ever blocks an exit;
4. entries (OPEN/ADD): REDUCING → denied; account equity must be finite and > 0 with fresh marks;
   breakers (drawdown from peak, daily loss, median slippage); entry rate, per-symbol entry rate;
   exposure caps (max open positions, per-order, per-symbol and gross notional, leverage).

Cancels go through `check_cancel`: only the cancel rate limit applies, in every trading state
(a cancel can only lower exposure). Venue-side protective orders (reduce-only stop/take-profit
triggers, engine/execution/protection.py) go through `check_protective`: only the hard kill and
HALTED stop them; no entry cap, breaker, REDUCING, account read or exit rate ever does (they can
only close, and a missing stop is the larger risk). The live gates (engine/execution/gates.py)
decide separately whether anything may be POSTed at all. Why its own module: the check and its
arithmetic (drawdown, slippage, UTC day) are pure and tested on their own; `RiskManager`
(engine/risk/manager.py) is the stateful shell that feeds them.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from engine.config.perp_dexes import DEFAULT_COLLATERAL, dex_of
from engine.enums import OrderSide, RiskReason, TradingState
from engine.execution.broker import AccountSnapshot, OrderIntent, Position
from engine.execution.verdicts import ALLOW, Deny, RiskVerdict
from engine.risk.limits import RiskLimits
from strategies.enums import TradeAction

WINDOW_MS = 60_000
ENTRY_ACTIONS = frozenset({TradeAction.OPEN, TradeAction.ADD})


# --- the check's view of the state --------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskSnapshot:
    """Everything the pure check needs besides the order, account and positions.

    Send times are epoch ms of orders sent (or sent ambiguously) in about the last minute;
    `peak_equity_usd` is the UTC-day peak; `daily_net_pnl_usd` realised PnL minus fees today;
    `slippage_bps` the latest entry slippages, at most the configured window.
    """

    trading_state: TradingState = TradingState.ACTIVE
    hard_kill: bool = False
    entries_sent_ms: tuple[int, ...] = ()
    entries_sent_ms_by_symbol: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    exits_sent_ms: tuple[int, ...] = ()
    cancels_sent_ms: tuple[int, ...] = ()
    peak_equity_usd: float | None = None
    daily_net_pnl_usd: float = 0.0
    slippage_bps: tuple[float, ...] = ()
    dex_collateral: Mapping[str, str] = field(default_factory=dict)  # perp dex -> its collateral token


def is_entry(intent: OrderIntent) -> bool:
    """OPEN and ADD add exposure (entries); REDUCE and CLOSE remove it (exits)."""
    return intent.action in ENTRY_ACTIONS


def _recent(times_ms: tuple[int, ...] | deque[int], now_ms: int) -> int:
    return sum(1 for t in times_ms if now_ms - WINDOW_MS < t <= now_ms)


def _rate_deny(reason: RiskReason, times_ms: tuple[int, ...], limit: int, now_ms: int) -> Deny | None:
    sent = _recent(times_ms, now_ms)
    if sent >= limit:
        return Deny(reason, {"sent_last_60s": sent, "limit_per_min": limit})
    return None


# --- the pure check -----------------------------------------------------------------------------


def check(
    intent: OrderIntent,
    account: AccountSnapshot,
    positions: Mapping[str, Position],
    limits: RiskLimits,
    state: RiskSnapshot,
    now_ms: int,
) -> RiskVerdict:
    """Decide whether `intent` may be sent now; pure, never raises on valid records."""
    if state.hard_kill:
        return Deny(RiskReason.HARD_KILL, {"action": intent.action.value})
    if state.trading_state is TradingState.HALTED:
        return Deny(RiskReason.TRADING_HALTED, {"action": intent.action.value})
    if not is_entry(intent):
        denied = _rate_deny(RiskReason.EXIT_RATE, state.exits_sent_ms, limits.max_exit_orders_per_min, now_ms)
        return ALLOW if denied is None else denied
    if state.trading_state is TradingState.REDUCING:
        return Deny(RiskReason.TRADING_REDUCING, {"action": intent.action.value})
    for step in (_account_deny, _breaker_deny, _entry_rate_deny, _exposure_deny, _dex_caps_deny):
        denied = step(intent, account, positions, limits, state, now_ms)
        if denied is not None:
            return denied
    return ALLOW


def check_cancel(limits: RiskLimits, state: RiskSnapshot, now_ms: int) -> RiskVerdict:
    """Decide whether a cancel may be sent: only the cancel rate applies, in every trading state."""
    denied = _rate_deny(RiskReason.CANCEL_RATE, state.cancels_sent_ms, limits.max_cancels_per_min, now_ms)
    return ALLOW if denied is None else denied


def check_protective(state: RiskSnapshot, action: str) -> RiskVerdict:
    """Decide whether a protective order may be placed or modified: denied only by the hard kill
    and by HALTED (the operator stopped every order; what rests on the venue stays)."""
    if state.hard_kill:
        return Deny(RiskReason.HARD_KILL, {"action": action})
    if state.trading_state is TradingState.HALTED:
        return Deny(RiskReason.TRADING_HALTED, {"action": action})
    return ALLOW


def _account_deny(
    intent: OrderIntent, account: AccountSnapshot, positions: Mapping[str, Position],
    limits: RiskLimits, state: RiskSnapshot, now_ms: int,
) -> Deny | None:  # fmt: skip
    equity = account.equity_usd
    if not math.isfinite(equity) or equity <= 0 or account.marks_stale:
        return Deny(RiskReason.ACCOUNT_INVALID, {"equity_usd": equity, "marks_stale": account.marks_stale})
    return None


def drawdown_pct(peak_equity_usd: float | None, equity_usd: float) -> float:
    """Return the drawdown from the peak in percent (0 when there is no peak or equity is above it)."""
    if peak_equity_usd is None or peak_equity_usd <= 0 or equity_usd >= peak_equity_usd:
        return 0.0
    return (peak_equity_usd - equity_usd) / peak_equity_usd * 100.0


def _breaker_deny(
    intent: OrderIntent, account: AccountSnapshot, positions: Mapping[str, Position],
    limits: RiskLimits, state: RiskSnapshot, now_ms: int,
) -> Deny | None:  # fmt: skip
    if limits.max_drawdown_pct > 0:
        dd = drawdown_pct(state.peak_equity_usd, account.equity_usd)
        if dd >= limits.max_drawdown_pct:
            return Deny(RiskReason.DRAWDOWN, {
                "drawdown_pct": dd, "limit_pct": limits.max_drawdown_pct,
                "equity_usd": account.equity_usd, "peak_equity_usd": state.peak_equity_usd,
            })  # fmt: skip
    if limits.max_daily_loss_usd > 0 and state.daily_net_pnl_usd <= -limits.max_daily_loss_usd:
        return Deny(RiskReason.DAILY_LOSS, {
            "daily_net_pnl_usd": state.daily_net_pnl_usd, "limit_usd": limits.max_daily_loss_usd,
        })  # fmt: skip
    median = slippage_breach_median(limits, state.slippage_bps)
    if median is not None:
        return Deny(RiskReason.SLIPPAGE_GUARD, {
            "median_bps": median, "limit_bps": limits.slippage_guard_max_median_bps,
            "window_fills": limits.slippage_guard_window_fills,
        })  # fmt: skip
    return None


def slippage_breach_median(limits: RiskLimits, window_bps: tuple[float, ...]) -> float | None:
    """Return the window's median when the guard is on, the window full and the median too high."""
    if not limits.slippage_guard_enabled or limits.slippage_guard_max_median_bps <= 0:
        return None
    recent = window_bps[-limits.slippage_guard_window_fills :]
    if len(recent) < limits.slippage_guard_window_fills:
        return None
    median = statistics.median(recent)
    return median if median > limits.slippage_guard_max_median_bps else None


def _entry_rate_deny(
    intent: OrderIntent, account: AccountSnapshot, positions: Mapping[str, Position],
    limits: RiskLimits, state: RiskSnapshot, now_ms: int,
) -> Deny | None:  # fmt: skip
    denied = _rate_deny(RiskReason.ENTRY_RATE, state.entries_sent_ms, limits.max_entry_orders_per_min, now_ms)
    if denied is not None:
        return denied
    per_symbol = state.entries_sent_ms_by_symbol.get(intent.symbol, ())
    denied = _rate_deny(
        RiskReason.ENTRY_RATE_SYMBOL, per_symbol, limits.max_entry_orders_per_min_per_symbol, now_ms
    )
    if denied is not None:
        return Deny(denied.reason, {**denied.details, "symbol": intent.symbol})
    return None


def _position_notional(position: Position) -> float:
    return abs(position.size_coins) * position.entry_price


def _exposure_deny(
    intent: OrderIntent, account: AccountSnapshot, positions: Mapping[str, Position],
    limits: RiskLimits, state: RiskSnapshot, now_ms: int,
) -> Deny | None:  # fmt: skip
    held = intent.symbol in positions
    if limits.max_open_positions > 0 and not held and len(positions) >= limits.max_open_positions:
        return Deny(RiskReason.MAX_POSITIONS, {"open": len(positions), "limit": limits.max_open_positions})
    if limits.max_leverage > 0 and intent.leverage > limits.max_leverage:
        return Deny(RiskReason.LEVERAGE, {"leverage": intent.leverage, "limit": limits.max_leverage})
    notional = float(intent.size_coins or 0.0) * intent.reference_price
    if notional <= 0 or not math.isfinite(notional):
        # Without a price the caps cannot be evaluated: fail closed if any is configured.
        if _any_notional_cap(limits):
            return Deny(
                RiskReason.ORDER_NOTIONAL, {"notional_usd": None, "reference_price": intent.reference_price}
            )
        return None
    return _notional_caps_deny(intent, notional, account, positions, limits)


def _any_notional_cap(limits: RiskLimits) -> bool:
    return any(
        cap > 0
        for cap in (
            limits.max_order_notional_usd, limits.max_symbol_notional_usd,
            limits.max_gross_notional_usd, limits.max_gross_leverage,
            limits.max_dex_notional_usd, limits.max_collateral_notional_usd,
        )
    )  # fmt: skip


def _notional_caps_deny(
    intent: OrderIntent, notional: float, account: AccountSnapshot,
    positions: Mapping[str, Position], limits: RiskLimits,
) -> Deny | None:  # fmt: skip
    if limits.max_order_notional_usd > 0 and notional > limits.max_order_notional_usd:
        return Deny(
            RiskReason.ORDER_NOTIONAL, {"notional_usd": notional, "limit_usd": limits.max_order_notional_usd}
        )
    held = positions.get(intent.symbol)
    symbol_total = notional + (0.0 if held is None else _position_notional(held))
    if limits.max_symbol_notional_usd > 0 and symbol_total > limits.max_symbol_notional_usd:
        limit = limits.max_symbol_notional_usd
        return Deny(
            RiskReason.SYMBOL_NOTIONAL,
            {"symbol": intent.symbol, "notional_usd": symbol_total, "limit_usd": limit},
        )
    gross = notional + sum(_position_notional(p) for p in positions.values())
    if limits.max_gross_notional_usd > 0 and gross > limits.max_gross_notional_usd:
        return Deny(
            RiskReason.GROSS_NOTIONAL,
            {"gross_notional_usd": gross, "limit_usd": limits.max_gross_notional_usd},
        )
    gross_leverage = gross / account.equity_usd
    if limits.max_gross_leverage > 0 and gross_leverage > limits.max_gross_leverage:
        return Deny(
            RiskReason.LEVERAGE, {"gross_leverage": gross_leverage, "limit": limits.max_gross_leverage}
        )
    return None


def _dex_caps_deny(
    intent: OrderIntent, account: AccountSnapshot, positions: Mapping[str, Position],
    limits: RiskLimits, state: RiskSnapshot, now_ms: int,
) -> Deny | None:  # fmt: skip
    """Per perp dex and per collateral token gross notional caps. A symbol whose dex's collateral
    is unknown is denied while the collateral cap is on (fail closed)."""
    if limits.max_dex_notional_usd <= 0 and limits.max_collateral_notional_usd <= 0:
        return None
    notional = float(intent.size_coins or 0.0) * intent.reference_price  # finite > 0: checked before
    dex = dex_of(intent.symbol)
    if limits.max_dex_notional_usd > 0:
        total = notional + sum(_position_notional(p) for s, p in positions.items() if dex_of(s) == dex)
        if total > limits.max_dex_notional_usd:
            return Deny(RiskReason.DEX_NOTIONAL,
                        {"dex": dex, "notional_usd": total, "limit_usd": limits.max_dex_notional_usd})
    if limits.max_collateral_notional_usd <= 0:
        return None
    token = state.dex_collateral.get(dex, DEFAULT_COLLATERAL if dex == "" else None)
    if token is None:
        return Deny(RiskReason.COLLATERAL_NOTIONAL, {"dex": dex, "collateral": None})
    total = notional + sum(
        _position_notional(p) for s, p in positions.items()
        if state.dex_collateral.get(dex_of(s), DEFAULT_COLLATERAL) == token
    )  # fmt: skip
    if total > limits.max_collateral_notional_usd:
        limit = limits.max_collateral_notional_usd
        detail = {"collateral": token, "notional_usd": total, "limit_usd": limit}
        return Deny(RiskReason.COLLATERAL_NOTIONAL, detail)
    return None


# --- arithmetic shared with the stateful shell -----------------------------------------------


def utc_day(ms: int) -> str:
    """Return the UTC date (YYYY-MM-DD) of an epoch-ms time."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def slippage_bps(side: OrderSide, fill_price: float, reference_price: float) -> float:
    """Return the adverse move of a fill from its reference (ask for buys, bid for sells) in bps, >= 0."""
    if reference_price <= 0 or not math.isfinite(reference_price) or not math.isfinite(fill_price):
        return 0.0
    move = fill_price - reference_price if side is OrderSide.BUY else reference_price - fill_price
    return max(0.0, move / reference_price * 10_000.0)
