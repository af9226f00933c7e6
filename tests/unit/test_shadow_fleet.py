"""ShadowFleet: own paper book per variant on a real SQLite trading DB, hand-computed fills, fees and
funding; restart from the DB; faults skipped and logged once; and a live-mode UnifiedEngine whose
broker (a recording fake at the edge) never sees a shadow order."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Collection, Mapping
from pathlib import Path

import pytest

from cluster.records import ShardDecision, ShardStatus, TickResult, VariantDecision
from engine.enums import CandleSource, LedgerKind, Mode, PriceSource
from engine.execution.broker import AccountSnapshot, OrderIntent, OrderResult, Position
from engine.execution.fill_model import HOUR_MS, FillModelParams
from engine.execution.trade_store import TradeStore, open_trading_db
from engine.marketdata.hub import KeysSnapshot, PriceQuote
from engine.tick.decision_log import EventLogger
from engine.tick.engine import UnifiedEngine
from engine.tick.shadow import INDICATOR_EXIT, ShadowFleet, ShadowSettings, open_fleet
from engine.tick.shadow_store import ShadowStore
from engine.tick.strategy_manager import StrategyManager
from engine.tick.types import EngineOptions
from strategies.enums import Confidence, PositionSide, Signal
from strategies.sdk.strategy import ExitRules

T0 = 1_764_028_800_000  # an hour boundary
RULES = {
    "tight": ExitRules(atr_column="atr", stop_loss_atr=2.0, take_profit_atr=4.0),
    "trail": ExitRules(
        atr_column="atr", stop_loss_atr=2.0, trailing_start_atr=1.0, trailing_distance_atr=1.0
    ),
}
SLIP = 10.0  # bps
FEE = 0.00045  # taker base rate


def _variant(name: str, signal: Signal = Signal.NEUTRAL, *, atr: float = 1.0, exit_long: bool = False,
             exit_short: bool = False, fault: str | None = None) -> VariantDecision:  # fmt: skip
    return VariantDecision(
        variant=name, strategy="breakout", signal=signal, confidence=Confidence.MEDIUM, score=1.0,
        close=100.0, entry_atr=atr, exit_long=exit_long, exit_short=exit_short, fault=fault,
    )  # fmt: skip


def _decisions(symbol: str, *variants: VariantDecision, key: int = T0) -> dict[str, ShardDecision]:
    return {symbol: ShardDecision(symbol=symbol, candle_key=key, status=ShardStatus.OK, variants=variants)}


def _quote(symbol: str, mid: float) -> dict[str, PriceQuote]:
    return {symbol: PriceQuote(symbol, mid, PriceSource.REDIS_MID, 0.0)}


def _rules_for(variant: str) -> ExitRules:
    return RULES[variant]


class Books:
    def __init__(self, tmp: Path, **settings: object) -> None:
        self.db = tmp / "trading_paper.db"
        self.settings = ShadowSettings(fill=FillModelParams(slippage_bps=SLIP), **settings)  # type: ignore[arg-type]
        self.open()

    def open(self) -> None:
        self.conn = open_trading_db(self.db)
        self.store = ShadowStore(self.conn, Mode.PAPER)
        self.fleet = ShadowFleet(self.store, _rules_for, self.settings, recorded_ms=lambda: T0)


@pytest.fixture
def books(tmp_path: Path) -> Books:
    return Books(tmp_path)


def test_buy_opens_fixed_notional_at_the_slipped_mid_with_the_taker_fee(books: Books) -> None:
    report = books.fleet.on_tick(_decisions("ETH", _variant("tight", Signal.BUY)), _quote("ETH", 100.0), T0)
    assert (report.opened, report.closed, report.open_positions) == (1, 0, 1)
    [fill] = books.store.fills()
    price = 100.0 * (1 + SLIP / 10_000)
    assert (fill.kind, fill.side, fill.variant, fill.symbol) == (
        LedgerKind.OPEN,
        PositionSide.LONG,
        "tight",
        "ETH",
    )
    assert fill.price == pytest.approx(price)
    assert fill.size_coins == pytest.approx(1_000.0 / price)
    assert fill.notional_usd == pytest.approx(1_000.0)
    assert fill.fee_usd == pytest.approx(1_000.0 * FEE)
    position = books.fleet.positions[("tight", "ETH")]
    assert (position.entry_atr, position.opened_ms) == (1.0, T0)


def test_stop_closes_at_the_slipped_mid_with_gross_pnl_and_fee(books: Books) -> None:
    books.fleet.on_tick(_decisions("ETH", _variant("tight", Signal.BUY)), _quote("ETH", 100.0), T0)
    entry = 100.1
    size = 1_000.0 / entry
    books.fleet.on_tick({}, _quote("ETH", 98.2), T0 + 60_000)  # above the stop 100.1 - 2 x 1.0 = 98.1: hold
    assert ("tight", "ETH") in books.fleet.positions
    report = books.fleet.on_tick({}, _quote("ETH", 98.0), T0 + 120_000)
    assert report.closed == 1 and not books.fleet.positions
    close = books.store.fills()[-1]
    exit_price = 98.0 * (1 - SLIP / 10_000)
    assert (close.kind, close.reason) == (LedgerKind.CLOSE, "stop_loss")
    assert close.price == pytest.approx(exit_price)
    assert close.realised_pnl_usd == pytest.approx((exit_price - entry) * size)
    assert close.fee_usd == pytest.approx(size * exit_price * FEE)
    assert books.conn.execute("SELECT COUNT(*) FROM shadow_positions").fetchone()[0] == 0


def test_each_variant_has_its_own_book_and_indicator_exits_only_close_their_side(books: Books) -> None:
    tick = _decisions("ETH", _variant("tight", Signal.BUY), _variant("trail", Signal.SELL))
    books.fleet.on_tick(tick, _quote("ETH", 100.0), T0)
    sides = {k: p.side for k, p in books.fleet.positions.items()}
    assert sides == {("tight", "ETH"): PositionSide.LONG, ("trail", "ETH"): PositionSide.SHORT}
    # exit_short on the long and exit_long on the short: nothing closes
    flags = _decisions(
        "ETH", _variant("tight", exit_short=True), _variant("trail", exit_long=True), key=T0 + 1
    )
    assert books.fleet.on_tick(flags, _quote("ETH", 100.0), T0 + 1).closed == 0
    flags = _decisions("ETH", _variant("tight", exit_long=True), _variant("trail"), key=T0 + 2)
    report = books.fleet.on_tick(flags, _quote("ETH", 100.0), T0 + 2)
    assert report.closed == 1
    assert set(books.fleet.positions) == {("trail", "ETH")}
    assert books.store.fills("tight")[-1].reason == INDICATOR_EXIT
    assert [f.kind for f in books.store.fills("trail")] == [LedgerKind.OPEN]


def test_no_second_entry_while_open_and_no_reentry_on_the_closing_tick(books: Books) -> None:
    books.fleet.on_tick(_decisions("ETH", _variant("tight", Signal.BUY)), _quote("ETH", 100.0), T0)
    assert (
        books.fleet.on_tick(
            _decisions("ETH", _variant("tight", Signal.BUY)), _quote("ETH", 100.0), T0 + 1
        ).opened
        == 0
    )
    report = books.fleet.on_tick(
        _decisions("ETH", _variant("tight", Signal.BUY)), _quote("ETH", 90.0), T0 + 2
    )
    assert (report.closed, report.opened) == (1, 0)
    report = books.fleet.on_tick(
        _decisions("ETH", _variant("tight", Signal.BUY)), _quote("ETH", 90.0), T0 + 3
    )
    assert report.opened == 1


def test_no_mid_no_fill_and_blind_opens_nothing(books: Books) -> None:
    assert books.fleet.on_tick(_decisions("ETH", _variant("tight", Signal.BUY)), {}, T0).opened == 0
    report = books.fleet.on_tick(_decisions("ETH", _variant("tight", Signal.BUY)), _quote("ETH", 100.0), T0,
                                 entries=False)  # fmt: skip
    assert report.opened == 0 and not books.store.fills()


def test_mids_missing_from_the_engine_are_fetched_once(tmp_path: Path) -> None:
    asked: list[list[str]] = []

    def mids(symbols):  # the engine's MarketView.get_mids at the edge
        asked.append(list(symbols))
        return {s: PriceQuote(s, 100.0, PriceSource.REDIS_MID, 0.0) for s in symbols}

    store = ShadowStore(open_trading_db(tmp_path / "t.db"), Mode.PAPER)
    fleet = ShadowFleet(store, _rules_for, ShadowSettings(), mids=mids)
    tick = {**_decisions("ETH", _variant("tight", Signal.BUY)), **_decisions("SOL", _variant("tight"))}
    assert fleet.on_tick(tick, {}, T0).opened == 1
    assert asked == [["ETH"]]


def test_a_faulted_variant_is_skipped_and_logged_once(books: Books, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="engine.tick.shadow")
    for k in range(3):
        tick = _decisions(
            "ETH", _variant("tight", fault="exception: boom"), _variant("trail", Signal.BUY), key=T0 + k
        )
        books.fleet.on_tick(tick, _quote("ETH", 100.0), T0 + k)
    assert set(books.fleet.positions) == {("trail", "ETH")}
    warnings = [r for r in caplog.records if "shadow variant skipped" in r.getMessage()]
    assert len(warnings) == 1 and "tight" in warnings[0].getMessage()
    # an unknown variant (no exit rules) never opens: no stopless position, also logged once
    books.fleet.on_tick(_decisions("ETH", _variant("gone", Signal.BUY)), _quote("ETH", 100.0), T0 + 5)
    books.fleet.on_tick(
        _decisions("ETH", _variant("gone", Signal.BUY), key=T0 + 6), _quote("ETH", 100.0), T0 + 6
    )
    assert ("gone", "ETH") not in books.fleet.positions
    assert len([r for r in caplog.records if "gone" in r.getMessage()]) == 1


def test_open_positions_and_the_trailing_stop_survive_a_restart(books: Books) -> None:
    books.fleet.on_tick(_decisions("ETH", _variant("trail", Signal.BUY)), _quote("ETH", 100.0), T0)
    books.fleet.on_tick({}, _quote("ETH", 102.0), T0 + 1)  # profit 1.9 ATR >= 1: trailing at 101.0
    books.conn.close()
    books.open()  # a new process: same DB, new fleet
    position = books.fleet.positions[("trail", "ETH")]
    assert position.trailing_sl == pytest.approx(101.0)
    assert position.entry_price == pytest.approx(100.1)
    report = books.fleet.on_tick({}, _quote("ETH", 100.9), T0 + 2)  # under the persisted trailing stop
    assert report.closed == 1
    assert books.store.fills("trail")[-1].reason == "trailing_stop"


def test_hourly_funding_like_the_paper_broker(books: Books) -> None:
    books.fleet.on_tick(_decisions("ETH", _variant("tight", Signal.SELL)), _quote("ETH", 100.0), T0 + 1_000)
    size = 1_000.0 / (100.0 * (1 - SLIP / 10_000))
    rates = {"ETH": 0.0001}
    assert books.fleet.on_tick({}, _quote("ETH", 101.0), T0 + 2_000, funding_rates=rates).funding_rows == 0
    report = books.fleet.on_tick({}, _quote("ETH", 101.0), T0 + 2 * HOUR_MS + 5, funding_rates=rates)
    assert report.funding_rows == 2  # two whole hours crossed
    rows = [f for f in books.store.fills() if f.kind is LedgerKind.FUNDING]
    assert [r.event_ms for r in rows] == [T0 + HOUR_MS, T0 + 2 * HOUR_MS]
    for row in rows:  # a short receives a positive rate: +size x mark x rate
        assert row.funding_usd == pytest.approx(size * 101.0 * 0.0001)
        assert row.fee_usd == 0.0
    assert books.fleet.positions[("tight", "ETH")].last_funding_ms == T0 + 2 * HOUR_MS
    off = Books(books.db.parent / "off", funding_enabled=False)
    off.fleet.on_tick(_decisions("ETH", _variant("tight", Signal.SELL)), _quote("ETH", 100.0), T0 + 1_000)
    assert (
        off.fleet.on_tick({}, _quote("ETH", 101.0), T0 + 2 * HOUR_MS, funding_rates=rates).funding_rows == 0
    )


def test_notional_from_env_is_bounded() -> None:
    from engine.config.env import ConfigError

    assert ShadowSettings.from_env({"AI_QUANT_SHADOW_NOTIONAL_USD": "250"}, FillModelParams(),
                                   funding_enabled=True).notional_usd == 250.0  # fmt: skip
    with pytest.raises(ConfigError, match="AI_QUANT_SHADOW_NOTIONAL_USD"):
        ShadowSettings.from_env(
            {"AI_QUANT_SHADOW_NOTIONAL_USD": "0"}, FillModelParams(), funding_enabled=True
        )


# --------------------------------------------------------------------- a live-mode engine


class RecordingBroker:
    """A live broker at the edge of the world: records every call; holds no positions."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @property
    def mode(self) -> Mode:
        return Mode.LIVE

    def execute(self, intent: OrderIntent, now_ms: int) -> OrderResult:
        self.calls.append(f"execute {intent.symbol}")
        raise AssertionError("no order may be sent")

    def positions(self) -> Mapping[str, Position]:
        return {}

    def account(self, marks: Mapping[str, float], now_ms: int) -> AccountSnapshot:
        return AccountSnapshot(mode=Mode.LIVE, cash_usd=1e4, equity_usd=1e4, unrealised_pnl_usd=0.0,
                               margin_used_usd=0.0, open_positions=0, recorded_ms=now_ms)  # fmt: skip

    def update_exit_state(self, symbol, state, now_ms) -> None:
        self.calls.append(f"update_exit_state {symbol}")

    def accrue_funding(self, rates, marks, now_ms):
        self.calls.append("accrue_funding")
        return ()


