"""Acceptance of issue 15 items 1-2 on a real paper run: the daemon (simulator, embedded Redis,
sidecar, in-process shards) trades for a short while; `python -m engine.status --json` answers
while it runs and, once stopped, shows exactly the positions and the PnL the trades table holds;
`python -m engine.report` writes a report whose equity curve ends at the DB's equity, which the
paper broker itself computes from the same ledger at the same marks.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config.settings import DaemonSettings
from engine.enums import LedgerKind, Mode
from engine.execution.paper_broker import PaperBroker, allow_all
from engine.execution.trade_store import TradeStore
from engine.tools import report
from tests.e2e import test_daemon_paper as paper_e2e
from tests.e2e.test_daemon_paper import ROOT, daemon_env, kind_count

daemons = paper_e2e.daemons  # the paper e2e's fixture: daemons started by a test are always killed


def run_module(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


@pytest.mark.slow
def test_status_and_report_agree_with_the_ledger_of_a_paper_run(tmp_path, daemons):
    env = daemon_env(tmp_path)
    state = Path(env["AI_QUANT_STATE_DIR"])
    db = state / "trading_paper.db"
    daemon = daemons(env, "paper")
    daemon.wait_for(lambda: kind_count(db, LedgerKind.OPEN) >= 2, timeout=80, label="two entries")
    live = run_module("engine.status", "--state-dir", str(state), "--json")  # while the daemon writes
    assert live.returncode == 0, live.stderr
    assert json.loads(live.stdout)["daemon"]["pid_alive"] is True
    assert daemon.terminate() == 0

    done = run_module("engine.status", "--state-dir", str(state), "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["daemon"]["pid_alive"] is False and status["mode"] == "paper"
    # the daemon's last-tick file: the latency breakdown and how the shards answered
    tick = status["last_tick"]
    assert set(tick["latency_ms"]) >= {"tick_keys_ms", "tick_shards_ms", "tick_total_ms"}
    assert tick["latency_ms"]["tick_total_ms"] >= tick["latency_ms"]["tick_shards_ms"] >= 0
    assert tick["market"] == "ok" and not status["missing"]
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        sums = conn.execute(
            "SELECT SUM(realised_pnl_usd), SUM(fee_usd), SUM(funding_usd), COUNT(*) FROM trades "
            "WHERE mode='paper'"
        ).fetchone()
        (cash,) = conn.execute("SELECT balance_usd FROM trades ORDER BY id DESC LIMIT 1").fetchone()
        rows = conn.execute(
            "SELECT symbol, side, size_coins, entry_price, opened_ms FROM position_state WHERE mode='paper'"
        ).fetchall()
        positions = {r[0]: r[1:] for r in rows}
    finally:
        conn.close()
    total = status["total"]
    assert (
        total["realised_pnl_usd"],
        total["fees_usd"],
        total["funding_usd"],
        total["fills"],
    ) == pytest.approx(sums)
    assert status["cash_usd"] == pytest.approx(cash)
    shown = {
        p["symbol"]: (p["side"], p["size_coins"], p["entry_price"], p["opened_ms"])
        for p in status["positions"]
    }
    assert shown == positions

    # The DB's equity, by the paper broker over the same ledger at the marks status used.
    marks = {p["symbol"]: p["mark"] for p in status["positions"] if p["mark"] is not None}
    store = TradeStore.open(db, Mode.PAPER)
    try:
        broker = PaperBroker(
            store, DaemonSettings.from_env(env).paper.fill_params(), 1.0, pre_send_check=allow_all
        )
        equity = broker.account(marks, 0).equity_usd
    finally:
        store.close()
    assert not status["unmarked"]  # every open position has a mark from the sidecar's candle DB
    assert status["equity_usd"] == pytest.approx(equity, abs=1e-6)

    out = tmp_path / "report" / "paper.html"
    made = run_module("engine.report", "--state-dir", str(state), "--out", str(out))
    assert made.returncode == 0, made.stderr
    assert f"end equity {equity:,.2f}" in made.stdout
    assert out.exists() and out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    args = report._parser().parse_args(["--state-dir", str(state), "--out", str(out)])
    assert report._load(args, tmp_path).end_equity_usd == pytest.approx(equity, abs=1e-6)
