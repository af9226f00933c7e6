"""The trades ledger and position-state tables of the trading DB (SQLite, WAL, file mode 0600).

Owns the schema of `trades` (one append-only row per fill, funding event or cash seed; never
edited) and `position_state` (the current net position per symbol, replaced in the same
transaction as the trade row that changed it). Because both change in one transaction, a crash
or kill -9 leaves either the old or the new state, never half of each, and a restart resumes
positions and cash exactly. Every row carries the mode.

Connections come from `engine.storage.sqlite.open_db` (WAL, busy timeout, 0600 on the DB and its
-wal/-shm files).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from engine.enums import FeeMode, LedgerKind, Mode, OrderSide, PriceSource
from engine.execution.broker import ExitState, Fill, Position
from engine.storage.sqlite import immediate_transaction, open_db
from strategies.enums import Confidence, PositionSide

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (
    component TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    applied_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS trades (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    mode TEXT NOT NULL,
    kind TEXT NOT NULL,
    symbol TEXT NOT NULL,
    position_side TEXT,
    order_side TEXT,
    size_coins REAL NOT NULL,
    price REAL NOT NULL,
    notional_usd REAL NOT NULL,
    fee_usd REAL NOT NULL,
    fee_rate REAL NOT NULL,
    liquidity TEXT,
    realised_pnl_usd REAL NOT NULL,
    funding_usd REAL NOT NULL,
    cash_delta_usd REAL NOT NULL,
    balance_usd REAL NOT NULL,
    leverage REAL NOT NULL,
    margin_used_usd REAL NOT NULL,
    price_source TEXT,
    reason TEXT NOT NULL,
    decision_id TEXT,
    event_ms INTEGER NOT NULL,
    recorded_ms INTEGER NOT NULL,
    fill_hash TEXT,
    fill_tid INTEGER,
    UNIQUE (fill_hash, fill_tid)
);
CREATE INDEX IF NOT EXISTS trades_mode_symbol_kind ON trades (mode, symbol, kind, id);
CREATE INDEX IF NOT EXISTS trades_decision ON trades (decision_id);
CREATE TABLE IF NOT EXISTS position_state (
    mode TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    size_coins REAL NOT NULL,
    entry_price REAL NOT NULL,
    leverage REAL NOT NULL,
    margin_used_usd REAL NOT NULL,
    open_trade_id INTEGER NOT NULL,
    opened_ms INTEGER NOT NULL,
    last_funding_ms INTEGER NOT NULL,
    entry_atr REAL,
    entry_adx_threshold REAL,
    confidence TEXT,
    adds_count INTEGER NOT NULL,
    last_add_ms INTEGER NOT NULL,
    tp1_taken INTEGER NOT NULL,
    trailing_sl REAL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (mode, symbol)
);
"""

_TRADE_COLUMNS = (
    "mode",
    "kind",
    "symbol",
    "position_side",
    "order_side",
    "size_coins",
    "price",
    "notional_usd",
    "fee_usd",
    "fee_rate",
    "liquidity",
    "realised_pnl_usd",
    "funding_usd",
    "cash_delta_usd",
    "balance_usd",
    "leverage",
    "margin_used_usd",
    "price_source",
    "reason",
    "decision_id",
    "event_ms",
    "recorded_ms",
)

_POSITION_COLUMNS = (
    "mode",
    "symbol",
    "side",
    "size_coins",
    "entry_price",
    "leverage",
    "margin_used_usd",
    "open_trade_id",
    "opened_ms",
    "last_funding_ms",
    "entry_atr",
    "entry_adx_threshold",
    "confidence",
    "adds_count",
    "last_add_ms",
    "tp1_taken",
    "trailing_sl",
    "updated_ms",
)

THIS_TRADE = 0
"""Pass as `Position.open_trade_id` to mean "the id of the trade row being appended" (an OPEN)."""


