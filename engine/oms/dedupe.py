"""Restart-safe dedupe of entry intents: one OPEN, and one live ADD attempt, per symbol/side/candle;
and what a live position did since its OPEN (ADDs, a partial take-profit), kept by the same ledger.

Why the ledger and not the engine: the engine's per-candle entry memory (`engine.tick.engine`,
restored from decision events) is written *after* the order went out, and a restarted daemon
decides again on the last candle it finds (the persisted candle keys: in production a restart
inside the same 5 m candle is the normal case). A kill -9 between the venue's answer and the
decision event therefore leaves a filled entry the engine does not remember, and the restart
decides the same entry again. The intent, by contrast, is committed (fsync'd) before anything is
sent, so the ledger is the only place that knows for sure what was already attempted.

* OPEN: key `OPEN:<SYM>:<SIDE>:<candle ms>`; a second OPEN is a duplicate whatever the first
  one's state (unchanged since schema 1).
* ADD: key `ADD:<SYM>:<SIDE>:<candle ms>`, retries `...#2`, `...#3`. A new ADD attempt on the
  candle is committed only when every earlier one has settled (terminal state) having filled
  nothing, with no fill linked to it, and is not ABANDONED (an abandoned order can still turn out
  filled: `engine.oms.states`). An IOC add the book could not match may thus be retried within its
  candle, as before; an add that filled, partly filled, or whose fate is unknown (NEW, UNKNOWN,
  resting) is never sent twice. When in doubt: duplicate, nothing sent.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from engine.oms.records import _INTENT_COLUMNS, IntentRecord, intent_from_row
from engine.oms.records import dedupe_key_for_open as dedupe_key_for_open  # re-exported
from engine.oms.states import OrderState

RETRY_SEP = "#"
# Settled with nothing done at the venue (or refused before it): an ADD may be attempted again.
RETRYABLE = frozenset({
    OrderState.REJECTED, OrderState.NOT_SENT, OrderState.DENIED, OrderState.WOULD_SEND, OrderState.CANCELLED,
})  # fmt: skip


def dedupe_key_for_add(symbol: str, position_side: str, candle_ms: int) -> str:
    """Return the restart-safe key of the ADD attempts on one symbol/side/candle."""
    return f"ADD:{symbol}:{position_side}:{int(candle_ms)}"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One earlier intent under a dedupe key, with what the ledger knows of its order."""

    intent: IntentRecord
    state: OrderState
    filled_sz: float
    linked_fills: int

    @property
    def settled_unfilled(self) -> bool:
        """True only when this attempt provably did nothing at the venue and never will."""
        return self.state in RETRYABLE and self.filled_sz <= 0.0 and self.linked_fills == 0


def attempts(conn: sqlite3.Connection, key: str, *, with_retries: bool) -> list[Attempt]:
    """The intents committed under `key` (and, `with_retries`, its `key#n` retries), oldest first."""
    cols = ", ".join(f"i.{c}" for c in _INTENT_COLUMNS)
    where = "i.dedupe_key = ?"
    args: list[str] = [key]
    if with_retries:  # the range [key#, key$) holds exactly the keys that start with "key#"
        where += " OR (i.dedupe_key >= ? AND i.dedupe_key < ?)"
        args += [key + RETRY_SEP, key + chr(ord(RETRY_SEP) + 1)]
    rows = conn.execute(
        f"SELECT {cols}, o.state, o.filled_sz, "
        "(SELECT COUNT(*) FROM fill_links l WHERE l.intent_id = i.intent_id) "
        f"FROM intents i LEFT JOIN orders o ON o.intent_id = i.intent_id WHERE {where} "
        "ORDER BY i.created_ms, i.intent_id",
        args,
    ).fetchall()
    n = len(_INTENT_COLUMNS)
    return [
        Attempt(
            intent_from_row(row[:n]),
            OrderState.NEW if row[n] is None else OrderState(row[n]),  # no order row: unknown, in doubt
            float(row[n + 1] or 0.0),
            int(row[n + 2]),
        )
        for row in rows
    ]


def blocking_attempt(found: list[Attempt], *, retry_unfilled: bool) -> Attempt | None:
    """The earlier attempt that makes a new intent a duplicate, or None when it may be committed.
    Without `retry_unfilled` any earlier attempt blocks (OPEN)."""
    if not found:
        return None
    if not retry_unfilled:
        return found[0]
    return next((a for a in reversed(found) if not a.settled_unfilled), None)


def retry_key(key: str, earlier: int) -> str:
    """The dedupe key of the attempt after `earlier` settled, unfilled ones (`key#2`, ...)."""
    return key if earlier == 0 else f"{key}{RETRY_SEP}{earlier + 1}"


@dataclass(frozen=True, slots=True)
class SinceEntry:
    """What a live position did since its newest OPEN, as far as the ledger knows it."""

    adds: int = 0  # ADDs that acted or may have (max_adds_per_symbol)
    last_add_ms: int = 0  # the newest one's decision candle (add_cooldown_minutes)
    reduces: int = 0  # partial take-profits (REDUCE) that acted or may have: TP1 is taken


def since_entry(conn: sqlite3.Connection, symbol: str) -> SinceEntry:
    """The pyramiding and partial-exit state of `symbol`'s position from its intents since the
    newest OPEN. The venue knows neither and the engine records them only after the order (a
    kill -9 in between loses them), so a restart would add past the limits, or take TP1 twice.
    Only intents that provably did nothing are left out: one in flight (or filled before its
    fills were read) counts (`strategies.sizing.check_add`, `strategies.exits`)."""
    idle = ", ".join(f"'{s.value}'" for s in sorted(RETRYABLE))
    acted = f"NOT ({{o}}.state IN ({idle}) AND {{o}}.filled_sz <= 0)"
    row = conn.execute(
        "SELECT COALESCE(SUM(i.action = 'ADD'), 0), "
        "COALESCE(MAX(CASE WHEN i.action = 'ADD' THEN i.event_ms END), 0), "
        "COALESCE(SUM(i.action = 'REDUCE'), 0) FROM intents i "
        f"JOIN orders o ON o.intent_id = i.intent_id WHERE i.symbol = ?1 AND i.action IN ('ADD', 'REDUCE') "
        f"AND {acted.format(o='o')} AND i.created_ms >= COALESCE((SELECT MAX(e.created_ms) FROM intents e "
        f"JOIN orders eo ON eo.intent_id = e.intent_id WHERE e.symbol = ?1 AND e.action = 'OPEN' "
        f"AND {acted.format(o='eo')}), 0)",
        (symbol,),
    ).fetchone()
    return SinceEntry(int(row[0]), int(row[1]), int(row[2]))
