"""Which intent a venue fill belongs to: by oid, then cloid, then time proximity.

Why its own module: the matching rule is the ledger's one heuristic (a fill of an order whose
acknowledgement was lost carries no oid we know), so it is stated and read in one place.
`LiveOms` calls it inside its write transaction; a fill that matches nothing stays an orphan.
"""

from __future__ import annotations

import sqlite3

from engine.oms.records import LedgerFill, MatchedVia


def match_fill(conn: sqlite3.Connection, fill: LedgerFill, window_ms: int) -> tuple[str, MatchedVia] | None:
    """Return (intent_id, how) for `fill`, or None when no order of ours explains it.

    Time proximity only considers orders without an oid still NEW, UNKNOWN or ABANDONED, of the
    same symbol and side, created within +-`window_ms` of the fill; the nearest one wins.
    """
    row = conn.execute(
        "SELECT intent_id FROM orders WHERE oid=? AND symbol=?", (fill.oid, fill.coin)
    ).fetchone()
    if row is not None:
        return str(row[0]), MatchedVia.OID
    if fill.cloid is not None:
        row = conn.execute("SELECT intent_id FROM orders WHERE cloid=?", (fill.cloid,)).fetchone()
        if row is not None:
            return str(row[0]), MatchedVia.CLOID
    row = conn.execute(
        "SELECT intent_id FROM orders WHERE symbol=? AND is_buy=? AND oid IS NULL "
        "AND state IN ('NEW','UNKNOWN','ABANDONED') AND created_ms BETWEEN ? AND ? "
        "ORDER BY abs(created_ms - ?) LIMIT 1",
        (fill.coin, int(fill.is_buy), fill.time_ms - window_ms, fill.time_ms + window_ms, fill.time_ms),
    ).fetchone()
    if row is not None:
        return str(row[0]), MatchedVia.TIME_PROXIMITY
    return None