class Market:
    def __init__(self) -> None:
        self.now = T0
        self.key = T0

    def venue_now_ms(self) -> int:
        return self.now

    def candle_keys(self, symbols, interval=None) -> KeysSnapshot:
        return KeysSnapshot(dict.fromkeys(symbols, self.key), CandleSource.REDIS)

    def get_mids(self, symbols, max_age_secs=None) -> dict[str, PriceQuote]:
        price = 100.0 if self.key < T0 + 2 * HOUR_MS else 50.0
        return {s: PriceQuote(s, price, PriceSource.REDIS_MID, 0.0) for s in symbols}


class VariantExecutor:
    """Shards at the edge: the primary says NEUTRAL, the shadows BUY (ETH) and SELL (SOL)."""

    n_shards = 1

    def shard_of(self, symbol: str) -> int:
        return 0

    def evaluate(self, batch, *, want_snapshot: Collection[str] = (), deadline_ms=None) -> TickResult:
        signal = {"ETH": Signal.BUY, "SOL": Signal.SELL}
        out = {s: ShardDecision(symbol=s, candle_key=k, status=ShardStatus.OK,
                                variants=(_variant("tight", signal.get(s, Signal.NEUTRAL)),))
               for s, k in batch.items()}  # fmt: skip
        return TickResult(decisions=out, alerts=(), elapsed_ms=0.0)

    def checkpoint_all(self) -> int:
        return 0

    def close(self) -> None:
        pass


