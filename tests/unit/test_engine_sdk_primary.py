"""An SDK primary through the real engine tick: entries, rule and indicator exits, faults (scripted shards).

Real PaperBroker/TradeStore/EventLogger on SQLite and a real StrategyManager on a YAML whose
`strategies:` block makes donchian_breakout the primary; the scripted executor plays the shards'
`VariantDecision` records (tests/unit/test_shard_sdk.py proves the shards produce them).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from cluster.records import ShardDecision, ShardStatus, TickResult, VariantDecision
from engine.enums import AlertKind, DecisionStatus, LedgerKind
from engine.execution.fill_model import HOUR_MS
from engine.tick.engine import UnifiedEngine
from engine.tick.types import EngineOptions
from strategies.enums import Confidence, ExitReason, PositionSide, Signal
from tests.unit.test_core_engine import T0, YAML, FakeMarket, Rig

SDK_YAML = YAML.format(max_open=3) + """
strategies:
  primary: donchian_breakout
  params:
    donchian_breakout: {stop_loss_atr: 2.0, trailing_distance_atr: 0}
"""


class SdkExecutor:
    n_shards = 1

    def __init__(self) -> None:
        self.script: dict[str, VariantDecision] = {}

    def shard_of(self, symbol: str) -> int:
        return 0

    def evaluate(self, batch, *, want_snapshot=(), deadline_ms=None) -> TickResult:
        out = {}
        for symbol, key in batch.items():
            v = self.script.get(symbol) or _record(Signal.NEUTRAL)
            out[symbol] = ShardDecision(symbol=symbol, candle_key=key, status=ShardStatus.OK, signal=v.signal,
                                        confidence=v.confidence, score=v.score, primary=v)
        return TickResult(decisions=out, alerts=(), elapsed_ms=0.0)

    def checkpoint_all(self) -> int:
        return 0

    def close(self) -> None:
        pass


def _record(signal: Signal, score: float = 0.0, *, exit_long: bool = False, fault: str | None = None,
            ) -> VariantDecision:
    conf = Confidence.LOW if signal is Signal.NEUTRAL else Confidence.HIGH
    return VariantDecision("donchian_breakout", "donchian_breakout", signal, conf, score, 100.0, 2.0,
                           exit_long, False, fault, "ZeroDivisionError: boom" if fault else "")


class Alerts:
    def __init__(self) -> None:
        self.sent: list[tuple[AlertKind, str, dict]] = []

    def send(self, kind, message, extra=None) -> bool:
        self.sent.append((kind, message, dict(extra or {})))
        return True


class SdkRig(Rig):
    def __init__(self, tmp_path: Path) -> None:
        yaml = tmp_path / "strategy.yaml"
        yaml.write_text(SDK_YAML)
        os.chmod(yaml, 0o600)
        self.alerts = Alerts()
        super().__init__(tmp_path)
        self.executor = SdkExecutor()
        self.build()

    def build(self) -> None:
        super().build()
        self.engine = UnifiedEngine(
            strategy=self.strategy, market=self.market, executor=self.executor, broker=self.broker,
            trades=self.store, events=self.events, watchlist=lambda: self.watch,
            options=EngineOptions(interval="1h", funding_poll_ms=0), recorded_ms=lambda: self.market.now,
            alerts=self.alerts,
        )


def test_sdk_primary_opens_ranked_with_its_entry_atr_and_exits_on_its_rules(tmp_path: Path) -> None:
    rig = SdkRig(tmp_path)
    assert isinstance(rig.market, FakeMarket)
    rig.executor.script = {"ETH": _record(Signal.BUY, 1.5), "SOL": _record(Signal.BUY, 0.5)}
    rig.candle(T0, {"BTC": 100.0, "ETH": 100.0, "SOL": 100.0})
    report = rig.engine.tick()
    assert report.opened == 2
    positions = rig.broker.positions()
    assert positions["ETH"].side is PositionSide.LONG and positions["ETH"].entry_atr == 2.0
    # same candle, price through the stop (entry - 2 x 2.0): the rule exit closes at the mid
    rig.market.mids["SOL"] = 95.0
    rig.engine.tick()
    assert "SOL" not in rig.broker.positions()
    assert rig.store.last_close("SOL").reason == ExitReason.STOP_LOSS.value
    # next candle: the strategy's indicator exit for longs fires on ETH (price still inside the stop)
    rig.executor.script = {"ETH": _record(Signal.NEUTRAL, exit_long=True)}
    rig.candle(T0 + HOUR_MS, {"ETH": 101.0})
    report = rig.engine.tick()
    assert report.closed == 1 and "ETH" not in rig.broker.positions()
    assert rig.store.last_close("ETH").reason == ExitReason.TREND_BREAKDOWN.value
    opens = [f for f in rig.store.fills() if f.kind is LedgerKind.OPEN]
    assert [f.symbol for f in opens] == ["ETH", "SOL"]  # ranked by the strategy's score


def test_sdk_primary_fault_is_logged_alerted_once_and_the_rest_trades(tmp_path: Path) -> None:
    rig = SdkRig(tmp_path)
    rig.executor.script = {"ETH": _record(Signal.NEUTRAL, fault="exception"), "SOL": _record(Signal.BUY, 1.0)}
    for hour in range(3):
        rig.candle(T0 + hour * HOUR_MS, {"BTC": 100.0, "ETH": 100.0, "SOL": 100.0})
        rig.engine.tick()
    faults = [e for e in rig.events.events() if e.reason_code == "strategy_fault:exception"]
    assert [e.symbol for e in faults] == ["ETH"] * 3
    assert faults[0].status is DecisionStatus.BLOCKED and faults[0].context["strategy"] == "donchian_breakout"
    assert faults[0].context["detail"] == "ZeroDivisionError: boom"
    health = [a for a in rig.alerts.sent if a[0] is AlertKind.HEALTH]
    assert len(health) == 1 and health[0][2]["symbol"] == "ETH"
    assert "SOL" in rig.broker.positions() and "ETH" not in rig.broker.positions()
    # it recovers, then faults again: alerted again
    rig.executor.script["ETH"] = _record(Signal.NEUTRAL)
    rig.candle(T0 + 3 * HOUR_MS, {})
    rig.engine.tick()
    rig.executor.script["ETH"] = _record(Signal.NEUTRAL, fault="bad_output")
    rig.candle(T0 + 4 * HOUR_MS, {})
    rig.engine.tick()
    assert len([a for a in rig.alerts.sent if a[0] is AlertKind.HEALTH]) == 2
    assert math.isfinite(rig.broker.account({"SOL": 100.0}, rig.market.now).equity_usd)


def test_sdk_primary_opposite_signal_closes_as_flip_and_reenters(tmp_path: Path) -> None:
    rig = SdkRig(tmp_path)
    rig.executor.script = {"SOL": _record(Signal.BUY, 1.0)}
    rig.candle(T0, {"BTC": 100.0, "ETH": 100.0, "SOL": 100.0})
    rig.engine.tick()
    rig.executor.script = {"SOL": _record(Signal.SELL, 1.0)}
    rig.candle(T0 + HOUR_MS, {"SOL": 100.5})
    report = rig.engine.tick()
    assert report.closed == 1 and report.opened == 1
    assert rig.store.last_close("SOL").reason == ExitReason.SIGNAL_FLIP.value
    assert rig.broker.positions()["SOL"].side is PositionSide.SHORT
