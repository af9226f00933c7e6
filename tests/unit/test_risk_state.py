"""engine.risk.state: the transition table walked whole, facts appended, state survives restarts."""

from __future__ import annotations

import itertools
import os
import stat
from pathlib import Path

import pytest

from engine.enums import KillSource, TradingState, TradingStateEvent
from engine.risk.state import TRANSITIONS, BreakerCounters, RiskStateStore, next_trading_state

_RANK = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}
_TARGET = {
    TradingStateEvent.KILL_CLOSE_ONLY: TradingState.REDUCING,
    TradingStateEvent.KILL_HALT_ALL: TradingState.HALTED,
    TradingStateEvent.DRAWDOWN_BREACH: TradingState.REDUCING,
    TradingStateEvent.DAILY_LOSS_BREACH: TradingState.REDUCING,
    TradingStateEvent.SLIPPAGE_BREACH: TradingState.REDUCING,
    TradingStateEvent.RECONCILE_MISMATCH: TradingState.REDUCING,
    TradingStateEvent.HEALTH_BREACH: TradingState.REDUCING,
    TradingStateEvent.LIQUIDATION_CLOSE_ONLY: TradingState.REDUCING,
    TradingStateEvent.LIQUIDATION_HALT: TradingState.HALTED,
}


def _expected(state: TradingState, event: TradingStateEvent) -> TradingState:
    # The spec: CLEAR resets to ACTIVE; every other event only ever makes the state stricter.
    if event is TradingStateEvent.CLEAR:
        return TradingState.ACTIVE
    return max(state, _TARGET[event], key=_RANK.__getitem__)


@pytest.mark.parametrize(("state", "event"), list(itertools.product(TradingState, TradingStateEvent)))
def test_transition_table_row(state: TradingState, event: TradingStateEvent) -> None:
    assert next_trading_state(state, event) is _expected(state, event)


def test_transition_table_has_no_extra_rows() -> None:
    assert set(TRANSITIONS) == set(itertools.product(TradingState, TradingStateEvent))


def test_only_operator_choices_enter_halted() -> None:
    """halt_all, and a liquidation when the operator configured `halted`; no automatic breaker."""
    into_halted = {e for (s, e), to in TRANSITIONS.items() if to is TradingState.HALTED and s is not to}
    assert into_halted == {TradingStateEvent.KILL_HALT_ALL, TradingStateEvent.LIQUIDATION_HALT}


def test_store_state_survives_restart_and_records_facts(tmp_path: Path) -> None:
    db = tmp_path / "risk.db"
    store = RiskStateStore.open(db)
    assert store.state is TradingState.ACTIVE
    change = store.apply(
        TradingStateEvent.KILL_CLOSE_ONLY, event_ms=1_000, recorded_ms=1_005, details={"source": "file"}
    )
    assert change is not None and change.to_state is TradingState.REDUCING
    assert (
        store.apply(TradingStateEvent.DRAWDOWN_BREACH, event_ms=2_000, recorded_ms=2_000) is None
    )  # no change
    store.close()

    reopened = RiskStateStore.open(db)
    assert reopened.state is TradingState.REDUCING
    (row,) = reopened.history()
    assert (row.event, row.from_state, row.to_state) == (
        TradingStateEvent.KILL_CLOSE_ONLY, TradingState.ACTIVE, TradingState.REDUCING,
    )  # fmt: skip
    assert (row.event_ms, row.recorded_ms, dict(row.details)) == (1_000, 1_005, {"source": "file"})
    reopened.apply(TradingStateEvent.KILL_HALT_ALL, event_ms=3_000, recorded_ms=3_000)
    reopened.apply(TradingStateEvent.CLEAR, event_ms=4_000, recorded_ms=4_000)
    reopened.close()

    again = RiskStateStore.open(db)
    assert again.state is TradingState.ACTIVE
    assert [c.to_state for c in again.history()] == [
        TradingState.REDUCING, TradingState.HALTED, TradingState.ACTIVE,
    ]  # fmt: skip
    again.close()
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600


def test_store_kill_tokens_and_counters_persist(tmp_path: Path) -> None:
    db = tmp_path / "risk.db"
    store = RiskStateStore.open(db)
    assert store.load_counters() == BreakerCounters()
    store.set_kill_token(KillSource.FILE, "clear", 10)
    store.set_kill_token(KillSource.FILE, "halt_all", 11)
    counters = BreakerCounters(
        peak_equity_usd=100.0, peak_day="2026-01-01", pnl_day="2026-01-01",
        daily_realised_pnl_usd=-40.0, daily_fees_usd=2.5, slippage_bps=(1.0, 2.0),
    )  # fmt: skip
    store.save_counters(counters, 12)
    store.close()
    reopened = RiskStateStore.open(db)
    assert reopened.kill_tokens() == {KillSource.FILE: "halt_all"}
    assert reopened.load_counters() == counters
    assert reopened.load_counters().daily_net_pnl_usd == -42.5
    reopened.close()
