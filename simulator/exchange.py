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

from simulator import venue_vocab as vt
from simulator.account_info import active_asset_data_json, ledger_updates_json, user_fees_json
from simulator.accounts import (
    Account,
    LeverageSetting,
    MarketPort,
    apply_funding,
    clearinghouse_state,
    margin_summary,
    spot_clearinghouse_state,
)
from simulator.address_limit import (
    CANCEL_ACTIONS,
    INITIAL_REQUESTS,
    RESERVED_REQUEST_COST_USD,
    SCHEDULE_CANCEL_MIN_VOLUME_USD,
    AddressLimits,
    action_requests,
)
from simulator.dexes import dex_of
from simulator.identity import ADDRESS_RE, Identities
from simulator.market_info import DESERIALIZE_ERROR, InfoRequestError
from simulator.matching import wire
from simulator.signing import (
    APPROVE_AGENT_PRIMARY,
    APPROVE_AGENT_TYPES,
    NonceBook,
    SignatureError,
    recover_l1_signer,
    recover_user_signed,
)
from simulator.trading import Trading
from simulator.user_ledger import UserLedger

log = logging.getLogger(__name__)

EventSink = Callable[[str, str, Any], None]
L1_ACTIONS = frozenset({"order", "cancel", "cancelByCloid", "updateLeverage", "scheduleCancel", "modify",
                        "batchModify", "reserveRequestWeight", "noop"})
USER_INFO_TYPES = UserLedger.INFO_TYPES | {"userRateLimit", "userFees", "activeAssetData",
                                           "userNonFundingLedgerUpdates", "userAbstraction", "userRole"}
