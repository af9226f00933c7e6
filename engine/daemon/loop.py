"""The paper daemon's wiring and loop (called by `engine.daemon.cli.main`, which maps errors to exit codes).

Order (DRIVER's checklist): settings → promoted config → lock → alerter → StrategyManager →
TradeStore / EventLogger / PaperBroker → Redis → venue → watchlist → sidecar → Ray → shards →
MarketDataHub / VenueContext → UnifiedEngine → loop. Everything acquired is released in a
`finally`, newest first, whatever happened (including a stop signal in the middle of start-up).

The engine's interval is `StrategyManager.interval` (YAML `engine.interval` wins over
AI_QUANT_INTERVAL); it is written back into the environment handed to the sidecar, so the
sidecar, the shards and the engine always run on one interval. The watchlist is resolved once
here (AI_QUANT_SYMBOLS, else the venue's top AI_QUANT_TOP_N by volume) and handed to the sidecar
as AI_QUANT_SYMBOLS, so both watch the same symbols.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, MutableMapping, Sequence
from typing import TYPE_CHECKING

from cluster.records import ShardAlert
from cluster.shard_core import ConfigSource
from engine.alerts.alerting import build_alerter
from engine.config.settings import DaemonSettings
from engine.daemon.services import RuntimeSettings, Services, apply_venue_defaults
from engine.enums import AlertKind, Mode
from engine.execution.paper_broker import PaperBroker
from engine.execution.trade_store import TradeStore
from engine.marketdata.hub import HubSettings, KeysSnapshot, MarketDataHub, PriceQuote
from engine.runtime.lock import DaemonLock
from engine.runtime.systemd_watchdog import SystemdWatchdog
from engine.sidecar.settings import SidecarSettings, top_symbols_by_volume
from engine.tick.decision_log import EventLogger
from engine.tick.engine import UnifiedEngine
from engine.tick.engine_knobs import fold_engine_yaml
from engine.tick.promoted_config import apply_promoted_config
from engine.tick.strategy_manager import StrategyManager
from engine.tick.types import EngineOptions
from engine.venue.context import VenueContext
from engine.venue.info_client import HyperliquidInfoClient
from engine.venue.rate_budget import RateBudget
from engine.web.surfaces import OperatorSurfaces

if TYPE_CHECKING:
    from engine.daemon.cli import StopFlag

log = logging.getLogger("engine.daemon")


class CandleCloseWaiter:
    """Waits for the sidecar's candle-close notification (Redis pub/sub), a timeout, or stop."""

    def __init__(self, client: object, channel: str) -> None:
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[attr-defined]
        self._pubsub.subscribe(channel)

    def wait(self, timeout_secs: float, stop: StopFlag, ping: Callable[[], None]) -> bool:
        """Return True when a notification arrived (pending ones drained), False on timeout/stop."""
        deadline = time.monotonic() + timeout_secs
        while not stop and (left := deadline - time.monotonic()) > 0:
            ping()
            try:
                message = self._pubsub.get_message(timeout=min(0.25, left))
            except Exception as exc:  # Redis down: fall back to the poll interval, never stall
                log.warning("candle-close wait failed error=%s", type(exc).__name__)
                stop.wait(min(0.25, left))
                continue
            if message is not None:
                while self._pubsub.get_message(timeout=0.0) is not None:
                    pass
                return True
        return False

    def close(self) -> None:
        try:
            self._pubsub.close()
        except Exception as exc:  # teardown: nothing more to do about it
            log.debug("pubsub close failed error=%s", exc)


class FreshClockMarket:
    """The hub as the engine's MarketView, with the heartbeat re-read when the tick asks the time.

    `MarketDataHub.venue_now_ms()` extrapolates the last heartbeat it saw, and the hub re-reads the
    heartbeat only inside `health()`/`get_mids()`, which a tick calls after asking the time (and not
    at all when nothing is open or actionable). In a replay faster than wall time that clock would
    lag the venue by many candles; one Redis read per tick keeps it current.
    """

    def __init__(self, hub: MarketDataHub) -> None:
        self._hub = hub

    def venue_now_ms(self) -> int:
        self._hub.health()
        return self._hub.venue_now_ms()

    def candle_keys(self, symbols: Sequence[str], interval: str | None = None) -> KeysSnapshot:
        return self._hub.candle_keys(symbols, interval)

    def get_mids(self, symbols: Sequence[str], max_age_secs: float | None = None) -> dict[str, PriceQuote]:
        return self._hub.get_mids(symbols, max_age_secs)


def resolve_watchlist(
    settings: DaemonSettings, info: HyperliquidInfoClient, stop: StopFlag
) -> tuple[str, ...]:
    """AI_QUANT_SYMBOLS, else the venue's top AI_QUANT_TOP_N by 24 h volume (retried until stop)."""
    if settings.symbols:
        return settings.symbols
    delay = 0.5
    while not stop:
        try:
            answer = info.meta_and_asset_ctxs()
            return top_symbols_by_volume([(c.coin, c.day_ntl_vlm) for c in answer.ctxs], settings.top_n)
        except Exception as exc:  # venue not reachable yet: retry with backoff
            log.warning("watchlist query failed error=%s; retrying in %.1fs", exc, delay)
            stop.wait(delay)
            delay = min(delay * 2, 30.0)
    return ()


