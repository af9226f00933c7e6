"""Typed Hyperliquid records, parsed once at the edge, and the venue error types.

Owns the wire shapes of every `POST /info` answer the engine reads and of `POST /exchange`
replies. Everything above the clients works with these frozen records and never with raw JSON.
Parsers are strict where a wrong value could move money (NaN, infinity, negative sizes, unknown
enum values, wrong types all raise `ParseError` naming the request and the field path) and
lenient about extra keys, which the venue adds over time.

Numbers arrive as decimal strings (sometimes JSON numbers); they become floats. Times are epoch ms.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from engine.enums import LeverageType, VenueOrderStatus, VenueSide
from strategies.candle import Candle

T = TypeVar("T")

_DECIMAL_RE = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_CLOID_RE = re.compile(r"^0x[0-9a-fA-F]{32}$")


# --- errors -------------------------------------------------------------------------------------


class VenueError(Exception):
    """Base of every error raised by the Hyperliquid clients."""


class ParseError(VenueError, ValueError):
    """A venue answer does not have the expected shape; names the request and the field path."""

    def __init__(self, request: str, field: str, reason: str) -> None:
        super().__init__(f"{request}: field {field or '<body>'}: {reason}")
        self.request = request
        self.field = field
        self.reason = reason


class TemporaryVenueError(VenueError):
    """The venue could not be reached or was overloaded and the retries ran out (retry later)."""

    def __init__(self, request: str, attempts: int, detail: str) -> None:
        super().__init__(f"{request}: gave up after {attempts} attempt(s): {detail}")
        self.request = request
        self.attempts = attempts
        self.detail = detail


class VenueRejection(VenueError):
    """The venue refused the request itself (4xx or an error body); retrying will not help."""

    def __init__(self, request: str, status_code: int | None, message: str) -> None:
        super().__init__(f"{request}: rejected (http {status_code}): {message}")
        self.request = request
        self.status_code = status_code
        self.message = message


# --- field readers ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Ctx:
    """Where we are in a body, for error messages: request name and a JSON-path-like field."""

    request: str
    path: str = ""

    def at(self, key: str | int) -> _Ctx:
        if isinstance(key, int):
            return _Ctx(self.request, f"{self.path}[{key}]")
        return _Ctx(self.request, f"{self.path}.{key}" if self.path else key)

    def fail(self, reason: str) -> ParseError:
        return ParseError(self.request, self.path, reason)


def _obj(value: Any, ctx: _Ctx) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ctx.fail(f"expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, ctx: _Ctx) -> list[Any]:
    if not isinstance(value, list):
        raise ctx.fail(f"expected a list, got {type(value).__name__}")
    return value


def _get(obj: Mapping[str, Any], key: str, ctx: _Ctx) -> Any:
    if key not in obj:
        raise ctx.at(key).fail("missing")
    return obj[key]


def _num_value(value: Any, ctx: _Ctx) -> float:
    if isinstance(value, bool):
        raise ctx.fail("expected a number, got a boolean")
    if isinstance(value, int):
        try:
            out = float(value)
        except OverflowError:
            raise ctx.fail("number out of range") from None
    elif isinstance(value, float):
        out = value
    elif isinstance(value, str):
        if not _DECIMAL_RE.match(value):
            raise ctx.fail(f"not a decimal number: {value[:40]!r}")
        out = float(value)
    else:
        raise ctx.fail(f"expected a number, got {type(value).__name__}")
    if not math.isfinite(out):
        raise ctx.fail(f"not finite: {value!r}"[:80])
    return out


def _num(obj: Mapping[str, Any], key: str, ctx: _Ctx, *, sign: str = "any") -> float:
    """Read a finite number; sign is "any", "nonneg" (>= 0) or "pos" (> 0)."""
    c = ctx.at(key)
    out = _num_value(_get(obj, key, ctx), c)
    if sign == "nonneg" and out < 0:
        raise c.fail(f"negative: {out!r}")
    if sign == "pos" and out <= 0:
        raise c.fail(f"not positive: {out!r}")
    return out


def _opt_num(obj: Mapping[str, Any], key: str, ctx: _Ctx, *, sign: str = "any") -> float | None:
    if obj.get(key) is None:
        return None
    return _num(obj, key, ctx, sign=sign)


def _int_value(value: Any, ctx: _Ctx) -> int:
    if isinstance(value, bool):
        raise ctx.fail("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    raise ctx.fail(f"expected an integer, got {value!r}"[:80])


def _int(obj: Mapping[str, Any], key: str, ctx: _Ctx, *, nonneg: bool = True) -> int:
    c = ctx.at(key)
    out = _int_value(_get(obj, key, ctx), c)
    if nonneg and out < 0:
        raise c.fail(f"negative: {out}")
    return out


def _opt_int(obj: Mapping[str, Any], key: str, ctx: _Ctx) -> int | None:
    return None if obj.get(key) is None else _int(obj, key, ctx)


def _str(obj: Mapping[str, Any], key: str, ctx: _Ctx, *, nonempty: bool = True) -> str:
    value = _get(obj, key, ctx)
    if not isinstance(value, str):
        raise ctx.at(key).fail(f"expected a string, got {type(value).__name__}")
    if nonempty and not value:
        raise ctx.at(key).fail("empty string")
    return value


def _opt_str(obj: Mapping[str, Any], key: str, ctx: _Ctx) -> str | None:
    return None if obj.get(key) is None else _str(obj, key, ctx, nonempty=False)


def _bool(obj: Mapping[str, Any], key: str, ctx: _Ctx) -> bool:
    value = _get(obj, key, ctx)
    if not isinstance(value, bool):
        raise ctx.at(key).fail(f"expected a boolean, got {type(value).__name__}")
    return value


def _opt_bool(obj: Mapping[str, Any], key: str, ctx: _Ctx, default: bool | None) -> bool | None:
    return default if obj.get(key) is None else _bool(obj, key, ctx)


E = TypeVar("E")


def _enum(enum: Callable[[str], E], obj: Mapping[str, Any], key: str, ctx: _Ctx) -> E:
    value = _str(obj, key, ctx)
    try:
        return enum(value)
    except ValueError:
        raise ctx.at(key).fail(f"unknown value {value[:40]!r}") from None


def _opt_cloid(obj: Mapping[str, Any], key: str, ctx: _Ctx) -> str | None:
    value = _opt_str(obj, key, ctx)
    if value is None:
        return None
    if not _CLOID_RE.match(value):
        raise ctx.at(key).fail(f"not a 16-byte hex cloid: {value[:40]!r}")
    return value.lower()


def _items(body: Any, ctx: _Ctx, parse: Callable[[Any, _Ctx], T]) -> tuple[T, ...]:
    return tuple(parse(item, ctx.at(i)) for i, item in enumerate(_list(body, ctx)))


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


def _margin_table(item: Any, ctx: _Ctx) -> MarginTable:
    pair = _list(item, ctx)
    if len(pair) != 2:
        raise ctx.fail(f"expected [id, table], got {len(pair)} items")
    table_id = _int_value(pair[0], ctx.at(0))
    body = _obj(pair[1], ctx.at(1))
    tctx = ctx.at(1)
    tiers = _items(
        _get(body, "marginTiers", tctx),
        tctx.at("marginTiers"),
        lambda t, c: MarginTier(
            lower_bound_usd=_num(_obj(t, c), "lowerBound", c, sign="nonneg"),
            max_leverage=_int(_obj(t, c), "maxLeverage", c),
        ),
    )
    return MarginTable(table_id=table_id, description=_opt_str(body, "description", tctx) or "", tiers=tiers)


def parse_meta(body: Any, request: str = "meta") -> Meta:
    """Parse a `meta` answer; raise ParseError naming the field on any malformed value."""
    ctx = _Ctx(request)
    obj = _obj(body, ctx)
    uctx = ctx.at("universe")
    universe = tuple(
        _asset_meta(item, uctx.at(i), i) for i, item in enumerate(_list(_get(obj, "universe", ctx), uctx))
    )
    tables: tuple[MarginTable, ...] = ()
    if obj.get("marginTables") is not None:
        tables = _items(obj["marginTables"], ctx.at("marginTables"), _margin_table)
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
    impact = None
    if obj.get("impactPxs") is not None:
        ictx = ctx.at("impactPxs")
        impact = tuple(_num_value(v, ictx.at(i)) for i, v in enumerate(_list(obj["impactPxs"], ictx)))
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
    pair = _list(body, ctx)
    if len(pair) != 2:
        raise ctx.fail(f"expected [meta, ctxs], got {len(pair)} items")
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
    levels = _list(_get(obj, "levels", ctx), lctx)
    if len(levels) != 2:
        raise lctx.fail(f"expected [bids, asks], got {len(levels)} sides")
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


# --- account ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarginSummary:
    account_value_usd: float
    total_margin_used_usd: float
    total_ntl_pos_usd: float
    total_raw_usd: float


@dataclass(frozen=True, slots=True)
class CumFunding:
    all_time_usd: float
    since_open_usd: float
    since_change_usd: float


@dataclass(frozen=True, slots=True)
class Position:
    """One perp position; `szi` is signed (short < 0)."""

    coin: str
    szi: float
    entry_px: float | None
    leverage_type: LeverageType
    leverage: int
    margin_used_usd: float
    position_value_usd: float
    unrealized_pnl_usd: float
    return_on_equity: float | None = None
    liquidation_px: float | None = None
    max_leverage: int | None = None
    cum_funding: CumFunding | None = None


@dataclass(frozen=True, slots=True)
class UserState:
    margin_summary: MarginSummary
    cross_margin_summary: MarginSummary | None
    withdrawable_usd: float
    positions: tuple[Position, ...]
    cross_maintenance_margin_used_usd: float | None = None
    time_ms: int | None = None

    def position(self, coin: str) -> Position | None:
        """Return the open position in `coin`, or None when flat."""
        for pos in self.positions:
            if pos.coin == coin and pos.szi != 0:
                return pos
        return None


def _margin_summary(value: Any, ctx: _Ctx) -> MarginSummary:
    obj = _obj(value, ctx)
    return MarginSummary(
        account_value_usd=_num(obj, "accountValue", ctx),
        total_margin_used_usd=_num(obj, "totalMarginUsed", ctx, sign="nonneg"),
        total_ntl_pos_usd=_num(obj, "totalNtlPos", ctx, sign="nonneg"),
        total_raw_usd=_num(obj, "totalRawUsd", ctx),
    )


def _position(item: Any, ctx: _Ctx) -> Position:
    pctx = ctx.at("position")
    obj = _obj(_get(_obj(item, ctx), "position", ctx), pctx)
    lctx = pctx.at("leverage")
    lev = _obj(_get(obj, "leverage", pctx), lctx)
    cum = None
    if obj.get("cumFunding") is not None:
        cctx = pctx.at("cumFunding")
        raw = _obj(obj["cumFunding"], cctx)
        cum = CumFunding(
            all_time_usd=_num(raw, "allTime", cctx),
            since_open_usd=_num(raw, "sinceOpen", cctx),
            since_change_usd=_num(raw, "sinceChange", cctx),
        )
    return Position(
        coin=_str(obj, "coin", pctx),
        szi=_num(obj, "szi", pctx),
        entry_px=_opt_num(obj, "entryPx", pctx, sign="nonneg"),
        leverage_type=_enum(LeverageType, lev, "type", lctx),
        leverage=_int(lev, "value", lctx),
        margin_used_usd=_num(obj, "marginUsed", pctx, sign="nonneg"),
        position_value_usd=_num(obj, "positionValue", pctx, sign="nonneg"),
        unrealized_pnl_usd=_num(obj, "unrealizedPnl", pctx),
        return_on_equity=_opt_num(obj, "returnOnEquity", pctx),
        liquidation_px=_opt_num(obj, "liquidationPx", pctx, sign="nonneg"),
        max_leverage=_opt_int(obj, "maxLeverage", pctx),
        cum_funding=cum,
    )


def parse_user_state(body: Any, request: str = "clearinghouseState") -> UserState:
    """Parse `clearinghouseState` (margin summaries, withdrawable, positions)."""
    ctx = _Ctx(request)
    obj = _obj(body, ctx)
    cross = None
    if obj.get("crossMarginSummary") is not None:
        cross = _margin_summary(obj["crossMarginSummary"], ctx.at("crossMarginSummary"))
    return UserState(
        margin_summary=_margin_summary(_get(obj, "marginSummary", ctx), ctx.at("marginSummary")),
        cross_margin_summary=cross,
        withdrawable_usd=_num(obj, "withdrawable", ctx, sign="nonneg"),
        positions=_items(_get(obj, "assetPositions", ctx), ctx.at("assetPositions"), _position),
        cross_maintenance_margin_used_usd=_opt_num(obj, "crossMaintenanceMarginUsed", ctx, sign="nonneg"),
        time_ms=_opt_int(obj, "time", ctx),
    )


# --- orders -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """A resting order (`openOrders`); `sz` is the remaining size."""

    coin: str
    side: VenueSide
    limit_px: float
    sz: float
    oid: int
    timestamp_ms: int
    orig_sz: float | None = None
    cloid: str | None = None
    reduce_only: bool | None = None


@dataclass(frozen=True, slots=True)
class FrontendOpenOrder:
    """A resting order with the UI extras (`frontendOpenOrders`), including trigger children."""

    coin: str
    side: VenueSide
    limit_px: float
    sz: float
    oid: int
    timestamp_ms: int
    orig_sz: float
    reduce_only: bool
    order_type: str
    tif: str | None
    is_trigger: bool
    trigger_px: float | None
    trigger_condition: str | None
    is_position_tpsl: bool
    children: tuple[FrontendOpenOrder, ...] = ()
    cloid: str | None = None


def _open_order(item: Any, ctx: _Ctx) -> OpenOrder:
    obj = _obj(item, ctx)
    return OpenOrder(
        coin=_str(obj, "coin", ctx),
        side=_enum(VenueSide, obj, "side", ctx),
        limit_px=_num(obj, "limitPx", ctx, sign="nonneg"),
        sz=_num(obj, "sz", ctx, sign="nonneg"),
        oid=_int(obj, "oid", ctx),
        timestamp_ms=_int(obj, "timestamp", ctx),
        orig_sz=_opt_num(obj, "origSz", ctx, sign="nonneg"),
        cloid=_opt_cloid(obj, "cloid", ctx),
        reduce_only=_opt_bool(obj, "reduceOnly", ctx, None),
    )


def _frontend_order(item: Any, ctx: _Ctx, depth: int = 0) -> FrontendOpenOrder:
    obj = _obj(item, ctx)
    if depth > 4:
        raise ctx.fail("children nested too deeply")
    children: tuple[FrontendOpenOrder, ...] = ()
    if obj.get("children") is not None:
        children = _items(
            obj["children"], ctx.at("children"), lambda c, cc: _frontend_order(c, cc, depth + 1)
        )
    return FrontendOpenOrder(
        coin=_str(obj, "coin", ctx),
        side=_enum(VenueSide, obj, "side", ctx),
        limit_px=_num(obj, "limitPx", ctx, sign="nonneg"),
        sz=_num(obj, "sz", ctx, sign="nonneg"),
        oid=_int(obj, "oid", ctx),
        timestamp_ms=_int(obj, "timestamp", ctx),
        orig_sz=_num(obj, "origSz", ctx, sign="nonneg"),
        reduce_only=_bool(obj, "reduceOnly", ctx),
        order_type=_str(obj, "orderType", ctx),
        tif=_opt_str(obj, "tif", ctx),
        is_trigger=_bool(obj, "isTrigger", ctx),
        trigger_px=_opt_num(obj, "triggerPx", ctx, sign="nonneg"),
        trigger_condition=_opt_str(obj, "triggerCondition", ctx),
        is_position_tpsl=bool(_opt_bool(obj, "isPositionTpsl", ctx, False)),
        children=children,
        cloid=_opt_cloid(obj, "cloid", ctx),
    )


def parse_open_orders(body: Any, request: str = "openOrders") -> tuple[OpenOrder, ...]:
    return _items(body, _Ctx(request), _open_order)


def parse_frontend_open_orders(
    body: Any, request: str = "frontendOpenOrders"
) -> tuple[FrontendOpenOrder, ...]:
    return _items(body, _Ctx(request), _frontend_order)


@dataclass(frozen=True, slots=True)
class OrderStatusInfo:
    """`orderStatus` answer. `order`/`status` are None when the venue says unknownOid."""

    order: OpenOrder | None
    status: VenueOrderStatus | None
    status_timestamp_ms: int | None

    @property
    def known(self) -> bool:
        return self.status is not None


def parse_order_status(body: Any, request: str = "orderStatus") -> OrderStatusInfo:
    """Parse `{"status":"order","order":{order, status, statusTimestamp}}` or `{"status":"unknownOid"}`."""
    ctx = _Ctx(request)
    obj = _obj(body, ctx)
    top = _str(obj, "status", ctx)
    if top == "unknownOid":
        return OrderStatusInfo(order=None, status=None, status_timestamp_ms=None)
    if top != "order":
        raise ctx.at("status").fail(f"unknown value {top[:40]!r}")
    update = _order_update(_get(obj, "order", ctx), ctx.at("order"))
    return OrderStatusInfo(
        order=update.order, status=update.status, status_timestamp_ms=update.status_timestamp_ms
    )


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """One order state change (WS `orderUpdates` element; also the inner part of `orderStatus`)."""

    order: OpenOrder
    status: VenueOrderStatus
    status_timestamp_ms: int


def _order_update(item: Any, ctx: _Ctx) -> OrderUpdate:
    obj = _obj(item, ctx)
    return OrderUpdate(
        order=_open_order(_get(obj, "order", ctx), ctx.at("order")),
        status=_enum(VenueOrderStatus, obj, "status", ctx),
        status_timestamp_ms=_int(obj, "statusTimestamp", ctx),
    )


def parse_order_updates(body: Any, request: str = "orderUpdates") -> tuple[OrderUpdate, ...]:
    """Parse the WS `orderUpdates` data: a list of `{order, status, statusTimestamp}`."""
    return _items(body, _Ctx(request), _order_update)


# --- fills and funding --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution. Natural key: (hash, tid); `tid`, `fee_token` and `cloid` are optional
    because older venue answers (and the recorded fixtures) lack them. `dir` stays a string
    ("Open Long", "Close Short", "Long > Short", ...): the venue's set is open-ended and
    classification belongs to the OMS."""

    coin: str
    px: float
    sz: float
    side: VenueSide
    time_ms: int
    start_position: float
    dir: str
    closed_pnl: float
    hash: str
    oid: int
    crossed: bool
    fee: float
    tid: int | None = None
    fee_token: str | None = None
    cloid: str | None = None
    builder_fee: float | None = None


