"""Per-asset venue context for the engine: hourly funding rates and size decimals, cached.

Implements `engine.tick.types.FundingSource` and the engine's `sz_decimals` lookup over one
`metaAndAssetCtxs` request (REST, through `engine.venue.info_client.HyperliquidInfoClient`), refreshed
at most every `ttl_ms` so a tick never waits on the venue for data that changes hourly. A failed
refresh keeps the previous answer for sizes (they do not change) and raises for funding (the
engine then skips funding this round; the hours catch up on the next success).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from engine.config.perp_dexes import normalise_symbol
from engine.venue import types as hl

log = logging.getLogger(__name__)


class MetaSource(Protocol):
    def meta_and_asset_ctxs(self) -> hl.MetaAndAssetCtxs: ...


class VenueContext:
    """Cached `metaAndAssetCtxs`: `funding_rates()` and `sz_decimals(symbol)`."""

    def __init__(
        self,
        info: MetaSource,
        *,
        ttl_ms: int = 60_000,
        clock_ms: Callable[[], int] = lambda: time.monotonic_ns() // 1_000_000,
    ) -> None:
        self._info = info
        self._ttl_ms = ttl_ms
        self._clock_ms = clock_ms
        self._fetched_ms: int | None = None
        self._rates: dict[str, float] = {}
        self._decimals: dict[str, int] = {}

    def _refresh(self) -> None:
        now = self._clock_ms()
        if self._fetched_ms is not None and now - self._fetched_ms < self._ttl_ms:
            return
        answer = self._info.meta_and_asset_ctxs()  # raises hl.VenueError / ParseError
        self._decimals = {normalise_symbol(asset.name): asset.sz_decimals for asset in answer.meta.universe}
        self._rates = {normalise_symbol(ctx.coin): ctx.funding for ctx in answer.ctxs}
        self._fetched_ms = now

    def funding_rates(self) -> Mapping[str, float]:
        """Return the hourly funding rate by symbol; raise when the venue cannot be read."""
        self._refresh()
        return dict(self._rates)

    def sz_decimals(self, symbol: str) -> int | None:
        """Return the asset's size decimals, or None when unknown (sizes are then not rounded)."""
        try:
            self._refresh()
        except Exception as exc:  # sizes do not change: the cached answer (if any) stays valid
            log.warning("venue meta refresh failed symbol=%s error=%s", symbol, type(exc).__name__)
        return self._decimals.get(normalise_symbol(symbol))
