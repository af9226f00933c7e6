"""Read-only access to a run's state directory: the trading DB and the sidecar's candle DBs.

Why a separate reader: the owners (`TradeStore`, `RiskStateStore`, `EventLogger`) create their
tables when they open a DB, which is a write; the status command and the report must never write
to a running daemon's DB. Every connection here is a SQLite `mode=ro` URI (WAL readers see the
last committed state and never block the daemon's writer). The schema stays with its owners: rows
are parsed with the trade store's own column list and parser, so a schema change there shows up
here at once instead of drifting.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config.env import ConfigError
from engine.enums import Mode, TradingState
from engine.execution.broker import Fill, Position
from engine.execution.trade_store import _POSITION_COLUMNS, _TRADE_COLUMNS, _fill_from_row
from engine.oms.records import _FILL_COLUMNS, LedgerFill, fill_from_row
from engine.storage.sqlite import open_db
from engine.tools import metrics
from strategies.enums import Confidence, PositionSide

CANDLE_DB_DIR = "candles_dbs"  # the sidecar's default under the state dir (AI_QUANT_CANDLES_DB_DIR)


@dataclass(frozen=True, slots=True)
class TradingDb:
    path: Path
    mode: Mode


@dataclass(frozen=True, slots=True)
class Mark:
    """The newest candle close of a symbol in the candle DBs (the sidecar's copy of the venue)."""

    price: float
    close_ms: int
    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskView:
    """What the risk tables say (None where the daemon never wrote them, e.g. paper)."""

    state: TradingState
    last_event: str | None
    last_change_ms: int | None
    counters: dict[str, Any] | None
    kill_tokens: dict[str, str]


def find_trading_db(state_dir: Path, mode: Mode | None = None) -> TradingDb:
    """The `trading_<mode>.db` of `state_dir` (the newest one when `mode` is None and several exist).

    Raises ConfigError naming the directory when it or the DB is missing or empty.
    """
    if not state_dir.is_dir():
        raise ConfigError(f"state dir {state_dir} does not exist (set --state-dir or AI_QUANT_STATE_DIR)")
    modes = [mode] if mode is not None else list(Mode)
    found = [TradingDb(state_dir / f"trading_{m.value}.db", m) for m in modes]
    found = [db for db in found if db.path.is_file() and db.path.stat().st_size > 0]
    if not found:
        wanted = f"trading_{mode.value}.db" if mode else "trading_<mode>.db"
        raise ConfigError(
            f"state dir {state_dir} holds no {wanted} (has the daemon run with this state dir?)"
        )
    return max(found, key=lambda db: db.path.stat().st_mtime)


def ledger_mode(path: Path) -> Mode:
    """The mode of a trading DB file's ledger (its name `trading_<mode>.db`, else its first row)."""
    for mode in Mode:
        if path.name == f"trading_{mode.value}.db":
            return mode
    conn = connect(path)
    try:
        row = (
            conn.execute("SELECT mode FROM trades ORDER BY id LIMIT 1").fetchone()
            if has_table(conn, "trades")
            else None
        )
    finally:
        conn.close()
    if row is None:
        raise ConfigError(f"{path}: no trades ledger to report on")
    return Mode(row[0])


def connect(path: Path) -> sqlite3.Connection:
    """A read-only connection (SQLite `mode=ro`); raises ConfigError when the file cannot be read."""
    try:
        conn = open_db(path, read_only=True)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    return conn


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone()
        is not None
    )


def read_fills(
    conn: sqlite3.Connection, mode: Mode, since_ms: int | None = None, until_ms: int | None = None
) -> list[Fill]:
    """The ledger rows of `mode` with event time in [since_ms, until_ms), in id order."""
    if not has_table(conn, "trades"):
        return []
    sql = f"SELECT id, {', '.join(_TRADE_COLUMNS)} FROM trades WHERE mode=?"
    args: list[object] = [mode.value]
    if since_ms is not None:
        sql += " AND event_ms>=?"
        args.append(since_ms)
    if until_ms is not None:
        sql += " AND event_ms<?"
        args.append(until_ms)
    return [_fill_from_row(row) for row in conn.execute(sql + " ORDER BY id", args).fetchall()]


def balance_before(conn: sqlite3.Connection, mode: Mode, before_ms: int) -> float | None:
    """The cash after the last row with event time before `before_ms` (None: no such row)."""
    row = conn.execute(
        "SELECT balance_usd FROM trades WHERE mode=? AND event_ms<? ORDER BY id DESC LIMIT 1",
        (mode.value, before_ms),
    ).fetchone()
    return None if row is None else float(row[0])


