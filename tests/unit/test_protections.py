"""engine.tick.protections through a real paper engine tick: the drawdown close-all flattens the
book through the normal exit path, kill-switch changes and breaker trips reach the operator once,
the health guard kills and alerts. A real RiskManager, PaperBroker, TradeStore and EventLogger on
SQLite; the shard executor and market are the scripted fakes of test_core_engine; the alert sink
is a recording fake injected through the constructors."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path

from engine.enums import (
    AlertKind,
    DecisionEventType,
    DecisionStatus,
    DrawdownPolicy,
    ForcedExitReason,
    HealthKey,
    KillCommand,
    LedgerKind,
    Mode,
    PriceSource,
    TradingState,
    TradingStateEvent,
)
from engine.execution.fill_model import HOUR_MS, FillModelParams
from engine.execution.paper_broker import PaperBroker
from engine.execution.trade_store import TradeStore
from engine.marketdata.hub import PriceQuote
from engine.risk.health_guard import HealthSample, HealthSettings
from engine.risk.kill_switch import KillSwitchSources
from engine.risk.limits import RiskLimits
from engine.risk.manager import RiskManager
from engine.risk.state import RiskStateStore
from engine.tick.decision_log import EventLogger
from engine.tick.engine import UnifiedEngine
from engine.tick.protections import Protections
from engine.tick.strategy_manager import StrategyManager
from engine.tick.types import EngineOptions
from strategies.enums import Signal
from tests.unit.test_core_engine import BULL, T0, FakeMarket, ScriptedExecutor, _write_yaml

WALL0 = 1_800_000_000_000


class Sink:
    """Recording alert sink (the Alerter's `send`)."""

    def __init__(self) -> None:
        self.sent: list[tuple[AlertKind, str, dict[str, object]]] = []

    def send(self, kind: AlertKind, message: str, extra: Mapping[str, object] | None = None) -> bool:
        self.sent.append((kind, message, dict(extra or {})))
        return True

    def of(self, kind: AlertKind) -> list[tuple[str, dict[str, object]]]:
        return [(m, e) for k, m, e in self.sent if k is kind]


class AgedMarket(FakeMarket):
    """FakeMarket whose quotes carry a per-symbol age (seconds)."""

    def __init__(self) -> None:
        super().__init__()
        self.ages: dict[str, float] = {}

    def get_mids(self, symbols, max_age_secs=None) -> dict[str, PriceQuote]:
        out = {}
        for s in symbols:
            price = self.mids.get(s)
            source = PriceSource.REDIS_MID if price else PriceSource.NONE
            out[s] = PriceQuote(s, price, source, self.ages.get(s, 0.0))
        return out


class FailingStore(RiskStateStore):
    """The real store whose writes can be made to fail (the DB disk full or gone)."""

    failing = False

    def flush(self) -> int:
        if self.failing:
            raise sqlite3.OperationalError("disk I/O error")
        return super().flush()


class WallClock:
    def __init__(self) -> None:
        self.now = WALL0

    def __call__(self) -> int:
        return self.now


class Rig:
    def __init__(self, tmp_path: Path, env: dict[str, str] | None = None, **limits: object) -> None:
        self.tmp = tmp_path
        self.yaml = tmp_path / "strategy.yaml"
        if not self.yaml.exists():
            _write_yaml(self.yaml, 4, 1_700_000_000)
        self.market = AgedMarket()
        self.executor = ScriptedExecutor()
        self.watch = ["BTC", "ETH", "SOL"]
        self.env = {} if env is None else env
        self.limits = {"max_drawdown_pct": 0.1, "drawdown_reduce_policy": DrawdownPolicy.CLOSE_ALL, **limits}
        self.clock = WallClock()
        self.health = HealthSettings()
        self.build()

    def build(self) -> None:
        self.store = TradeStore.open(self.tmp / "trading_paper.db", Mode.PAPER)
        self.events = EventLogger(self.store.connection, Mode.PAPER)
        params = FillModelParams(slippage_bps=0.0)
        self.risk = RiskManager(
            RiskLimits(**self.limits),  # type: ignore[arg-type]
            FailingStore(self.store.connection),
            KillSwitchSources(env=self.env),
            env=self.env,
        )
        # the daemon's paper path: every fill passes the same risk check first
        self.broker = PaperBroker(
            self.store, params, 10_000.0, clock_ms=lambda: T0, pre_send_check=self.risk.check
        )
        self.sink = Sink()
        self.protections = Protections(self.risk, self.sink, health=self.health, clock_ms=self.clock)
        self.engine = UnifiedEngine(
            strategy=StrategyManager(self.yaml, run_mode=Mode.PAPER), market=self.market,
            executor=self.executor, broker=self.broker, trades=self.store, events=self.events,
            watchlist=lambda: self.watch, options=EngineOptions(interval="1h", funding_enabled=False),
            alerts=self.sink, recorded_ms=lambda: self.market.now, protections=self.protections,
        )  # fmt: skip

    def open_two(self) -> None:
        """Tick 1 at 100: the peak is 10 000 (flat), BTC and ETH open long."""
        self.executor.script = {"BTC": (Signal.BUY, 200.0, BULL), "ETH": (Signal.BUY, 100.0, BULL)}
        self.market.now = T0 + 1_000
        self.market.keys = dict.fromkeys(self.watch, T0)
        self.market.mids.update({"BTC": 100.0, "ETH": 100.0, "SOL": 100.0})
        assert self.engine.tick().opened == 2
        self.executor.script = {}

    def tick_at(self, mids: dict[str, float], advance_ms: int = 60_000) -> int:
        self.market.now += advance_ms
        self.clock.now += advance_ms
        self.market.mids.update(mids)
        return self.engine.tick().closed


def _forced_closes(rig: Rig) -> list[str]:
    return [
        f.symbol for f in rig.store.fills()
        if f.kind is LedgerKind.CLOSE and f.reason == ForcedExitReason.DRAWDOWN_CLOSE_ALL.value
    ]  # fmt: skip


def test_drawdown_close_all_flattens_every_position_through_the_exit_path(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.open_two()
    assert [m for m, _ in rig.sink.of(AlertKind.TRADE)] and len(rig.sink.of(AlertKind.TRADE)) == 2
    # 99 is above the strategy's stop (2 ATR = 98): only the drawdown breaker can close these.
    assert rig.tick_at({"BTC": 99.0, "ETH": 99.0}) == 2
    assert rig.broker.positions() == {}
    assert rig.risk.trading_state is TradingState.REDUCING
    assert sorted(_forced_closes(rig)) == ["BTC", "ETH"]
    exits = [e for e in rig.events.events() if e.event_type is DecisionEventType.EXIT_CHECK]
    assert {(e.symbol, e.status, e.reason_code) for e in exits} == {
        ("BTC", DecisionStatus.EXECUTED, "drawdown_close_all"),
        ("ETH", DecisionStatus.EXECUTED, "drawdown_close_all"),
    }
    by_id = {e.event_id: e for e in exits}
    assert all(by_id[f.decision_id].trade_id == f.trade_id for f in rig.store.fills()
               if f.kind is LedgerKind.CLOSE)  # fmt: skip
    (change,) = rig.sink.of(AlertKind.RISK)[:1]
    assert "ACTIVE -> REDUCING" in change[0] and TradingStateEvent.DRAWDOWN_BREACH.value in change[0]
    assert change[1]["limit_pct"] == 0.1
    risk_messages = [m for m, _ in rig.sink.of(AlertKind.RISK)]
    assert len(risk_messages) == 2 and risk_messages[1].startswith("drawdown close-all: closing 2")
    trades = [m for m, e in rig.sink.of(AlertKind.TRADE) if e["reason"] == "drawdown_close_all"]
    assert len(trades) == 2 and all(m.startswith("CLOSE LONG") for m in trades)
    # The condition lasts (REDUCING, below the peak): later ticks send nothing more.
    before = len(rig.sink.sent)
    for _ in range(3):
        rig.tick_at({"BTC": 98.5, "ETH": 98.5})
    assert len(rig.sink.sent) == before


def test_drawdown_policy_none_reduces_but_does_not_close(tmp_path: Path) -> None:
    rig = Rig(tmp_path, drawdown_reduce_policy=DrawdownPolicy.NONE)
    rig.open_two()
    assert rig.tick_at({"BTC": 99.0, "ETH": 99.0}) == 0
    assert set(rig.broker.positions()) == {"BTC", "ETH"}
    assert rig.risk.trading_state is TradingState.REDUCING and not rig.risk.close_all_armed
    assert len(rig.sink.of(AlertKind.RISK)) == 1


def test_close_all_skips_stale_price_alerts_once_and_closes_when_price_returns(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.open_two()
    rig.market.ages["ETH"] = 120.0  # older than the 60 s limit
    assert rig.tick_at({"BTC": 99.0, "ETH": 99.0}) == 1
    assert set(rig.broker.positions()) == {"ETH"}
    for _ in range(3):
        rig.tick_at({})
    (blocked,) = rig.sink.of(AlertKind.HEALTH)
    assert blocked[0].startswith(HealthKey.CLOSE_ALL_BLOCKED.value)
    assert blocked[1]["skipped"] == "ETH:stale_price" and blocked[1]["kill"] == "none"
    rig.market.ages["ETH"] = 20.0  # stale-but-bounded fallback: used
    assert rig.tick_at({}) == 1
    assert rig.broker.positions() == {} and sorted(_forced_closes(rig)) == ["BTC", "ETH"]
    rig.clock.now += 601_000  # not seen for RESOLVE_AFTER_S: resolved, once
    rig.tick_at({})
    rig.tick_at({})
    assert [m for m, _ in rig.sink.of(AlertKind.HEALTH)][1:] == ["close_all_blocked: resolved"]


def test_close_all_does_not_send_when_operator_halted(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    rig = Rig(tmp_path, env=env)
    rig.open_two()
    env["AI_QUANT_KILL_SWITCH"] = "halt_all"
    rig.tick_at({})
    rig.tick_at({"BTC": 99.0, "ETH": 99.0})
    assert rig.risk.trading_state is TradingState.HALTED and not rig.risk.close_all_armed
    assert rig.risk.counters.drawdown_tripped_ms is not None  # armed for when HALTED is lifted
    assert set(rig.broker.positions()) == {"BTC", "ETH"}
    (halt,) = rig.sink.of(AlertKind.RISK)
    assert "ACTIVE -> HALTED" in halt[0] and halt[1]["source"] == "env"


def test_close_all_resumes_after_restart_and_state_is_announced(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.open_two()
    rig.market.ages["ETH"] = 600.0
    rig.tick_at({"BTC": 99.0, "ETH": 99.0})
    assert set(rig.broker.positions()) == {"ETH"}
    rig.store.close()
    rig.market.ages["ETH"] = 1.0
    rig.build()  # restart on the same DB: REDUCING and the trip are persisted
    assert rig.tick_at({}) == 1 and rig.broker.positions() == {}
    messages = [m for m, _ in rig.sink.of(AlertKind.RISK)]
    assert messages == ["trading state at start: REDUCING", "drawdown close-all: closing 1 position(s)"]


def test_clear_disarms_close_all_and_is_alerted(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    rig = Rig(tmp_path, env=env)
    rig.open_two()
    rig.market.ages["ETH"] = 600.0
    rig.tick_at({"BTC": 99.0, "ETH": 99.0})
    env["AI_QUANT_KILL_SWITCH"] = "clear"
    rig.tick_at({})
    assert rig.risk.trading_state is TradingState.ACTIVE and not rig.risk.close_all_armed
    rig.market.ages["ETH"] = 1.0
    rig.tick_at({})
    assert set(rig.broker.positions()) == {"ETH"}  # no close-all after an explicit clear
    assert [m.split(":")[0] for m, _ in rig.sink.of(AlertKind.RISK)] == [
        "trading state ACTIVE -> REDUCING", "drawdown close-all", "trading state REDUCING -> ACTIVE",
    ]  # fmt: skip


def test_kill_switch_change_is_one_alert_not_one_per_tick(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    rig = Rig(tmp_path, env=env, max_drawdown_pct=0.0)
    rig.open_two()
    env["AI_QUANT_KILL_SWITCH"] = "close_only"
    for _ in range(4):
        rig.tick_at({})
    (alert,) = rig.sink.of(AlertKind.RISK)
    assert "ACTIVE -> REDUCING" in alert[0] and TradingStateEvent.KILL_CLOSE_ONLY.value in alert[0]
    assert set(rig.broker.positions()) == {"BTC", "ETH"}  # close_only is not a close-all


def test_breaker_trip_from_a_fill_is_alerted(tmp_path: Path) -> None:
    from engine.enums import OrderSide
    from strategies.enums import TradeAction

    rig = Rig(tmp_path, max_drawdown_pct=0.0, max_daily_loss_usd=10.0)
    rig.risk.note_fill(
        action=TradeAction.CLOSE, event_ms=T0, side=OrderSide.SELL, fill_price=90.0, reference_price=90.0,
        realised_pnl_usd=-12.0, fee_usd=0.5,
    )  # fmt: skip
    (alert,) = rig.sink.of(AlertKind.RISK)
    assert TradingStateEvent.DAILY_LOSS_BREACH.value in alert[0] and alert[1]["limit_usd"] == 10.0


def test_health_ingest_failures_kill_close_only_and_alert_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_drawdown_pct=0.0)
    for _ in range(4):
        rig.protections.health_check(HealthSample(ingest_ok=False))
    assert rig.risk.trading_state is TradingState.ACTIVE and rig.sink.sent == []
    for _ in range(5):
        rig.protections.health_check(HealthSample(ingest_ok=False))
    assert rig.risk.trading_state is TradingState.REDUCING
    (health,) = rig.sink.of(AlertKind.HEALTH)
    assert health[0].startswith("fill_ingest_failed") and health[1]["kill"] == KillCommand.CLOSE_ONLY.value
    (change,) = rig.sink.of(AlertKind.RISK)
    assert TradingStateEvent.HEALTH_BREACH.value in change[0] and change[1]["key"] == "fill_ingest_failed"
    rig.protections.health_check(HealthSample(ingest_ok=True))
    rig.clock.now += 600_000
    rig.protections.health_check(HealthSample(ingest_ok=True))
    assert rig.sink.of(AlertKind.HEALTH)[-1][0] == "fill_ingest_failed: resolved"
    assert rig.risk.trading_state is TradingState.REDUCING  # resolving never lifts the kill


def test_health_halt_all_mode_halts_and_unmatched_alerts_without_kill(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_drawdown_pct=0.0)
    rig.health = HealthSettings(pending_fills_kill_mode=KillCommand.HALT_ALL, unmatched_grace_secs=0.0)
    rig.store.close()
    rig.build()
    rig.protections.health_check(HealthSample(unmatched_fill_ms=(WALL0 - 1_000,)))
    assert rig.risk.trading_state is TradingState.ACTIVE
    assert [m.split(":")[0] for m, _ in rig.sink.of(AlertKind.HEALTH)] == ["unmatched_fills"]
    rig.protections.health_check(HealthSample(pending_fills=20_000))
    assert rig.risk.trading_state is TradingState.HALTED


def test_risk_state_write_failure_is_one_health_alert(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_drawdown_pct=0.0)
    rig.open_two()
    FailingStore.failing = True
    try:
        rig.risk.apply(TradingStateEvent.KILL_CLOSE_ONLY, T0)
        assert rig.risk.trading_state is TradingState.REDUCING  # enforced in memory
        for _ in range(3):
            rig.tick_at({})
    finally:
        FailingStore.failing = False
    (health,) = rig.sink.of(AlertKind.HEALTH)
    assert health[0].startswith(HealthKey.RISK_STATE_UNPERSISTED.value)


def test_close_all_idle_while_equity_holds(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_drawdown_pct=1.0)
    rig.open_two()
    before = len(rig.sink.sent)
    assert rig.tick_at({"BTC": 100.2, "ETH": 99.9}, advance_ms=HOUR_MS) == 0
    assert len(rig.sink.sent) == before and len(rig.broker.positions()) == 2
    assert rig.risk.trading_state is TradingState.ACTIVE


def test_hard_kill_blocks_the_close_all_until_lifted(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    rig = Rig(tmp_path, env=env)
    rig.open_two()
    env["AI_QUANT_HARD_KILL_SWITCH"] = "1"
    assert rig.tick_at({"BTC": 99.0, "ETH": 99.0}) == 0
    assert set(rig.broker.positions()) == {"BTC", "ETH"} and rig.risk.close_all_armed
    blocked = [e for e in rig.events.events() if e.status is DecisionStatus.BLOCKED]
    assert {(e.symbol, e.reason_code) for e in blocked} == {("BTC", "hard_kill"), ("ETH", "hard_kill")}
    (health,) = rig.sink.of(AlertKind.HEALTH)
    assert health[1]["refused"] == "BTC,ETH"
    del env["AI_QUANT_HARD_KILL_SWITCH"]
    assert rig.tick_at({}) == 2 and rig.broker.positions() == {}
