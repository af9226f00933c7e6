"""SQLite helpers: opening a database the safe way, the write transaction, and the candles table.

`open_db` is the one way the project opens a SQLite file: WAL journal, a busy timeout, and file
mode 0600 (the trading and OMS databases hold account data; candles share the helper so every
file gets the same treatment). `immediate_transaction` is the one write transaction every ledger
uses (OMS, trades, decision events). The candles table has the reference schema (reference engine
§6.3), so the sidecar's writes are the MarketDataHub's SQLite fallback.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from strategies.candle import Candle

DEFAULT_BUSY_TIMEOUT_SECS = 5.0

_CANDLES_SCHEMA = """
CREATE TABLE IF NOT EXISTS candles (
  symbol TEXT NOT NULL, interval TEXT NOT NULL, t INTEGER NOT NULL,
  t_close INTEGER, o REAL, h REAL, l REAL, c REAL, v REAL, n INTEGER,
  updated_at TEXT,
  PRIMARY KEY (symbol, interval, t));
CREATE INDEX IF NOT EXISTS idx_candles_symbol_interval_t ON candles(symbol, interval, t);
"""

_UPSERT = (
    "INSERT INTO candles (symbol, interval, t, t_close, o, h, l, c, v, n, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(symbol, interval, t) DO UPDATE SET t_close=excluded.t_close, o=excluded.o, "
    "h=excluded.h, l=excluded.l, c=excluded.c, v=excluded.v, n=excluded.n, updated_at=excluded.updated_at"
)


# Rows a reader can use: every value present and finite (SQLite stores NaN as NULL), high >= low.
_VALID = (
    "o IS NOT NULL AND h IS NOT NULL AND l IS NOT NULL AND c IS NOT NULL AND v IS NOT NULL "
    "AND abs(o) < 1e308 AND abs(h) < 1e308 AND abs(l) < 1e308 AND abs(c) < 1e308 AND v >= 0 AND v < 1e308 "
    "AND h >= l"
)


def _restrict(path: Path) -> None:
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(candidate, 0o600)


def open_db(
    path: str | os.PathLike[str],
    *,
    busy_timeout_secs: float = DEFAULT_BUSY_TIMEOUT_SECS,
    read_only: bool = False,
    check_same_thread: bool = True,
) -> sqlite3.Connection:
    """Open (creating if needed) a SQLite database in WAL mode with file mode 0600.

    The file is created 0600 before SQLite touches it, so it is never world-readable even
    briefly; the WAL and SHM side files are tightened too. `read_only` opens with URI mode=ro
    (the file must exist). Raises sqlite3.Error if the file cannot be opened.
    """
    db_path = Path(path)
    timeout = max(0.0, float(busy_timeout_secs))
    if read_only:
        uri = f"file:{db_path.resolve()}?mode=ro"
        return sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=check_same_thread)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    # Create it 0600, but never open+close an existing file: closing any descriptor of a file drops
    # every POSIX lock this process holds on it, including the SHARED lock another SQLite
    # connection of ours keeps on it in WAL mode (the ledger, the risk state and the trade store
    # share trading_<mode>.db). Without that lock, any other process closing its connection to the
    # DB checkpoints and unlinks the live WAL, and every later commit of ours goes to the unlinked
    # file: lost at a kill -9 (a committed OMS intent gone, its venue order unexplained).
    with contextlib.suppress(FileExistsError):
        os.close(os.open(db_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    conn = sqlite3.connect(db_path, timeout=timeout, check_same_thread=check_same_thread)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    _restrict(db_path)
    return conn


@contextlib.contextmanager
def immediate_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block in `BEGIN IMMEDIATE` ... `COMMIT`; roll back and re-raise on any exception.

    IMMEDIATE takes the write lock at BEGIN, so a second writer waits (busy timeout) before it
    reads anything instead of failing with SQLITE_BUSY halfway through; a ledger write is then
    all-or-nothing. The connection must have no transaction open. Raises sqlite3.Error.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def ensure_candles_table(conn: sqlite3.Connection) -> None:
    """Create the candles table and its index if missing (idempotent)."""
    conn.executescript(_CANDLES_SCHEMA)
    conn.commit()


def _utc_now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def upsert_candles(conn: sqlite3.Connection, symbol: str, interval: str, candles: Iterable[Candle]) -> int:
    """Insert or replace candles on (symbol, interval, t) in one transaction; return the row count."""
    stamp = _utc_now_text()
    rows = [(symbol, interval, c.t, c.close_ms, c.o, c.h, c.l, c.c, c.v, c.n, stamp) for c in candles]
    if rows:
        with conn:
            conn.executemany(_UPSERT, rows)
    return len(rows)


def upsert_candles_many(conn: sqlite3.Connection, interval: str, batch: dict[str, Sequence[Candle]]) -> int:
    """Upsert the candles of many symbols in one transaction; return the row count."""
    stamp = _utc_now_text()
    rows = [
        (sym, interval, c.t, c.close_ms, c.o, c.h, c.l, c.c, c.v, c.n, stamp)
        for sym, candles in batch.items()
        for c in candles
    ]
    if rows:
        with conn:
            conn.executemany(_UPSERT, rows)
    return len(rows)


def _row_to_candle(row: tuple[object, ...]) -> Candle | None:
    t, t_close, o, h, low, c, v, n = row
    values = (o, h, low, c, v)
    if any(x is None or not math.isfinite(float(x)) for x in values):  # type: ignore[arg-type]
        return None
    try:
        return Candle(
            int(t),
            int(t_close if t_close is not None else t),  # type: ignore[call-overload]
            float(o),
            float(h),
            float(low),
            float(c),
            float(v),
            int(n or 0),
        )  # type: ignore[arg-type]
    except ValueError:
        return None


def read_candles(
    conn: sqlite3.Connection,
    symbol: str,
    interval: str,
    *,
    after_t: int | None = None,
    limit: int | None = None,
) -> list[Candle]:
    """Return candles with t > after_t, ascending; with limit, the newest `limit` of them.

    Rows with missing or non-finite values are skipped (the reader must never crash on a bad row).
    """
    sql = (
        "SELECT t, t_close, o, h, l, c, v, n FROM candles "
        f"WHERE symbol=? AND interval=? AND t>? AND {_VALID} ORDER BY t DESC"
    )
    params: list[object] = [symbol, interval, -1 if after_t is None else after_t]
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    rows = conn.execute(sql, params).fetchall()
    candles = [candle for candle in map(_row_to_candle, rows) if candle is not None]
    candles.reverse()
    return candles


def last_candle_t(conn: sqlite3.Connection, symbol: str, interval: str) -> int | None:
    """Return the newest open time stored for (symbol, interval), or None."""
    row = conn.execute(
        "SELECT MAX(t) FROM candles WHERE symbol=? AND interval=?", (symbol, interval)
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def prune_candles(conn: sqlite3.Connection, interval: str, before_t: int) -> int:
    """Delete candles of `interval` opened before `before_t` (ms); return how many were deleted."""
    with conn:
        cursor = conn.execute("DELETE FROM candles WHERE interval=? AND t<?", (interval, int(before_t)))
    return cursor.rowcount
