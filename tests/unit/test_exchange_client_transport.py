"""ExchangeTransport outcome classification against a scripted loopback server.

Every reason code of every outcome kind has a scenario here (coverage by vocabulary). The key
property: a lost answer (timeout, reset, 5xx, garbage) is AMBIGUOUS — never a rejection — and the
transport never re-sends.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

from engine.enums import AmbiguousReason, NotSentReason, VenueRejectReason
from engine.venue import types as hl
from engine.venue.exchange_client import (
    ActionSigner,
    ExchangeAccepted,
    ExchangeAmbiguous,
    ExchangeNotSent,
    ExchangeRejected,
    ExchangeTransport,
    OrderSpec,
    SignedAction,
    SigningKey,
    cloid_for,
)
from engine.venue.rate_budget import RateBudget
from tests.unit.test_rest_client_scripted_server import Close, Hang, Reply, ScriptedServer, Step
from tests.unit.test_rest_client_scripted_server import scripted_server as scripted_server

SIGNER = ActionSigner(SigningKey.from_hex("0x" + "11" * 32), is_mainnet=False)


def order() -> SignedAction:
    return SIGNER.sign_orders(
        [
            OrderSpec(asset=0, is_buy=True, limit_px=65000.0, sz=0.001, cloid=cloid_for("a")),
            OrderSpec(asset=0, is_buy=True, limit_px=64000.0, sz=0.001, cloid=cloid_for("b")),
        ]
    )


def transport(
    server_url: str, *, budget: RateBudget | None = None, timeout_secs: float = 5.0
) -> ExchangeTransport:
    return ExchangeTransport(server_url, timeout_secs=timeout_secs, budget=budget or RateBudget(1200))


def test_transport_posts_the_exact_signed_body_and_parses_statuses(scripted_server: ScriptedServer) -> None:
    reply = {"status": "ok", "response": {"type": "order", "data": {"statuses": [
        {"resting": {"oid": 77, "cloid": cloid_for("a")}},
        {"error": "Order must have minimum value of $10. asset=0"}]}}}  # fmt: skip
    scripted_server.script(Reply(200, reply))
    signed = order()
    outcome = transport(scripted_server.base_url).post(signed)
    assert isinstance(outcome, ExchangeAccepted) and outcome.nonce == signed.nonce
    assert outcome.ack.statuses[0] == hl.RestingStatus(77, cloid_for("a"))
    assert isinstance(outcome.ack.statuses[1], hl.ErrorStatus) and not outcome.ack.all_ok
    assert [(r.path, r.body) for r in scripted_server.requests] == [("/exchange", signed.body)]


def _refused_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there any more
    return f"http://127.0.0.1:{port}"


# Scenario per reason code: (server steps, expected outcome type, transport kwargs)
_AMBIGUOUS: dict[AmbiguousReason, list[Step]] = {
    AmbiguousReason.TIMEOUT: [Hang(10.0)],
    AmbiguousReason.CONNECTION_LOST: [Close()],
    AmbiguousReason.SERVER_ERROR: [Reply(502, "bad gateway")],
    AmbiguousReason.UNREADABLE_RESPONSE: [Reply(200, b"{not json")],
}
_REJECTED: dict[VenueRejectReason, list[Step]] = {
    VenueRejectReason.VENUE_ERROR: [
        Reply(200, {"status": "err", "response": "User or API Wallet does not exist."})
    ],
    VenueRejectReason.HTTP_CLIENT_ERROR: [
        Reply(422, "Failed to deserialize the JSON body into the target type")
    ],
    VenueRejectReason.RATE_LIMITED: [Reply(429, "rate limited", {"Retry-After": "1"})],
}


def test_every_reason_code_has_a_scenario() -> None:
    assert set(_AMBIGUOUS) == set(AmbiguousReason)
    assert set(_REJECTED) == set(VenueRejectReason)


@pytest.mark.parametrize("reason", list(AmbiguousReason))
def test_lost_or_unreadable_answers_are_ambiguous_and_not_resent(
    scripted_server: ScriptedServer, reason: AmbiguousReason
) -> None:
    scripted_server.script(*_AMBIGUOUS[reason])
    scripted_server.default = Reply(200, {"status": "ok", "response": {"type": "default"}})
    outcome = transport(scripted_server.base_url, timeout_secs=0.3).post(order())
    assert isinstance(outcome, ExchangeAmbiguous), outcome
    assert outcome.reason is reason and outcome.kind == "ambiguous"
    assert len(scripted_server.requests) == 1  # never retried


def test_ok_reply_with_malformed_statuses_is_ambiguous(scripted_server: ScriptedServer) -> None:
    scripted_server.script(
        Reply(200, {"status": "ok", "response": {"type": "order", "data": {"statuses": [{}]}}})
    )
    outcome = transport(scripted_server.base_url).post(order())
    assert isinstance(outcome, ExchangeAmbiguous) and outcome.reason is AmbiguousReason.UNREADABLE_RESPONSE


@pytest.mark.parametrize("reason", list(VenueRejectReason))
def test_refusals_are_rejections(scripted_server: ScriptedServer, reason: VenueRejectReason) -> None:
    scripted_server.script(*_REJECTED[reason])
    outcome = transport(scripted_server.base_url).post(order())
    assert isinstance(outcome, ExchangeRejected) and outcome.reason is reason
    assert len(scripted_server.requests) == 1


def test_rate_limited_reply_penalises_the_shared_budget(scripted_server: ScriptedServer) -> None:
    scripted_server.script(*_REJECTED[VenueRejectReason.RATE_LIMITED])
    budget = RateBudget(1200, clock=lambda: 0.0)
    transport(scripted_server.base_url, budget=budget).post(order())
    assert budget.available() < 0


_NOT_SENT: dict[NotSentReason, Callable[[ScriptedServer], dict[str, Any]]] = {
    NotSentReason.CONNECT_FAILED: lambda server: {"url": _refused_url()},
    NotSentReason.RATE_BUDGET: lambda server: {"url": server.base_url, "exhaust": True},
}


@pytest.mark.parametrize("reason", list(NotSentReason))
def test_nothing_sent_is_reported_as_not_sent(scripted_server: ScriptedServer, reason: NotSentReason) -> None:
    assert set(_NOT_SENT) == set(NotSentReason)
    setup = _NOT_SENT[reason](scripted_server)
    budget = RateBudget(1200, clock=lambda: 0.0)
    if setup.get("exhaust"):
        budget.charge(1200)
    outcome = transport(setup["url"], budget=budget).post(order(), budget_wait_secs=0.0)
    assert isinstance(outcome, ExchangeNotSent) and outcome.reason is reason
    assert scripted_server.requests == []


def test_transport_charges_exchange_weight(scripted_server: ScriptedServer) -> None:
    scripted_server.script(Reply(200, {"status": "ok", "response": {"type": "default"}}))
    budget = RateBudget(1200, clock=lambda: 0.0)
    transport(scripted_server.base_url, budget=budget).post(SIGNER.sign_update_leverage(0, 5))
    assert budget.available() == 1199


def test_transport_waits_for_budget_refill_within_its_allowance(scripted_server: ScriptedServer) -> None:
    scripted_server.script(Reply(200, {"status": "ok", "response": {"type": "default"}}))
    now = [0.0]
    waits: list[float] = []

    def sleep(secs: float) -> None:
        waits.append(secs)
        now[0] += secs

    budget = RateBudget(1200, clock=lambda: now[0], sleep=sleep)
    budget.charge(1200)
    outcome = transport(scripted_server.base_url, budget=budget).post(SIGNER.sign_schedule_cancel(None))
    assert isinstance(outcome, ExchangeAccepted)
    assert waits == [pytest.approx(0.05)]  # one weight at 20 weight per second
