"""engine.tick.blind: a driver that cannot decide says so once, opens nothing, and keeps exiting.

BlindWatch alone with a hand-driven clock, then through UnifiedEngine with the scripted market
and executor of test_core_engine (real PaperBroker / TradeStore / EventLogger / StrategyManager).
"""

from __future__ import annotations

from collections.abc import Mapping

from cluster.records import ShardStatus
from engine.enums import AlertKind, CandleSource, LedgerKind, MarketHealthReason
from engine.marketdata.hub import KeysSnapshot
from engine.tick.blind import BlindReason, BlindSettings, BlindWatch, TickSight
from strategies.enums import ExitReason, Signal
from tests.unit.test_core_engine import BULL, T0, Rig

HOUR_MS = 3_600_000


class Alerts:
    def __init__(self) -> None:
        self.sent: list[tuple[AlertKind, str, Mapping[str, object] | None]] = []

    def send(self, kind: AlertKind, message: str, extra: Mapping[str, object] | None = None) -> bool:
        self.sent.append((kind, message, extra))
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sight(source: CandleSource = CandleSource.REDIS, **answers: int) -> TickSight:
    return TickSight(source, {ShardStatus(k): v for k, v in answers.items()})


def run(watch: BlindWatch, clock: Clock, s: TickSight, ticks: int) -> list[BlindReason | None]:
    out = []
    for i in range(ticks):
        out.append(watch.observe(s, i, 0))
        clock.now += 1.0
    return out


def test_redis_down_is_declared_once_after_ticks_and_seconds_then_ends_on_first_good_tick() -> None:
    alerts, clock = Alerts(), Clock()
    watch = BlindWatch(alerts, BlindSettings(after_ticks=3, after_secs=10.0), clock)
    down = sight(CandleSource.SQLITE, store_unavailable=4)
    seen = run(watch, clock, down, 30)
    assert seen[:10] == [None] * 10  # 3 ticks are not enough: 10 s must pass too
    assert seen[10:] == [BlindReason.REDIS_DOWN] * 20
    assert len([k for k, _m, _e in alerts.sent if k is AlertKind.HEALTH]) == 1
    kind, message, extra = alerts.sent[0]
    assert kind is AlertKind.HEALTH and message == "market data blind: redis_down"
    assert extra is not None and extra["keys_source"] == "sqlite" and "store_unavailable=" in str(extra)
    assert watch.status == "blind:redis_down"
    assert watch.observe(sight(ok=4), 31, 0) is None and watch.status == "ok"
    run(watch, clock, down, 30)  # a new outage is a new episode, with its own alert
    assert len(alerts.sent) == 2 and watch.episodes == 2


def test_keys_due_but_never_decided_is_not_evaluating_and_idle_or_partial_ticks_are_fine() -> None:
    alerts, clock = Alerts(), Clock()
    watch = BlindWatch(alerts, BlindSettings(after_ticks=3, after_secs=2.0), clock)
    assert run(watch, clock, sight(), 10) == [None] * 10  # nothing due: an idle tick between candles
    assert run(watch, clock, sight(ok=1, missing_candle=6), 10) == [None] * 10
    assert run(watch, clock, sight(key_behind=2), 1) == [None]  # one race of a key with its shard
    assert watch.observe(sight(ok=2), 0, 0) is None
    assert run(watch, clock, sight(missing_candle=7), 5)[-1] is BlindReason.NOT_EVALUATING
    assert [m for _k, m, _e in alerts.sent] == ["market data blind: not_evaluating"]


