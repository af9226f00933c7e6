"""The daemon in `live` and `dry_live`: the venue broker stack beside the same engine and loop as paper.

Start-up (DESIGN §1, §6; issue 6): settings → secrets (AI_QUANT_SECRETS_PATH, refused before
anything starts) → promoted config → lock → alerter → StrategyManager → trading DB (TradeStore,
EventLogger, LiveOms on the same file, RiskManager) → Redis → venue → watchlist → sidecar (told
AI_QUANT_ACCOUNT_ADDRESS so it forwards our userFills/orderUpdates) → shards → venue broker →
start-up reconcile → loop.

The venue broker is `LiveBroker` (live: signs and POSTs, the live gate re-read before every POST)
or `DryLiveBroker` (dry_live: signs and records WOULD_SEND, holds no transport). Every order passes
the risk manager's pre-send check against the venue account read at that moment.

Trading waits for a clean start-up reconcile (`OmsReconciler.run_until_settled`); until one run
is clean the loop keeps reconciling and does not tick the engine. Before each engine tick
`LiveStack.before_tick` moves the sidecar's account events into the ledger, runs the periodic
reconcile (at once after the sidecar's user stream reconnected; with the venue's funding
payments, `engine.oms.funding`), feeds new fills to the risk manager (daily loss, slippage
window), exports fills and funding into the trades table (the re-entry cooldown reads it) and
polls the risk manager (kill switches, drawdown). A position mismatch puts risk into REDUCING
and alerts. Each step fails on its own: one failing never skips the others, and none of them can
open a position (every send still passes the pre-send check).

The secret key is only ever turned into a `SigningKey`; nothing here logs or stores it.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cluster.records import ShardAlert
from cluster.shard_core import ConfigSource
from engine.alerts.alerting import build_alerter
from engine.config.env import ConfigError, env_float
from engine.config.settings import DaemonSettings
from engine.daemon.loop import CandleCloseWaiter, FreshClockMarket, resolve_watchlist, run_loop
from engine.daemon.services import RuntimeSettings, Services, apply_venue_defaults
from engine.enums import AlertKind, LedgerKind, Mode, OrderSide, TradingStateEvent
from engine.execution.gates import live_gate
from engine.execution.live_broker import (
    LiveBrokerConfig,
    VenueBrokerParts,
    build_venue_broker,
)
from engine.execution.oms_trades import classify, export_funding, export_trades
from engine.execution.trade_store import TradeStore
from engine.marketdata.hub import HubSettings, MarketDataHub, resolve_candle_mode
from engine.oms.funding import FundingLedger, FundingSync
from engine.oms.ledger import LiveOms, OmsConfig
from engine.oms.reconciler import (
    AccountEventPump,
    OmsReconciler,
    ReconcilerConfig,
    ReconcileReport,
    ReconcileVerdict,
)
from engine.risk.manager import RiskManager
from engine.runtime.lock import DaemonLock
from engine.runtime.systemd_watchdog import SystemdWatchdog
from engine.sidecar.settings import SidecarSettings
from engine.tick.decision_log import EventLogger
from engine.tick.engine import UnifiedEngine
from engine.tick.engine_knobs import fold_engine_yaml
from engine.tick.promoted_config import apply_promoted_config
from engine.tick.strategy_manager import StrategyManager
from engine.tick.types import EngineOptions
from engine.venue.context import VenueContext
from engine.venue.exchange_client import SigningKey
from engine.venue.info_client import HyperliquidInfoClient
from engine.venue.rate_budget import RateBudget
from engine.venue.secrets import load_live_secrets_from_env
from strategies.enums import TradeAction

if TYPE_CHECKING:
    from engine.daemon.cli import StopFlag

log = logging.getLogger("engine.daemon")

ACCOUNT_GROUP = "driver"
RISK_FILLS_CURSOR = "risk_fills"  # OMS fills rowid fed to RiskManager.note_fill
ENV_ACCOUNT_ADDRESS = "AI_QUANT_ACCOUNT_ADDRESS"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@contextmanager
def _guard(step: str, failures: list[str]) -> Iterator[None]:
    try:
        yield
    except Exception as exc:  # one failing step must not skip the others; the next tick retries
        failures.append(step)
        log.warning("live step failed step=%s error=%s", step, type(exc).__name__, exc_info=True)


class _Stopped(Exception):
    pass


def _stop_aware(stop: StopFlag) -> Callable[[float], None]:
    """A sleep for `run_until_settled` that ends the wait at once when a stop signal arrives
    (`stop.wait` alone would return immediately and let it re-run back to back until its timeout)."""

    def sleep(secs: float) -> None:
        if stop.wait(secs):
            raise _Stopped

    return sleep


@dataclass
class LiveStack:
    """The venue broker, ledger, risk manager, reconciler and account-event pump of one run."""

    mode: Mode
    user: str
    oms: LiveOms
    risk: RiskManager
    parts: VenueBrokerParts
    reconciler: OmsReconciler
    pump: AccountEventPump | None
    store: TradeStore
    ready: bool = False  # a reconcile came back clean: the engine may trade
    funding: FundingLedger | None = None

    @property
    def broker(self) -> Any:
        return self.parts.broker

    def start_up(self, stop: StopFlag, timeout_secs: float) -> ReconcileReport:
        """The start-up reconcile trading waits for; `ready` only when it is clean."""
        with _guard("drain", []):
            self._drain()
        try:
            report = self.reconciler.run_until_settled(timeout_secs=timeout_secs, sleep=_stop_aware(stop))
        except _Stopped:
            report = self.reconciler.last_report or ReconcileReport(verdict=ReconcileVerdict.UNKNOWN)
        self.ready = report.clean and not stop
        log.info(
            "start-up reconcile verdict=%s fills=%d settled=%d in_flight=%d mismatches=%s failures=%s",
            report.verdict.value, report.fills_inserted, report.settled, report.in_flight,
            sorted(report.mismatches), ",".join(report.failures) or "-",
        )  # fmt: skip
        return report

    def before_tick(self) -> list[str]:
        """Account events → ledger, periodic reconcile, trades export, risk poll; return failed steps."""
        failures: list[str] = []
        with _guard("drain", failures):
            self._drain()
        with _guard("reconcile", failures):
            session_ms = None if self.pump is None else self.pump.session_started_ms
            report = None if session_ms is None else self.reconciler.on_reconnect(session_ms)
            report = report or self.reconciler.maybe_run()
            if report is not None and not self.ready and report.clean:
                self.ready = True
                log.info("reconcile clean: trading enabled")
        with _guard("risk_fills", failures):
            self.feed_risk_fills()
        now = _now_ms()
        account = None
        with _guard("account", failures):
            account = self.broker.account({}, now)
        if account is not None:
            with _guard("export", failures):
                export_trades(self.oms, self.store, account_value_usd=account.equity_usd)
            with _guard("export_funding", failures):
                if self.funding is not None:
                    export_funding(self.funding, self.store, account_value_usd=account.equity_usd)
        with _guard("risk", failures):
            for change in self.risk.poll(now, account):
                log.warning("risk state change %s", change)
        return failures

    def final_sync(self) -> None:
        """At shutdown: bring the ledger and the trades table up to date with the venue (fills of
        the last tick may still be in the account stream or only on the venue)."""
        failures: list[str] = []
        with _guard("drain", failures):
            self._drain()
        with _guard("reconcile", failures):
            report = self.reconciler.run()
            log.info(
                "shutdown reconcile verdict=%s fills=%d mismatches=%s",
                report.verdict.value, report.fills_inserted, sorted(report.mismatches),
            )  # fmt: skip
        with _guard("risk_fills", failures):
            self.feed_risk_fills()
        with _guard("export", failures):
            account = self.broker.account({}, _now_ms())
            export_trades(self.oms, self.store, account_value_usd=account.equity_usd)
            if self.funding is not None:
                export_funding(self.funding, self.store, account_value_usd=account.equity_usd)

    def feed_risk_fills(self) -> int:
        """Tell the risk manager about ledger fills it has not seen (daily loss from exits, the
        slippage window from entries), in ledger order, behind a persisted cursor. A crash between
        `note_fill` and the cursor moving counts that one fill twice on restart (never misses one).
        Returns how many fills were fed."""
        start = self.oms.cursor(RISK_FILLS_CURSOR) or 0
        rows = self.oms.fills_after_rowid(start, 1000)
        links = self.oms.fill_links() if rows else {}
        fed = 0
        for rowid, fill in rows:
            kind_side = classify(fill)
            if kind_side is not None:
                link = links.get(fill.fill_key)
                intent = self.oms.intent(link[0]) if link is not None else None
                entry = kind_side[0] in (LedgerKind.OPEN, LedgerKind.ADD)
                change = self.risk.note_fill(
                    action=TradeAction.OPEN if entry else TradeAction.CLOSE,
                    event_ms=fill.time_ms,
                    side=OrderSide.BUY if fill.is_buy else OrderSide.SELL,
                    fill_price=fill.px,
                    reference_price=intent.reference_price if intent is not None else fill.px,
                    realised_pnl_usd=fill.closed_pnl,
                    fee_usd=fill.fee,
                )
                fed += 1
                if change is not None:
                    log.warning("risk state change from a fill %s", change)
            self.oms.advance_cursor(RISK_FILLS_CURSOR, rowid)
        return fed

    def _drain(self) -> None:
        if self.pump is not None:
            while self.pump.drain() > 0:
                pass

    def close(self) -> None:
        """Close the venue clients and the ledger; never raises."""
        for name, closer in (
            ("transport", getattr(self.parts.transport, "close", None)),
            ("info", self.parts.info.close),
            ("oms", self.oms.close),
            ("funding", None if self.funding is None else self.funding.close),
        ):
            if closer is None:
                continue
            try:
                closer()
            except Exception:  # teardown must reach every later step
                log.exception("closing %s failed", name)


def account_address(env: MutableMapping[str, str], main_address: str) -> str:
    """The account the sidecar forwards events for must be the wallet we trade: set it, or refuse
    a different one."""
    configured = env.get(ENV_ACCOUNT_ADDRESS, "").strip()
    if configured and configured.lower() != main_address.lower():
        raise ConfigError(
            f"{ENV_ACCOUNT_ADDRESS}={configured} is not the secrets file's main_address ({main_address})"
        )
    env[ENV_ACCOUNT_ADDRESS] = main_address
    return main_address


def build_live_stack(
    *,
    mode: Mode,
    env: MutableMapping[str, str],
    settings: DaemonSettings,
    store: TradeStore,
    risk_yaml: Any,
    key: SigningKey,
    user: str,
    base_url: str,
    budget: RateBudget,
    redis_client: Any,
    layout: Any,
    on_mismatch_alert: Callable[[ReconcileReport], None],
) -> LiveStack:
    """Wire the ledger, risk manager, broker, reconciler and pump (no venue calls yet)."""
    oms = LiveOms(settings.db_path, mode=str(mode), config=OmsConfig.from_env(env))
    funding = FundingLedger(settings.db_path)
    try:
        risk = RiskManager.from_config(store.connection, risk_yaml, env)
        parts = build_venue_broker(
            mode=mode, base_url=base_url, key=key, oms=oms, config=LiveBrokerConfig.from_env(user, env),
            pre_send_check=risk.check, budget=budget,
            gate=lambda: live_gate(mode, env), on_sent=risk.note_order_sent,
        )  # fmt: skip

        alerted: list[dict[str, list[float]]] = [{}]

        def on_mismatch(report: ReconcileReport) -> None:
            mismatches = {c: list(v) for c, v in report.mismatches.items()}
            change = risk.apply(TradingStateEvent.RECONCILE_MISMATCH, _now_ms(), {"mismatches": mismatches})
            log.error("reconcile position mismatch %s risk_change=%s", mismatches, change)
            if mismatches != alerted[0]:  # one alert per distinct mismatch, not one per reconcile run
                alerted[0] = mismatches
                on_mismatch_alert(report)

        reconciler_config = ReconcilerConfig.from_env(user, str(mode), env)
        funding_sync = FundingSync(
            ledger=funding, info=parts.info, user=user, overlap_ms=reconciler_config.fills_overlap_ms,
            initial_lookback_ms=reconciler_config.initial_lookback_ms,
        )  # fmt: skip
        reconciler = OmsReconciler(
            oms=oms, info=parts.info, config=reconciler_config,
            canceller=getattr(parts.broker, "cancel", None), on_mismatch=on_mismatch, funding=funding_sync,
        )  # fmt: skip
        pump = None
        if redis_client is not None:
            pump = AccountEventPump(
                oms=oms, layout=layout, client=redis_client, user=user, group=ACCOUNT_GROUP,
                consumer=f"daemon-{os.getpid()}",
            )  # fmt: skip
    except BaseException:
        oms.close()
        funding.close()
        raise
    return LiveStack(mode, user, oms, risk, parts, reconciler, pump, store, funding=funding)


def _read_config(
    env: MutableMapping[str, str], mode: Mode
) -> tuple[DaemonSettings, RuntimeSettings, float, SigningKey, str]:
    """Every setting and the wallet, before anything starts: a bad value, a bad or world-readable
    secrets file, or a foreign AI_QUANT_ACCOUNT_ADDRESS stops here (exit 2)."""
    if mode not in (Mode.LIVE, Mode.DRY_LIVE):
        raise ValueError(f"run_live runs live or dry_live, not {mode}")
    apply_venue_defaults(env)
    settings = DaemonSettings.from_env(env)
    runtime = RuntimeSettings.from_env(env)
    reconcile_timeout = env_float("AI_QUANT_LIVE_STARTUP_RECONCILE_SECS", 60.0, env, lo=1.0, hi=3_600.0)
    secrets = load_live_secrets_from_env(env)
    key = secrets.signing_key()
    return settings, runtime, reconcile_timeout, key, account_address(env, secrets.main_address)


def run_live(env: MutableMapping[str, str], mode: Mode, stop: StopFlag) -> int:
    """Start everything, reconcile, run the loop until stopped, tear everything down; return 0."""
    settings, runtime, reconcile_timeout, key, user = _read_config(env, mode)
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
    stack: LiveStack | None = None
    try:
        strategy = StrategyManager(
            promoted.strategy_yaml, run_mode=mode, strategy_mode=settings.strategy_mode,
            live_defaults=settings.live_defaults, alerts=alerter, interval=settings.interval,
        )  # fmt: skip
        interval = strategy.interval
        env["AI_QUANT_INTERVAL"] = interval
        fold_engine_yaml(env, strategy.config().engine, interval, str(strategy.path))
        settings = DaemonSettings.from_env(env)  # again: YAML engine.* now folded into env
        on_close = resolve_candle_mode(env, None)  # after the fold: the YAML value is in env
        store = TradeStore.open(settings.db_path, mode)
        run_id = settings.run_id or uuid.uuid4().hex[:12]
        events = EventLogger(store.connection, mode, run_id)

        redis_rt = services.start_redis()
        base_url = services.start_venue(interval, settings.lookback_bars)
        budget = RateBudget()  # one budget for every REST call of this process
        info = HyperliquidInfoClient(base_url, timeout_secs=10.0, budget=budget)
        watchlist = resolve_watchlist(settings, info, stop)
        if stop:
            return 0
        env["AI_QUANT_SYMBOLS"] = ",".join(watchlist)
        sidecar_settings = SidecarSettings.from_env(env)
        services.start_sidecar()

        def mismatch_alert(report: ReconcileReport) -> None:
            alerter.send(AlertKind.RISK, "reconcile position mismatch", {"coins": sorted(report.mismatches)})

        stack = build_live_stack(
            mode=mode, env=env, settings=settings, store=store, risk_yaml=strategy.config().risk, key=key,
            user=user, base_url=base_url, budget=budget, redis_client=redis_rt.client(),
            layout=redis_rt.layout, on_mismatch_alert=mismatch_alert,
        )  # fmt: skip
        verdict = live_gate(mode, env)
        log.info(
            "venue broker ready mode=%s user=%s gate=%s may_send=%s",
            mode.value, user, verdict.reason, verdict.may_send,
        )  # fmt: skip
        stack.broker.refresh()  # the account must be readable before anything else
        report = stack.start_up(stop, reconcile_timeout)
        if stop:
            return 0
        if not report.clean:
            alerter.send(
                AlertKind.RISK, "start-up reconcile not clean: not trading", {"verdict": report.verdict}
            )

        mode_value = strategy.strategy_mode.value if strategy.strategy_mode else None
        configs = ConfigSource(overrides=strategy.overrides, live=strategy.live, strategy_mode=mode_value)

        def shard_alert(alert: ShardAlert) -> None:
            alerter.send(AlertKind.SHARD, alert.fault.value, {"shard": alert.shard, "symbols": alert.symbols})

        executor = services.start_shards(
            interval=interval, configs=configs, symbols=watchlist, alert=shard_alert,
            signal_on_candle_close=on_close,
        )
        stop.install()  # Ray's start-up may have replaced our handlers
        if stop:
            return 0
        hub = MarketDataHub(
            redis_client=redis_rt.client(), layout=redis_rt.layout, settings=HubSettings.from_env(env),
            candles_db_path=sidecar_settings.candles_db_path, rest=info,
        )  # fmt: skip
        venue = VenueContext(stack.parts.info)
        engine = UnifiedEngine(
            strategy=strategy, market=FreshClockMarket(hub), executor=executor, broker=stack.broker,
            trades=store, events=events, watchlist=lambda: watchlist,
            options=EngineOptions(
                interval=interval, entry_max_delay_ms=settings.entry_max_delay_ms,
                retry_on_capacity=settings.entry_retry_on_capacity, funding_enabled=False,
                heartbeat_secs=settings.heartbeat_secs,
            ),
            alerts=alerter, funding=venue, sz_decimals=venue.sz_decimals,
        )  # fmt: skip
        waiter = CandleCloseWaiter(
            redis_rt.client(socket_timeout=None), redis_rt.layout.closed_channel(interval)
        )
        log.info(
            "engine started mode=%s run_id=%s interval=%s symbols=%s shards=%d executor=%s venue=%s db=%s",
            mode.value, run_id, interval, ",".join(watchlist), runtime.n_shards, runtime.executor.value,
            base_url, settings.db_path,
        )  # fmt: skip
        alerter.send(AlertKind.RESTART, "engine started", {"run_id": run_id, "venue": runtime.venue.value})
        run_loop(engine, waiter, watchdog, stop, settings.loop_target_secs, _trading_ready(stack))
        log.info("shutting down signal=%s", stop.signal_name)
        stack.final_sync()
        alerter.send(AlertKind.SHUTDOWN, "engine stopping", {"run_id": run_id, "signal": stop.signal_name})
        return 0
    finally:
        watchdog.stopping()
        if waiter is not None:
            waiter.close()
        services.stop()
        if hub is not None:
            hub.close()
        if stack is not None:
            stack.close()
        if info is not None:
            info.close()
        if store is not None:
            store.close()
        alerter.close()
        lock.release()
        log.info("stopped")


def _trading_ready(stack: LiveStack) -> Callable[[], bool]:
    """The loop's before-tick step: sync the live stack, and tick only after a clean reconcile."""

    def step() -> bool:
        failures = stack.before_tick()
        if not stack.ready:
            log.warning("not trading: waiting for a clean reconcile failures=%s", ",".join(failures) or "-")
            return False
        return True

    return step
