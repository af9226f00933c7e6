"""The sidecar's writes: one batch → SQLite (durable local log) → Redis (one MULTI/EXEC pipeline).

Runs in one worker thread, so batches land in order. SQLite is written first: when Redis is
down, closed candles are still durable and the MarketDataHub's SQLite fallback has them; when
Redis comes back (possibly empty after a restart), `reconcile` rewrites from SQLite every candle
Redis is missing and republishes the keys. Candle payloads are the layout's binary records
(`cluster.redis_layout`); keys of an older layout version are migrated at start. Account events
have no SQLite copy, so a batch that failed on Redis hands them back to be retried first.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from cluster.layout_migration import migrate_legacy
from cluster.redis_layout import AccountEvent, Bbo, Heartbeat, LayoutError, RedisLayout
from engine.storage.sqlite import (
    ensure_candles_table,
    last_candle_t,
    open_db,
    prune_candles,
    read_candles,
    upsert_candles_many,
)
from strategies.candle import Candle

log = logging.getLogger(__name__)


@dataclass(slots=True)
class WriteBatch:
    """Everything one flush writes. Candle lists are ascending per symbol."""

    publish: dict[str, list[Candle]] = field(default_factory=dict)
    corrections: dict[str, list[Candle]] = field(default_factory=dict)
    forming: dict[str, Candle] = field(default_factory=dict)
    mids: dict[str, float] = field(default_factory=dict)
    mids_venue_ms: int = 0
    mids_wall_ms: int = 0
    bbo: dict[str, Bbo] = field(default_factory=dict)
    account: list[tuple[str, AccountEvent]] = field(default_factory=list)
    heartbeat: Heartbeat | None = None

    def has_candles(self) -> bool:
        return bool(self.publish or self.corrections)

    def is_empty(self) -> bool:
        return not (
            self.has_candles() or self.forming or self.mids or self.bbo or self.account or self.heartbeat
        )

    def absorb(self, older: WriteBatch) -> None:
        """Put a batch that could not be written in front of this (newer) one."""
        for name in ("publish", "corrections"):
            mine: dict[str, list[Candle]] = getattr(self, name)
            for sym, candles in getattr(older, name).items():
                mine[sym] = candles + mine.get(sym, [])
        for sym, candle in older.forming.items():
            self.forming.setdefault(sym, candle)
        for sym, bbo in older.bbo.items():
            self.bbo.setdefault(sym, bbo)
        self.account[:0] = older.account


@dataclass(slots=True)
class WriteResult:
    redis_ok: bool
    sqlite_ok: bool
    leftover: WriteBatch | None
    candles_written: int = 0


class SidecarStore:
    """Owns the sidecar's SQLite connection and Redis client; call only from one thread."""

    def __init__(
        self,
        *,
        client: Any,
        layout: RedisLayout,
        interval: str,
        db_path: Any,
        interval_ms: int = 0,
        sqlite_keep_bars: int = 0,
        prune_every_writes: int = 2_000,
    ) -> None:
        self._client = client
        self._layout = layout
        self._interval = interval
        self._interval_ms = interval_ms
        self._sqlite_keep_bars = sqlite_keep_bars
        self._prune_every = prune_every_writes
        self._writes = 0
        self._newest_t = 0
        self._db = open_db(db_path, check_same_thread=False)
        ensure_candles_table(self._db)
        self.redis_dirty = False
        self.redis_failures = 0

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ start-up
    def last_closed(self, symbols: Sequence[str]) -> dict[str, int | None]:
        """Open time of the newest stored closed candle per symbol (the later of Redis and SQLite).

        First converts candle keys of an older layout version (`layout_migration.migrate_legacy`), so
        a Redis kept from an older engine is read, not re-downloaded. Marks Redis for
        reconciliation when it is down or behind SQLite.
        """
        remote: dict[str, int | None] | None = None
        try:
            migrate_legacy(self._layout, self._client, self._interval)  # once: version-1 JSON keys
            tails = self._layout.read_candles_many(
                self._client, dict.fromkeys(symbols), self._interval, limit=1
            )
            remote = {s: (c[-1].t if c else None) for s, c in tails.items()}
        except (redis.RedisError, LayoutError) as exc:
            log.warning(
                "redis unavailable at start; seeding from sqlite", extra={"error": type(exc).__name__}
            )
            self.redis_dirty = True
        found: dict[str, int | None] = {}
        for sym in symbols:
            local = last_candle_t(self._db, sym, self._interval)
            in_redis = None if remote is None else remote.get(sym)
            if local is not None and (in_redis is None or local > in_redis):
                self.redis_dirty = True
            known = [t for t in (local, in_redis) if t is not None]
            found[sym] = max(known) if known else None
        return found

    # ------------------------------------------------------------------ writes
    def write(self, batch: WriteBatch, symbols: Sequence[str]) -> WriteResult:
        """Write a batch; never raises for Redis/SQLite outages (reports them instead)."""
        sqlite_ok = True
        if batch.has_candles():
            try:
                upsert_candles_many(self._db, self._interval, batch.publish)  # then corrections: newer
                upsert_candles_many(self._db, self._interval, batch.corrections)
                self._maybe_prune(batch)
            except sqlite3.Error as exc:
                sqlite_ok = False
                log.error("sqlite candle write failed", extra={"error": str(exc)})
        try:
            if self.redis_dirty:
                self.reconcile(symbols)
            self._write_redis(batch)
        except (redis.RedisError, LayoutError) as exc:
            self.redis_failures += 1
            if not self.redis_dirty:
                log.error("redis write failed; candles kept in sqlite", extra={"error": type(exc).__name__})
            self.redis_dirty = True
            # latest-value data is kept too (a newer batch overrides it), so nothing is lost
            leftover = WriteBatch(account=batch.account, forming=batch.forming, bbo=batch.bbo)
            if not sqlite_ok:
                leftover.publish, leftover.corrections = batch.publish, batch.corrections
            return WriteResult(False, sqlite_ok, leftover)
        written = sum(map(len, batch.publish.values())) + sum(map(len, batch.corrections.values()))
        return WriteResult(True, sqlite_ok, None, written)

    def _maybe_prune(self, batch: WriteBatch) -> None:
        """Keep the candle DB bounded: every N writes drop bars older than sqlite_keep_bars."""
        for candles in batch.publish.values():
            self._newest_t = max(self._newest_t, candles[-1].t)
        self._writes += 1
        if self._sqlite_keep_bars <= 0 or self._writes % self._prune_every:
            return
        deleted = prune_candles(
            self._db, self._interval, self._newest_t - self._sqlite_keep_bars * self._interval_ms
        )
        if deleted:
            log.info("candle db pruned", extra={"deleted": deleted, "keep_bars": self._sqlite_keep_bars})

    def _write_redis(self, batch: WriteBatch) -> None:
        pipe = self._client.pipeline(transaction=True)
        layout, iv = self._layout, self._interval
        layout.write_closed_many(pipe, iv, batch.publish)
        # after the publish: a correction of a bar published in the same batch is the newer bar
        layout.write_closed_many(pipe, iv, batch.corrections, publish=False)
        layout.write_forming(pipe, iv, batch.forming)
        layout.write_mids(pipe, batch.mids, batch.mids_venue_ms, batch.mids_wall_ms)
        layout.write_bbo(pipe, batch.bbo)
        for user, event in batch.account:
            layout.append_account_event(pipe, user, event)
        if batch.heartbeat is not None:
            layout.write_heartbeat(pipe, batch.heartbeat)
        pipe.execute()

    def reconcile(self, symbols: Sequence[str]) -> int:
        """Rewrite from SQLite every closed candle newer than Redis has; return how many.

        Raises redis.RedisError if Redis is still unavailable (the caller retries later).
        """
        keep = self._layout.keep_bars
        tails = self._layout.read_candles_many(self._client, dict.fromkeys(symbols), self._interval, limit=1)
        missing: dict[str, list[Candle]] = {}
        for sym in symbols:
            after = tails[sym][-1].t if tails.get(sym) else None
            candles = read_candles(self._db, sym, self._interval, after_t=after, limit=keep)
            if candles:
                missing[sym] = candles
        if missing:
            pipe = self._client.pipeline(transaction=True)
            self._layout.write_closed_many(pipe, self._interval, missing)
            pipe.execute()
        count = sum(map(len, missing.values()))
        log.info("redis reconciled from sqlite", extra={"candles": count, "symbols": len(missing)})
        self.redis_dirty = False
        return count
