"""The daemon as a subprocess in paper mode against the simulator it spawns (shipped real candles,
replayed fast), with its embedded Redis, sidecar and shards; the SQLite files read afterwards.

Acceptance of the driver issue: the ledger (trades, fees, funding) and its cash identity, a
decision event behind every fill, no orphan processes after SIGTERM (Ray included), restart after
SIGTERM and kill -9 with the same positions and cash, the lock (second daemon refused naming the
holder, stale lock reclaimed), YAML hot reload and a broken YAML kept at the last good config
with an alert, invalid AI_QUANT_* values refused by name, and the mode on every log line.
Only the first test pays for Ray; the others use AI_QUANT_EXECUTOR=inprocess (same shard core).
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from engine.enums import DecisionEventType, DecisionStatus, LedgerKind, Mode
from engine.execution.trade_store import TradeStore
from engine.tick.decision_log import EventLogger
from strategies.enums import TradeAction

ROOT = Path(__file__).resolve().parents[2]
YAML = """
global:
  engine: {interval: 5m}
  trade: {entry_min_confidence: low}
"""
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
BROKER_READY = re.compile(r"paper broker ready mode=paper cash_usd=(-?[\d.]+) open_positions=(\d+)")


def daemon_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AI_QUANT_", "HL_", "RAY_ADDRESS"))}
    yaml_path = tmp / "strategy.yaml"
    if not yaml_path.exists():
        yaml_path.write_text(YAML)
        yaml_path.chmod(0o600)
    env.update(
        AI_QUANT_VENUE="simulator",
        AI_QUANT_STATE_DIR=str(tmp / "state"),
        AI_QUANT_STRATEGY_YAML=str(yaml_path),
        AI_QUANT_SIM_CANDLE_SECS="0.25",
        AI_QUANT_LOOP_TARGET_SECS="0.5",
        AI_QUANT_EXECUTOR="inprocess",
        AI_QUANT_SHARDS="2",
        AI_QUANT_ALERT_TARGETS="discord:#alerts",
        AI_QUANT_ALERT_DRY_RUN="1",
        AI_QUANT_WEB_PORT="0",  # daemons of parallel tests never fight over the web page's port
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class Daemon:
    """One `python -m engine.daemon` in its own session, output to a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._out = open(log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine.daemon"], cwd=ROOT, env=env, stdout=self._out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, what: Callable[[], object], timeout: float, label: str) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = what()
            if value:
                return value
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"daemon exited ({self.proc.returncode}) waiting for {label}:\n{self.tail()}"
                )
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {label}:\n{self.tail()}")

    def wait_log(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        regex = re.compile(pattern)
        return self.wait_for(lambda: regex.search(self.text()), timeout, pattern)  # type: ignore[return-value]

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.text().splitlines()[-n:])

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def terminate(self, timeout: float = 60.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def cleanup(self) -> None:
        """Never leave processes behind, whatever the test did (this session is ours)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._out.close()


@pytest.fixture
def daemons():
    started: list[Daemon] = []

    def start(env: dict[str, str], name: str) -> Daemon:
        daemon = Daemon(env, Path(env["AI_QUANT_STATE_DIR"]).parent / f"{name}.log")
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.cleanup()


def db_rows(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []
    finally:
        conn.close()


def kind_count(db: Path, kind: LedgerKind) -> int:
    rows = db_rows(db, "SELECT COUNT(*) FROM trades WHERE kind=?", (kind.value,))
    return rows[0][0] if rows else 0  # no DB or no table yet: nothing counted


def ledger_state(db: Path) -> tuple[float, dict[str, tuple[str, float]]]:
    store = TradeStore.open(db, Mode.PAPER)
    try:
        balance = store.last_balance()
        positions = {s: (p.side.value, round(p.size_coins, 9)) for s, p in store.load_positions().items()}
    finally:
        store.close()
    assert balance is not None
    return balance, positions


def assert_cash_identity_and_events(db: Path) -> TradeStore:
    store = TradeStore.open(db, Mode.PAPER)
    t = store.totals()
    assert abs(t.seed_usd - t.fees_usd + t.realised_pnl_usd + t.funding_usd - t.balance_usd) < 0.005
    events = {e.event_id: e for e in EventLogger(store.connection, Mode.PAPER).events()}
    for fill in store.fills():
        if fill.kind in (LedgerKind.SEED, LedgerKind.FUNDING):
            continue
        assert fill.decision_id in events, f"fill {fill.trade_id} has no decision event"
        assert events[fill.decision_id].trade_id == fill.trade_id
    return store


@pytest.mark.slow
def test_paper_run_with_ray_ledger_identity_and_clean_sigterm(tmp_path, daemons):
    env = daemon_env(tmp_path, AI_QUANT_EXECUTOR="ray", AI_QUANT_SHARDS="2")
    db = tmp_path / "state" / "trading_paper.db"
    daemon = daemons(env, "ray")
    daemon.wait_log(r"engine started mode=paper .* executor=ray", timeout=120)
    daemon.wait_for(
        lambda: kind_count(db, LedgerKind.CLOSE) >= 1 and kind_count(db, LedgerKind.FUNDING) >= 1,
        timeout=150, label="a closed trade and a funding row",
    )  # fmt: skip
    daemon.wait_log(r"tick=5 ", timeout=60)
    children = daemon.descendants()
    names = " ".join(p.name() for p in children)
    assert "redis-server" in names and ("raylet" in names or "gcs_server" in names)
    assert daemon.terminate() == 0
    _gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"orphans after SIGTERM: {[(p.pid, p.name()) for p in alive]}"

    store = assert_cash_identity_and_events(db)
    assert store.totals().fees_usd > 0 and store.totals().funding_usd != 0
    store.close()
    text = daemon.text()
    status = [ln for ln in text.splitlines() if " tick=" in ln and " cash=" in ln]
    assert len(status) >= 5
    stamped = [ln for ln in text.splitlines() if LOG_LINE.match(ln)]
    assert stamped and all(" [paper] " in ln for ln in stamped)


def test_restart_after_kill9_and_sigterm_resumes_and_lock_refuses_second(tmp_path, daemons):
    env = daemon_env(tmp_path)
    db = tmp_path / "state" / "trading_paper.db"
    first = daemons(env, "first")
    first.wait_log("engine started", timeout=60)

    def paused_with_a_position() -> bool:
        # Freeze the daemon (its lock stays held) at a moment when the DB shows an open position.
        if db_rows(db, "SELECT COUNT(*) FROM position_state")[:1] in ([], [(0,)]):
            return False
        os.kill(first.pid, signal.SIGSTOP)
        if db_rows(db, "SELECT COUNT(*) FROM position_state")[:1] in ([], [(0,)]):
            os.kill(first.pid, signal.SIGCONT)
            return False
        return True

    first.wait_for(paused_with_a_position, timeout=90, label="an open position")

    second = daemons(env, "second")
    assert second.proc.wait(timeout=60) == 2
    assert re.search(rf"already running .*held by pid {first.pid}", second.text()), second.text()

    children = first.descendants()
    first.kill9()
    _gone, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, f"children outlived kill -9: {[(p.pid, p.name()) for p in alive]}"
    assert_cash_identity_and_events(db).close()
    balance, positions = ledger_state(db)
    assert positions

    third = daemons(env, "third")
    ready = third.wait_log(BROKER_READY.pattern)
    assert float(ready.group(1)) == pytest.approx(balance, abs=0.005)
    assert int(ready.group(2)) == len(positions)
    assert re.search(rf"reclaimed stale daemon lock .*previous_pid={first.pid}", third.text())
    third.wait_log(r"tick=3 ")
    assert third.terminate() == 0
    assert_cash_identity_and_events(db).close()
    balance, positions = ledger_state(db)

    fourth = daemons(env, "fourth")
    ready = fourth.wait_log(BROKER_READY.pattern)
    assert float(ready.group(1)) == pytest.approx(balance, abs=0.005)
    assert int(ready.group(2)) == len(positions)
    # The ready line is the broker's view at start; the DB is not compared after it, because the running
    # daemon may already have traded by the time a reader opens it.
    assert fourth.terminate() == 0
    assert_cash_identity_and_events(db).close()


def test_yaml_edit_applies_next_tick_and_broken_yaml_keeps_last_good(tmp_path, daemons):
    env = daemon_env(tmp_path)
    db = tmp_path / "state" / "trading_paper.db"
    daemon = daemons(env, "yaml")
    daemon.wait_for(lambda: kind_count(db, LedgerKind.OPEN) >= 1, timeout=90, label="an entry")

    yaml_path = Path(env["AI_QUANT_STRATEGY_YAML"])
    yaml_path.write_text(
        YAML.replace("entry_min_confidence: low}", "entry_min_confidence: low, max_open_positions: 0}")
    )
    reload_tick = int(daemon.wait_log(r"tick=(\d+) .*config=reloaded").group(1))

    def blocks_after(tick: int) -> list[tuple]:
        return db_rows(
            db, "SELECT tick_id FROM decision_events WHERE event_type=? AND reason_code=? AND tick_id>=?",
            (DecisionEventType.GATE_BLOCK.value, "max_open_positions", tick),
        )  # fmt: skip

    daemon.wait_for(lambda: blocks_after(reload_tick), timeout=60, label="an entry blocked by the new YAML")

    yaml_path.write_text("global: [this is not: valid yaml\n")
    bad_tick = int(daemon.wait_log(r"tick=(\d+) .*config=kept_last_good").group(1))
    daemon.wait_log(
        r"alert dry-run channel=discord target=#alerts text=\[paper\] config: strategy config rejected"
    )
    daemon.wait_for(
        lambda: blocks_after(bad_tick + 1), timeout=60, label="the last good config still in force"
    )
    assert daemon.terminate() == 0

    store = TradeStore.open(db, Mode.PAPER)
    entries_after = [
        e for e in EventLogger(store.connection, Mode.PAPER).events()
        if e.event_type is DecisionEventType.ENTRY_SIGNAL and e.status is DecisionStatus.EXECUTED
        and e.action is TradeAction.OPEN and e.tick_id is not None and e.tick_id >= reload_tick
    ]  # fmt: skip
    store.close()
    # max_open_positions caps new positions; a pyramid ADD onto an open one has its own limits
    assert entries_after == [], "no new position may open once max_open_positions is 0"


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            {"AI_QUANT_MODE": "papr"},
            "AI_QUANT_MODE='papr' is not valid; expected one of: paper, dry_live, live",
        ),
        ({"AI_QUANT_MODE": "live", "AI_QUANT_SECRETS_PATH": "/nonexistent/secrets.json"}, "secrets file"),
        ({"AI_QUANT_SHARDS": "many"}, "AI_QUANT_SHARDS"),
        ({"AI_QUANT_VENUE": "moon"}, "AI_QUANT_VENUE='moon' is not valid"),
        ({"AI_QUANT_LOOKBACK_BARS": "5"}, "AI_QUANT_LOOKBACK_BARS"),
    ],
)
def test_invalid_environment_exits_2_naming_the_variable(tmp_path, extra, needle):
    env = daemon_env(tmp_path, **extra)
    done = subprocess.run(
        [sys.executable, "-m", "engine.daemon"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert needle in done.stderr
    assert not (tmp_path / "state" / "trading_paper.db").exists()


def test_paper_entries_fill_at_the_sidecar_bbo(tmp_path, daemons):
    """trade.use_bbo_for_fills (default on): the sidecar's WS bbo reaches the paper fill model, so
    entries and exits are priced from the book, not the mid."""
    env = daemon_env(tmp_path)
    db = tmp_path / "state" / "trading_paper.db"
    daemon = daemons(env, "bbo")

    def entry_sources() -> list[str]:
        sql = "SELECT price_source FROM trades WHERE kind=? ORDER BY id"
        rows = db_rows(db, sql, (LedgerKind.OPEN.value,))
        return [source for (source,) in rows]

    daemon.wait_for(lambda: entry_sources().count("redis_bbo") >= 2, timeout=90, label="2 entries at the bbo")
    assert daemon.terminate() == 0
    # An entry in the first ticks, before the sidecar's first bbo message has reached Redis, prices
    # at the mid by design (no book yet; on a loaded box that happens); from the first book on,
    # every entry prices from it.
    sources = entry_sources()
    assert set(sources[sources.index("redis_bbo"):]) == {"redis_bbo"}, sources
    assert set(sources) <= {"redis_mid", "redis_bbo"}, sources


@pytest.mark.parametrize(
    ("yaml_text", "extra", "needle"),
    [
        ("global:\n  engine: {entry_interval: 3m}\n", {}, "engine.entry_interval='3m' is not supported"),
        ("global:\n  engine: {exit_interval: 5m}\n", {}, "engine.exit_interval='5m' is not supported"),
        ("global:\n  engine: {heartbeat_every_s: 60}\n", {"AI_QUANT_HEARTBEAT_SECS": "30"},
         "engine.heartbeat_every_s=60.0 conflicts with AI_QUANT_HEARTBEAT_SECS='30'"),
        ("symbols:\n  ETH: {market_regime: {enable_regime_gate: true}}\n", {},
         "unknown key symbols.ETH.market_regime"),
        ("global:\n  trade: {use_bbo_for_fill: false}\n", {}, "unknown key global.trade.use_bbo_for_fill"),
    ],
)  # fmt: skip
def test_yaml_setting_not_honoured_exits_2_naming_it_and_the_file(tmp_path, yaml_text, extra, needle):
    yaml_path = tmp_path / "strategy.yaml"
    yaml_path.write_text(yaml_text)
    yaml_path.chmod(0o600)
    env = daemon_env(tmp_path, **extra)
    done = subprocess.run(
        [sys.executable, "-m", "engine.daemon"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert needle in done.stderr and str(yaml_path) in done.stderr
    assert not (tmp_path / "state" / "trading_paper.db").exists()
