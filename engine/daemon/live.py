"""The broker stack of `live` and `dry_live`: OMS, venue broker, reconciler, account-event pump.

Built by the node (engine/daemon/node.py) through `live_stack`, the only mode-specific step:
`LiveOms` on the trading DB file, the venue broker (`LiveBroker`: signs and POSTs, the live gate
re-read before every POST; `DryLiveBroker`: signs and records WOULD_SEND, holds no transport),
the reconciler and the pump that moves the sidecar's account events (our userFills and
orderUpdates) into the ledger. Every order passes the node's `RiskManager` pre-send check
against the venue account read at that moment.

Trading waits for a clean start-up reconcile (`OmsReconciler.run_until_settled`); until one run
is clean the loop keeps reconciling and does not tick the engine. Before each engine tick
`LiveStack.before_tick` moves the sidecar's account events into the ledger, runs the periodic
reconcile (at once after the sidecar's user stream reconnected; with the venue's funding
payments, `engine.oms.funding`), feeds new fills to the risk manager (daily loss, slippage
window), feeds the fill path's health to the protections, exports fills and funding into the
trades table (the re-entry cooldown reads it) and polls the risk manager (kill switches,
drawdown). A position mismatch puts risk into REDUCING and alerts. Each step fails on its own:
one failing never skips the others, and none of them can open a position (every send still
passes the pre-send check).

Once trading is enabled, each iteration (and right after every order or exit-state change of
the broker) the protection keeper (engine/execution/protection_keeper.py) keeps a reduce-only
stop (and take-profit) trigger order on the venue for every position, and the heartbeat beats
the venue's dead man's switch (engine/execution/dead_man.py: scheduleCancel armed while the
account holds no position and no stop, cleared while it does, a refusal alerted once).

The secret key is only ever a `SigningKey` (engine/daemon/config.py); nothing here logs or stores it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from engine.alerts.alerting import Alerter
from engine.daemon.stack import BrokerContext, close_in_order
from engine.daemon.stop import StopFlag
from engine.daemon.venue_rules import VenueRules
from engine.enums import AlertKind, LedgerKind, LiquidationPolicy, Mode, OrderSide, TradingStateEvent
from engine.execution.dead_man import DeadManSwitch, SwitchConfig
from engine.execution.gates import live_gate
from engine.execution.live_broker import VenueBrokerParts, build_venue_broker
from engine.execution.oms_trades import classify, export_funding, export_trades
from engine.execution.protection import params_from_config
from engine.execution.protection_keeper import ProtectionConfig, ProtectionKeeper, RiskPort
from engine.execution.trade_store import TradeStore
from engine.oms.funding import FundingLedger, FundingSync
from engine.oms.ledger import LiveOms
from engine.oms.liquidation import LiquidationWatch
from engine.oms.reconciler import AccountEventPump, OmsReconciler, ReconcileReport, ReconcileVerdict
from engine.risk.health_guard import HealthSample
from engine.risk.manager import RiskManager
from engine.runtime.clock import wall_ms
from engine.tick.protections import Protections
from strategies.enums import TradeAction

log = logging.getLogger("engine.daemon.live")

ACCOUNT_GROUP = "driver"
RISK_FILLS_CURSOR = "risk_fills"  # OMS fills rowid fed to RiskManager.note_fill



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
    env: Mapping[str, str]  # read-only: the live gate is read from it before every POST
    user: str
    oms: LiveOms
    risk: RiskManager
    parts: VenueBrokerParts
    reconciler: OmsReconciler
    pump: AccountEventPump | None
    store: TradeStore
    alerter: Alerter
    startup_reconcile_secs: float
    ready: bool = False  # a reconcile came back clean: the engine may trade
    funding_enabled: bool = False  # funding comes from the venue's ledger, not a model
    funding: FundingLedger | None = None  # the venue's userFunding payments (engine.oms.funding)
    protections: Protections | None = None  # fed the fill path's health each iteration
    rules: VenueRules | None = None  # account check, address budget, liquidation (engine.daemon.venue_rules)
    keeper: ProtectionKeeper | None = None  # venue-side stops of every position
    switch: DeadManSwitch | None = None  # the venue's scheduleCancel

    @property
    def broker(self) -> Any:
        return self.parts.broker

    def start(self, stop: StopFlag) -> ReconcileReport:
        """Read the account (it must be readable before anything else), then the start-up
        reconcile trading waits for; alert when it is not clean."""
        verdict = live_gate(self.mode, self.env)
        log.info(
            "venue broker ready mode=%s user=%s gate=%s may_send=%s",
            self.mode.value, self.user, verdict.reason, verdict.may_send,
        )  # fmt: skip
        if self.rules is not None:
            self.rules.start()  # the venue's reason for an account we cannot trade: exit 2
        self.broker.refresh()
        report = self.start_up(stop, self.startup_reconcile_secs)
        if not report.clean and not stop:
            self.alerter.send(
                AlertKind.RISK, "start-up reconcile not clean: not trading", {"verdict": report.verdict}
            )
        return report

    def start_up(self, stop: StopFlag, timeout_secs: float) -> ReconcileReport:
        """The start-up reconcile trading waits for; `ready` only when it is clean."""
        log.info("start-up reconcile: reconciling with the venue")  # the crash soak kills after this line
        with _guard("drain", []):
            self._drain()
        try:
            report = self.reconciler.run_until_settled(timeout_secs=timeout_secs, sleep=_stop_aware(stop))
        except _Stopped:
            report = self.reconciler.last_report or ReconcileReport(verdict=ReconcileVerdict.UNKNOWN)
        self.ready = report.clean and not stop
        if self.ready:
            self._protect([])  # missing protection re-placed, stale cancelled, before the first tick
        log.info(
            "start-up reconcile verdict=%s fills=%d settled=%d in_flight=%d mismatches=%s failures=%s",
            report.verdict.value, report.fills_inserted, report.settled, report.in_flight,
            sorted(report.mismatches), ",".join(report.failures) or "-",
        )  # fmt: skip
        return report

    def before_tick(self) -> bool:
        """The loop's step: sync (see `sync`); tick only after a clean reconcile."""
        failures = self.sync()
        if not self.ready:
            log.warning("not trading: waiting for a clean reconcile failures=%s", ",".join(failures) or "-")
            return False
        return True

    def sync(self) -> list[str]:
        """Account events → ledger, periodic reconcile, trades export, risk poll; return failed steps."""
        failures: list[str] = []
        with _guard("drain", failures):
            self._drain()
        with _guard("reconcile", failures):
            # at once after the sidecar's user stream reconnected, else when the period is due
            session_ms = None if self.pump is None else self.pump.session_started_ms
            report = None if session_ms is None else self.reconciler.on_reconnect(session_ms)
            report = report or self.reconciler.maybe_run()
            if report is not None and not self.ready and report.clean:
                self.ready = True
                log.info("reconcile clean: trading enabled")
        if self.rules is not None:
            self.rules.sync(lambda step: _guard(step, failures))
        if self.ready:
            self._protect(failures)
        with _guard("risk_fills", failures):
            self.feed_risk_fills()
        if self.protections is not None:
            with _guard("health", failures):
                self.protections.health_check(HealthSample(
                    ingest_ok="drain" not in failures,
                    unmatched_fill_ms=tuple(f.time_ms for f in self.oms.orphan_fills()),
                ))  # fmt: skip
        now = wall_ms()
        account = None
        with _guard("account", failures):
            account = self.broker.account({}, now)
        if account is not None:
            with _guard("export", failures):
                export_trades(self.oms, self.store, account_value_usd=account.equity_usd)
            with _guard("export_funding", failures):
                self._export_funding(account.equity_usd)
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
        if self.ready:
            self._protect(failures)  # the positions the daemon leaves behind stay protected
        with _guard("reconcile", failures):  # after it, so its cancels are settled too
            report = self.reconciler.run()
            log.info(
                "shutdown reconcile verdict=%s fills=%d mismatches=%s",
                report.verdict.value, report.fills_inserted, sorted(report.mismatches),
            )  # fmt: skip
        with _guard("risk_fills", failures):
            self.feed_risk_fills()
        with _guard("export", failures):
            account = self.broker.account({}, wall_ms())
            export_trades(self.oms, self.store, account_value_usd=account.equity_usd)
            self._export_funding(account.equity_usd)

    def _protect(self, failures: list[str]) -> None:
        """The dead man's switch's beat (cleared before any stop is placed: it would cancel it),
        then the protective orders in step with the positions."""
        if self.switch is not None:
            with _guard("dead_man", failures):
                self.switch.beat(protected=self.keeper is not None and self.keeper.guarding())
        if self.keeper is not None:
            with _guard("protect", failures):
                self.keeper.sync()

    def on_broker_change(self, symbol: str) -> None:
        """The broker sent an order or moved an exit state: protect that symbol now (not a loop later)."""
        if self.keeper is not None and self.ready:
            if self.switch is not None:  # a new position clears the switch before its stop is placed
                self.switch.beat(protected=self.keeper.guarding())
            self.keeper.sync([symbol])

    def _export_funding(self, equity_usd: float) -> None:
        if self.funding is not None:
            export_funding(self.funding, self.store, account_value_usd=equity_usd)

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
        close_in_order((
            ("transport", getattr(self.parts.transport, "close", None)),
            ("info", self.parts.info.close),
            ("oms", self.oms.close),
            ("funding", None if self.funding is None else self.funding.close),
        ), log)


