"""Per-user records of the simulated venue: orders (open and finished), cloids, fills and fundings,
and the user-specific /info answers built from them (openOrders, frontendOpenOrders, userFills,
userFillsByTime, orderStatus, userFunding). clearinghouseState is built in simulator.accounts.
"""

from __future__ import annotations

from typing import Any, ClassVar

from simulator import venue_vocab as vt
from simulator.orders import Order

MAX_FILLS_RETURNED = 2000
MAX_HISTORICAL_ORDERS = 2000
RECENT_TRADES = 20  # [sim] how many trades the venue's recentTrades returns is not documented
FUNDING_HASH = "0x" + "0" * 64


def _int_or(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


class UserLedger:
    """Orders, fills and funding payments, indexed the ways the venue's queries need."""

    INFO_TYPES: ClassVar[frozenset[str]] = frozenset(
        {
            "clearinghouseState",
            "spotClearinghouseState",
            "openOrders",
            "frontendOpenOrders",
            "userFills",
            "userFillsByTime",
            "orderStatus",
            "userFunding",
            "historicalOrders",
        }
    )

    def __init__(self) -> None:
        self._orders: dict[int, Order] = {}
        self._open: dict[str, dict[int, Order]] = {}
        self._cloid_taken: set[tuple[str, str]] = set()
        self._by_cloid: dict[tuple[str, str], Order] = {}
        self._fills: dict[str, list[dict[str, Any]]] = {}
        self._fundings: dict[str, list[dict[str, Any]]] = {}

    # ----------------------------------------------------------------- orders

    def cloid_taken(self, user: str, cloid: str) -> bool:
        """True if the user already placed an accepted order with this cloid."""
        return (user, cloid) in self._cloid_taken

    def add(self, order: Order) -> None:
        """Record a newly accepted order as open; its cloid becomes taken."""
        self._orders[order.oid] = order
        self._open.setdefault(order.user, {})[order.oid] = order
        if order.cloid is not None:
            self._cloid_taken.add((order.user, order.cloid))
            self._by_cloid[(order.user, order.cloid)] = order

    def close(self, order: Order, *, record_cloid: bool) -> None:
        """Move an order out of the open set (its status already set); keep it for orderStatus."""
        self._orders[order.oid] = order
        self._open.get(order.user, {}).pop(order.oid, None)
        if order.cloid is not None:
            key = (order.user, order.cloid)
            if record_cloid:
                self._cloid_taken.add(key)
                self._by_cloid[key] = order
            else:
                self._by_cloid.setdefault(key, order)

    def order(self, oid: int) -> Order | None:
        """Any order the venue accepted or rejected, by oid."""
        return self._orders.get(oid)

    def all_orders(self, user: str | None = None) -> list[Order]:
        """Every order the venue accepted or rejected (of `user`, or of everyone), by oid."""
        mine = (o for o in self._orders.values() if user is None or o.user == user)
        return sorted(mine, key=lambda o: o.oid)

    def release_cloid(self, user: str, cloid: str) -> None:
        """Free a cloid for reuse (a modify moves it from the old order to the new one)."""
        self._cloid_taken.discard((user, cloid))

    def open_orders(self, user: str) -> list[Order]:
        """The user's open orders, oldest first."""
        return list(self._open.get(user, {}).values())

    def all_open_orders(self) -> list[Order]:
        """Every open order of every user, by ascending oid (deterministic processing order)."""
        return sorted((o for book in self._open.values() for o in book.values()), key=lambda o: o.oid)

    def open_by_oid(self, user: str, oid: Any) -> Order | None:
        if not isinstance(oid, int) or isinstance(oid, bool):
            return None
        return self._open.get(user, {}).get(oid)

    def open_by_cloid(self, user: str, cloid: str) -> Order | None:
        order = self._by_cloid.get((user, cloid))
        if order is None or order.status is not vt.OrderStatus.OPEN:
            return None
        return order

    # ----------------------------------------------------------------- fills and funding

    def add_fill(self, user: str, fill: dict[str, Any]) -> None:
        self._fills.setdefault(user, []).append(fill)

    def add_funding(self, user: str, entry: dict[str, Any]) -> None:
        self._fundings.setdefault(user, []).append(entry)

    def recent_trades(self, coin: str) -> list[dict[str, Any]]:
        """``recentTrades`` of a coin: the simulator's own users' executions (the replayed market has
        no public tape), newest first, as trades {coin, side, px, sz, time, hash, tid, users}."""
        fills = [(user, f) for user, fs in self._fills.items() for f in fs if f["coin"] == coin]
        fills.sort(key=lambda uf: uf[1]["tid"], reverse=True)
        out = []
        for user, f in fills[:RECENT_TRADES]:
            users = [user, "0x" + "0" * 40] if f["side"] == "B" else ["0x" + "0" * 40, user]
            trade = {k: f[k] for k in ("coin", "side", "px", "sz", "time", "hash", "tid")}
            out.append(trade | {"users": users})
        return out

    def fills(self, user: str) -> list[dict[str, Any]]:
        """All of the user's fills, oldest first."""
        return list(self._fills.get(user, []))

    # ----------------------------------------------------------------- /info

    def info(self, kind: str, user: str, body: dict[str, Any]) -> Any:
        """Answer one user /info request other than clearinghouseState."""
        if kind == "openOrders":
            return [o.open_view() for o in reversed(self.open_orders(user))]
        if kind == "frontendOpenOrders":
            return [o.frontend_view() for o in reversed(self.open_orders(user))]
        if kind == "userFills":
            return list(reversed(self._fills.get(user, [])))[:MAX_FILLS_RETURNED]
        if kind == "userFillsByTime":
            start = _int_or(body.get("startTime"), 0)
            end = _int_or(body.get("endTime"), 2**63)
            hits = [f for f in self._fills.get(user, []) if start <= f["time"] <= end]
            return list(reversed(hits))[:MAX_FILLS_RETURNED]
        if kind == "historicalOrders":
            mine = [o for o in self._orders.values() if o.user == user]
            mine.sort(key=lambda o: (o.status_ts, o.oid), reverse=True)
            return [o.status_view()["order"] for o in mine[:MAX_HISTORICAL_ORDERS]]
        if kind == "orderStatus":
            return self._order_status(user, body.get("oid"))
        if kind == "userFunding":
            start = _int_or(body.get("startTime"), 0)
            end = _int_or(body.get("endTime"), 2**63)
            return [
                {
                    "time": e["time"],
                    "hash": FUNDING_HASH,
                    "delta": {
                        "type": "funding",
                        **{k: e[k] for k in ("coin", "usdc", "szi", "fundingRate")},
                        "nSamples": None,
                    },
                }
                for e in self._fundings.get(user, [])
                if start <= e["time"] <= end
            ]
        raise ValueError(f"not a user info type: {kind}")

    def _order_status(self, user: str, ident: Any) -> dict[str, Any]:
        order: Order | None = None
        if isinstance(ident, int) and not isinstance(ident, bool):
            order = self._orders.get(ident)
        elif isinstance(ident, str):
            order = self._by_cloid.get((user, ident.lower()))
        if order is None or order.user != user:
            return {"status": "unknownOid"}
        return order.status_view()
