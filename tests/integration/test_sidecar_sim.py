"""The sidecar as a subprocess against the simulator and a real Redis (issue 3 acceptance 1-4).

Every check compares Redis with the simulator's own `candleSnapshot`: same candles, contiguous,
no duplicates, keys pointing at the last closed candle.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from cluster.records import ShardStatus
from cluster.redis_layout import AccountEventKind, RedisLayout, decode_candle
from cluster.shard_core import ConfigSource, ShardCore, ShardSettings
from cluster.shard_store import RedisShardStore
from engine.enums import CandleSource, MarketHealthReason
from engine.marketdata.hub import HubSettings, MarketDataHub
from engine.runtime.redis_server import EmbeddedRedis
from engine.sidecar.settings import candles_db_path
from engine.venue.info_client import HyperliquidInfoClient
from engine.venue.rate_budget import RateBudget
from strategies.candle import Candle
from tests.fixtures.sim_fixtures import REPO_ROOT, SimulatorProcess

IV = 60_000
FAST = ("--interval", "1m", "--speed", "600", "--tick-ms", "50", "--rate-limit-per-min", "100000000")


def wait_for(cond: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class SidecarProc:
    """`python -m engine.sidecar` with test settings; logs to a file in the test's tmp dir."""

    def __init__(
        self, sim: SimulatorProcess, redis_url: str, state_dir: Path, prefix: str, **env: str
    ) -> None:
        self.env = dict(
            os.environ,
            AI_QUANT_HL_BASE_URL=sim.base_url,
            AI_QUANT_REDIS_URL=redis_url,
            AI_QUANT_REDIS_PREFIX=prefix,
            AI_QUANT_STATE_DIR=str(state_dir),
            AI_QUANT_INTERVAL="1m",
            AI_QUANT_LOOKBACK_BARS="50",
            AI_QUANT_CANDLE_REST_MIN_GAP_MS="0",
            HL_WS_SUB_SEND_MS="0",
            AI_QUANT_SIDECAR_HEARTBEAT_MS="100",
            HL_WS_RECONNECT_SECS="0.05",
            HL_WS_RECONNECT_MAX_SECS="0.5",
            AI_QUANT_CANDLE_VERIFY_SECS="0.5",
            AI_QUANT_REST_WEIGHT_PER_MIN="100000000",
            AI_QUANT_SIDECAR_FLUSH_MS="20",
            **env,
        )
        self.log_path = state_dir / "sidecar.log"
        self.db_path = candles_db_path(state_dir / "candles_dbs", "1m")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SidecarProc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "engine.sidecar"], cwd=REPO_ROOT, env=self.env, stdout=log, stderr=log
            )
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)  # stack dump into the log, for the failure report
            time.sleep(1)
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("sidecar did not stop on SIGTERM") from None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture
def sidecars() -> Iterator[list[SidecarProc]]:
    started: list[SidecarProc] = []
    yield started
    for proc in started:
        if proc.alive():
            proc.proc.kill()  # type: ignore[union-attr]
            proc.proc.wait()  # type: ignore[union-attr]


def _rest(sim: SimulatorProcess) -> HyperliquidInfoClient:
    return HyperliquidInfoClient(sim.base_url, timeout_secs=10, budget=RateBudget(100_000_000))


def _coins(sim: SimulatorProcess, n: int) -> list[str]:
    return [u["name"] for u in sim.info({"type": "meta"}).json()["universe"]][:n]


def _close_keys(client: redis.Redis, layout: RedisLayout, symbols: list[str]) -> dict[str, int | None]:
    return {s: k.closed_close_ms for s, k in layout.read_candle_keys(client, symbols, "1m").items()}


def _all_advanced(client: redis.Redis, layout: RedisLayout, symbols: list[str], beyond: int) -> bool:
    keys = _close_keys(client, layout, symbols)
    return all(v is not None and v >= beyond for v in keys.values())


def _snapshot(
    client: redis.Redis, layout: RedisLayout, sym: str
) -> tuple[list[Candle], int | None, int | None]:
    """One symbol's candles and both keys, read atomically (the sidecar may be writing)."""
    pipe = client.pipeline(transaction=True)
    pipe.zrangebyscore(layout.candles_key(sym, "1m"), "-inf", "+inf")
    pipe.hget(layout.close_key_hash("1m"), sym)
    pipe.hget(layout.open_key_hash("1m"), sym)
    raws, close, opened = pipe.execute()
    candles = [decode_candle(r) for r in raws]
    return candles, None if close is None else int(close), None if opened is None else int(opened)


