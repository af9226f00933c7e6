"""The trading state (ACTIVE / REDUCING / HALTED): its transition table and its SQLite record.

- ACTIVE: every check applies as configured.
- REDUCING: entries (OPEN/ADD) are denied; exits and cancels pass. Entered by the operator's
  `close_only` and by every automatic breaker (drawdown, daily loss, slippage, an unexplained
  position found by the reconciler, the health guard, a venue liquidation by default). Automatic
  breakers never enter HALTED (a health key configured with kill mode `halt_all` is applied as
  the operator's KILL_HALT_ALL).
- HALTED: entered by the operator's `halt_all`, and by a venue liquidation when the operator chose
  so (AI_QUANT_LIQUIDATION_RISK_STATE=halted). Entries AND exits are denied (the operator's
  persistent stop, like the hard kill but surviving restarts); cancels still pass.

Sticky: nothing but an explicit CLEAR moves to a less restrictive state, so a later breaker can
never downgrade HALTED to REDUCING (reference quirk §18.9 fixed). Each change is appended as a
fact row (`risk_state_changes`) with its event, details, event time and recorded time (UTC epoch
ms); the current state is the last row's, so it survives restarts. Also stored here: the last
token seen per kill-switch source (for edge-triggered `clear`) and the breaker counters (peak
equity, daily PnL, slippage window), so a restart neither forgets a loss nor re-applies a clear.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.enums import KillSource, TradingState, TradingStateEvent
from engine.storage.sqlite import open_db

_A, _R, _H = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
_E = TradingStateEvent

# (state, event) -> next state. Complete: every pair is a row, so there is no illegal pair today;
# next_trading_state still raises for a missing pair so a new state or event must be added here.
TRANSITIONS: Mapping[tuple[TradingState, TradingStateEvent], TradingState] = {
    (_A, _E.KILL_CLOSE_ONLY): _R,
    (_R, _E.KILL_CLOSE_ONLY): _R,
    (_H, _E.KILL_CLOSE_ONLY): _H,  # halt_all is sticky: a close_only never downgrades it
    (_A, _E.KILL_HALT_ALL): _H,
    (_R, _E.KILL_HALT_ALL): _H,
    (_H, _E.KILL_HALT_ALL): _H,
    (_A, _E.CLEAR): _A,
    (_R, _E.CLEAR): _A,
    (_H, _E.CLEAR): _A,
    (_A, _E.DRAWDOWN_BREACH): _R,
    (_R, _E.DRAWDOWN_BREACH): _R,
    (_H, _E.DRAWDOWN_BREACH): _H,
    (_A, _E.DAILY_LOSS_BREACH): _R,
    (_R, _E.DAILY_LOSS_BREACH): _R,
    (_H, _E.DAILY_LOSS_BREACH): _H,
    (_A, _E.SLIPPAGE_BREACH): _R,
    (_R, _E.SLIPPAGE_BREACH): _R,
    (_H, _E.SLIPPAGE_BREACH): _H,
    (_A, _E.RECONCILE_MISMATCH): _R,  # a position the ledger cannot explain: reduce, alert
    (_R, _E.RECONCILE_MISMATCH): _R,
    (_H, _E.RECONCILE_MISMATCH): _H,
    (_A, _E.HEALTH_BREACH): _R,  # the health guard's kill: close_only (halt_all goes as KILL_HALT_ALL)
    (_R, _E.HEALTH_BREACH): _R,
    (_H, _E.HEALTH_BREACH): _H,
    (_A, _E.LIQUIDATION_CLOSE_ONLY): _R,  # the venue liquidated us (policy "reducing")
    (_R, _E.LIQUIDATION_CLOSE_ONLY): _R,
    (_H, _E.LIQUIDATION_CLOSE_ONLY): _H,
    (_A, _E.LIQUIDATION_HALT): _H,  # the venue liquidated us (policy "halted": the operator decides)
    (_R, _E.LIQUIDATION_HALT): _H,
    (_H, _E.LIQUIDATION_HALT): _H,
}


class InvalidTradingStateTransition(Exception):
    """A (state, event) pair missing from TRANSITIONS: a programming error, never a venue race."""

    def __init__(self, state: TradingState, event: TradingStateEvent) -> None:
        super().__init__(f"no trading-state transition for state={state.value} event={event.value}")
        self.state = state
        self.event = event


def next_trading_state(state: TradingState, event: TradingStateEvent) -> TradingState:
    """Return the state after `event`; raise InvalidTradingStateTransition for an unknown pair."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTradingStateTransition(state, event) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class StateChange:
    """One appended trading-state change (a fact; never edited)."""

    seq: int
    event: TradingStateEvent
    from_state: TradingState
    to_state: TradingState
    details: Mapping[str, Any]
    event_ms: int
    recorded_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerCounters:
    """What the breakers remember between fills and restarts (reset by an explicit CLEAR).

    `peak_day` / `pnl_day` are UTC dates (YYYY-MM-DD) the peak and the PnL sums belong to.
    `drawdown_tripped_ms` is when the drawdown breaker first tripped since the last CLEAR (it arms
    the close-all policy, and survives a restart so a half-done close-all resumes).
    """

    peak_equity_usd: float | None = None
    peak_day: str | None = None
    pnl_day: str | None = None
    daily_realised_pnl_usd: float = 0.0
    daily_fees_usd: float = 0.0
    slippage_bps: tuple[float, ...] = field(default_factory=tuple)
    drawdown_tripped_ms: int | None = None

    @property
    def daily_net_pnl_usd(self) -> float:
        return self.daily_realised_pnl_usd - self.daily_fees_usd


