"""UnifiedEngine tick with a scripted shard executor and market (hand-written fakes at the edge),
a real PaperBroker/TradeStore/EventLogger on SQLite and a real StrategyManager on a YAML file."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from cluster.records import ShardDecision, ShardStatus, TickResult
from engine.enums import (
    BrokerReject,
    CandleSource,
    DecisionEventType,
    DecisionStatus,
    ExecutionStatus,
    GateCode,
    LedgerKind,
    Mode,
    PriceSource,
    RiskReason,
)
from engine.execution.broker import OrderIntent, OrderResult
from engine.execution.fill_model import HOUR_MS, FillModelParams
from engine.execution.paper_broker import PaperBroker, allow_all
from engine.execution.trade_store import TradeStore
from engine.execution.verdicts import Deny
from engine.marketdata.hub import KeysSnapshot, PriceQuote
from engine.tick.decision_log import EventLogger
from engine.tick.engine import UnifiedEngine
from engine.tick.strategy_manager import StrategyManager
from engine.tick.types import EngineOptions, execution_fields, reject_detail
from strategies.enums import (
    Confidence,
    EntryKind,
    ExitReason,
    PositionSide,
    Signal,
    StrategyMode,
    TradeAction,
)
from strategies.signals import SignalFeatures

T0 = 1_764_028_800_000  # an hour boundary
NAN = float("nan")
BULL = SignalFeatures(
    close=NAN, adx=30.0, adx_slope=NAN, atr=1.0, atr_slope=NAN, rsi=50.0, ema_fast=101.0, ema_slow=100.0,
    ema_macro=NAN, macd_hist=0.1, prev_macd_hist=NAN, prev2_macd_hist=NAN, prev3_macd_hist=NAN,
    bb_width=NAN, avg_bb_width=NAN, tp_mult=NAN, is_anomaly=False,
)  # fmt: skip
BEAR = replace(BULL, macd_hist=-0.1, ema_fast=99.0)

YAML = """
global:
  trade:
    entry_min_confidence: low
    enable_ssf_filter: false
    enable_reef_filter: false
    max_open_positions: {max_open}
    allocation_pct: 0.1
    entry_cooldown_s: 0
    reentry_cooldown_minutes: 0
    enable_pyramiding: false
    min_notional_usd: 10.0