def live_stack(ctx: BrokerContext) -> LiveStack:
    """The node's broker factory for dry_live and live: wire the ledger, broker, reconciler and
    pump around the node's risk manager (no venue calls yet; `start` makes the first)."""
    config, risk = ctx.config, ctx.risk
    live = config.live
    if live is None:
        raise ValueError(f"live_stack needs the live configuration (mode {config.mode})")
    mode, env = config.mode, config.env
    oms = LiveOms(config.settings.db_path, mode=str(mode), config=live.oms)
    funding = FundingLedger(config.settings.db_path)
    try:
        parts = build_venue_broker(
            mode=mode, base_url=ctx.venue_url, key=live.key, oms=oms, config=live.broker,
            pre_send_check=risk.check, budget=ctx.budget,
            gate=lambda: live_gate(mode, env), on_sent=risk.note_order_sent,
            address_budget=live.address_budget, alert=ctx.alerter.send,
            perp_dexes=config.settings.perp_dexes,
        )  # fmt: skip
        funding_sync = FundingSync(
            ledger=funding, info=parts.info, user=live.user, overlap_ms=live.reconciler.fills_overlap_ms,
            initial_lookback_ms=live.reconciler.initial_lookback_ms,
        )  # fmt: skip
        reconciler = OmsReconciler(
            oms=oms, info=parts.info, config=live.reconciler, funding=funding_sync,
            canceller=getattr(parts.broker, "cancel", None), on_mismatch=_on_mismatch(risk, ctx.alerter),
        )  # fmt: skip
        pump = AccountEventPump(
            oms=oms, layout=ctx.redis.layout, client=ctx.redis.client(), user=live.user, group=ACCOUNT_GROUP,
            consumer=f"daemon-{os.getpid()}",
        )  # fmt: skip
    except BaseException:
        oms.close()
        funding.close()
        raise
    stack = LiveStack(
        mode, env, live.user, oms, risk, parts, reconciler, pump, ctx.store, ctx.alerter,
        live.startup_reconcile_secs, funding=funding, protections=ctx.protections,
        rules=venue_rules(parts, oms, reconciler, risk, ctx.alerter, live.liquidation_policy),
        keeper=_keeper(ctx, parts, oms), switch=_switch(ctx, parts),
    )  # fmt: skip
    parts.broker.on_change = stack.on_broker_change
    return stack