def assert_redis_equals_sim(
    client: redis.Redis, layout: RedisLayout, rest: HyperliquidInfoClient, symbols: list[str]
) -> None:
    """Per symbol: contiguous, no duplicate, identical to the venue's candles, key = last close."""
    for sym in symbols:
        candles, close_key, open_key = _snapshot(client, layout, sym)
        assert candles, sym
        opens = [c.t for c in candles]
        assert opens == list(range(opens[0], opens[-1] + IV, IV)), f"{sym}: gap or duplicate in {opens}"
        venue = [c for c in rest.candle_snapshot(sym, "1m", opens[0], opens[-1]) if c.t <= opens[-1]]
        assert venue == candles, f"{sym}: Redis differs from the venue"
        assert close_key == candles[-1].close_ms
        assert open_key is not None and open_key >= candles[-1].t


def test_sidecar_50_symbols_fast_replay_redis_equals_venue(
    simulator_factory: Callable[..., SimulatorProcess],
    redis_client: redis.Redis,
    redis_server: EmbeddedRedis,
    tmp_path: Path,
    sidecars: list[SidecarProc],
) -> None:
    sim = simulator_factory("--synthetic", "50", *FAST)
    layout = RedisLayout("t1")
    symbols = _coins(sim, 50)
    sidecar = SidecarProc(sim, redis_server.url, tmp_path, "t1", AI_QUANT_TOP_N="50").start()
    sidecars.append(sidecar)
    first = wait_for(
        lambda: (
            all(_close_keys(redis_client, layout, symbols).values())
            and _close_keys(redis_client, layout, symbols)
        ),
        30,
        "backfill of 50 symbols",
    )
    start = max(first.values())  # type: ignore[union-attr]
    wait_for(lambda: _all_advanced(redis_client, layout, symbols, start + 20 * IV), 30, "20 more candles")
    with _rest(sim) as rest:
        # a closed bar whose final WS update never came is fixed by the sidecar's REST cross-check
        wait_for(lambda: _matches(redis_client, layout, rest, symbols), 20, "Redis to equal the venue")
        assert sidecar.stop() == 0
        assert_redis_equals_sim(redis_client, layout, rest, symbols)
    mids = layout.read_mids(redis_client, symbols)
    assert set(mids) == set(symbols) and all(m.price > 0 for m in mids.values())
    assert set(layout.read_bbo(redis_client, symbols)) == set(symbols)
    hub = MarketDataHub(redis_client=redis_client, layout=layout, settings=HubSettings(interval="1m"))
    snapshot = hub.candle_keys(symbols)
    assert snapshot.source is CandleSource.REDIS and snapshot.keys == _close_keys(
        redis_client, layout, symbols
    )


def test_sidecar_ws_drops_and_kill9_restart_leave_no_missing_or_duplicate_candle(
    simulator_factory: Callable[..., SimulatorProcess],
    redis_client: redis.Redis,
    redis_server: EmbeddedRedis,
    tmp_path: Path,
    sidecars: list[SidecarProc],
) -> None:
    sim = simulator_factory("--synthetic", "8", "--ws-drop-every-secs", "1.0", *FAST)
    layout = RedisLayout("t2")
    symbols = _coins(sim, 8)
    sidecar = SidecarProc(sim, redis_server.url, tmp_path, "t2", AI_QUANT_TOP_N="8").start()
    sidecars.append(sidecar)
    wait_for(lambda: all(_close_keys(redis_client, layout, symbols).values()), 30, "backfill")
    wait_for(lambda: sim.state()["ws_dropped"] >= 3, 30, "three WS drops")
    before_kill = max(v for v in _close_keys(redis_client, layout, symbols).values() if v)
    sidecar.kill9()
    wait_for(lambda: sim.state()["now_ms"] > before_kill + 15 * IV, 30, "the venue to move on")
    restarted = SidecarProc(sim, redis_server.url, tmp_path, "t2", AI_QUANT_TOP_N="8").start()
    sidecars.append(restarted)
    target = sim.state()["now_ms"] + 10 * IV
    wait_for(lambda: _all_advanced(redis_client, layout, symbols, target), 30, "candles after the restart")
    wait_for(lambda: sim.state()["ws_dropped"] >= 5, 30, "more WS drops after the restart")
    with _rest(sim) as rest:
        wait_for(lambda: _matches(redis_client, layout, rest, symbols), 20, "Redis to equal the venue")
        assert restarted.stop() == 0
        assert_redis_equals_sim(redis_client, layout, rest, symbols)