def harden_permissions(path: Path) -> None:
    """chmod 0600 the DB file and its -wal/-shm/-journal siblings that exist."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        sibling = Path(f"{path}{suffix}")
        with contextlib.suppress(FileNotFoundError):
            os.chmod(sibling, 0o600)


def open_trading_db(path: Path, timeout_secs: float = 5.0) -> sqlite3.Connection:
    """Open (creating 0600) the trading DB through `engine.storage.sqlite.open_db`, for explicit transactions.

    Autocommit mode (our code issues BEGIN IMMEDIATE / COMMIT) and synchronous=FULL: a committed
    ledger row survives a power cut, not only a crash.
    """
    conn = open_db(path, busy_timeout_secs=timeout_secs)
    conn.isolation_level = None
    conn.execute("PRAGMA synchronous=FULL")
    harden_permissions(path)
    return conn


@dataclass(frozen=True, slots=True)
class LedgerTotals:
    """Sums over the ledger of one mode, for the cash identity check."""

    seed_usd: float
    fees_usd: float
    realised_pnl_usd: float
    funding_usd: float
    balance_usd: float
    rows: int


class TradeStore:
    """Append-only trades ledger plus the current position per symbol, for one mode."""

    def __init__(self, conn: sqlite3.Connection, mode: Mode, db_path: Path | None = None) -> None:
        self._conn = conn
        self._mode = mode
        self._db_path = db_path
        self._conn.executescript(_SCHEMA)
        self._conn.execute(
            "INSERT OR IGNORE INTO schema_version (component, version, applied_ms) "
            "VALUES ('trade_store', ?, 0)",
            (SCHEMA_VERSION,),
        )
        row = self._conn.execute(
            "SELECT version FROM schema_version WHERE component='trade_store'"
        ).fetchone()
        if row[0] != SCHEMA_VERSION:
            raise RuntimeError(f"trade_store schema version {row[0]} in DB, code expects {SCHEMA_VERSION}")
        if db_path is not None:
            harden_permissions(db_path)

    @classmethod
    def open(cls, path: Path, mode: Mode) -> TradeStore:
        """Open the trading DB at `path` for `mode`."""
        return cls(open_trading_db(path), mode, path)

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def connection(self) -> sqlite3.Connection:
        """The trading DB connection (shared with the decision-event log of the same DB)."""
        return self._conn

    def close(self) -> None:
        self._conn.close()

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return immediate_transaction(self._conn)

    def append(
        self,
        fill: Fill,
        position: Position | None,
        *,
        touches_position: bool = True,
        fill_hash: str | None = None,
        fill_tid: int | None = None,
    ) -> tuple[Fill, Position | None]:
        """Append one ledger row and set the symbol's position state in the same transaction.

        `position` None deletes the symbol's position row (a CLOSE); `touches_position=False`
        leaves it alone (a SEED row). A position whose open_trade_id is THIS_TRADE gets the new
        row's id. Returns the fill and position with their ids filled in.
        """
        if fill.mode is not self._mode:
            raise ValueError(f"fill mode {fill.mode} does not match store mode {self._mode}")
        values = [_db_value(getattr(fill, name)) for name in _TRADE_COLUMNS]
        placeholders = ", ".join("?" for _ in range(len(_TRADE_COLUMNS) + 2))
        sql = f"INSERT INTO trades ({', '.join(_TRADE_COLUMNS)}, fill_hash, fill_tid) VALUES ({placeholders})"
        with self._transaction() as conn:
            trade_id = int(conn.execute(sql, [*values, fill_hash, fill_tid]).lastrowid or 0)
            stored_fill = dataclasses.replace(fill, trade_id=trade_id)
            if position is not None and position.open_trade_id == THIS_TRADE:
                position = dataclasses.replace(position, open_trade_id=trade_id)
            if touches_position:
                self._write_position(conn, fill.symbol, position, fill.recorded_ms)
        return stored_fill, position

    def _write_position(
        self, conn: sqlite3.Connection, symbol: str, position: Position | None, now_ms: int
    ) -> None:
        if position is None:
            conn.execute("DELETE FROM position_state WHERE mode=? AND symbol=?", (self._mode.value, symbol))
            return
        row = {
            "mode": self._mode.value,
            "symbol": position.symbol,
            "side": position.side.value,
            "size_coins": position.size_coins,
            "entry_price": position.entry_price,
            "leverage": position.leverage,
            "margin_used_usd": position.margin_used_usd,
            "open_trade_id": position.open_trade_id,
            "opened_ms": position.opened_ms,
            "last_funding_ms": position.last_funding_ms,
            "entry_atr": position.entry_atr,
            "entry_adx_threshold": position.entry_adx_threshold,
            "confidence": None if position.confidence is None else position.confidence.value,
            "adds_count": position.adds_count,
            "last_add_ms": position.last_add_ms,
            "tp1_taken": int(position.tp1_taken),
            "trailing_sl": position.trailing_sl,
            "updated_ms": now_ms,
        }
        columns = ", ".join(_POSITION_COLUMNS)
        placeholders = ", ".join(f":{name}" for name in _POSITION_COLUMNS)
        conn.execute(f"INSERT OR REPLACE INTO position_state ({columns}) VALUES ({placeholders})", row)

    def update_exit_state(self, symbol: str, state: ExitState, now_ms: int) -> None:
        """Persist a position's trailing stop and TP1 flag; raise KeyError when it has no position."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE position_state SET trailing_sl=?, tp1_taken=?, updated_ms=? "
                "WHERE mode=? AND symbol=?",
                (state.trailing_sl, int(state.tp1_taken), now_ms, self._mode.value, symbol),
            )
            if cursor.rowcount != 1:
                raise KeyError(f"no open {self._mode} position for {symbol}")

    def load_positions(self) -> dict[str, Position]:
        """Return the open positions of this mode by symbol."""
        cursor = self._conn.execute(
            f"SELECT {', '.join(_POSITION_COLUMNS)} FROM position_state WHERE mode=? ORDER BY symbol",
            (self._mode.value,),
        )
        result: dict[str, Position] = {}
        for values in cursor.fetchall():
            row = dict(zip(_POSITION_COLUMNS, values, strict=True))
            result[row["symbol"]] = Position(
                symbol=row["symbol"],
                side=PositionSide(row["side"]),
                size_coins=row["size_coins"],
                entry_price=row["entry_price"],
                leverage=row["leverage"],
                margin_used_usd=row["margin_used_usd"],
                open_trade_id=row["open_trade_id"],
                opened_ms=row["opened_ms"],
                last_funding_ms=row["last_funding_ms"],
                entry_atr=row["entry_atr"],
                entry_adx_threshold=row["entry_adx_threshold"],
                confidence=None if row["confidence"] is None else Confidence(row["confidence"]),
                adds_count=row["adds_count"],
                last_add_ms=row["last_add_ms"],
                tp1_taken=bool(row["tp1_taken"]),
                trailing_sl=row["trailing_sl"],
            )
        return result

    def last_balance(self) -> float | None:
        """Return the cash after the newest ledger row of this mode, or None for an empty ledger."""
        row = self._conn.execute(
            "SELECT balance_usd FROM trades WHERE mode=? ORDER BY id DESC LIMIT 1", (self._mode.value,)
        ).fetchone()
        return None if row is None else float(row[0])

    def fills(self, symbol: str | None = None, since_ms: int | None = None) -> list[Fill]:
        """Return ledger rows of this mode in id order, optionally for one symbol / from a time."""
        sql = f"SELECT id, {', '.join(_TRADE_COLUMNS)} FROM trades WHERE mode=?"
        args: list[object] = [self._mode.value]
        if symbol is not None:
            sql += " AND symbol=?"
            args.append(symbol)
        if since_ms is not None:
            sql += " AND event_ms>=?"
            args.append(since_ms)
        return [
            _fill_from_row(values) for values in self._conn.execute(sql + " ORDER BY id", args).fetchall()
        ]

    def last_close(self, symbol: str) -> Fill | None:
        """Return the newest CLOSE of `symbol` (re-entry cooldown input), or None."""
        row = self._conn.execute(
            f"SELECT id, {', '.join(_TRADE_COLUMNS)} FROM trades WHERE mode=? AND symbol=? AND kind=? "
            "ORDER BY id DESC LIMIT 1",
            (self._mode.value, symbol, LedgerKind.CLOSE.value),
        ).fetchone()
        return None if row is None else _fill_from_row(row)

    def totals(self) -> LedgerTotals:
        """Return the ledger sums of this mode (seed, fees, realised PnL, funding, last balance)."""
        row = self._conn.execute(
            "SELECT COALESCE(SUM(CASE WHEN kind=? THEN cash_delta_usd ELSE 0 END), 0), "
            "COALESCE(SUM(fee_usd), 0), COALESCE(SUM(realised_pnl_usd), 0), COALESCE(SUM(funding_usd), 0), "
            "COUNT(*) FROM trades WHERE mode=?",
            (LedgerKind.SEED.value, self._mode.value),
        ).fetchone()
        balance = self.last_balance()
        return LedgerTotals(
            seed_usd=float(row[0]),
            fees_usd=float(row[1]),
            realised_pnl_usd=float(row[2]),
            funding_usd=float(row[3]),
            balance_usd=0.0 if balance is None else balance,
            rows=int(row[4]),
        )