def _fill(item: Any, ctx: _Ctx) -> Fill:
    obj = _obj(item, ctx)
    return Fill(
        coin=_str(obj, "coin", ctx),
        px=_num(obj, "px", ctx, sign="pos"),
        sz=_num(obj, "sz", ctx, sign="pos"),
        side=_enum(VenueSide, obj, "side", ctx),
        time_ms=_int(obj, "time", ctx),
        start_position=_num(obj, "startPosition", ctx),
        dir=_str(obj, "dir", ctx),
        closed_pnl=_num(obj, "closedPnl", ctx),
        hash=_str(obj, "hash", ctx),
        oid=_int(obj, "oid", ctx),
        crossed=_bool(obj, "crossed", ctx),
        fee=_num(obj, "fee", ctx),
        tid=_opt_int(obj, "tid", ctx),
        fee_token=_opt_str(obj, "feeToken", ctx),
        cloid=_opt_cloid(obj, "cloid", ctx),
        builder_fee=_opt_num(obj, "builderFee", ctx),
    )


def parse_fill(body: Any, request: str = "fill") -> Fill:
    """Parse one fill object (REST list item or WS `userFills` element)."""
    return _fill(body, _Ctx(request))


def parse_user_fills(body: Any, request: str = "userFills") -> tuple[Fill, ...]:
    return _items(body, _Ctx(request), _fill)


