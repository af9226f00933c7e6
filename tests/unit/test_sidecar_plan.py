"""The fleet's pure core: rendezvous assignment (balance, minimal movement, budgets), the per-IP
capacity arithmetic, the connection plan, and the client-side rate window."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from engine.sidecar.pacing import SlidingWindow
from engine.sidecar.plan import (
    Capacity,
    MarketSource,
    WsBudget,
    assign,
    connection_plan,
    ranked,
    rest_market_capacity,
    ws_market_capacity,
)

MARKETS = [f"C{i:04d}" for i in range(3000)]
BIG = Capacity(10**6, 0)


def _owner(assignment_shares: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {m: member for member, markets in assignment_shares.items() for m in markets}


def test_unbounded_assignment_is_balanced_and_every_market_has_one_owner() -> None:
    members = {f"node-{i}": BIG for i in range(4)}
    a = assign(MARKETS, members)
    counts = {m: len(s.ws) for m, s in a.shares.items()}
    assert sum(counts.values()) == len(MARKETS) and not a.uncovered
    assert len(_owner({m: s.ws for m, s in a.shares.items()})) == len(MARKETS)
    for n in counts.values():  # 750 expected each; rendezvous hashing stays within a few percent
        assert abs(n - 750) < 0.08 * 750, counts
    assert assign(MARKETS, dict(reversed(list(members.items())))) == a  # order of members is irrelevant


def test_removing_a_member_moves_only_its_markets_and_spreads_them() -> None:
    members = {f"node-{i}": BIG for i in range(4)}
    before = _owner({m: s.ws for m, s in assign(MARKETS, members).shares.items()})
    del members["node-2"]
    after = _owner({m: s.ws for m, s in assign(MARKETS, members).shares.items()})
    moved = {m for m in MARKETS if before[m] != after[m]}
    assert moved == {m for m in MARKETS if before[m] == "node-2"}
    receivers = Counter(after[m] for m in moved)
    assert set(receivers) == {"node-0", "node-1", "node-3"}
    assert min(receivers.values()) > 0.25 * len(moved)  # spread, not dumped on one survivor


def test_adding_a_member_moves_only_markets_to_it() -> None:
    members = {f"node-{i}": BIG for i in range(3)}
    before = _owner({m: s.ws for m, s in assign(MARKETS, members).shares.items()})
    members["node-9"] = BIG
    after = _owner({m: s.ws for m, s in assign(MARKETS, members).shares.items()})
    moved = [m for m in MARKETS if before[m] != after[m]]
    assert moved and all(after[m] == "node-9" for m in moved)
    assert abs(len(moved) - 750) < 0.1 * 750


def test_budgets_bound_each_member_then_rest_then_none() -> None:
    markets = MARKETS[:100]
    members = {"a": Capacity(30, 5), "b": Capacity(30, 10)}
    a = assign(markets, members)
    assert [len(a.shares["a"].ws), len(a.shares["b"].ws)] == [30, 30]
    assert [len(a.shares["a"].rest), len(a.shares["b"].rest)] == [5, 10]
    assert len(a.uncovered) == 25
    placed = [m for s in a.shares.values() for m in s.markets] + list(a.uncovered)
    assert sorted(placed) == sorted(markets)  # each market exactly once
    # the front of the watchlist (anchor, biggest volume) is on WebSocket first
    ws = {m for s in a.shares.values() for m in s.ws}
    assert set(markets[:60]) == ws
    sources = a.source_of()
    assert Counter(src for src, _ in sources.values()) == {
        MarketSource.WS: 60, MarketSource.REST: 15, MarketSource.NONE: 25
    }


def test_overflow_goes_to_the_next_choice_in_rank_order() -> None:
    members = {"a": Capacity(1, 0), "b": Capacity(1, 0), "c": Capacity(1, 0)}
    a = assign(["X", "Y"], members)
    first = ranked("X", ["a", "b", "c"])[0]
    assert a.shares[first].ws == ("X",)
    y_order = [m for m in ranked("Y", ["a", "b", "c"]) if m != first]
    assert a.shares[y_order[0]].ws == ("Y",)


def test_capacity_arithmetic_uses_the_venue_budget() -> None:
    venue = WsBudget()
    assert (venue.max_connections, venue.max_new_connections_per_min, venue.max_subscriptions,
            venue.max_messages_per_min) == (10, 30, 1000, 2000)  # fmt: skip
    assert ws_market_capacity(venue, fixed_subs=1, subs_per_market=1) == 999
    assert ws_market_capacity(venue, fixed_subs=3, subs_per_market=2) == 498
    few_conns = WsBudget(max_connections=2, subs_per_connection=100)
    assert ws_market_capacity(few_conns, fixed_subs=1, subs_per_market=1) == 199
    # 1200 weight/min, half for polling, 21 weight a poll: 28 markets at 1m, 1714 at 1h
    assert rest_market_capacity(1200, 0.5, 60_000) == 28
    assert rest_market_capacity(1200, 0.5, 3_600_000) == 1714
    assert rest_market_capacity(1200, 0.0, 3_600_000) == 0


def test_connection_plan_splits_within_the_budget_and_keeps_a_market_on_one_connection() -> None:
    budget = WsBudget(max_connections=4, subs_per_connection=50)
    markets = [f"M{i:03d}" for i in range(90)]
    plan = connection_plan(markets, fixed=[{"type": "allMids"}], per_market=["candle", "bbo"],
                           interval="1m", budget=budget)  # fmt: skip
    assert len(plan) == 4  # 181 subscriptions at 50 a connection
    assert plan[0][1][0] == {"type": "allMids"}
    seen = [m for chunk, _ in plan for m in chunk]
    assert sorted(seen) == markets
    for chunk, subs in plan:
        coins = {s["coin"] for s in subs if "coin" in s}
        assert coins == set(chunk)
        assert len(subs) <= 50 + 1
        assert all(s["interval"] == "1m" for s in subs if s["type"] == "candle")
    assert connection_plan([], fixed=[], per_market=["candle"], interval="1m", budget=budget) == []
    one = connection_plan(["A"], fixed=[{"type": "allMids"}], per_market=["candle"], interval="1h",
                          budget=WsBudget())  # fmt: skip
    assert one == [(("A",), [{"type": "allMids"}, {"type": "candle", "coin": "A", "interval": "1h"}])]


def test_sliding_window_keeps_headroom_and_waits_for_the_oldest_event() -> None:
    now = [0.0]
    window = SlidingWindow(10, headroom=0.9, clock=lambda: now[0])
    assert window.cap == 9
    assert [window.try_take() for _ in range(10)] == [True] * 9 + [False]
    now[0] = 30.0
    assert window.wait_secs() == pytest.approx(30.0)
    now[0] = 60.0
    assert window.try_take() and window.used() == 1


def test_sliding_window_take_blocks_until_room() -> None:
    window = SlidingWindow(2, window_secs=0.2, headroom=1.0)

    async def scenario() -> int:
        for _ in range(4):
            await window.take()
        return window.used()

    assert asyncio.run(scenario()) <= 2


def test_subscription_acknowledgements_are_recognised() -> None:
    """The socket resends what the venue did not acknowledge; these frames count as an ack."""
    import json as _json

    from engine.sidecar.ws import acked_subscription, sub_key

    sub = {"type": "candle", "coin": "BTC", "interval": "1m"}
    def response(method: str) -> str:
        data = {"method": method, "subscription": sub}
        return _json.dumps({"channel": "subscriptionResponse", "data": data})

    ok = response("subscribe")
    assert acked_subscription(ok) == sub_key(sub) == ("candle", "BTC", "1m", "", "")
    already = _json.dumps({"channel": "error", "data": f"Already subscribed: {_json.dumps(sub)}"})
    assert acked_subscription(already.encode()) == sub_key(sub)
    text = f"Cannot track more than 2 total subscriptions: {_json.dumps(sub)}"
    refused = _json.dumps({"channel": "error", "data": text})
    assert acked_subscription(refused) is None
    unsub = response("unsubscribe")
    assert acked_subscription(unsub) is None
    assert acked_subscription('{"channel":"candle","data":{}}') is None
    assert sub_key({"type": "userFills", "user": "0xAB"}) == ("userFills", "", "", "0xab", "")
    # one allMids per perp dex: distinct subscriptions, each acknowledged on its own
    assert sub_key({"type": "allMids", "dex": "xyz"}) != sub_key({"type": "allMids"})