_SCHEMA = """
CREATE TABLE IF NOT EXISTS risk_state_changes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  event TEXT NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL,
  details_json TEXT NOT NULL, event_ms INTEGER NOT NULL, recorded_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS risk_kill_sources (
  source TEXT PRIMARY KEY, token TEXT NOT NULL, recorded_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS risk_counters (
  id INTEGER PRIMARY KEY CHECK (id = 1), counters_json TEXT NOT NULL, recorded_ms INTEGER NOT NULL);
"""


def _change(row: tuple[Any, ...]) -> StateChange:
    seq, event, from_state, to_state, details, event_ms, recorded_ms = row
    return StateChange(
        seq=int(seq), event=TradingStateEvent(event), from_state=TradingState(from_state),
        to_state=TradingState(to_state), details=json.loads(details), event_ms=int(event_ms),
        recorded_ms=int(recorded_ms),
    )  # fmt: skip


class RiskStateStore:
    """The persisted trading state, kill-source tokens and breaker counters in one SQLite DB."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        conn.executescript(_SCHEMA)
        conn.commit()
        row = conn.execute("SELECT to_state FROM risk_state_changes ORDER BY seq DESC LIMIT 1").fetchone()
        self._state = TradingState.ACTIVE if row is None else TradingState(row[0])
        self._pending: list[tuple[str, str, str, str, int, int]] = []

    @classmethod
    def open(cls, path: str | Path) -> RiskStateStore:
        """Open (creating, WAL, 0600) the DB at `path`; raises sqlite3.Error if it cannot."""
        return cls(open_db(path))

    @property
    def state(self) -> TradingState:
        return self._state

    def close(self) -> None:
        self._conn.close()

    def apply(
        self,
        event: TradingStateEvent,
        *,
        event_ms: int,
        recorded_ms: int,
        details: Mapping[str, Any] | None = None,
    ) -> StateChange | None:
        """Run `event` through the table; append and commit a row if the state changes.

        Returns the change, or None when the state stays the same (nothing is written). If the
        write fails, the new state still takes effect in memory (fail closed), the row stays
        pending for `flush()`, and the sqlite3.Error propagates.
        """
        to_state = next_trading_state(self._state, event)
        if to_state is self._state:
            return None
        payload = json.dumps(dict(details or {}), sort_keys=True, default=str)
        row = (event.value, self._state.value, to_state.value, payload, int(event_ms), int(recorded_ms))
        self._pending.append(row)
        self._state = to_state
        seq = self.flush()
        return _change((seq, *row))

    @property
    def pending(self) -> int:
        """Changes in force but not yet written (a previous write failed)."""
        return len(self._pending)

    def flush(self) -> int:
        """Write pending changes in order; return the last row's seq. Raises sqlite3.Error."""
        seq = 0
        while self._pending:
            with self._conn:
                cursor = self._conn.execute(
                    "INSERT INTO risk_state_changes (event, from_state, to_state, details_json, event_ms, "
                    "recorded_ms) VALUES (?, ?, ?, ?, ?, ?)",
                    self._pending[0],
                )
            self._pending.pop(0)
            seq = int(cursor.lastrowid or 0)
        return seq

    def history(self) -> list[StateChange]:
        """Return every recorded change, oldest first."""
        rows = self._conn.execute(
            "SELECT seq, event, from_state, to_state, details_json, event_ms, recorded_ms "
            "FROM risk_state_changes ORDER BY seq"
        ).fetchall()
        return [_change(row) for row in rows]

    def kill_tokens(self) -> dict[KillSource, str]:
        """Return the last token seen per kill-switch source ("" = none)."""
        rows = self._conn.execute("SELECT source, token FROM risk_kill_sources").fetchall()
        return {KillSource(source): str(token) for source, token in rows}

    def set_kill_token(self, source: KillSource, token: str, recorded_ms: int) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT INTO risk_kill_sources (source, token, recorded_ms) VALUES (?, ?, ?) "
                "ON CONFLICT(source) DO UPDATE SET token=excluded.token, recorded_ms=excluded.recorded_ms",
                (source.value, token, int(recorded_ms)),
            )

    def load_counters(self) -> BreakerCounters:
        row = self._conn.execute("SELECT counters_json FROM risk_counters WHERE id = 1").fetchone()
        if row is None:
            return BreakerCounters()
        data = json.loads(row[0])
        data["slippage_bps"] = tuple(float(x) for x in data.get("slippage_bps", ()))
        return BreakerCounters(**data)

    def save_counters(self, counters: BreakerCounters, recorded_ms: int) -> None:
        payload = json.dumps(
            {
                "peak_equity_usd": counters.peak_equity_usd,
                "peak_day": counters.peak_day,
                "pnl_day": counters.pnl_day,
                "daily_realised_pnl_usd": counters.daily_realised_pnl_usd,
                "daily_fees_usd": counters.daily_fees_usd,
                "slippage_bps": list(counters.slippage_bps),
                "drawdown_tripped_ms": counters.drawdown_tripped_ms,
            }
        )
        with self._conn:
            self._conn.execute(
                "INSERT INTO risk_counters (id, counters_json, recorded_ms) VALUES (1, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET counters_json=excluded.counters_json, "
                "recorded_ms=excluded.recorded_ms",
                (payload, int(recorded_ms)),
            )
