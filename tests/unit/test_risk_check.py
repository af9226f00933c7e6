"""engine.risk.check.check: every RiskReason denies with its code; exits and cancels pass where they should.

CASES is keyed by RiskReason and the tests are parametrized over the enum, so a new reason code
without an example here fails the suite.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.enums import Mode, OrderSide, RiskReason, TradingState
from engine.execution.broker import AccountSnapshot, OrderIntent, Position
from engine.execution.verdicts import ALLOW, FAIL_CLOSED_REASONS, Allow, Deny, check_failed
from engine.risk.check import (
    RiskSnapshot,
    check,
    check_cancel,
    drawdown_pct,
    slippage_bps,
)
from engine.risk.limits import RiskLimits
from strategies.enums import EntryKind, ExitReason, PositionSide, TradeAction

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _account(equity: float = 10_000.0, *, stale: bool = False) -> AccountSnapshot:
    return AccountSnapshot(
        mode=Mode.LIVE, cash_usd=equity, equity_usd=equity, unrealised_pnl_usd=0.0, margin_used_usd=0.0,
        open_positions=1, recorded_ms=NOW, marks_stale=stale,
    )  # fmt: skip


def _position(symbol: str = "ETH", size: float = 1.0, price: float = 100.0) -> Position:
    return Position(
        symbol=symbol, side=PositionSide.LONG, size_coins=size, entry_price=price, leverage=1.0,
        margin_used_usd=size * price, open_trade_id=1, opened_ms=NOW - 3_600_000, last_funding_ms=NOW,
    )  # fmt: skip


def _intent(
    action: TradeAction = TradeAction.OPEN, symbol: str = "BTC", size: float = 1.0, leverage: float = 1.0
) -> OrderIntent:
    return OrderIntent(
        symbol=symbol, action=action, side=PositionSide.LONG, reference_price=100.0, event_ms=NOW,
        reason=EntryKind.STANDARD if action in (TradeAction.OPEN, TradeAction.ADD) else ExitReason.STOP_LOSS,
        size_coins=None if action is TradeAction.CLOSE else size, leverage=leverage,
    )  # fmt: skip


EXIT = _intent(TradeAction.CLOSE, symbol="ETH")


@dataclass(frozen=True)
class Case:
    """An order (or a cancel when intent is None) that must be denied with the case's reason."""

    intent: OrderIntent | None
    limits: RiskLimits = field(default_factory=RiskLimits)
    state: RiskSnapshot = field(default_factory=RiskSnapshot)
    account: AccountSnapshot = field(default_factory=_account)

    def held(self) -> Mapping[str, Position]:
        return {"ETH": _position()}


def _snap(**kwargs: object) -> RiskSnapshot:
    return replace(RiskSnapshot(), **kwargs)


ENTRY = _intent()
RECENT = (NOW - 1_000, NOW - 2_000)

