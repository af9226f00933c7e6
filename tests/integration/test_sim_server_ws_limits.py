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
    assert WsLimits() == WsLimits(max_connections=10, max_new_per_min=30, max_messages_per_min=2000)
