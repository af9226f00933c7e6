"""Market-side Hyperliquid records and their parsers: `meta`, `metaAndAssetCtxs`, `allMids`,
candles, `l2Book` and `fundingHistory`. Re-exported by `engine.venue.types` (import from there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.venue.errors import ParseError
from engine.venue.fields import (
    _Ctx,
    _field,
    _get,
    _int,
    _int_value,
    _items,
    _list,
    _list_field,
    _num,
    _num_value,
    _obj,
    _opt_bool,
    _opt_field,
    _opt_int,
    _opt_list_field,
    _opt_num,
    _opt_str,
    _pair,
    _str,
)
from strategies.candle import Candle

# --- meta and asset contexts --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssetMeta:
    """One perp in `meta.universe`; `asset_id` is its index there (the `a` field of orders)."""

    asset_id: int
    name: str
    sz_decimals: int
    max_leverage: int
    only_isolated: bool = False
    is_delisted: bool = False
    margin_table_id: int | None = None


@dataclass(frozen=True, slots=True)
class MarginTier:
    lower_bound_usd: float
    max_leverage: int


@dataclass(frozen=True, slots=True)
class MarginTable:
    table_id: int
    description: str
    tiers: tuple[MarginTier, ...]


@dataclass(frozen=True, slots=True)
class Meta:
    universe: tuple[AssetMeta, ...]
    margin_tables: tuple[MarginTable, ...] = ()

    def asset(self, name: str) -> AssetMeta | None:
        """Return the asset named `name` (exact, case-sensitive: "kPEPE"), or None."""
        for asset in self.universe:
            if asset.name == name:
                return asset
        return None


def _asset_meta(item: Any, ctx: _Ctx, index: int) -> AssetMeta:
    obj = _obj(item, ctx)
    sz_decimals = _int(obj, "szDecimals", ctx)
    if sz_decimals > 10:
        raise ctx.at("szDecimals").fail(f"implausible value {sz_decimals}")
    max_leverage = _int(obj, "maxLeverage", ctx)
    if max_leverage < 1:
        raise ctx.at("maxLeverage").fail(f"below 1: {max_leverage}")
    return AssetMeta(
        asset_id=index,
        name=_str(obj, "name", ctx),
        sz_decimals=sz_decimals,
        max_leverage=max_leverage,
        only_isolated=bool(_opt_bool(obj, "onlyIsolated", ctx, False)),
        is_delisted=bool(_opt_bool(obj, "isDelisted", ctx, False)),
        margin_table_id=_opt_int(obj, "marginTableId", ctx),
    )


def _margin_tier(item: Any, ctx: _Ctx) -> MarginTier:
    obj = _obj(item, ctx)
    return MarginTier(
        lower_bound_usd=_num(obj, "lowerBound", ctx, sign="nonneg"),
        max_leverage=_int(obj, "maxLeverage", ctx),
    )


def _margin_table(item: Any, ctx: _Ctx) -> MarginTable:
    pair = _pair(item, ctx, "[id, table]")
    table_id = _int_value(pair[0], ctx.at(0))
    tctx = ctx.at(1)
    body = _obj(pair[1], tctx)
    tiers = _list_field(body, "marginTiers", tctx, _margin_tier)
    return MarginTable(table_id=table_id, description=_opt_str(body, "description", tctx) or "", tiers=tiers)


def parse_meta(body: Any, request: str = "meta") -> Meta:
    """Parse a `meta` answer; raise ParseError naming the field on any malformed value."""
    ctx = _Ctx(request)
    obj = _obj(body, ctx)
    uctx = ctx.at("universe")
    universe = tuple(
        _asset_meta(item, uctx.at(i), i) for i, item in enumerate(_list(_get(obj, "universe", ctx), uctx))
    )
    tables = _opt_list_field(obj, "marginTables", ctx, _margin_table)
    return Meta(universe=universe, margin_tables=tables)


@dataclass(frozen=True, slots=True)
class AssetCtx:
    """Live context of one perp (ctx i belongs to universe i). Funding is the hourly rate."""

    coin: str
    funding: float
    mark_px: float
    oracle_px: float
    open_interest: float
    day_ntl_vlm: float
    prev_day_px: float
    mid_px: float | None = None
    premium: float | None = None
    day_base_vlm: float | None = None
    impact_pxs: tuple[float, ...] | None = None


@dataclass(frozen=True, slots=True)
class MetaAndAssetCtxs:
    meta: Meta
    ctxs: tuple[AssetCtx, ...]


def _asset_ctx(item: Any, ctx: _Ctx, coin: str) -> AssetCtx:
    obj = _obj(item, ctx)
    impact = _opt_field(obj, "impactPxs", ctx, lambda value, c: _items(value, c, _num_value))
    return AssetCtx(
        coin=coin,
        funding=_num(obj, "funding", ctx),
        mark_px=_num(obj, "markPx", ctx, sign="nonneg"),
        oracle_px=_num(obj, "oraclePx", ctx, sign="nonneg"),
        open_interest=_num(obj, "openInterest", ctx, sign="nonneg"),
        day_ntl_vlm=_num(obj, "dayNtlVlm", ctx, sign="nonneg"),
        prev_day_px=_num(obj, "prevDayPx", ctx, sign="nonneg"),
        mid_px=_opt_num(obj, "midPx", ctx, sign="nonneg"),
        premium=_opt_num(obj, "premium", ctx),
        day_base_vlm=_opt_num(obj, "dayBaseVlm", ctx, sign="nonneg"),
        impact_pxs=impact,
    )


def parse_meta_and_asset_ctxs(body: Any, request: str = "metaAndAssetCtxs") -> MetaAndAssetCtxs:
    """Parse `[meta, ctxs]`; the two lists must have the same length."""
    ctx = _Ctx(request)
    pair = _pair(body, ctx, "[meta, ctxs]")
    meta = parse_meta(pair[0], request)
    cctx = ctx.at(1)
    raw_ctxs = _list(pair[1], cctx)
    if len(raw_ctxs) != len(meta.universe):
        raise cctx.fail(f"{len(raw_ctxs)} contexts for {len(meta.universe)} assets")
    ctxs = tuple(_asset_ctx(item, cctx.at(i), meta.universe[i].name) for i, item in enumerate(raw_ctxs))
    return MetaAndAssetCtxs(meta=meta, ctxs=ctxs)


# --- market data --------------------------------------------------------------------------------


def parse_all_mids(body: Any, request: str = "allMids") -> dict[str, float]:
    """Parse `{coin: px}`; every mid must be a finite positive number."""
    ctx = _Ctx(request)
    obj = _obj(body, ctx)
    return {coin: _num(obj, coin, ctx, sign="pos") for coin in obj}


def _candle(item: Any, ctx: _Ctx, coin: str | None, interval: str | None) -> Candle:
    obj = _obj(item, ctx)
    if coin is not None and obj.get("s") is not None and _str(obj, "s", ctx) != coin:
        raise ctx.at("s").fail(f"candle for {obj['s']!r}, asked for {coin!r}")
    if interval is not None and obj.get("i") is not None and _str(obj, "i", ctx) != interval:
        raise ctx.at("i").fail(f"candle interval {obj['i']!r}, asked for {interval!r}")
    try:
        return Candle(
            t=_int(obj, "t", ctx),
            close_ms=_int(obj, "T", ctx),
            o=_num(obj, "o", ctx, sign="nonneg"),
            h=_num(obj, "h", ctx, sign="nonneg"),
            l=_num(obj, "l", ctx, sign="nonneg"),
            c=_num(obj, "c", ctx, sign="nonneg"),
            v=_num(obj, "v", ctx, sign="nonneg"),
            n=_opt_int(obj, "n", ctx) or 0,
        )
    except ValueError as exc:
        if isinstance(exc, ParseError):
            raise
        raise ctx.fail(str(exc)) from exc


def parse_candle(
    body: Any, request: str = "candle", *, coin: str | None = None, interval: str | None = None
) -> Candle:
    """Parse one candle object `{t,T,s,i,o,c,h,l,v,n}` (REST item or WS `candle` data)."""
    return _candle(body, _Ctx(request), coin, interval)


def parse_candle_snapshot(
    body: Any, request: str = "candleSnapshot", *, coin: str | None = None, interval: str | None = None
) -> tuple[Candle, ...]:
    """Parse a `candleSnapshot` list; candles must be in strictly increasing open time."""
    ctx = _Ctx(request)
    candles = _items(body, ctx, lambda item, c: _candle(item, c, coin, interval))
    for i in range(1, len(candles)):
        if candles[i].t <= candles[i - 1].t:
            raise ctx.at(i).at("t").fail("open times not strictly increasing")
    return candles


@dataclass(frozen=True, slots=True)
class L2Level:
    px: float
    sz: float
    n: int


@dataclass(frozen=True, slots=True)
class L2Book:
    """Book snapshot: bids best (highest) first, asks best (lowest) first."""

    coin: str
    time_ms: int
    bids: tuple[L2Level, ...]
    asks: tuple[L2Level, ...]


def _level(item: Any, ctx: _Ctx) -> L2Level:
    obj = _obj(item, ctx)
    return L2Level(
        px=_num(obj, "px", ctx, sign="pos"), sz=_num(obj, "sz", ctx, sign="nonneg"), n=_int(obj, "n", ctx)
    )


def parse_l2_book(body: Any, request: str = "l2Book") -> L2Book:
    ctx = _Ctx(request)
    obj = _obj(body, ctx)
    lctx = ctx.at("levels")
    levels = _field(obj, "levels", ctx, lambda value, c: _pair(value, c, "[bids, asks]", "sides"))
    return L2Book(
        coin=_str(obj, "coin", ctx),
        time_ms=_int(obj, "time", ctx),
        bids=_items(levels[0], lctx.at(0), _level),
        asks=_items(levels[1], lctx.at(1), _level),
    )


@dataclass(frozen=True, slots=True)
class FundingEntry:
    """One settled funding interval from `fundingHistory` (rate per interval, signed)."""

    coin: str
    funding_rate: float
    premium: float
    time_ms: int


def _funding_entry(item: Any, ctx: _Ctx) -> FundingEntry:
    obj = _obj(item, ctx)
    return FundingEntry(
        coin=_str(obj, "coin", ctx),
        funding_rate=_num(obj, "fundingRate", ctx),
        premium=_num(obj, "premium", ctx),
        time_ms=_int(obj, "time", ctx),
    )


def parse_funding_history(body: Any, request: str = "fundingHistory") -> tuple[FundingEntry, ...]:
    return _items(body, _Ctx(request), _funding_entry)