def first_decision_ms(conn: sqlite3.Connection, mode: Mode, since_ms: int | None = None) -> int | None:
    """The event time of the first decision event of `mode` (at or after `since_ms`), or None."""
    if not has_table(conn, "decision_events"):
        return None
    row = conn.execute(
        "SELECT MIN(event_ms) FROM decision_events WHERE mode=? AND event_ms>=?", (mode.value, since_ms or 0)
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def read_positions(conn: sqlite3.Connection, mode: Mode) -> dict[str, Position]:
    """The open positions of `mode` by symbol, as the trade store keeps them."""
    if not has_table(conn, "position_state"):
        return {}
    cursor = conn.execute(
        f"SELECT {', '.join(_POSITION_COLUMNS)} FROM position_state WHERE mode=? ORDER BY symbol",
        (mode.value,),
    )
    out: dict[str, Position] = {}
    for values in cursor.fetchall():
        row = dict(zip(_POSITION_COLUMNS, values, strict=True))
        out[row["symbol"]] = Position(
            symbol=row["symbol"], side=PositionSide(row["side"]), size_coins=row["size_coins"],
            entry_price=row["entry_price"], leverage=row["leverage"], margin_used_usd=row["margin_used_usd"],
            open_trade_id=row["open_trade_id"], opened_ms=row["opened_ms"],
            last_funding_ms=row["last_funding_ms"], entry_atr=row["entry_atr"],
            entry_adx_threshold=row["entry_adx_threshold"],
            confidence=None if row["confidence"] is None else Confidence(row["confidence"]),
            adds_count=row["adds_count"], last_add_ms=row["last_add_ms"], tp1_taken=bool(row["tp1_taken"]),
            trailing_sl=row["trailing_sl"],
        )  # fmt: skip
    return out


def read_venue_fills(conn: sqlite3.Connection) -> list[LedgerFill]:
    """The OMS's venue fills that are linked to our intents, in time order (live / dry_live).

    Orphan fills (not ours) do not explain a position, as in `LiveOms.ledger_positions`.
    """
    if not (has_table(conn, "fills") and has_table(conn, "fill_links")):
        return []
    cols = ", ".join("f." + c for c in _FILL_COLUMNS)
    rows = conn.execute(
        f"SELECT {cols} FROM fills f JOIN fill_links l ON l.fill_key = f.fill_key ORDER BY f.time_ms, f.rowid"
    ).fetchall()
    return [fill_from_row(row) for row in rows]


def read_open_positions(conn: sqlite3.Connection, mode: Mode) -> dict[str, Position]:
    """Open positions of `mode`: the trade store's in paper, the OMS fills' net in live / dry_live."""
    if mode is Mode.PAPER:
        return read_positions(conn, mode)
    return metrics.net_positions(read_venue_fills(conn))


def fee_rates(conn: sqlite3.Connection, positions: dict[str, Position]) -> dict[str, float]:
    """The fee rate each open position paid on its opening fill (the rate its close would pay)."""
    out: dict[str, float] = {}
    for symbol, position in positions.items():
        row = conn.execute("SELECT fee_rate FROM trades WHERE id=?", (position.open_trade_id,)).fetchone()
        out[symbol] = 0.0 if row is None else float(row[0])
    return out


def read_risk(conn: sqlite3.Connection) -> RiskView | None:
    """The trading state and breaker counters, or None when no risk manager wrote this DB."""
    if not has_table(conn, "risk_state_changes"):
        return None
    last = conn.execute(
        "SELECT event, to_state, event_ms FROM risk_state_changes ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    counters = None
    if has_table(conn, "risk_counters"):
        row = conn.execute("SELECT counters_json FROM risk_counters WHERE id = 1").fetchone()
        counters = None if row is None else json.loads(row[0])
    tokens: dict[str, str] = {}
    if has_table(conn, "risk_kill_sources"):
        tokens = {str(s): str(t) for s, t in conn.execute("SELECT source, token FROM risk_kill_sources")}
    return RiskView(
        state=TradingState.ACTIVE if last is None else TradingState(last[1]),
        last_event=None if last is None else str(last[0]),
        last_change_ms=None if last is None else int(last[2]),
        counters=counters,
        kill_tokens=tokens,
    )


def read_marks(state_dir: Path, symbols: set[str]) -> dict[str, Mark]:
    """The newest candle close per symbol across the sidecar's candle DBs (empty when none)."""
    marks: dict[str, Mark] = {}
    if not symbols:
        return marks
    for path in sorted((state_dir / CANDLE_DB_DIR).glob("candles_*.db")):
        try:
            conn = open_db(path, read_only=True)
        except sqlite3.Error:
            continue
        try:
            rows = conn.execute(
                "SELECT symbol, c, t_close FROM candles c1 WHERE t = "
                "(SELECT MAX(t) FROM candles c2 WHERE c2.symbol = c1.symbol AND c2.interval = c1.interval)"
            ).fetchall()
        except sqlite3.Error:
            rows = []
        finally:
            conn.close()
        for symbol, close, close_ms in rows:
            if symbol in symbols and close is not None and close > 0:
                mark = Mark(float(close), int(close_ms or 0), f"candles:{path.name}")
                if symbol not in marks or mark.close_ms > marks[symbol].close_ms:
                    marks[symbol] = mark
    return marks
