"""The simulated venue's exchange core: everything about accounts and orders behind POST /exchange.

Authenticates L1 actions (signature recovery, approved agents, nonce window), then places, matches,
cancels and re-leverages orders against the market replay's book (simulator.market.MarketView),
keeps positions, fees, funding and fills, answers the user-specific /info requests, and pushes
userFills / orderUpdates events to the server's sink. Same inputs give the same oids, tids and
hashes. All public methods take one lock, so the server may call them from any thread.

Who may act is `simulator.identity.Identities`: by default only funded accounts (`fund()`) and the
agents they approved; with `fund_any_usd` any address a user /info request or an approveAgent names
is funded on first sight. An L1 action whose recovered signer is neither an account nor an approved
agent is refused as the venue refuses it ("User or API Wallet 0x… does not exist."): that is also
how a tampered signature shows up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from eth_utils import keccak

from simulator import venue_vocab as vt
from simulator.accounts import (
    Account,
    LeverageSetting,
    MarketPort,
    apply_fill,
    apply_funding,
    clearinghouse_state,
    margin_summary,
)
from simulator.identity import ADDRESS_RE, Identities
from simulator.matching import MIN_ORDER_VALUE_USD, resting_order_triggered, walk_book, wire, would_cross
from simulator.orders import Order, OrderRejected, OrderRequest, parse_order_wire
from simulator.signing import (
    APPROVE_AGENT_PRIMARY,
    APPROVE_AGENT_TYPES,
    NonceBook,
    SignatureError,
    recover_l1_signer,
    recover_user_signed,
)
from simulator.user_ledger import UserLedger

log = logging.getLogger(__name__)

EventSink = Callable[[str, str, Any], None]
L1_ACTIONS = frozenset({"order", "cancel", "cancelByCloid", "updateLeverage", "scheduleCancel"})
FIRST_OID = 1_000_001
FIRST_TID = 500_000_001
SCHEDULE_CANCEL_MIN_LEAD_MS = 5_000
BOOK_DEPTH = 50


def _err(text: str) -> tuple[int, Any]:
    return 200, {"status": "err", "response": text}


def _ok_default() -> tuple[int, Any]:
    return 200, {"status": "ok", "response": {"type": "default"}}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)


class ExchangeCore:
    """Accounts, orders, matching, funding and user queries of the loopback venue."""

    def __init__(
        self,
        market: MarketPort,
        *,
        fund_any_usd: float | None,
        taker_fee_rate: float,
        maker_fee_rate: float,
        is_mainnet: bool,
        event_sink: EventSink | None = None,
        wall_clock_ms: Callable[[], int] | None = None,
    ) -> None:
        """`wall_clock_ms` is the venue clock that nonces, expiresAfter and scheduleCancel times are
        judged against (clients stamp them from their own wall clock); it defaults to time.time().
        `now_ms` passed to the other methods stamps orders, fills and funding."""
        self._market = market
        self._taker_fee = taker_fee_rate
        self._maker_fee = maker_fee_rate
        self._is_mainnet = is_mainnet
        self._sink = event_sink
        self._clock = wall_clock_ms or _wall_clock_ms
        self._lock = threading.RLock()
        self._ids = Identities(fund_any_usd)
        self._accounts = self._ids.accounts
        self._nonces = NonceBook()
        self._ledger = UserLedger()
        self._next_oid = FIRST_OID
        self._next_tid = FIRST_TID
        self._post_count = 0
        self._scheduled_cancel: dict[str, int] = {}
        self._funding_hour: int | None = None
        self._events: list[tuple[str, str, Any]] = []

    # ----------------------------------------------------------------- accounts and events

    def fund(self, address: str, usd: float | None = None, *, volume_usd: float = 0.0) -> None:
        """Deposit `usd` (default: the fund-any amount) to `address`, creating its account, and credit
        `volume_usd` of earlier traded volume (request budget, scheduleCancel gate)."""
        if not ADDRESS_RE.match(address):
            raise ValueError(f"not an address: {address!r}")
        amount = self._ids.fund_any_usd if usd is None else usd
        if amount is None:
            raise ValueError("no deposit amount given and the venue has no fund-any amount")
        with self._lock:
            self._ids.fund(address.lower(), amount, volume_usd)

    def _emit(self, channel: vt.EventChannel, user: str, payload: Any) -> None:
        self._events.append((str(channel), user, payload))

    def _take_events(self) -> list[tuple[str, str, Any]]:
        events, self._events = self._events, []
        return events

    def _deliver(self, events: list[tuple[str, str, Any]]) -> None:
        """Hand events to the sink outside the lock, in the order they happened."""
        if self._sink is None:
            return
        for channel, user, payload in events:
            self._sink(channel, user, payload)

    def exchange_post_count(self) -> int:
        """Number of POST /exchange bodies received, valid or not."""
        with self._lock:
            return self._post_count

    # ----------------------------------------------------------------- POST /exchange

    def handle_exchange(self, body: dict, now_ms: int) -> tuple[int, Any]:
        """Answer one POST /exchange body: (HTTP status, JSON body). A str body is plain text."""
        with self._lock:
            self._post_count += 1
            result = self._handle_exchange(body, now_ms)
            events = self._take_events()
        self._deliver(events)
        return result

    def _handle_exchange(self, body: Any, now_ms: int) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 422, vt.MALFORMED_REQUEST
        action, nonce, signature = body.get("action"), body.get("nonce"), body.get("signature")
        vault, expires = body.get("vaultAddress"), body.get("expiresAfter")
        if (
            not isinstance(action, dict)
            or not _is_int(nonce)
            or not isinstance(signature, dict)
            or (vault is not None and not isinstance(vault, str))
            or (expires is not None and not _is_int(expires))
        ):
            return 422, vt.MALFORMED_REQUEST
        kind = action.get("type")
        if kind == "approveAgent":
            return self._approve_agent(action, nonce, signature)
        if kind not in L1_ACTIONS:
            return _err(vt.UNKNOWN_ACTION)
        user_or_error = self._authenticate(action, nonce, signature, vault, expires)
        if not isinstance(user_or_error, str):
            return user_or_error
        try:
            return self._dispatch(kind, action, user_or_error, now_ms, self._clock())
        except (ValueError, TypeError, KeyError):
            return 422, vt.MALFORMED_REQUEST

    def _authenticate(
        self, action: dict, nonce: int, signature: dict, vault: str | None, expires: int | None
    ) -> str | tuple[int, Any]:
        """Return the acting user for a signed L1 action, or the error response that refuses it."""
        try:
            signer = recover_l1_signer(action, signature, nonce, vault, expires, self._is_mainnet)
        except SignatureError as e:
            log.info("exchange action refused: unrecoverable signature (%s)", e)
            return _err(vt.BAD_SIGNATURE)
        user = self._ids.acting_user(signer)
        if isinstance(user, tuple):
            log.info("exchange action refused: signer %s: %s", signer, user[1])
            return _err(user[1])
        wall = self._clock()
        problem = self._nonces.check(signer, nonce, wall)
        if problem is not None:
            log.info("exchange action refused: signer %s nonce %d: %s", signer, nonce, problem)
            return _err(problem)
        self._nonces.record(signer, nonce)
        if expires is not None and wall > expires:
            return _err(vt.action_expired(expires))
        if vault is not None:
            return _err(vt.VAULT_UNSUPPORTED)
        return user

    def _dispatch(self, kind: str, action: dict, user: str, now_ms: int, wall: int) -> tuple[int, Any]:
        if kind == "order":
            return self._orders_action(action, user, now_ms)
        if kind == "cancel":
            return self._cancel_action(action["cancels"], user, now_ms, key_asset="a", key_id="o")
        if kind == "cancelByCloid":
            return self._cancel_action(action["cancels"], user, now_ms, key_asset="asset", key_id="cloid")
        if kind == "updateLeverage":
            return self._update_leverage(action, user)
        return self._schedule_cancel(action, user, wall)

    def _approve_agent(self, action: dict, nonce: int, signature: dict) -> tuple[int, Any]:
        chain = "Mainnet" if self._is_mainnet else "Testnet"
        if action.get("hyperliquidChain") != chain:
            return _err(vt.WRONG_CHAIN)
        agent = action.get("agentAddress")
        if not isinstance(agent, str) or action.get("nonce") != nonce:
            return 422, vt.MALFORMED_REQUEST
        message = {
            "hyperliquidChain": chain,
            "agentAddress": agent,
            "agentName": action.get("agentName", ""),
            "nonce": nonce,
        }
        try:
            master = recover_user_signed(
                message,
                signature,
                APPROVE_AGENT_TYPES,
                APPROVE_AGENT_PRIMARY,
                str(action.get("signatureChainId")),
            )
        except SignatureError:
            return _err(vt.BAD_SIGNATURE)
        problem = self._nonces.check(master, nonce, self._clock())
        if problem is not None:
            return _err(problem)
        self._nonces.record(master, nonce)
        refused = self._ids.approve_agent(master, agent.lower())
        return _err(refused) if refused is not None else _ok_default()

    # ----------------------------------------------------------------- orders

    def _orders_action(self, action: dict, user: str, now_ms: int) -> tuple[int, Any]:
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

    # ----------------------------------------------------------------- cancels, leverage, schedule

    def _cancel_action(
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

    def _update_leverage(self, action: dict, user: str) -> tuple[int, Any]:
        asset, is_cross, leverage = action["asset"], action["isCross"], action["leverage"]
        coins = self._market.coins()
        if not isinstance(asset, int) or not isinstance(is_cross, bool) or not isinstance(leverage, int):
            raise ValueError("updateLeverage fields have the wrong types")
        if not 0 <= asset < len(coins):
            return _err(vt.order_error(vt.RejectKind.UNKNOWN_ASSET, asset))
        coin = coins[asset]
        if not 1 <= leverage <= self._market.max_leverage(coin):
            return _err(vt.INVALID_LEVERAGE)
        account = self._accounts[user]
        current = account.leverage_for(coin, self._market.max_leverage(coin))
        if coin in account.positions and current.is_cross != is_cross:
            return _err(vt.CROSS_ISOLATED_SWITCH)
        account.leverage[coin] = LeverageSetting(leverage, is_cross)
        if margin_summary(account, self._market).free_collateral < 0:
            account.leverage[coin] = current
            return _err(vt.LEVERAGE_MARGIN)
        return _ok_default()

    def _schedule_cancel(self, action: dict, user: str, wall: int) -> tuple[int, Any]:
        when = action.get("time")
        if when is None:
            self._scheduled_cancel.pop(user, None)
            return _ok_default()
        if not isinstance(when, int) or isinstance(when, bool):
            raise ValueError("scheduleCancel time must be an integer")
        if when < wall + SCHEDULE_CANCEL_MIN_LEAD_MS:
            return _err(vt.SCHEDULE_CANCEL_TOO_EARLY)
        self._scheduled_cancel[user] = when
        return _ok_default()

    # ----------------------------------------------------------------- market ticks

    def on_market_tick(self, now_ms: int) -> None:
        """Fill resting orders the mid has reached, charge hourly funding, fire due scheduled cancels."""
        with self._lock:
            self._fill_resting(now_ms)
            self._charge_funding(now_ms)
            self._fire_scheduled_cancels(now_ms)
            events = self._take_events()
        self._deliver(events)

    def _fill_resting(self, now_ms: int) -> None:
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

    def _charge_funding(self, now_ms: int) -> None:
        hour = now_ms // 3_600_000
        if self._funding_hour is None or hour <= self._funding_hour:
            self._funding_hour = hour if self._funding_hour is None else max(hour, self._funding_hour)
            return
        for h in range(self._funding_hour + 1, hour + 1):
            stamp = h * 3_600_000
            for user in sorted(self._accounts):
                self._charge_user_funding(self._accounts[user], stamp)
        self._funding_hour = hour

    def _charge_user_funding(self, account: Account, stamp: int) -> None:
        entries = []
        for coin in sorted(account.positions):
            rate = self._market.funding_rate(coin)
            szi = account.positions[coin].szi
            usdc = apply_funding(account, coin, rate, self._market.mid(coin))
            entry = {
                "time": stamp,
                "coin": coin,
                "usdc": wire(usdc, 6),
                "szi": wire(szi, self._market.sz_decimals(coin)),
                "fundingRate": wire(rate, 10),
            }
            self._ledger.add_funding(account.address, entry)
            entries.append(entry)
        if entries:
            self._emit(
                vt.EventChannel.USER_FUNDINGS, account.address, {"user": account.address, "fundings": entries}
            )

    def _fire_scheduled_cancels(self, now_ms: int) -> None:
        wall = self._clock()
        for user, when in sorted(self._scheduled_cancel.items()):
            if wall < when:
                continue
            del self._scheduled_cancel[user]
            for order in self._ledger.open_orders(user):
                self._finish(order, vt.OrderStatus.SCHEDULED_CANCEL, now_ms, record_cloid=True)

    # ----------------------------------------------------------------- user /info

    def handle_user_info(self, body: dict, now_ms: int) -> Any | None:
        """Answer a user-specific /info request; None if body["type"] is not one this core serves or
        body["user"] is not an address. The first query about an address funds it."""
        kind = body.get("type") if isinstance(body, dict) else None
        if kind not in UserLedger.INFO_TYPES:
            return None
        user = body.get("user")
        if not isinstance(user, str) or not ADDRESS_RE.match(user):
            return None  # the server answers 422, as the venue does for a body it cannot parse
        user = user.lower()
        with self._lock:
            account = self._ids.for_query(user)
            if kind == "clearinghouseState":
                return clearinghouse_state(account, self._market, now_ms)
            if kind == "spotClearinghouseState":
                return {"balances": []}  # perp-only venue: margin lives in clearinghouseState
            return self._ledger.info(kind, user, body)