def run_paper(env: MutableMapping[str, str], mode: Mode, stop: StopFlag) -> int:
    """Start everything, run the loop until stopped, tear everything down; return 0."""
    apply_venue_defaults(env)
    settings = DaemonSettings.from_env(env)
    runtime = RuntimeSettings.from_env(env)
    promoted = apply_promoted_config(env)
    lock = DaemonLock(settings.lock_path)
    lock.acquire()
    alerter = build_alerter(env, mode)
    services = Services(runtime, env)
    watchdog = SystemdWatchdog(env)
    store: TradeStore | None = None
    info: HyperliquidInfoClient | None = None
    hub: MarketDataHub | None = None
    waiter: CandleCloseWaiter | None = None
    surfaces: OperatorSurfaces | None = None
    try:
        strategy = StrategyManager(
            promoted.strategy_yaml,
            run_mode=mode,
            strategy_mode=settings.strategy_mode,
            live_defaults=settings.live_defaults,
            alerts=alerter,
            interval=settings.interval,
        )
        interval = strategy.interval
        if interval != settings.interval:
            log.info(
                "interval from YAML engine.interval=%s (AI_QUANT_INTERVAL=%s)", interval, settings.interval
            )
        env["AI_QUANT_INTERVAL"] = interval
        fold_engine_yaml(env, strategy.config().engine, interval, str(strategy.path))
        settings = DaemonSettings.from_env(env)  # again: YAML engine.* now folded into env
        surfaces = OperatorSurfaces.start(env, settings.db_path, mode)  # read-only page, chat bot
        store = TradeStore.open(settings.db_path, mode)
        run_id = settings.run_id or uuid.uuid4().hex[:12]
        events = EventLogger(store.connection, mode, run_id)
        # BBO use is per symbol (trade.use_bbo_for_fills): the engine attaches the BBO to the quote or not
        broker = PaperBroker(store, settings.paper.fill_params(), settings.paper.seed_balance_usd)

        redis_rt = services.start_redis()
        base_url = services.start_venue(interval, settings.lookback_bars)
        info = HyperliquidInfoClient(base_url, timeout_secs=10.0, budget=RateBudget())
        watchlist = resolve_watchlist(settings, info, stop)
        if stop:
            return 0
        env["AI_QUANT_SYMBOLS"] = ",".join(watchlist)
        sidecar_settings = SidecarSettings.from_env(env)  # validates the sidecar's variables first
        services.start_sidecar()
        mode_value = strategy.strategy_mode.value if strategy.strategy_mode else None
        configs = ConfigSource(overrides=strategy.overrides, live=strategy.live, strategy_mode=mode_value)

        def shard_alert(alert: ShardAlert) -> None:
            alerter.send(AlertKind.SHARD, alert.fault.value, {"shard": alert.shard, "symbols": alert.symbols})

        executor = services.start_shards(
            interval=interval, configs=configs, symbols=watchlist, alert=shard_alert
        )
        stop.install()  # Ray's start-up may have replaced our handlers
        if stop:
            return 0
        redis_client = redis_rt.client()
        hub = MarketDataHub(
            redis_client=redis_client,
            layout=redis_rt.layout,
            settings=HubSettings.from_env(env),
            candles_db_path=sidecar_settings.candles_db_path,
            rest=info,
        )
        venue = VenueContext(info)
        engine = UnifiedEngine(
            strategy=strategy,
            market=FreshClockMarket(hub),
            executor=executor,
            broker=broker,
            trades=store,
            events=events,
            watchlist=lambda: watchlist,
            options=EngineOptions(
                interval=interval,
                entry_max_delay_ms=settings.entry_max_delay_ms,
                retry_on_capacity=settings.entry_retry_on_capacity,
                funding_enabled=settings.paper.funding_enabled,
                funding_poll_ms=int(settings.paper.funding_poll_secs * 1000),
                heartbeat_secs=settings.heartbeat_secs,
            ),
            alerts=alerter,
            funding=venue,
            sz_decimals=venue.sz_decimals,
        )
        waiter = CandleCloseWaiter(
            redis_rt.client(socket_timeout=None), redis_rt.layout.closed_channel(interval)
        )
        log.info(
            "engine started mode=%s run_id=%s interval=%s symbols=%s shards=%d executor=%s venue=%s db=%s",
            mode.value, run_id, interval, ",".join(watchlist), runtime.n_shards, runtime.executor.value,
            base_url, settings.db_path,
        )  # fmt: skip
        alerter.send(AlertKind.RESTART, "engine started", {"run_id": run_id, "venue": runtime.venue.value})
        run_loop(engine, waiter, watchdog, stop, settings.loop_target_secs)
        log.info("shutting down signal=%s", stop.signal_name)
        alerter.send(AlertKind.SHUTDOWN, "engine stopping", {"run_id": run_id, "signal": stop.signal_name})
        return 0
    finally:
        watchdog.stopping()
        if surfaces is not None:
            surfaces.stop()
        if waiter is not None:
            waiter.close()
        services.stop()
        if hub is not None:
            hub.close()
        if info is not None:
            info.close()
        if store is not None:
            store.close()
        alerter.close()
        lock.release()
        log.info("stopped")


def run_loop(
    engine: UnifiedEngine,
    waiter: CandleCloseWaiter,
    watchdog: SystemdWatchdog,
    stop: StopFlag,
    poll_secs: float,
    before_tick: Callable[[], bool] | None = None,
) -> None:
    """Tick until stopped, waking on candle closes. `before_tick` (the live stack's sync) runs
    every iteration and returns whether the engine may tick now; paper passes none."""
    loop_errors = 0
    while not stop:
        if before_tick is None or before_tick():
            try:
                report = engine.tick()
            except Exception:  # the loop must survive anything a tick throws; the next tick retries
                loop_errors += 1
                log.exception("engine loop error count=%d", loop_errors)
            else:
                line = report.status_line()
                log.info("%s", line)
                watchdog.tick_done(line)
        waiter.wait(poll_secs, stop, watchdog.ping)