DEX_ORDER_QUERIES = frozenset({"openOrders", "frontendOpenOrders"})  # answered per perp dex (`dex`)
SCHEDULE_CANCEL_MIN_LEAD_MS = 5_000
SCHEDULE_CANCEL_MAX_PER_DAY = 10              # triggers per UTC day (SDK docstring: reset at 00:00 UTC)
DAY_MS = 86_400_000
BACKSTOP_FRACTION = 2 / 3  # below this share of maintenance margin the backstop vault takes over


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
        initial_requests: int = INITIAL_REQUESTS,
        schedule_cancel_min_volume_usd: float = SCHEDULE_CANCEL_MIN_VOLUME_USD,
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
        self._ids = Identities(fund_any_usd, market.now_ms)
        self._limits = AddressLimits(initial_requests)
        self._accounts = self._ids.accounts
        self._nonces = NonceBook()
        self._ledger = UserLedger()
        self._trading = Trading(market, self._accounts, self._ledger, self._emit,
                                taker_fee_rate=taker_fee_rate, maker_fee_rate=maker_fee_rate)
        self._post_count = 0
        self._scheduled_cancel: dict[str, int] = {}
        self._schedule_cancel_min_volume = schedule_cancel_min_volume_usd
        self._cancel_triggers: dict[tuple[str, int], int] = {}  # (user, UTC day) -> triggers fired
        self._funding_hour: int | None = None
        self._events: list[tuple[str, str, Any]] = []

    # ----------------------------------------------------------------- accounts and events

    def fund(
        self, address: str, usd: float | None = None, *, volume_usd: float = 0.0, unified: bool | None = None
    ) -> None:
        """Deposit `usd` (default: the fund-any amount) to `address`, creating its account, and credit
        `volume_usd` of earlier traded volume (request budget, scheduleCancel gate); `unified` switches
        the account to unified (True) or standard (False) account mode."""
        if not ADDRESS_RE.match(address):
            raise ValueError(f"not an address: {address!r}")
        amount = self._ids.fund_any_usd if usd is None else usd
        if amount is None:
            raise ValueError("no deposit amount given and the venue has no fund-any amount")
        with self._lock:
            account = self._ids.fund(address.lower(), amount, volume_usd)
            if unified is not None:
                account.unified = unified

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

    def admin_orders(self, user: str | None = None) -> list[dict[str, Any]]:
        """Every order the venue recorded (accepted, rejected, finished), for tests and the crash
        soak counting what really reached the venue: frontend view + user, status, status time."""
        with self._lock:
            orders = self._ledger.all_orders(user.lower() if user is not None else None)
            return [
                o.frontend_view() | {"user": o.user, "status": str(o.status), "statusTimestamp": o.status_ts}
                for o in orders
            ]

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
        if expires is not None and wall > expires:
            self._nonces.record(signer, nonce)
            return _err(vt.action_expired(expires))
        if vault is not None:
            self._nonces.record(signer, nonce)
            return _err(vt.VAULT_UNSUPPORTED)
        refused = self._limits.admit(user, action_requests(action), self._accounts[user].volume_usd, wall,
                                     is_cancel=action.get("type") in CANCEL_ACTIONS)
        if refused is not None:  # uses no budget and (like a refused IP request) leaves the nonce unused
            log.info("exchange action refused: user %s over its address request budget", user)
            return _err(refused)
        self._nonces.record(signer, nonce)
        return user

    def _dispatch(self, kind: str, action: dict, user: str, now_ms: int, wall: int) -> tuple[int, Any]:
        if kind == "order":
            return self._trading.orders_action(action, user, now_ms)
        if kind == "cancel":
            return self._trading.cancel_action(action["cancels"], user, now_ms, key_asset="a", key_id="o")
        if kind == "cancelByCloid":
            return self._trading.cancel_action(
                action["cancels"], user, now_ms, key_asset="asset", key_id="cloid"
            )
        if kind in ("modify", "batchModify"):
            return self._trading.modify_action(action, user, now_ms, batch=kind == "batchModify")
        if kind == "updateLeverage":
            return self._update_leverage(action, user)
        if kind == "reserveRequestWeight":
            return self._reserve_request_weight(action, user)
        if kind == "noop":  # used to burn a nonce; counts as a request like any action
            return _ok_default()
        return self._schedule_cancel(action, user, wall)

    def _reserve_request_weight(self, action: dict, user: str) -> tuple[int, Any]:
        """Buy `weight` more address requests for RESERVED_REQUEST_COST_USD each, paid from cash."""
        weight = action["weight"]
        if not _is_int(weight) or weight <= 0:
            raise ValueError("reserveRequestWeight weight must be a positive integer")
        account = self._accounts[user]
        cost = weight * RESERVED_REQUEST_COST_USD
        free = margin_summary(account, self._market).free_collateral - self._trading.resting_margin(account)
        if cost > free:
            return _err(vt.RESERVE_INSUFFICIENT)
        account.cash -= cost
        self._limits.reserve(user, weight)
        return _ok_default()

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

    # ----------------------------------------------------------------- cancels, leverage, schedule

    def _update_leverage(self, action: dict, user: str) -> tuple[int, Any]:
        asset, is_cross, leverage = action["asset"], action["isCross"], action["leverage"]
        if not isinstance(asset, int) or not isinstance(is_cross, bool) or not isinstance(leverage, int):
            raise ValueError("updateLeverage fields have the wrong types")
        coin = self._market.coin_of(asset)
        if coin is None:
            return _err(vt.order_error(vt.RejectKind.UNKNOWN_ASSET, asset))
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
        """Arm (or with no time, clear) the dead man's switch: refused below the venue's traded-volume
        gate, and once it has fired SCHEDULE_CANCEL_MAX_PER_DAY times in the current UTC day."""
        when = action.get("time")
        volume = self._accounts[user].volume_usd
        if volume < self._schedule_cancel_min_volume:
            return _err(vt.schedule_cancel_volume(self._schedule_cancel_min_volume, volume))
        if when is None:
            self._scheduled_cancel.pop(user, None)
            return _ok_default()
        if not isinstance(when, int) or isinstance(when, bool):
            raise ValueError("scheduleCancel time must be an integer")
        if when < wall + SCHEDULE_CANCEL_MIN_LEAD_MS:
            return _err(vt.SCHEDULE_CANCEL_TOO_EARLY)
        if self._cancel_triggers.get((user, wall // DAY_MS), 0) >= SCHEDULE_CANCEL_MAX_PER_DAY:
            return _err(vt.SCHEDULE_CANCEL_DAILY_LIMIT)
        self._scheduled_cancel[user] = when
        return _ok_default()

    # ----------------------------------------------------------------- market ticks

    def on_market_tick(self, now_ms: int) -> None:
        """Fill resting orders the mid has reached, charge hourly funding, fire due scheduled cancels."""
        with self._lock:
            self._trading.fire_triggers(now_ms)
            self._trading.fill_resting(now_ms)
            self._liquidate_underwater(now_ms)
            self._charge_funding(now_ms)
            self._fire_scheduled_cancels(now_ms)
            events = self._take_events()
        self._deliver(events)

    def _liquidate_underwater(self, now_ms: int) -> None:
        """Liquidate every account whose value is below its maintenance margin (cross margin: one
        account value for all positions; isolated positions are treated as cross, as everywhere here)."""
        for user in sorted(self._accounts):
            account = self._accounts[user]
            if not account.positions:
                continue
            summary = margin_summary(account, self._market)
            if summary.account_value < summary.maintenance_margin_used:
                backstop = summary.account_value < BACKSTOP_FRACTION * summary.maintenance_margin_used
                log.info("liquidating %s (%s): account value %.2f < maintenance margin %.2f", user,
                         "backstop" if backstop else "market", summary.account_value,
                         summary.maintenance_margin_used)
                self._trading.liquidate(user, now_ms, backstop=backstop)

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
            day = (user, wall // DAY_MS)
            self._cancel_triggers[day] = self._cancel_triggers.get(day, 0) + 1
            for order in self._ledger.open_orders(user):
                self._trading.finish(order, vt.OrderStatus.SCHEDULED_CANCEL, now_ms)

    # ----------------------------------------------------------------- user /info

    def handle_user_info(self, body: dict, now_ms: int) -> Any | None:
        """Answer a user-specific /info request; None if body["type"] is not one this core serves or
        body["user"] is not an address. Under fund-any the first query about an address funds it."""
        kind = body.get("type") if isinstance(body, dict) else None
        if kind == "recentTrades" and isinstance(body.get("coin"), str):
            with self._lock:
                return self._ledger.recent_trades(body["coin"])
        if kind not in USER_INFO_TYPES:
            return None
        user = body.get("user")
        if not isinstance(user, str) or not ADDRESS_RE.match(user):
            return None  # the server answers 422, as the venue does for a body it cannot parse
        user = user.lower()
        with self._lock:
            return self._user_info(kind, user, body, now_ms)

    def _dex_param(self, body: dict) -> str:
        dex = body.get("dex") or ""
        if not isinstance(dex, str) or not self._market.dexes.has_dex(dex):
            raise InfoRequestError(f"{DESERIALIZE_ERROR}: unknown perp dex `{dex}`")
        return dex

    def _user_info(self, kind: str, user: str, body: dict, now_ms: int) -> Any | None:
        if kind == "userRole":  # before for_query: an agent wallet must not be funded on sight
            return self._ids.role(user)
        account = self._ids.for_query(user)
        if kind == "clearinghouseState":
            return clearinghouse_state(account, self._market, now_ms, self._dex_param(body))
        if kind in DEX_ORDER_QUERIES:
            dex = self._dex_param(body)
            return [o for o in self._ledger.info(kind, user, body) if dex_of(o["coin"]) == dex]
        if kind == "spotClearinghouseState":
            used = margin_summary(account, self._market).total_margin_used
            hold = used + self._trading.resting_margin(account)
            return spot_clearinghouse_state(account, hold)
        if kind == "userRateLimit":
            return self._limits.info(user, account.volume_usd)
        if kind == "userAbstraction":
            return "unifiedAccount" if account.unified else "default"  # no portfolio margin simulated
        if kind == "userFees":
            return user_fees_json(self._taker_fee, self._maker_fee)
        if kind == "activeAssetData":
            coin = body.get("coin")
            return active_asset_data_json(account, self._market, coin) if isinstance(coin, str) else None
        if kind == "userNonFundingLedgerUpdates":
            start, end = body.get("startTime", 0), body.get("endTime")
            end = end if _is_int(end) else 2**63
            return ledger_updates_json(account, start if _is_int(start) else 0, end)
        return self._ledger.info(kind, user, body)
