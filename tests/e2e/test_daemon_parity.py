"""Backtest parity: a paper daemon run and `engine.tools.replay` over the same candles trade identically.

The daemon runs against the simulator it spawns with a stopped clock (AI_QUANT_SIM_SPEED=0) that
starts on a bar boundary; the test moves the market one bar at a time (POST /admin/advance) and
waits for the daemon's tick on each new bar. Right after a bar closes the simulator's mid is the
next bar's open, which is what the replay fills at (`--fill next_open`). Funding is off (recorded
candles carry no funding history) and fills use the mid (no BBO), so both price every fill with
the same fill model. The candles the daemon saw (history included) are exported from the
simulator's candleSnapshot and replayed with the same warm-up; the two ledgers must match trade
for trade (kind, symbol, side, size, price, fee, PnL, reason) and every entry was decided on
the same candle.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import redis
import requests

from cluster.redis_layout import RedisLayout
from engine.enums import DecisionEventType, DecisionStatus, Mode
from engine.execution.trade_store import TradeStore
from engine.tick.decision_log import EventLogger
from engine.tools.replay import trade_rows
from tests.e2e.test_daemon_paper import ROOT, daemon_env
from tests.e2e.test_daemon_paper import daemons as daemons  # the fixture

YAML = """
global:
  engine: {interval: 5m}
  trade: {entry_min_confidence: low, use_bbo_for_fills: false}
