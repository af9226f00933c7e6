"""Crash audit: compare a live OMS ledger with what the venue really recorded, after kill -9s.

Used by the crash soak (`bench.soak_crash`, the real daemon killed -9 many times), the live crash
e2e and the broker-level crash test. Every check here can fail, which "one venue order per cloid"
could not (the venue refuses a reused cloid, so a second send of one intent can never show up as
two orders with one cloid). What a crash could really do wrong is decide the same thing twice
under two cloids, or lose track of what it sent, so the checks are:

* one intent per decision (symbol, decision candle `event_ms`, action), for every action. The only
  second intent allowed is a retry: every earlier attempt had settled before the retry was
  committed (a terminal state, recorded earlier) and filled nothing - an IOC exit the book could
  not match must be retried within its candle, not starved for one. A CLOSE (sized from the venue
  position read afresh) may also follow a partly filled CLOSE, or a filled one when an entry of the
  symbol was committed in between. OPEN allows no second intent at all (the ledger's dedupe key).
  A retry while an attempt is in flight, a second ADD after a fill, a CLOSE of a position already
  closed: double actions a restart or a stale position could cause, and violations;
* at most one order the venue *accepted* per decision (the venue's own order list, matched to
  intents by cloid; rejected orders are counted, not forbidden). An allowed CLOSE after a CLOSE
  that filled something acts on another position (the remainder, or the one entered since):
  it starts a new decision here, else the rule above allows what this one forbids;
* no venue order without an intent (a cloid the ledger never committed);
* the ledger's state agrees with the venue: nothing it calls unsent (NOT_SENT, DENIED, ABANDONED)
  is known to the venue, nothing it calls acknowledged (ACCEPTED, PARTIAL, FILLED, CANCELLED) is
  unknown to it, an order the venue filled is FILLED under the venue's oid, nothing in flight;
* every venue fill in the ledger exactly once, and ledger positions equal the venue's.

Intents the venue never saw are not violations by themselves (risk denials, budget skips): they
are reported by ledger state as `never_reached_venue`. Trigger orders (venue-side protection) are
counted apart and left out of the per-decision checks.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from engine.execution.protection import PROTECT_ACTION
from engine.oms.ledger import LiveOms, OmsConfig
from engine.oms.records import IntentRecord, LedgerFill, OrderRow
from engine.oms.states import OrderState
from strategies.enums import TradeAction

UNSENT = frozenset({OrderState.NOT_SENT, OrderState.DENIED, OrderState.ABANDONED, OrderState.WOULD_SEND})
ACKNOWLEDGED = frozenset({
    OrderState.ACCEPTED, OrderState.PARTIAL, OrderState.FILLED, OrderState.CANCELLED,
    OrderState.PENDING_CANCEL,
})  # fmt: skip
IN_FLIGHT = frozenset({OrderState.NEW, OrderState.UNKNOWN})
TERMINAL = frozenset({
    OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED, OrderState.NOT_SENT, OrderState.DENIED,
    OrderState.ABANDONED, OrderState.WOULD_SEND,
})  # fmt: skip
POSITION_EPS = 1e-9


class VenueView(Protocol):
    """What the audit reads from the venue: the simulator's admin order list and its /info."""

    def orders(self, user: str | None = None) -> list[dict[str, Any]]: ...

    def info(self, body: dict[str, Any], timeout: float = ...) -> Any: ...


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """One order as the venue recorded it (the admin listing), reduced to what the audit needs."""

    oid: int
    cloid: str | None
    coin: str
    status: str
    is_trigger: bool

    @property
    def accepted(self) -> bool:
        """The venue took the order (it may have filled, rested or been cancelled since)."""
        return not self.status.lower().endswith("rejected")

    @classmethod
    def from_admin(cls, row: dict[str, Any]) -> VenueOrder:
        cloid = row.get("cloid")
        return cls(
            oid=int(row["oid"]), cloid=None if cloid is None else str(cloid).lower(), coin=str(row["coin"]),
            status=str(row["status"]), is_trigger=bool(row.get("isTrigger")),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class VenueFill:
    hash: str
    tid: int
    oid: int
    cloid: str | None


@dataclass
class CrashAudit:
    """The result; `violations` lists every broken rule (empty = clean)."""

    intents: int = 0
    decisions: int = 0
    venue_orders: int = 0
    venue_accepted: int = 0
    venue_rejected: int = 0
    trigger_orders: int = 0
    venue_fills: int = 0
    ledger_fills: int = 0
    accepted_per_decision: dict[str, int] = field(default_factory=dict)  # histogram: "0", "1", "2+"
    never_reached_venue: dict[str, int] = field(default_factory=dict)  # ledger state -> intents
    decision_retries: list[str] = field(default_factory=list)  # allowed: see the module docstring
    duplicate_intent_decisions: list[str] = field(default_factory=list)
    multi_accepted_decisions: list[str] = field(default_factory=list)
    untracked_venue_orders: list[int] = field(default_factory=list)
    unsent_but_venue_knows: list[str] = field(default_factory=list)
    acknowledged_but_venue_unknown: list[str] = field(default_factory=list)
    filled_state_mismatch: list[str] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)
    fills_missing: int = 0
    fills_extra: int = 0
    positions_venue: dict[str, float] = field(default_factory=dict)
    positions_ledger: dict[str, float] = field(default_factory=dict)

    @property
    def violations(self) -> list[str]:
        checks = {
            "duplicate_intent_decisions": self.duplicate_intent_decisions,
            "multi_accepted_decisions": self.multi_accepted_decisions,
            "untracked_venue_orders": self.untracked_venue_orders,
            "unsent_but_venue_knows": self.unsent_but_venue_knows,
            "acknowledged_but_venue_unknown": self.acknowledged_but_venue_unknown,
            "filled_state_mismatch": self.filled_state_mismatch,
            "in_flight": self.in_flight,
        }
        found = [f"{name}={values[:5]}" for name, values in checks.items() if values]
        if self.fills_missing or self.fills_extra:
            found.append(f"fills missing={self.fills_missing} extra={self.fills_extra}")
        if not positions_equal(self.positions_venue, self.positions_ledger):
            found.append(f"positions venue={self.positions_venue} ledger={self.positions_ledger}")
        return found

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, plus `violations` and `ok`."""
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return out | {"violations": self.violations, "ok": self.ok}


def positions_equal(a: dict[str, float], b: dict[str, float]) -> bool:
    coins = {c for c, s in [*a.items(), *b.items()] if abs(s) > POSITION_EPS}
    return all(abs(a.get(c, 0.0) - b.get(c, 0.0)) <= POSITION_EPS for c in coins)


def decision_key(intent: IntentRecord) -> str:
    """The decision an intent acts on: symbol, decision candle (event_ms), action."""
    return f"{intent.symbol}:{intent.event_ms}:{intent.action}"


def audit(
    *,
    intents: list[IntentRecord],
    orders: list[OrderRow],
    ledger_fills: list[LedgerFill],
    ledger_positions: dict[str, float],
    venue_orders: list[VenueOrder],
    venue_fills: list[VenueFill],
    venue_positions: dict[str, float],
    settled_ms: dict[str, int],
) -> CrashAudit:
    """Apply every check of the module docstring to one ledger and one venue account (pure).
    `settled_ms`: intent id -> when its order first reached a terminal state (ledger time)."""
    plain = [o for o in venue_orders if not o.is_trigger]
    # Protective stops (engine.execution.protection) are not decisions: they are placed, moved and
    # re-placed with the position, so they join only the checks of what the venue knows.
    decided = [i for i in intents if i.action != PROTECT_ACTION]
    result = CrashAudit(
        intents=len(intents), venue_orders=len(plain), trigger_orders=len(venue_orders) - len(plain),
        venue_accepted=sum(o.accepted for o in plain), venue_rejected=sum(not o.accepted for o in plain),
        venue_fills=len(venue_fills), ledger_fills=len(ledger_fills),
        positions_venue={c: s for c, s in venue_positions.items() if abs(s) > POSITION_EPS},
        positions_ledger={c: s for c, s in ledger_positions.items() if abs(s) > POSITION_EPS},
    )  # fmt: skip
    episodes = _check_decisions(result, decided, orders, settled_ms)
    _check_orders_per_decision(result, decided, plain, episodes)
    _check_states(result, intents, orders, venue_orders)
    _check_fills(result, ledger_fills, venue_fills)
    return result


def _check_decisions(
    result: CrashAudit, intents: list[IntentRecord], orders: list[OrderRow], settled_ms: dict[str, int]
) -> dict[str, str]:
    """Sort the decisions into allowed retries and duplicates; return intent id -> the decision
    it counts under for the accepted-orders check (see `_episodes`)."""
    rows = {o.intent_id: o for o in orders}
    episodes: dict[str, str] = {}
    ordered = sorted(intents, key=lambda i: (i.created_ms, i.intent_id))
    entries = [i for i in ordered if i.action in (TradeAction.OPEN, TradeAction.ADD)]
    groups: dict[str, list[IntentRecord]] = {}
    for intent in ordered:
        groups.setdefault(decision_key(intent), []).append(intent)
    result.decisions = len(groups)
    for key, attempts in sorted(groups.items()):
        if len(attempts) == 1:
            continue
        retry_ok = attempts[0].action != TradeAction.OPEN and all(
            _retry_allowed(earlier, later, rows.get(earlier.intent_id), settled_ms, entries)
            for n, later in enumerate(attempts)
            for earlier in attempts[:n]
        )
        (result.decision_retries if retry_ok else result.duplicate_intent_decisions).append(key)
        if retry_ok:
            episodes.update(_episodes(key, attempts, rows))
    return episodes


def _episodes(key: str, attempts: list[IntentRecord], rows: dict[str, OrderRow]) -> dict[str, str]:
    """Allowed retries of one decision, split where an attempt follows one that filled something
    (only a CLOSE may: a remainder, or a position entered since): `key`, `key#2`, ..."""
    out: dict[str, str] = {}
    episode, filled = 1, False
    for attempt in attempts:
        if filled:
            episode, filled = episode + 1, False
        out[attempt.intent_id] = key if episode == 1 else f"{key}#{episode}"
        row = rows.get(attempt.intent_id)
        filled = filled or (row is not None and row.filled_sz > 0.0)
    return out


def _retry_allowed(
    earlier: IntentRecord,
    later: IntentRecord,
    row: OrderRow | None,
    settled_ms: dict[str, int],
    entries: list[IntentRecord],
) -> bool:
    """`later` may act on the decision `earlier` acted on: see the module docstring."""
    done = settled_ms.get(earlier.intent_id)
    if row is None or done is None or done > later.created_ms:
        return False  # the earlier attempt was still in flight (or unknown) when the retry was committed
    if row.filled_sz <= 0.0:
        return True
    if earlier.action != TradeAction.CLOSE:
        return False
    reopened = any(
        e.symbol == earlier.symbol and earlier.created_ms <= e.created_ms <= later.created_ms for e in entries
    )
    return row.state is not OrderState.FILLED or reopened


def _check_orders_per_decision(
    result: CrashAudit, intents: list[IntentRecord], plain: list[VenueOrder], episodes: dict[str, str]
) -> None:
    key_of = {i.cloid.lower(): episodes.get(i.intent_id, decision_key(i)) for i in intents}
    accepted: Counter[str] = Counter({key: 0 for key in key_of.values()})
    for order in plain:
        key = key_of.get(order.cloid or "")
        if key is None:
            result.untracked_venue_orders.append(order.oid)
        elif order.accepted:
            accepted[key] += 1
    result.multi_accepted_decisions = sorted(k for k, n in accepted.items() if n > 1)
    histogram = Counter("2+" if n > 1 else str(n) for n in accepted.values())
    result.accepted_per_decision = dict(sorted(histogram.items()))


def _check_states(
    result: CrashAudit, intents: list[IntentRecord], orders: list[OrderRow], venue_orders: list[VenueOrder]
) -> None:
    venue_by_cloid = {o.cloid: o for o in venue_orders if o.cloid is not None}
    state_of = {o.intent_id: o for o in orders}
    never: Counter[str] = Counter()
    for intent in intents:
        row = state_of.get(intent.intent_id)
        state = OrderState.NEW if row is None else row.state
        label = f"{decision_key(intent)}:{state}"
        venue = venue_by_cloid.get(intent.cloid.lower())
        if state in IN_FLIGHT:
            result.in_flight.append(label)
        if venue is None:
            never[str(state)] += 1
            if state in ACKNOWLEDGED:
                result.acknowledged_but_venue_unknown.append(label)
            continue
        if state in UNSENT:
            result.unsent_but_venue_knows.append(label)
        if venue.status == "filled" and (state, row and row.oid) != (OrderState.FILLED, venue.oid):
            result.filled_state_mismatch.append(f"{label}:venue_oid={venue.oid}")
    result.never_reached_venue = dict(sorted(never.items()))


def _check_fills(result: CrashAudit, ledger_fills: list[LedgerFill], venue_fills: list[VenueFill]) -> None:
    venue_keys = Counter((f.hash, f.tid) for f in venue_fills)
    ledger_keys = Counter((f.hash, f.tid) for f in ledger_fills)
    result.fills_missing = sum((venue_keys - ledger_keys).values())
    result.fills_extra = sum((ledger_keys - venue_keys).values())


def read_venue(venue: VenueView, user: str) -> tuple[list[VenueOrder], list[VenueFill], dict[str, float]]:
    """The venue's order list (admin), fills and positions for `user`."""
    orders = [VenueOrder.from_admin(row) for row in venue.orders(user)]
    raw_fills = venue.info({"type": "userFills", "user": user}).json()
    fills = [
        VenueFill(hash=str(f["hash"]), tid=int(f["tid"]), oid=int(f["oid"]), cloid=f.get("cloid"))
        for f in raw_fills
    ]
    state = venue.info({"type": "clearinghouseState", "user": user}).json()
    positions = {p["position"]["coin"]: float(p["position"]["szi"]) for p in state["assetPositions"]}
    return orders, fills, positions


def settled_times(db: Path) -> dict[str, int]:
    """Intent id -> the ledger time its order first reached a terminal state (from order_events)."""
    states = ", ".join(f"'{s.value}'" for s in TERMINAL)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        sql = f"SELECT intent_id, MIN(recorded_ms) FROM order_events WHERE to_state IN ({states}) GROUP BY 1"
        rows = conn.execute(sql).fetchall()
    finally:
        conn.close()
    return {str(intent_id): int(ms) for intent_id, ms in rows}


def audit_ledger(db: Path, venue: VenueView, user: str) -> CrashAudit:
    """Open the ledger read-mostly (no fsync needed), read the venue, and audit."""
    orders, fills, positions = read_venue(venue, user)
    settled = settled_times(db)
    oms = LiveOms(db, mode="live", config=OmsConfig(synchronous_full=False))
    try:
        return audit(
            intents=oms.intents(), orders=oms.orders(), ledger_fills=oms.fills(),
            ledger_positions=oms.ledger_positions(), venue_orders=orders, venue_fills=fills,
            venue_positions=positions, settled_ms=settled,
        )  # fmt: skip
    finally:
        oms.close()