CASES: dict[RiskReason, Case] = {
    RiskReason.HARD_KILL: Case(ENTRY, state=_snap(hard_kill=True)),
    RiskReason.TRADING_HALTED: Case(ENTRY, state=_snap(trading_state=TradingState.HALTED)),
    RiskReason.TRADING_REDUCING: Case(ENTRY, state=_snap(trading_state=TradingState.REDUCING)),
    RiskReason.ACCOUNT_INVALID: Case(ENTRY, account=_account(0.0)),
    RiskReason.DRAWDOWN: Case(
        ENTRY,
        limits=RiskLimits(max_drawdown_pct=5.0),
        state=_snap(peak_equity_usd=10_000.0),
        account=_account(9_500.0),
    ),
    RiskReason.DAILY_LOSS: Case(
        ENTRY, limits=RiskLimits(max_daily_loss_usd=100.0), state=_snap(daily_net_pnl_usd=-100.0)
    ),
    RiskReason.SLIPPAGE_GUARD: Case(
        ENTRY,
        limits=RiskLimits(
            slippage_guard_enabled=True, slippage_guard_window_fills=3, slippage_guard_max_median_bps=5.0
        ),
        state=_snap(slippage_bps=(10.0, 10.0, 10.0)),
    ),
    RiskReason.ENTRY_RATE: Case(
        ENTRY, limits=RiskLimits(max_entry_orders_per_min=2), state=_snap(entries_sent_ms=RECENT)
    ),
    RiskReason.ENTRY_RATE_SYMBOL: Case(
        ENTRY,
        limits=RiskLimits(max_entry_orders_per_min_per_symbol=2),
        state=_snap(entries_sent_ms=RECENT, entries_sent_ms_by_symbol={"BTC": RECENT}),
    ),
    RiskReason.EXIT_RATE: Case(
        EXIT, limits=RiskLimits(max_exit_orders_per_min=2), state=_snap(exits_sent_ms=RECENT)
    ),
    RiskReason.CANCEL_RATE: Case(
        None, limits=RiskLimits(max_cancels_per_min=2), state=_snap(cancels_sent_ms=RECENT)
    ),
    RiskReason.MAX_POSITIONS: Case(ENTRY, limits=RiskLimits(max_open_positions=1)),
    RiskReason.ORDER_NOTIONAL: Case(ENTRY, limits=RiskLimits(max_order_notional_usd=50.0)),
    RiskReason.SYMBOL_NOTIONAL: Case(
        _intent(TradeAction.ADD, symbol="ETH"), limits=RiskLimits(max_symbol_notional_usd=150.0)
    ),
    RiskReason.GROSS_NOTIONAL: Case(ENTRY, limits=RiskLimits(max_gross_notional_usd=150.0)),
    RiskReason.DEX_NOTIONAL: Case(ENTRY, limits=RiskLimits(max_dex_notional_usd=150.0)),
    RiskReason.COLLATERAL_NOTIONAL: Case(ENTRY, limits=RiskLimits(max_collateral_notional_usd=150.0)),
    RiskReason.LEVERAGE: Case(_intent(leverage=5.0), limits=RiskLimits(max_leverage=3.0)),
}

# CHECK_FAILED is given by the brokers when the check itself breaks (test_check_failed_... below).
CHECK_REASONS = [reason for reason in RiskReason if reason not in FAIL_CLOSED_REASONS]

# Reasons that also stop exits (everything else must let a CLOSE through).
EXIT_BLOCKING = {RiskReason.HARD_KILL, RiskReason.TRADING_HALTED, RiskReason.EXIT_RATE}


def _run(case: Case, intent: OrderIntent | None) -> Allow | Deny:
    if intent is None:
        return check_cancel(case.limits, case.state, NOW)
    return check(intent, case.account, case.held(), case.limits, case.state, NOW)


@pytest.mark.parametrize("reason", CHECK_REASONS)
def test_check_each_reason_denies_with_its_code(reason: RiskReason) -> None:
    case = CASES[reason]
    verdict = _run(case, case.intent)
    assert isinstance(verdict, Deny)
    assert verdict.reason is reason
    assert verdict.allowed is False
    assert verdict.details  # structured numbers, never empty


@pytest.mark.parametrize("reason", CHECK_REASONS)
def test_check_exit_passes_unless_reason_blocks_exits(reason: RiskReason) -> None:
    case = CASES[reason]
    verdict = _run(case, EXIT)
    if reason in EXIT_BLOCKING:
        assert isinstance(verdict, Deny) and verdict.reason is reason
    else:
        assert verdict == ALLOW


@pytest.mark.parametrize("reason", CHECK_REASONS)
def test_check_cancel_passes_unless_cancel_rate(reason: RiskReason) -> None:
    case = CASES[reason]
    verdict = check_cancel(case.limits, case.state, NOW)
    if reason is RiskReason.CANCEL_RATE:
        assert isinstance(verdict, Deny) and verdict.reason is RiskReason.CANCEL_RATE
    else:
        assert verdict.allowed


