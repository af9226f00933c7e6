"""The venue's per-IP WebSocket caps over real sockets: simultaneous connections, new connections
a minute and messages a minute (small values here; the defaults are the venue's 10 / 30 / 2,000)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from simulator.feed import SlidingWindow, WsLimits
from tests.fixtures.sim_fixtures import SimulatorProcess


def test_connection_and_message_caps(simulator_factory: Callable[..., SimulatorProcess]) -> None:
    sim = simulator_factory("--speed", "0", "--ws-max-connections", "2",
                            "--ws-max-new-connections-per-min", "3", "--ws-max-messages-per-min", "4")
    with connect(sim.ws_url, open_timeout=10) as first:
        with connect(sim.ws_url, open_timeout=10):
            with pytest.raises(InvalidStatus) as refused:
                connect(sim.ws_url, open_timeout=10)
            assert refused.value.response.status_code == 429
        with connect(sim.ws_url, open_timeout=10):  # the third new connection this minute
            pass
        with pytest.raises(InvalidStatus):  # the fourth is refused, although only one is open
            connect(sim.ws_url, open_timeout=10)
        assert first.recv(timeout=10) == "Websocket connection established."
        for _ in range(4):
            first.send(json.dumps({"method": "ping"}))
            assert json.loads(first.recv(timeout=10)) == {"channel": "pong"}
        first.send(json.dumps({"method": "ping"}))
        assert json.loads(first.recv(timeout=10)) == {"channel": "error",
                                                      "data": "Too many websocket messages per minute"}
    assert sim.state()["ws_refused"] == 2


def test_window_slides_over_sixty_seconds() -> None:
    now = [0.0]
    window = SlidingWindow(lambda: now[0])
    assert [window.try_add("ip", 2) for _ in range(3)] == [True, True, False]
    now[0] = 59.9
    assert not window.try_add("ip", 2)
    now[0] = 60.0
    assert window.try_add("ip", 2) and window.try_add("other", 2)
    assert all(window.try_add("ip", 0) for _ in range(10))  # 0 = no cap
    assert WsLimits() == WsLimits(max_connections=10, max_new_per_min=30, max_messages_per_min=2000,
                                  max_subscriptions=1000)


def _subscribe(ws: object, coin: str) -> dict[str, object]:
    sub = {"type": "candle", "coin": coin, "interval": "1m"}
    ws.send(json.dumps({"method": "subscribe", "subscription": sub}))  # type: ignore[attr-defined]
    while True:
        raw = ws.recv(timeout=10)  # type: ignore[attr-defined]
        if not raw.startswith("{"):
            continue  # "Websocket connection established."
        msg = json.loads(raw)
        if msg["channel"] in ("subscriptionResponse", "error"):
            return msg


def test_subscription_cap_is_per_source_ip_across_loopback_addresses(
    simulator_factory: Callable[..., SimulatorProcess],
) -> None:
    """127.0.0.2 and 127.0.0.3 are two IPs to the venue (Linux routes all of 127/8 to lo): each has
    its own subscription budget, shared by its connections."""
    sim = simulator_factory("--synthetic", "5", "--speed", "0", "--ws-max-subscriptions", "2")
    coins = [u["name"] for u in sim.info({"type": "meta"}).json()["universe"]]
    with connect(sim.ws_url, open_timeout=10, source_address=("127.0.0.2", 0)) as a1, \
            connect(sim.ws_url, open_timeout=10, source_address=("127.0.0.2", 0)) as a2, \
            connect(sim.ws_url, open_timeout=10, source_address=("127.0.0.3", 0)) as b:
        assert _subscribe(a1, coins[0])["channel"] == "subscriptionResponse"
        assert _subscribe(a2, coins[1])["channel"] == "subscriptionResponse"
        refused = _subscribe(a2, coins[2])
        assert refused["channel"] == "error"
        assert "Cannot track more than 2 total subscriptions" in str(refused["data"])
        assert _subscribe(b, coins[2])["channel"] == "subscriptionResponse"  # another IP, its own budget
        assert _subscribe(b, coins[3])["channel"] == "subscriptionResponse"
