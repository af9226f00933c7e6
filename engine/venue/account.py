"""Account-side Hyperliquid records and their parsers: `clearinghouseState`, open orders, order
status and updates, fills and funding payments. Re-exported by `engine.venue.types` (import from there).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.enums import LeverageType, VenueOrderStatus, VenueSide
from engine.venue.fields import (
    _bool,
    _Ctx,
    _enum,
    _field,
    _int,
    _items,
    _list_field,
    _num,
    _obj,
    _opt_bool,
    _opt_cloid,
    _opt_field,
    _opt_int,
    _opt_list_field,
    _opt_num,
    _opt_str,
    _str,
    _sub,
    _unknown,
)

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
    # per perp dex states when this one spans several (engine.venue.dexes.merge_user_states), by dex name
    dex_states: tuple[tuple[str, UserState], ...] = ()

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


def _cum_funding(value: Any, ctx: _Ctx) -> CumFunding:
    obj = _obj(value, ctx)
    return CumFunding(
        all_time_usd=_num(obj, "allTime", ctx),
        since_open_usd=_num(obj, "sinceOpen", ctx),
        since_change_usd=_num(obj, "sinceChange", ctx),
    )


def _position(item: Any, ctx: _Ctx) -> Position:
    obj, pctx = _sub(_obj(item, ctx), "position", ctx)
    lev, lctx = _sub(obj, "leverage", pctx)
    cum = _opt_field(obj, "cumFunding", pctx, _cum_funding)
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
    cross = _opt_field(obj, "crossMarginSummary", ctx, _margin_summary)
    return UserState(
        margin_summary=_field(obj, "marginSummary", ctx, _margin_summary),
        cross_margin_summary=cross,
        withdrawable_usd=_num(obj, "withdrawable", ctx, sign="nonneg"),
        positions=_list_field(obj, "assetPositions", ctx, _position),
        cross_maintenance_margin_used_usd=_opt_num(obj, "crossMaintenanceMarginUsed", ctx, sign="nonneg"),
        time_ms=_opt_int(obj, "time", ctx),
    )


# --- orders -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _RestingOrder:
    """The fields every resting-order shape starts with; `sz` is the remaining size."""

    coin: str
    side: VenueSide
    limit_px: float
    sz: float
    oid: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class OpenOrder(_RestingOrder):
    """A resting order (`openOrders`); `sz` is the remaining size."""

    orig_sz: float | None = None
    cloid: str | None = None
    reduce_only: bool | None = None


@dataclass(frozen=True, slots=True)
class FrontendOpenOrder(_RestingOrder):
    """A resting order with the UI extras (`frontendOpenOrders`), including trigger children."""

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


def _order_fields(obj: Mapping[str, Any], ctx: _Ctx) -> dict[str, Any]:
    """The fields every resting-order shape has (`openOrders` and `frontendOpenOrders`)."""
    return {
        "coin": _str(obj, "coin", ctx),
        "side": _enum(VenueSide, obj, "side", ctx),
        "limit_px": _num(obj, "limitPx", ctx, sign="nonneg"),
        "sz": _num(obj, "sz", ctx, sign="nonneg"),
        "oid": _int(obj, "oid", ctx),
        "timestamp_ms": _int(obj, "timestamp", ctx),
    }


def _open_order(item: Any, ctx: _Ctx) -> OpenOrder:
    obj = _obj(item, ctx)
    return OpenOrder(
        **_order_fields(obj, ctx),
        orig_sz=_opt_num(obj, "origSz", ctx, sign="nonneg"),
        cloid=_opt_cloid(obj, "cloid", ctx),
        reduce_only=_opt_bool(obj, "reduceOnly", ctx, None),
    )


def _frontend_order(item: Any, ctx: _Ctx, depth: int = 0) -> FrontendOpenOrder:
    obj = _obj(item, ctx)
    if depth > 4:
        raise ctx.fail("children nested too deeply")
    children = _opt_list_field(obj, "children", ctx, lambda c, cc: _frontend_order(c, cc, depth + 1))
    return FrontendOpenOrder(
        **_order_fields(obj, ctx),
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
        raise _unknown(ctx.at("status"), top)
    update = _field(obj, "order", ctx, _order_update)
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
        order=_field(obj, "order", ctx, _open_order),
        status=_enum(VenueOrderStatus, obj, "status", ctx),
        status_timestamp_ms=_int(obj, "statusTimestamp", ctx),
    )


def parse_order_updates(body: Any, request: str = "orderUpdates") -> tuple[OrderUpdate, ...]:
    """Parse the WS `orderUpdates` data: a list of `{order, status, statusTimestamp}`."""
    return _items(body, _Ctx(request), _order_update)


# --- fills and funding --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Liquidation:
    """The `liquidation` object of a fill the venue made while liquidating an account."""

    liquidated_user: str | None
    mark_px: float
    method: str  # "market" (against the book) or "backstop" (handed to the liquidator vault)


def _liquidation(value: Any, ctx: _Ctx) -> Liquidation:
    obj = _obj(value, ctx)
    user = _opt_str(obj, "liquidatedUser", ctx)
    return Liquidation(
        liquidated_user=None if user is None else user.lower(),
        mark_px=_num(obj, "markPx", ctx, sign="pos"),
        method=_str(obj, "method", ctx),
    )


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution. Natural key: (hash, tid); `tid`, `fee_token` and `cloid` are optional
    because older venue answers (and the recorded fixtures) lack them. `dir` stays a string
    ("Open Long", "Close Short", "Long > Short", ...): the venue's set is open-ended and
    classification belongs to the OMS. `liquidation` is set on fills of a venue liquidation."""

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
    liquidation: Liquidation | None = None


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
        liquidation=_opt_field(obj, "liquidation", ctx, _liquidation),
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
        delta, dctx = _sub(obj, "delta", ctx)
        kind = _str(delta, "type", dctx)
        if kind != "funding":
            raise _unknown(dctx.at("type"), kind)
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