@pytest.mark.parametrize("reason", CHECK_REASONS)
def test_check_reason_case_is_minimal(reason: RiskReason) -> None:
    """Each case denies only because of its own setting: with default limits/state it passes."""
    case = CASES[reason]
    baseline = Case(case.intent)
    assert _run(baseline, case.intent).allowed


def test_check_reduce_passes_when_reducing_and_every_entry_limit_is_exhausted() -> None:
    limits = RiskLimits(
        max_entry_orders_per_min=1, max_entry_orders_per_min_per_symbol=1, max_open_positions=1,
        max_order_notional_usd=1.0, max_gross_notional_usd=1.0, max_drawdown_pct=1.0, max_daily_loss_usd=1.0,
    )  # fmt: skip
    state = _snap(
        trading_state=TradingState.REDUCING, entries_sent_ms=RECENT,
        entries_sent_ms_by_symbol={"ETH": RECENT}, peak_equity_usd=20_000.0, daily_net_pnl_usd=-5_000.0,
    )  # fmt: skip
    reduce = _intent(TradeAction.REDUCE, symbol="ETH", size=0.5)
    positions = {"ETH": _position()}
    assert check(reduce, _account(), positions, limits, state, NOW) == ALLOW
    assert check(EXIT, _account(0.0, stale=True), positions, limits, state, NOW) == ALLOW


def test_check_failed_is_a_deny_naming_the_stage_and_error_type() -> None:
    verdict = check_failed("pre_send_check", RuntimeError("secret-free message"))
    assert verdict == Deny(RiskReason.CHECK_FAILED, {"stage": "pre_send_check", "error": "RuntimeError"})
    assert set(CHECK_REASONS) | FAIL_CLOSED_REASONS == set(RiskReason)


def test_check_details_carry_the_numbers() -> None:
    case = CASES[RiskReason.MAX_POSITIONS]
    assert _run(case, case.intent) == Deny(RiskReason.MAX_POSITIONS, {"open": 1, "limit": 1})
    case = CASES[RiskReason.ENTRY_RATE_SYMBOL]
    verdict = _run(case, case.intent)
    assert isinstance(verdict, Deny)
    assert verdict.details == {"sent_last_60s": 2, "limit_per_min": 2, "symbol": "BTC"}


def test_check_max_positions_allows_add_to_held_symbol() -> None:
    limits = RiskLimits(max_open_positions=1)
    add = _intent(TradeAction.ADD, symbol="ETH")
    assert check(add, _account(), {"ETH": _position()}, limits, RiskSnapshot(), NOW) == ALLOW


def test_check_drawdown_boundary_is_inclusive() -> None:
    limits = RiskLimits(max_drawdown_pct=5.0)
    state = _snap(peak_equity_usd=100.0)
    assert check(ENTRY, _account(95.01), {}, limits, state, NOW) == ALLOW
    denied = check(ENTRY, _account(95.0), {}, limits, state, NOW)
    assert isinstance(denied, Deny) and denied.reason is RiskReason.DRAWDOWN
    assert drawdown_pct(100.0, 95.0) == pytest.approx(5.0)
    assert drawdown_pct(None, 50.0) == 0.0


def test_check_rate_window_forgets_orders_older_than_a_minute() -> None:
    limits = RiskLimits(max_entry_orders_per_min=1)
    assert not check(ENTRY, _account(), {}, limits, _snap(entries_sent_ms=(NOW - 59_999,)), NOW).allowed
    assert check(ENTRY, _account(), {}, limits, _snap(entries_sent_ms=(NOW - 60_000,)), NOW).allowed