def test_sidecar_recovers_redis_outage_and_hub_falls_back_with_source(
    simulator_factory: Callable[..., SimulatorProcess],
    private_redis: EmbeddedRedis,
    tmp_path: Path,
    sidecars: list[SidecarProc],
) -> None:
    sim = simulator_factory("--synthetic", "5", *FAST)
    layout = RedisLayout("t3")
    symbols = _coins(sim, 5)
    client = redis.Redis.from_url(private_redis.url, socket_timeout=1, socket_connect_timeout=1)
    sidecar = SidecarProc(sim, private_redis.url, tmp_path, "t3", AI_QUANT_TOP_N="5").start()
    sidecars.append(sidecar)
    wait_for(lambda: all(_close_keys(client, layout, symbols).values()), 30, "backfill")
    rest = _rest(sim)
    hub = MarketDataHub(
        redis_client=client,
        layout=layout,
        settings=HubSettings(interval="1m"),
        candles_db_path=sidecar.db_path,
        rest=rest,
    )
    assert hub.get_candles_df(symbols[0], "1m", 10).source is CandleSource.REDIS  # type: ignore[union-attr]
    outage_key = max(v for v in _close_keys(client, layout, symbols).values() if v)
    private_redis.kill()
    assert hub.health().reason is MarketHealthReason.REDIS_DOWN
    frame = wait_for(lambda: hub.get_candles_df(symbols[0], "1m", 10), 10, "sqlite fallback")
    assert frame.source is CandleSource.SQLITE  # type: ignore[union-attr]
    frame = hub.get_candles_df(symbols[0], "1m", 250)  # more than the sidecar's SQLite holds
    assert frame is not None and frame.source is CandleSource.REST and len(frame.df) == 250
    wait_for(lambda: sim.state()["now_ms"] > outage_key + 20 * IV, 30, "candles during the outage")
    private_redis.start()
    target = sim.state()["now_ms"] - 2 * IV
    wait_for(lambda: _all_advanced(client, layout, symbols, target), 30, "sidecar to refill Redis")
    assert hub.health().ok
    wait_for(lambda: _matches(client, layout, rest, symbols), 20, "Redis to equal the venue")
    assert sidecar.stop() == 0
    assert_redis_equals_sim(client, layout, rest, symbols)
    rest.close()
    client.close()


