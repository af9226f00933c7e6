"""Live funding: the venue's `userFunding` payments, recorded once each in their own ledger table.

In live and dry_live the venue charges funding; the engine's paper accrual does not run there
(`funding_enabled=False`), so without this module live PnL would leave funding out. Owns:

* `FundingLedger`: the `funding_payments` table (one row per venue payment, deduplicated on the
  natural key (coin, hour time): the venue books one payment per coin per hour and its `hash` is
  all zeros) and `funding_cursors` (the REST read position and the trades-export position), in the
  trading DB beside the OMS tables but on its own connection, so the OMS ledger is untouched.
  A payment read again with a different amount keeps the first and is counted as a change (the
  caller records it); nothing is ever edited.
* `FundingSync`: reads `userFunding` from the cursor (minus an overlap, paged when the venue caps
  the answer), ingests, and only then advances the cursor to the newest payment time seen (the
  venue's clock, never ours). A failed read leaves the cursor where it was, so the next run reads
  the same window again. The reconciler runs it at start-up, periodically, after a reconnect and
  at shutdown (`engine.oms.reconciler.OmsReconciler`).

`engine.execution.oms_trades.export_funding` turns the rows into FUNDING rows of the trades table.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.runtime.clock import wall_ms
from engine.storage.sqlite import immediate_transaction, open_db
from engine.venue import types as hl

VENUE_FUNDING_CAP = 500  # the venue answers at most this many payments per userFunding call
REST_CURSOR = "rest_user_funding"
MAX_PAGES = 50

_SCHEMA = """
CREATE TABLE IF NOT EXISTS funding_payments (
    coin TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    usdc REAL NOT NULL,
    szi REAL NOT NULL,
    funding_rate REAL NOT NULL,
    hash TEXT,
    n_samples INTEGER,
    recorded_ms INTEGER NOT NULL,
    PRIMARY KEY (coin, time_ms)
);
CREATE TABLE IF NOT EXISTS funding_cursors (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
"""
_COLUMNS = ("coin", "time_ms", "usdc", "szi", "funding_rate", "hash", "n_samples", "recorded_ms")
_INSERT = f"INSERT OR IGNORE INTO funding_payments ({', '.join(_COLUMNS)}) VALUES (?,?,?,?,?,?,?,?)"



@dataclass(frozen=True, slots=True, kw_only=True)
class FundingPayment:
    """One recorded venue funding payment; `usdc` is the signed cash change (negative = paid)."""

    coin: str
    time_ms: int
    usdc: float
    szi: float
    funding_rate: float
    hash: str | None
    n_samples: int | None
    recorded_ms: int


@dataclass(frozen=True, slots=True)
class FundingIngest:
    received: int
    inserted: int
    duplicates: int
    changed: tuple[tuple[str, int, float, float], ...]  # (coin, time, recorded usdc, venue usdc)


@dataclass(frozen=True, slots=True)
class FundingSyncResult:
    inserted: int
    changed: tuple[tuple[str, int, float, float], ...]
    cursor_ms: int | None
    failure: str | None = None  # the venue read that failed (cursor not moved), or None


class FundingLedger:
    """The funding table and its cursors. Thread-safe (one connection behind a lock); `close()`."""

    def __init__(self, path: str | Path, *, clock_ms: Callable[[], int] = wall_ms) -> None:
        self.path = Path(path)
        self._clock_ms = clock_ms
        self._lock = threading.RLock()
        self._conn = open_db(self.path, check_same_thread=False)
        self._conn.isolation_level = None  # explicit BEGIN/COMMIT
        with self._tx() as conn:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate_transaction(self._conn) as conn:
            yield conn

    def ingest(self, entries: Iterable[hl.UserFundingEntry]) -> FundingIngest:
        """Insert payments not seen yet (one transaction); report duplicates and changed amounts."""
        now = self._clock_ms()
        received = inserted = duplicates = 0
        changed: list[tuple[str, int, float, float]] = []
        with self._tx() as conn:
            for e in sorted(entries, key=lambda x: (x.time_ms, x.coin)):
                received += 1
                cursor = conn.execute(
                    _INSERT,
                    (e.coin, int(e.time_ms), float(e.usdc), float(e.szi), float(e.funding_rate),
                     e.hash, e.n_samples, now),
                )  # fmt: skip
                if cursor.rowcount == 1:
                    inserted += 1
                    continue
                duplicates += 1
                (usdc,) = conn.execute(
                    "SELECT usdc FROM funding_payments WHERE coin=? AND time_ms=?", (e.coin, int(e.time_ms))
                ).fetchone()
                if abs(float(usdc) - float(e.usdc)) > 1e-9:
                    changed.append((e.coin, int(e.time_ms), float(usdc), float(e.usdc)))
        return FundingIngest(received, inserted, duplicates, tuple(changed))

    def payments(self) -> list[FundingPayment]:
        """Every recorded payment, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM funding_payments ORDER BY time_ms, coin"
            ).fetchall()
        return [FundingPayment(**dict(zip(_COLUMNS, r, strict=True))) for r in rows]

    def payments_after_rowid(self, rowid: int, limit: int) -> list[tuple[int, FundingPayment]]:
        """Up to `limit` payments recorded after `rowid` (recording order), with their rowids."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT rowid, {', '.join(_COLUMNS)} FROM funding_payments WHERE rowid > ? "
                "ORDER BY rowid LIMIT ?",
                (int(rowid), int(limit)),
            ).fetchall()
        return [(int(r[0]), FundingPayment(**dict(zip(_COLUMNS, r[1:], strict=True)))) for r in rows]

    def cursor(self, name: str) -> int | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM funding_cursors WHERE name=?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def advance_cursor(self, name: str, value: int) -> int:
        """Move a cursor forward (never back); return its value."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO funding_cursors (name, value, updated_ms) VALUES (?,?,?) ON CONFLICT(name) "
                "DO UPDATE SET value=max(value, excluded.value), updated_ms=excluded.updated_ms",
                (name, int(value), self._clock_ms()),
            )
            return int(conn.execute("SELECT value FROM funding_cursors WHERE name=?", (name,)).fetchone()[0])


