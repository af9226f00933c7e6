"""Order records of the simulated venue and their wire views (openOrders, frontendOpenOrders,
orderStatus, orderUpdates), plus the parser that turns one order wire {"a","b","p","s","r","t","c"}
into a typed request or a rejection kind. `t` is {"limit": {"tif"}} or, for a stop-loss /
take-profit, {"trigger": {"isMarket", "triggerPx", "tpsl"}}.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulator import venue_vocab as vt
from simulator.matching import parse_wire_decimal, price_is_valid, size_is_valid, wire

CLOID_RE = re.compile(r"^0x[0-9a-fA-F]{32}$")


@dataclass(frozen=True, slots=True)
class Trigger:
    """The trigger of a stop-loss / take-profit order: it fires when the price crosses `px`."""

    is_market: bool
    px: float
    tpsl: vt.Tpsl

    def fires_above(self, is_buy: bool) -> bool:
        """True if it fires when the price rises to `px` (a buy stop, a sell take-profit)."""
        return (self.tpsl is vt.Tpsl.SL) == is_buy

    def fires_at(self, is_buy: bool, price: float) -> bool:
        return price >= self.px if self.fires_above(is_buy) else price <= self.px

    def order_type(self) -> str:
        kind = "Take Profit" if self.tpsl is vt.Tpsl.TP else "Stop"
        return f"{kind} {'Market' if self.is_market else 'Limit'}"

    def condition(self, is_buy: bool) -> str:
        return f"Price {'above' if self.fires_above(is_buy) else 'below'} {wire(self.px)}"


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One parsed and precision-checked order wire."""

    asset: int
    coin: str
    is_buy: bool
    px: float
    sz: float
    reduce_only: bool
    tif: vt.Tif
    cloid: str | None
    trigger: Trigger | None = None


@dataclass(slots=True)
class Order:
    """An order the venue accepted or rejected; `sz` is what remains unfilled."""

    oid: int
    user: str
    coin: str
    asset: int
    is_buy: bool
    limit_px: float
    orig_sz: float
    sz: float
    tif: vt.Tif
    reduce_only: bool
    cloid: str | None
    timestamp: int
    sz_decimals: int
    status: vt.OrderStatus = vt.OrderStatus.OPEN
    status_ts: int = 0
    trigger: Trigger | None = None
    triggered: bool = False
    parent_oid: int | None = None     # normalTpsl child: live once this order has filled
    position_tpsl: bool = False       # positionTpsl: sized to the position when it fires

    @property
    def waiting_trigger(self) -> bool:
        """A trigger order that has not fired yet (it neither rests in the book nor needs margin)."""
        return self.trigger is not None and not self.triggered

    @property
    def side(self) -> str:
        return "B" if self.is_buy else "A"

    def open_view(self) -> dict[str, Any]:
        """Entry of the openOrders response."""
        body: dict[str, Any] = {
            "coin": self.coin,
            "side": self.side,
            "limitPx": wire(self.limit_px),
            "sz": wire(self.sz, self.sz_decimals),
            "oid": self.oid,
            "timestamp": self.timestamp,
            "origSz": wire(self.orig_sz, self.sz_decimals),
            "reduceOnly": self.reduce_only,
        }
        if self.cloid is not None:
            body["cloid"] = self.cloid
        return body

    def frontend_view(self) -> dict[str, Any]:
        """Entry of frontendOpenOrders, and the inner order of orderStatus."""
        trig = self.trigger
        body: dict[str, Any] = {
            "children": [],
            "coin": self.coin,
            "isPositionTpsl": self.position_tpsl,
            "isTrigger": trig is not None,
            "limitPx": wire(self.limit_px),
            "oid": self.oid,
            "orderType": "Limit" if trig is None else trig.order_type(),
            "origSz": wire(self.orig_sz, self.sz_decimals),
            "reduceOnly": self.reduce_only,
            "side": self.side,
            "sz": wire(self.sz, self.sz_decimals),
            "tif": str(self.tif) if trig is None else None,
            "timestamp": self.timestamp,
            "triggerCondition": "N/A" if trig is None else trig.condition(self.is_buy),
            "triggerPx": "0.0" if trig is None else wire(trig.px),
        }
        if self.cloid is not None:
            body["cloid"] = self.cloid
        return body

    def update_view(self) -> dict[str, Any]:
        """Element of an orderUpdates WS message."""
        order: dict[str, Any] = {
            "coin": self.coin,
            "side": self.side,
            "limitPx": wire(self.limit_px),
            "sz": wire(self.sz, self.sz_decimals),
            "oid": self.oid,
            "timestamp": self.timestamp,
            "origSz": wire(self.orig_sz, self.sz_decimals),
        }
        if self.cloid is not None:
            order["cloid"] = self.cloid
        return {"order": order, "status": str(self.status), "statusTimestamp": self.status_ts}

    def status_view(self) -> dict[str, Any]:
        """orderStatus response for this order."""
        return {
            "status": "order",
            "order": {
                "order": self.frontend_view(),
                "status": str(self.status),
                "statusTimestamp": self.status_ts,
            },
        }


