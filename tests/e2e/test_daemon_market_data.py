"""The paper daemon as a subprocess against the simulator: the candle mode and a Redis outage
(issue 16, items 1 and 2).

1. AI_QUANT_SIGNAL_ON_CANDLE_CLOSE=0 decides on candle opens (keys are bar open times, the
   forming bar in the frame) and trades, instead of answering `missing_candle` forever.
2. Redis (the test's own redis-server, handed over with AI_QUANT_REDIS_URL) killed for 30 s
   under a daemon holding a position: the driver says it is blind (one alert, the status line),
   opens nothing, still exits on mids (tight stops make an exit certain within the outage),
   trades again once Redis is back, and Redis ends up equal to the venue's candleSnapshot.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from cluster.redis_layout import RedisLayout
from engine.enums import DecisionEventType, DecisionStatus, LedgerKind
from engine.runtime.redis_server import EmbeddedRedis
from engine.venue.info_client import HyperliquidInfoClient
from engine.venue.rate_budget import RateBudget
from strategies.candle import interval_ms
from tests.e2e.test_daemon_paper import Daemon, daemon_env, db_rows, kind_count

IV = interval_ms("5m")
STATUS = re.compile(r"tick=(\d+) symbols=\d+ evaluated=(\d+) .* market=(\S+) ")
ALERT_BLIND = re.compile(r"alert dry-run .*health: market data blind")


@pytest.fixture
def daemons():
    started: list[Daemon] = []

    def start(env: dict[str, str], name: str) -> Daemon:
        started.append(Daemon(env, Path(env["AI_QUANT_STATE_DIR"]).parent / f"{name}.log"))
        return started[-1]

    yield start
    for daemon in started:
        daemon.cleanup()


def status_lines(daemon: Daemon) -> list[tuple[int, int, str]]:
    return [(int(m[1]), int(m[2]), m[3]) for m in STATUS.finditer(daemon.text())]


def last_tick(daemon: Daemon) -> int:
    lines = status_lines(daemon)
    return lines[-1][0] if lines else 0


def executed(db: Path, event_type: DecisionEventType, after_tick: int, before_tick: int) -> list[tuple]:
    return db_rows(
        db, "SELECT symbol, action_taken, tick_id, event_ms FROM decision_events "
        "WHERE event_type=? AND status=? AND tick_id>? AND tick_id<?",
        (event_type.value, DecisionStatus.EXECUTED.value, after_tick, before_tick),
    )  # fmt: skip


@pytest.mark.timeout(120)
def test_open_mode_evaluates_on_bar_opens_and_trades(tmp_path, daemons):
    env = daemon_env(tmp_path, AI_QUANT_SIGNAL_ON_CANDLE_CLOSE="0")
    db = tmp_path / "state" / "trading_paper.db"
    daemon = daemons(env, "open")
    daemon.wait_log(r"engine started mode=paper .* candles=open ", timeout=60)
    daemon.wait_for(lambda: kind_count(db, LedgerKind.OPEN) >= 1, timeout=90, label="an entry in open mode")
    # the entry's event is written pending before the order and turns executed just after the fill
    entries = daemon.wait_for(lambda: executed(db, DecisionEventType.ENTRY_SIGNAL, 0, 10**9), timeout=10,
                              label="the entry's executed event")
    assert entries
    # the decision's candle key is a bar OPEN time (close keys end in ...999)
    assert all(event_ms % IV == 0 for _s, _a, _t, event_ms in entries), entries
    lines = status_lines(daemon)
    assert sum(evaluated for _t, evaluated, _m in lines) > 0
    assert {market for _t, _e, market in lines} == {"ok"}
    assert daemon.terminate() == 0


def redis_vs_venue(client: redis.Redis, info: HyperliquidInfoClient, symbols: list[str]) -> str | None:
    """None when every symbol's closed candles in Redis are contiguous and identical to the venue's;
    else what differs first (so a failure says which symbol and candle)."""
    layout = RedisLayout()
    for sym in symbols:
        candles = layout.read_candles(client, sym, "5m")
        if not candles:
            return f"{sym}: no candles in Redis"
        opens = [c.t for c in candles]
        holes = sorted(set(range(opens[0], opens[-1] + IV, IV)) - set(opens))
        if holes:
            return f"{sym}: {len(holes)} missing in Redis, first t={holes[0]}"
        venue = [c for c in info.candle_snapshot(sym, "5m", opens[0], opens[-1]) if c.t <= opens[-1]]
        if venue != candles:
            padded = venue + [None] * len(candles)
            mine, theirs = next((c, v) for v, c in zip(padded, candles, strict=False) if v != c)
            return f"{sym}: Redis {mine} != venue {theirs} ({len(candles)} vs {len(venue)} candles)"
    return None


def kill_redis_with_a_position_open(
    daemon: Daemon, server: EmbeddedRedis, position_open: Callable[[], bool]
) -> int:
    """Kill Redis at a moment a position is open; return the first tick that started without it.

    Tight stops close positions within seconds, so one may close between the look and the kill:
    then Redis is restarted at once (far too short an outage to alert) and the next one is used.
    With 0.5 ATR stops on a 2400x replay that happens often (2 of 5 runs used up 3 tries), hence 8.
    """
    for _attempt in range(8):
        daemon.wait_for(position_open, timeout=60, label="an open position")
        before = last_tick(daemon)
        server.kill()
        newer = lambda b=before: last_tick(daemon) > b and last_tick(daemon)  # noqa: E731
        first = int(daemon.wait_for(newer, 10, "a tick"))
        if position_open():
            return first + 1  # `first` may have been under way when Redis died
        server.restart()
    raise AssertionError("no position stayed open across the kill of Redis")


@pytest.mark.slow
@pytest.mark.timeout(120)  # the outage is 30 s; the whole run takes ~45 s on this machine
def test_redis_outage_blind_no_entries_exits_on_mids_one_alert_then_resumes(
    tmp_path, daemons, private_redis: EmbeddedRedis
):
    yaml_path = tmp_path / "strategy.yaml"
    yaml_path.write_text(
        "global:\n  engine: {interval: 5m}\n"
        "  trade: {entry_min_confidence: low, sl_atr_mult: 0.5, tp_atr_mult: 1.0}\n"
    )
    yaml_path.chmod(0o600)
    env = daemon_env(tmp_path, AI_QUANT_REDIS_URL=private_redis.url)
    db = tmp_path / "state" / "trading_paper.db"
    daemon = daemons(env, "outage")
    started = daemon.wait_log(r"engine started .* symbols=(\S+) .* venue=(\S+) ", timeout=60)
    symbols, base_url = started.group(1).split(","), started.group(2)

    def position_open() -> bool:
        return db_rows(db, "SELECT COUNT(*) FROM position_state")[:1] not in ([], [(0,)])

    kill_tick = kill_redis_with_a_position_open(daemon, private_redis, position_open)
    outage_end = time.monotonic() + 30.0
    daemon.wait_log(ALERT_BLIND.pattern, timeout=30)
    while time.monotonic() < outage_end:  # the outage lasts 30 s whatever happens
        assert daemon.proc.poll() is None, daemon.tail()
        time.sleep(0.5)
    blind_ticks = [t for t, _e, m in status_lines(daemon) if m == "blind:redis_down"]
    assert blind_ticks and min(blind_ticks) > kill_tick
    private_redis.restart()
    back = daemon.wait_log(r"market data seeing again after reason=redis_down .* tick=(\d+)", timeout=30)
    back_tick = int(back.group(1))

    # while Redis was down: exits decided on mids, no entry at all
    exits = executed(db, DecisionEventType.EXIT_CHECK, kill_tick - 2, back_tick)  # from the in-flight tick
    assert exits, "no exit was decided during the outage"
    assert executed(db, DecisionEventType.ENTRY_SIGNAL, kill_tick - 1, back_tick) == []
    # trading resumes: decisions again, then an entry after Redis came back
    daemon.wait_for(
        lambda: any(t > back_tick and e > 0 and m == "ok" for t, e, m in status_lines(daemon)),
        timeout=30, label="decisions after the outage",
    )  # fmt: skip
    daemon.wait_for(
        lambda: executed(db, DecisionEventType.ENTRY_SIGNAL, back_tick, 10**9), timeout=40,
        label="an entry after the outage",
    )  # fmt: skip
    assert len(ALERT_BLIND.findall(daemon.text())) == 1
    # no candle lost: Redis (refilled by the sidecar from its SQLite log) equals the venue
    client = redis.Redis.from_url(private_redis.url)
    with HyperliquidInfoClient(base_url, timeout_secs=10, budget=RateBudget(100_000_000)) as info:
        # eventually equal: the sidecar refills Redis from its SQLite log and REST after the outage
        deadline, differs = time.monotonic() + 60, "not compared"
        while time.monotonic() < deadline and (differs := redis_vs_venue(client, info, symbols)) is not None:
            time.sleep(0.5)
        assert differs is None, differs
    client.close()
    assert daemon.terminate() == 0
