"""Decision events: one row per evaluated candidate, so any trade can be explained afterwards.

Owns the `decision_events` table of the trading DB. Each event says what the strategy said
(signal, confidence, score), which gates ran and which failed (reason codes), what the engine did
(`action_taken`) and, when it traded, the trade id of the resulting ledger row. Events are facts:
written once after the candidate was handled, never edited. Every row carries the mode, an event
time (the candle key or decision time) and a recorded time, both UTC ms. Ids are ULIDs (48-bit
ms time + 80 random bits, Crockford base-32), so they sort by time across runs.
"""

from __future__ import annotations

import json
import math
import secrets
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.enums import DecisionEventType, DecisionPhase, DecisionStatus, Mode
from engine.storage.sqlite import immediate_transaction
from strategies.enums import Confidence, Signal, TradeAction

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decision_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    mode TEXT NOT NULL,
    run_id TEXT,
    tick_id INTEGER,
    symbol TEXT NOT NULL,
    event_type TEXT NOT NULL,
    status TEXT NOT NULL,
    decision_phase TEXT NOT NULL,
    signal TEXT,
    confidence TEXT,
    score REAL,
    action TEXT,
    action_taken TEXT NOT NULL,
    reason_code TEXT,
    gates_json TEXT NOT NULL,
    context_json TEXT NOT NULL,
    trade_id INTEGER,
    parent_id TEXT,
    event_ms INTEGER NOT NULL,
    recorded_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS decision_events_symbol_time ON decision_events (mode, symbol, event_ms);
