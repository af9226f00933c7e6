"""The YAML settings the tick applies, through a real UnifiedEngine/PaperBroker/StrategyManager
(the scripted shard executor and market of test_core_engine): trade.use_bbo_for_fills,
market_regime (gate, breadth filter, auto-reverse), watchlist_exclude and the heartbeat."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from engine.enums import DecisionStatus, GateCode, LedgerKind, OrderSide, PriceSource
from engine.marketdata.hub import PriceQuote
from strategies.enums import PositionSide, Signal
from tests.unit.test_core_engine import BEAR, BULL, T0, YAML, FakeMarket, Rig

BASE = YAML.format(max_open=5)


class BboMarket(FakeMarket):
    """FakeMarket whose quotes also carry a fresh BBO (bid/ask), like the hub's Redis path."""

    def __init__(self) -> None:
        super().__init__()
        self.books: dict[str, tuple[float, float]] = {}

    def get_mids(self, symbols, max_age_secs=None) -> dict[str, PriceQuote]:
        out = super().get_mids(symbols, max_age_secs)
        for s, (bid, ask) in self.books.items():
            if s in out:
                q = out[s]
                out[s] = PriceQuote(s, q.price, q.source, q.age_secs, bid=bid, ask=ask, bbo_age_secs=0.5)
        return out


class YamlRig(Rig):
    def __init__(self, tmp_path: Path, extra_yaml: str) -> None:
        path = tmp_path / "strategy.yaml"
        path.write_text(BASE + extra_yaml)
        os.chmod(path, 0o600)
        super().__init__(tmp_path)

    def build(self) -> None:
        if not isinstance(self.market, BboMarket):
            self.market = BboMarket()
        super().build()


def _entry_fill(rig: Rig, symbol: str):
    (fill,) = [f for f in rig.store.fills(symbol) if f.kind is LedgerKind.OPEN]
    return fill


# ------------------------------------------------------------------ trade.use_bbo_for_fills
def _bbo_run(tmp_path: Path, use_bbo: bool) -> tuple[float, float, PriceSource | None]:
    flag = "true" if use_bbo else "false"
    rig = YamlRig(tmp_path, f"    use_bbo_for_fills: {flag}\n")
    rig.executor.script = {"ETH": (Signal.BUY, 200.0, BULL), "SOL": (Signal.SELL, 100.0, BEAR)}
    rig.market.books = {"ETH": (99.0, 101.0), "SOL": (49.0, 51.0)}
    rig.candle(T0, {"BTC": 100.0, "ETH": 100.0, "SOL": 50.0})
    assert rig.engine.tick().opened == 2
    eth, sol = _entry_fill(rig, "ETH"), _entry_fill(rig, "SOL")
    assert eth.order_side is OrderSide.BUY and sol.order_side is OrderSide.SELL
    assert eth.price_source is sol.price_source
    return eth.price, sol.price, eth.price_source


def test_bbo_on_paper_buy_fills_at_ask_sell_at_bid(tmp_path) -> None:
    assert _bbo_run(tmp_path, use_bbo=True) == (101.0, 49.0, PriceSource.REDIS_BBO)


def test_bbo_off_paper_fills_at_mid(tmp_path) -> None:
    assert _bbo_run(tmp_path, use_bbo=False) == (100.0, 50.0, PriceSource.REDIS_MID)


def test_bbo_exit_fill_takes_the_bid_when_on(tmp_path) -> None:
    rig = YamlRig(tmp_path, "")
    rig.executor.script = {"ETH": (Signal.BUY, 200.0, BULL)}
    rig.candle(T0, {"ETH": 100.0})
    rig.engine.tick()
    rig.market.books = {"ETH": (89.0, 91.0)}
    rig.market.mids["ETH"] = 90.0  # stop loss (2 ATR) hit
    rig.engine.tick()
    (close,) = [f for f in rig.store.fills("ETH") if f.kind is LedgerKind.CLOSE]
    assert (close.price, close.price_source) == (89.0, PriceSource.REDIS_BBO)


# ------------------------------------------------------------------ market_regime
REGIME = """
  market_regime:
    enable_regime_gate: {gate}
    enable_regime_filter: {filt}
    enable_auto_reverse: {rev}
"""
BTC_WEAK = replace(BULL, adx=10.0, close=100.0)
BTC_STRONG = replace(BULL, adx=35.0, close=100.0)


def _regime_rig(tmp_path: Path, gate=False, filt=False, rev=False) -> Rig:
    flags = {k: "true" if v else "false" for k, v in (("gate", gate), ("filt", filt), ("rev", rev))}
    return YamlRig(tmp_path, REGIME.format(**flags))


def _blocked_by(rig: Rig, symbol: str) -> str | None:
    blocked = [e for e in rig.events.events() if e.symbol == symbol and e.status is DecisionStatus.BLOCKED]
    return blocked[-1].reason_code if blocked else None


