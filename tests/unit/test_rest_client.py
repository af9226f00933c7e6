"""HyperliquidInfoClient against a scripted loopback HTTP server: request bodies, parsing of every
recorded answer through the client, retry/backoff on 429/5xx/lost connections, typed errors."""

from __future__ import annotations

import random
from typing import Any

import pytest

from engine.config.env import ConfigError
from engine.venue import types as hl
from engine.venue.info_client import DEFAULT_HL_BASE_URL, HyperliquidInfoClient, RetryPolicy, hl_base_url
from engine.venue.rate_budget import RateBudget, RateBudgetExhausted
from tests.unit.test_hl_parsing import RECORDED
from tests.unit.test_rest_client_scripted_server import Close, Hang, Reply, ScriptedServer
from tests.unit.test_rest_client_scripted_server import scripted_server as scripted_server

USER = "0x5e9ee1089755c3435139848e47e6635505d5a13a"


class FakeTime:
    """A clock that only moves when the client sleeps, so backoff waits cost no real time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, secs: float) -> None:
        self.sleeps.append(secs)
        self.now += secs


def make_client(
    server: ScriptedServer,
    fake: FakeTime | None = None,
    *,
    budget: RateBudget | None = None,
    retry: RetryPolicy | None = None,
    timeout_secs: float = 5.0,
) -> HyperliquidInfoClient:
    fake = fake or FakeTime()
    return HyperliquidInfoClient(
        server.base_url,
        timeout_secs=timeout_secs,
        budget=budget or RateBudget(1200, clock=fake.clock, sleep=fake.sleep),
        retry=retry or RetryPolicy(max_attempts=4, backoff_base_secs=0.5, backoff_max_secs=4.0),
        rng=random.Random(7),
        sleep=fake.sleep,
        clock=fake.clock,
    )


def call_for_request(client: HyperliquidInfoClient, request: dict[str, Any]) -> Any:
    """Make the typed call that produces `request` (the recorded request body)."""
    kind = request["type"]
    if kind == "meta":
        return client.meta()
    if kind == "allMids":
        return client.all_mids()
    if kind == "candleSnapshot":
        r = request["req"]
        return client.candle_snapshot(r["coin"], r["interval"], r["startTime"], r["endTime"])
    if kind == "l2Book":
        return client.l2_book(request["coin"])
    if kind == "fundingHistory":
        return client.funding_history(request["coin"], request["startTime"], request.get("endTime"))
    if kind == "userFillsByTime":
        return client.user_fills_by_time(request["user"], request["startTime"], request.get("endTime"))
    by_user = {
        "clearinghouseState": client.clearinghouse_state,
        "openOrders": client.open_orders,
        "frontendOpenOrders": client.frontend_open_orders,
        "userFills": client.user_fills,
    }
    return by_user[kind](request["user"])


@pytest.mark.parametrize(("name", "request_body", "body"), RECORDED, ids=[r[0] for r in RECORDED])
def test_info_client_recorded_answer_parses_and_request_matches(
    scripted_server: ScriptedServer, name: str, request_body: dict[str, Any], body: Any
) -> None:
    scripted_server.script(Reply(200, body))
    result = call_for_request(make_client(scripted_server), request_body)
    assert result, name
    sent = scripted_server.requests[0]
    assert sent.path == "/info"
    expected = dict(request_body)
    if "user" in expected:
        expected["user"] = expected["user"].lower()
    if expected["type"] == "userFillsByTime":
        expected["aggregateByTime"] = False
    assert sent.json() == expected


def test_info_client_429_then_500_then_ok_retries_with_backoff(scripted_server: ScriptedServer) -> None:
    scripted_server.script(
        Reply(429, "slow down", {"Retry-After": "3"}),
        Reply(502, "bad gateway"),
        Reply(200, {"BTC": "65000.5"}),
    )
    fake = FakeTime()
    mids = make_client(scripted_server, fake).all_mids()
    assert mids == {"BTC": 65000.5}
    assert len(scripted_server.requests) == 3
    assert len({r.body for r in scripted_server.requests}) == 1
    # Retry-After honoured first (the emptied budget may add a short refill wait), then the second
    # backoff: d = 0.5 * 2 = 1.0, drawn from [d/2, d]
    assert fake.sleeps[0] >= 3.0
    assert 0.5 <= fake.sleeps[-1] <= 1.0


def test_info_client_backoff_grows_exponentially_and_is_capped(scripted_server: ScriptedServer) -> None:
    scripted_server.default = Reply(503, "down")
    fake = FakeTime()
    retry = RetryPolicy(max_attempts=6, backoff_base_secs=0.5, backoff_max_secs=3.0, total_deadline_secs=600)
    with pytest.raises(hl.TemporaryVenueError) as err:
        make_client(scripted_server, fake, retry=retry).meta()
    assert err.value.attempts == 6 and "503" in err.value.detail
    assert len(scripted_server.requests) == 6
    caps = [0.5, 1.0, 2.0, 3.0, 3.0]
    assert len(fake.sleeps) == 5
    for wait, cap in zip(fake.sleeps, caps, strict=True):
        assert cap / 2 <= wait <= cap


def test_info_client_total_deadline_stops_retries_early(scripted_server: ScriptedServer) -> None:
    scripted_server.default = Reply(500, "down")
    fake = FakeTime()
    retry = RetryPolicy(max_attempts=10, backoff_base_secs=2.0, backoff_max_secs=2.0, total_deadline_secs=5.0)
    with pytest.raises(hl.TemporaryVenueError):
        make_client(scripted_server, fake, retry=retry).all_mids()
    assert len(scripted_server.requests) < 10
    assert sum(fake.sleeps) < 5.0


def test_info_client_lost_connection_then_ok_is_retried(scripted_server: ScriptedServer) -> None:
    scripted_server.script(Close(), Reply(200, {"ETH": "1903.95"}))
    assert make_client(scripted_server).all_mids() == {"ETH": 1903.95}
    assert len(scripted_server.requests) == 2


def test_info_client_timeout_then_ok_is_retried(scripted_server: ScriptedServer) -> None:
    scripted_server.script(Hang(5.0), Reply(200, {"ETH": "1.5"}))
    assert make_client(scripted_server, timeout_secs=0.3).all_mids() == {"ETH": 1.5}
    assert len(scripted_server.requests) == 2


def test_info_client_4xx_is_a_rejection_without_retry(scripted_server: ScriptedServer) -> None:
    scripted_server.script(Reply(422, "Failed to deserialize the JSON body"))
    with pytest.raises(hl.VenueRejection) as err:
        make_client(scripted_server).meta()
    assert err.value.status_code == 422 and "deserialize" in err.value.message
    assert len(scripted_server.requests) == 1


def test_info_client_non_json_200_is_a_parse_error(scripted_server: ScriptedServer) -> None:
    scripted_server.script(Reply(200, b"<html>oops</html>"))
    with pytest.raises(hl.ParseError) as err:
        make_client(scripted_server).all_mids()
    assert err.value.request == "allMids"


def test_info_client_malformed_answer_is_a_parse_error_naming_the_field(
    scripted_server: ScriptedServer,
) -> None:
    scripted_server.script(Reply(200, {"BTC": "NaN"}))
    with pytest.raises(hl.ParseError) as err:
        make_client(scripted_server).all_mids()
    assert err.value.field == "BTC"


def test_info_client_charges_documented_weights_to_the_shared_budget(scripted_server: ScriptedServer) -> None:
    clock = [0.0]
    budget = RateBudget(1200, clock=lambda: clock[0])
    fills = next(b for _n, r, b in RECORDED if r["type"] == "userFills")
    scripted_server.script(Reply(200, {"BTC": "1"}), Reply(200, fills))
    client = make_client(scripted_server, budget=budget)
    client.all_mids()
    assert budget.available() == 1200 - 2
    client.user_fills(USER)
    assert budget.available() == 1200 - 2 - 20 - len(fills) // 20


def test_info_client_budget_exhausted_fails_before_sending(scripted_server: ScriptedServer) -> None:
    clock = [0.0]
    budget = RateBudget(30, clock=lambda: clock[0], sleep=lambda s: None)
    budget.charge(25)
    fake = FakeTime()
    retry = RetryPolicy(max_attempts=2, total_deadline_secs=1.0)
    with pytest.raises(RateBudgetExhausted):
        make_client(scripted_server, fake, budget=budget, retry=retry).meta()
    assert scripted_server.requests == []


def test_info_client_order_status_by_cloid_and_oid(scripted_server: ScriptedServer) -> None:
    scripted_server.script(Reply(200, {"status": "unknownOid"}), Reply(200, {"status": "unknownOid"}))
    client = make_client(scripted_server)
    assert not client.order_status(USER, "0x" + "AB" * 16).known
    assert not client.order_status(USER, 12345).known
    assert [r.json()["oid"] for r in scripted_server.requests] == ["0x" + "ab" * 16, 12345]
    with pytest.raises(ValueError):
        client.order_status(USER, "0x12")


def test_info_client_rejects_bad_addresses_and_intervals_locally(scripted_server: ScriptedServer) -> None:
    client = make_client(scripted_server)
    with pytest.raises(ValueError):
        client.open_orders("0x1234")
    with pytest.raises(ValueError):
        client.candle_snapshot("BTC", "7m", 0, 1)
    assert scripted_server.requests == []


def test_hl_base_url_default_override_and_invalid() -> None:
    assert hl_base_url({}) == DEFAULT_HL_BASE_URL == "https://api.hyperliquid.xyz"
    assert hl_base_url({"AI_QUANT_HL_BASE_URL": "http://127.0.0.1:8080/"}) == "http://127.0.0.1:8080"
    with pytest.raises(ConfigError):
        hl_base_url({"AI_QUANT_HL_BASE_URL": "ftp://x"})
