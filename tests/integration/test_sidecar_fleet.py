"""Sidecars as a fleet on one box (issue 14 acceptance): each on its own loopback IP with its own
per-IP WebSocket budget, enforced by the simulator over real WS; a real redis-server.

One sidecar cannot carry the 60-market watchlist on WebSocket (30 candle subscriptions fit its
IP's 31): the rest go to REST polling. Two together carry all 60 on WebSocket. One is killed
(-9): when its heartbeat expires its markets move to the survivor (WebSocket up to its budget,
REST polling beyond), and no candle is lost: Redis equals the simulator's candleSnapshot for
every market, contiguous, at the end.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import redis

from cluster.redis_layout import RedisLayout
from engine.marketdata.hub import HubSettings, MarketDataHub
from engine.runtime.redis_server import EmbeddedRedis
from engine.sidecar.fleet import FleetKeys, MemberInfo, read_members
from engine.sidecar.plan import MarketSource
from tests.fixtures.sim_fixtures import SimulatorProcess
from tests.integration.test_sidecar_sim import (
    IV,
    SidecarProc,
    _all_advanced,
    _close_keys,
    _coins,
    _matches,
    _rest,
    assert_redis_equals_sim,
    sidecars,  # noqa: F401  (fixture)
    wait_for,
)

N = 60
SUBS_PER_IP = 31  # allMids + 30 candles
SIM = ("--synthetic", str(N), "--interval", "1m", "--speed", "120", "--tick-ms", "50",
       "--rate-limit-per-min", "100000000", "--ws-max-subscriptions", str(SUBS_PER_IP))  # fmt: skip


def _member(sim: SimulatorProcess, redis_url: str, tmp: Path, name: str, ip: str) -> SidecarProc:
    return SidecarProc(
        sim, redis_url, tmp / name, "fl",
        AI_QUANT_TOP_N=str(N), AI_QUANT_WS_ENABLE_BBO="0", AI_QUANT_ANCHOR_SYMBOL="NONE",
        AI_QUANT_SIDECAR_ID=name, AI_QUANT_SIDECAR_LOCAL_ADDR=ip,
        HL_WS_MAX_SUBSCRIPTIONS=str(SUBS_PER_IP), HL_WS_SUBS_PER_CONNECTION="8",
        AI_QUANT_SIDECAR_MEMBER_TTL_MS="1500", AI_QUANT_CANDLE_CROSS_CHECK="1",
    )  # fmt: skip


def _sources(hub: MarketDataHub, symbols: list[str]) -> Counter[MarketSource]:
    return Counter(hub.market_sources(symbols).values())


def _fleet(client: redis.Redis) -> dict[str, MemberInfo]:
    return read_members(client, FleetKeys("fl"))


def _owners(client: redis.Redis, symbols: list[str]) -> dict[str, str]:
    raws = client.hmget(FleetKeys("fl").sources("1m"), symbols)
    return {s: (r or b"").decode() for s, r in zip(symbols, raws, strict=True)}


def test_two_sidecars_on_two_ips_carry_what_one_cannot_and_a_kill_loses_no_candle(
    simulator_factory: Callable[..., SimulatorProcess],
    redis_client: redis.Redis,
    redis_server: EmbeddedRedis,
    tmp_path: Path,
    sidecars: list[SidecarProc],  # noqa: F811
) -> None:
    sim = simulator_factory(*SIM)
    layout = RedisLayout("fl")
    symbols = _coins(sim, N)
    hub = MarketDataHub(redis_client=redis_client, layout=layout, settings=HubSettings(interval="1m"))
    alone = {MarketSource.WS: 30, MarketSource.REST: 30}

    # one sidecar: 30 markets on its WebSockets (its IP's budget), the other 30 polled over REST
    a = _member(sim, redis_server.url, tmp_path, "a", "127.0.0.2").start()
    sidecars.append(a)
    wait_for(lambda: _sources(hub, symbols) == alone, 60, "a alone")
    first = wait_for(lambda: all(_close_keys(redis_client, layout, symbols).values())
                     and _close_keys(redis_client, layout, symbols), 60, "backfill")  # fmt: skip
    start = max(first.values())  # type: ignore[union-attr]
    wait_for(lambda: _all_advanced(redis_client, layout, symbols, start + 5 * IV), 60, "a's markets advance")

    # two sidecars, two IPs: every market on WebSocket, neither IP over its budget
    b = _member(sim, redis_server.url, tmp_path, "b", "127.0.0.3").start()
    sidecars.append(b)
    wait_for(lambda: set(_fleet(redis_client)) == {"a", "b"}, 60, "b to join")
    wait_for(lambda: _sources(hub, symbols) == {MarketSource.WS: N}, 60, "all 60 on WebSocket")
    # each member reports its share on its next beat: 30 on WebSocket each, nothing polled
    wait_for(lambda: {(m.ws_markets, m.rest_markets) for m in _fleet(redis_client).values()} == {(30, 0)},
             30, "the two shares")  # fmt: skip
    members = _fleet(redis_client)
    assert {m.local_addr for m in members.values()} == {"127.0.0.2", "127.0.0.3"}
    own = lambda: layout.read_sidecar_heartbeats(redis_client, ["a", "b"])  # noqa: E731
    beats = wait_for(lambda: all(own().values()) and own(), 30, "a heartbeat of each sidecar, by its id")
    assert {m: hb.sidecar for m, hb in beats.items()} == {"a": "a", "b": "b"}  # type: ignore[union-attr]
    on_b = [s for s, owner in _owners(redis_client, symbols).items() if owner == "ws b"]
    assert len(on_b) == 30
    mid = max(v or 0 for v in _close_keys(redis_client, layout, symbols).values())
    wait_for(lambda: _all_advanced(redis_client, layout, symbols, mid + 5 * IV), 60, "fleet markets advance")

    # kill -9 b: when its heartbeat expires, a takes its markets back (WS within its budget, REST beyond)
    b.kill9()
    killed_at = max(v or 0 for v in _close_keys(redis_client, layout, symbols).values())
    wait_for(lambda: all(_owners(redis_client, on_b)[s].endswith(" a") for s in on_b), 30, "b moved")
    assert _sources(hub, symbols) == alone
    wait_for(lambda: _all_advanced(redis_client, layout, symbols, killed_at + 10 * IV), 60, "after the kill")
    assert hub.health().ok  # every market's sidecar (a) beats; b's frozen key names no market now

    with _rest(sim) as rest:
        try:
            wait_for(lambda: _matches(redis_client, layout, rest, symbols), 30, "Redis to equal the venue")
        except AssertionError:
            assert_redis_equals_sim(redis_client, layout, rest, symbols)
        assert a.stop() == 0
        assert_redis_equals_sim(redis_client, layout, rest, symbols)  # contiguous, nothing lost
    assert _fleet(redis_client) == {}  # a clean stop leaves the fleet at once
    assert _sources(hub, symbols) == {MarketSource.NONE: N}


def test_membership_expiry_agreed_watchlist_and_sources_in_real_redis(redis_client: redis.Redis) -> None:
    """The fleet's Redis side alone: a member that stops beating disappears when its TTL runs out,
    everyone assigns the lowest live id's watchlist, and a dead member's sources read as none."""
    from engine.sidecar.fleet import FleetMember, read_sources
    from engine.sidecar.plan import assign

    a = FleetMember(redis_client, "fm", member="a", ttl_ms=300, interval="1m")
    b = FleetMember(redis_client, "fm", member="b", ttl_ms=300, interval="1m")
    info_a, info_b = MemberInfo("a", 2, 1), MemberInfo("b", 2, 1)
    caps, agreed = a.beat(info_a, ["X", "Y", "Z", "W"])
    assert agreed == ("X", "Y", "Z", "W")
    caps, agreed = b.beat(info_b, ["W", "Z", "Y", "X", "V"])  # resolved later, in another order
    assert set(caps) == {"a", "b"} and agreed == ("X", "Y", "Z", "W")  # a (lowest id) decides
    assignment = assign(agreed, caps)
    assert a.publish_sources(assignment) > 0 and b.publish_sources(assignment) > 0
    keys = FleetKeys("fm")
    assert set(read_sources(redis_client, keys, "1m", list(agreed)).values()) == {MarketSource.WS}
    on_b = assignment.shares["b"].markets
    assert on_b
    # b stops beating: once its key expires it is dead for everyone, and so are its sources
    wait_for(lambda: set(a.beat(info_a, agreed)[0]) == {"a"}, 10, "b to expire")
    assert all(read_sources(redis_client, keys, "1m", list(on_b))[m] is MarketSource.NONE for m in on_b)
    assert set(read_members(redis_client, keys)) == {"a"}  # pruned from the member set too
    a.retire()
    assert read_members(redis_client, keys) == {}
