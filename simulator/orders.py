"""Order records of the simulated venue and their wire views (openOrders, frontendOpenOrders,
orderStatus, orderUpdates), plus the parser that turns one order wire {"a","b","p","s","r","t","c"}
into a typed request or a rejection kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from simulator import venue_vocab as vt
from simulator.matching import parse_wire_decimal, price_is_valid, size_is_valid, wire

CLOID_RE = re.compile(r"^0x[0-9a-fA-F]{32}$")


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
        body: dict[str, Any] = {
            "children": [],
            "coin": self.coin,
            "isPositionTpsl": False,
            "isTrigger": False,
            "limitPx": wire(self.limit_px),
            "oid": self.oid,
            "orderType": "Limit",
            "origSz": wire(self.orig_sz, self.sz_decimals),
            "reduceOnly": self.reduce_only,
            "side": self.side,
            "sz": wire(self.sz, self.sz_decimals),
            "tif": str(self.tif),
            "timestamp": self.timestamp,
            "triggerCondition": "N/A",
            "triggerPx": "0.0",
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


def _tif(order_type: Any) -> vt.Tif | None:
    if not isinstance(order_type, dict) or set(order_type) != {"limit"}:
        return None
    limit = order_type["limit"]
    if not isinstance(limit, dict):
        return None
    try:
        return vt.Tif(limit.get("tif"))
    except ValueError:
        return None


def parse_order_wire(raw: Any, coins: list[str], sz_decimals_of: dict[str, int]) -> OrderRequest:
    """Validate one order wire; raises OrderRejected (precision, type, asset) or ValueError (shape)."""
    if not isinstance(raw, dict):
        raise ValueError("order wire is not an object")
    asset, is_buy, reduce_only = raw.get("a"), raw.get("b"), raw.get("r")
    if not isinstance(asset, int) or isinstance(asset, bool):
        raise ValueError("order wire field 'a' must be an integer")
    if not isinstance(is_buy, bool) or not isinstance(reduce_only, bool):
        raise ValueError("order wire fields 'b' and 'r' must be booleans")
    if not 0 <= asset < len(coins):
        raise OrderRejected(vt.RejectKind.UNKNOWN_ASSET, asset)
    tif = _tif(raw.get("t"))
    if tif is None:
        raise OrderRejected(vt.RejectKind.BAD_ORDER_TYPE, asset)
    cloid = raw.get("c")
    if cloid is not None and (not isinstance(cloid, str) or not CLOID_RE.match(cloid)):
        raise ValueError("order wire field 'c' must be 0x + 32 hex characters")
    coin = coins[asset]
    szd = sz_decimals_of[coin]
    px = parse_wire_decimal(raw.get("p"))
    sz = parse_wire_decimal(raw.get("s"))
    if px is None or px <= 0:
        raise OrderRejected(vt.RejectKind.INVALID_PRICE, asset)
    if sz is None or not size_is_valid(sz, szd):
        raise OrderRejected(vt.RejectKind.INVALID_SIZE, asset)
    if not price_is_valid(px, szd):
        raise OrderRejected(vt.RejectKind.TICK, asset)
    return OrderRequest(
        asset=asset,
        coin=coin,
        is_buy=is_buy,
        px=float(px),
        sz=float(sz),
        reduce_only=reduce_only,
        tif=tif,
        cloid=cloid.lower() if cloid is not None else None,
    )
