"""Paper runs behind the same risk path as live: the daemon as a subprocess on the simulator.

Acceptance of the driver issue: with AI_QUANT_KILL_SWITCH=halt_all a paper daemon opens nothing
(entries reach the broker and are denied with the reason recorded); with close_only (here the
kill file, written while a position is open) it only closes from then on; the REDUCING state is
persisted in paper's trading DB and survives a restart without the file.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine.enums import DecisionEventType, LedgerKind

from .test_daemon_paper import ROOT, daemon_env, daemons, db_rows, kind_count  # noqa: F401 (fixture)

ENTRY_KINDS = (LedgerKind.OPEN.value, LedgerKind.ADD.value)


def risk_denied_entries(db: Path, reason: str) -> list[tuple]:
    """Entry decisions the risk manager refused, keyed on its RiskReason (the decision's reason_code)."""
    return db_rows(
        db, "SELECT symbol, reason_code FROM decision_events WHERE event_type=? AND reason_code=?",
        (DecisionEventType.ENTRY_SIGNAL.value, reason),
    )  # fmt: skip


def state_changes(db: Path) -> list[tuple]:
    return db_rows(db, "SELECT event, to_state, event_ms FROM risk_state_changes ORDER BY seq")


def test_halt_all_paper_daemon_opens_nothing(tmp_path, daemons):  # noqa: F811
    env = daemon_env(tmp_path, AI_QUANT_KILL_SWITCH="halt_all")
    db = tmp_path / "state" / "trading_paper.db"
    daemon = daemons(env, "halt")
    daemon.wait_log("risk ready state=", timeout=60)
    daemon.wait_for(
        lambda: len(risk_denied_entries(db, "trading_halted")) >= 2, timeout=120,
        label="entries denied by the halt",
    )  # fmt: skip
    assert daemon.terminate() == 0
    assert [c[1] for c in state_changes(db)] == ["HALTED"]
    assert kind_count(db, LedgerKind.OPEN) == 0 and kind_count(db, LedgerKind.ADD) == 0
    assert "risk denied symbol=" in daemon.text()


def test_close_only_kill_file_only_closes_and_survives_restart(tmp_path, daemons):  # noqa: F811
    kill_file = tmp_path / "kill"
    env = daemon_env(tmp_path, AI_QUANT_KILL_SWITCH_FILE=str(kill_file))
    db = tmp_path / "state" / "trading_paper.db"
    daemon = daemons(env, "close_only")
    daemon.wait_for(
        lambda: db_rows(db, "SELECT COUNT(*) FROM position_state")[:1] not in ([], [(0,)]),
        timeout=120, label="an open position",
    )  # fmt: skip
    kill_file.write_text("close_only\n")
    changes = daemon.wait_for(lambda: state_changes(db), timeout=60, label="the close_only state change")
    assert [c[1] for c in changes] == ["REDUCING"]  # type: ignore[index]
    change_ms = changes[0][2]  # type: ignore[index]

    def closed_and_denied_after() -> bool:
        closes = db_rows(
            db, "SELECT COUNT(*) FROM trades WHERE kind IN (?, ?) AND event_ms >= ?",
            (LedgerKind.CLOSE.value, LedgerKind.REDUCE.value, change_ms),
        )  # fmt: skip
        return closes[0][0] >= 1 and len(risk_denied_entries(db, "trading_reducing")) >= 1

    daemon.wait_for(closed_and_denied_after, timeout=150, label="a close and a denied entry after the switch")
    assert daemon.terminate() == 0
    entries_after = db_rows(
        db, "SELECT COUNT(*) FROM trades WHERE kind IN (?, ?) AND event_ms >= ?", (*ENTRY_KINDS, change_ms)
    )
    assert entries_after == [(0,)], "no entry may fill once close_only is in force"

    kill_file.unlink()  # deleting the file does not lift the kill: only `clear` does
    again = daemons(env, "restart")
    again.wait_log("risk ready state=REDUCING", timeout=60)
    again.wait_log(r"tick=3 ", timeout=60)
    assert again.terminate() == 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        late = conn.execute(
            "SELECT COUNT(*) FROM trades WHERE kind IN (?, ?) AND event_ms >= ?", (*ENTRY_KINDS, change_ms)
        ).fetchone()
    finally:
        conn.close()
    assert late == (0,)


@pytest.mark.parametrize("missing", ["/missing.yaml", "no/such/strategy.yaml"])
def test_missing_strategy_yaml_exits_2_naming_the_path(tmp_path, missing):
    env = daemon_env(tmp_path, AI_QUANT_STRATEGY_YAML=missing)
    done = subprocess.run(
        [sys.executable, "-m", "engine.daemon"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert f"AI_QUANT_STRATEGY_YAML={missing!r}: no such file" in done.stderr
    assert not (tmp_path / "state" / "trading_paper.db").exists()
