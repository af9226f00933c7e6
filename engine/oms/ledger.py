"""LiveOms: the durable intent -> order -> fill ledger of live and dry_live (SQLite, WAL, 0600).

The only writer of the OMS tables (schema, version and row records in `engine.oms.records`;
opening, pragmas and migrations in `engine.oms.ledger_db`: a DB with another schema version is
refused with OmsSchemaError). The rules it enforces:

* An intent, with its client order id, is committed (fsync'd WAL, `synchronous=FULL`) before the
  caller may sign or send anything. The cloid is `exchange_client.cloid_for(intent_id)`.
* OPEN intents carry the dedupe key `OPEN:<SYM>:<SIDE>:<candle ms>` (UNIQUE): a second OPEN for the
  same symbol, side and candle - e.g. after a restart inside the candle - returns the existing
  intent with `duplicate=True` whatever its state, and the caller must not send. ADD intents
  carry `ADD:<SYM>:<SIDE>:<candle ms>` with `retry_unfilled`: a new attempt only after every
  earlier one settled having filled nothing (`engine.oms.dedupe`).
* Order states move only through `engine.oms.states` (the transition table). Every transition is
  an appended `order_events` row; `orders` is the current-state projection of those rows.
* A fill the venue made liquidating the account (its `liquidation` object, kept in
  `liquidation_json`) is never linked to an intent: it explains its position change by itself
  (`ledger_positions`) and is not an orphan.
* Fills are facts written once, deduplicated on a natural key that does not need `tid`: the
  venue hash plus oid, time, side, price, size and start position (the start position differs
  between successive fills of one order, so two real fills never share it). A fill with a `tid`
  is also unique on (hash, tid). Fills are linked to intents (a separate `fill_links` fact) by
  oid, then cloid, then time proximity (same symbol and side, +-10 min); a fill that matches
  nothing is kept as an orphan and can be linked later.
* Cursors (e.g. the REST `userFillsByTime` position) advance only when the caller says the read
  that produced them succeeded.

Thread-safe: one connection guarded by a lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from engine.oms.dedupe import SinceEntry, attempts, blocking_attempt, retry_key, since_entry
from engine.oms.dedupe import dedupe_key_for_add as dedupe_key_for_add  # re-exported
from engine.oms.fill_match import match_fill
from engine.oms.ledger_db import OmsConfig as OmsConfig  # re-exported: callers configure the ledger here
from engine.oms.ledger_db import open_ledger_db
from engine.oms.records import (
    _FILL_COLUMNS,
    _INSERT_FILL,
    _INTENT_COLUMNS,
    _ORDER_COLUMNS,
    _SELECT_ORPHANS,
    FILL_COMPLETE_RATIO,
    CreateResult,
    DenyCode,
    DenyRecord,
    FillSource,
    IngestStats,
    IntentRecord,
    LedgerFill,
    OrderRow,
    deny_from_row,
    fill_from_row,
    fill_natural_key,
    intent_from_row,
    liquidation_json,
    order_from_row,
)
from engine.oms.records import dedupe_key_for_open as dedupe_key_for_open  # re-exported
from engine.oms.states import (
    UNSETTLED,
    InvalidTransition,
    OmsEvent,
    OrderState,
    next_state,
    venue_status_event,
)
from engine.runtime.clock import wall_ms
from engine.storage.sqlite import immediate_transaction
from engine.venue import types as hl
from engine.venue.exchange_client import (
    ExchangeAccepted,
    ExchangeAmbiguous,
    ExchangeNotSent,
    ExchangeOutcome,
    ExchangeRejected,
    cloid_for,
)


class LiveOms:
    """The ledger. Construct with a DB path (created 0600, WAL); `close()` when done."""

    def __init__(
        self,
        path: str | Path,
        *,
        mode: str,
        config: OmsConfig | None = None,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.path = Path(path)
        self.mode = str(mode)
        self.config = config or OmsConfig()
        self._clock_ms = clock_ms
        self._lock = threading.RLock()
        self._conn = open_ledger_db(self.path, self.config)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def checkpoint(self) -> None:
        """Fold the WAL into the main file (PASSIVE: never blocks writers). Call off the order path."""
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate_transaction(self._conn) as conn:
            yield conn

    # --- intents ----------------------------------------------------------------------------

    def create_intent(
        self,
        *,
        symbol: str,
        action: str,
        position_side: str,
        is_buy: bool,
        size_coins: float,
        limit_px: float,
        reduce_only: bool,
        reference_price: float,
        leverage: float,
        reason: str,
        event_ms: int,
        decision_id: str | None = None,
        dedupe_key: str | None = None,
        retry_unfilled: bool = False,
        meta: Mapping[str, Any] | None = None,
    ) -> CreateResult:
        """Commit a new intent (state NEW) and its order row before anything is sent.

        With `dedupe_key` set and already present, nothing is written and the existing intent is
        returned with `duplicate=True` (the caller must not send). With `retry_unfilled` too, a
        new attempt (key `<dedupe_key>#n`) is committed only when every earlier one settled
        unfilled; otherwise the blocking one is returned as the duplicate (`engine.oms.dedupe`).
        Raises sqlite3.Error when the write fails: the caller then must not send either (fail
        closed)."""
        now = self._clock_ms()
        intent_id = uuid.uuid4().hex
        record = IntentRecord(
            intent_id=intent_id, cloid=cloid_for(intent_id), dedupe_key=dedupe_key, mode=self.mode,
            symbol=symbol, action=str(action), position_side=str(position_side), is_buy=bool(is_buy),
            size_coins=float(size_coins), limit_px=float(limit_px), reduce_only=bool(reduce_only),
            reference_price=float(reference_price), leverage=float(leverage), reason=str(reason),
            decision_id=decision_id, event_ms=int(event_ms), created_ms=now,
            meta_json=json.dumps(dict(meta or {}), sort_keys=True, separators=(",", ":")),
        )  # fmt: skip
        with self._tx() as conn:
            if dedupe_key is not None:
                earlier = attempts(conn, dedupe_key, with_retries=retry_unfilled)
                blocking = blocking_attempt(earlier, retry_unfilled=retry_unfilled)
                if blocking is not None:
                    return CreateResult(blocking.intent, True, blocking.state)
                record = dataclasses.replace(record, dedupe_key=retry_key(dedupe_key, len(earlier)))
            values = [getattr(record, c) for c in _INTENT_COLUMNS]
            conn.execute(
                f"INSERT INTO intents ({', '.join(_INTENT_COLUMNS)}) VALUES ({', '.join('?' * len(values))})",
                [int(v) if isinstance(v, bool) else v for v in values],
            )
            conn.execute(
                f"INSERT INTO orders ({', '.join(_ORDER_COLUMNS)}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (intent_id, record.cloid, symbol, int(is_buy), OrderState.NEW.value, None,
                 float(size_coins), 0.0, now, now),
            )  # fmt: skip
        return CreateResult(record, False, OrderState.NEW)

    def intent(self, intent_id: str) -> IntentRecord | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {', '.join(_INTENT_COLUMNS)} FROM intents WHERE intent_id=?", (intent_id,)
            ).fetchone()
        return None if row is None else intent_from_row(row)

    def intents(self) -> list[IntentRecord]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {', '.join(_INTENT_COLUMNS)} FROM intents ORDER BY created_ms, intent_id"
            ).fetchall()
        return [intent_from_row(r) for r in rows]

    def intent_by_cloid(self, cloid: str) -> IntentRecord | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {', '.join(_INTENT_COLUMNS)} FROM intents WHERE cloid=?", (cloid.lower(),)
            ).fetchone()
        return None if row is None else intent_from_row(row)

    # --- orders and transitions -------------------------------------------------------------

    def order(self, intent_id: str) -> OrderRow | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {', '.join(_ORDER_COLUMNS)} FROM orders WHERE intent_id=?", (intent_id,)
            ).fetchone()
        return None if row is None else order_from_row(row)

    def orders(self, states: Iterable[OrderState] | None = None) -> list[OrderRow]:
        """Return orders (optionally only those in `states`), oldest first."""
        sql = f"SELECT {', '.join(_ORDER_COLUMNS)} FROM orders"
        args: list[str] = []
        if states is not None:
            args = [OrderState(s).value for s in states]
            sql += f" WHERE state IN ({', '.join('?' * len(args))})"
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY created_ms, intent_id", args).fetchall()
        return [order_from_row(r) for r in rows]

    def unsettled(self) -> list[OrderRow]:
        """Orders in flight or live on the venue (NEW, UNKNOWN, ACCEPTED, PARTIAL, PENDING_CANCEL)."""
        return self.orders(UNSETTLED)

    def apply(
        self,
        intent_id: str,
        event: OmsEvent,
        *,
        oid: int | None = None,
        detail: Mapping[str, Any] | None = None,
        reason: DenyCode | None = None,
    ) -> OrderState:
        """Run `event` through the transition table, append the event row, update the projection.

        `reason` is stored as the row's `reason_code` (a DENY's typed code; `detail` its numbers).
        Raises InvalidTransition (nothing written) for a pair the table does not have."""
        with self._tx() as conn:
            return self._apply(conn, intent_id, event, oid=oid, detail=detail, reason=reason)

    def _apply(
        self,
        conn: sqlite3.Connection,
        intent_id: str,
        event: OmsEvent,
        *,
        oid: int | None = None,
        detail: Mapping[str, Any] | None = None,
        reason: DenyCode | None = None,
    ) -> OrderState:
        row = conn.execute("SELECT state, oid FROM orders WHERE intent_id=?", (intent_id,)).fetchone()
        if row is None:
            raise KeyError(f"no order for intent {intent_id}")
        before = OrderState(row[0])
        after = next_state(before, event)
        now = self._clock_ms()
        new_oid = row[1] if row[1] is not None else oid
        if after is before and new_oid == row[1]:
            return after  # a repeat of what we know (periodic lookups, late fills): no new fact
        conn.execute(
            "INSERT INTO order_events "
            "(intent_id, event, from_state, to_state, oid, recorded_ms, detail_json, reason_code) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (intent_id, OmsEvent(event).value, before.value, after.value, oid, now,
             json.dumps(dict(detail or {}), sort_keys=True, default=str),
             None if reason is None else reason.value),
        )  # fmt: skip
        conn.execute(
            "UPDATE orders SET state=?, oid=?, updated_ms=? WHERE intent_id=?",
            (after.value, new_oid, now, intent_id),
        )
        return after

    def order_events(self, intent_id: str) -> list[tuple[str, str, str]]:
        """Return (event, from_state, to_state) rows of one intent, in order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT event, from_state, to_state FROM order_events WHERE intent_id=? ORDER BY id",
                (intent_id,),
            ).fetchall()
        return [tuple(r) for r in rows]

    def denials(self, intent_id: str | None = None) -> list[DenyRecord]:
        """Return the DENY rows (all, or one intent's), oldest first, with their typed reasons."""
        sql = "SELECT intent_id, reason_code, detail_json, recorded_ms FROM order_events WHERE event=?"
        args: list[str] = [OmsEvent.DENY.value]
        if intent_id is not None:
            sql, args = sql + " AND intent_id=?", [*args, intent_id]
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY id", args).fetchall()
        return [deny_from_row(r) for r in rows]

    def record_outcome(self, intent_id: str, outcome: ExchangeOutcome) -> OrderState:
        """Record what one POST of this intent's (single-order) action returned."""
        if isinstance(outcome, ExchangeAmbiguous):
            return self.apply(intent_id, OmsEvent.ACK_AMBIGUOUS, detail={"reason": str(outcome.reason)})
        if isinstance(outcome, ExchangeNotSent):
            return self.apply(intent_id, OmsEvent.SEND_SKIPPED, detail={"reason": str(outcome.reason)})
        if isinstance(outcome, ExchangeRejected):
            return self.apply(
                intent_id, OmsEvent.ACK_REJECTED,
                detail={"reason": str(outcome.reason), "message": outcome.message[:200]},
            )  # fmt: skip
        if isinstance(outcome, ExchangeAccepted):
            statuses = outcome.ack.statuses
            status = statuses[0] if statuses else None
            if isinstance(status, hl.FilledStatus):
                return self.apply(
                    intent_id, OmsEvent.ACK_FILLED, oid=status.oid,
                    detail={"total_sz": status.total_sz, "avg_px": status.avg_px},
                )  # fmt: skip
            if isinstance(status, hl.RestingStatus):
                return self.apply(intent_id, OmsEvent.ACK_RESTING, oid=status.oid)
            if isinstance(status, hl.ErrorStatus):
                return self.apply(intent_id, OmsEvent.ACK_REJECTED, detail={"message": status.message[:200]})
            return self.apply(intent_id, OmsEvent.ACK_AMBIGUOUS, detail={"reason": "no_order_status"})
        raise TypeError(f"not an exchange outcome: {type(outcome).__name__}")

    def apply_order_status(self, intent_id: str, info: hl.OrderStatusInfo) -> OrderState:
        """Settle an order from an `orderStatus` answer (by cloid). "unknownOid" is NOT_FOUND, which
        becomes NOT_FOUND_CONFIRMED (ABANDONED) only past the grace period after creation."""
        if info.known and info.status is not None:
            oid = info.order.oid if info.order is not None else None
            return self.apply(
                intent_id,
                venue_status_event(str(info.status)),
                oid=oid,
                detail={"source": "order_status", "status": str(info.status)},
            )
        order = self.order(intent_id)
        if order is None:
            raise KeyError(f"no order for intent {intent_id}")
        if self._clock_ms() - order.created_ms >= self.config.not_found_grace_ms:
            return self.apply(intent_id, OmsEvent.NOT_FOUND_CONFIRMED, detail={"source": "order_status"})
        return self.apply(intent_id, OmsEvent.VENUE_NOT_FOUND, detail={"source": "order_status"})

    def apply_order_updates(self, updates: Iterable[hl.OrderUpdate]) -> int:
        """Apply WS `orderUpdates` to our orders (matched by cloid, then oid); return how many matched.
        Updates about orders that are not ours are ignored; a transition the table lacks is
        recorded as an anomaly, not applied."""
        matched = 0
        with self._tx() as conn:
            for update in updates:
                intent_id = self._intent_for_order(conn, update.order.cloid, update.order.oid)
                if intent_id is None:
                    continue
                matched += 1
                event = venue_status_event(str(update.status))
                try:
                    self._apply(
                        conn,
                        intent_id,
                        event,
                        oid=update.order.oid,
                        detail={"source": "order_update", "status": str(update.status)},
                    )
                except InvalidTransition as exc:
                    self._anomaly(conn, "order_update_transition", update.order.coin, intent_id, exc)
        return matched

    def _intent_for_order(self, conn: sqlite3.Connection, cloid: str | None, oid: int | None) -> str | None:
        if cloid is not None:
            row = conn.execute("SELECT intent_id FROM orders WHERE cloid=?", (cloid.lower(),)).fetchone()
            if row is not None:
                return str(row[0])
        if oid is not None:
            row = conn.execute("SELECT intent_id FROM orders WHERE oid=?", (oid,)).fetchone()
            if row is not None:
                return str(row[0])
        return None

    # --- fills ------------------------------------------------------------------------------

    def ingest_fills(self, fills: Iterable[hl.Fill], *, source: FillSource) -> IngestStats:
        """Insert new fills (idempotent), link each to an intent, advance the intents' states.

        One transaction for the batch: on any error nothing is written and the error propagates
        (the caller keeps the batch and retries; its cursor must not advance)."""
        stats = IngestStats()
        now = self._clock_ms()
        with self._tx() as conn:
            ordered = sorted(fills, key=lambda f: (f.time_ms, f.tid if f.tid is not None else -1, f.oid))
            for fill in ordered:  # the venue answers newest first: store in execution order
                stats.received += 1
                key = fill_natural_key(fill)
                values = (
                    key, fill.hash.lower(), fill.tid, fill.oid, fill.cloid.lower() if fill.cloid else None,
                    fill.coin, int(str(fill.side) == "B"), float(fill.px), float(fill.sz), fill.time_ms,
                    float(fill.start_position), fill.dir, float(fill.closed_pnl), float(fill.fee),
                    fill.fee_token, int(fill.crossed), FillSource(source).value, now, liquidation_json(fill),
                )  # fmt: skip
                cursor = conn.execute(
                    _INSERT_FILL,
                    values,
                )
                if cursor.rowcount != 1:
                    stats.duplicates += 1
                    continue
                stats.inserted += 1
                stats.new_fill_keys.append(key)
                if fill.liquidation is not None:  # the venue's order, not ours: explained, never linked
                    stats.liquidations += 1
                elif self._link_fill(conn, fill_from_row(values), now, stats):
                    stats.matched += 1
                else:
                    stats.orphans += 1
        return stats

    def _link_fill(self, conn: sqlite3.Connection, fill: LedgerFill, now: int, stats: IngestStats) -> bool:
        match = match_fill(conn, fill, self.config.match_window_ms)
        if match is None:
            return False
        intent_id, via = match
        conn.execute(
            "INSERT OR IGNORE INTO fill_links (fill_key, intent_id, matched_via, recorded_ms) "
            "VALUES (?,?,?,?)",
            (fill.fill_key, intent_id, via.value, now),
        )
        conn.execute(
            "UPDATE orders SET filled_sz = filled_sz + ?, oid = COALESCE(oid, ?) WHERE intent_id=?",
            (fill.sz, fill.oid, intent_id),
        )
        filled, requested = conn.execute(
            "SELECT filled_sz, requested_sz FROM orders WHERE intent_id=?", (intent_id,)
        ).fetchone()
        event = OmsEvent.FILL_COMPLETE if filled >= FILL_COMPLETE_RATIO * requested else OmsEvent.FILL
        try:
            self._apply(
                conn, intent_id, event, oid=fill.oid, detail={"fill_key": fill.fill_key, "via": via.value}
            )
        except InvalidTransition as exc:
            stats.anomalies += 1
            self._anomaly(conn, "fill_on_terminal_order", fill.coin, intent_id, exc)
        return True

    def link_orphans(self) -> int:
        """Try to link every orphan fill again (an intent's oid may be known now); return how many."""
        linked = 0
        now = self._clock_ms()
        with self._tx() as conn:
            rows = conn.execute(_SELECT_ORPHANS).fetchall()
            stats = IngestStats()
            for row in rows:
                if self._link_fill(conn, fill_from_row(row), now, stats):
                    linked += 1
        return linked

    def fills(self, symbol: str | None = None) -> list[LedgerFill]:
        sql = f"SELECT {', '.join(_FILL_COLUMNS)} FROM fills"
        args: tuple[str, ...] = ()
        if symbol is not None:
            sql, args = sql + " WHERE coin=?", (symbol,)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY time_ms, fill_key", args).fetchall()
        return [fill_from_row(r) for r in rows]

    def fills_after_rowid(self, rowid: int, limit: int) -> list[tuple[int, LedgerFill]]:
        """Return up to `limit` fills inserted after `rowid` (insertion order), with their rowids."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT rowid, {', '.join(_FILL_COLUMNS)} FROM fills WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (int(rowid), int(limit)),
            ).fetchall()
        return [(int(r[0]), fill_from_row(r[1:])) for r in rows]

    def fill_links(self) -> dict[str, tuple[str, str]]:
        """Return {fill_key: (intent_id, matched_via)}."""
        with self._lock:
            rows = self._conn.execute("SELECT fill_key, intent_id, matched_via FROM fill_links").fetchall()
        return {str(k): (str(i), str(v)) for k, i, v in rows}

    def liquidation_fills(self) -> list[LedgerFill]:
        """Return the fills the venue made liquidating the account, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {', '.join(_FILL_COLUMNS)} FROM fills WHERE liquidation_json IS NOT NULL "
                "ORDER BY time_ms, fill_key"
            ).fetchall()
        return [fill_from_row(r) for r in rows]

    def liquidation_cancels(self) -> list[str]:
        """Return the intents whose order the venue cancelled while liquidating the account."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT DISTINCT intent_id FROM order_events WHERE detail_json LIKE ? ORDER BY intent_id",
                ('%"status": "liquidatedCanceled"%',),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def orphan_fills(self) -> list[LedgerFill]:
        with self._lock:
            rows = self._conn.execute(_SELECT_ORPHANS).fetchall()
        return [fill_from_row(r) for r in rows]

    def ledger_positions(self, *, explained_only: bool = True) -> dict[str, float]:
        """Return the signed net size per coin (long > 0) implied by the fills linked to our intents
        and the venue's liquidation fills (`explained_only`, the default: orphan fills do not explain
        a position) or by every fill."""
        where = (
            "LEFT JOIN fill_links l ON l.fill_key = f.fill_key "
            "WHERE l.fill_key IS NOT NULL OR f.liquidation_json IS NOT NULL "
            if explained_only
            else ""
        )
        with self._lock:
            rows = self._conn.execute(
                f"SELECT f.coin, SUM(CASE WHEN f.is_buy=1 THEN f.sz ELSE -f.sz END) FROM fills f {where}"
                "GROUP BY f.coin"
            ).fetchall()
        return {str(c): float(s) for c, s in rows if abs(float(s)) > 1e-12}

    def last_filled_entry(self, symbol: str) -> IntentRecord | None:
        """Return the newest OPEN intent of `symbol` that got any fill (the position's origin)."""
        cols = ", ".join("i." + c for c in _INTENT_COLUMNS)
        with self._lock:
            row = self._conn.execute(
                f"SELECT {cols} FROM intents i JOIN orders o ON o.intent_id = i.intent_id "
                "WHERE i.symbol=? AND i.action='OPEN' AND o.filled_sz > 0 ORDER BY i.created_ms DESC LIMIT 1",
                (symbol,),
            ).fetchone()
        return None if row is None else intent_from_row(row)

    def since_entry(self, symbol: str) -> SinceEntry:
        """ADDs and partial exits of `symbol`'s position since its OPEN (`engine.oms.dedupe`)."""
        with self._lock:
            return since_entry(self._conn, symbol)

    # --- exit state (strategy-owned fields of a live position) -------------------------------

    def set_exit_state(self, symbol: str, trailing_sl: float | None, tp1_taken: bool) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO exit_state (symbol, trailing_sl, tp1_taken, updated_ms) "
                "VALUES (?,?,?,?)",
                (symbol, trailing_sl, int(tp1_taken), self._clock_ms()),
            )

    def clear_exit_state(self, symbol: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM exit_state WHERE symbol=?", (symbol,))

    def exit_state(self, symbol: str) -> tuple[float | None, bool] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT trailing_sl, tp1_taken FROM exit_state WHERE symbol=?", (symbol,)
            ).fetchone()
        return None if row is None else (row[0], bool(row[1]))

    # --- cursors and reconcile events -------------------------------------------------------

    def cursor(self, name: str) -> int | None:
        with self._lock:
            row = self._conn.execute("SELECT value_ms FROM cursors WHERE name=?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def advance_cursor(self, name: str, value_ms: int) -> int:
        """Move a cursor forward (never back) after the read that produced `value_ms` succeeded."""
        now = self._clock_ms()
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO cursors (name, value_ms, updated_ms) VALUES (?,?,?) ON CONFLICT(name) DO UPDATE "
                "SET value_ms=max(value_ms, excluded.value_ms), updated_ms=excluded.updated_ms",
                (name, int(value_ms), now),
            )
            return int(conn.execute("SELECT value_ms FROM cursors WHERE name=?", (name,)).fetchone()[0])

    def record_reconcile_event(
        self, kind: str, detail: Mapping[str, Any], *, symbol: str | None = None, intent_id: str | None = None
    ) -> None:
        with self._tx() as conn:
            self._event(conn, kind, symbol, intent_id, detail)

    def reconcile_events(self, kind: str | None = None) -> list[tuple[str, str | None, dict[str, Any]]]:
        sql, args = "SELECT kind, symbol, detail_json FROM reconcile_events", ()
        if kind is not None:
            sql, args = sql + " WHERE kind=?", (kind,)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY id", args).fetchall()
        return [(str(k), s, json.loads(d)) for k, s, d in rows]

    def _event(
        self, conn: sqlite3.Connection, kind: str, symbol: str | None, intent_id: str | None,
        detail: Mapping[str, Any],
    ) -> None:  # fmt: skip
        conn.execute(
            "INSERT INTO reconcile_events (kind, symbol, intent_id, recorded_ms, detail_json) "
            "VALUES (?,?,?,?,?)",
            (
                kind,
                symbol,
                intent_id,
                self._clock_ms(),
                json.dumps(dict(detail), sort_keys=True, default=str),
            ),
        )

    def _anomaly(
        self, conn: sqlite3.Connection, kind: str, symbol: str, intent_id: str, exc: InvalidTransition
    ) -> None:
        self._event(conn, kind, symbol, intent_id, {"state": str(exc.state), "event": str(exc.event)})