"""


class FakeMarket:
    def __init__(self) -> None:
        self.now = T0
        self.keys: dict[str, int | None] = {}
        self.mids: dict[str, float] = {}

    def venue_now_ms(self) -> int:
        return self.now

    def candle_keys(self, symbols, interval=None) -> KeysSnapshot:
        return KeysSnapshot({s: self.keys.get(s) for s in symbols}, CandleSource.REDIS)

    def get_mids(self, symbols, max_age_secs=None) -> dict[str, PriceQuote]:
        out = {}
        for s in symbols:
            price = self.mids.get(s)
            out[s] = PriceQuote(s, price, PriceSource.REDIS_MID if price else PriceSource.NONE, 0.0)
        return out


class ScriptedExecutor:
    """Returns the scripted decision for each requested symbol (or NEUTRAL)."""

    n_shards = 1

    def __init__(self) -> None:
        self.script: dict[str, tuple[Signal, float, SignalFeatures]] = {}
        self.status: dict[str, ShardStatus] = {}
        self.calls: list[dict[str, int]] = []

    def shard_of(self, symbol: str) -> int:
        return 0

    def evaluate(self, batch, *, want_snapshot: Collection[str] = (), deadline_ms=None) -> TickResult:
        self.calls.append(dict(batch))
        out = {}
        for symbol, key in batch.items():
            signal, score, features = self.script.get(symbol, (Signal.NEUTRAL, 0.0, BULL))
            out[symbol] = ShardDecision(
                symbol=symbol,
                candle_key=key,
                status=self.status.get(symbol, ShardStatus.OK),
                signal=signal,
                confidence=Confidence.HIGH,
                score=score,
                entry_kind=EntryKind.NONE if signal is Signal.NEUTRAL else EntryKind.PULLBACK,
                features=features,
            )
        return TickResult(decisions=out, alerts=(), elapsed_ms=0.0)

    def checkpoint_all(self) -> int:
        return 0

    def close(self) -> None:
        pass


class FakeFunding:
    def __init__(self, rates: dict[str, float]) -> None:
        self.rates = rates

    def funding_rates(self) -> Mapping[str, float]:
        return self.rates


def _write_yaml(path: Path, max_open: int, stamp: int) -> None:
    path.write_text(YAML.format(max_open=max_open))
    os.chmod(path, 0o600)
    os.utime(path, (stamp, stamp))


class Rig:
    def __init__(self, tmp_path: Path, max_open: int = 2, funding: FakeFunding | None = None) -> None:
        self.tmp = tmp_path
        self.yaml = tmp_path / "strategy.yaml"
        if not self.yaml.exists():
            _write_yaml(self.yaml, max_open, 1_700_000_000)
        self.market = FakeMarket()
        self.executor = ScriptedExecutor()
        self.funding = funding
        self.watch = ["BTC", "ETH", "SOL"]
        self.build()

    def build(self) -> None:
        db = self.tmp / "trading_paper.db"
        self.store = TradeStore.open(db, Mode.PAPER)
        self.events = EventLogger(self.store.connection, Mode.PAPER)
        self.broker = PaperBroker(
            self.store, FillModelParams(slippage_bps=0.0), 10_000.0,
            pre_send_check=allow_all, clock_ms=lambda: T0,
        )  # fmt: skip
        self.strategy = StrategyManager(self.yaml, run_mode=Mode.PAPER)
        self.engine = UnifiedEngine(
            strategy=self.strategy,
            market=self.market,
            executor=self.executor,
            broker=self.broker,
            trades=self.store,
            events=self.events,
            watchlist=lambda: self.watch,
            options=EngineOptions(interval="1h", funding_poll_ms=0),
            funding=self.funding,
            recorded_ms=lambda: self.market.now,
        )

    def candle(self, key: int, mids: dict[str, float]) -> None:
        self.market.now = key + 1_000
        self.market.keys = dict.fromkeys(self.watch, key)
        self.market.mids.update(mids)


@pytest.fixture
def rig(tmp_path):
    return Rig(tmp_path)


def _cash_identity(store: TradeStore) -> None:
    totals = store.totals()
    assert (
        abs(
            totals.seed_usd
            - totals.fees_usd
            + totals.realised_pnl_usd
            + totals.funding_usd
            - totals.balance_usd
        )
        < 0.005
    )


def _trade_events_linked(store: TradeStore, events: EventLogger) -> None:
    by_id = {e.event_id: e for e in events.events()}
    for fill in store.fills():
        if fill.kind in (LedgerKind.SEED, LedgerKind.FUNDING):
            continue
        assert fill.decision_id in by_id, fill
        assert by_id[fill.decision_id].trade_id == fill.trade_id


def test_core_evaluates_only_changed_keys(rig):
    rig.candle(T0, {"BTC": 100.0, "ETH": 100.0, "SOL": 100.0})
    rig.engine.tick()
    rig.engine.tick()
    assert len(rig.executor.calls) == 1 and set(rig.executor.calls[0]) == {"BTC", "ETH", "SOL"}
    rig.market.keys["ETH"] = T0 + HOUR_MS
    rig.engine.tick()
    assert rig.executor.calls[-1] == {"ETH": T0 + HOUR_MS}


def test_core_ranks_by_score_and_enforces_max_open_positions(rig):
    rig.executor.script = {
        "BTC": (Signal.BUY, 150.0, BULL),
        "ETH": (Signal.BUY, 250.0, BULL),
        "SOL": (Signal.BUY, 250.0, BULL),
    }
    rig.candle(T0, {"BTC": 100.0, "ETH": 100.0, "SOL": 100.0})
    report = rig.engine.tick()
    assert report.opened == 2 and report.blocked == 1
    assert set(rig.broker.positions()) == {"ETH", "SOL"}  # tie on 250 broken by symbol, BTC last
    (blocked,) = [e for e in rig.events.events() if e.status is DecisionStatus.BLOCKED]
    assert blocked.symbol == "BTC" and blocked.reason_code == GateCode.MAX_OPEN_POSITIONS.value
    assert blocked.gates[-1].details == {"open": 2, "limit": 2}
    _trade_events_linked(rig.store, rig.events)
    assert "tick=1" in report.status_line() and "open_pos=2" in report.status_line()
    with_sources = report.status_line("sources=ws:3,rest:0,none:0")  # beside the market state, total last
    assert " market=ok sources=ws:3,rest:0,none:0 keys=" in with_sources
    assert with_sources.rsplit(" ", 1)[1].startswith("total=")
    metrics = report.metrics()
    assert metrics["opened"] == 2.0 and metrics["blocked"] == 1.0 and metrics["tick_total_ms"] >= 0.0


def test_core_restart_does_not_reenter_same_candle(rig, tmp_path):
    rig.executor.script = {"ETH": (Signal.BUY, 200.0, BULL)}
    rig.candle(T0, {"BTC": 100.0, "ETH": 100.0, "SOL": 100.0})
    rig.engine.tick()
    assert "ETH" in rig.broker.positions()
    rig.market.mids["ETH"] = 90.0  # stop loss (2 ATR) hit
    rig.engine.tick()
    assert "ETH" not in rig.broker.positions()
    close = rig.store.last_close("ETH")
    assert close is not None and close.reason == ExitReason.STOP_LOSS.value
    rig.build()  # restart: new engine, same DB; the shard re-answers the same candle
    rig.engine.tick()
    assert "ETH" not in rig.broker.positions()
    last = rig.events.events()[-1]
    assert last.symbol == "ETH" and last.reason_code == GateCode.CANDLE_DEDUPE.value


def test_core_signal_flip_closes_then_opens_other_side(rig):
    rig.executor.script = {"SOL": (Signal.BUY, 200.0, BULL)}
    rig.candle(T0, {"BTC": 100.0, "ETH": 100.0, "SOL": 100.0})
    rig.engine.tick()
    rig.executor.script = {"SOL": (Signal.SELL, 200.0, BEAR)}
    rig.candle(T0 + HOUR_MS, {"SOL": 101.0})
    report = rig.engine.tick()
    assert report.closed == 1 and report.opened == 1
    assert rig.broker.positions()["SOL"].side is PositionSide.SHORT
    assert rig.store.last_close("SOL").reason == ExitReason.SIGNAL_FLIP.value
    # entries keep the shard's entry path as their reason code (the enum's value), never prose
    opens = [f for f in rig.store.fills() if f.kind is LedgerKind.OPEN]
    assert [f.reason for f in opens] == [EntryKind.PULLBACK.value] * 2
    _trade_events_linked(rig.store, rig.events)
    _cash_identity(rig.store)


def test_core_flat_mode_blocks_entries_but_not_exits(tmp_path):
    rig = Rig(tmp_path)
    rig.executor.script = {"BTC": (Signal.BUY, 200.0, BULL)}
    rig.candle(T0, {"BTC": 100.0, "ETH": 100.0, "SOL": 100.0})
    rig.engine.tick()
    rig.strategy.set_strategy_mode(StrategyMode.FLAT)
    rig.executor.script = {"ETH": (Signal.BUY, 200.0, BULL)}
    rig.candle(T0 + HOUR_MS, {"BTC": 90.0})
    rig.engine.tick()
    assert set(rig.broker.positions()) == set()  # BTC stopped out, ETH blocked
    blocked = [e for e in rig.events.events() if e.status is DecisionStatus.BLOCKED]
    assert [(e.symbol, e.reason_code) for e in blocked] == [("ETH", GateCode.FLAT_MODE.value)]


def test_core_hot_reload_changes_gates_from_next_tick(tmp_path):
    rig = Rig(tmp_path, max_open=1)
    rig.executor.script = {"BTC": (Signal.BUY, 300.0, BULL), "ETH": (Signal.BUY, 200.0, BULL)}
    rig.candle(T0, {"BTC": 100.0, "ETH": 100.0, "SOL": 100.0})
    assert rig.engine.tick().opened == 1
    _write_yaml(rig.yaml, 3, 1_700_000_100)
    rig.executor.script = {"SOL": (Signal.BUY, 200.0, BULL)}
    rig.candle(T0 + HOUR_MS, {})
    assert rig.engine.tick().opened == 1
    assert set(rig.broker.positions()) == {"BTC", "SOL"}


def test_core_missing_candle_is_asked_again(rig):
    rig.executor.status = {"ETH": ShardStatus.SHARD_LATE}
    rig.candle(T0, {"BTC": 100.0, "ETH": 100.0, "SOL": 100.0})
    rig.engine.tick()
    rig.executor.status = {}
    rig.engine.tick()
    assert rig.executor.calls[-1] == {"ETH": T0}


def test_core_no_price_blocks_entry(rig):
    rig.executor.script = {"ETH": (Signal.BUY, 200.0, BULL)}
    rig.candle(T0, {"BTC": 100.0, "SOL": 100.0})
    rig.engine.tick()
    assert "ETH" not in rig.broker.positions()
    assert rig.events.events()[-1].reason_code == GateCode.ZERO_PRICE.value


def test_core_funding_accrues_with_events(tmp_path):
    rig = Rig(tmp_path, funding=FakeFunding({"BTC": 0.0001}))
    rig.executor.script = {"BTC": (Signal.BUY, 200.0, BULL)}
    rig.candle(T0, {"BTC": 100.0, "ETH": 100.0, "SOL": 100.0})
    rig.engine.tick()
    rig.market.now = T0 + 2 * HOUR_MS + 5
    rig.engine.tick()
    funding_rows = [f for f in rig.store.fills() if f.kind is LedgerKind.FUNDING]
    assert len(funding_rows) == 2 and all(f.funding_usd < 0 for f in funding_rows)
    funding_events = [e for e in rig.events.events() if e.event_type is DecisionEventType.FUNDING]
    assert sorted(e.trade_id for e in funding_events) == sorted(f.trade_id for f in funding_rows)
    _cash_identity(rig.store)


@pytest.mark.parametrize("reason", [RiskReason.MAX_POSITIONS, RiskReason.CHECK_FAILED])
def test_denied_order_event_keys_on_the_risk_reason_with_its_numbers(reason: RiskReason) -> None:
    intent = OrderIntent(
        symbol="ETH", action=TradeAction.OPEN, side=PositionSide.LONG, reference_price=100.0, event_ms=T0,
        reason=EntryKind.STANDARD, size_coins=1.0,
    )  # fmt: skip
    deny = Deny(reason, {"open": 2, "limit": 2})
    result = OrderResult(
        intent=intent, status=ExecutionStatus.REJECTED, reject=BrokerReject.RISK_DENIED, deny=deny
    )
    fields = execution_fields(result, TradeAction.OPEN, None)
    assert fields["status"] is DecisionStatus.REJECTED and fields["reason_code"] == reason.value
    assert reject_detail(result) == {
        "broker_status": "REJECTED", "broker_reject": "risk_denied", "risk": {"open": 2, "limit": 2}
    }
    other = OrderResult(intent=intent, status=ExecutionStatus.REJECTED, reject=BrokerReject.NO_PRICE)
    assert execution_fields(other, TradeAction.OPEN, None)["reason_code"] == "broker_no_price"


class _Died(BaseException):
    """The daemon process dying (kill -9) inside the broker call: nothing after it runs."""


def test_core_restart_after_dying_with_an_order_in_flight_never_resends_it(rig, monkeypatch):
    # The decision is on disk (PENDING) before the order goes out; the restarted engine must take
    # it as an entry on that candle (the venue may have it), not send the same entry again.
    rig.executor.script = {"ETH": (Signal.BUY, 200.0, BULL)}
    rig.candle(T0, {"BTC": 100.0, "ETH": 100.0, "SOL": 100.0})

    def dies(intent: object, now: int) -> None:
        raise _Died

    monkeypatch.setattr(rig.broker, "execute", dies)
    with pytest.raises(_Died):
        rig.engine.tick()
    (pending,) = [e for e in rig.events.events() if e.status is DecisionStatus.PENDING]
    assert (pending.symbol, pending.event_type) == ("ETH", DecisionEventType.ENTRY_SIGNAL)
    monkeypatch.undo()
    rig.build()  # restart: new engine, same DB; the shard re-answers the same candle
    rig.engine.tick()
    assert "ETH" not in rig.broker.positions()
    last = rig.events.events()[-1]
    assert last.symbol == "ETH" and last.reason_code == GateCode.CANDLE_DEDUPE.value
