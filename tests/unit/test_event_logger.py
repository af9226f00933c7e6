"""Decision events: schema round trip, ULIDs, mode stamping, batch writes, window queries."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from engine.enums import DecisionEventType, DecisionPhase, DecisionStatus, GateCode, Mode
from engine.execution.trade_store import TradeStore, open_trading_db
from engine.tick.decision_log import EventLogger, GateCheck, new_decision_id, read_events
from strategies.enums import Confidence, Signal, TradeAction

T0 = 1_700_000_000_000


@pytest.fixture
def conn(tmp_path: Path):
    connection = open_trading_db(tmp_path / "trading_paper.db")
    yield connection
    connection.close()


def _blocked(logger: EventLogger, symbol: str, event_ms: int, gate: GateCode):
    return logger.new_event(
        symbol=symbol, event_type=DecisionEventType.GATE_BLOCK, status=DecisionStatus.BLOCKED,
        phase=DecisionPhase.GATE_EVALUATION, action_taken="blocked", event_ms=event_ms,
        recorded_ms=event_ms + 5,
        signal=Signal.BUY, confidence=Confidence.HIGH, score=12.5, action=TradeAction.OPEN, reason_code=gate,
        gates=(GateCheck(gate=GateCode.CANDLE_DEDUPE, passed=True),
               GateCheck(gate=gate, passed=False, details={"open": 8, "limit": 8})),
        context={"ADX": 31.2, "ATR": float("nan")}, tick_id=7,
    )  # fmt: skip


def test_new_decision_id_is_a_time_ordered_ulid():
    ids = [new_decision_id(T0 + i) for i in range(50)]
    assert all(re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", ulid) for ulid in ids)
    assert ids == sorted(ids) and len(set(ids)) == 50
    assert new_decision_id(T0)[:10] == new_decision_id(T0)[:10]
    with pytest.raises(ValueError):
        new_decision_id(-1)


def test_event_logger_round_trips_every_field(conn):
    logger = EventLogger(conn, Mode.PAPER, run_id="run-1")
    event = _blocked(logger, "ETH", T0, GateCode.MAX_OPEN_POSITIONS)
    logger.record(event)
    (stored,) = logger.events()
    assert stored.failed_gates == (GateCode.MAX_OPEN_POSITIONS.value,)
    assert stored.context == {"ADX": 31.2, "ATR": None}  # non-finite stored as null
    assert stored.gates[1].details == {"open": 8, "limit": 8}
    assert stored.mode is Mode.PAPER and stored.run_id == "run-1" and stored.tick_id == 7
    assert (stored.signal, stored.confidence, stored.score, stored.action) == (
        Signal.BUY,
        Confidence.HIGH,
        12.5,
        TradeAction.OPEN,
    )
    assert stored.event_id == event.event_id


def test_event_logger_batch_window_and_symbol_queries(conn):
    logger = EventLogger(conn, Mode.PAPER)
    events = [
        _blocked(logger, sym, T0 + i * 1000, GateCode.REENTRY_COOLDOWN) for i, sym in enumerate("ABCAB")
    ]
    assert logger.record_many(events) == 5
    assert logger.record_many([]) == 0
    assert [e.symbol for e in logger.events(since_ms=T0 + 1000, until_ms=T0 + 4000)] == ["B", "C", "A"]
    assert [e.event_ms for e in logger.events(symbol="A")] == [T0, T0 + 3000]


def test_event_logger_links_trade(conn):
    logger = EventLogger(conn, Mode.PAPER)
    executed = logger.new_event(
        symbol="BTC", event_type=DecisionEventType.ENTRY_SIGNAL, status=DecisionStatus.EXECUTED,
        phase=DecisionPhase.EXECUTION, action_taken="open", event_ms=T0, recorded_ms=T0, trade_id=42,
    )  # fmt: skip
    logger.record(executed)
    assert [e.event_id for e in logger.for_trade(42)] == [executed.event_id]
    assert logger.for_trade(43) == []


def test_event_logger_modes_are_kept_apart(conn):
    paper, live = EventLogger(conn, Mode.PAPER), EventLogger(conn, Mode.LIVE)
    paper.record(_blocked(paper, "BTC", T0, GateCode.MIN_NOTIONAL))
    live.record(_blocked(live, "BTC", T0, GateCode.MIN_NOTIONAL))
    assert [e.mode for e in paper.events()] == [Mode.PAPER]
    assert {e.mode for e in read_events(conn)} == {Mode.PAPER, Mode.LIVE}
    with pytest.raises(ValueError):
        paper.record(_blocked(live, "BTC", T0, GateCode.MIN_NOTIONAL))


def test_event_logger_failed_batch_writes_nothing(conn):
    logger = EventLogger(conn, Mode.PAPER)
    event = _blocked(logger, "BTC", T0, GateCode.MARGIN_CAP)
    with pytest.raises(sqlite3.IntegrityError):
        logger.record_many([event, event])  # duplicate id
    assert logger.events() == []


@pytest.mark.parametrize("gate", list(GateCode))
def test_event_logger_every_gate_code_round_trips(conn, gate):
    logger = EventLogger(conn, Mode.PAPER)
    logger.record(_blocked(logger, "SOL", T0, gate))
    assert logger.events()[0].reason_code == gate.value


def _ledger_row(conn, decision_id: str) -> int:
    """A ledger row as any writer (paper broker, OMS) inserts it, naming its decision."""
    return int(conn.execute(
        "INSERT INTO trades (mode, kind, symbol, size_coins, price, notional_usd, fee_usd, fee_rate,"
        " realised_pnl_usd, funding_usd, cash_delta_usd, balance_usd, leverage, margin_used_usd, reason,"
        " decision_id, event_ms, recorded_ms) VALUES ('paper', 'open', 'BTC', 1, 100, 100, 0.1, 0.001,"
        " 0, 0, -0.1, 999.9, 1, 100, 'signal', ?, ?, ?)", (decision_id, T0, T0),
    ).lastrowid)  # fmt: skip


def test_a_fill_links_its_pending_event_in_its_own_transaction_and_the_outcome_replaces_it(tmp_path):
    # The daemon writes the event PENDING before sending; a kill -9 right after the fill commits
    # must still leave an event that names the fill.
    store = TradeStore.open(tmp_path / "trading_paper.db", Mode.PAPER)  # the ledger first, as the daemon
    conn = store.connection
    logger = EventLogger(conn, Mode.PAPER)
    pending = logger.new_event(
        symbol="BTC", event_type=DecisionEventType.ENTRY_SIGNAL, status=DecisionStatus.PENDING,
        phase=DecisionPhase.EXECUTION, action_taken="pending", action=TradeAction.OPEN, event_ms=T0,
        recorded_ms=T0,
    )  # fmt: skip
    logger.record(pending)
    trade_id = _ledger_row(conn, pending.event_id)
    assert [e.event_id for e in logger.for_trade(trade_id)] == [pending.event_id]
    assert logger.events()[0].status is DecisionStatus.PENDING

    outcome = replace(pending, status=DecisionStatus.EXECUTED, action_taken="open", recorded_ms=T0 + 3)
    logger.record(outcome)  # trade_id None in the outcome: the linked one is kept
    (stored,) = logger.events()
    assert (stored.status, stored.trade_id, stored.recorded_ms) == (DecisionStatus.EXECUTED, trade_id, T0 + 3)
    with pytest.raises(sqlite3.IntegrityError):  # only a PENDING event may be replaced
        logger.record(replace(outcome, status=DecisionStatus.REJECTED))
    assert logger.events() == [stored]
    store.close()
