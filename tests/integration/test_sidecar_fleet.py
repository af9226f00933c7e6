"""Sidecars as a fleet on one box (issue 14 acceptance): each on its own loopback IP with its own
per-IP WebSocket budget, enforced by the simulator over real WS; a real redis-server.

One sidecar cannot carry the 60-market watchlist on WebSocket (30 candle subscriptions fit its
IP's 31): the rest go to REST polling. Three together carry all 60 on WebSocket. One is killed
(-9): its markets move to the other two when its heartbeat expires, and no candle is lost: Redis
equals the simulator's candleSnapshot for every market, contiguous, at the end.
"""

from __future__ import annotations

import signal
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


def test_three_sidecars_on_three_ips_carry_what_one_cannot_and_survive_a_kill(
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

    # one sidecar: 30 markets on its WebSockets, the other 30 polled over REST, all of them current
    a = _member(sim, redis_server.url, tmp_path, "a", "127.0.0.2").start()
    sidecars.append(a)
    wait_for(lambda: _sources(hub, symbols) == {MarketSource.WS: 30, MarketSource.REST: 30}, 60, "a alone")
    first = wait_for(lambda: all(_close_keys(redis_client, layout, symbols).values())
                     and _close_keys(redis_client, layout, symbols), 60, "backfill")  # fmt: skip
    start = max(first.values())  # type: ignore[union-attr]
    wait_for(lambda: _all_advanced(redis_client, layout, symbols, start + 5 * IV), 60, "a's markets advance")

    # three sidecars, three IPs: every market on WebSocket, no IP over its budget
    b = _member(sim, redis_server.url, tmp_path, "b", "127.0.0.3").start()
    c = _member(sim, redis_server.url, tmp_path, "c", "127.0.0.4").start()
    sidecars.extend([b, c])
    wait_for(lambda: set(_fleet(redis_client)) == {"a", "b", "c"}, 60, "b and c to join")
    wait_for(lambda: _sources(hub, symbols) == {MarketSource.WS: N}, 60, "all 60 on WebSocket")
    def shares_reported() -> bool:
        shares = [m.ws_markets for m in _fleet(redis_client).values()]
        return all(shares) and sum(shares) == N

    wait_for(shares_reported, 30, "the three shares")
    members = _fleet(redis_client)
    assert all(m.ws_markets <= 30 and m.rest_markets == 0 for m in members.values())
    assert {m.local_addr for m in members.values()} == {"127.0.0.2", "127.0.0.3", "127.0.0.4"}
    on_b = [s for s, owner in _owners(redis_client, symbols).items() if owner == "ws b"]
    assert on_b
    mid = max(v or 0 for v in _close_keys(redis_client, layout, symbols).values())
    wait_for(lambda: _all_advanced(redis_client, layout, symbols, mid + 5 * IV), 60, "fleet markets advance")

    # kill -9 b: when its heartbeat expires, a and c take its markets, still all on WebSocket
    b.kill9()
    killed_at = max(v or 0 for v in _close_keys(redis_client, layout, symbols).values())
    moved = ("ws a", "ws c")
    wait_for(lambda: all(_owners(redis_client, on_b)[s] in moved for s in on_b), 30, "b's markets to move")
    assert _sources(hub, symbols) == {MarketSource.WS: N}
    wait_for(lambda: _all_advanced(redis_client, layout, symbols, killed_at + 10 * IV), 60, "after the kill")

    with _rest(sim) as rest:
        wait_for(lambda: _matches(redis_client, layout, rest, symbols), 30, "Redis to equal the venue")
        for proc in (a, c):  # together: a clean stop hands its markets over, not wanted at the end
            proc.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        assert a.stop() == 0 and c.stop() == 0
        assert_redis_equals_sim(redis_client, layout, rest, symbols)  # contiguous, nothing lost
    assert read_members(redis_client, FleetKeys("fl")) == {}  # clean stops leave the fleet at once
    assert _sources(hub, symbols) == {MarketSource.NONE: N}
