"""WS channels beyond the basic user feeds, over a real socket with the official SDK trading:
userEvents (channel "user": fills, nonUserCancel), the public trades feed of a coin, and requests
posted over the socket (info and signed actions)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import eth_account
from hyperliquid.exchange import Exchange
from hyperliquid.utils import signing as sdk
from websockets.sync.client import ClientConnection, connect

from tests.fixtures.sim_fixtures import SimulatorProcess

COIN = "ETH"


def _subscribe(ws: ClientConnection, sub: dict[str, Any]) -> None:
    ws.send(json.dumps({"method": "subscribe", "subscription": sub}))
    while (msg := json.loads(ws.recv(timeout=10)))["channel"] != "subscriptionResponse":
        assert msg["channel"] != "error", msg


def _next(ws: ClientConnection, channel: str, timeout: float = 20.0) -> dict[str, Any]:
    """The next message on `channel` (other channels are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        msg = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if msg["channel"] == channel:
            return msg["data"]


def test_user_events_and_trades_feed(simulator_factory: Callable[..., SimulatorProcess]) -> None:
    wallet = eth_account.Account.create()
    user = wallet.address.lower()
    sim = simulator_factory("--speed", "0", "--rate-limit-per-min", "0", "--fund", f"{user}=5000")
    sim.fund(user, 0.0, volume_usd=1_000_000.0)  # enough volume to arm scheduleCancel
    exchange = Exchange(wallet, sim.base_url)
    mid = float(exchange.info.all_mids()[COIN])
    szd = exchange.info.asset_to_sz_decimals[exchange.info.name_to_asset(COIN)]
    sz = round(50 / mid, szd)
    with connect(sim.ws_url, open_timeout=10) as ws:
        assert ws.recv(timeout=10) == "Websocket connection established."
        _subscribe(ws, {"type": "userEvents", "user": user})
        _subscribe(ws, {"type": "trades", "coin": COIN})
        oid = exchange.market_open(COIN, True, sz)["response"]["data"]["statuses"][0]["filled"]["oid"]
        fills = _next(ws, "user")["fills"]
        assert [f["oid"] for f in fills] == [oid]
        [trade] = _next(ws, "trades")
        assert (trade["coin"], trade["side"], trade["tid"]) == (COIN, "B", fills[0]["tid"])
        assert trade["users"][0] == user

        below = round(float(f"{mid * 0.9:.5g}"), 6 - szd)
        resting = exchange.order(COIN, True, sz, below, {"limit": {"tif": "Gtc"}})
        rest_oid = resting["response"]["data"]["statuses"][0]["resting"]["oid"]
        assert exchange.schedule_cancel(int(time.time() * 1000) + 6_000)["status"] == "ok"
        event = _next(ws, "user")
        assert event == {"nonUserCancel": [{"coin": COIN, "oid": rest_oid}]}


def _post(ws: ClientConnection, req_id: int, kind: str, payload: dict[str, Any]) -> None:
    ws.send(json.dumps({"method": "post", "id": req_id, "request": {"type": kind, "payload": payload}}))


def test_requests_posted_over_the_websocket(simulator_factory: Callable[..., SimulatorProcess]) -> None:
    wallet = eth_account.Account.create()
    user = wallet.address.lower()
    sim = simulator_factory("--speed", "0", "--rate-limit-per-min", "0", "--fund", f"{user}=5000")
    info = Exchange(wallet, sim.base_url).info
    mid = float(info.all_mids()[COIN])
    szd = info.asset_to_sz_decimals[info.name_to_asset(COIN)]
    order = {"coin": COIN, "is_buy": True, "sz": round(50 / mid, szd), "reduce_only": False,
             "limit_px": round(float(f"{mid * 1.01:.5g}"), 6 - szd), "order_type": {"limit": {"tif": "Ioc"}}}
    wire = sdk.order_request_to_order_wire(order, info.name_to_asset(COIN))  # type: ignore[arg-type]
    action = sdk.order_wires_to_order_action([wire])
    nonce = int(time.time() * 1000)
    signed = {"action": action, "nonce": nonce, "vaultAddress": None, "expiresAfter": None,
              "signature": sdk.sign_l1_action(wallet, action, None, nonce, None, False)}
    with connect(sim.ws_url, open_timeout=10) as ws:
        assert ws.recv(timeout=10) == "Websocket connection established."
        _post(ws, 1, "info", {"type": "allMids"})
        answer = _next(ws, "post")
        assert answer["id"] == 1 and answer["response"]["type"] == "info"
        payload = answer["response"]["payload"]
        assert payload["type"] == "allMids" and COIN in payload["data"]
        _post(ws, 2, "action", signed)
        answer = _next(ws, "post")
        assert answer["id"] == 2 and answer["response"]["type"] == "action"
        assert "filled" in answer["response"]["payload"]["response"]["data"]["statuses"][0]
        _post(ws, 3, "info", {"type": "nope"})
        assert _next(ws, "post")["response"]["type"] == "error"
    assert info.user_state(user)["assetPositions"][0]["position"]["coin"] == COIN


def test_l2_book_subscription_with_n_sig_figs(simulator_factory: Callable[..., SimulatorProcess]) -> None:
    sim = simulator_factory("--speed", "0", "--rate-limit-per-min", "0")
    rest = sim.info({"type": "l2Book", "coin": COIN, "nSigFigs": 2}).json()
    with connect(sim.ws_url, open_timeout=10) as ws:
        assert ws.recv(timeout=10) == "Websocket connection established."
        _subscribe(ws, {"type": "l2Book", "coin": COIN, "nSigFigs": 2})
        assert _next(ws, "l2Book")["levels"] == rest["levels"]
        bad = {"type": "l2Book", "coin": COIN, "nSigFigs": 9}
        ws.send(json.dumps({"method": "subscribe", "subscription": bad}))
        assert _next(ws, "error").startswith("Invalid subscription")