def test_candle_keys_change_exactly_when_bars_open_and_close(
    simulator_factory: Callable[..., SimulatorProcess],
    redis_client: redis.Redis,
    redis_server: EmbeddedRedis,
    tmp_path: Path,
    sidecars: list[SidecarProc],
) -> None:
    start_ms = (time.time_ns() // 1_000_000 // IV - 10) * IV + 1_000  # 1 s into a bar, clock frozen
    sim = simulator_factory(
        "--synthetic", "2", "--interval", "1m", "--speed", "0", "--tick-ms", "20", "--start-ms", str(start_ms)
    )
    layout = RedisLayout("t4")
    symbols = _coins(sim, 2)
    sidecar = SidecarProc(sim, redis_server.url, tmp_path, "t4", AI_QUANT_TOP_N="2").start()
    sidecars.append(sidecar)
    hubs = {
        mode: MarketDataHub(
            redis_client=redis_client,
            layout=layout,
            settings=HubSettings(interval="1m", signal_on_candle_close=mode),
        )
        for mode in (True, False)
    }

    def keys() -> dict[str, tuple[int | None, int | None]]:
        return {
            s: (k.closed_close_ms, k.latest_open_ms)
            for s, k in layout.read_candle_keys(redis_client, symbols, "1m").items()
        }

    def caught_up(now: int) -> bool:
        hb = layout.read_heartbeat(redis_client)
        return hb is not None and hb.venue_ms >= now

    wait_for(lambda: all(c is not None and o is not None for c, o in keys().values()), 30, "first keys")
    bar_t = keys()[symbols[0]][1]
    assert bar_t is not None
    assert all(v == (bar_t - 1, bar_t) for v in keys().values())
    # inside the bar: nothing changes
    now = sim.advance(ms=max(0, bar_t + IV - 10_000 - sim.state()["now_ms"]))
    wait_for(lambda: caught_up(now), 10, "sidecar to see the move")
    assert all(v == (bar_t - 1, bar_t) for v in keys().values())
    # the next bar opens: its open key, and the close key of the bar that just closed
    sim.advance(ms=15_000)
    wait_for(lambda: keys()[symbols[0]][1] == bar_t + IV, 10, "open key of the next bar")
    wait_for(lambda: all(v == (bar_t + IV - 1, bar_t + IV) for v in keys().values()), 10, "both keys")
    assert hubs[True].candle_keys(symbols).keys == dict.fromkeys(symbols, bar_t + IV - 1)
    assert hubs[False].candle_keys(symbols).keys == dict.fromkeys(symbols, bar_t + IV)
    # and a shard decides those keys: closed history from Redis + the forming bar (issue 16.1)
    store = RedisShardStore(redis_client, layout, "1m")
    for on_close in (True, False):
        settings = ShardSettings(interval="1m", signal_on_candle_close=on_close, anchor_symbol=symbols[0])
        core = ShardCore(0, store, settings, ConfigSource(), symbols=symbols)
        records = core.evaluate(hubs[on_close].candle_keys(symbols).keys)  # type: ignore[arg-type]
        assert {r.status for r in records} == {ShardStatus.OK}, records
        assert {r.t for r in records} == {bar_t if on_close else bar_t + IV}
    # no candle messages: the bar closes on the venue clock + grace, no new bar is seen open
    sim.set_faults(pause_candle_feed=True)
    now = sim.advance(ms=IV)  # 5 s past the close of bar_t + IV; grace is 2 s
    wait_for(lambda: all(v[0] == bar_t + 2 * IV - 1 for v in keys().values()), 10, "timer close")
    assert all(v[1] == bar_t + IV for v in keys().values())
    assert hubs[True].candle_keys(symbols).keys == dict.fromkeys(symbols, bar_t + 2 * IV - 1)
    assert hubs[False].candle_keys(symbols).keys == dict.fromkeys(symbols, bar_t + IV)
    sim.set_faults(pause_candle_feed=False)
    sim.advance(ms=IV)
    wait_for(lambda: all(v[1] == bar_t + 3 * IV for v in keys().values()), 10, "next open after the pause")
    with _rest(sim) as rest:
        # a bar closed by the timer from a partial WS view is corrected from REST by the cross-check
        wait_for(lambda: _matches(redis_client, layout, rest, symbols), 10, "REST cross-check")
    assert sidecar.stop() == 0


def _matches(
    client: redis.Redis, layout: RedisLayout, rest: HyperliquidInfoClient, symbols: list[str]
) -> bool:
    try:
        assert_redis_equals_sim(client, layout, rest, symbols)
    except AssertionError:
        return False
    return True


def test_dry_live_sidecar_forwards_fills_and_order_updates_to_the_acked_stream(
    simulator_factory: Callable[..., SimulatorProcess],
    redis_client: redis.Redis,
    redis_server: EmbeddedRedis,
    tmp_path: Path,
    sidecars: list[SidecarProc],
) -> None:
    import eth_account
    from hyperliquid.exchange import Exchange

    sim = simulator_factory("--synthetic", "2", "--interval", "1m", "--speed", "60", "--tick-ms", "50")
    layout = RedisLayout("t5")
    wallet = eth_account.Account.create()
    user = wallet.address
    sidecar = SidecarProc(
        sim,
        redis_server.url,
        tmp_path,
        "t5",
        AI_QUANT_TOP_N="2",
        AI_QUANT_MODE="dry_live",
        AI_QUANT_ACCOUNT_ADDRESS=user,
    ).start()
    sidecars.append(sidecar)
    layout.ensure_account_group(redis_client, user, "driver")
    seen: list[Any] = []

    def read_and_ack() -> list[Any]:
        events = layout.read_account_events(redis_client, user, "driver", "d1")
        seen.extend(events)
        layout.ack_account_events(redis_client, user, "driver", [eid for eid, _ in events])
        return [e for _, e in seen]

    # The session marker goes first, then the venue's subscription snapshot.
    wait_for(lambda: any(e.is_snapshot for e in read_and_ack()), 30, "the session marker and snapshot")
    assert seen[0][1].kind is AccountEventKind.SESSION
    assert [e.kind for _, e in seen[1:]][:1] == [AccountEventKind.USER_FILLS] and seen[1][1].is_snapshot
    coin = _coins(sim, 1)[0]
    exchange = Exchange(wallet, sim.base_url)
    mid = float(exchange.info.all_mids()[coin])
    szd = exchange.info.asset_to_sz_decimals[exchange.info.name_to_asset(coin)]
    result = exchange.market_open(coin, True, round(40.0 / mid, szd))
    assert result["status"] == "ok", result

    def got_fill() -> bool:
        return any(e.kind.value == "userFills" and not e.is_snapshot for e in read_and_ack())

    wait_for(got_fill, 30, "the fill on the account stream")
    fill = next(e for _, e in seen if e.kind.value == "userFills" and not e.is_snapshot)
    assert fill.data["fills"][0]["coin"] == coin and "tid" in fill.data["fills"][0]
    assert redis_client.xlen(layout.account_stream_key(user)) == 0  # acknowledged entries are deleted

    # The venue drops the connection: the reconnected session announces itself (the driver's cue
    # to reconcile, since the venue does not replay the gap).
    first_session = seen[0][1].wall_ms
    assert sim.drop_ws() >= 1

    def new_session() -> bool:
        sessions = [e for e in read_and_ack() if e.kind is AccountEventKind.SESSION]
        return len(sessions) >= 2 and sessions[-1].wall_ms > first_session

    wait_for(new_session, 30, "a second session marker after the drop")
    assert sidecar.stop() == 0
