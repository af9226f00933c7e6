"""The report of a replay (`engine.report --replay`), the replay's progress hook, and the progress helper.

The replay runs the shipped candles (scaled to USD-like prices, as in test_daemon_replay) through
the engine; the report's curve must end at the equity the paper broker itself computes from the
replay's ledger at the last closes, which is an independent implementation of the same valuation.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from engine.config.settings import DaemonSettings
from engine.enums import Mode
from engine.execution.paper_broker import PaperBroker, allow_all
from engine.execution.trade_store import TradeStore
from engine.tools import report, run_db
from engine.tools.progress import Progress
from engine.tools.replay import ReplayOptions, load_csv_dir, run_replay

DATA = Path(__file__).resolve().parents[2] / "simulator" / "data"
YAML = """
global:
  engine: {interval: 5m}
  trade: {entry_min_confidence: low}
"""
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="shipped candles not present")


def scaled_csvs(tmp: Path, symbols: tuple[str, ...], bars: int) -> Path:
    """The first `bars` shipped 5m candles of `symbols`, prices x 1e4, as replay CSVs."""
    out = tmp / "csv"
    out.mkdir()
    for symbol, series in load_csv_dir(DATA, "5m", symbols).items():
        lines = ["t,o,h,l,c,v"]
        lines += [f"{c.t},{c.o * 1e4},{c.h * 1e4},{c.l * 1e4},{c.c * 1e4},{c.v}" for c in series[:bars]]
        (out / f"{symbol}_5m.csv").write_text("\n".join(lines) + "\n")
    return out


def yaml_file(tmp: Path) -> Path:
    path = tmp / "strategy.yaml"
    path.write_text(YAML)
    path.chmod(0o600)
    return path


def test_report_of_a_replay_ends_at_the_brokers_equity(tmp_path, monkeypatch):
    monkeypatch.setenv("AI_QUANT_PAPER_BALANCE", "10000")
    data = scaled_csvs(tmp_path, ("ETH", "LTC", "XMR"), 800)
    db, out = tmp_path / "replay.db", tmp_path / "rep" / "replay.html"
    argv = ["--replay", str(data), "--yaml", str(yaml_file(tmp_path)), "--warmup", "200",
            "--replay-db", str(db), "--out", str(out)]  # fmt: skip
    assert report.main(argv) == 0
    assert out.exists() and out.with_suffix(".png").exists()
    assert run_db.ledger_mode(db) is Mode.PAPER  # a file not named trading_<mode>.db: its rows say
    rep = report.build(db, Mode.PAPER, marks={}, title="again")  # the ledger the replay kept
    assert rep.metrics.trades.trades >= 3  # the replay traded: the numbers are about something
    candles = load_csv_dir(data, "5m")
    last = {s: c[-1].c for s, c in candles.items()}
    store = TradeStore.open(db, Mode.PAPER)
    try:
        broker = PaperBroker(
            store,
            DaemonSettings.from_env({}).paper.fill_params(use_bbo=False),
            10_000.0,
            pre_send_check=allow_all,
        )
        expected = broker.account(last, 0).equity_usd
        has_positions = bool(broker.positions())
    finally:
        store.close()
    marks = {s: run_db.Mark(p, 0, "test") for s, p in last.items()}
    full = report.build(db, Mode.PAPER, marks=marks, title="marked")
    assert full.end_equity_usd == pytest.approx(expected, abs=1e-6)
    assert full.points[0].equity_usd == pytest.approx(10_000.0)
    first_bar = min(c[0].t for c in candles.values())
    assert full.points[0].t_ms >= first_bar  # starts with the run, not at the seed's t=0 of the replay clock
    assert 0.0 < full.metrics.exposure < 1.0
    page = out.read_text()
    assert f"{full.end_equity_usd:,.2f}" in page  # the page shows the same end equity
    if has_positions:
        assert any("open position" in n for n in full.notes)


def test_replay_progress_hook_counts_every_bar(tmp_path):
    data = scaled_csvs(tmp_path, ("ETH",), 300)
    calls: list[tuple[int, int]] = []
    opts = ReplayOptions(interval="5m", warmup=250)
    run_replay(load_csv_dir(data, "5m"), yaml_file(tmp_path), tmp_path / "r.db", opts, {},
               progress=lambda done, total: calls.append((done, total)))  # fmt: skip
    assert calls[0] == (1, 300) and calls[-1] == (300, 300)
    assert [d for d, _ in calls] == list(range(1, len(calls) + 1))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_lines_off_a_terminal_are_periodic_counts():
    stream, clock = io.StringIO(), FakeClock()
    bar = Progress("download", 1000, stream=stream, tty=False, every_secs=10.0, clock=clock)
    bar.advance(100)  # first call reports
    clock.now = 5.0
    bar.advance(100)  # within the period: silent
    clock.now = 12.0
    bar.advance(300)
    bar.close()
    bar.close()  # once
    lines = stream.getvalue().splitlines()
    assert lines == [
        "download: 100/1000 (10%) 0s",
        "download: 500/1000 (50%) 12s",
        "download: 500/1000 (50%) 12s done",
    ]
    assert "\r" not in stream.getvalue()


def test_progress_on_a_terminal_redraws_one_bar():
    stream, clock = io.StringIO(), FakeClock()
    with Progress("replay", 0, stream=stream, tty=True, clock=clock) as bar:
        bar.update(5, 10)
        clock.now = 1.0
        bar.update(10)
    text = stream.getvalue()
    assert text.startswith("\r[###############...............] replay: 5/10 (50%)")
    assert text.endswith("replay: 10/10 (100%) 1s\n") and text.count("\n") == 1