class OrderRejected(Exception):
    """An order wire that cannot be accepted; carries the kind so the caller can record the status."""

    def __init__(self, kind: vt.RejectKind, asset: int) -> None:
        super().__init__(kind.value)
        self.kind = kind
        self.asset = asset


def _order_type(order_type: Any) -> tuple[vt.Tif, dict[str, Any] | None] | None:
    """(tif, raw trigger) of a wire `t`; None if it is neither a limit nor a trigger type."""
    if not isinstance(order_type, dict) or len(order_type) != 1:
        return None
    if "limit" in order_type:
        limit = order_type["limit"]
        try:
            return (vt.Tif(limit.get("tif")), None) if isinstance(limit, dict) else None
        except ValueError:
            return None
    raw = order_type.get("trigger")
    if not isinstance(raw, dict) or not isinstance(raw.get("isMarket"), bool):
        return None
    try:
        vt.Tpsl(raw.get("tpsl"))
    except ValueError:
        return None
    # once fired, a market trigger trades like an IOC, a limit trigger like a GTC at its limit price
    return (vt.Tif.IOC if raw["isMarket"] else vt.Tif.GTC), raw


def _price(text: Any, asset: int, szd: int) -> float:
    px = parse_wire_decimal(text)
    if px is None or px <= 0 or not price_is_valid(px, szd):
        raise OrderRejected(vt.RejectKind.INVALID_PRICE, asset)
    return float(px)


def parse_order_wire(
    raw: Any, coin_of: Callable[[int], str | None], sz_decimals_of: dict[str, int]
) -> OrderRequest:
    """Validate one order wire; raises OrderRejected (precision, type, asset) or ValueError (shape)."""
    if not isinstance(raw, dict):
        raise ValueError("order wire is not an object")
    asset, is_buy, reduce_only = raw.get("a"), raw.get("b"), raw.get("r")
    if not isinstance(asset, int) or isinstance(asset, bool):
        raise ValueError("order wire field 'a' must be an integer")
    if not isinstance(is_buy, bool) or not isinstance(reduce_only, bool):
        raise ValueError("order wire fields 'b' and 'r' must be booleans")
    coin = coin_of(asset)
    if coin is None:
        raise OrderRejected(vt.RejectKind.UNKNOWN_ASSET, asset)
    kind = _order_type(raw.get("t"))
    if kind is None:
        raise OrderRejected(vt.RejectKind.BAD_ORDER_TYPE, asset)
    tif, raw_trigger = kind
    cloid = raw.get("c")
    if cloid is not None and (not isinstance(cloid, str) or not CLOID_RE.match(cloid)):
        raise ValueError("order wire field 'c' must be 0x + 32 hex characters")
    szd = sz_decimals_of[coin]
    px = _price(raw.get("p"), asset, szd)
    trigger = None
    if raw_trigger is not None:
        trigger_px = _price(raw_trigger.get("triggerPx"), asset, szd)
        trigger = Trigger(is_market=raw_trigger["isMarket"], px=trigger_px, tpsl=vt.Tpsl(raw_trigger["tpsl"]))
    sz = parse_wire_decimal(raw.get("s"))
    if sz is None or not size_is_valid(sz, szd):
        raise OrderRejected(vt.RejectKind.INVALID_SIZE, asset)
    return OrderRequest(
        asset=asset,
        coin=coin,
        is_buy=is_buy,
        px=px,
        sz=float(sz),
        reduce_only=reduce_only,
        tif=tif,
        cloid=cloid.lower() if cloid is not None else None,
        trigger=trigger,
    )