def test_shards_ahead_of_every_key_candle_after_candle_is_keys_behind_and_idle_ticks_do_not_hide_it() -> None:
    # A restarted venue clock behind the cache: each new key is answered KEY_BEHIND once, then the
    # symbol is not asked again until its next key, so idle ticks sit between the bad ones.
    alerts, clock = Alerts(), Clock()
    watch = BlindWatch(alerts, BlindSettings(after_ticks=3, after_secs=10.0), clock)
    seen = []
    for _candle in range(6):
        seen += run(watch, clock, sight(key_behind=4), 1) + run(watch, clock, sight(), 3)
    assert seen[:12] == [None] * 12
    assert seen[12:] == [BlindReason.KEYS_BEHIND] * 12
    assert [m for _k, m, _e in alerts.sent] == ["market data blind: keys_behind"]
    assert watch.observe(sight(ok=4), 99, 0) is None and watch.status == "ok"
    assert run(watch, clock, sight(), 5) == [None] * 5  # after it ends, idle ticks are idle again


def test_no_history_at_start_up_gets_the_warmup_span_but_not_after_a_first_decision() -> None:
    alerts, clock = Alerts(), Clock()
    watch = BlindWatch(alerts, BlindSettings(after_ticks=3, after_secs=5.0, warmup_secs=60.0), clock)
    assert run(watch, clock, sight(no_history=5), 50) == [None] * 50  # the sidecar is still backfilling
    assert run(watch, clock, sight(no_history=5), 20)[-1] is BlindReason.NOT_EVALUATING
    watch.observe(sight(ok=5), 0, 0)
    assert run(watch, clock, sight(no_history=5), 10)[-1] is BlindReason.NOT_EVALUATING  # 5 s now
    assert len(alerts.sent) == 2