def test_check_entry_rate_symbol_counts_only_that_symbol() -> None:
    limits = RiskLimits(max_entry_orders_per_min_per_symbol=1)
    state = _snap(entries_sent_ms=(NOW - 5,), entries_sent_ms_by_symbol={"SOL": (NOW - 5,)})
    assert check(ENTRY, _account(), {}, limits, state, NOW).allowed


def test_check_slippage_needs_a_full_window_and_uses_the_median() -> None:
    limits = CASES[RiskReason.SLIPPAGE_GUARD].limits
    assert check(ENTRY, _account(), {}, limits, _snap(slippage_bps=(10.0, 10.0)), NOW).allowed
    assert check(ENTRY, _account(), {}, limits, _snap(slippage_bps=(0.0, 20.0, 0.0)), NOW).allowed
    assert slippage_bps(OrderSide.BUY, 100.1, 100.0) == pytest.approx(10.0)
    assert slippage_bps(OrderSide.SELL, 100.1, 100.0) == 0.0
    assert slippage_bps(OrderSide.SELL, 99.9, 100.0) == pytest.approx(10.0)


def test_check_gross_leverage_cap() -> None:
    limits = RiskLimits(max_gross_leverage=2.0)
    big = _intent(size=250.0)  # 25_000 USD + 100 held on 10_000 equity
    denied = check(big, _account(), {"ETH": _position()}, limits, RiskSnapshot(), NOW)
    assert isinstance(denied, Deny) and denied.reason is RiskReason.LEVERAGE
    assert denied.details["gross_leverage"] == pytest.approx(2.51)
    assert check(_intent(size=50.0), _account(), {}, limits, RiskSnapshot(), NOW).allowed


def test_check_stale_marks_block_entries() -> None:
    denied = check(ENTRY, _account(stale=True), {}, RiskLimits(), RiskSnapshot(), NOW)
    assert isinstance(denied, Deny) and denied.reason is RiskReason.ACCOUNT_INVALID


_STATES: Callable[[], st.SearchStrategy[RiskSnapshot]] = lambda: st.builds(  # noqa: E731
    RiskSnapshot,
    trading_state=st.sampled_from([TradingState.ACTIVE, TradingState.REDUCING]),
    hard_kill=st.just(False),
    entries_sent_ms=st.lists(st.integers(NOW - 120_000, NOW), max_size=50).map(tuple),
    exits_sent_ms=st.lists(st.integers(NOW - 120_000, NOW - 60_000), max_size=500).map(tuple),
    peak_equity_usd=st.one_of(st.none(), st.floats(1.0, 1e7)),
    daily_net_pnl_usd=st.floats(-1e7, 1e7),
    slippage_bps=st.lists(st.floats(0.0, 1e4), max_size=30).map(tuple),
)


@settings(max_examples=200, deadline=None)
@given(
    state=_STATES(),
    equity=st.one_of(st.floats(-1e6, 1e7), st.sampled_from([math.nan, math.inf, -math.inf])),
    caps=st.floats(0.0, 1e6),
    action=st.sampled_from([TradeAction.CLOSE, TradeAction.REDUCE]),
)
def test_property_exits_never_blocked_by_entry_limits_or_breakers(
    state: RiskSnapshot, equity: float, caps: float, action: TradeAction
) -> None:
    limits = RiskLimits(
        max_entry_orders_per_min=1, max_entry_orders_per_min_per_symbol=1, max_drawdown_pct=min(caps, 100.0),
        max_daily_loss_usd=caps, slippage_guard_enabled=True, slippage_guard_window_fills=1,
        slippage_guard_max_median_bps=caps, max_open_positions=1, max_order_notional_usd=caps,
        max_symbol_notional_usd=caps, max_gross_notional_usd=caps, max_leverage=1.0, max_gross_leverage=caps,
    )  # fmt: skip
    account = replace(_account(), equity_usd=equity)
    intent = _intent(action, symbol="ETH", size=0.5)
    assert check(intent, account, {"ETH": _position()}, limits, state, NOW) == ALLOW