@dataclass(frozen=True, slots=True)
class UserFundingEntry:
    """One funding payment to/from the account; `usdc` is the signed realised USD delta."""

    time_ms: int
    coin: str
    usdc: float
    szi: float
    funding_rate: float
    hash: str | None = None
    n_samples: int | None = None


def _user_funding(item: Any, ctx: _Ctx) -> UserFundingEntry:
    obj = _obj(item, ctx)
    delta, dctx = obj, ctx
    if "delta" in obj:  # REST shape {time, hash, delta:{type:"funding", ...}}; WS shape is flat
        dctx = ctx.at("delta")
        delta = _obj(obj["delta"], dctx)
        kind = _str(delta, "type", dctx)
        if kind != "funding":
            raise dctx.at("type").fail(f"unknown value {kind[:40]!r}")
    return UserFundingEntry(
        time_ms=_int(obj, "time", ctx),
        coin=_str(delta, "coin", dctx),
        usdc=_num(delta, "usdc", dctx),
        szi=_num(delta, "szi", dctx),
        funding_rate=_num(delta, "fundingRate", dctx),
        hash=_opt_str(obj, "hash", ctx),
        n_samples=_opt_int(delta, "nSamples", dctx),
    )


def parse_user_funding(body: Any, request: str = "userFunding") -> tuple[UserFundingEntry, ...]:
    return _items(body, _Ctx(request), _user_funding)


