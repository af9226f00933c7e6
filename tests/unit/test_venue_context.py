"""VenueContext: funding rates and size decimals from one cached metaAndAssetCtxs answer."""

from __future__ import annotations

import pytest

from engine.venue import types as hl
from engine.venue.context import VenueContext


def _answer(funding: float) -> hl.MetaAndAssetCtxs:
    meta = hl.Meta(
        universe=(
            hl.AssetMeta(asset_id=0, name="BTC", sz_decimals=5, max_leverage=40),
            hl.AssetMeta(asset_id=1, name="kPEPE", sz_decimals=0, max_leverage=10),
        )
    )
    ctx = {"mark_px": 1.0, "oracle_px": 1.0, "open_interest": 1.0, "day_ntl_vlm": 1.0, "prev_day_px": 1.0}
    return hl.MetaAndAssetCtxs(
        meta=meta,
        ctxs=(
            hl.AssetCtx(coin="BTC", funding=funding, **ctx),
            hl.AssetCtx(coin="kPEPE", funding=-funding, **ctx),
        ),
    )


class FakeInfo:
    def __init__(self) -> None:
        self.calls = 0
        self.funding = 0.0000125
        self.fail = False

    def meta_and_asset_ctxs(self) -> hl.MetaAndAssetCtxs:
        self.calls += 1
        if self.fail:
            raise ConnectionError("venue down")
        return _answer(self.funding)


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def test_venue_context_serves_rates_and_decimals_from_one_cached_call():
    info, clock = FakeInfo(), Clock()
    venue = VenueContext(info, ttl_ms=60_000, clock_ms=clock)
    assert venue.funding_rates() == {"BTC": 0.0000125, "KPEPE": -0.0000125}
    assert (
        venue.sz_decimals("btc") == 5 and venue.sz_decimals("kPEPE") == 0 and venue.sz_decimals("ETH") is None
    )
    assert info.calls == 1
    info.funding = 0.0001
    clock.now = 60_000
    assert venue.funding_rates()["BTC"] == 0.0001 and info.calls == 2


def test_venue_context_failure_raises_for_funding_but_keeps_decimals():
    info, clock = FakeInfo(), Clock()
    venue = VenueContext(info, ttl_ms=1, clock_ms=clock)
    venue.funding_rates()
    info.fail, clock.now = True, 10
    with pytest.raises(ConnectionError):
        venue.funding_rates()
    assert venue.sz_decimals("BTC") == 5