class Rates:
    def funding_rates(self) -> Mapping[str, float]:
        return {"ETH": 0.0001, "SOL": -0.0001}


def test_a_live_engine_with_shadows_sends_no_order(tmp_path: Path) -> None:
    yaml = tmp_path / "strategy.yaml"
    yaml.write_text("global:\n  trade:\n    entry_min_confidence: low\n")
    os.chmod(yaml, 0o600)
    store = TradeStore.open(tmp_path / "trading_live.db", Mode.LIVE)
    market, broker = Market(), RecordingBroker()
    fleet = open_fleet(store, _rules_for, FillModelParams(), {}, funding_enabled=True, mids=market.get_mids)
    shadow_store = ShadowStore(store.connection, Mode.LIVE)  # the books are keyed by the node's mode
    engine = UnifiedEngine(
        strategy=StrategyManager(yaml, run_mode=Mode.LIVE), market=market, executor=VariantExecutor(),
        broker=broker, trades=store, events=EventLogger(store.connection, Mode.LIVE),
        watchlist=lambda: ["ETH", "SOL"], options=EngineOptions(interval="1h"), shadows=fleet,
        recorded_ms=lambda: market.now, funding=Rates(),
    )  # fmt: skip
    for hour in range(4):  # open both, then the price halves: the long stops out, the short takes profit
        market.key = market.now = T0 + hour * HOUR_MS
        assert engine.tick().errors == 0
    assert broker.calls == ["accrue_funding"] * 4  # the primary's funding poll; not one order
    kinds = [(f.symbol, f.kind, f.reason) for f in shadow_store.fills()]
    assert kinds[:2] == [("ETH", LedgerKind.OPEN, "signal_buy"), ("SOL", LedgerKind.OPEN, "signal_sell")]
    assert ("ETH", LedgerKind.CLOSE, "stop_loss") in kinds and (
        "SOL",
        LedgerKind.CLOSE,
        "take_profit",
    ) in kinds
    funding = [f for f in shadow_store.fills() if f.kind is LedgerKind.FUNDING]
    assert funding and all(f.funding_usd != 0 for f in funding)  # the engine's rates reach the books
    assert store.fills() == []  # the live ledger has no shadow row
    assert math.isclose(store.totals().fees_usd, 0.0)


def test_a_faulted_decision_never_skips_the_price_rules(books: Books) -> None:
    books.fleet.on_tick(_decisions("ETH", _variant("tight", Signal.BUY)), _quote("ETH", 100.0), T0)
    faulted = _decisions("ETH", _variant("tight", exit_long=True, fault="bad_output: nan"), key=T0 + 1)
    assert books.fleet.on_tick(faulted, _quote("ETH", 100.0), T0 + 1).closed == 0  # its flags are not trusted
    faulted = _decisions("ETH", _variant("tight", fault="bad_output: nan"), key=T0 + 2)
    assert books.fleet.on_tick(faulted, _quote("ETH", 97.0), T0 + 2).closed == 1  # the stop still applies
    assert books.store.fills("tight")[-1].reason == "stop_loss"
