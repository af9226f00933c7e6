"""`engine.status` and `engine.report` over a state dir written by the real paper broker.

The ledger is produced by `PaperBroker` over `TradeStore` (the daemon's own writers) and a candle
DB by the sidecar's `upsert_candles`, so the readers are checked against the owners' writes: the
status equity must equal `PaperBroker.account(marks)`, the PnL the ledger sums, and the report's
curve must end at that equity. Reads go through a read-only connection, also while a writer holds
an open write transaction.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from engine.enums import LedgerKind, Mode
from engine.execution.broker import OrderIntent
from engine.execution.fill_model import FillModelParams
from engine.execution.paper_broker import PaperBroker, allow_all
from engine.execution.trade_store import TradeStore
from engine.storage.sqlite import ensure_candles_table, open_db, upsert_candles
from engine.tools import report, status
from engine.tools.timeargs import parse_time_ms
from strategies.candle import Candle
from strategies.enums import EntryKind, ExitReason, PositionSide, TradeAction

T0 = 1_780_000_000_000
MIN = 60_000


def intent(
    symbol: str, action: TradeAction, side: PositionSide, price: float, t: int, size: float | None = None,
    reason: object = EntryKind.STANDARD,
) -> OrderIntent:  # fmt: skip
    return OrderIntent(symbol=symbol, action=action, side=side, reference_price=price, event_ms=t,
                       reason=reason, size_coins=size)  # type: ignore[arg-type]  # fmt: skip


@pytest.fixture
def run(tmp_path):
    """A stopped paper run: BTC opened and closed at a profit, ETH short and SOL long still open."""
    state = tmp_path / "state"
    clock = {"now": T0}
    store = TradeStore.open(state / "trading_paper.db", Mode.PAPER)
    broker = PaperBroker(store, FillModelParams(use_bbo=False, slippage_bps=0.0), 1_000.0,
                         clock_ms=lambda: clock["now"], pre_send_check=allow_all)  # fmt: skip
    steps = [
        intent("BTC", TradeAction.OPEN, PositionSide.LONG, 100.0, T0 + MIN, 2.0),
        intent(
            "BTC", TradeAction.CLOSE, PositionSide.LONG, 110.0, T0 + 30 * MIN, reason=ExitReason.TAKE_PROFIT
        ),
        intent("ETH", TradeAction.OPEN, PositionSide.SHORT, 50.0, T0 + 40 * MIN, 3.0),
        intent("SOL", TradeAction.OPEN, PositionSide.LONG, 20.0, T0 + 50 * MIN, 5.0),
    ]
    for step in steps:
        clock["now"] = step.event_ms
        assert broker.execute(step, step.event_ms).filled
    candles = open_db(state / "candles_dbs" / "candles_5m.db")
    ensure_candles_table(candles)
    t = T0 + 55 * MIN
    upsert_candles(candles, "ETH", "5m", [Candle(t, t + 5 * MIN - 1, 50.0, 51.0, 47.0, 48.0, 10.0)])
    candles.close()  # SOL has no candle: valued at entry
    yield state, store, broker
    store.close()


def test_status_matches_the_ledger_and_the_broker_equity(run):
    state, store, broker = run
    s = status.collect(state, now_ms=T0 + 60 * MIN)
    totals = store.totals()
    assert s.mode == "paper" and s.cash_usd == pytest.approx(totals.balance_usd)
    assert s.total.realised_pnl_usd == pytest.approx(totals.realised_pnl_usd)
    assert s.total.fees_usd == pytest.approx(totals.fees_usd)
    assert s.total.funding_usd == pytest.approx(totals.funding_usd)
    assert s.seed_usd == pytest.approx(1_000.0)
    assert s.equity_usd == pytest.approx(broker.account({"ETH": 48.0}, T0).equity_usd)
    by_symbol = {p.symbol: p for p in s.positions}
    assert set(by_symbol) == {"ETH", "SOL"}
    eth = by_symbol["ETH"]
    assert (eth.side, eth.size_coins, eth.entry_price, eth.mark) == ("SHORT", 3.0, 50.0, 48.0)
    assert eth.unrealised_pnl_usd == pytest.approx(6.0)  # short 3 x (50 - 48)
    assert eth.age_secs == pytest.approx(20 * 60)
    assert s.unmarked == ["SOL"] and by_symbol["SOL"].mark is None
    assert any("latency" in m for m in s.missing)  # not in the DB: said, not invented


def test_status_cli_json_and_bad_state_dirs(run, tmp_path, capsys):
    state, _store, _broker = run
    assert status.main(["--state-dir", str(state), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {p["symbol"] for p in data["positions"]} == {"ETH", "SOL"}
    assert status.main(["--state-dir", str(state)]) == 0
    assert "ETH" in capsys.readouterr().out
    assert status.main(["--state-dir", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert status.main(["--state-dir", str(tmp_path / "empty")]) == 2
    assert "no trading_<mode>.db" in capsys.readouterr().err


def test_status_reads_while_a_writer_holds_a_transaction(run):
    state, store, _broker = run
    before = status.collect(state, now_ms=T0 + 60 * MIN)
    writer = sqlite3.connect(state / "trading_paper.db", timeout=0.1, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM position_state")  # uncommitted: a reader must not see it
    try:
        during = status.collect(state, now_ms=T0 + 60 * MIN)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert [p.symbol for p in during.positions] == [p.symbol for p in before.positions] == ["ETH", "SOL"]
    assert during.equity_usd == before.equity_usd
    assert store.last_balance() == pytest.approx(before.cash_usd)  # the writer's DB is intact


def test_report_curve_ends_at_the_status_equity_and_is_self_contained(run, tmp_path, capsys):
    state, store, _broker = run
    out = tmp_path / "out" / "run.html"
    assert report.main(["--state-dir", str(state), "--out", str(out)]) == 0
    equity = status.collect(state).equity_usd
    data = report._load(report._parser().parse_args(["--state-dir", str(state), "--out", str(out)]), tmp_path)
    assert data.end_equity_usd == pytest.approx(equity)
    assert data.points[0].equity_usd == pytest.approx(1_000.0)  # the seed
    assert data.metrics.trades.trades == 1 and data.metrics.open_trades == 2
    assert data.metrics.fees_usd == pytest.approx(store.totals().fees_usd)
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 2
    assert "http://" not in page and "https://" not in page and "<script" not in page
    for needle in ("Sharpe", "Sortino", "Calmar", "profit factor", "Per symbol", "Per exit reason",
                   "Per strategy", "take_profit", "exposure"):  # fmt: skip
        assert needle in page
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_window_and_bad_input(run, tmp_path, capsys):
    state, store, _broker = run
    out = tmp_path / "w.html"
    since = str(T0 + 35 * MIN)  # after the BTC round trip
    args = report._parser().parse_args(["--state-dir", str(state), "--out", str(out), "--since", since])
    data = report._load(args, tmp_path)
    btc_close = next(f for f in store.fills() if f.kind is LedgerKind.CLOSE)
    assert data.points[0].equity_usd == pytest.approx(btc_close.balance_usd)  # the cash when it starts
    assert data.metrics.trades.trades == 0
    assert report.main(["--state-dir", str(state), "--out", str(out), "--since", "yesterday"]) == 2
    assert "bad time" in capsys.readouterr().err
    assert report.main(["--state-dir", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert parse_time_ms("2026-01-31") == 1_769_817_600_000
    assert parse_time_ms("2026-01-31T01:00+01:00") == 1_769_817_600_000
    assert parse_time_ms("1769817600000") == 1_769_817_600_000 and parse_time_ms(None) is None


def test_status_reads_the_daemons_last_tick_file(run) -> None:
    """The daemon's per-tick file fills the latency breakdown and shard answers the DB lacks."""
    from engine.enums import Mode, ReloadOutcome
    from engine.tick.last_tick import LastTickWriter, last_tick_path
    from engine.tick.types import TickReport, TickTiming

    state, _store, _broker = run
    timing = TickTiming(
        keys_ms=1.0, shards_ms=4.0, exits_ms=0.5, entries_ms=2.0, funding_ms=0.1, total_ms=8.0
    )
    report = TickReport(
        tick_id=7, now_ms=T0, symbols=3, evaluated=2, opened=0, added=0, reduced=0, closed=0, blocked=0,
        errors=0, open_positions=2, cash_usd=1.0, equity_usd=1.0, reload=ReloadOutcome.UNCHANGED,
        timing=timing, market="blind:redis_down",
    )
    LastTickWriter(last_tick_path(state, Mode.PAPER)).write(report, {"ok": 2, "store_unavailable": 1})
    s = status.collect(state, now_ms=T0 + 60 * MIN)
    assert s.missing == []
    assert s.last_tick is not None and s.last_tick["latency_ms"]["tick_shards_ms"] == 4.0
    assert s.last_tick["market"] == "blind:redis_down"
    assert s.last_tick["shard_answers"] == {"ok": 2, "store_unavailable": 1}
    assert "shards=4.0ms" in status.render_text(s)
