"""The OMS reconciler: makes the ledger agree with the venue, at start-up, after every WS reconnect
and periodically. Trading waits for a clean start-up run.

One `run()` does, in order:

1. Settle in-flight orders (NEW left by a crash, UNKNOWN after an ambiguous send) and orders the
   ledger thinks are live by looking each up by cloid (`orderStatus`). "Not found" counts as
   never-sent only past the ledger's grace period.
2. Fetch fills since the cursor (`userFillsByTime`, from cursor - overlap; paged when the venue
   caps the answer), ingest them (idempotent), re-link orphans, and only then advance the cursor
   to the newest fill time seen (the venue's clock, never ours).
3. Open orders vs intents, from `frontendOpenOrders` (it lists trigger orders too): cancel our
   own orders older than the stale TTL (by oid, at most `max_cancels_per_run`, never cancel-all);
   foreign orders are only recorded. Our protective trigger orders (engine/execution/protection.py,
   intent reason a `ProtectionKind`) are meant to rest: never stale-cancelled (only our own cancel
   of one that did not land is retried, like any other); one the ledger still has in flight or
   gave up on (NEW, UNKNOWN, ABANDONED) is matched to its intent and becomes ACCEPTED under its
   oid. Protection that is missing or no longer needed is the protection keeper's business,
   right after a reconcile; a stop the venue fired while the
   daemon was down comes back as a fill in step 2 (linked by cloid), so ledger == venue.
4. Positions: `clearinghouseState` vs the net of the ledger's fills. A position the ledger does not
   explain is a MISMATCH: `on_mismatch` is called (the owner puts risk into REDUCING and alerts).
5. Funding (when a `FundingSync` is given): the venue's `userFunding` into the funding ledger
   (`engine.oms.funding`). A failed funding read is reported in `funding_failure` but does not
   make the verdict UNKNOWN: funding moves cash, never a position, and the next run catches up.

Any failed query of steps 1-4 makes the verdict UNKNOWN - never "flat", never clean.
`on_reconnect(session_started_ms)` is the sidecar's user-stream reconnect (the venue does not
replay events across a reconnect): it reconciles unless a run already started after that session
began, and records a RECONNECT event. Also here:
`AccountEventPump`, which moves the sidecar's `userFills`/`orderUpdates` stream entries into the
ledger and acknowledges them only after the ledger committed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from engine.config.env import env_bool, env_float, env_int
from engine.enums import ProtectionKind
from engine.oms.funding import FundingSync, FundingSyncResult
from engine.oms.ledger import FillSource, LiveOms
from engine.oms.states import IN_FLIGHT, LIVE_ON_VENUE, InvalidTransition, OmsEvent, OrderState
from engine.runtime.clock import wall_ms
from engine.venue import types as hl
from engine.venue.exchange_client import ExchangeAccepted, ExchangeAmbiguous, ExchangeOutcome

log = logging.getLogger(__name__)

FILLS_CURSOR = "rest_user_fills"
VENUE_FILLS_CAP = 2000

_PROTECTIVE_REASONS = frozenset(k.value for k in ProtectionKind)
_SETTLE_WHEN_OPEN = frozenset({OrderState.NEW, OrderState.UNKNOWN, OrderState.ABANDONED})

Canceller = Callable[[str, int], ExchangeOutcome]
"""(symbol, oid) -> outcome of a targeted cancel."""


class ReconcileVerdict(StrEnum):
    CLEAN = "clean"
    MISMATCH = "mismatch"  # the venue's positions differ from the ledger's
    UNKNOWN = "unknown"  # a query failed or an order is still in flight: not known to be clean


class ReconcileEventKind(StrEnum):
    POSITION_MISMATCH = "position_mismatch"
    CANCEL_STALE = "cancel_stale"
    CANCEL_STALE_FAILED = "cancel_stale_failed"
    FOREIGN_OPEN_ORDER = "foreign_open_order"
    UNEXPECTED_STATUS = "unexpected_status"
    MALFORMED_ACCOUNT_EVENT = "malformed_account_event"
    RECONNECT = "reconnect"  # the sidecar's user stream reconnected: reconciled for the gap
    FUNDING_CHANGED = "funding_changed"  # the venue re-reported a recorded payment with another amount
    PROTECTIVE_FOUND = "protective_found"  # a protective order the ledger had in flight or gave up rests


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcilerConfig:
    """`user`: main account address. TTLs in ms; `position_tolerance_coins` absorbs float noise."""

    user: str
    period_secs: float = 10.0
    stale_order_ms: int = 30_000
    max_cancels_per_run: int = 5
    cancel_stale: bool = True
    initial_lookback_ms: int = 2 * 3_600_000
    fills_overlap_ms: int = 5 * 60_000
    position_tolerance_coins: float = 1e-9

    @classmethod
    def from_env(cls, user: str, mode: str, env: Mapping[str, str] | None = None) -> ReconcilerConfig:
        """Read the reference's AI_QUANT_OMS_* / AI_QUANT_LIVE_BACKFILL_MS names; dry_live never cancels."""
        return cls(
            user=user,
            period_secs=env_float("AI_QUANT_OMS_RECONCILE_SECS", 10.0, env, lo=1.0, hi=3600.0),
            stale_order_ms=env_int("AI_QUANT_OMS_STALE_ORDER_MS", 30_000, env, lo=2_000, hi=86_400_000),
            max_cancels_per_run=env_int("AI_QUANT_OMS_MAX_CANCELS_PER_RUN", 5, env, lo=1, hi=100),
            cancel_stale=env_bool("AI_QUANT_OMS_CANCEL_STALE", True, env) and mode == "live",
            initial_lookback_ms=env_int(
                "AI_QUANT_LIVE_BACKFILL_MS", 7_200_000, env, lo=60_000, hi=30 * 86_400_000
            ),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileReport:
    verdict: ReconcileVerdict
    settled: int = 0
    in_flight: int = 0
    fills_inserted: int = 0
    cancels: int = 0
    mismatches: dict[str, tuple[float, float]] = field(default_factory=dict)  # coin -> (ledger, venue)
    failures: tuple[str, ...] = ()
    cursor_ms: int | None = None
    funding_inserted: int = 0
    funding_failure: str | None = None
    protective_open: int = 0  # our protective trigger orders resting on the venue

    @property
    def clean(self) -> bool:
        return self.verdict is ReconcileVerdict.CLEAN



class OmsReconciler:
    def __init__(
        self,
        *,
        oms: LiveOms,
        info: Any,
        config: ReconcilerConfig,
        canceller: Canceller | None = None,
        on_mismatch: Callable[[ReconcileReport], None] | None = None,
        clock_ms: Callable[[], int] = wall_ms,
        funding: FundingSync | None = None,
    ) -> None:
        self.oms = oms
        self.info = info
        self.config = config
        self._cancel = canceller if config.cancel_stale else None
        self._on_mismatch = on_mismatch
        self._clock_ms = clock_ms
        self._funding = funding
        self._last_run_ms: int | None = None
        self._last_done_ms: int | None = None  # start time of the last run that completed
        self.last_report: ReconcileReport | None = None

    def maybe_run(self) -> ReconcileReport | None:
        """Run when the period has elapsed since the last run (the periodic hook)."""
        now = self._clock_ms()
        if self._last_run_ms is not None and now - self._last_run_ms < self.config.period_secs * 1000:
            return None
        return self.run()

    def run_until_settled(
        self, timeout_secs: float = 60.0, poll_secs: float = 0.5, sleep: Callable[[float], None] = time.sleep
    ) -> ReconcileReport:
        """Start-up: run until the verdict is CLEAN or MISMATCH (settled), or the timeout passes
        (then the last UNKNOWN report is returned). Trade only when the result is `clean`."""
        deadline = time.monotonic() + timeout_secs
        report = self.run()
        while report.verdict is ReconcileVerdict.UNKNOWN and time.monotonic() < deadline:
            sleep(poll_secs)
            report = self.run()
        return report

    def on_reconnect(self, session_started_ms: int | None = None) -> ReconcileReport | None:
        """The sidecar's user stream (re)connected at `session_started_ms` (wall ms; None = unknown):
        events of the gap are not replayed, so reconcile now, unless a completed run already
        started after the session began (it saw everything the gap could hide). Returns the
        report, or None when no run was needed."""
        done = self._last_done_ms
        if session_started_ms is not None and done is not None and done > session_started_ms:
            return None
        detail = {"session_started_ms": session_started_ms}
        self.oms.record_reconcile_event(ReconcileEventKind.RECONNECT, detail)
        return self.run()

    def run(self) -> ReconcileReport:
        """Reconcile once; see the module docstring. Never raises for a venue failure."""
        started = self._last_run_ms = self._clock_ms()
        failures: list[str] = []
        settled = self._settle_orders(failures)
        inserted, cursor = self._sync_fills(failures)
        funding = self._sync_funding()
        settled += self._settle_orders(failures)  # fills may have moved states; look again
        cancels, protective = self._open_orders(failures)
        mismatches = self._positions(failures)
        self.oms.checkpoint()  # keep the WAL short, off the order path
        in_flight = sum(1 for o in self.oms.unsettled() if o.state in IN_FLIGHT)
        if failures or in_flight:
            verdict = ReconcileVerdict.UNKNOWN
        elif mismatches:
            verdict = ReconcileVerdict.MISMATCH
        else:
            verdict = ReconcileVerdict.CLEAN
        report = ReconcileReport(
            verdict=verdict, settled=settled, in_flight=in_flight, fills_inserted=inserted, cancels=cancels,
            mismatches=mismatches, failures=tuple(failures), cursor_ms=cursor,
            funding_inserted=0 if funding is None else funding.inserted,
            funding_failure=None if funding is None else funding.failure, protective_open=protective,
        )  # fmt: skip
        if mismatches and self._on_mismatch is not None:
            self._on_mismatch(report)
        self.last_report = report
        self._last_done_ms = started
        return report

    # --- steps ------------------------------------------------------------------------------

    def _settle_orders(self, failures: list[str]) -> int:
        settled = 0
        for order in self.oms.orders(IN_FLIGHT | LIVE_ON_VENUE):
            try:
                info = self.info.order_status(self.config.user, order.cloid)
            except hl.VenueError as exc:
                failures.append(f"order_status:{type(exc).__name__}")
                return settled
            before = order.state
            try:
                after = self.oms.apply_order_status(order.intent_id, info)
            except InvalidTransition as exc:  # an unforeseen venue race: record it, keep going
                self.oms.record_reconcile_event(
                    ReconcileEventKind.UNEXPECTED_STATUS, {"state": str(exc.state), "event": str(exc.event)},
                    symbol=order.symbol, intent_id=order.intent_id,
                )  # fmt: skip
                continue
            settled += int(after is not before)
        return settled

    def _sync_fills(self, failures: list[str]) -> tuple[int, int | None]:
        cursor = self.oms.cursor(FILLS_CURSOR)
        start = (self._clock_ms() - self.config.initial_lookback_ms) if cursor is None else cursor
        start = max(0, start - self.config.fills_overlap_ms)
        inserted = 0
        newest: int | None = None
        for _page in range(50):
            try:
                fills = self.info.user_fills_by_time(self.config.user, start)
            except hl.VenueError as exc:
                failures.append(f"user_fills_by_time:{type(exc).__name__}")
                return inserted, cursor  # the cursor stays put: the next run re-reads this window
            stats = self.oms.ingest_fills(fills, source=FillSource.REST)
            inserted += stats.inserted
            if fills:
                newest = max([newest or 0, *(f.time_ms for f in fills)])
            if len(fills) < VENUE_FILLS_CAP or newest is None or newest <= start:
                break
            start = newest  # capped answer: page forward (inclusive; duplicates are ignored)
        self.oms.link_orphans()
        if newest is not None:
            cursor = self.oms.advance_cursor(FILLS_CURSOR, newest)
        return inserted, cursor

    def _sync_funding(self) -> FundingSyncResult | None:
        if self._funding is None:
            return None
        result = self._funding.run()
        for coin, time_ms, recorded, venue in result.changed:
            detail = {"time_ms": time_ms, "recorded": recorded, "venue": venue}
            self.oms.record_reconcile_event(ReconcileEventKind.FUNDING_CHANGED, detail, symbol=coin)
        return result

    def _open_orders(self, failures: list[str]) -> tuple[int, int]:
        """Return (stale cancels sent, protective orders resting)."""
        try:
            open_orders = self.info.frontend_open_orders(self.config.user)
        except hl.VenueError as exc:
            failures.append(f"open_orders:{type(exc).__name__}")
            return 0, 0
        now = self._clock_ms()
        cancels = protective = 0
        for venue_order in open_orders:
            intent = self.oms.intent_by_cloid(venue_order.cloid) if venue_order.cloid else None
            if intent is None:
                detail = {"oid": venue_order.oid, "trigger": venue_order.is_trigger}
                self.oms.record_reconcile_event(
                    ReconcileEventKind.FOREIGN_OPEN_ORDER, detail, symbol=venue_order.coin
                )
                continue
            order = self.oms.order(intent.intent_id)
            cancelling = order is not None and order.state is OrderState.PENDING_CANCEL
            if intent.reason in _PROTECTIVE_REASONS and not cancelling:
                protective += 1
                if order is not None:
                    self._protective_open(intent.intent_id, order.state, venue_order)
                continue  # meant to rest; only a cancel of ours that did not land is retried below
            if order is None or self._cancel is None or cancels >= self.config.max_cancels_per_run:
                continue
            if order.state is OrderState.PENDING_CANCEL:
                due = now - order.updated_ms >= self.config.stale_order_ms  # our cancel did not land: retry
            else:
                due = now - venue_order.timestamp_ms >= self.config.stale_order_ms
            if due:
                cancels += 1
                self._cancel_one(intent.intent_id, order.state, venue_order)
        return cancels, protective

    def _protective_open(self, intent_id: str, state: OrderState, venue_order: Any) -> None:
        """The venue shows our protective order resting: the ledger learns it (in flight or abandoned
        -> ACCEPTED with its oid); a live one is left as it is, never stale-cancelled."""
        if state not in _SETTLE_WHEN_OPEN:
            return
        self.oms.apply(
            intent_id, OmsEvent.VENUE_OPEN, oid=venue_order.oid,
            detail={"source": "frontend_open_orders", "trigger_px": venue_order.trigger_px},
        )  # fmt: skip
        self.oms.record_reconcile_event(
            ReconcileEventKind.PROTECTIVE_FOUND, {"oid": venue_order.oid, "was": str(state)},
            symbol=venue_order.coin, intent_id=intent_id,
        )  # fmt: skip

    def _cancel_one(self, intent_id: str, state: OrderState, venue_order: hl.OpenOrder) -> None:
        assert self._cancel is not None
        if state is not OrderState.PENDING_CANCEL:
            self.oms.apply(intent_id, OmsEvent.CANCEL_REQUESTED, oid=venue_order.oid)
        outcome = self._cancel(venue_order.coin, venue_order.oid)
        ok = isinstance(outcome, ExchangeAccepted) and outcome.ack.all_ok
        if not ok and not isinstance(outcome, ExchangeAmbiguous):  # definitively not cancelled
            self.oms.apply(intent_id, OmsEvent.CANCEL_FAILED)
        kind = ReconcileEventKind.CANCEL_STALE if ok else ReconcileEventKind.CANCEL_STALE_FAILED
        self.oms.record_reconcile_event(
            kind, {"oid": venue_order.oid, "outcome": str(outcome.kind)}, symbol=venue_order.coin,
            intent_id=intent_id,
        )  # fmt: skip

    def _positions(self, failures: list[str]) -> dict[str, tuple[float, float]]:
        try:
            state = self.info.clearinghouse_state(self.config.user)
        except hl.VenueError as exc:
            failures.append(f"clearinghouse_state:{type(exc).__name__}")
            return {}
        venue = {p.coin: p.szi for p in state.positions if p.szi != 0}
        ledger = self.oms.ledger_positions()
        tolerance = self.config.position_tolerance_coins
        mismatches = {
            coin: (ledger.get(coin, 0.0), venue.get(coin, 0.0))
            for coin in sorted(set(venue) | set(ledger))
            if abs(ledger.get(coin, 0.0) - venue.get(coin, 0.0))
            > tolerance + 1e-9 * abs(venue.get(coin, 0.0))
        }
        for coin, (mine, theirs) in mismatches.items():
            self.oms.record_reconcile_event(
                ReconcileEventKind.POSITION_MISMATCH, {"ledger": mine, "venue": theirs}, symbol=coin
            )
        return mismatches


class AccountEventPump:
    """Moves the sidecar's account-events stream (`RedisLayout.account_stream_key`) into the ledger.

    Entries are acknowledged only after the ledger committed them; a crash in between re-reads
    them (the ledger dedupes). A SESSION marker (the sidecar's user stream reconnected) sets
    `session_started_ms` to that session's start (wall ms), for `OmsReconciler.on_reconnect`."""

    def __init__(
        self, *, oms: LiveOms, layout: Any, client: Any, user: str, group: str, consumer: str
    ) -> None:
        self.oms, self.layout, self.client = oms, layout, client
        self.user, self.group, self.consumer = user.lower(), group, consumer
        self.session_started_ms: int | None = None
        self.layout.ensure_account_group(client, self.user, group)

    def drain(self, *, count: int = 500, block_ms: int | None = None) -> int:
        """Ingest one batch of stream entries; return how many fills were newly inserted."""
        entries = self.layout.read_account_events(
            self.client, self.user, self.group, self.consumer, count=count, block_ms=block_ms
        )
        fills: list[hl.Fill] = []
        updates: list[hl.OrderUpdate] = []
        for entry_id, event in entries:
            kind = str(event.kind)
            try:
                if kind == "userFills":
                    data = event.data if isinstance(event.data, dict) else {}
                    fills.extend(hl.parse_user_fills(data.get("fills", []), "ws.userFills"))
                elif kind == "orderUpdates":
                    updates.extend(hl.parse_order_updates(event.data, "ws.orderUpdates"))
                elif kind == "session":
                    self.session_started_ms = max(self.session_started_ms or 0, int(event.wall_ms))
            except hl.ParseError as exc:  # recorded (REST backfill covers its fills), never a stuck stream
                self.oms.record_reconcile_event(
                    ReconcileEventKind.MALFORMED_ACCOUNT_EVENT,
                    {"entry_id": entry_id, "error": str(exc)[:300]},
                )
        stats = self.oms.ingest_fills(fills, source=FillSource.WS)
        if updates:
            self.oms.apply_order_updates(updates)
        self.layout.ack_account_events(self.client, self.user, self.group, [e for e, _ in entries])
        return stats.inserted
