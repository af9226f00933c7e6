"""The market-data sidecar (`python -m engine.sidecar`): venue WebSocket + REST → Redis candle cache.

The only writer of market-data keys. One asyncio loop holds the WebSockets (`engine.sidecar.ws_pool`:
the subscriptions split over connections within the IP's budget; candle per carried symbol,
allMids, bbo unless disabled, and in live/dry_live the account's userFills and orderUpdates);
several sidecars on distinct IPs divide the watchlist (`engine.sidecar.fleet`, re-divided when
one dies), and the markets beyond every WebSocket budget are polled over REST.
`engine.sidecar.candles.CandleTracker` decides which candles are
closed and which ranges REST must fill (start-up backfill, gap fill after every reconnect, quiet
symbols); a REST worker pool runs, in this order, the repairs of clock-closed bars whose final
update may have been lost with a socket (ahead of everything: a wrong closed bar is worse than a
late one), those fills, and the best-effort cross-checks of WS-closed candles; a flusher
hands batches to one writer thread (`engine.sidecar.store`: SQLite first, then one Redis MULTI/EXEC).

Failures are routine here: malformed frames are counted and skipped, the WebSocket reconnects
with exponential backoff and full jitter and resubscribes, REST fills retry with backoff, and a
Redis outage only delays Redis (SQLite keeps the candles; Redis is reconciled when it returns).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis

from cluster.redis_layout import AccountEvent, AccountEventKind, Bbo, Heartbeat, RedisLayout
from engine.runtime.clock import wall_ms
from engine.sidecar.candles import CandleTracker, SyncRequest, TrackerOutput, VenueClock
from engine.sidecar.fleet import FleetMember
from engine.sidecar.parse import (
    AccountUpdate,
    BboUpdate,
    CandleUpdate,
    FrameError,
    MidsUpdate,
    VenueError,
    parse_frame,
)
from engine.sidecar.plan import Share
from engine.sidecar.progress import SocketProgress
from engine.sidecar.repairs import Repairs
from engine.sidecar.settings import SidecarSettings, build_watchlist
from engine.sidecar.share import FleetShare
from engine.sidecar.store import SidecarStore, WriteBatch
from engine.sidecar.ws import sleep_or_stop
from engine.sidecar.ws_pool import WsPool
from engine.venue import types as hl
from strategies.candle import Candle

log = logging.getLogger(__name__)

REST_CHUNK_BARS = 5000
MAX_PENDING_ACCOUNT_EVENTS = 100_000
_LOG_EVERY_SECS = 10.0
STREAMING_SECS = 1.0  # a market with a WS candle message this recent is closed by its stream, not the clock


class RestBudget(Protocol):
    """The REST client's weight budget (engine.venue.rate_budget.RateBudget)."""

    capacity: float

    def available(self) -> float: ...


class SidecarRest(Protocol):
    """REST reads the sidecar needs (engine.venue.info_client.HyperliquidInfoClient has them)."""

    def candle_snapshot(self, coin: str, interval: str, start_ms: int, end_ms: int) -> Sequence[Candle]: ...

    def meta_and_asset_ctxs(self) -> hl.MetaAndAssetCtxs: ...



@dataclass(slots=True)
class SidecarStats:
    frames: int = 0
    malformed: int = 0
    venue_errors: int = 0
    reconnects: int = 0
    syncs_done: int = 0
    sync_failures: int = 0
    cross_checks: int = 0
    corrections: int = 0
    repairs_done: int = 0
    repair_corrections: int = 0
    candles_published: int = 0
    last_error: str = ""
    rate_limited_log: dict[str, float] = field(default_factory=dict)