def test_regime_gate_off_blocks_entries_on_weak_btc(tmp_path) -> None:
    rig = _regime_rig(tmp_path, gate=True)
    # breadth 100% (all three trend up: outside the 20..80 chop band); BTC ADX 10 < 20
    rig.executor.script = {"BTC": (Signal.NEUTRAL, 0.0, BTC_WEAK), "ETH": (Signal.BUY, 200.0, BULL)}
    rig.candle(T0, {"BTC": 100.0, "ETH": 100.0, "SOL": 100.0})
    assert rig.engine.tick().opened == 0
    assert _blocked_by(rig, "ETH") == GateCode.REGIME_GATE.value
    assert rig.executor.calls and rig.broker.positions() == {}


def test_regime_gate_on_allows_entries_on_trending_btc(tmp_path) -> None:
    rig = _regime_rig(tmp_path, gate=True)
    rig.executor.script = {"BTC": (Signal.NEUTRAL, 0.0, BTC_STRONG), "ETH": (Signal.BUY, 200.0, BULL)}
    rig.candle(T0, {"BTC": 100.0, "ETH": 100.0, "SOL": 100.0})
    assert rig.engine.tick().opened == 1 and "ETH" in rig.broker.positions()


def test_regime_gate_never_blocks_exits(tmp_path) -> None:
    rig = _regime_rig(tmp_path, gate=True)
    rig.executor.script = {"BTC": (Signal.NEUTRAL, 0.0, BTC_STRONG), "ETH": (Signal.BUY, 200.0, BULL)}
    rig.candle(T0, {"BTC": 100.0, "ETH": 100.0, "SOL": 100.0})
    rig.engine.tick()
    rig.executor.script = {"BTC": (Signal.NEUTRAL, 0.0, BTC_WEAK)}  # gate turns off
    rig.candle(T0 + 3_600_000, {"ETH": 90.0})  # stop loss hit
    rig.engine.tick()
    assert "ETH" not in rig.broker.positions()


def test_breadth_filter_blocks_a_short_against_a_rising_market(tmp_path) -> None:
    rig = _regime_rig(tmp_path, filt=True)
    rig.watch = ["BTC", "ETH", "SOL", "XRP"] + [f"C{i}" for i in range(7)]
    # 10 of 11 symbols trend up (90.9% > 90): SELL is blocked, BUY passes
    rig.executor.script = {"SOL": (Signal.SELL, 200.0, BEAR), "ETH": (Signal.BUY, 100.0, BULL)}
    rig.candle(T0, dict.fromkeys(rig.watch, 100.0))
    rig.engine.tick()
    assert set(rig.broker.positions()) == {"ETH"}
    assert _blocked_by(rig, "SOL") == GateCode.BREADTH_FILTER.value


def test_auto_reverse_swaps_the_entry_side_inside_the_band(tmp_path) -> None:
    rig = _regime_rig(tmp_path, rev=True)
    # breadth: BTC, ETH up, SOL down -> 66.7%, inside 10..90: BUY becomes SELL
    rig.executor.script = {"SOL": (Signal.NEUTRAL, 0.0, BEAR), "ETH": (Signal.BUY, 200.0, BULL)}
    rig.candle(T0, {"BTC": 100.0, "ETH": 100.0, "SOL": 100.0})
    rig.engine.tick()
    assert rig.broker.positions()["ETH"].side is PositionSide.SHORT


def test_auto_reverse_off_outside_the_band(tmp_path) -> None:
    rig = _regime_rig(tmp_path, rev=True)
    rig.executor.script = {"ETH": (Signal.BUY, 200.0, BULL)}  # everything up: breadth 100%
    rig.candle(T0, {"BTC": 100.0, "ETH": 100.0, "SOL": 100.0})
    rig.engine.tick()
    assert rig.broker.positions()["ETH"].side is PositionSide.LONG


# ------------------------------------------------------------------ watchlist_exclude, heartbeat
def test_watchlist_exclude_blocks_entries_keeps_exits_and_reloads(tmp_path) -> None:
    rig = YamlRig(tmp_path, "")
    rig.executor.script = {"ETH": (Signal.BUY, 200.0, BULL), "SOL": (Signal.BUY, 100.0, BULL)}
    rig.candle(T0, {"BTC": 100.0, "ETH": 100.0, "SOL": 100.0})
    rig.engine.tick()
    assert set(rig.broker.positions()) == {"ETH", "SOL"}
    rig.yaml.write_text(BASE + "  watchlist_exclude: [eth, btc]\n")
    os.utime(rig.yaml, (1_800_000_000, 1_800_000_000))  # hot reload
    rig.executor.script = {"BTC": (Signal.BUY, 300.0, BULL)}
    rig.candle(T0 + 3_600_000, {"ETH": 90.0})  # ETH's stop loss: the exit still runs
    rig.engine.tick()
    assert set(rig.broker.positions()) == {"SOL"}
    assert "BTC" not in rig.executor.calls[-1]  # excluded and flat: not even evaluated


def test_heartbeat_at_the_configured_period(tmp_path) -> None:
    rig = YamlRig(tmp_path, "")  # heartbeat_secs: EngineOptions default 30 s
    beats = []
    for i in range(8):
        rig.market.now = T0 + i * 10_000  # a tick every 10 s
        beats.append(rig.engine.tick().heartbeat)
    assert [i for i, line in enumerate(beats) if line is not None] == [0, 3, 6]
    assert beats[0].startswith("engine ok. loops=1 ") and " loops=4 " in beats[3]
