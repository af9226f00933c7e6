"""Read-only views of the trading DB for the web page and the chat commands.

Why a separate, read-only connection: the page and the bot run in their own threads next to a
daemon that writes the same SQLite file. Opening it with `mode=ro` (URI) means no code path here
can write, whatever a request asks; a missing table (daemon not started yet, no risk manager in
paper) reads as "nothing recorded" instead of an error. One short-lived connection per snapshot
keeps the readers free of cross-thread state.

Equity here is the ledger's cash balance after each fill (realised PnL, fees, funding); open
positions are shown at their entry, not marked to market (the DB records no marks).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.enums import Mode
from engine.execution.gates import hard_kill_active
from engine.marketdata.market_sources import SourceCounts, market_sources_path, read_market_sources
from engine.risk.kill_switch import KillReading, KillSwitchSources

CURVE_POINTS = 500  # equity points sent to the page at most (evenly thinned)
RECENT_TRADES = 30
RECENT_DECISIONS = 30
SHARD_WINDOW_MS = 10 * 60 * 1000


@contextlib.contextmanager
def open_readonly(db_path: Path, timeout_secs: float = 2.0) -> Iterator[sqlite3.Connection | None]:
    """Yield a read-only connection (`mode=ro`), or None while the DB file does not exist yet."""
    if not db_path.exists():
        yield None
        return
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=timeout_secs, check_same_thread=False)
    try:
        yield conn
    finally:
        conn.close()


def _rows(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []  # that component has not written yet (or does not run in this mode)
        raise


@dataclass(frozen=True, slots=True)
class PositionView:
    symbol: str
    side: str
    size_coins: float
    entry_price: float
    notional_usd: float
    leverage: float
    margin_used_usd: float
    opened_ms: int
    age_secs: float


@dataclass(frozen=True, slots=True)
class TradeView:
    id: int
    event_ms: int
    kind: str
    symbol: str
    side: str | None
    size_coins: float
    price: float
    fee_usd: float
    realised_pnl_usd: float
    reason: str


@dataclass(frozen=True, slots=True)
class DecisionView:
    seq: int
    event_ms: int
    symbol: str
    event_type: str
    status: str
    action: str | None
    reason_code: str | None


@dataclass(frozen=True, slots=True)
class Totals:
    seed_usd: float
    balance_usd: float
    realised_pnl_usd: float
    fees_usd: float
    funding_usd: float
    closed_trades: int
    realised_today_usd: float


@dataclass(frozen=True, slots=True)
class RiskView:
    trading_state: str  # ACTIVE/REDUCING/HALTED as the risk manager recorded it; "not recorded" without one
    state_since_ms: int | None
    last_event: str | None
    kill_env: str  # the soft-kill readings now ("" = no command from that source)
    kill_file: str
    kill_file_path: str | None
    hard_kill: bool


@dataclass(frozen=True, slots=True)
class ShardHealth:
    last_tick_id: int | None
    last_decision_ms: int | None
    timeouts_recent: int  # decision events blocked by a shard timeout in the last SHARD_WINDOW_MS
    timeout_symbols: tuple[str, ...]
    window_secs: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    mode: str
    now_ms: int
    db_present: bool
    totals: Totals
    positions: tuple[PositionView, ...]
    trades: tuple[TradeView, ...]
    decisions: tuple[DecisionView, ...]
    equity: tuple[tuple[int, float], ...]
    risk: RiskView
    shards: ShardHealth
    market_sources: SourceCounts | None = None  # ws/rest/none per dex, as the daemon last wrote them

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready dict (dataclasses and tuples become dicts and lists)."""
        return asdict(self)


def _totals(conn: sqlite3.Connection, mode: str, now_ms: int) -> Totals:
    row = _rows(
        conn,
        "SELECT COALESCE(SUM(CASE WHEN kind='SEED' THEN cash_delta_usd END), 0), COALESCE(SUM(fee_usd), 0), "
        "COALESCE(SUM(realised_pnl_usd), 0), COALESCE(SUM(funding_usd), 0), "
        "COALESCE(SUM(kind='CLOSE'), 0) FROM trades WHERE mode=?",
        (mode,),
    )
    seed, fees, pnl, funding, closes = row[0] if row else (0.0, 0.0, 0.0, 0.0, 0)
    last = _rows(conn, "SELECT balance_usd FROM trades WHERE mode=? ORDER BY id DESC LIMIT 1", (mode,))
    day_start = now_ms - now_ms % 86_400_000
    today = _rows(
        conn,
        "SELECT COALESCE(SUM(realised_pnl_usd), 0) FROM trades WHERE mode=? AND event_ms>=?",
        (mode, day_start),
    )
    return Totals(
        seed_usd=float(seed), balance_usd=float(last[0][0]) if last else float(seed),
        realised_pnl_usd=float(pnl), fees_usd=float(fees), funding_usd=float(funding),
        closed_trades=int(closes), realised_today_usd=float(today[0][0]) if today else 0.0,
    )  # fmt: skip


def _positions(conn: sqlite3.Connection, mode: str, now_ms: int) -> tuple[PositionView, ...]:
    rows = _rows(
        conn,
        "SELECT symbol, side, size_coins, entry_price, leverage, margin_used_usd, opened_ms "
        "FROM position_state WHERE mode=? ORDER BY symbol",
        (mode,),
    )
    return tuple(
        PositionView(
            symbol=s,
            side=side,
            size_coins=float(size),
            entry_price=float(px),
            notional_usd=float(size) * float(px),
            leverage=float(lev),
            margin_used_usd=float(margin),
            opened_ms=int(opened),
            age_secs=max(0.0, (now_ms - int(opened)) / 1000.0),
        )
        for s, side, size, px, lev, margin, opened in rows
    )


