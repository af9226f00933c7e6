"""The sidecar's share of the fleet's watchlist: beat, follow the assignment, re-plan the sockets.

A mixin of `engine.sidecar.service.Sidecar` (split out to keep that module readable): every
heartbeat the sidecar announces itself (`engine.sidecar.fleet`), reads the live members, computes
the same rendezvous assignment as every other member (`engine.sidecar.plan.assign`), and when its
share changed, seeds the markets that arrived from Redis/SQLite (so the tracker fills exactly the
bars since the last cached one: a dead member's markets lose no candle), forgets those that
left, and re-plans its WebSocket connections.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis

from cluster.redis_layout import LayoutError
from engine.config.perp_dexes import ORIGINAL_DEX, dex_of
from engine.sidecar.candles import CandleTracker, SyncRequest, TrackerOutput, VenueClock
from engine.sidecar.fleet import FleetMember, MemberInfo
from engine.sidecar.plan import Share, assign, connection_plan
from engine.sidecar.settings import SidecarSettings
from engine.sidecar.store import SidecarStore
from engine.sidecar.ws import sleep_or_stop
from engine.sidecar.ws_pool import WsPool

log = logging.getLogger(__name__)


class FleetShare:
    """Fleet membership and share-following for the sidecar (see module docstring)."""

    settings: SidecarSettings
    fleet: FleetMember
    tracker: CandleTracker
    store: SidecarStore
    venue: VenueClock
    ws: WsPool
    watchlist: tuple[str, ...]
    symbols: tuple[str, ...]
    share: Share
    _watch: frozenset[str]
    _syncs: dict[str, SyncRequest]
    _verify: dict[str, None]
    _repairs: dict[str, SyncRequest]
    _clock_ms: Callable[[], int]
    _fleet_pool: ThreadPoolExecutor
    _rng: random.Random

    @property
    def connected(self) -> bool:
        raise NotImplementedError

    def _apply(self, out: TrackerOutput, *, from_ws: bool) -> None:
        raise NotImplementedError

    def _log_limited(self, key: str, level: int, msg: str, **extra: Any) -> None:
        raise NotImplementedError

    def _member_info(self) -> MemberInfo:
        return MemberInfo(
            member=self.settings.sidecar_id,
            ws_capacity=self.settings.ws_capacity(len(self.mids_dexes)),
            rest_capacity=self.settings.rest_market_capacity,
            ws_markets=len(self.share.ws),
            rest_markets=len(self.share.rest),
            connections=self.ws.connections,
            connected=self.connected,
            local_addr=self.settings.local_addr or "",
            pid=os.getpid(),
            wall_ms=self._clock_ms(),
        )

    def _beat_and_assign(self, info: MemberInfo) -> Share | None:
        """Beat, read the live members, assign (in the writer's thread); None if Redis is down."""
        try:
            members, watchlist = self.fleet.beat(info, self.watchlist)
            assignment = assign(watchlist, members)
            self.fleet.publish_sources(assignment)
        except (redis.RedisError, LayoutError) as exc:
            self._log_limited("fleet", logging.WARNING, "fleet beat failed", error=type(exc).__name__)
            return None
        return assignment.shares[self.settings.sidecar_id]

    async def rebalance(self) -> None:
        """One fleet beat; take the new share when it changed (Redis down: keep the current one,
        or, before any, carry the whole watchlist alone)."""
        loop, info = asyncio.get_running_loop(), self._member_info()
        share = await loop.run_in_executor(self._fleet_pool, self._beat_and_assign, info)
        if share is None:
            if self.symbols:
                return
            alone = {self.settings.sidecar_id: self._member_info().capacity}
            share = assign(self.watchlist, alone).shares[self.settings.sidecar_id]
        if share != self.share:
            await self.apply_share(share)

    async def apply_share(self, share: Share) -> None:
        """Carry `share`: seed and backfill the markets that arrive, forget those that left,
        re-plan the WebSocket connections (only changed connections restart)."""
        old = set(self.symbols)
        arrived = [s for s in share.markets if s not in old]
        seeds = await asyncio.to_thread(self.store.last_closed, arrived) if arrived else {}
        for sym in old - set(share.markets):
            self.tracker.forget(sym)
            self._syncs.pop(sym, None)
            self._verify.pop(sym, None)
            self._repairs.pop(sym, None)
        for sym in arrived:
            self.tracker.seed(sym, seeds.get(sym))
        # a market leaving this sidecar's WebSockets for its REST polling: its forming bar will get
        # no final update, so it must not be closed as it stands (the poll fetches the bar instead)
        self._apply(self.tracker.on_disconnect([s for s in self.share.ws if s in share.rest]), from_ws=False)
        self.share = share
        self.symbols = share.markets
        self._watch = frozenset(share.markets)
        self._backfill_rest([s for s in share.rest if s in arrived and seeds.get(s) is None])
        self.ws.apply(self._ws_plan(share.ws))
        if arrived or len(old) != len(self.symbols):
            log.info(
                "sidecar share changed",
                extra={"ws": len(share.ws), "rest": len(share.rest), "arrived": len(arrived),
                       "left": len(old - set(share.markets))},
            )  # fmt: skip

    def _backfill_rest(self, symbols: list[str]) -> None:
        """REST-polled markets with nothing cached get their lookback now (WS ones on first message)."""
        if not symbols:
            return
        step = self.settings.interval_ms
        end = ((self.venue.now() or self._clock_ms()) // step) * step
        start = end - self.settings.lookback_bars * step
        syncs = [SyncRequest(s, start, end) for s in symbols if not self.tracker.is_syncing(s)]
        for req in syncs:
            self.tracker.on_sync_failed(req)  # marks the symbol as syncing until the fill lands
        self._apply(TrackerOutput(syncs=syncs), from_ws=False)

    @property
    def mids_dexes(self) -> tuple[str, ...]:
        """The builder dexes of the fleet's watchlist: each gets its own `allMids` subscription (the
        venue's allMids without `dex` covers the original dex only), so builder-dex mids arrive
        pushed like the original's, not from BBO or REST. Counted against the IP's budget."""
        return tuple(sorted({dex_of(m) for m in self.watchlist} - {ORIGINAL_DEX}))

    def _ws_plan(self, markets: tuple[str, ...]) -> list[tuple[tuple[str, ...], list[dict[str, Any]]]]:
        fixed: list[dict[str, Any]] = [{"type": "allMids"}]
        fixed += [{"type": "allMids", "dex": dex} for dex in self.mids_dexes]
        if self.settings.wants_account_events and self.settings.account_address:
            fixed += [
                {"type": kind, "user": self.settings.account_address}
                for kind in ("userFills", "orderUpdates")
            ]
        kinds = ["candle", "bbo"] if self.settings.enable_bbo else ["candle"]
        return connection_plan(
            markets, fixed=fixed, per_market=kinds, interval=self.settings.interval,
            budget=self.settings.ws_budget,
        )  # fmt: skip

    async def fleet_loop(self, stop: asyncio.Event) -> None:
        """Every heartbeat: beat, and follow the fleet's assignment (a dead member's markets move)."""
        while not stop.is_set():
            await sleep_or_stop(stop, self.settings.heartbeat_ms / 1000)
            if not stop.is_set():
                await self.rebalance()

