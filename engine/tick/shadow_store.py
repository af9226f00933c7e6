"""The shadow fleet's paper books in the trading DB: `shadow_trades` and `shadow_positions`.

Owns both tables (issue 11, the live shadow fleet). Each shadow variant has its own book, keyed
by `(mode, variant, symbol)`: an append-only `shadow_trades` ledger (OPEN, CLOSE and FUNDING
rows, never edited) and the open position per (variant, symbol) in `shadow_positions`. They
live beside the primary's `trades` / `position_state` but share no rows with them, so nothing
that reads the primary's ledger (the risk manager, the cash identity, the OMS export) ever sees a
shadow fill. One tick's changes are written in one transaction (`apply`): a crash leaves either
the old books or the new ones, and a restart resumes every open shadow position from the DB.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from engine.enums import LedgerKind, Mode
from engine.storage.sqlite import immediate_transaction
from strategies.enums import PositionSide

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (
    component TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    applied_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS shadow_trades (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    mode TEXT NOT NULL,
    variant TEXT NOT NULL,
    strategy TEXT NOT NULL,
    kind TEXT NOT NULL,
    symbol TEXT NOT NULL,
    position_side TEXT NOT NULL,
    size_coins REAL NOT NULL,
    price REAL NOT NULL,
    notional_usd REAL NOT NULL,
    fee_usd REAL NOT NULL,
    realised_pnl_usd REAL NOT NULL,
    funding_usd REAL NOT NULL,
    price_source TEXT,
    reason TEXT NOT NULL,
    event_ms INTEGER NOT NULL,
    recorded_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS shadow_trades_mode_variant ON shadow_trades (mode, variant, event_ms, id);
CREATE TABLE IF NOT EXISTS shadow_positions (
    mode TEXT NOT NULL,
    variant TEXT NOT NULL,
    symbol TEXT NOT NULL,
    strategy TEXT NOT NULL,
    side TEXT NOT NULL,
    size_coins REAL NOT NULL,
    entry_price REAL NOT NULL,
    entry_atr REAL NOT NULL,
    opened_ms INTEGER NOT NULL,
    last_funding_ms INTEGER NOT NULL,
    trailing_sl REAL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (mode, variant, symbol)
);
"""