"""
HISTORY = 200  # = AI_QUANT_LOOKBACK_BARS: what the sidecar backfills and the shards start from
STEPS = 60
START_MS = 1_767_225_600_000  # 2026-01-01T00:00Z, a bar boundary
BAR_MS = 300_000
SYMBOLS = ("ETH", "LTC", "XMR", "DASH")
TICK_LINE = re.compile(r"^(\S+Z) \S+ \[\w+\] engine\.daemon[.\w]*: tick=(\d+) ", re.M)
STOP_WINDOW_SECS = 0.05  # < the 0.1 s the loop waits after a tick when nothing wakes it


def _last_tick(text: str) -> int:
    ticks = re.findall(r"engine\.daemon[.\w]*: tick=(\d+) ", text)
    return int(ticks[-1]) if ticks else 0


def _evaluated_after(text: str, tick: int) -> int:
    """How many symbol decisions the ticks after `tick` made (a slow shard may split a bar's across ticks)."""
    found = re.findall(r"engine\.daemon[.\w]*: tick=(\d+) symbols=\d+ evaluated=(\d+) ", text)
    return sum(int(n) for t, n in found if int(t) > tick)


def _stop_between_ticks(daemon) -> int:  # type: ignore[no-untyped-def]
    """SIGSTOP the daemon while it waits for its next tick; return the last tick it finished.

    A stop inside a tick let that tick resume after the advance with the old candle keys but the
    new mids: an exit on a price the replay only sees with the next bar's signals (a stop_loss
    where the replay closes on trend_breakdown). With the market frozen nothing wakes the loop
    early, so after a tick's line the daemon waits 0.1 s: a stop within STOP_WINDOW_SECS of the
    newest line lands in that wait; otherwise it is undone and tried again after the next tick.
    """
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        last = _last_tick(daemon.text())
        daemon.wait_for(lambda t=last: _last_tick(daemon.text()) > t, timeout=30, label="a tick")
        os.kill(daemon.pid, signal.SIGSTOP)
        stopped = time.time()
        stamp, tick = TICK_LINE.findall(daemon.text())[-1]
        if stopped - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() <= STOP_WINDOW_SECS:
            return int(tick)
        os.kill(daemon.pid, signal.SIGCONT)
    raise AssertionError("could not stop the daemon between two ticks within 60 s")


def _export_candles(base_url: str, out_dir: Path, end_ms: int) -> None:
    out_dir.mkdir()
    for symbol in SYMBOLS:
        start = START_MS - HISTORY * BAR_MS
        body = {"type": "candleSnapshot",
                "req": {"coin": symbol, "interval": "5m", "startTime": start, "endTime": end_ms}}
        rows = requests.post(f"{base_url}/info", json=body, timeout=10).json()
        with open(out_dir / f"{symbol}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["t", "o", "h", "l", "c", "v"])
            for r in rows:
                writer.writerow([r["t"], r["o"], r["h"], r["l"], r["c"], r["v"]])


@pytest.mark.slow
def test_paper_run_equals_replay_trade_for_trade(tmp_path, daemons):
    (tmp_path / "strategy.yaml").write_text(YAML)
    (tmp_path / "strategy.yaml").chmod(0o600)
    env = daemon_env(
        tmp_path,
        AI_QUANT_SIM_SPEED="0",
        AI_QUANT_SIM_START_MS=str(START_MS),
        AI_QUANT_SIM_HISTORY_BARS=str(HISTORY),
        AI_QUANT_SYMBOLS=",".join(SYMBOLS),
        AI_QUANT_CANDLE_CLOSE_GRACE_MS="0",
        HL_FUNDING_ENABLED="0",
        AI_QUANT_SIDECAR_HEARTBEAT_MS="10",
        AI_QUANT_SHARDS="1",
        AI_QUANT_LOOP_TARGET_SECS="0.1",
    )
    daemon = daemons(env, "parity")
    url = daemon.wait_log(r"simulator ready pid=\d+ url=(\S+)", timeout=60).group(1)
    redis_url = daemon.wait_log(r"redis ready embedded=True url=(\S+)").group(1)
    client, layout = redis.Redis.from_url(redis_url), RedisLayout()

    def bar_done(boundary_ms: int, advanced_wall_ms: int) -> bool:
        # The new bar's forming candle too: the venue sends it after the closed bar's final update,
        # so a close the sidecar's clock made before that update is corrected by then (grace 0).
        keys = layout.read_candle_keys(client, list(SYMBOLS), "5m")
        mids = layout.read_mids(client, list(SYMBOLS))
        return all(k.closed_close_ms == boundary_ms - 1 and k.latest_open_ms == boundary_ms
                   for k in keys.values()) and all(
            s in mids and mids[s].wall_ms >= advanced_wall_ms for s in SYMBOLS
        )

    session = requests.Session()
    for step in range(STEPS + 1):
        boundary = START_MS + step * BAR_MS
        # The daemon is paused while the bar closes, so no tick sees the new mids before the closed
        # candles (exits run on every tick; a replay checks them once per bar).
        seen = 0
        if step:
            seen = _stop_between_ticks(daemon)
            try:
                advanced = time.time_ns() // 1_000_000
                session.post(f"{url}/admin/advance", json={"bars": 1}, timeout=10).raise_for_status()
                daemon.wait_for(lambda b=boundary, a=advanced: bar_done(b, a), timeout=30, label=f"bar{step}")
            finally:
                os.kill(daemon.pid, signal.SIGCONT)
        else:
            daemon.wait_for(lambda b=boundary: bar_done(b, 0), timeout=30, label="the history")
        # Every symbol decided on this bar, then one more tick: waiting for a number of ticks alone let
        # a loaded machine move to the next bar before a symbol's decision (trades then differ in order).
        daemon.wait_for(
            lambda t=seen: _evaluated_after(daemon.text(), t) >= len(SYMBOLS), timeout=60, label=f"bar {step}"
        )
        done = _last_tick(daemon.text())
        daemon.wait_for(lambda t=done: _last_tick(daemon.text()) >= t + 1, timeout=30, label=f"ticks {step}")
    client.close()
    _export_candles(url, tmp_path / "data", START_MS + (STEPS + 1) * BAR_MS)
    meta = session.post(f"{url}/info", json={"type": "meta"}, timeout=10).json()
    decimals = ",".join(f"{a['name']}={a['szDecimals']}" for a in meta["universe"] if a["name"] in SYMBOLS)
    assert daemon.terminate() == 0

    store = TradeStore.open(tmp_path / "state" / "trading_paper.db", Mode.PAPER)
    paper = trade_rows(store)
    store.close()
    replay_env = {k: v for k, v in env.items() if k not in ("AI_QUANT_STATE_DIR",)}
    done = subprocess.run(
        [sys.executable, "-m", "engine.replay", "--data", str(tmp_path / "data"), "--interval", "5m",
         "--warmup", str(HISTORY), "--yaml", str(tmp_path / "strategy.yaml"), "--ledger", "--shards", "1",
         "--db", str(tmp_path / "replay.db"),
         "--sz-decimals", decimals],
        cwd=ROOT, env=replay_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    replay = json.loads(done.stdout)["ledger"]

    assert len(paper) >= 6, f"too few trades to compare: {paper}"

    def key(row: dict) -> tuple:
        return (row["kind"], row["symbol"], row["side"], round(row["size"], 8), round(row["price"], 8),
                round(row["fee_usd"], 8), round(row["pnl_usd"], 6), row["reason"])  # fmt: skip

    assert [key(r) for r in paper] == [key(r) for r in replay]
    # Entries were decided on the same candles (fill rows carry the tick time, which in the daemon is
    # the venue clock, not a candle boundary; the decision carries the candle key).
    assert _entry_keys(tmp_path / "state" / "trading_paper.db") == _entry_keys(tmp_path / "replay.db")


def _entry_keys(db: Path) -> list[tuple[str, int]]:
    store = TradeStore.open(db, Mode.PAPER)
    try:
        return [
            (e.symbol, e.event_ms) for e in EventLogger(store.connection, Mode.PAPER).events()
            if e.event_type is DecisionEventType.ENTRY_SIGNAL and e.status is DecisionStatus.EXECUTED
        ]  # fmt: skip
    finally:
        store.close()