def _keeper(ctx: BrokerContext, parts: VenueBrokerParts, oms: LiveOms) -> ProtectionKeeper | None:
    config = ProtectionConfig.from_env(ctx.config.env)
    if not config.enabled:
        return None
    broker, risk, mode, env = parts.broker, ctx.risk, ctx.config.mode, ctx.config.env
    transport = parts.transport
    return ProtectionKeeper(
        oms=oms, info=parts.info, signer=broker.signer, positions=broker.positions, refresh=broker.refresh,
        params_for=lambda symbol: params_from_config(ctx.strategy.config(symbol), config.buffer_atr),
        risk=RiskPort(check_protective=risk.check_protective, check_cancel=risk.check_cancel,
                      note_cancel_sent=risk.note_cancel_sent),
        gate=lambda: live_gate(mode, env), user=broker.config.user, alerter=ctx.alerter, config=config,
        post=None if transport is None else (
            lambda signed: transport.post(signed, budget_wait_secs=broker.config.budget_wait_secs)),
    )  # fmt: skip


def _switch(ctx: BrokerContext, parts: VenueBrokerParts) -> DeadManSwitch:
    schedule_cancel = getattr(parts.broker, "schedule_cancel", None)  # live only: dry_live cannot send
    return DeadManSwitch(
        schedule_cancel=schedule_cancel, alerter=ctx.alerter, config=SwitchConfig.from_env(ctx.config.env)
    )


def venue_rules(
    parts: VenueBrokerParts, oms: LiveOms, reconciler: OmsReconciler, risk: RiskManager, alerter: Alerter,
    policy: LiquidationPolicy,
) -> VenueRules:  # fmt: skip
    """The venue-rule steps around the broker (engine.daemon.venue_rules)."""
    watch = LiquidationWatch(
        oms=oms, policy=policy, apply_risk=risk.apply, alert=alerter.send, reconcile=reconciler.run,
    )  # fmt: skip
    broker = parts.broker
    return VenueRules(parts.info, broker.config.user, broker.signer.address, broker.equity, watch,
                      parts.address_budget)


def _on_mismatch(risk: RiskManager, alerter: Alerter) -> Callable[[ReconcileReport], None]:
    """A position mismatch puts risk into REDUCING; one alert per distinct mismatch."""
    alerted: list[dict[str, list[float]]] = [{}]

    def on_mismatch(report: ReconcileReport) -> None:
        mismatches = {c: list(v) for c, v in report.mismatches.items()}
        change = risk.apply(TradingStateEvent.RECONCILE_MISMATCH, wall_ms(), {"mismatches": mismatches})
        log.error("reconcile position mismatch %s risk_change=%s", mismatches, change)
        if mismatches != alerted[0]:  # one alert per distinct mismatch, not one per reconcile run
            alerted[0] = mismatches
            alerter.send(AlertKind.RISK, "reconcile position mismatch", {"coins": sorted(report.mismatches)})

    return on_mismatch