_TRADE_COLUMNS = (
    "mode", "variant", "strategy", "kind", "symbol", "position_side", "size_coins", "price", "notional_usd",
    "fee_usd", "realised_pnl_usd", "funding_usd", "price_source", "reason", "event_ms", "recorded_ms",
)  # fmt: skip
_POSITION_COLUMNS = (
    "mode", "variant", "symbol", "strategy", "side", "size_coins", "entry_price", "entry_atr", "opened_ms",
    "last_funding_ms", "trailing_sl", "updated_ms",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ShadowPosition:
    """One variant's open paper position on one symbol (no adds: a shadow opens only when flat)."""

    variant: str
    strategy: str
    symbol: str
    side: PositionSide
    size_coins: float
    entry_price: float
    entry_atr: float  # 0.0 when unknown (the exit rules then use 0.5 % of the entry price)
    opened_ms: int
    last_funding_ms: int
    trailing_sl: float | None = None


@dataclass(frozen=True, slots=True)
class ShadowFill:
    """One row of a variant's ledger: an OPEN, a CLOSE (with its gross realised PnL) or FUNDING."""

    variant: str
    strategy: str
    kind: LedgerKind
    symbol: str
    side: PositionSide
    size_coins: float
    price: float
    notional_usd: float
    fee_usd: float
    realised_pnl_usd: float
    funding_usd: float
    price_source: str | None
    reason: str
    event_ms: int
    recorded_ms: int


@dataclass(frozen=True, slots=True)
class PositionChange:
    """Set (`position` not None) or delete the (variant, symbol) position row."""

    variant: str
    symbol: str
    position: ShadowPosition | None


class ShadowStore:
    """The shadow books of one mode in the trading DB (connection shared with the TradeStore)."""

    def __init__(self, conn: sqlite3.Connection, mode: Mode) -> None:
        """Create the tables if missing; raise RuntimeError when the DB has another schema version."""
        self._conn = conn
        self._mode = mode
        conn.executescript(_SCHEMA)
        conn.execute(
            "INSERT OR IGNORE INTO schema_version (component, version, applied_ms) "
            "VALUES ('shadow_store', ?, 0)",
            (SCHEMA_VERSION,),
        )
        row = conn.execute("SELECT version FROM schema_version WHERE component='shadow_store'").fetchone()
        if row[0] != SCHEMA_VERSION:
            raise RuntimeError(f"shadow_store schema version {row[0]} in DB, code expects {SCHEMA_VERSION}")

    @property
    def mode(self) -> Mode:
        return self._mode

    def apply(self, fills: Sequence[ShadowFill], changes: Sequence[PositionChange], now_ms: int) -> None:
        """Append `fills` and apply `changes` in one transaction (all or nothing)."""
        if not fills and not changes:
            return
        mode = self._mode.value
        trade_sql = (
            f"INSERT INTO shadow_trades ({', '.join(_TRADE_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _TRADE_COLUMNS)})"
        )
        position_sql = (
            f"INSERT OR REPLACE INTO shadow_positions ({', '.join(_POSITION_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _POSITION_COLUMNS)})"
        )
        with immediate_transaction(self._conn) as conn:
            conn.executemany(trade_sql, [_trade_values(mode, f) for f in fills])
            for change in changes:
                if change.position is None:
                    conn.execute(
                        "DELETE FROM shadow_positions WHERE mode=? AND variant=? AND symbol=?",
                        (mode, change.variant, change.symbol),
                    )
                else:
                    conn.execute(position_sql, _position_values(mode, change.position, now_ms))

    def load_positions(self) -> dict[tuple[str, str], ShadowPosition]:
        """Return this mode's open shadow positions by (variant, symbol)."""
        cursor = self._conn.execute(
            f"SELECT {', '.join(_POSITION_COLUMNS)} FROM shadow_positions WHERE mode=? "
            "ORDER BY variant, symbol",
            (self._mode.value,),
        )
        out: dict[tuple[str, str], ShadowPosition] = {}
        for values in cursor.fetchall():
            row = dict(zip(_POSITION_COLUMNS, values, strict=True))
            position = ShadowPosition(
                variant=row["variant"], strategy=row["strategy"], symbol=row["symbol"],
                side=PositionSide(row["side"]), size_coins=row["size_coins"], entry_price=row["entry_price"],
                entry_atr=row["entry_atr"], opened_ms=row["opened_ms"],
                last_funding_ms=row["last_funding_ms"], trailing_sl=row["trailing_sl"],
            )  # fmt: skip
            out[(position.variant, position.symbol)] = position
        return out

    def fills(self, variant: str | None = None) -> list[ShadowFill]:
        """Return this mode's shadow ledger rows in id order, optionally of one variant."""
        sql = f"SELECT {', '.join(_TRADE_COLUMNS)} FROM shadow_trades WHERE mode=?"
        args: list[object] = [self._mode.value]
        if variant is not None:
            sql += " AND variant=?"
            args.append(variant)
        out = []
        for values in self._conn.execute(sql + " ORDER BY id", args).fetchall():
            row = dict(zip(_TRADE_COLUMNS, values, strict=True))
            del row["mode"]
            row["kind"] = LedgerKind(row["kind"])
            row["side"] = PositionSide(row.pop("position_side"))
            out.append(ShadowFill(**row))
        return out


def _trade_values(mode: str, fill: ShadowFill) -> tuple[object, ...]:
    return (
        mode, fill.variant, fill.strategy, fill.kind.value, fill.symbol, fill.side.value, fill.size_coins,
        fill.price, fill.notional_usd, fill.fee_usd, fill.realised_pnl_usd, fill.funding_usd,
        fill.price_source, fill.reason, fill.event_ms, fill.recorded_ms,
    )  # fmt: skip


def _position_values(mode: str, p: ShadowPosition, now_ms: int) -> tuple[object, ...]:
    return (
        mode, p.variant, p.symbol, p.strategy, p.side.value, p.size_coins, p.entry_price, p.entry_atr,
        p.opened_ms, p.last_funding_ms, p.trailing_sl, now_ms,
    )  # fmt: skip
