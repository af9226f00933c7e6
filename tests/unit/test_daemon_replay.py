"""engine.tools.replay: CSV loading, bar folding, and a replay over shipped candles that keeps the
paper ledger's invariants (cash identity, a decision behind every fill) and is deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config.env import ConfigError
from engine.enums import LedgerKind, Mode
from engine.execution.trade_store import TradeStore
from engine.tick.decision_log import EventLogger
from engine.tools.replay import ReplayOptions, aggregate, load_csv_dir, main, parse_sz_decimals, run_replay
from strategies.candle import Candle

DATA = Path(__file__).resolve().parents[2] / "simulator" / "data"  # the demo candles the README replays
YAML = """
global:
  engine: {interval: 5m}
  trade: {entry_min_confidence: low}
"""


def _yaml(tmp: Path) -> Path:
    path = tmp / "strategy.yaml"
    path.write_text(YAML)
    path.chmod(0o600)
    return path


def _candle(t: int, o: float, h: float, low: float, c: float, v: float) -> Candle:
    return Candle(t=t, close_ms=t + 299_999, o=o, h=h, l=low, c=c, v=v)


def test_aggregate_folds_complete_buckets_only():
    bars = [_candle(i * 300_000, 10 + i, 11 + i, 9 + i, 10.5 + i, 1.0) for i in range(1, 26)]
    hourly = aggregate(bars, "5m", "1h")
    assert len(hourly) == 1  # bars 1..11 are an incomplete first hour, 12..23 complete, 24.. incomplete
    (bar,) = hourly
    assert (bar.t, bar.close_ms) == (3_600_000, 7_199_999)
    assert (bar.o, bar.h, bar.l, bar.c, bar.v) == (22, 34, 21, 33.5, 12.0)
    assert aggregate(bars, "5m", "5m") == bars
    with pytest.raises(ConfigError):
        aggregate(bars, "1h", "5m")


def test_sz_decimals_parse():
    assert parse_sz_decimals("eth=4, LTC=2") == {"ETH": 4, "LTC": 2}
    assert parse_sz_decimals("") == {}
    with pytest.raises(ConfigError):
        parse_sz_decimals("ETH:4")


def test_load_csv_dir_names_symbols_and_filters():
    candles = load_csv_dir(DATA, "5m", ["eth", "ltc"])
    assert sorted(candles) == ["ETH", "LTC"]
    first = candles["ETH"][0]
    assert first.close_ms == first.t + 299_999 and len(candles["ETH"]) > 5_000


def test_replay_ledger_keeps_cash_identity_explains_fills_and_is_deterministic(tmp_path):
    candles = load_csv_dir(DATA, "5m", ["ETH", "LTC", "XMR"])
    k = 1e4  # USD-like prices, as the simulator serves them
    scaled = {s: [Candle(t=c.t, close_ms=c.close_ms, o=c.o * k, h=c.h * k, l=c.l * k, c=c.c * k, v=c.v)
                  for c in series] for s, series in candles.items()}  # fmt: skip
    opts = ReplayOptions(interval="5m", warmup=200, bars=600, funding_rate=0.0001)
    env = {"AI_QUANT_PAPER_BALANCE": "10000"}
    first = run_replay(scaled, _yaml(tmp_path), tmp_path / "a.db", opts, env)
    second = run_replay(scaled, _yaml(tmp_path), tmp_path / "b.db", opts, env)
    assert first == second
    assert first["open"] >= 3 and first["close"] >= 3 and first["funding_usd"] != 0
    total = first["seed_usd"] - first["fees_usd"] + first["realised_pnl_usd"] + first["funding_usd"]
    assert abs(total - first["balance_usd"]) < 0.005
    store = TradeStore.open(tmp_path / "a.db", Mode.PAPER)
    events = {e.event_id: e for e in EventLogger(store.connection, Mode.PAPER).events()}
    for fill in store.fills():
        if fill.kind in (LedgerKind.OPEN, LedgerKind.ADD, LedgerKind.REDUCE, LedgerKind.CLOSE):
            assert events[fill.decision_id].trade_id == fill.trade_id
    store.close()


def test_cli_prints_a_json_summary(tmp_path, capsys):
    code = main(["--data", str(DATA), "--symbols", "ETH", "--bars", "50", "--yaml", str(_yaml(tmp_path))])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["symbols"] == ["ETH"] and summary["ticks"] == 50 and "ledger" not in summary
    assert main(["--data", str(tmp_path), "--yaml", str(_yaml(tmp_path))]) == 2


USER_DIR = Path(__file__).resolve().parents[1] / "data" / "user_strategy"  # the README's example package


def test_cli_strategy_backtests_a_user_strategy_through_its_own_exits(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(USER_DIR))
    db = tmp_path / "user.db"
    argv = ["--data", str(DATA), "--symbols", "ETH,LTC", "--bars", "400", "--yaml", str(_yaml(tmp_path)),
            "--ledger", "--db", str(db), "--strategy", "my_strategies.ema_cross:EmaCross"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["open"] >= 5 and summary["close"] >= 5
    reasons = {row["reason"] for row in summary["ledger"] if row["kind"] == LedgerKind.CLOSE.value}
    # the opposite cross (a flip, or its indicator exit when RSI blocks the flip) and its ATR rules;
    # never one of mei's exits
    assert reasons & {"signal_flip", "trend_breakdown"}
    assert reasons <= {"trend_breakdown", "stop_loss", "take_profit", "signal_flip"}
    opens = {row["reason"] for row in summary["ledger"] if row["kind"] == LedgerKind.OPEN.value}
    assert opens == {"none"}  # an SDK primary's entries carry no mei entry kind


def test_cli_strategy_mei_is_the_default_path_and_unknown_exits_2(tmp_path, capsys):
    base = ["--data", str(DATA), "--symbols", "ETH", "--bars", "300", "--yaml", str(_yaml(tmp_path)),
            "--ledger"]
    assert main(base) == 0
    default = json.loads(capsys.readouterr().out)
    assert main([*base, "--strategy", "mei_alpha_v1"]) == 0
    assert json.loads(capsys.readouterr().out) == default
    assert main([*base, "--strategy", "no_such_strategy"]) == 2
    assert "unknown strategy 'no_such_strategy'" in capsys.readouterr().err
