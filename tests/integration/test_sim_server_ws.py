"""The simulator's /ws over a real WebSocket: handshake text, subscribe/unsubscribe, ping, market and
user channels, idle close, identical streams for the same seed, WS faults, the official SDK client."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import eth_account
import pytest
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.fixtures.sim_fixtures import SimulatorProcess

START_MS = 1_700_000_000_000
IV = 300_000
CANDLE_KEYS = {"T", "c", "h", "i", "l", "n", "o", "s", "t", "v"}
Factory = Callable[..., SimulatorProcess]


def manual(factory: Factory, *extra: str) -> SimulatorProcess:
    return factory("--speed", "0", "--start-ms", str(START_MS), "--seed", "11", *extra)


@contextmanager
def ws_client(sim: SimulatorProcess) -> Iterator[ClientConnection]:
    with connect(sim.ws_url, open_timeout=10) as ws:
        assert ws.recv(timeout=10) == "Websocket connection established."
        yield ws


def send(ws: ClientConnection, obj: dict[str, Any]) -> None:
    ws.send(json.dumps(obj))


def recv(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=10))


def subscribe(ws: ClientConnection, sub: dict[str, Any]) -> None:
    """Subscribe and read up to the acknowledgement (skipping pushes of earlier subscriptions)."""
    send(ws, {"method": "subscribe", "subscription": sub})
    while (msg := recv(ws))["channel"] != "subscriptionResponse":
        assert msg["channel"] != "error", msg
    assert msg["data"] == {"method": "subscribe", "subscription": sub}


def until_pong(ws: ClientConnection) -> list[str]:
    """Everything received before the answer to a fresh ping (which queues behind earlier pushes)."""
    send(ws, {"method": "ping"})
    raws = []
    while True:
        raw = ws.recv(timeout=10)
        if json.loads(raw) == {"channel": "pong"}:
            return raws
        raws.append(raw)


def channels(raws: list[str]) -> list[str]:
    return [json.loads(r)["channel"] for r in raws]


def test_ws_ping_subscribe_unsubscribe_and_errors(simulator: SimulatorProcess) -> None:
    with ws_client(simulator) as ws:
        send(ws, {"method": "ping"})
        assert recv(ws) == {"channel": "pong"}
        subscribe(ws, {"type": "allMids"})
        first = recv(ws)
        assert first["channel"] == "allMids" and set(first["data"]["mids"]) >= {"ETH", "ADA"}
        send(ws, {"method": "subscribe", "subscription": {"type": "allMids"}})
        assert "error" in channels(until_pong(ws))
        unknown_coin = {"type": "candle", "coin": "NOPE", "interval": "5m"}
        send(ws, {"method": "subscribe", "subscription": unknown_coin})
        assert "error" in channels(until_pong(ws))
        send(ws, {"method": "unsubscribe", "subscription": {"type": "allMids"}})
        got = [json.loads(r) for r in until_pong(ws)]
        assert {"channel": "subscriptionResponse",
                "data": {"method": "unsubscribe", "subscription": {"type": "allMids"}}} in got


def test_ws_candle_stream_sends_closed_bars_then_forming_bar(simulator_factory: Factory) -> None:
    sim = manual(simulator_factory)
    with ws_client(sim) as ws:
        subscribe(ws, {"type": "candle", "coin": "ETH", "interval": "5m"})
        initial = recv(ws)["data"]
        assert set(initial) == CANDLE_KEYS and initial["t"] == START_MS // IV * IV
        sim.advance(bars=2)
        pushed = [json.loads(r)["data"] for r in until_pong(ws)]
        assert [c["t"] for c in pushed] == [initial["t"] + k * IV for k in range(3)]
        assert all(set(c) == CANDLE_KEYS and c["T"] == c["t"] + IV - 1 for c in pushed)
        closed = sim.info({"type": "candleSnapshot", "req": {"coin": "ETH", "interval": "5m",
                                                             "startTime": initial["t"]}}).json()
        assert pushed[:2] == closed[:2]  # the final state of a closed bar equals what REST serves


def test_ws_bbo_and_l2book_shapes(simulator_factory: Factory) -> None:
    sim = manual(simulator_factory)
    with ws_client(sim) as ws:
        subscribe(ws, {"type": "bbo", "coin": "LTC"})
        bbo = recv(ws)
        assert bbo["channel"] == "bbo" and set(bbo["data"]) == {"coin", "time", "bbo"}
        bid, ask = bbo["data"]["bbo"]
        assert set(bid) == set(ask) == {"px", "sz", "n"} and float(bid["px"]) < float(ask["px"])
        subscribe(ws, {"type": "l2Book", "coin": "LTC"})
        book = recv(ws)
        assert book["channel"] == "l2Book" and set(book["data"]) == {"coin", "time", "levels"}
        rest = sim.info({"type": "l2Book", "coin": "LTC"}).json()
        assert book["data"] == rest


def test_ws_same_seed_streams_are_byte_identical(simulator_factory: Factory) -> None:
    streams = []
    for sim in (manual(simulator_factory), manual(simulator_factory)):
        with ws_client(sim) as ws:
            subscribe(ws, {"type": "allMids"})
            subscribe(ws, {"type": "candle", "coin": "XLM", "interval": "15m"})
            raws = until_pong(ws)
            for step in (40_000, 3 * IV, 7_777):
                sim.advance(ms=step)
                raws += until_pong(ws)
        streams.append(raws)
    assert len(streams[0]) >= 8
    assert streams[0] == streams[1]


def test_ws_user_channels_snapshot_then_order_updates(simulator: SimulatorProcess) -> None:
    wallet = eth_account.Account.create()
    user = wallet.address.lower()
    info = Info(simulator.base_url, skip_ws=True)
    info.user_state(wallet.address)
    with ws_client(simulator) as ws:
        subscribe(ws, {"type": "userFills", "user": wallet.address})
        snap = recv(ws)
        assert snap == {"channel": "userFills", "data": {"user": user, "isSnapshot": True, "fills": []}}
        subscribe(ws, {"type": "userFundings", "user": wallet.address})
        fundings = recv(ws)
        assert fundings["channel"] == "userFundings"
        assert fundings["data"] == {"user": user, "isSnapshot": True, "fundings": []}
        subscribe(ws, {"type": "orderUpdates", "user": wallet.address})
        px = round(float(info.all_mids()["ETH"]) * 0.95, 3)
        answer = Exchange(wallet, simulator.base_url).order("ETH", True, 5.0, px, {"limit": {"tif": "Gtc"}})
        oid = answer["response"]["data"]["statuses"][0]["resting"]["oid"]
        updates = [json.loads(r) for r in until_pong(ws)]
        orders = [u for m in updates if m["channel"] == "orderUpdates" for u in m["data"]]
        assert [(u["order"]["oid"], u["status"]) for u in orders] == [(oid, "open")]


def test_ws_idle_connection_closed_but_pinging_one_kept(simulator_factory: Factory) -> None:
    sim = simulator_factory("--ws-idle-timeout-secs", "2")
    with ws_client(sim) as quiet, ws_client(sim) as chatty:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:  # keep one client talking for twice the idle limit
            send(chatty, {"method": "ping"})
            assert recv(chatty) == {"channel": "pong"}
            time.sleep(0.2)
        with pytest.raises(ConnectionClosed):
            while True:
                quiet.recv(timeout=10)


def test_ws_fault_drop_every_n_seconds_and_admin_drop(simulator: SimulatorProcess) -> None:
    with ws_client(simulator) as ws:
        assert simulator.drop_ws() == 1
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=10)
    simulator.set_faults(ws_drop_every_secs=0.3)
    with ws_client(simulator) as ws, pytest.raises(ConnectionClosed):
        while True:
            send(ws, {"method": "ping"})
            ws.recv(timeout=10)
    simulator.set_faults(reset=True)
    assert simulator.state()["ws_dropped"] >= 2


def test_ws_fault_pause_candle_feed_loses_candles_until_resumed(simulator_factory: Factory) -> None:
    sim = manual(simulator_factory)
    with ws_client(sim) as ws:
        subscribe(ws, {"type": "candle", "coin": "ETC", "interval": "5m"})
        subscribe(ws, {"type": "allMids"})
        until_pong(ws)
        sim.set_faults(pause_candle_feed=True)
        sim.advance(bars=2)
        assert channels(until_pong(ws)) == ["allMids"]
        sim.set_faults(pause_candle_feed=False)
        t = sim.advance(ms=1000)
        pushed = [json.loads(r) for r in until_pong(ws)]
        candles = [m["data"] for m in pushed if m["channel"] == "candle"]
        assert [c["t"] for c in candles] == [t // IV * IV]  # missed bars are not replayed


def test_sdk_websocket_receives_all_mids_and_candles(simulator_factory: Factory) -> None:
    sim = simulator_factory("--speed", "120", "--tick-ms", "100")
    info = Info(sim.base_url, skip_ws=False)
    got: list[dict[str, Any]] = []
    try:
        info.subscribe({"type": "allMids"}, got.append)
        info.subscribe({"type": "candle", "coin": "ETH", "interval": "5m"}, got.append)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and {m["channel"] for m in got} != {"allMids", "candle"}:
            time.sleep(0.05)
    finally:
        info.disconnect_websocket()
    assert {m["channel"] for m in got} == {"allMids", "candle"}
    candle = next(m["data"] for m in got if m["channel"] == "candle")
    assert candle["s"] == "ETH" and candle["i"] == "5m"


def test_ws_per_ip_subscription_and_user_limits(simulator_factory: Factory) -> None:
    sim = manual(simulator_factory, "--synthetic", "1001")
    with ws_client(sim) as ws:
        for n in range(1, 1001):
            send(ws, {"method": "subscribe", "subscription": {"type": "trades", "coin": f"SYN{n:04d}"}})
        assert channels(until_pong(ws)).count("subscriptionResponse") == 1000
        send(ws, {"method": "subscribe", "subscription": {"type": "trades", "coin": "SYN1001"}})
        assert channels(until_pong(ws)) == ["error"]
    with ws_client(sim) as ws:  # the closed connection's subscriptions no longer count
        users = [eth_account.Account.create().address for _ in range(11)]
        for user in users[:10]:
            subscribe(ws, {"type": "userFills", "user": user})
        send(ws, {"method": "subscribe", "subscription": {"type": "orderUpdates", "user": users[0]}})
        send(ws, {"method": "subscribe", "subscription": {"type": "userFills", "user": users[10]}})
        got = [json.loads(r) for r in until_pong(ws)]
        assert [m["channel"] for m in got if m["channel"] in ("subscriptionResponse", "error")] == [
            "subscriptionResponse", "error"]
