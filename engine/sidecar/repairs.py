"""Repairs of closed bars whose final WS update may have been lost (see engine.sidecar.candles).

A mixin of `engine.sidecar.service.Sidecar`: the REST workers run a repair before any fill or
cross-check; a failed one is retried with backoff. On a clean stop the sessions end, which makes
every bar no later message confirmed a repair: they are run before the sidecar exits (bounded by
STOP_REPAIR_SECS), so a stop does not leave partial bars behind for the next owner to find.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from typing import Any

from engine.sidecar.candles import CandleTracker, SyncRequest, TrackerOutput
from engine.venue import types as hl
from strategies.candle import Candle

log = logging.getLogger(__name__)

STOP_REPAIR_SECS = 15.0


class Repairs:
    """Running the tracker's repair requests (see module docstring)."""

    tracker: CandleTracker
    stats: Any
    _repairs: dict[str, SyncRequest]
    _repairing: set[str]
    _repair_retry_at: dict[str, float]
    _sync_failures: dict[str, int]
    _watch: frozenset[str]
    _rng: random.Random

    async def _fetch(self, symbol: str, start_t: int, end_t: int) -> Sequence[Candle]:
        raise NotImplementedError

    def _apply(self, out: TrackerOutput, *, from_ws: bool) -> None:
        raise NotImplementedError

    def _log_limited(self, key: str, level: int, msg: str, **extra: Any) -> None:
        raise NotImplementedError

    async def _run_repair(self, req: SyncRequest) -> None:
        """Re-read the suspect bars of one market; retried with backoff until the venue answers."""
        self._repairing.add(req.symbol)
        try:
            candles = await self._fetch(req.symbol, req.start_t, req.end_t)
        except (hl.VenueError, ValueError) as exc:
            failures = self._sync_failures.get(req.symbol, 0) + 1
            self._sync_failures[req.symbol] = failures
            self._repair_retry_at[req.symbol] = time.monotonic() + self._rng.uniform(
                0, min(30.0, 0.5 * 2**failures)
            )
            self._apply(TrackerOutput(repairs=[req]), from_ws=False)
            self._log_limited("repair", logging.WARNING, "closed-bar repair failed; will retry",
                              symbol=req.symbol, error=str(exc)[:200], failures=failures)  # fmt: skip
            return
        finally:
            self._repairing.discard(req.symbol)
        if req.symbol not in self._watch:
            return
        self._sync_failures.pop(req.symbol, None)
        self.stats.repairs_done += 1
        out = self.tracker.on_repair_result(req, candles)
        fixed = out.corrections.get(req.symbol, [])
        if fixed:
            self.stats.repair_corrections += len(fixed)
            self.stats.corrections += len(fixed)
            log.info("closed bar repaired from REST",
                     extra={"symbol": req.symbol, "bars": [c.t for c in fixed]})  # fmt: skip
        again = self.tracker.repair_request(req.symbol)
        if again is not None:  # the venue did not return a bar yet: ask again a little later
            self._repair_retry_at[req.symbol] = time.monotonic() + 1.0
            out.repairs.append(again)
        self._apply(out, from_ws=False)

    async def drain_repairs(self, limit_secs: float = STOP_REPAIR_SECS, width: int = 8) -> None:
        """Run every waiting repair now (a stop), `width` at a time; give up after `limit_secs`
        (the next owner's first fill re-reads the last cached bars anyway)."""
        deadline = time.monotonic() + limit_secs
        while self._repairs and time.monotonic() < deadline:
            batch = [self._repairs.pop(s) for s in list(self._repairs)[:width]]
            try:
                async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                    await asyncio.gather(*(self._run_repair(r) for r in batch))
            except TimeoutError:
                break
        if self._repairs:
            log.warning("closed-bar repairs left at stop", extra={"markets": len(self._repairs)})