class FundingSync:
    """Brings the funding ledger up to date with the venue's `userFunding` for `user`.

    `initial_lookback_ms`: how far back (from our clock) the first read starts when no cursor
    exists; `overlap_ms`: how far before the cursor each later read starts (payments that show up
    late are still read; duplicates are ignored)."""

    def __init__(
        self,
        *,
        ledger: FundingLedger,
        info: object,
        user: str,
        initial_lookback_ms: int,
        overlap_ms: int,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.ledger = ledger
        self.info = info
        self.user = user
        self.initial_lookback_ms = initial_lookback_ms
        self.overlap_ms = overlap_ms
        self._clock_ms = clock_ms

    def run(self) -> FundingSyncResult:
        """Read, ingest, advance the cursor; a venue failure is returned, never raised."""
        cursor = self.ledger.cursor(REST_CURSOR)
        start = (self._clock_ms() - self.initial_lookback_ms) if cursor is None else cursor
        start = max(0, start - self.overlap_ms)
        inserted = 0
        changed: list[tuple[str, int, float, float]] = []
        newest: int | None = None
        for _page in range(MAX_PAGES):
            try:
                entries = self.info.user_funding(self.user, start)  # type: ignore[attr-defined]
            except hl.VenueError as exc:
                failure = f"user_funding:{type(exc).__name__}"
                return FundingSyncResult(inserted, tuple(changed), cursor, failure)
            stats = self.ledger.ingest(entries)
            inserted += stats.inserted
            changed.extend(stats.changed)
            if entries:
                newest = max([newest or 0, *(e.time_ms for e in entries)])
            if len(entries) < VENUE_FUNDING_CAP or newest is None or newest <= start:
                break
            start = newest  # capped answer: page forward (inclusive; duplicates are ignored)
        if newest is not None:
            cursor = self.ledger.advance_cursor(REST_CURSOR, newest)
        return FundingSyncResult(inserted, tuple(changed), cursor)
