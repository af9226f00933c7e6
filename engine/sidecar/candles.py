"""Which candles are closed, and which ranges must be fetched from REST: the sidecar's pure core.

Per symbol the tracker keeps the open time of the last *published* closed candle, the forming
candle, and whether a REST sync is in flight. Rules:

- A WS candle message carries the whole bar so far; a message with a newer open time closes the
  forming candle. A forming candle also closes when the venue clock passes its close + grace.
- A closed candle is published only if it follows the last published one (t = last + interval),
  or if everything before it was covered by a REST sync (`confirmed_through`). Otherwise it is a
  gap: the candle waits in a buffer while a REST sync fetches [last + interval, its open time).
- The first message for a symbol after start or after a reconnect starts a forming candle; if
  bars are missing between the last published candle and it, a sync fills them (this is the
  start-up backfill and the post-reconnect gap fill). With nothing published yet, the sync
  fetches the lookback.
- After a reconnect the forming candle is forgotten (the next message carries the whole bar).
- A message for a bar already published (its final update came after the clock closed it) is a
  correction when it is a later state of that bar (`_late_update`).
- A bar the clock closed is *unconfirmed*: its final update may still be on its way. A later WS
  message of the symbol for a newer bar confirms it (one connection delivers in order, so the
  bar's last update came first). When the session ends first (a drop, a re-plan, a move to
  REST polling), `on_disconnect` forgets the forming bars (no final update will come for them:
  the clock must not close them as they stand) and turns the unconfirmed bars into *suspect*
  ones with a repair request: the sidecar re-reads them from REST ahead of any other fill, and
  `on_repair_result` corrects the ones that differ. A closed bar in the cache therefore ends
  equal to the venue's final bar even when the socket died before its last update arrived.

No I/O: callers pass the venue time in (`VenueClock`, with an injected wall clock, estimates it).
Output is plain data the sidecar writes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from strategies.candle import Candle

TAIL_BARS = 4


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """Fetch closed candles of `symbol` with start_t <= t < end_t from REST."""

    symbol: str
    start_t: int
    end_t: int


@dataclass(slots=True)
class TrackerOutput:
    """What one call produced: candles to publish (ascending per symbol), corrections, syncs."""

    publish: dict[str, list[Candle]] = field(default_factory=dict)
    corrections: dict[str, list[Candle]] = field(default_factory=dict)
    forming: dict[str, Candle] = field(default_factory=dict)
    syncs: list[SyncRequest] = field(default_factory=list)
    repairs: list[SyncRequest] = field(default_factory=list)

    def merge(self, other: TrackerOutput) -> None:
        for sym, candles in other.publish.items():
            self.publish.setdefault(sym, []).extend(candles)
        for sym, candles in other.corrections.items():
            self.corrections.setdefault(sym, []).extend(candles)
        self.forming.update(other.forming)
        self.syncs.extend(other.syncs)
        self.repairs.extend(other.repairs)


@dataclass(slots=True)
class _SymbolState:
    last_closed_t: int | None = None
    forming: Candle | None = None
    syncing: bool = False
    confirmed_through: int = -1
    buffer: list[Candle] = field(default_factory=list)
    tail: deque[Candle] = field(default_factory=lambda: deque(maxlen=TAIL_BARS))
    unconfirmed: dict[int, Candle] = field(default_factory=dict)  # clock-closed, session still up
    suspect: dict[int, Candle | None] = field(default_factory=dict)  # to re-read from REST (None: unknown)


class CandleTracker:
    """Close detection and gap bookkeeping for one interval (see module docstring)."""

    def __init__(
        self, interval_ms: int, *, grace_ms: int, lookback_bars: int, max_fill_bars: int = 10_000
    ) -> None:
        self.interval_ms = interval_ms
        self.grace_ms = grace_ms
        self.lookback_bars = lookback_bars
        self.max_fill_bars = max(max_fill_bars, lookback_bars)
        self._states: dict[str, _SymbolState] = {}

    # ------------------------------------------------------------------ inspection
    def symbols(self) -> list[str]:
        return list(self._states)

    def last_closed_t(self, symbol: str) -> int | None:
        state = self._states.get(symbol)
        return None if state is None else state.last_closed_t

    def forming(self, symbol: str) -> Candle | None:
        state = self._states.get(symbol)
        return None if state is None else state.forming

    def is_syncing(self, symbol: str) -> bool:
        state = self._states.get(symbol)
        return state is not None and state.syncing

    def needs_repair(self, symbol: str) -> bool:
        """A closed bar of `symbol` may lack its final update and waits for its REST repair."""
        state = self._states.get(symbol)
        return state is not None and bool(state.suspect)

    def unconfirmed(self, symbol: str) -> list[int]:
        """Open times of clock-closed bars no later message has confirmed yet (oldest first)."""
        state = self._states.get(symbol)
        return [] if state is None else sorted(state.unconfirmed)

    def published_tail(self, symbol: str) -> list[Candle]:
        """The last few published candles (for the REST cross-check)."""
        state = self._states.get(symbol)
        return [] if state is None else list(state.tail)

    # ------------------------------------------------------------------ inputs
    def seed(self, symbol: str, last_closed_t: int | None) -> None:
        """Register a symbol with the open time of its last candle already in the cache.

        Whoever wrote those last bars (this sidecar before a restart, or a fleet member that died)
        may have closed them by the clock without their final update: they are suspect, and the
        symbol's first REST fill reaches back over them (with no gap to fill, a fill of just them).
        """
        state = self._states[symbol] = _SymbolState(last_closed_t=last_closed_t)
        if last_closed_t is not None:
            for k in range(TAIL_BARS):
                state.suspect[last_closed_t - k * self.interval_ms] = None

    def _state(self, symbol: str) -> _SymbolState:
        state = self._states.get(symbol)
        if state is None:
            state = self._states[symbol] = _SymbolState()
        return state

    def on_reconnect(self, symbols: Iterable[str] | None = None) -> None:
        """Forget forming candles (of `symbols`, default all: the ones on the connection that
        restarted): the next message per symbol restarts them (and fills gaps)."""
        states = self._states.values() if symbols is None else (
            self._states[s] for s in symbols if s in self._states
        )
        for state in states:
            state.forming = None

    def on_disconnect(self, symbols: Iterable[str]) -> TrackerOutput:
        """The session that carried `symbols` ended: forget their forming bars (their final update
        will not come on it) and request a REST repair of each clock-closed bar no later message
        confirmed (its final update may have been lost with the socket)."""
        out = TrackerOutput()
        for symbol in symbols:
            state = self._states.get(symbol)
            if state is None:
                continue
            state.forming = None
            if state.unconfirmed:
                state.suspect.update(state.unconfirmed)
                state.unconfirmed.clear()
            if any(c is not None for c in state.suspect.values()):  # (seeded ones ride on the first fill)
                out.repairs.append(self._repair_request(symbol, state))
        return out

    def _repair_request(self, symbol: str, state: _SymbolState) -> SyncRequest:
        return SyncRequest(symbol, min(state.suspect), max(state.suspect) + self.interval_ms)

    def forget(self, symbol: str) -> None:
        """Stop tracking `symbol` (another sidecar carries it now)."""
        self._states.pop(symbol, None)

    def on_candle(self, symbol: str, candle: Candle) -> TrackerOutput:
        """Handle one WS candle message (the bar so far)."""
        out = TrackerOutput()
        state = self._state(symbol)
        if state.unconfirmed:  # a message of a newer bar: the older bars' last updates came before it
            for t in [t for t in state.unconfirmed if t < candle.t]:
                del state.unconfirmed[t]
        if state.last_closed_t is not None and candle.t <= state.last_closed_t:
            return self._late_update(symbol, state, candle, out)
        forming = state.forming
        if forming is not None and candle.t < forming.t:
            return out  # out of order
        if forming is not None and candle.t == forming.t and (candle.n < forming.n or candle.v < forming.v):
            return out  # an older state of the bar (a second stream of it, while connections re-plan)
        if forming is not None and candle.t > forming.t:
            state.forming = None
            self._close(symbol, state, forming, out)
        if state.forming is None:
            self._start_forming(symbol, state, candle, out)
        state.forming = candle
        out.forming[symbol] = candle
        return out

    def due_closes(
        self, venue_now_ms: int, streaming: Collection[str] = (),
        held: Callable[[str, Candle], bool] | None = None,
    ) -> TrackerOutput:  # fmt: skip
        """Close every forming candle whose close time + grace is behind the venue clock, except
        those of `streaming` symbols (updated a moment ago: their next message closes them with
        the bar's final state, which may still be on its way behind other markets' frames) and
        those `held` says to wait for (their socket has not yet shown the venue past the close)."""
        out = TrackerOutput()
        for symbol, state in self._states.items():
            forming = state.forming
            if forming is not None and venue_now_ms >= forming.close_ms + self.grace_ms \
                    and symbol not in streaming and not (held is not None and held(symbol, forming)):
                state.forming = None
                if state.last_closed_t is None or forming.t > state.last_closed_t:
                    state.unconfirmed[forming.t] = forming
                self._close(symbol, state, forming, out)
        return out

    def lagging_syncs(self, venue_now_ms: int) -> TrackerOutput:
        """Request syncs for symbols whose next bar closed with no WS message to close it.

        A symbol with no trades gets no candle messages; this is how its closed bars (or the
        venue's confirmation that there are none) still arrive. Call it every few seconds.
        """
        out = TrackerOutput()
        end = ((venue_now_ms - self.grace_ms) // self.interval_ms) * self.interval_ms
        for symbol, state in self._states.items():
            if state.syncing or state.last_closed_t is None:
                continue
            start = state.last_closed_t + self.interval_ms
            if state.forming is not None and state.forming.t <= start:
                continue  # due_closes will close it
            if end > start and end > state.confirmed_through:
                self._request_sync(symbol, state, start, end, out)
        return out

    def on_sync_result(self, request: SyncRequest, candles: Iterable[Candle]) -> TrackerOutput:
        """Apply REST candles (closed, start_t <= t < end_t); then release buffered closes."""
        out = TrackerOutput()
        state = self._state(request.symbol)
        state.confirmed_through = max(state.confirmed_through, request.end_t)
        for t in [t for t in state.suspect if request.start_t <= t < request.end_t]:
            del state.suspect[t]  # re-read by this fill: corrected below when it was published
        for candle in sorted(candles, key=lambda c: c.t):
            if not request.start_t <= candle.t < request.end_t:
                continue
            state.unconfirmed.pop(candle.t, None)  # REST has the venue's final bar: settled
            if state.last_closed_t is not None and candle.t <= state.last_closed_t:
                out.corrections.setdefault(request.symbol, []).append(candle)
            else:
                self._publish(request.symbol, state, candle, out)
        state.syncing = False
        buffered, state.buffer = state.buffer, []
        for candle in buffered:
            self._close(request.symbol, state, candle, out)
        return out

    def on_sync_failed(self, request: SyncRequest) -> None:
        """A sync gave up (the caller retries it later); buffered candles stay buffered."""
        self._state(request.symbol).syncing = True

    def on_repair_result(self, request: SyncRequest, candles: Iterable[Candle]) -> TrackerOutput:
        """Apply the REST bars of a repair: the suspect bars of its range are settled; a published
        one that differs from the venue's is a correction, a buffered one is replaced. (A bar the
        venue does not return has nothing to be compared with: it is settled too.) Bars that
        became suspect after the request left stay suspect (`repair_request` asks for them)."""
        out = TrackerOutput()
        state = self._states.get(request.symbol)
        if state is None:
            return out
        asked = [t for t in state.suspect if request.start_t <= t < request.end_t]
        known = {t: state.suspect.pop(t) for t in asked}  # settled: the venue answered for the range
        for candle in candles:
            if candle.t not in known:
                continue
            was = known[candle.t]
            if state.last_closed_t is not None and candle.t <= state.last_closed_t:
                if candle != was:  # (None: the cached value is unknown here; writing it again is harmless)
                    self._replace_tail(state, candle)
                    out.corrections.setdefault(request.symbol, []).append(candle)
            else:
                state.buffer = [candle if b.t == candle.t else b for b in state.buffer]
        return out

    def repair_request(self, symbol: str) -> SyncRequest | None:
        """The repair still owed for `symbol` (after a failed or partial one), or None."""
        state = self._states.get(symbol)
        return self._repair_request(symbol, state) if state is not None and state.suspect else None

    @staticmethod
    def _replace_tail(state: _SymbolState, candle: Candle) -> None:
        for index, published in enumerate(state.tail):
            if published.t == candle.t:
                state.tail[index] = candle

    def cross_check(self, symbol: str, rest_candles: Iterable[Candle], venue_now_ms: int) -> list[Candle]:
        """Compare REST candles with the published tail; return the REST versions that differ.

        Only bars the venue has certainly closed (close + grace behind the venue clock) count.
        The tail is updated to the REST values, so a correction is reported once.
        """
        state = self._states.get(symbol)
        if state is None or not state.tail:
            return []
        published = {c.t: i for i, c in enumerate(state.tail)}
        corrections: list[Candle] = []
        for candle in rest_candles:
            index = published.get(candle.t)
            if index is None or venue_now_ms < candle.close_ms + self.grace_ms:
                continue
            state.unconfirmed.pop(candle.t, None)  # the venue's final bar: nothing left to repair
            state.suspect.pop(candle.t, None)
            if state.tail[index] != candle:
                state.tail[index] = candle
                corrections.append(candle)
        return corrections

    # ------------------------------------------------------------------ rules
    @staticmethod
    def _late_update(symbol: str, state: _SymbolState, candle: Candle, out: TrackerOutput) -> TrackerOutput:
        """An update of a bar already closed: a correction if it is a later state of a published bar.

        The clock closes a bar whose final update has not arrived yet (a loaded host, a small
        grace); that update then carries the venue's final bar. Correcting at once (not at the
        next REST cross-check) keeps the window in which shards decide on the stale bar short.
        Volume and trade count only grow within a bar, so an older state is never taken.
        """
        for index, published in enumerate(state.tail):
            if published.t == candle.t:
                if candle != published and candle.v >= published.v and candle.n >= published.n:
                    state.tail[index] = candle
                    out.corrections.setdefault(symbol, []).append(candle)
                    for pending in (state.unconfirmed, state.suspect):
                        if candle.t in pending:
                            pending[candle.t] = candle
                break
        return out

    def _start_forming(self, symbol: str, state: _SymbolState, candle: Candle, out: TrackerOutput) -> None:
        if state.syncing:
            return
        if state.suspect and state.last_closed_t is not None \
                and candle.t <= state.last_closed_t + self.interval_ms:  # no gap: a fill of just those
            self._request_sync(symbol, state, candle.t, candle.t, out)  # (widened over the suspect bars)
            return
        if state.last_closed_t is None:
            start = candle.t - self.lookback_bars * self.interval_ms
        else:  # fill the whole gap, but never more than the cache keeps
            start = max(
                state.last_closed_t + self.interval_ms, candle.t - self.max_fill_bars * self.interval_ms
            )
        if start < candle.t and candle.t > state.confirmed_through:
            self._request_sync(symbol, state, start, candle.t, out)

    def _close(self, symbol: str, state: _SymbolState, candle: Candle, out: TrackerOutput) -> None:
        last = state.last_closed_t
        if last is not None and candle.t <= last:
            return
        if state.syncing:
            self._buffer(state, candle)
            return
        if last is None or candle.t == last + self.interval_ms or candle.t <= state.confirmed_through:
            self._publish(symbol, state, candle, out)
            return
        self._buffer(state, candle)
        self._request_sync(symbol, state, last + self.interval_ms, candle.t, out)

    @staticmethod
    def _buffer(state: _SymbolState, candle: Candle) -> None:
        """Hold a closed bar behind a fill; a later state of a bar already held replaces it (the
        clock closed the bar, then its final update came while the fill was still out)."""
        for index, held in enumerate(state.buffer):
            if held.t == candle.t:
                if candle.v >= held.v and candle.n >= held.n:
                    state.buffer[index] = candle
                return
        state.buffer.append(candle)

    def _publish(self, symbol: str, state: _SymbolState, candle: Candle, out: TrackerOutput) -> None:
        out.publish.setdefault(symbol, []).append(candle)
        state.last_closed_t = candle.t
        state.tail.append(candle)

    @staticmethod
    def _request_sync(symbol: str, state: _SymbolState, start: int, end: int, out: TrackerOutput) -> None:
        if state.suspect:  # the same request re-reads the suspect bars (they come back as corrections)
            start = min(start, min(state.suspect))
        state.syncing = True
        out.syncs.append(SyncRequest(symbol, start, end))


class VenueClock:
    """The venue's time: the latest venue event time seen, advanced at wall speed since then.

    A candle message only carries its bar's open time, so right after start-up the newest event
    can be up to a bar old. When the venue turns out to run on wall time (an event within
    `live_tolerance_ms` of the wall clock: the real venue, or a simulator started "now"), the
    clock never reads earlier than the wall clock, so ages are never understated; a replay far
    from wall time keeps its own clock.
    """

    def __init__(self, clock_ms: Callable[[], int], *, live_tolerance_ms: int | None = None) -> None:
        self._clock_ms = clock_ms
        self._tolerance = live_tolerance_ms
        self._venue_ms: int | None = None
        self._wall_at = 0
        self.live = False

    def observe(self, venue_ms: int) -> None:
        wall = self._clock_ms()
        if self._tolerance is not None and not self.live and abs(wall - venue_ms) <= self._tolerance:
            self.live = True
        if self._venue_ms is None or venue_ms > self.now_or(venue_ms):
            self._venue_ms, self._wall_at = venue_ms, wall

    def now_or(self, default: int) -> int:
        if self._venue_ms is None:
            return default
        wall = self._clock_ms()
        estimate = self._venue_ms + max(0, wall - self._wall_at)
        return max(estimate, wall) if self.live else estimate

    def now(self) -> int | None:
        """None until the venue has said what time it is (a replaying venue is not on wall time)."""
        return None if self._venue_ms is None else self.now_or(0)
