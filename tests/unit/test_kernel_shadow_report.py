"""Decision-log report: summary counts and two-run comparison, through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.enums import DecisionEventType, DecisionPhase, DecisionStatus, GateCode, Mode
from engine.execution.trade_store import open_trading_db
from engine.tick.decision_log import EventLogger
from engine.tools.kernel_shadow_report import main, parse_time_ms
from strategies.enums import Signal

T0 = 1_764_028_800_000  # 2025-11-25T00:00:00Z


def _write(path: Path, rows: list[tuple[str, int, DecisionStatus, str, str | None]], mode=Mode.PAPER) -> None:
    conn = open_trading_db(path)
    logger = EventLogger(conn, mode)
    events = []
    for symbol, offset, status, action_taken, reason in rows:
        executed = status is DecisionStatus.EXECUTED
        events.append(
            logger.new_event(
                symbol=symbol, event_ms=T0 + offset, recorded_ms=T0 + offset + 1, status=status,
                event_type=DecisionEventType.ENTRY_SIGNAL if executed else DecisionEventType.GATE_BLOCK,
                phase=DecisionPhase.EXECUTION if executed else DecisionPhase.GATE_EVALUATION,
                action_taken=action_taken, reason_code=reason, signal=Signal.BUY,
                trade_id=offset if executed else None,
            )
        )  # fmt: skip
    logger.record_many(events)
    conn.close()


def _run(capsys, *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


RUN_A = [
    ("BTC", 0, DecisionStatus.EXECUTED, "open", None),
    ("ETH", 0, DecisionStatus.BLOCKED, "blocked", GateCode.MAX_OPEN_POSITIONS.value),
    ("SOL", 3_600_000, DecisionStatus.BLOCKED, "blocked", GateCode.REENTRY_COOLDOWN.value),
    ("BTC", 7_200_000, DecisionStatus.EXECUTED, "open", None),
]


def test_report_summarises_window(tmp_path, capsys):
    db = tmp_path / "a.db"
    _write(db, RUN_A)
    report = _run(capsys, "--db", str(db))
    summary = report["summary"]
    assert summary["events"] == 4 and summary["trades_linked"] == 2 and summary["modes"] == ["paper"]
    assert summary["blocked_by_reason"] == {"max_open_positions": 1, "reentry_cooldown": 1}
    assert summary["by_symbol"]["BTC"] == {"evaluated": 2, "executed": 2}
    windowed = _run(
        capsys, "--db", str(db), "--since", "2025-11-25T00:30:00Z", "--until", str(T0 + 7_200_000)
    )
    assert windowed["summary"]["events"] == 1 and windowed["summary"]["by_symbol"].keys() == {"SOL"}


def test_report_compares_two_runs(tmp_path, capsys):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    _write(a, RUN_A)
    run_b = [
        RUN_A[0],
        ("ETH", 0, DecisionStatus.EXECUTED, "open", None),  # b took the trade a blocked
        RUN_A[2],
        ("AVAX", 9_000, DecisionStatus.BLOCKED, "blocked", GateCode.MIN_NOTIONAL.value),
    ]
    _write(b, run_b)
    comparison = _run(capsys, "--db", str(a), "--compare", str(b))["comparison"]
    # ETH differs in event type (gate_block vs entry_signal): unmatched on both sides
    assert comparison["matched"] == 2 and comparison["agreed"] == 2
    assert comparison["only_in_a"] == 2 and comparison["only_in_b"] == 2
    assert ["AVAX", T0 + 9_000, "gate_block"] in comparison["only_in_b_examples"]


def test_report_flags_disagreement_on_same_key(tmp_path, capsys):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    _write(a, [("ETH", 0, DecisionStatus.BLOCKED, "blocked", GateCode.MAX_OPEN_POSITIONS.value)])
    _write(b, [("ETH", 0, DecisionStatus.BLOCKED, "blocked", GateCode.MARGIN_CAP.value)])
    comparison = _run(capsys, "--db", str(a), "--compare", str(b))["comparison"]
    assert comparison["disagreed"] == 1 and comparison["agreement_rate"] == 0.0
    example = comparison["disagreement_examples"][0]
    assert example["a"]["reason_code"] == "max_open_positions" and example["b"]["reason_code"] == "margin_cap"


def test_report_mode_filter_and_missing_db(tmp_path, capsys):
    db = tmp_path / "a.db"
    _write(db, RUN_A)
    assert _run(capsys, "--db", str(db), "--mode", "live")["summary"]["events"] == 0
    assert main(["--db", str(tmp_path / "missing.db")]) == 2


@pytest.mark.parametrize(
    ("text", "ms"),
    [("1764028800000", T0), ("2025-11-25T00:00:00Z", T0), ("2025-11-25T01:00:00", T0 + 3_600_000)],
)
def test_parse_time_ms(text, ms):
    assert parse_time_ms(text) == ms
