"""The OMS order state machine: states, events and the one `(state, event) -> state` table.

One intent becomes at most one venue order (we never re-send an intent; a new attempt is a new
intent with a new cloid), so the order's state is the intent's state. The table is the spec:
venue races are explicit rows (a fill reported after the cancel, a fill arriving before the HTTP
answer, an order found after we gave it up), and a pair missing from the table raises
`InvalidTransition` naming both sides.

In-flight states are NEW (committed, the send may or may not have happened: a crash between the
commit and the POST leaves this), UNKNOWN (the POST's outcome is ambiguous) and PENDING_CANCEL.
Neither NEW nor UNKNOWN is ever treated as rejected: only a venue answer (an ack, an order
status looked up by cloid, an order update or a fill) settles them. UNKNOWN becomes ABANDONED
only after a cloid lookup confirmed, past a grace period, that the venue never saw the order.
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType


class OrderState(StrEnum):
    NEW = "NEW"  # intent committed; nothing known about the send yet
    UNKNOWN = "UNKNOWN"  # sent, outcome ambiguous (timeout, reset, 5xx, unreadable answer)
    ACCEPTED = "ACCEPTED"  # resting on the book, nothing filled
    PARTIAL = "PARTIAL"  # some size filled, the order may still fill
    PENDING_CANCEL = "PENDING_CANCEL"  # we asked the venue to cancel it
    FILLED = "FILLED"  # done: the venue filled it (an IOC may have filled less than asked)
    CANCELLED = "CANCELLED"  # done: cancelled by the venue or by us (filled size may be > 0)
    REJECTED = "REJECTED"  # done: the venue definitively refused it
    NOT_SENT = "NOT_SENT"  # done: nothing reached the venue (local budget, connect failure)
    DENIED = "DENIED"  # done: refused before sending (risk, gates, kill switch)
    WOULD_SEND = "WOULD_SEND"  # done: dry_live signed it and recorded it, never POSTed
    ABANDONED = "ABANDONED"  # done: the venue confirmed, past the grace period, it never saw it


class OmsEvent(StrEnum):
    ACK_RESTING = "ACK_RESTING"  # /exchange answer: resting
    ACK_FILLED = "ACK_FILLED"  # /exchange answer: filled (whole or IOC remainder cancelled)
    ACK_REJECTED = "ACK_REJECTED"  # /exchange answer: per-item error, status err, 4xx or 429
    ACK_AMBIGUOUS = "ACK_AMBIGUOUS"  # /exchange outcome unknown
    SEND_SKIPPED = "SEND_SKIPPED"  # the transport did not send (budget, connect failed)
    DENY = "DENY"  # risk / gate refusal before signing or sending
    WOULD_SEND = "WOULD_SEND"  # dry_live recorded the signed action
    FILL = "FILL"  # a fill that leaves the order short of its size
    FILL_COMPLETE = "FILL_COMPLETE"  # a fill that brings the filled size to the order size
    VENUE_OPEN = "VENUE_OPEN"  # orderStatus / orderUpdates / openOrders: open
    VENUE_FILLED = "VENUE_FILLED"  # orderStatus / orderUpdates: filled
    VENUE_CANCELED = "VENUE_CANCELED"  # orderStatus / orderUpdates: any *Canceled status
    VENUE_REJECTED = "VENUE_REJECTED"  # orderStatus / orderUpdates: any *Rejected status
    VENUE_NOT_FOUND = "VENUE_NOT_FOUND"  # orderStatus by cloid: unknownOid (may still be in flight)
    NOT_FOUND_CONFIRMED = "NOT_FOUND_CONFIRMED"  # unknownOid past the grace period: never reached it
    CANCEL_REQUESTED = "CANCEL_REQUESTED"  # we sent a cancel for it
    CANCEL_FAILED = "CANCEL_FAILED"  # the venue refused the cancel (order still live)


S, E = OrderState, OmsEvent

_SETTLE_FROM_VENUE = {
    E.VENUE_OPEN: S.ACCEPTED,
    E.VENUE_FILLED: S.FILLED,
    E.VENUE_CANCELED: S.CANCELLED,
    E.VENUE_REJECTED: S.REJECTED,
    E.FILL: S.PARTIAL,
    E.FILL_COMPLETE: S.FILLED,
}

_TABLE: dict[tuple[OrderState, OmsEvent], OrderState] = {
    # --- NEW: committed; the answer to the send decides, or recovery looks it up by cloid
    (S.NEW, E.ACK_RESTING): S.ACCEPTED,
    (S.NEW, E.ACK_FILLED): S.FILLED,
    (S.NEW, E.ACK_REJECTED): S.REJECTED,
    (S.NEW, E.ACK_AMBIGUOUS): S.UNKNOWN,
    (S.NEW, E.SEND_SKIPPED): S.NOT_SENT,
    (S.NEW, E.DENY): S.DENIED,
    (S.NEW, E.WOULD_SEND): S.WOULD_SEND,
    **{(S.NEW, ev): st for ev, st in _SETTLE_FROM_VENUE.items()},  # race: WS news before the answer
    (S.NEW, E.VENUE_NOT_FOUND): S.NEW,  # recovery lookup: maybe never sent, maybe still in flight
    (S.NEW, E.NOT_FOUND_CONFIRMED): S.ABANDONED,  # crash between commit and POST
    # --- UNKNOWN: only venue facts settle it; "not found" alone is not a rejection
    **{(S.UNKNOWN, ev): st for ev, st in _SETTLE_FROM_VENUE.items()},
    (S.UNKNOWN, E.VENUE_NOT_FOUND): S.UNKNOWN,
    (S.UNKNOWN, E.NOT_FOUND_CONFIRMED): S.ABANDONED,
    # --- ACCEPTED
    (S.ACCEPTED, E.VENUE_OPEN): S.ACCEPTED,
    (S.ACCEPTED, E.FILL): S.PARTIAL,
    (S.ACCEPTED, E.FILL_COMPLETE): S.FILLED,
    (S.ACCEPTED, E.VENUE_FILLED): S.FILLED,
    (S.ACCEPTED, E.VENUE_CANCELED): S.CANCELLED,
    (S.ACCEPTED, E.VENUE_REJECTED): S.REJECTED,  # e.g. a trigger that failed on activation
    (S.ACCEPTED, E.CANCEL_REQUESTED): S.PENDING_CANCEL,
    # --- PARTIAL
    (S.PARTIAL, E.VENUE_OPEN): S.PARTIAL,
    (S.PARTIAL, E.FILL): S.PARTIAL,
    (S.PARTIAL, E.FILL_COMPLETE): S.FILLED,
    (S.PARTIAL, E.VENUE_FILLED): S.FILLED,
    (S.PARTIAL, E.VENUE_CANCELED): S.CANCELLED,  # filled size stays > 0
    (S.PARTIAL, E.CANCEL_REQUESTED): S.PENDING_CANCEL,
    # --- PENDING_CANCEL: the venue may still fill it before the cancel lands
    (S.PENDING_CANCEL, E.VENUE_OPEN): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, E.FILL): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, E.FILL_COMPLETE): S.FILLED,
    (S.PENDING_CANCEL, E.VENUE_FILLED): S.FILLED,  # race: filled before the cancel arrived
    (S.PENDING_CANCEL, E.VENUE_CANCELED): S.CANCELLED,
    (S.PENDING_CANCEL, E.CANCEL_FAILED): S.ACCEPTED,
    # --- terminal states: late news that does not change the outcome
    (S.FILLED, E.FILL): S.FILLED,  # the fills of an ack-filled IOC arrive after the ack
    (S.FILLED, E.FILL_COMPLETE): S.FILLED,
    (S.FILLED, E.VENUE_FILLED): S.FILLED,
    (S.FILLED, E.VENUE_NOT_FOUND): S.FILLED,
    (S.CANCELLED, E.FILL): S.CANCELLED,  # race: an IOC's fills reported after its remainder's cancel
    (S.CANCELLED, E.FILL_COMPLETE): S.FILLED,
    (S.CANCELLED, E.VENUE_CANCELED): S.CANCELLED,
    (S.CANCELLED, E.VENUE_FILLED): S.FILLED,  # race: the venue filled it before our cancel
    (S.CANCELLED, E.CANCEL_FAILED): S.CANCELLED,
    (S.REJECTED, E.VENUE_REJECTED): S.REJECTED,
    # --- ABANDONED: we were wrong after all (a venue fact about it turned up): follow the venue
    **{(S.ABANDONED, ev): st for ev, st in _SETTLE_FROM_VENUE.items()},
    (S.ABANDONED, E.VENUE_NOT_FOUND): S.ABANDONED,
}

TRANSITIONS: MappingProxyType[tuple[OrderState, OmsEvent], OrderState] = MappingProxyType(_TABLE)

IN_FLIGHT: frozenset[OrderState] = frozenset({S.NEW, S.UNKNOWN, S.PENDING_CANCEL})
LIVE_ON_VENUE: frozenset[OrderState] = frozenset({S.ACCEPTED, S.PARTIAL, S.PENDING_CANCEL})
UNSETTLED: frozenset[OrderState] = IN_FLIGHT | LIVE_ON_VENUE
TERMINAL: frozenset[OrderState] = frozenset(OrderState) - UNSETTLED


class InvalidTransition(Exception):
    """An event arrived that the table has no row for: a bug or an unforeseen venue race."""

    def __init__(self, state: OrderState, event: OmsEvent) -> None:
        super().__init__(f"no transition for state {state} on event {event}")
        self.state = state
        self.event = event


def next_state(state: OrderState, event: OmsEvent) -> OrderState:
    """Return the state after `event`; raise InvalidTransition when the pair is not in the table."""
    try:
        return TRANSITIONS[(OrderState(state), OmsEvent(event))]
    except KeyError:
        raise InvalidTransition(OrderState(state), OmsEvent(event)) from None


def venue_status_event(status: str) -> OmsEvent:
    """Map a venue order status (orderStatus / orderUpdates) to an OMS event."""
    if status in ("open", "triggered"):
        return E.VENUE_OPEN
    if status == "filled":
        return E.VENUE_FILLED
    if status.endswith("Rejected") or status == "rejected":
        return E.VENUE_REJECTED
    if status.endswith("anceled") or status.endswith("Cancel"):
        return E.VENUE_CANCELED
    raise ValueError(f"unknown venue order status {status!r}")
