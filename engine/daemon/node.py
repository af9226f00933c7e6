"""One driver for every mode: `run(config, stop)` starts everything, ticks until stopped, tears down.

Start-up, in order (DESIGN §1, §6): lock → promoted config → alerter → strategy YAML
(StrategyManager) → trading DB (TradeStore, EventLogger) → RiskManager (its trading state,
ACTIVE/REDUCING/HALTED, persisted in that DB; kill switch from AI_QUANT_KILL_SWITCH and the file
AI_QUANT_KILL_SWITCH_FILE) → Redis → venue (a spawned simulator when AI_QUANT_VENUE=simulator)
→ watchlist → sidecar → market-data hub → broker stack → shards → engine → loop.

Two steps run beside that order instead of in it (issue 12, start-up time): Ray starts in a
background thread from the first line of `engine.daemon.__main__` (engine.runtime.ray_boot), and
the shard pool is created in the background from the moment the watchlist is known, while the
sidecar and the broker stack start; the engine is built only once every shard has restored
(`Services.finish_shards`), so nothing decides earlier than before. Each phase's seconds are
logged once as `startup phases ...` (engine.runtime.startup_timeline; bench.startup reads it).

The broker stack is the only thing that depends on the mode (`broker_factory_for`): paper gets
`PaperStack` (engine/daemon/paper.py), dry_live and live `LiveStack` (engine/daemon/live.py).
Both check every order with the same RiskManager before it is filled or sent, and poll it (kill
switches, drawdown) before every tick. Everything acquired is released in `Node.close`, newest
first, whatever happened (a stop signal in the middle of start-up included).

The engine's interval is `StrategyManager.interval` (YAML `engine.interval` wins over
AI_QUANT_INTERVAL); the watchlist is resolved once here (AI_QUANT_SYMBOLS, else the venue's top
AI_QUANT_TOP_N by volume). Both reach the sidecar through `DriverConfig.to_env()`, so the sidecar,
the shards and the engine run on one interval and one watchlist.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from typing import Any

from cluster.records import ShardAlert
from engine.alerts.alerting import Alerter, build_alerter
from engine.daemon.config import DriverConfig
from engine.daemon.dexes import load_perp_dex_facts
from engine.daemon.live import live_stack
from engine.daemon.loop import CandleCloseWaiter, FreshClockMarket, resolve_watchlist, run_loop
from engine.daemon.paper import build_paper_stack
from engine.daemon.services import Services
from engine.daemon.stack import BrokerContext, BrokerFactory, BrokerStack, close_in_order
from engine.daemon.stop import StopFlag
from engine.daemon.surfaces import OperatorSurfaces
from engine.enums import AlertKind, Mode
from engine.execution.trade_store import TradeStore
from engine.marketdata.hub import MarketDataHub
from engine.marketdata.market_sources import MarketSourcesProbe, market_sources_path
from engine.risk.manager import RiskManager
from engine.runtime.lock import DaemonLock
from engine.runtime.ray_boot import RayBoot
from engine.runtime.redis_runtime import RedisRuntime
from engine.runtime.startup_timeline import StartupTimeline
from engine.runtime.systemd_watchdog import SystemdWatchdog
from engine.sidecar.settings import SidecarSettings
from engine.tick.decision_log import EventLogger
from engine.tick.engine import UnifiedEngine
from engine.tick.engine_knobs import engine_env_updates
from engine.tick.last_tick import LastTickWriter, last_tick_path
from engine.tick.promoted_config import apply_promoted_config
from engine.tick.protections import Protections
from engine.tick.shadow import open_fleet
from engine.tick.strategy_manager import StrategyManager
from engine.tick.types import EngineOptions
from engine.venue.context import VenueContext
from engine.venue.info_client import HyperliquidInfoClient
from engine.venue.rate_budget import RateBudget

log = logging.getLogger("engine.daemon")


def paper_stack(ctx: BrokerContext) -> BrokerStack:
    """The node's broker factory for paper: the paper broker behind the node's risk manager."""
    paper = ctx.config.settings.paper
    # BBO use is per symbol (trade.use_bbo_for_fills): the engine attaches the BBO to a quote or not
    params = dataclasses.replace(paper.fill_params(), dex_fee_multipliers=ctx.dex_fee_multipliers)
    return build_paper_stack(
        ctx.store, ctx.risk, params,
        paper.seed_balance_usd, clock_ms=ctx.venue_clock_ms, funding_enabled=paper.funding_enabled,
    )  # fmt: skip


def broker_factory_for(mode: Mode) -> BrokerFactory:
    """The only mode branch of the driver."""
    return paper_stack if mode is Mode.PAPER else live_stack


class Node:
    """What one run started; `close()` releases all of it, newest first, and never raises."""

    def __init__(self, config: DriverConfig, broker_factory: BrokerFactory, stop: StopFlag, *,
                 ray_boot: RayBoot | None = None, timeline: StartupTimeline | None = None) -> None:
        self.config = config
        self.broker_factory = broker_factory
        self.stop = stop
        self.lock = DaemonLock(config.settings.lock_path)
        self.timeline = timeline or StartupTimeline()
        self.services = Services(config.runtime, config.env, ray_boot=ray_boot, timeline=self.timeline)
        self.watchdog = SystemdWatchdog(config.env)
        self.alerter: Alerter | None = None
        self.store: TradeStore | None = None
        self.info: HyperliquidInfoClient | None = None
        self.hub: MarketDataHub | None = None
        self.stack: BrokerStack | None = None
        self.waiter: CandleCloseWaiter | None = None
        self.engine: UnifiedEngine | None = None
        self.surfaces: OperatorSurfaces | None = None  # the read-only web page and chat commands
        self.sources: MarketSourcesProbe | None = None  # ws/rest/none per market, summed per dex
        self.run_id = config.settings.run_id or uuid.uuid4().hex[:12]

    def start(self) -> bool:
        """Start everything in order; False when a stop signal arrived during start-up."""
        config, settings = self.config, self.config.settings
        mark = self.timeline.mark
        mark("imports")  # since the timeline began: the daemon's imports and env parse
        self.lock.acquire()
        promoted = apply_promoted_config(config.env)
        self.alerter = alerter = build_alerter(config.env, config.mode)
        strategy = StrategyManager(
            promoted.strategy_yaml, run_mode=config.mode, strategy_mode=settings.strategy_mode,
            live_defaults=settings.live_defaults, alerts=alerter, interval=settings.interval,
        )  # fmt: skip
        interval = strategy.interval
        if interval != settings.interval:
            log.info(
                "interval from YAML engine.interval=%s (AI_QUANT_INTERVAL=%s)", interval, settings.interval
            )
        # YAML engine.* keys that are the same switch as a variable (exit 2 when both differ)
        knobs = engine_env_updates(strategy.config().engine, config.env, interval=interval,
                                   source=str(strategy.path))
        self.config = config = config.with_env(knobs)
        settings = config.settings
        # before the DB exists: a bad web/chat setting exits 2 with nothing written
        self.surfaces = OperatorSurfaces.start(config.env, settings.db_path, config.mode)
        self.store = store = TradeStore.open(settings.db_path, config.mode)
        events = EventLogger(store.connection, config.mode, self.run_id)
        risk = RiskManager.from_config(store.connection, strategy.config().risk, config.env)
        log.info("risk ready state=%s limits=%s", risk.trading_state.value, risk.limits)
        protections = Protections.from_env(risk, alerter, config.env)
        mark("config")
        redis_rt = self.services.start_redis(config.redis)
        mark("redis")
        venue_url = self.services.start_venue(interval, settings.lookback_bars, config.venue_url)
        budget = RateBudget()  # one budget for every REST call of this process
        self.info = info = HyperliquidInfoClient(
            venue_url, timeout_secs=10.0, budget=budget, perp_dexes=settings.perp_dexes
        )
        dexes = load_perp_dex_facts(info, self.stop)  # exit 2 for a dex the venue does not list
        risk.set_dex_collateral(dict(dexes.collateral))
        watchlist = resolve_watchlist(settings, info, self.stop)
        mark("venue")
        if self.stop:
            return False
        child_env = config.to_env(
            interval=interval, symbols=watchlist, venue_url=venue_url, redis_url=redis_rt.url,
            redis_prefix=redis_rt.settings.prefix,
        )  # fmt: skip
        sidecar_settings = SidecarSettings.from_env(child_env)  # the sidecar's variables, checked first
        # the shard actors import the strategy stack and restore their checkpoints meanwhile
        self.services.begin_shards(
            interval=interval, configs=strategy.config_source(), symbols=watchlist, alert=self._shard_alert,
            signal_on_candle_close=settings.signal_on_candle_close,
        )
        self.services.start_sidecar(child_env)
        self.hub = MarketDataHub(
            redis_client=redis_rt.client(), layout=redis_rt.layout,
            settings=dataclasses.replace(config.hub, interval=interval),
            candles_db_path=sidecar_settings.candles_db_path, rest=info,
        )  # fmt: skip
        market = FreshClockMarket(self.hub)
        self.sources = MarketSourcesProbe(
            self.hub, watchlist, market_sources_path(settings.db_path.parent, config.mode)
        )
        self.stack = stack = self.broker_factory(BrokerContext(
            config=config, store=store, risk=risk, strategy=strategy, venue_url=venue_url, budget=budget,
            redis=redis_rt, alerter=alerter, venue_clock_ms=market.venue_now_ms, protections=protections,
            dex_fee_multipliers=dexes.fee_multipliers,
        ))  # fmt: skip
        stack.start(self.stop)
        mark("sidecar_broker")
        if self.stop:
            return False
        executor = self.services.finish_shards()
        mark("shards")
        self.stop.install()  # Ray's start-up may have replaced our handlers
        if self.stop:
            return False
        venue = VenueContext(info)
        # the YAML's strategies.shadows: paper books only, in every mode (engine.tick.shadow)
        fleet = open_fleet(store, lambda variant: strategy.overrides.plan.rules_for(variant),
                           settings.paper.fill_params(use_bbo=strategy.config().trade.use_bbo_for_fills),
                           config.env, funding_enabled=stack.funding_enabled, mids=market.get_mids)
        self.engine = UnifiedEngine(
            strategy=strategy, market=market, executor=executor, broker=stack.broker, trades=store,
            events=events, watchlist=lambda: watchlist,
            options=EngineOptions(
                interval=interval, entry_max_delay_ms=settings.entry_max_delay_ms,
                retry_on_capacity=settings.entry_retry_on_capacity, funding_enabled=stack.funding_enabled,
                funding_poll_ms=int(settings.paper.funding_poll_secs * 1000),
                heartbeat_secs=settings.heartbeat_secs,
            ),
            alerts=alerter, funding=venue, sz_decimals=venue.sz_decimals, protections=protections,
            shadows=fleet,
        )  # fmt: skip
        self.waiter = CandleCloseWaiter(
            redis_rt.client(socket_timeout=None), redis_rt.layout.closed_channel(interval)
        )
        mark("engine")
        self._started(redis_rt, interval, watchlist, venue_url)
        return True

    def _started(self, redis_rt: RedisRuntime, interval: str, watchlist: Any, venue_url: str) -> None:
        runtime = self.config.runtime
        candles = "close" if self.config.settings.signal_on_candle_close else "open"
        log.info(
            "engine started mode=%s run_id=%s interval=%s candles=%s symbols=%s shards=%d executor=%s "
            "venue=%s db=%s",
            self.config.mode.value, self.run_id, interval, candles, ",".join(watchlist), runtime.n_shards,
            runtime.executor.value, venue_url, self.config.settings.db_path,
        )  # fmt: skip
        log.info("%s", self.timeline.line())
        assert self.alerter is not None
        self.alerter.send(
            AlertKind.RESTART, "engine started", {"run_id": self.run_id, "venue": runtime.venue.value}
        )

    def _shard_alert(self, alert: ShardAlert) -> None:
        if self.alerter is not None:
            self.alerter.send(
                AlertKind.SHARD, alert.fault.value, {"shard": alert.shard, "symbols": alert.symbols}
            )

    def loop(self) -> None:
        """Tick until stopped, then bring the broker stack up to date and say goodbye."""
        assert self.engine is not None and self.waiter is not None and self.stack is not None
        run_loop(
            self.engine, self.waiter, self.watchdog, self.stop, self.config.settings.loop_target_secs,
            self.stack.before_tick,
            LastTickWriter(last_tick_path(self.config.settings.state_dir, self.config.mode)), self.sources,
        )  # fmt: skip
        log.info("shutting down signal=%s", self.stop.signal_name)
        self.stack.final_sync()
        assert self.alerter is not None
        self.alerter.send(
            AlertKind.SHUTDOWN, "engine stopping", {"run_id": self.run_id, "signal": self.stop.signal_name}
        )

    def close(self) -> None:
        """Stop and close everything started, newest first."""
        self.watchdog.stopping()
        if self.surfaces is not None:
            self.surfaces.stop()
        if self.waiter is not None:
            self.waiter.close()
        self.services.stop()
        close_in_order((
            ("hub", None if self.hub is None else self.hub.close),
            ("stack", None if self.stack is None else self.stack.close),
            ("info", None if self.info is None else self.info.close),
            ("store", None if self.store is None else self.store.close),
            ("alerter", None if self.alerter is None else self.alerter.close),
        ), log)
        self.lock.release()
        log.info("stopped")


def run(config: DriverConfig, stop: StopFlag, broker_factory: BrokerFactory | None = None, *,
        ray_boot: RayBoot | None = None, timeline: StartupTimeline | None = None) -> int:
    """Start everything, run the loop until stopped, tear everything down; return 0.

    `ray_boot`: Ray already starting in the background (closed here with everything else)."""
    node = Node(config, broker_factory or broker_factory_for(config.mode), stop, ray_boot=ray_boot,
                timeline=timeline)
    try:
        if node.start():
            node.loop()
        return 0
    finally:
        node.close()
