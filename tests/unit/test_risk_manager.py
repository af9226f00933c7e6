"""engine.risk.manager.RiskManager: breakers trip REDUCING (persisted), windows count sent orders."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.enums import OrderSide, RiskReason, TradingState, TradingStateEvent
from engine.execution.broker import OrderIntent
from engine.risk.limits import RiskLimits
from engine.risk.manager import ALLOW, Deny, RiskManager
from engine.risk.state import RiskStateStore
from engine.storage.sqlite import open_db
from strategies.enums import EntryKind, ExitReason, PositionSide, TradeAction
from tests.unit.test_risk_check import _account, _position

DAY1 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY2 = DAY1 + 86_400_000
HELD = {"ETH": _position()}


def _intent(action: TradeAction = TradeAction.OPEN, symbol: str = "BTC") -> OrderIntent:
    return OrderIntent(
        symbol=symbol, action=action, side=PositionSide.LONG, reference_price=100.0, event_ms=DAY1,
        reason=EntryKind.STANDARD if action in (TradeAction.OPEN, TradeAction.ADD) else ExitReason.STOP_LOSS,
        size_coins=None if action is TradeAction.CLOSE else 1.0,
    )  # fmt: skip


EXIT = _intent(TradeAction.CLOSE, "ETH")


def _manager(db: Path, **limits: object) -> RiskManager:
    return RiskManager(RiskLimits(**limits), RiskStateStore.open(db), env={})  # type: ignore[arg-type]


def _reason(manager: RiskManager, intent: OrderIntent, equity: float, now: int) -> RiskReason | None:
    verdict = manager.check(intent, _account(equity), HELD, now)
    return verdict.reason if isinstance(verdict, Deny) else None


def test_drawdown_trips_reducing_and_needs_explicit_clear(tmp_path: Path) -> None:
    manager = _manager(tmp_path / "r.db", max_drawdown_pct=5.0)
    assert manager.poll(DAY1, _account(100.0)) == []
    assert _reason(manager, _intent(), 96.0, DAY1 + 1) is None  # 4 % < 5 %
    assert _reason(manager, _intent(), 94.0, DAY1 + 2) is RiskReason.DRAWDOWN
    assert manager.trading_state is TradingState.REDUCING
    assert manager.check(EXIT, _account(94.0), HELD, DAY1 + 2) == ALLOW  # exits still pass
    # Recovery does not resume trading; only a clear does, and it resets the peak.
    manager.poll(DAY1 + 3, _account(100.0))
    assert _reason(manager, _intent(), 100.0, DAY1 + 3) is RiskReason.TRADING_REDUCING
    manager.apply(TradingStateEvent.CLEAR, DAY1 + 4)
    assert manager.counters.peak_equity_usd is None
    assert manager.poll(DAY1 + 5, _account(96.0)) == []  # new peak 96, no immediate re-trip
    (change,) = manager.poll(DAY1 + 6, _account(90.0))  # 6.25 % from 96
    assert change.event is TradingStateEvent.DRAWDOWN_BREACH
    assert change.details["peak_equity_usd"] == 96.0


def test_drawdown_state_and_peak_survive_restart(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    manager = _manager(db, max_drawdown_pct=5.0)
    manager.poll(DAY1, _account(100.0))
    restarted = _manager(db, max_drawdown_pct=5.0)
    assert restarted.counters.peak_equity_usd == 100.0
    restarted.poll(DAY1 + 1, _account(95.0))
    again = _manager(db, max_drawdown_pct=5.0)
    assert again.trading_state is TradingState.REDUCING


def test_drawdown_peak_resets_at_utc_day_rollover(tmp_path: Path) -> None:
    manager = _manager(tmp_path / "r.db", max_drawdown_pct=5.0)
    manager.poll(DAY1, _account(100.0))
    assert manager.poll(DAY2, _account(90.0)) == []  # yesterday's peak is not used
    assert manager.counters.peak_equity_usd == 90.0
    assert manager.trading_state is TradingState.ACTIVE


def test_drawdown_ignores_invalid_equity(tmp_path: Path) -> None:
    manager = _manager(tmp_path / "r.db", max_drawdown_pct=5.0)
    manager.poll(DAY1, _account(100.0))
    assert manager.poll(DAY1 + 1, _account(0.0)) == []
    assert manager.poll(DAY1 + 2, _account(50.0, stale=True)) == []
    assert manager.trading_state is TradingState.ACTIVE


def _exit_fill(manager: RiskManager, pnl: float, ms: int, fee: float = 0.0) -> object:
    return manager.note_fill(
        action=TradeAction.CLOSE, event_ms=ms, side=OrderSide.SELL, fill_price=100.0, reference_price=100.0,
        realised_pnl_usd=pnl, fee_usd=fee,
    )  # fmt: skip


def test_daily_loss_resets_per_utc_day_and_trips(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    manager = _manager(db, max_daily_loss_usd=100.0)
    assert _exit_fill(manager, -60.0, DAY1 + 1) is None
    assert _exit_fill(manager, -60.0, DAY2 + 1) is None  # new day: -60 only
    restarted = _manager(db, max_daily_loss_usd=100.0)  # the day's loss survives a restart
    change = _exit_fill(restarted, -35.0, DAY2 + 2, fee=5.0)
    assert change is not None and change.details["day"] == "2026-01-02"  # type: ignore[attr-defined]
    assert restarted.trading_state is TradingState.REDUCING
    assert _reason(restarted, _intent(), 10_000.0, DAY2 + 3) is RiskReason.TRADING_REDUCING
    assert restarted.check(EXIT, _account(), HELD, DAY2 + 3) == ALLOW


def test_daily_loss_ignores_entry_fills(tmp_path: Path) -> None:
    manager = _manager(tmp_path / "r.db", max_daily_loss_usd=10.0)
    manager.note_fill(
        action=TradeAction.OPEN, event_ms=DAY1, side=OrderSide.BUY, fill_price=100.0, reference_price=100.0,
        realised_pnl_usd=-500.0, fee_usd=50.0,
    )  # fmt: skip
    assert manager.trading_state is TradingState.ACTIVE


def _entry_fill(manager: RiskManager, bps: float, ms: int) -> object:
    return manager.note_fill(
        action=TradeAction.OPEN, event_ms=ms, side=OrderSide.BUY, fill_price=100.0 * (1 + bps / 10_000),
        reference_price=100.0,
    )  # fmt: skip


SLIP = {
    "slippage_guard_enabled": True,
    "slippage_guard_window_fills": 3,
    "slippage_guard_max_median_bps": 5.0,
}


def test_slippage_guard_trips_on_median(tmp_path: Path) -> None:
    manager = _manager(tmp_path / "r.db", **SLIP)
    assert _entry_fill(manager, 10.0, DAY1) is None
    assert _entry_fill(manager, 10.0, DAY1 + 1) is None  # window not full yet
    assert _entry_fill(manager, 10.0, DAY1 + 2) is not None
    assert manager.trading_state is TradingState.REDUCING


def test_slippage_guard_median_ignores_one_outlier_and_exit_fills(tmp_path: Path) -> None:
    manager = _manager(tmp_path / "r.db", **SLIP)
    for i, bps in enumerate((0.0, 20.0, 0.0)):
        assert _entry_fill(manager, bps, DAY1 + i) is None
    for i in range(5):
        manager.note_fill(
            action=TradeAction.CLOSE, event_ms=DAY1 + 10 + i, side=OrderSide.SELL, fill_price=90.0,
            reference_price=100.0,
        )  # fmt: skip
    assert manager.counters.slippage_bps == pytest.approx((0.0, 20.0, 0.0))
    assert manager.trading_state is TradingState.ACTIVE


def test_rate_windows_count_sent_orders_and_never_block_exits(tmp_path: Path) -> None:
    manager = _manager(tmp_path / "r.db")
    entry = _intent()
    for i in range(6):
        assert manager.check(entry, _account(), HELD, DAY1 + i) == ALLOW
        manager.note_order_sent(entry, DAY1 + i)
    assert _reason(manager, entry, 10_000.0, DAY1 + 10) is RiskReason.ENTRY_RATE_SYMBOL
    assert _reason(manager, _intent(symbol="SOL"), 10_000.0, DAY1 + 10) is None
    assert manager.check(EXIT, _account(), HELD, DAY1 + 10) == ALLOW
    assert manager.check_cancel(DAY1 + 10) == ALLOW
    assert _reason(manager, entry, 10_000.0, DAY1 + 60_000) is None  # the first one left the window


def test_exit_and_cancel_rates_use_their_own_limits(tmp_path: Path) -> None:
    manager = _manager(tmp_path / "r.db", max_exit_orders_per_min=2, max_cancels_per_min=1)
    for i in range(2):
        manager.note_order_sent(EXIT, DAY1 + i)
    manager.note_cancel_sent(DAY1)
    assert _reason(manager, EXIT, 10_000.0, DAY1 + 5) is RiskReason.EXIT_RATE
    assert _reason(manager, _intent(), 10_000.0, DAY1 + 5) is None  # exits don't eat the entry budget
    denied = manager.check_cancel(DAY1 + 5)
    assert isinstance(denied, Deny) and denied.reason is RiskReason.CANCEL_RATE


def test_breaker_never_downgrades_halted(tmp_path: Path) -> None:
    manager = _manager(tmp_path / "r.db", max_daily_loss_usd=1.0)
    manager.apply(TradingStateEvent.KILL_HALT_ALL, DAY1)
    assert _exit_fill(manager, -100.0, DAY1 + 1) is None
    assert manager.trading_state is TradingState.HALTED


def test_update_limits_swaps_whole_object(tmp_path: Path) -> None:
    manager = _manager(tmp_path / "r.db")
    manager.update_limits(RiskLimits(max_open_positions=1))
    assert _reason(manager, _intent(), 10_000.0, DAY1) is RiskReason.MAX_POSITIONS


def test_locked_db_still_enforces_state_and_writes_it_later(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    store = RiskStateStore(open_db(db, busy_timeout_secs=0.01))
    manager = RiskManager(RiskLimits(), store, env={})
    blocker = sqlite3.connect(db)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        assert manager.apply(TradingStateEvent.KILL_HALT_ALL, DAY1) is None  # not raised
        assert manager.trading_state is TradingState.HALTED  # but enforced
        assert manager.persist_failures == 1 and store.pending == 1
        assert _reason(manager, EXIT, 10_000.0, DAY1 + 1) is RiskReason.TRADING_HALTED
        assert manager.poll(DAY1 + 2) == []  # flush fails again, nothing raised
    finally:
        blocker.rollback()
        blocker.close()
    manager.poll(DAY1 + 3)  # lock gone: the pending change is written with its own times
    assert store.pending == 0
    reopened = RiskStateStore.open(db)
    (row,) = reopened.history()
    assert (row.to_state, row.event_ms) == (TradingState.HALTED, DAY1)
    assert reopened.state is TradingState.HALTED


def test_from_config_reads_yaml_env_and_kill_file(tmp_path: Path) -> None:
    kill = tmp_path / "KILL"
    kill.write_text("close_only")
    env = {"AI_QUANT_KILL_SWITCH_FILE": str(kill), "AI_QUANT_RISK_MAX_OPEN_POSITIONS": "3"}
    manager = RiskManager.from_config(open_db(tmp_path / "t.db"), {"max_drawdown_pct": 4}, env)
    assert (manager.limits.max_open_positions, manager.limits.max_drawdown_pct) == (3, 4.0)
    manager.poll(DAY1)
    assert manager.trading_state is TradingState.REDUCING


def test_hard_kill_is_reread_on_every_check(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    manager = RiskManager(RiskLimits(), RiskStateStore.open(tmp_path / "r.db"), env=env)
    assert manager.check(EXIT, _account(), HELD, DAY1) == ALLOW
    env["AI_QUANT_HARD_KILL_SWITCH"] = "1"
    assert _reason(manager, EXIT, 10_000.0, DAY1 + 1) is RiskReason.HARD_KILL
    env["AI_QUANT_HARD_KILL_SWITCH"] = "0"
    assert manager.check(EXIT, _account(), HELD, DAY1 + 2) == ALLOW
