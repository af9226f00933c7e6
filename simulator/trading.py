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
PRICE_BAND = 0.8                    # an order price may be at most 80% away from the reference price
OPEN_ORDERS_BASE = 1_000
OPEN_ORDERS_MAX = 5_000
OPEN_ORDER_PER_VOLUME_USD = 5_000_000.0
TRIGGER_MARKET_SLIPPAGE = 0.10      # a fired market TP/SL trades with 10% slippage tolerance (docs)


def order_response(statuses: list[Any]) -> dict[str, Any]:
    return {"status": "ok", "response": {"type": "order", "data": {"statuses": statuses}}}


def prevalidation_error(parsed: list[OrderRequest | OrderRejected], grouping: vt.Grouping) -> str | None:
    """The one error the venue returns for a whole batch that fails on its payload alone, else None."""
    if not parsed:
        return vt.order_error(vt.RejectKind.EMPTY_BATCH, 0)
    for p in parsed:
        if isinstance(p, OrderRejected) and p.kind in vt.PREVALIDATION_KINDS:
            return vt.order_error(p.kind, p.asset)
    if grouping is not vt.Grouping.NA and any(
        isinstance(p, OrderRequest) and p.trigger is not None and not p.reduce_only for p in parsed
    ):
        return vt.order_error(vt.RejectKind.TPSL_NOT_REDUCE_ONLY, 0)
    return None


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
        self._last_trigger_check_ms: int | None = None
        self._last_resting_check_ms: int | None = None

    def finish(self, order: Order, status: vt.OrderStatus, now_ms: int) -> None:
        """End an open order with `status` (cancels of every kind); its cloid stays taken."""
        self._finish(order, status, now_ms, record_cloid=True)

    def parse_batch(self, wires: Any) -> list[OrderRequest | OrderRejected]:
        """Parse order wires; shape errors (ValueError) refuse the whole request before anything runs."""
        if not isinstance(wires, list):
            raise ValueError("orders must be a list")
        coins = self._market.coins()
        szd = {c: self._market.sz_decimals(c) for c in coins}
        parsed: list[OrderRequest | OrderRejected] = []
        for raw in wires:
            try:
                parsed.append(parse_order_wire(raw, self._market.coin_of, szd))
            except OrderRejected as e:
                parsed.append(e)
        return parsed

    def orders_action(self, action: dict, user: str, now_ms: int) -> tuple[int, Any]:
        grouping = vt.Grouping(action.get("grouping", "na"))
        parsed = self.parse_batch(action["orders"])
        refused = prevalidation_error(parsed, grouping)
        if refused is not None:
            return 200, order_response([{"error": refused}])
        statuses: list[Any] = []
        parent: Order | None = None
        for i, p in enumerate(parsed):
            if isinstance(p, OrderRejected):
                statuses.append({"error": vt.order_error(p.kind, p.asset)})
                continue
            child = grouping is vt.Grouping.NORMAL_TPSL and p.trigger is not None and i > 0
            if child and parent is None:
                statuses.append({"error": vt.TPSL_PARENT_REJECTED})
                continue
            status, order = self.place(p, user, now_ms, parent=parent if child else None,
                                       position_tpsl=grouping is vt.Grouping.POSITION_TPSL)
            if i == 0 and grouping is vt.Grouping.NORMAL_TPSL and p.trigger is None:
                parent = order if "error" not in status else None
            statuses.append(status)
        return 200, order_response(statuses)

    def place(
        self, req: OrderRequest, user: str, now_ms: int, *, parent: Order | None = None,
        position_tpsl: bool = False,
    ) -> tuple[Any, Order]:
        """Check and execute one parsed order; return its batch status and the order record."""
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
            sz_decimals=self._market.sz_decimals(req.coin),
            status_ts=now_ms,
            trigger=req.trigger,
            parent_oid=parent.oid if parent is not None else None,
            position_tpsl=position_tpsl and req.trigger is not None,
        )
        self._next_oid += 1
        try:
            self._admit_any(req, order)
            if req.trigger is None:
                self._admit(req, order)
            else:
                self._admit_trigger(req, order)
        except OrderRejected as e:
            bids, asks = self._market.book(req.coin, 1)
            bbo = f"{wire(bids[0][0]) if bids else 'None'}@{wire(asks[0][0]) if asks else 'None'}"
            self._finish(order, vt.REJECT_STATUS[e.kind], now_ms, record_cloid=False)
            log.debug("order rejected: user=%s coin=%s oid=%d reason=%s", user, req.coin, order.oid, e.kind)
            return {"error": vt.order_error(e.kind, e.asset, bbo)}, order
        if req.trigger is not None:
            return self._rest_trigger(order, parent), order
        return self._execute_new(order, now_ms), order

    def _rest_trigger(self, order: Order, parent: Order | None) -> Any:
        """A trigger order waits for its price; a normalTpsl child also for its parent's fill."""
        self._ledger.add(order)
        self._emit(vt.EventChannel.ORDER_UPDATES, order.user, [order.update_view()])
        if parent is None:
            cloid = {"cloid": order.cloid} if order.cloid is not None else {}
            return {"resting": {"oid": order.oid, **cloid}}
        return "waitingForTrigger" if parent.sz < parent.orig_sz else "waitingForFill"

    def open_order_cap(self, user: str) -> int:
        """1,000 open orders, one more per 5M USDC traded, at most 5,000 (docs, rate limits)."""
        volume = self._accounts[user].volume_usd
        return min(OPEN_ORDERS_MAX, OPEN_ORDERS_BASE + int(volume // OPEN_ORDER_PER_VOLUME_USD))

    def _admit_any(self, req: OrderRequest, order: Order) -> None:
        """Checks every order passes, trigger orders included."""
        if req.cloid is not None and self._ledger.cloid_taken(order.user, req.cloid):
            raise OrderRejected(vt.RejectKind.DUPLICATE_CLOID, req.asset)
        if len(self._ledger.open_orders(order.user)) >= self.open_order_cap(order.user):
            raise OrderRejected(vt.RejectKind.OPEN_ORDER_CAP, req.asset)
        # The venue's reference is its oracle price; the simulator's oracle is the mid path.
        reference = self._market.mid(req.coin)
        if abs(req.px - reference) > PRICE_BAND * reference:
            raise OrderRejected(vt.RejectKind.PRICE_BAND, req.asset)

    def _admit_trigger(self, req: OrderRequest, order: Order) -> None:
        """A reduce-only trigger must reduce the position it protects when placed (a normalTpsl child
        protects the position its parent will open); its size is clamped again when it fires."""
        if req.reduce_only and order.parent_oid is None:
            szi = self._accounts[order.user].szi(req.coin)
            if szi == 0.0 or (szi > 0) == req.is_buy:
                raise OrderRejected(vt.RejectKind.REDUCE_ONLY, req.asset)
        elif not req.reduce_only and req.px * req.sz < MIN_ORDER_VALUE_USD:
            raise OrderRejected(vt.RejectKind.MIN_NOTIONAL, req.asset)

    def _admit(self, req: OrderRequest, order: Order) -> None:
        """Run the pre-trade checks in the venue's order; clamps reduce-only size to the position."""
        account = self._accounts[order.user]
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
        free = margin_summary(account, self._market).free_collateral - self.resting_margin(
            account, resting_oid
        )
        return required > free + 1e-9

    def resting_margin(self, account: Account, skip_oid: int | None = None) -> float:
        total = 0.0
        for order in self._ledger.open_orders(account.address):
            if not order.reduce_only and order.oid != skip_oid and not order.waiting_trigger:
                lev = account.leverage_for(order.coin, self._market.max_leverage(order.coin)).value
                total += order.sz * order.limit_px / lev
        return total

    def _take(self, order: Order, limit_px: float, now_ms: int) -> tuple[float, float]:
        """Take liquidity from the book up to `limit_px`; return (size, value) filled."""
        filled_sz = filled_value = 0.0
        bids, asks = self._market.book(order.coin, BOOK_DEPTH)
        levels = asks if order.is_buy else bids
        for piece in walk_book(levels, order.is_buy, limit_px, order.sz, order.sz_decimals):
            self._fill(order, piece.px, piece.sz, crossed=True, now_ms=now_ms)
            filled_sz += piece.sz
            filled_value += piece.px * piece.sz
        return filled_sz, filled_value

    def _execute_new(self, order: Order, now_ms: int) -> dict:
        """Take liquidity for a marketable order, then rest (Gtc/Alo) or cancel (Ioc) the remainder."""
        self._ledger.add(order)
        filled_sz = filled_value = 0.0
        if order.tif is not vt.Tif.ALO:
            filled_sz, filled_value = self._take(order, order.limit_px, now_ms)
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

    def _fill(
        self, order: Order, px: float, sz: float, *, crossed: bool, now_ms: int,
        liquidation: dict[str, Any] | None = None,
    ) -> None:
        """Book one execution of `sz` at `px` on `order`, record the fill and emit the WS events."""
        account = self._accounts[order.user]
        rate = self._taker_fee if crossed else self._maker_fee
        fee = px * sz * rate * self._market.dexes.fee_multiplier(order.coin)
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
            "feeToken": self._market.dexes.collateral_of(order.coin),
        }
        if order.cloid is not None:
            fill["cloid"] = order.cloid
        if liquidation is not None:
            fill["liquidation"] = liquidation
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
        """Fill, at their limit, resting limit orders (fired limit triggers included) the mid path
        reached since the last check or since the order rested, whichever is later, so a touch
        between two market ticks counts."""
        since = self._last_resting_check_ms
        self._last_resting_check_ms = now_ms
        ranges: dict[tuple[str, int], tuple[float, float]] = {}
        for order in self._ledger.all_open_orders():
            if order.waiting_trigger or order.status is not vt.OrderStatus.OPEN:
                continue
            start = now_ms if since is None else min(now_ms, max(since, order.status_ts))
            key = (order.coin, start)
            if key not in ranges:
                ranges[key] = self._market.range_between(order.coin, start, now_ms)
            low, high = ranges[key]
            if not resting_order_triggered(order.is_buy, order.limit_px, low if order.is_buy else high):
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

    # ----------------------------------------------------------------- modify

    def modify_action(self, action: dict, user: str, now_ms: int, *, batch: bool) -> tuple[int, Any]:
        """`modify` {oid, order} / `batchModify` {modifies: [{oid, order}]}: each open order (by oid or
        cloid) is cancelled and replaced by the new one, which gets a new oid and keeps its role
        (TP/SL child, position TP/SL); its cloid may be the old order's."""
        items = action["modifies"] if batch else [{"oid": action["oid"], "order": action["order"]}]
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ValueError("modifies must be a list of objects")
        parsed = self.parse_batch([item["order"] for item in items])
        refused = prevalidation_error(parsed, vt.Grouping.NA)
        if refused is not None:
            statuses: list[Any] = [{"error": refused}]
        else:
            pairs = zip(items, parsed, strict=True)
            statuses = [self._modify_one(i["oid"], p, user, now_ms) for i, p in pairs]
        if batch:
            return 200, order_response(statuses)
        only = statuses[0]
        if isinstance(only, dict) and "error" in only:
            return 200, {"status": "err", "response": only["error"]}
        return 200, {"status": "ok", "response": {"type": "default"}}

    def _modify_one(self, ident: Any, req: OrderRequest | OrderRejected, user: str, now_ms: int) -> Any:
        if _is_int(ident):
            order = self._ledger.open_by_oid(user, ident)
        elif isinstance(ident, str):
            order = self._ledger.open_by_cloid(user, ident.lower())
        else:
            raise ValueError("modify oid must be an integer or a cloid")
        if order is None:
            return {"error": vt.MODIFY_MISSING}
        if isinstance(req, OrderRejected):
            return {"error": vt.order_error(req.kind, req.asset)}
        self._finish(order, vt.OrderStatus.CANCELED, now_ms, record_cloid=True)
        if order.cloid is not None:
            self._ledger.release_cloid(user, order.cloid)
        parent = self._ledger.order(order.parent_oid) if order.parent_oid is not None else None
        status, _ = self.place(req, user, now_ms, parent=parent, position_tpsl=order.position_tpsl)
        return status

    # ----------------------------------------------------------------- trigger orders

    def fire_triggers(self, now_ms: int) -> None:
        """Fire the trigger orders whose price the mid path reached since the last check (the venue
        watches its mark price; the simulator's mark is the same path), so a move through the
        trigger between two market ticks is not missed; the fired order trades against the book of
        now. A normalTpsl child waits for its parent's first fill and dies with an unfilled parent;
        a positionTpsl order dies with its position."""
        since = self._last_trigger_check_ms
        self._last_trigger_check_ms = now_ms
        for order in self._ledger.all_open_orders():
            if not order.waiting_trigger or order.status is not vt.OrderStatus.OPEN:
                continue
            if not self._trigger_live(order, now_ms):
                continue
            assert order.trigger is not None
            start = now_ms if since is None else min(now_ms, max(since, order.timestamp))
            low, high = self._market.range_between(order.coin, start, now_ms)
            price = high if order.trigger.fires_above(order.is_buy) else low
            if order.trigger.fires_at(order.is_buy, price):
                self._fire(order, now_ms)

    def _trigger_live(self, order: Order, now_ms: int) -> bool:
        """False while a child waits for its parent; ends orders whose parent or position is gone."""
        if order.parent_oid is not None:
            parent = self._ledger.order(order.parent_oid)
            if parent is not None and parent.sz == parent.orig_sz:  # parent has not filled at all
                if parent.status is not vt.OrderStatus.OPEN:
                    self._finish(order, vt.OrderStatus.CANCELED, now_ms, record_cloid=True)
                return False
        if order.position_tpsl and self._accounts[order.user].szi(order.coin) == 0.0:
            self._finish(order, vt.OrderStatus.CANCELED, now_ms, record_cloid=True)
            return False
        return True

    def _fire(self, order: Order, now_ms: int) -> None:
        """Turn a fired trigger into a live order: a market one trades at once with 10% slippage
        and cancels what it cannot fill; a limit one trades what crosses and rests the rest."""
        assert order.trigger is not None
        order.triggered = True
        order.status_ts = now_ms
        update = order.update_view() | {"status": str(vt.OrderStatus.TRIGGERED)}
        self._emit(vt.EventChannel.ORDER_UPDATES, order.user, [update])
        account = self._accounts[order.user]
        szi = account.szi(order.coin)
        if order.reduce_only:
            if szi == 0.0 or (szi > 0) == order.is_buy:
                self._finish(order, vt.OrderStatus.REDUCE_ONLY_CANCELED, now_ms, record_cloid=True)
                return
            order.sz = abs(szi) if order.position_tpsl else min(order.sz, abs(szi))
        elif self._margin_shortfall(account, order.coin, order.is_buy, order.sz, order.limit_px,
                                    resting_oid=order.oid):
            self._finish(order, vt.OrderStatus.MARGIN_CANCELED, now_ms, record_cloid=True)
            return
        if order.trigger.is_market:
            mid = self._market.mid(order.coin)
            worst = mid * (1 + TRIGGER_MARKET_SLIPPAGE if order.is_buy else 1 - TRIGGER_MARKET_SLIPPAGE)
            self._take(order, worst, now_ms)
            if order.status is vt.OrderStatus.OPEN:
                self._finish(order, vt.OrderStatus.CANCELED, now_ms, record_cloid=True)
        else:
            self._take(order, order.limit_px, now_ms)
        if order.parent_oid is not None and order.status is vt.OrderStatus.FILLED:
            self._cancel_siblings(order, now_ms)

    def _cancel_siblings(self, order: Order, now_ms: int) -> None:
        """A filled take-profit / stop-loss child cancels the other children of its parent."""
        for other in self._ledger.open_orders(order.user):
            if other.parent_oid == order.parent_oid and other.oid != order.oid:
                self._finish(other, vt.OrderStatus.SIBLING_FILLED_CANCELED, now_ms, record_cloid=True)

    # ----------------------------------------------------------------- liquidation

    def liquidate(self, user: str, now_ms: int, *, backstop: bool = False) -> None:
        """Liquidate an account whose value fell below its maintenance margin, as the venue does:
        cancel every open order (liquidatedCanceled), then close every position, each fill carrying
        {"liquidation": {liquidatedUser, markPx, method}}. A market liquidation trades against the
        book; a backstop one (the account fell below 2/3 of its maintenance margin, e.g. through a
        gap) hands the positions over at the mark price and the account loses its remaining
        collateral to the liquidator vault."""
        for order in self._ledger.open_orders(user):
            self._finish(order, vt.OrderStatus.LIQUIDATED_CANCELED, now_ms, record_cloid=True)
        account = self._accounts[user]
        for coin in sorted(account.positions):
            self._close_for_liquidation(user, coin, now_ms, backstop=backstop)
        if backstop:
            account.cash = 0.0

    def _close_for_liquidation(self, user: str, coin: str, now_ms: int, *, backstop: bool) -> None:
        szi = self._accounts[user].positions[coin].szi
        mid = self._market.mid(coin)
        order = Order(oid=self._next_oid, user=user, coin=coin, asset=self._market.asset_of(coin),
                      is_buy=szi < 0, limit_px=mid, orig_sz=abs(szi), sz=abs(szi), tif=vt.Tif.IOC,
                      reduce_only=True, cloid=None, timestamp=now_ms,
                      sz_decimals=self._market.sz_decimals(coin), status_ts=now_ms)
        self._next_oid += 1
        self._ledger.add(order)
        info = {"liquidatedUser": user, "markPx": wire(mid), "method": "backstop" if backstop else "market"}
        if backstop:
            self._fill(order, mid, order.sz, crossed=True, now_ms=now_ms, liquidation=info)
            return
        bids, asks = self._market.book(coin, BOOK_DEPTH)
        worst = mid * (2.0 if order.is_buy else 0.0)
        levels = asks if order.is_buy else bids
        for piece in walk_book(levels, order.is_buy, worst, order.sz, order.sz_decimals):
            self._fill(order, piece.px, piece.sz, crossed=True, now_ms=now_ms, liquidation=info)
        if order.status is vt.OrderStatus.OPEN:  # the book could not absorb it all
            self._finish(order, vt.OrderStatus.CANCELED, now_ms, record_cloid=True)