def _trades(conn: sqlite3.Connection, mode: str) -> tuple[TradeView, ...]:
    rows = _rows(
        conn,
        "SELECT id, event_ms, kind, symbol, position_side, size_coins, price, fee_usd, realised_pnl_usd, "
        "reason FROM trades WHERE mode=? AND kind NOT IN ('SEED', 'FUNDING') ORDER BY id DESC LIMIT ?",
        (mode, RECENT_TRADES),
    )
    return tuple(
        TradeView(int(i), int(t), k, s, side, float(sz), float(px), float(fee), float(pnl), str(reason))
        for i, t, k, s, side, sz, px, fee, pnl, reason in rows
    )


def _decisions(conn: sqlite3.Connection, mode: str) -> tuple[DecisionView, ...]:
    # Holds (an exit check that kept the position) are every tick's noise; the page shows the rest.
    rows = _rows(
        conn,
        "SELECT seq, event_ms, symbol, event_type, status, action, reason_code FROM decision_events "
        "WHERE mode=? AND status!='hold' ORDER BY seq DESC LIMIT ?",
        (mode, RECENT_DECISIONS),
    )
    return tuple(DecisionView(int(q), int(t), s, et, st, a, r) for q, t, s, et, st, a, r in rows)


def _equity(conn: sqlite3.Connection, mode: str) -> tuple[tuple[int, float], ...]:
    count = _rows(conn, "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM trades WHERE mode=?", (mode,))
    n, last_id = count[0] if count else (0, 0)
    step = max(1, -(-int(n) // CURVE_POINTS))
    rows = _rows(
        conn,
        "SELECT event_ms, balance_usd FROM trades WHERE mode=? AND (id % ? = 0 OR id = ?) ORDER BY id",
        (mode, step, last_id),
    )
    return tuple((int(t), float(b)) for t, b in rows)


def _risk(conn: sqlite3.Connection | None, kill: KillSwitchSources, env: Mapping[str, str]) -> RiskView:
    rows = [] if conn is None else _rows(
        conn, "SELECT event, to_state, event_ms FROM risk_state_changes ORDER BY seq DESC LIMIT 1"
    )  # fmt: skip
    env_reading, file_reading = kill.poll()

    def text(reading: KillReading) -> str:
        return "" if reading.command is None else f"{reading.command.value} ({reading.token})"

    return RiskView(
        trading_state=rows[0][1] if rows else "not recorded",
        state_since_ms=int(rows[0][2]) if rows else None,
        last_event=rows[0][0] if rows else None,
        kill_env=text(env_reading),
        kill_file=text(file_reading),
        kill_file_path=None if kill.file_path is None else str(kill.file_path),
        hard_kill=hard_kill_active(env),
    )


def _shards(conn: sqlite3.Connection, mode: str, now_ms: int) -> ShardHealth:
    last = _rows(conn, "SELECT MAX(tick_id), MAX(recorded_ms) FROM decision_events WHERE mode=?", (mode,))
    tick, seen = last[0] if last else (None, None)
    timeouts = _rows(
        conn,
        "SELECT symbol FROM decision_events WHERE mode=? AND reason_code='shard_timeout' AND recorded_ms>=?",
        (mode, now_ms - SHARD_WINDOW_MS),
    )
    return ShardHealth(
        last_tick_id=None if tick is None else int(tick),
        last_decision_ms=None if seen is None else int(seen),
        timeouts_recent=len(timeouts), timeout_symbols=tuple(sorted({r[0] for r in timeouts})),
        window_secs=SHARD_WINDOW_MS // 1000,
    )  # fmt: skip


class TradingDbReader:
    """Builds a `Snapshot` of one mode's trading DB; safe to call from any thread."""

    def __init__(self, db_path: Path, mode: Mode, env: Mapping[str, str]) -> None:
        self.db_path = db_path
        self.mode = mode
        self._env = dict(env)
        self._kill = KillSwitchSources.from_env(self._env)
        self.sources_path = market_sources_path(db_path.parent, mode)  # written by the daemon's loop

    def snapshot(self, now_ms: int | None = None) -> Snapshot:
        """Read everything the page shows, in one read-only connection."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        mode = self.mode.value
        sources = read_market_sources(self.sources_path)
        with open_readonly(self.db_path) as conn:
            if conn is None:
                empty = Totals(0.0, 0.0, 0.0, 0.0, 0.0, 0, 0.0)
                shards = ShardHealth(None, None, 0, (), SHARD_WINDOW_MS // 1000)
                risk = _risk(None, self._kill, self._env)
                return Snapshot(mode, now, False, empty, (), (), (), (), risk, shards, sources)
            return Snapshot(
                mode=mode, now_ms=now, db_present=True, totals=_totals(conn, mode, now),
                positions=_positions(conn, mode, now), trades=_trades(conn, mode),
                decisions=_decisions(conn, mode), equity=_equity(conn, mode),
                risk=_risk(conn, self._kill, self._env), shards=_shards(conn, mode, now),
                market_sources=sources,
            )  # fmt: skip