class SqliteMarket:
    """The rig's market as seen with Redis down: keys from SQLite, mids still answered (REST)."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.source = CandleSource.REDIS

    def venue_now_ms(self) -> int:
        return self.inner.venue_now_ms()

    def candle_keys(self, symbols, interval=None) -> KeysSnapshot:  # type: ignore[no-untyped-def]
        return KeysSnapshot(self.inner.candle_keys(symbols, interval).keys, self.source)

    def get_mids(self, symbols, max_age_secs=None):  # type: ignore[no-untyped-def]
        return self.inner.get_mids(symbols, max_age_secs)


def test_engine_blind_opens_nothing_exits_on_mids_says_so_once_and_resumes(tmp_path) -> None:
    rig = Rig(tmp_path)
    alerts, clock = Alerts(), Clock()
    market = SqliteMarket(rig.market)
    inner = rig.market
    rig.engine = type(rig.engine)(
        strategy=rig.strategy, market=market, executor=rig.executor, broker=rig.broker, trades=rig.store,
        events=rig.events, watchlist=lambda: rig.watch, options=rig.engine._opts, alerts=alerts,
        recorded_ms=lambda: inner.now,
        blind=BlindWatch(alerts, BlindSettings(after_ticks=2, after_secs=0.0), clock),
    )  # fmt: skip
    rig.executor.script = {"ETH": (Signal.BUY, 200.0, BULL)}
    inner.now, inner.keys = T0 + 1_000, dict.fromkeys(rig.watch, T0)
    inner.mids.update({"BTC": 100.0, "ETH": 100.0, "SOL": 100.0})
    assert rig.engine.tick().opened == 1 and "ETH" in rig.broker.positions()

    # Redis goes down: keys come from SQLite, every shard answer is store_unavailable.
    market.source = CandleSource.SQLITE
    rig.executor.status = dict.fromkeys(rig.watch, ShardStatus.STORE_UNAVAILABLE)
    rig.executor.script = {"SOL": (Signal.BUY, 300.0, BULL), "BTC": (Signal.BUY, 300.0, BULL)}
    inner.keys = dict.fromkeys(rig.watch, T0 + HOUR_MS)
    reports = [rig.engine.tick() for _ in range(3)]
    assert [r.market for r in reports] == ["ok", "blind:redis_down", "blind:redis_down"]
    assert "market=blind:redis_down" in reports[-1].status_line()
    inner.mids["ETH"] = 90.0  # through the stop: the exit is decided on the mid while blind
    report = rig.engine.tick()
    assert report.closed == 1 and report.market == "blind:redis_down" and not rig.broker.positions()
    assert rig.store.last_close("ETH").reason == ExitReason.STOP_LOSS.value  # type: ignore[union-attr]
    # a shard answer that somehow arrives while the keys are second-hand opens nothing
    rig.executor.status = {}
    inner.keys = dict.fromkeys(rig.watch, T0 + 2 * HOUR_MS)
    assert rig.engine.tick().opened == 0 and not rig.broker.positions()
    health = [m for k, m, _e in alerts.sent if k is AlertKind.HEALTH]
    assert health == ["market data blind: redis_down"]
    opens = [f for f in rig.store.fills() if f.kind is LedgerKind.OPEN]
    assert [f.symbol for f in opens] == ["ETH"]

    # Redis is back: the newest key is decided and trading resumes; an older key is never re-asked
    market.source = CandleSource.REDIS
    inner.keys = dict.fromkeys(rig.watch, T0 + 3 * HOUR_MS)
    report = rig.engine.tick()
    assert report.market == "ok" and report.opened >= 1
    calls = len(rig.executor.calls)
    inner.keys = dict.fromkeys(rig.watch, T0 + 2 * HOUR_MS)
    rig.engine.tick()
    assert len(rig.executor.calls) == calls
    assert len([k for k, _m, _e in alerts.sent if k is AlertKind.HEALTH]) == 1


def test_engine_keys_never_decided_is_reported_once_with_the_shard_answers(tmp_path) -> None:
    rig = Rig(tmp_path)
    alerts, clock = Alerts(), Clock()
    rig.engine = type(rig.engine)(
        strategy=rig.strategy, market=rig.market, executor=rig.executor, broker=rig.broker,
        trades=rig.store, events=rig.events, watchlist=lambda: rig.watch, options=rig.engine._opts,
        alerts=alerts, blind=BlindWatch(alerts, BlindSettings(after_ticks=3, after_secs=0.0), clock),
    )  # fmt: skip
    rig.executor.status = dict.fromkeys(rig.watch, ShardStatus.MISSING_CANDLE)  # the 16.1 symptom
    rig.candle(T0, {"BTC": 100.0, "ETH": 100.0, "SOL": 100.0})
    reports = [rig.engine.tick() for _ in range(6)]
    assert [r.evaluated for r in reports] == [0] * 6
    assert [r.market for r in reports] == ["ok", "ok"] + ["blind:not_evaluating"] * 4
    assert len(rig.executor.calls) == 6  # the undecided keys are asked again every tick
    (alert,) = alerts.sent
    assert alert[1] == "market data blind: not_evaluating" and "missing_candle=9" in str(alert[2])
    rig.executor.status = {}
    assert rig.engine.tick().market == "ok" and len(alerts.sent) == 1


def test_frozen_feed_with_redis_up_is_stale_feed_but_not_while_decisions_come() -> None:
    alerts, clock = Alerts(), Clock()
    watch = BlindWatch(alerts, BlindSettings(after_ticks=3, after_secs=5.0, warmup_secs=60.0), clock)
    starting = TickSight(CandleSource.REDIS, {}, MarketHealthReason.NO_HEARTBEAT)
    assert run(watch, clock, starting, 30) == [None] * 30  # the sidecar has not written yet: warm-up
    watch.observe(sight(ok=3), 0, 0)
    stale = TickSight(CandleSource.REDIS, {}, MarketHealthReason.HEARTBEAT_STALE)
    assert run(watch, clock, stale, 10)[-1] is BlindReason.STALE_FEED
    assert [m for _k, m, _e in alerts.sent] == ["market data blind: stale_feed"]
    deciding = TickSight(CandleSource.REDIS, {ShardStatus.OK: 2}, MarketHealthReason.SIDECAR_DISCONNECTED)
    assert watch.observe(deciding, 0, 0) is None