# --- /exchange replies --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestingStatus:
    oid: int
    cloid: str | None = None


@dataclass(frozen=True, slots=True)
class FilledStatus:
    oid: int
    total_sz: float
    avg_px: float
    cloid: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorStatus:
    """A per-item rejection inside an ok reply (e.g. the $10 minimum); the message is the venue's."""

    message: str


@dataclass(frozen=True, slots=True)
class TextStatus:
    """A bare string status: "success" for cancels, "waitingForFill"/"waitingForTrigger" for triggers."""

    text: str


ActionStatus = RestingStatus | FilledStatus | ErrorStatus | TextStatus


@dataclass(frozen=True, slots=True)
class ExchangeAck:
    """`{"status":"ok","response":{"type":..., "data":{"statuses":[...]}}}`: one status per item."""

    response_type: str
    statuses: tuple[ActionStatus, ...] = ()

    @property
    def all_ok(self) -> bool:
        return not any(isinstance(s, ErrorStatus) for s in self.statuses)


@dataclass(frozen=True, slots=True)
class ExchangeErr:
    """`{"status":"err","response":"<message>"}`: the whole request was refused."""

    message: str


def _action_status(item: Any, ctx: _Ctx) -> ActionStatus:
    if isinstance(item, str):
        return TextStatus(item)
    obj = _obj(item, ctx)
    if "error" in obj:
        return ErrorStatus(_str(obj, "error", ctx, nonempty=False))
    if "resting" in obj:
        rctx = ctx.at("resting")
        r = _obj(obj["resting"], rctx)
        return RestingStatus(oid=_int(r, "oid", rctx), cloid=_opt_cloid(r, "cloid", rctx))
    if "filled" in obj:
        fctx = ctx.at("filled")
        f = _obj(obj["filled"], fctx)
        return FilledStatus(
            oid=_int(f, "oid", fctx),
            total_sz=_num(f, "totalSz", fctx, sign="nonneg"),
            avg_px=_num(f, "avgPx", fctx, sign="nonneg"),
            cloid=_opt_cloid(f, "cloid", fctx),
        )
    raise ctx.fail(f"unknown status keys {sorted(obj)[:5]}")


def parse_exchange_reply(body: Any, request: str = "exchange") -> ExchangeAck | ExchangeErr:
    """Parse a `POST /exchange` JSON reply into an ack (with statuses) or a whole-request error."""
    ctx = _Ctx(request)
    obj = _obj(body, ctx)
    status = _str(obj, "status", ctx)
    if status == "err":
        response = obj.get("response")
        return ExchangeErr(response if isinstance(response, str) else str(response)[:500])
    if status != "ok":
        raise ctx.at("status").fail(f"unknown value {status[:40]!r}")
    rctx = ctx.at("response")
    response = _obj(_get(obj, "response", ctx), rctx)
    rtype = _str(response, "type", rctx)
    statuses: tuple[ActionStatus, ...] = ()
    if response.get("data") is not None:
        dctx = rctx.at("data")
        data = _obj(response["data"], dctx)
        if "statuses" in data:
            statuses = _items(data["statuses"], dctx.at("statuses"), _action_status)
    return ExchangeAck(response_type=rtype, statuses=statuses)