class Sidecar(FleetShare, Repairs):
    """One sidecar process's state and tasks (see module docstring). Build, then `await run(stop)`."""

    def __init__(
        self,
        settings: SidecarSettings,
        *,
        redis_client: Any,
        rest: SidecarRest,
        layout: RedisLayout | None = None,
        clock_ms: Callable[[], int] = wall_ms,
        rng: random.Random | None = None,
        rest_budget: RestBudget | None = None,
    ) -> None:
        self.settings = settings
        self._budget = rest_budget
        self.layout = layout or RedisLayout(settings.redis.prefix, keep_bars=settings.keep_bars)
        self.rest = rest
        self._clock_ms = clock_ms
        self._rng = rng or random.Random()
        self.venue = VenueClock(clock_ms, live_tolerance_ms=settings.interval_ms + 60_000)
        self.tracker = CandleTracker(
            settings.interval_ms,
            grace_ms=settings.close_grace_ms,
            lookback_bars=settings.lookback_bars,
            max_fill_bars=settings.keep_bars,
        )
        self.store = SidecarStore(
            interval_ms=settings.interval_ms,
            sqlite_keep_bars=settings.sqlite_keep_bars,
            client=redis_client,
            layout=self.layout,
            interval=settings.interval,
            db_path=settings.candles_db_path,
        )
        self.stats = SidecarStats()
        self.watchlist: tuple[str, ...] = ()  # the whole fleet's
        self.symbols: tuple[str, ...] = ()  # this sidecar's share: WS markets, then REST ones
        self.share = Share()
        self._watch: frozenset[str] = frozenset()
        self.ws = WsPool(
            settings,
            on_session_start=self._on_session_start,
            on_session_end=self._on_session_end,
            on_frame=self.handle_frame,
            stats=self.stats,
            log_limited=self._log_limited,
            rng=self._rng,
        )
        self.progress = SocketProgress(self.ws.slot_of, grace_ms=settings.close_grace_ms)
        self.fleet = FleetMember(
            redis_client,
            self.layout.prefix,
            member=settings.sidecar_id,
            ttl_ms=settings.member_ttl_ms,
            interval=settings.interval,
        )
        self.started_wall_ms = clock_ms()
        self._pending = WriteBatch()
        self._wake = asyncio.Event()
        self._syncs: dict[str, SyncRequest] = {}
        self._sync_retry_at: dict[str, float] = {}
        self._sync_failures: dict[str, int] = {}
        self._verify: dict[str, None] = {}
        self._repairs: dict[str, SyncRequest] = {}  # clock-closed bars to re-read (see candles.py)
        self._repairing: set[str] = set()
        self._repair_retry_at: dict[str, float] = {}
        self._last_rest_start = 0.0
        self._last_hb_ms = 0
        self._backfill_total = 0
        self._last_msg: dict[str, float] = {}  # symbol → monotonic time of its last WS candle message
        # threads per duty: slow REST calls must not queue the fleet beat (a late beat expires the
        # member key: the others take its markets, then give them back) nor the Redis writes
        self._rest_pool = ThreadPoolExecutor(max(1, settings.rest_max_inflight), "sidecar-rest")
        self._writer_pool = ThreadPoolExecutor(1, "sidecar-writer")
        self._fleet_pool = ThreadPoolExecutor(1, "sidecar-fleet")

    # ------------------------------------------------------------------ logging helpers
    def _log_limited(self, key: str, level: int, msg: str, **extra: Any) -> None:
        now = time.monotonic()
        if now - self.stats.rate_limited_log.get(key, -1e9) >= _LOG_EVERY_SECS:
            self.stats.rate_limited_log[key] = now
            log.log(level, msg, extra=extra)

    # ------------------------------------------------------------------ start-up
    async def resolve_watchlist(self, stop: asyncio.Event) -> tuple[str, ...]:
        """AI_QUANT_SYMBOLS, else the top AI_QUANT_TOP_N by dayNtlVlm; plus the anchor symbol.

        The venue's list is retried until it answers, unless symbols are explicit (then one try).
        """
        delay = self.settings.reconnect_min_secs
        listed: list[tuple[str, float]] | None = None
        while not stop.is_set():
            try:
                info = await asyncio.to_thread(self.rest.meta_and_asset_ctxs)
                listed = [(ctx.coin, ctx.day_ntl_vlm) for ctx in info.ctxs]
                break
            except (hl.VenueError, ValueError) as exc:
                log.warning("venue symbol list unavailable", extra={"error": str(exc)[:200]})
                if self.settings.symbols:
                    break
                await sleep_or_stop(stop, delay)
                delay = min(delay * 2, self.settings.reconnect_max_secs)
        if stop.is_set():
            return ()
        symbols, dropped = build_watchlist(
            self.settings.symbols, self.settings.top_n, self.settings.anchor_symbol, listed
        )
        if dropped:
            log.warning("symbols not listed by the venue dropped", extra={"symbols": ",".join(dropped)})
        return symbols

    async def start(self, stop: asyncio.Event) -> bool:
        """Resolve the watchlist, take this sidecar's share, seed it from Redis/SQLite; False if stopped."""
        symbols = await self.resolve_watchlist(stop)
        if not symbols:
            return False
        self.watchlist = symbols
        await self.rebalance()
        log.info("sidecar watchlist", extra={
            "watchlist": len(symbols), "ws": len(self.share.ws), "rest": len(self.share.rest),
            "connections": len(self._ws_plan(self.share.ws)), "interval": self.settings.interval,
            "member": self.settings.sidecar_id})  # fmt: skip
        return True

    # ------------------------------------------------------------------ tracker output → pending
    def _apply(self, out: TrackerOutput, *, from_ws: bool) -> None:
        for sym, candles in out.publish.items():
            self._pending.publish.setdefault(sym, []).extend(candles)
            self.stats.candles_published += len(candles)
            if from_ws and self.settings.cross_check:
                self._verify[sym] = None
        for sym, candles in out.corrections.items():
            self._pending.corrections.setdefault(sym, []).extend(candles)
        self._pending.forming.update(out.forming)
        for queue, requests in ((self._syncs, out.syncs), (self._repairs, out.repairs)):
            for req in requests:
                current = queue.get(req.symbol)
                if current is None:
                    queue[req.symbol] = req
                else:  # widen the range already waiting
                    queue[req.symbol] = SyncRequest(
                        req.symbol, min(current.start_t, req.start_t), max(current.end_t, req.end_t)
                    )
        if out.publish or out.syncs or out.repairs:
            self._wake.set()

    # ------------------------------------------------------------------ WS frames
    def handle_frame(self, raw: str | bytes) -> None:
        """Parse and apply one frame; malformed ones are counted, logged (rate-limited) and skipped."""
        self.stats.frames += 1
        try:
            event = parse_frame(raw)
        except FrameError as exc:
            self.stats.malformed += 1
            self._log_limited(
                "malformed",
                logging.WARNING,
                "malformed frame skipped",
                error=str(exc)[:200],
                malformed=self.stats.malformed,
            )
            return
        if event is None:
            return
        if isinstance(event, CandleUpdate):
            self._on_candle(event)
        elif isinstance(event, MidsUpdate):
            self._pending.mids.update(event.mids)
            now = self._clock_ms()
            self._pending.mids_venue_ms = self.venue.now_or(now)
            self._pending.mids_wall_ms = now
        elif isinstance(event, BboUpdate):
            self.venue.observe(event.venue_ms)
            self.progress.seen(event.symbol, event.venue_ms)
            self._pending.bbo[event.symbol] = Bbo(
                event.bid_px, event.bid_sz, event.ask_px, event.ask_sz, event.venue_ms, self._clock_ms()
            )
        elif isinstance(event, AccountUpdate):
            self._on_account(event)
        elif isinstance(event, VenueError):
            self.stats.venue_errors += 1
            self._log_limited("venue_error", logging.WARNING, "venue error frame", text=event.text)

    def _on_candle(self, event: CandleUpdate) -> None:
        if event.interval != self.settings.interval or event.symbol not in self._watch:
            return
        self.venue.observe(event.candle.t)
        self.progress.seen(event.symbol, event.candle.t)
        self._last_msg[event.symbol] = time.monotonic()
        self._apply(self.tracker.on_candle(event.symbol, event.candle), from_ws=True)

    def _on_session_start(self, markets: tuple[str, ...], primary: bool) -> None:
        """A WebSocket session starts: forget its markets' forming candles; on the connection with
        the account channels, tell the driver (SESSION marker, queued before this session's
        account events) that events of the gap were not replayed."""
        self.tracker.on_reconnect(markets)
        user = self.settings.account_address
        if primary and self.settings.wants_account_events and user:
            data = {"reconnects": self.stats.reconnects}
            marker = AccountEvent(AccountEventKind.SESSION, data, False, self._clock_ms())
            self._pending.account.append((user, marker))
            self._wake.set()

    def _on_account(self, event: AccountUpdate) -> None:
        user = self.settings.account_address
        if user is None:
            return
        if event.venue_ms is not None:
            self.venue.observe(event.venue_ms)
        self._pending.account.append(
            (user, AccountEvent(event.kind, event.data, event.is_snapshot, self._clock_ms()))
        )
        if len(self._pending.account) > MAX_PENDING_ACCOUNT_EVENTS:  # Redis down for very long
            del self._pending.account[0]
            self._log_limited("acct_drop", logging.ERROR, "account event dropped: redis unavailable too long")
        self._wake.set()

    def _on_session_end(self, markets: tuple[str, ...]) -> None:
        """A WebSocket session ended: its markets' forming bars are dropped (the clock must not
        close them without their final update) and clock-closed bars no later message confirmed
        are queued for a REST repair."""
        self._apply(self.tracker.on_disconnect(markets), from_ws=False)

    # ------------------------------------------------------------------ WebSocket
    @property
    def connected(self) -> bool:
        """True while every WebSocket session is subscribed and reading and no closed bar waits
        for its repair (fail closed: until then a closed bar in the cache may lack its final update)."""
        return self.ws.connected and not self._repairs and not self._repairing

    # ------------------------------------------------------------------ REST: fills and cross-checks
    async def _pace(self) -> None:
        gap = self.settings.rest_min_gap_ms / 1000
        while True:
            wait = self._last_rest_start + gap - time.monotonic()
            if wait <= 0:
                self._last_rest_start = time.monotonic()
                return
            await asyncio.sleep(wait)

    async def _fetch(self, symbol: str, start_t: int, end_t: int) -> list[Candle]:
        """Candles with start_t <= t < end_t, in chunks of the venue's 5,000-candle cap."""
        out: list[Candle] = []
        step = self.settings.interval_ms
        cursor = start_t
        while cursor < end_t:
            await self._pace()
            chunk_end = min(end_t, cursor + REST_CHUNK_BARS * step) - 1
            call = functools.partial(self.rest.candle_snapshot, symbol, self.settings.interval, cursor)
            got = await asyncio.get_running_loop().run_in_executor(self._rest_pool, call, chunk_end)
            out.extend(c for c in got if start_t <= c.t < end_t)
            cursor = chunk_end + 1
        return out

    async def _run_sync(self, req: SyncRequest) -> None:
        # a REST-polled market also gets the bar after the range: its forming bar (and open key)
        polled = req.symbol in self.share.rest
        end = req.end_t + (self.settings.interval_ms if polled else 0)
        try:
            candles = await self._fetch(req.symbol, req.start_t, end)
            if req.symbol not in self._watch:
                return  # another sidecar carries it now
            if polled and candles and candles[-1].t >= req.end_t:
                self._pending.forming[req.symbol] = candles.pop()
        except (hl.VenueError, ValueError) as exc:
            failures = self._sync_failures.get(req.symbol, 0) + 1
            self._sync_failures[req.symbol] = failures
            self.stats.sync_failures += 1
            self.tracker.on_sync_failed(req)
            delay = self._rng.uniform(0, min(30.0, 0.5 * 2**failures))
            self._sync_retry_at[req.symbol] = time.monotonic() + delay
            self._apply(TrackerOutput(syncs=[req]), from_ws=False)
            self._log_limited(
                "sync",
                logging.WARNING,
                "candle fill failed; will retry",
                symbol=req.symbol,
                error=str(exc)[:200],
                failures=failures,
            )
            return
        self._sync_failures.pop(req.symbol, None)
        self.stats.syncs_done += 1
        self._apply(self.tracker.on_sync_result(req, candles), from_ws=False)
        if self._backfill_total and (self.stats.syncs_done % 25 == 0 or not self._syncs):
            self._log_limited(
                "backfill",
                logging.INFO,
                "candle fill progress",
                done=self.stats.syncs_done,
                waiting=len(self._syncs),
                total=self._backfill_total,
            )

    async def _run_cross_check(self, symbol: str) -> None:
        tail = self.tracker.published_tail(symbol)
        venue_now = self.venue.now()
        if not tail or venue_now is None:
            return
        try:
            candles = await self._fetch(symbol, tail[0].t, tail[-1].t + self.settings.interval_ms)
        except (hl.VenueError, ValueError) as exc:
            self._log_limited(
                "xcheck", logging.WARNING, "cross-check failed", symbol=symbol, error=str(exc)[:200]
            )
            return
        self.stats.cross_checks += 1
        published = {c.t: c for c in self.tracker.published_tail(symbol)}
        corrections = self.tracker.cross_check(symbol, candles, venue_now)
        if corrections:
            self.stats.corrections += len(corrections)
            log.warning(
                "closed candle corrected from REST",
                extra={
                    "symbol": symbol,
                    "count": len(corrections),
                    "venue_now": venue_now,
                    "was": [published.get(c.t) for c in corrections],
                    "now": corrections,
                },
            )
            self._apply(TrackerOutput(corrections={symbol: corrections}), from_ws=False)

    def _spare_budget(self) -> bool:  # cross-checks are best effort: over half the budget free
        return self._budget is None or self._budget.available() >= self._budget.capacity / 2

    def _next_job(self) -> tuple[str, Any] | None:
        """Repairs first (few, and a wrong closed bar is worse than a late one), then fills, then
        cross-checks while the budget has room."""
        now = time.monotonic()
        for sym in list(self._repairs):
            if sym not in self._watch:
                del self._repairs[sym]
            elif self._repair_retry_at.get(sym, 0.0) <= now:
                return "repair", self._repairs.pop(sym)
        for sym in list(self._syncs):
            if sym not in self._watch:
                del self._syncs[sym]
            elif self._sync_retry_at.get(sym, 0.0) <= now:
                return "sync", self._syncs.pop(sym)
        if self._verify and self._spare_budget():
            sym = next(iter(self._verify))
            del self._verify[sym]
            return "verify", sym
        return None

    async def rest_worker(self, stop: asyncio.Event) -> None:
        """One of `rest_max_inflight` workers: repairs, then fills, then cross-checks."""
        while not stop.is_set():
            job = self._next_job()
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=0.2)
                continue
            kind, payload = job
            if kind == "repair":
                await self._run_repair(payload)
            elif kind == "sync":
                await self._run_sync(payload)
            else:
                await self._run_cross_check(payload)

    # ------------------------------------------------------------------ flushing and timers
    def _heartbeat(self) -> Heartbeat:
        return Heartbeat(
            wall_ms=self._clock_ms(),
            venue_ms=self.venue.now() or 0,
            connected=self.connected,
            interval=self.settings.interval,
            symbols=len(self.symbols),
            pid=os.getpid(),
            started_wall_ms=self.started_wall_ms,
            sidecar=self.settings.sidecar_id,
            reconnects=self.stats.reconnects,
            last_error=self.stats.last_error,
            frames=self.stats.frames,
            malformed=self.stats.malformed,
            candles_published=self.stats.candles_published,
            corrections=self.stats.corrections,
            redis_failures=self.store.redis_failures,
        )

    def _take_batch(self) -> WriteBatch:
        venue_now = self.venue.now()
        if venue_now is not None:
            cutoff = time.monotonic() - STREAMING_SECS
            streaming = {s for s, at in self._last_msg.items() if at > cutoff}
            due = self.tracker.due_closes(venue_now, streaming, self.progress.held(venue_now))
            self._apply(due, from_ws=True)
        batch, self._pending = self._pending, WriteBatch()
        now = self._clock_ms()
        if now - self._last_hb_ms >= self.settings.heartbeat_ms:
            batch.heartbeat = self._heartbeat()
            self._last_hb_ms = now
        return batch

    async def flush_once(self) -> None:
        batch = self._take_batch()
        if batch.is_empty():
            return
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._writer_pool, self.store.write, batch, self.symbols)
        if result.leftover is not None:
            self._pending.absorb(result.leftover)
            self._last_hb_ms = 0  # write a heartbeat as soon as Redis is back

    async def flush_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await sleep_or_stop(stop, self.settings.flush_ms / 1000)
            await self.flush_once()
        await self.flush_once()

    async def verify_loop(self, stop: asyncio.Event) -> None:
        """Every AI_QUANT_CANDLE_VERIFY_SECS: fetch bars of symbols that got no WS message to close them."""
        while not stop.is_set():
            await sleep_or_stop(stop, self.settings.verify_secs)
            venue_now = self.venue.now()
            if venue_now is not None:
                self._apply(self.tracker.lagging_syncs(venue_now), from_ws=False)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; the last batch is flushed before returning."""
        if not await self.start(stop):
            return
        tasks = [
            asyncio.create_task(self.ws.run(stop), name="ws"),
            asyncio.create_task(self.flush_loop(stop), name="flush"),
            asyncio.create_task(self.verify_loop(stop), name="verify"),
            asyncio.create_task(self.fleet_loop(stop), name="fleet"),
        ]
        tasks += [
            asyncio.create_task(self.rest_worker(stop), name=f"rest{i}")
            for i in range(self.settings.rest_max_inflight)
        ]
        self._backfill_total = len(self.symbols)
        stopper = asyncio.create_task(stop.wait(), name="stop")
        done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stopping = stop.is_set()  # once stop is set the loops return by themselves: not a crash
        crashed = next((t for t in done if t is not stopper and not (stopping and _ended_cleanly(t))), None)
        stop.set()  # a task that ended by itself is a bug: stop everything, then crash (crash-only)
        self._wake.set()
        tasks[0].cancel()
        await asyncio.gather(stopper, *tasks, return_exceptions=True)
        await self.drain_repairs(width=self.settings.rest_max_inflight)  # what the ended sessions left
        await self.flush_once()
        with contextlib.suppress(redis.RedisError):
            await asyncio.to_thread(self.fleet.retire)  # the others take over at once
        for pool in (self._rest_pool, self._writer_pool, self._fleet_pool):
            pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()
        log.info(
            "sidecar stopped",
            extra={"stats": {k: v for k, v in vars_of(self.stats).items() if k != "rate_limited_log"}},
        )
        if crashed is not None:
            error = crashed.exception() if not crashed.cancelled() else None
            raise RuntimeError(f"sidecar task {crashed.get_name()} ended unexpectedly") from error


def _ended_cleanly(task: asyncio.Task[Any]) -> bool:
    return not task.cancelled() and task.exception() is None


def vars_of(stats: SidecarStats) -> dict[str, Any]:
    return {name: getattr(stats, name) for name in stats.__slots__}  # type: ignore[attr-defined]
