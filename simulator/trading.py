"""Order placement, matching and cancels of the simulated venue, behind the exchange core.

Owns the order life cycle once an action is authenticated: parsing a batch, the pre-trade checks in
the venue's order, taking liquidity from the market replay's book, resting, filling resting orders
on the mid path, cancels, and the fills / orderUpdates events. Oids and tids are assigned here in
arrival order, so the same inputs give the same ids and hashes. Not thread-safe by itself: the
exchange core calls it under its lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from eth_utils import keccak

from simulator import venue_vocab as vt
from simulator.accounts import Account, MarketPort, apply_fill, margin_summary
from simulator.matching import MIN_ORDER_VALUE_USD, resting_order_triggered, walk_book, wire, would_cross
from simulator.orders import Order, OrderRejected, OrderRequest, parse_order_wire
from simulator.user_ledger import UserLedger

log = logging.getLogger(__name__)

Emit = Callable[[vt.EventChannel, str, Any], None]
FIRST_OID = 1_000_001
FIRST_TID = 500_000_001
BOOK_DEPTH = 50


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Trading:
    """Orders and fills over shared accounts and ledger."""

    def __init__(
        self,
        market: MarketPort,
        accounts: dict[str, Account],
        ledger: UserLedger,
        emit: Emit,
        *,
        taker_fee_rate: float,
        maker_fee_rate: float,
    ) -> None:
        self._market = market
        self._accounts = accounts
        self._ledger = ledger
        self._emit = emit
        self._taker_fee = taker_fee_rate
        self._maker_fee = maker_fee_rate
        self._next_oid = FIRST_OID
        self._next_tid = FIRST_TID

    def finish(self, order: Order, status: vt.OrderStatus, now_ms: int) -> None:
        """End an open order with `status` (cancels of every kind); its cloid stays taken."""
        self._finish(order, status, now_ms, record_cloid=True)

    def orders_action(self, action: dict, user: str, now_ms: int) -> tuple[int, Any]:
        wires = action["orders"]
        if not isinstance(wires, list):
            raise ValueError("orders must be a list")
        coins = self._market.coins()
        szd = {c: self._market.sz_decimals(c) for c in coins}
        parsed: list[OrderRequest | OrderRejected] = []
        for raw in wires:  # shape errors (ValueError) refuse the whole batch before anything executes
            try:
                parsed.append(parse_order_wire(raw, coins, szd))
            except OrderRejected as e:
                parsed.append(e)
        statuses = [
            {"error": vt.order_error(p.kind, p.asset)}
            if isinstance(p, OrderRejected)
            else self._place_one(p, user, szd, now_ms)
            for p in parsed
        ]
        return 200, {"status": "ok", "response": {"type": "order", "data": {"statuses": statuses}}}

    def _place_one(self, req: OrderRequest, user: str, szd: dict[str, int], now_ms: int) -> dict:
        order = Order(
            oid=self._next_oid,
            user=user,
            coin=req.coin,
            asset=req.asset,
            is_buy=req.is_buy,
            limit_px=req.px,
            orig_sz=req.sz,
            sz=req.sz,
            tif=req.tif,
            reduce_only=req.reduce_only,
            cloid=req.cloid,
            timestamp=now_ms,
            sz_decimals=szd[req.coin],
            status_ts=now_ms,
        )
        self._next_oid += 1
        try:
            self._admit(req, order)
        except OrderRejected as e:
            bids, asks = self._market.book(req.coin, 1)
            bbo = f"{wire(bids[0][0]) if bids else 'None'}@{wire(asks[0][0]) if asks else 'None'}"
            self._finish(order, vt.REJECT_STATUS[e.kind], now_ms, record_cloid=False)
            log.debug("order rejected: user=%s coin=%s oid=%d reason=%s", user, req.coin, order.oid, e.kind)
            return {"error": vt.order_error(e.kind, e.asset, bbo)}
        return self._execute_new(order, now_ms)

    def _admit(self, req: OrderRequest, order: Order) -> None:
        """Run the pre-trade checks in the venue's order; clamps reduce-only size to the position."""
        account = self._accounts[order.user]
        if req.cloid is not None and self._ledger.cloid_taken(order.user, req.cloid):
            raise OrderRejected(vt.RejectKind.DUPLICATE_CLOID, req.asset)
        szi = account.szi(req.coin)
        if req.reduce_only:
            if szi == 0.0 or (szi > 0) == req.is_buy:
                raise OrderRejected(vt.RejectKind.REDUCE_ONLY, req.asset)
            order.sz = order.orig_sz = min(req.sz, abs(szi))
        elif req.px * req.sz < MIN_ORDER_VALUE_USD:
            raise OrderRejected(vt.RejectKind.MIN_NOTIONAL, req.asset)
        bids, asks = self._market.book(req.coin, 1)
        if req.tif is vt.Tif.ALO and would_cross(
            req.is_buy, req.px, bids[0][0] if bids else None, asks[0][0] if asks else None
        ):
            raise OrderRejected(vt.RejectKind.BAD_ALO_PX, req.asset)
        if not req.reduce_only and self._margin_shortfall(account, req.coin, req.is_buy, req.sz, req.px):
            raise OrderRejected(vt.RejectKind.MARGIN, req.asset)

    def _margin_shortfall(
        self,
        account: Account,
        coin: str,
        is_buy: bool,
        sz: float,
        px: float,
        *,
        resting_oid: int | None = None,
    ) -> bool:
        """True if the exposure added by trading `sz` needs more initial margin than is free.

        Free = account value − margin of positions − margin of resting orders (except `resting_oid`,
        the order being filled). Reducing a position needs no margin.
        """
        szi = account.szi(coin)
        signed = sz if is_buy else -sz
        added = max(0.0, abs(szi + signed) - abs(szi))
        if added == 0.0:
            return False
        lev = account.leverage_for(coin, self._market.max_leverage(coin)).value
        required = added * max(px, self._market.mid(coin)) / lev
        free = margin_summary(account, self._market).free_collateral - self._resting_margin(
            account, resting_oid
        )
        return required > free + 1e-9

    def _resting_margin(self, account: Account, skip_oid: int | None = None) -> float:
        total = 0.0
        for order in self._ledger.open_orders(account.address):
            if not order.reduce_only and order.oid != skip_oid:
                lev = account.leverage_for(order.coin, self._market.max_leverage(order.coin)).value
                total += order.sz * order.limit_px / lev
        return total

    def _execute_new(self, order: Order, now_ms: int) -> dict:
        """Take liquidity for a marketable order, then rest (Gtc/Alo) or cancel (Ioc) the remainder."""
        self._ledger.add(order)
        filled_sz = filled_value = 0.0
        if order.tif is not vt.Tif.ALO:
            bids, asks = self._market.book(order.coin, BOOK_DEPTH)
            levels = asks if order.is_buy else bids
            for piece in walk_book(levels, order.is_buy, order.limit_px, order.sz, order.sz_decimals):
                self._fill(order, piece.px, piece.sz, crossed=True, now_ms=now_ms)
                filled_sz += piece.sz
                filled_value += piece.px * piece.sz
        cloid = {"cloid": order.cloid} if order.cloid is not None else {}
        if order.tif is vt.Tif.IOC and filled_sz == 0.0:
            self._finish(order, vt.OrderStatus.IOC_CANCEL_REJECTED, now_ms, record_cloid=True)
            return {"error": vt.order_error(vt.RejectKind.IOC_CANCEL, order.asset)}
        if order.sz > 0 and order.tif is not vt.Tif.IOC:
            self._emit(vt.EventChannel.ORDER_UPDATES, order.user, [order.update_view()])
            return {"resting": {"oid": order.oid, **cloid}}
        if order.sz > 0:
            self._finish(order, vt.OrderStatus.CANCELED, now_ms, record_cloid=True)
        avg_px = filled_value / filled_sz
        return {
            "filled": {
                "totalSz": wire(filled_sz, order.sz_decimals),
                "avgPx": wire(avg_px),
                "oid": order.oid,
                **cloid,
            }
        }

    def _fill(self, order: Order, px: float, sz: float, *, crossed: bool, now_ms: int) -> None:
        """Book one execution of `sz` at `px` on `order`, record the fill and emit the WS events."""
        account = self._accounts[order.user]
        fee = px * sz * (self._taker_fee if crossed else self._maker_fee)
        effect = apply_fill(account, order.coin, order.is_buy, px, sz, fee, order.sz_decimals)
        account.volume_usd += px * sz
        tid = self._next_tid
        self._next_tid += 1
        digest = keccak(f"{order.user}:{order.oid}:{now_ms}".encode()).hex()
        fill: dict[str, Any] = {
            "coin": order.coin,
            "px": wire(px),
            "sz": wire(sz, order.sz_decimals),
            "side": order.side,
            "time": now_ms,
            "startPosition": wire(effect.start_position, order.sz_decimals),
            "dir": str(effect.direction),
            "closedPnl": wire(effect.closed_pnl, 6),
            "hash": "0x" + digest,
            "oid": order.oid,
            "crossed": crossed,
            "fee": wire(fee, 6),
            "tid": tid,
            "feeToken": "USDC",
        }
        if order.cloid is not None:
            fill["cloid"] = order.cloid
        self._ledger.add_fill(order.user, fill)
        self._emit(vt.EventChannel.USER_FILLS, order.user, {"user": order.user, "fills": [fill]})
        order.sz = round(order.sz - sz, order.sz_decimals)
        if order.sz <= 0:
            order.sz = 0.0
            self._finish(order, vt.OrderStatus.FILLED, now_ms, record_cloid=True)

    def _finish(self, order: Order, status: vt.OrderStatus, now_ms: int, *, record_cloid: bool) -> None:
        order.status = status
        order.status_ts = now_ms
        self._ledger.close(order, record_cloid=record_cloid)
        self._emit(vt.EventChannel.ORDER_UPDATES, order.user, [order.update_view()])


    def cancel_action(
        self, cancels: Any, user: str, now_ms: int, *, key_asset: str, key_id: str
    ) -> tuple[int, Any]:
        if not isinstance(cancels, list):
            raise ValueError("cancels must be a list")
        items = [(item[key_asset], item[key_id]) for item in cancels]
        if not all(_is_int(asset) for asset, _ in items):
            raise ValueError("cancel asset must be an integer")
        statuses: list[Any] = []
        for asset, ident in items:
            order = (
                self._ledger.open_by_oid(user, ident)
                if key_id == "o"
                else self._ledger.open_by_cloid(user, str(ident).lower())
            )
            if order is None or order.asset != asset:
                statuses.append({"error": vt.missing_order(asset)})
                continue
            self._finish(order, vt.OrderStatus.CANCELED, now_ms, record_cloid=True)
            statuses.append("success")
        return 200, {"status": "ok", "response": {"type": "cancel", "data": {"statuses": statuses}}}


    def fill_resting(self, now_ms: int) -> None:
        mids: dict[str, float] = {}
        for order in self._ledger.all_open_orders():
            if order.coin not in mids:
                mids[order.coin] = self._market.mid(order.coin)
            mid = mids[order.coin]
            if not resting_order_triggered(order.is_buy, order.limit_px, mid):
                continue
            sz = order.sz
            if order.reduce_only:
                szi = self._accounts[order.user].szi(order.coin)
                if szi == 0.0 or (szi > 0) == order.is_buy:
                    self._finish(order, vt.OrderStatus.REDUCE_ONLY_CANCELED, now_ms, record_cloid=True)
                    continue
                sz = min(sz, abs(szi))
            elif self._margin_shortfall(
                self._accounts[order.user],
                order.coin,
                order.is_buy,
                sz,
                order.limit_px,
                resting_oid=order.oid,
            ):
                self._finish(order, vt.OrderStatus.MARGIN_CANCELED, now_ms, record_cloid=True)
                continue
            self._fill(order, order.limit_px, sz, crossed=False, now_ms=now_ms)
            if order.status is vt.OrderStatus.OPEN and order.reduce_only:
                self._finish(order, vt.OrderStatus.REDUCE_ONLY_CANCELED, now_ms, record_cloid=True)
