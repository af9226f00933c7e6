"""RiskManager: the thin stateful shell around the pure pre-trade check (engine/risk/check.py).

`RiskManager` keeps what the pure check needs between calls — the 60 s send windows, the UTC-day
peak equity, the daily PnL, the slippage window — and owns the persisted trading state
(engine/risk/state.py). It polls the kill switches each tick, trips breakers into REDUCING, and
hands back state changes for the caller to log and alert. A denial travels back in the
broker's `OrderResult.deny` and the tick records it (engine/tick/types.py `execution_fields`);
the check itself never touches the DB. Listeners (`add_listener`) hear every state change
whoever caused it (engine/tick/protections.py alerts on them), and `close_all_armed` says when
the drawdown close-all policy must flatten the book.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from engine.enums import DrawdownPolicy, KillSource, OrderSide, RiskReason, TradingState, TradingStateEvent
from engine.execution.broker import AccountSnapshot, OrderIntent, Position
from engine.execution.gates import hard_kill_active
from engine.execution.verdicts import ALLOW as ALLOW  # re-exported: the verdict types are part of this API
from engine.execution.verdicts import Allow as Allow
from engine.execution.verdicts import Deny, RiskVerdict
from engine.risk.check import (
    ENTRY_ACTIONS,
    WINDOW_MS,
    RiskSnapshot,
    check,
    check_cancel,
    check_protective,
    drawdown_pct,
    is_entry,
    slippage_bps,
    slippage_breach_median,
    utc_day,
)
from engine.risk.kill_switch import KillSwitchSources, kill_events
from engine.risk.limits import RiskLimits
from engine.risk.state import BreakerCounters, RiskStateStore, StateChange
from strategies.enums import TradeAction

logger = logging.getLogger(__name__)


_BREAKER_EVENTS: Mapping[RiskReason, TradingStateEvent] = {
    RiskReason.DRAWDOWN: TradingStateEvent.DRAWDOWN_BREACH,
    RiskReason.DAILY_LOSS: TradingStateEvent.DAILY_LOSS_BREACH,
    RiskReason.SLIPPAGE_GUARD: TradingStateEvent.SLIPPAGE_BREACH,
}


class RiskManager:
    """Stateful shell over `check`: send windows, breaker counters and the persisted trading state.

    Single-threaded (the driver's loop). `env` is read afresh for the hard kill on every check.
    """

    def __init__(
        self,
        limits: RiskLimits,
        store: RiskStateStore,
        kill_sources: KillSwitchSources | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._limits = limits
        self._store = store
        self._kill_sources = kill_sources
        self._env = env
        self._counters = store.load_counters()
        self._kill_tokens = store.kill_tokens()
        self._persist_failures = 0
        self._entries: deque[tuple[int, str]] = deque()
        self._exits: deque[int] = deque()
        self._cancels: deque[int] = deque()
        self._listeners: list[Callable[[StateChange], None]] = []
        self._dex_collateral: dict[str, str] = {}

    @classmethod
    def from_config(
        cls, conn: sqlite3.Connection, risk: Mapping[str, Any] | None, env: Mapping[str, str] | None = None
    ) -> RiskManager:
        """Build from the trading DB connection, YAML `global.risk` and the environment.

        Raises ConfigError for bad limits (stop at start-up) and sqlite3.Error if the DB fails.
        """
        return cls(
            RiskLimits.from_sources(risk, env), RiskStateStore(conn), KillSwitchSources.from_env(env), env
        )

    @property
    def limits(self) -> RiskLimits:
        return self._limits

    @property
    def trading_state(self) -> TradingState:
        return self._store.state

    @property
    def counters(self) -> BreakerCounters:
        return self._counters

    @property
    def persist_failures(self) -> int:
        """How many risk-state writes failed (the state was still enforced in memory); alert if > 0."""
        return self._persist_failures

    def add_listener(self, listener: Callable[[StateChange], None]) -> None:
        """Call `listener(change)` after every trading-state change, whoever caused it (alerting)."""
        self._listeners.append(listener)

    @property
    def close_all_armed(self) -> bool:
        """True while the drawdown close-all must flatten: policy close_all, the drawdown breaker
        tripped since the last CLEAR, and the state is REDUCING (HALTED blocks every exit)."""
        return (
            self._limits.drawdown_reduce_policy is DrawdownPolicy.CLOSE_ALL
            and self._counters.drawdown_tripped_ms is not None
            and self._store.state is TradingState.REDUCING
        )

    def update_limits(self, limits: RiskLimits) -> None:
        """Swap in a whole new limits object (hot reload at a tick boundary)."""
        self._limits = limits

    def set_dex_collateral(self, collateral: Mapping[str, str]) -> None:
        """Tell the per-collateral cap which token each traded perp dex settles in (read from the
        venue at start-up); a dex missing here is denied entries while that cap is on."""
        self._dex_collateral = dict(collateral)

    def snapshot(self, now_ms: int) -> RiskSnapshot:
        """Return the pure check's view of the state now (hard kill re-read from the environment)."""
        self._prune(now_ms)
        by_symbol: dict[str, list[int]] = {}
        for t, symbol in self._entries:
            by_symbol.setdefault(symbol, []).append(t)
        env = os.environ if self._env is None else self._env
        return RiskSnapshot(
            trading_state=self._store.state,
            hard_kill=hard_kill_active(env),
            entries_sent_ms=tuple(t for t, _ in self._entries),
            entries_sent_ms_by_symbol={s: tuple(ts) for s, ts in by_symbol.items()},
            exits_sent_ms=tuple(self._exits),
            cancels_sent_ms=tuple(self._cancels),
            peak_equity_usd=self._counters.peak_equity_usd,
            daily_net_pnl_usd=self._daily_net(now_ms),
            slippage_bps=self._counters.slippage_bps,
            dex_collateral=dict(self._dex_collateral),
        )

    def check(
        self, intent: OrderIntent, account: AccountSnapshot, positions: Mapping[str, Position], now_ms: int
    ) -> RiskVerdict:
        """Observe the account (peak, drawdown breaker), then run the pure check.

        A breaker denial also moves the trading state to REDUCING (persisted).
        """
        self._track_peak(account, now_ms)
        verdict = check(intent, account, positions, self._limits, self.snapshot(now_ms), now_ms)
        if isinstance(verdict, Deny) and verdict.reason in _BREAKER_EVENTS:
            if verdict.reason is RiskReason.DRAWDOWN:
                self._arm_drawdown(now_ms)
            self._transition(
                _BREAKER_EVENTS[verdict.reason], event_ms=now_ms, recorded_ms=now_ms, details=verdict.details
            )
        return verdict

    def check_cancel(self, now_ms: int) -> RiskVerdict:
        """Run the cancel check (cancel rate only)."""
        return check_cancel(self._limits, self.snapshot(now_ms), now_ms)

    def check_protective(self, now_ms: int, action: str = "protect") -> RiskVerdict:
        """Run the protective-order check (hard kill and HALTED only; see engine/risk/check.py)."""
        return check_protective(self.snapshot(now_ms), action)

    def note_order_sent(self, intent: OrderIntent, now_ms: int) -> None:
        """Count an order that was sent or whose outcome is unknown (call after the send attempt)."""
        if is_entry(intent):
            self._entries.append((now_ms, intent.symbol))
        else:
            self._exits.append(now_ms)

    def note_cancel_sent(self, now_ms: int) -> None:
        self._cancels.append(now_ms)

    def apply(
        self, event: TradingStateEvent, now_ms: int, details: Mapping[str, Any] | None = None
    ) -> StateChange | None:
        """Apply a trading-state event (e.g. RECONCILE_MISMATCH); a CLEAR also resets the breakers."""
        change = self._transition(event, event_ms=now_ms, recorded_ms=now_ms, details=details)
        if event is TradingStateEvent.CLEAR:
            self._counters = BreakerCounters()
            self._save_counters(now_ms)
        return change

    def poll(self, now_ms: int, account: AccountSnapshot | None = None) -> list[StateChange]:
        """Call once per tick: apply the kill switches, then observe the account. Returns changes."""
        changes: list[StateChange] = []
        if self._store.pending:
            try:
                self._store.flush()
            except sqlite3.Error:
                logger.exception("risk: %d trading-state change(s) still not persisted", self._store.pending)
        changes.extend(self._poll_kill_switches(now_ms))
        if account is not None:
            change = self.observe_account(account, now_ms)
            if change is not None:
                changes.append(change)
        return changes

    def _poll_kill_switches(self, now_ms: int) -> list[StateChange]:
        if self._kill_sources is None:
            return []
        readings = self._kill_sources.poll()
        changes = []
        for event, reading in kill_events(readings, self._kill_tokens):
            details = {
                "source": reading.source.value,
                "token": reading.token,
                "recognised": reading.recognised,
            }
            change = self.apply(event, now_ms, details)
            if change is not None:
                changes.append(change)
        for reading in readings:
            if not reading.recognised and self._kill_tokens.get(reading.source, "") != reading.token:
                logger.warning(
                    "risk: unrecognised kill-switch value from %s: close_only", reading.source.value
                )
            self._remember_token(reading.source, reading.token, now_ms)
        return changes

    def observe_account(self, account: AccountSnapshot, now_ms: int) -> StateChange | None:
        """Track the UTC-day peak equity; trip the drawdown breaker (→ REDUCING) at the limit."""
        if not self._track_peak(account, now_ms):
            return None
        equity = account.equity_usd
        peak = self._counters.peak_equity_usd
        dd = drawdown_pct(peak, equity)
        if self._limits.max_drawdown_pct > 0 and dd >= self._limits.max_drawdown_pct:
            details = {"drawdown_pct": dd, "limit_pct": self._limits.max_drawdown_pct,
                       "equity_usd": equity, "peak_equity_usd": peak}  # fmt: skip
            self._arm_drawdown(now_ms)
            return self._transition(
                TradingStateEvent.DRAWDOWN_BREACH, event_ms=now_ms, recorded_ms=now_ms, details=details
            )
        return None

    def _arm_drawdown(self, now_ms: int) -> None:
        # Remember the first trip since the last CLEAR (even when already REDUCING for another cause).
        if self._counters.drawdown_tripped_ms is None:
            self._counters = replace(self._counters, drawdown_tripped_ms=now_ms)
            self._save_counters(now_ms)

    def _track_peak(self, account: AccountSnapshot, now_ms: int) -> bool:
        # Raise (or, on a new UTC day, reset) the peak; True when equity is usable and below it.
        equity = account.equity_usd
        if not math.isfinite(equity) or equity <= 0 or account.marks_stale:
            return False
        day = utc_day(now_ms)
        counters = self._counters
        new_day = counters.peak_day != day or counters.peak_equity_usd is None
        if new_day or equity > (counters.peak_equity_usd or 0.0):
            self._counters = replace(counters, peak_equity_usd=equity, peak_day=day)
            self._save_counters(now_ms)
            return False
        return True

    def note_fill(
        self,
        *,
        action: TradeAction,
        event_ms: int,
        side: OrderSide,
        fill_price: float,
        reference_price: float,
        realised_pnl_usd: float = 0.0,
        fee_usd: float = 0.0,
    ) -> StateChange | None:
        """Feed a newly recorded fill: exits add to the daily PnL, entries to the slippage window.

        `reference_price` is the ask for buys and the bid for sells (the mid when unknown).
        Returns the breaker's state change when the fill trips one.
        """
        if action in ENTRY_ACTIONS:
            return self._note_entry_fill(event_ms, side, fill_price, reference_price)
        day = utc_day(event_ms)
        counters = self._counters
        if counters.pnl_day != day:
            counters = replace(counters, pnl_day=day, daily_realised_pnl_usd=0.0, daily_fees_usd=0.0)
        self._counters = replace(
            counters,
            daily_realised_pnl_usd=counters.daily_realised_pnl_usd + _finite(realised_pnl_usd),
            daily_fees_usd=counters.daily_fees_usd + _finite(fee_usd),
        )
        self._save_counters(event_ms)
        net = self._counters.daily_net_pnl_usd
        limit = self._limits.max_daily_loss_usd
        if limit > 0 and net <= -limit:
            details = {"daily_net_pnl_usd": net, "limit_usd": limit, "day": day}
            return self._transition(
                TradingStateEvent.DAILY_LOSS_BREACH, event_ms=event_ms, recorded_ms=event_ms, details=details
            )
        return None

    def _note_entry_fill(
        self, event_ms: int, side: OrderSide, fill_price: float, reference_price: float
    ) -> StateChange | None:
        window = self._limits.slippage_guard_window_fills
        bps = slippage_bps(side, fill_price, reference_price)
        self._counters = replace(self._counters, slippage_bps=(*self._counters.slippage_bps, bps)[-window:])
        self._save_counters(event_ms)
        median = slippage_breach_median(self._limits, self._counters.slippage_bps)
        if median is None:
            return None
        details = {"median_bps": median, "limit_bps": self._limits.slippage_guard_max_median_bps}
        return self._transition(
            TradingStateEvent.SLIPPAGE_BREACH, event_ms=event_ms, recorded_ms=event_ms, details=details
        )

    def _transition(
        self,
        event: TradingStateEvent,
        *,
        event_ms: int,
        recorded_ms: int,
        details: Mapping[str, Any] | None = None,
    ) -> StateChange | None:
        # Never raises: a failed write still changes the state in memory (fail closed) and is counted.
        try:
            change = self._store.apply(event, event_ms=event_ms, recorded_ms=recorded_ms, details=details)
        except sqlite3.Error:
            self._persist_failures += 1
            logger.exception("risk: trading-state change %s not persisted; enforced in memory", event.value)
            return None
        if change is not None:
            logger.warning(
                "risk: trading state %s -> %s (event=%s details=%s)",
                change.from_state.value, change.to_state.value, event.value, dict(change.details),
            )  # fmt: skip
            for listener in self._listeners:
                try:
                    listener(change)
                except Exception:  # a broken listener (alerting) must never stop a risk change
                    logger.exception("risk: state-change listener failed")
        return change

    def _save_counters(self, recorded_ms: int) -> None:
        try:
            self._store.save_counters(self._counters, recorded_ms)
        except sqlite3.Error:
            self._persist_failures += 1
            logger.exception("risk: breaker counters not persisted; kept in memory")

    def _remember_token(self, source: KillSource, token: str, now_ms: int) -> None:
        if self._kill_tokens.get(source, "") == token:
            return
        self._kill_tokens[source] = token
        try:
            self._store.set_kill_token(source, token, now_ms)
        except sqlite3.Error:
            self._persist_failures += 1
            logger.exception("risk: kill-switch token of %s not persisted", source.value)

    def _daily_net(self, now_ms: int) -> float:
        if self._counters.pnl_day != utc_day(now_ms):
            return 0.0
        return self._counters.daily_net_pnl_usd

    def _prune(self, now_ms: int) -> None:
        cutoff = now_ms - WINDOW_MS
        while self._entries and self._entries[0][0] <= cutoff:
            self._entries.popleft()
        for window in (self._exits, self._cancels):
            while window and window[0] <= cutoff:
                window.popleft()

def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0