def _db_value(value: object) -> object:
    return value.value if isinstance(value, Enum) else value


def _optional(enum: type, value: str | None) -> object:
    return None if value is None else enum(value)


def _fill_from_row(values: tuple) -> Fill:
    row = dict(zip(("id", *_TRADE_COLUMNS), values, strict=True))
    return Fill(
        trade_id=row["id"],
        mode=Mode(row["mode"]),
        kind=LedgerKind(row["kind"]),
        symbol=row["symbol"],
        position_side=_optional(PositionSide, row["position_side"]),  # type: ignore[arg-type]
        order_side=_optional(OrderSide, row["order_side"]),  # type: ignore[arg-type]
        size_coins=row["size_coins"],
        price=row["price"],
        notional_usd=row["notional_usd"],
        fee_usd=row["fee_usd"],
        fee_rate=row["fee_rate"],
        liquidity=_optional(FeeMode, row["liquidity"]),  # type: ignore[arg-type]
        realised_pnl_usd=row["realised_pnl_usd"],
        funding_usd=row["funding_usd"],
        cash_delta_usd=row["cash_delta_usd"],
        balance_usd=row["balance_usd"],
        reason=row["reason"],
        event_ms=row["event_ms"],
        recorded_ms=row["recorded_ms"],
        price_source=_optional(PriceSource, row["price_source"]),  # type: ignore[arg-type]
        leverage=row["leverage"],
        margin_used_usd=row["margin_used_usd"],
        decision_id=row["decision_id"],
    )