CREATE INDEX IF NOT EXISTS decision_events_time ON decision_events (mode, recorded_ms);
CREATE INDEX IF NOT EXISTS decision_events_type ON decision_events (event_type);
CREATE INDEX IF NOT EXISTS decision_events_trade ON decision_events (trade_id);
"""

_COLUMNS = (
    "id", "mode", "run_id", "tick_id", "symbol", "event_type", "status", "decision_phase", "signal",
    "confidence", "score", "action", "action_taken", "reason_code", "gates_json", "context_json",
    "trade_id", "parent_id", "event_ms", "recorded_ms",
)  # fmt: skip


def new_decision_id(now_ms: int) -> str:
    """Return a ULID: 10 characters of ms time then 16 of randomness (26 Crockford base-32)."""
    if not 0 <= now_ms < 2**48:
        raise ValueError(f"ULID time must fit in 48 bits, got {now_ms}")
    value = (now_ms << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


@dataclass(frozen=True, slots=True, kw_only=True)
class GateCheck:
    """One gate evaluated for a candidate: its code, whether it passed, and the numbers behind it."""

    gate: str
    passed: bool
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionEvent:
    """One evaluated candidate (an entry signal, an exit check, a gate block, a fill or funding)."""

    event_id: str
    mode: Mode
    symbol: str
    event_type: DecisionEventType
    status: DecisionStatus
    phase: DecisionPhase
    action_taken: str
    event_ms: int
    recorded_ms: int
    signal: Signal | None = None
    confidence: Confidence | None = None
    score: float | None = None
    action: TradeAction | None = None
    reason_code: str | None = None
    gates: tuple[GateCheck, ...] = ()
    context: Mapping[str, Any] = field(default_factory=dict)
    trade_id: int | None = None
    parent_id: str | None = None
    tick_id: int | None = None
    run_id: str | None = None

    @property
    def failed_gates(self) -> tuple[str, ...]:
        return tuple(check.gate for check in self.gates if not check.passed)


def _json_default(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def _dumps(value: object) -> str:
    # Non-finite floats become null so the JSON stays standard; unknown objects become strings.
    return json.dumps(_finite(value), sort_keys=True, separators=(",", ":"), default=_json_default)


def _finite(value: object) -> object:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _row(event: DecisionEvent) -> tuple[object, ...]:
    gates = [{"gate": g.gate, "passed": g.passed, "details": dict(g.details)} for g in event.gates]
    score = event.score if event.score is None or math.isfinite(event.score) else None
    return (
        event.event_id, event.mode.value, event.run_id, event.tick_id, event.symbol, event.event_type.value,
        event.status.value, event.phase.value, None if event.signal is None else event.signal.value,
        None if event.confidence is None else event.confidence.value, score,
        None if event.action is None else event.action.value, event.action_taken, event.reason_code,
        _dumps(gates), _dumps(dict(event.context)), event.trade_id, event.parent_id, event.event_ms,
        event.recorded_ms,
    )  # fmt: skip


def _event(values: tuple[Any, ...]) -> DecisionEvent:
    row = dict(zip(_COLUMNS, values, strict=True))
    gates = tuple(
        GateCheck(gate=g["gate"], passed=bool(g["passed"]), details=g.get("details") or {})
        for g in json.loads(row["gates_json"])
    )
    return DecisionEvent(
        event_id=row["id"], mode=Mode(row["mode"]), symbol=row["symbol"],
        event_type=DecisionEventType(row["event_type"]), status=DecisionStatus(row["status"]),
        phase=DecisionPhase(row["decision_phase"]), action_taken=row["action_taken"],
        event_ms=row["event_ms"], recorded_ms=row["recorded_ms"],
        signal=None if row["signal"] is None else Signal(row["signal"]),
        confidence=None if row["confidence"] is None else Confidence(row["confidence"]),
        score=row["score"], action=None if row["action"] is None else TradeAction(row["action"]),
        reason_code=row["reason_code"], gates=gates, context=json.loads(row["context_json"]),
        trade_id=row["trade_id"], parent_id=row["parent_id"], tick_id=row["tick_id"], run_id=row["run_id"],
    )  # fmt: skip


# A ledger row that names its decision links that decision's event to itself in the same
# transaction, so no crash can leave a fill whose event does not name it (the engine writes the
# event, PENDING, before the order goes out; a daemon killed before it records the outcome leaves
# the PENDING event linked to the fill).
_LINK_FILL_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS decision_events_link_fill AFTER INSERT ON trades
FOR EACH ROW WHEN NEW.decision_id IS NOT NULL
BEGIN
    UPDATE decision_events SET trade_id = NEW.id WHERE id = NEW.decision_id AND trade_id IS NULL;
END;
"""


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the decision_events table and its indexes if missing, and the fill link when the
    ledger (`trades`) lives in the same database."""
    conn.executescript(_SCHEMA)
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='trades'").fetchone():
        conn.executescript(_LINK_FILL_TRIGGER)


def read_events(
    conn: sqlite3.Connection,
    *,
    mode: Mode | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    symbol: str | None = None,
) -> list[DecisionEvent]:
    """Return decision events in write order, filtered by mode, event time window and symbol."""
    sql = f"SELECT {', '.join(_COLUMNS)} FROM decision_events WHERE 1=1"
    args: list[object] = []
    for clause, value in (
        (" AND mode=?", None if mode is None else mode.value),
        (" AND event_ms>=?", since_ms),
        (" AND event_ms<?", until_ms),
        (" AND symbol=?", symbol),
    ):
        if value is not None:
            sql += clause
            args.append(value)
    return [_event(values) for values in conn.execute(sql + " ORDER BY seq", args).fetchall()]


class EventLogger:
    """Writes decision events of one mode (and run) into the trading DB."""

    def __init__(self, conn: sqlite3.Connection, mode: Mode, run_id: str | None = None) -> None:
        self._conn = conn
        self._mode = mode
        self._run_id = run_id
        ensure_schema(conn)

    @property
    def mode(self) -> Mode:
        return self._mode

    def new_event(self, **fields: Any) -> DecisionEvent:
        """Build an event stamped with this logger's mode, run id and a fresh ULID."""
        recorded_ms = int(fields["recorded_ms"])
        fields.setdefault("event_id", new_decision_id(recorded_ms))
        fields.setdefault("run_id", self._run_id)
        return DecisionEvent(mode=self._mode, **fields)

    def record(self, event: DecisionEvent) -> None:
        """Write one event (its own transaction)."""
        self.record_many((event,))

    def record_many(self, events: Iterable[DecisionEvent]) -> int:
        """Write a batch of events in one transaction (one per tick); return how many.

        An event whose id is already stored replaces it only if the stored one is PENDING (the
        outcome of an order replacing the event written before it was sent; a trade id the fill
        linked is kept). Any other repeated id raises and nothing is written."""
        rows = []
        for event in events:
            if event.mode is not self._mode:
                raise ValueError(f"decision event mode {event.mode} does not match logger mode {self._mode}")
            rows.append(_row(event))
        if not rows:
            return 0
        updates = ", ".join(
            f"{c}=COALESCE(excluded.{c}, decision_events.{c})" if c == "trade_id" else f"{c}=excluded.{c}"
            for c in _COLUMNS[1:]
        )
        sql = (
            f"INSERT INTO decision_events ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
            f" ON CONFLICT(id) DO UPDATE SET {updates}"
            f" WHERE decision_events.status='{DecisionStatus.PENDING}'"
        )
        with immediate_transaction(self._conn) as conn:
            written = conn.executemany(sql, rows).rowcount
            if written != len(rows):  # a repeated id of an event that is not PENDING: roll back
                raise sqlite3.IntegrityError(f"decision event id already recorded ({written}/{len(rows)})")
        return len(rows)

    def events(
        self, *, since_ms: int | None = None, until_ms: int | None = None, symbol: str | None = None
    ) -> list[DecisionEvent]:
        """Return this mode's events in write order within [since_ms, until_ms)."""
        return read_events(self._conn, mode=self._mode, since_ms=since_ms, until_ms=until_ms, symbol=symbol)

    def for_trade(self, trade_id: int) -> list[DecisionEvent]:
        """Return the events that produced ledger row `trade_id` (normally exactly one)."""
        cursor = self._conn.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM decision_events WHERE mode=? AND trade_id=? ORDER BY seq",
            (self._mode.value, trade_id),
        )
        return [_event(values) for values in cursor.fetchall()]
