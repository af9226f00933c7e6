"""Entry gates (pure): ranking tie-break, gate order, first failure reported with details."""

from __future__ import annotations

import dataclasses

import pytest

from engine.enums import GateCode
from engine.tick.entry_gates import (
    STRATEGY_GATES,
    Candidate,
    EntryContext,
    check_add_gates,
    check_open_gates,
    gate_for_block,
    rank,
)
from strategies.config import StrategyOverrides, parse_overrides
from strategies.enums import Confidence, ExitReason, PositionSide, Signal, SizingBlock, StrategyMode
from strategies.sizing import LastClose

NOW = 1_764_028_800_000
KEY = NOW - 1_000
SNAP = {"ADX": 30.0, "ATR": 1.0, "MACD_hist": 0.1, "RSI": 50.0}


def _cfg(**trade):
    base = {
        "entry_min_confidence": "low",
        "max_open_positions": 2,
        "entry_cooldown_s": 20,
        "max_entry_orders_per_loop": 2,
        **trade,
    }
    return parse_overrides({"global": {"trade": base}}).resolve("BTC")


def _cand(**kw) -> Candidate:
    fields = {
        "symbol": "BTC",
        "signal": Signal.BUY,
        "confidence": Confidence.HIGH,
        "score": 230.0,
        "candle_key": KEY,
        "snapshot": SNAP,
        **kw,
    }
    return Candidate(**fields)


def _ctx(**kw) -> EntryContext:
    fields = {
        "now_ms": NOW,
        "open_positions": 0,
        "marks_stale": False,
        "last_entry_key": None,
        "open_positions_at_last_entry": None,
        "last_entry_attempt_ms": None,
        "entries_this_tick": 0,
        "last_close": None,
        **kw,
    }
    return EntryContext(**fields)


def test_rank_orders_by_score_then_symbol():
    ranked = rank(
        [_cand(symbol="SOL", score=1.0), _cand(symbol="ETH", score=2.0), _cand(symbol="BTC", score=2.0)]
    )
    assert [c.symbol for c in ranked] == ["BTC", "ETH", "SOL"]


def test_open_gates_all_pass_in_order():
    outcome = check_open_gates(_cand(), _ctx(), _cfg())
    assert outcome.passed
    assert [c.gate for c in outcome.checks] == [
        GateCode.FLAT_MODE,
        GateCode.STALE_CANDLE,
        GateCode.CANDLE_DEDUPE,
        GateCode.DATA_STALE,
        STRATEGY_GATES,
        GateCode.MAX_OPEN_POSITIONS,
        GateCode.ENTRY_COOLDOWN,
        GateCode.ENTRY_BUDGET,
    ]


FLAT = dataclasses.replace(StrategyOverrides().resolve("BTC"), strategy_mode=StrategyMode.FLAT)


@pytest.mark.parametrize(
    ("cand", "ctx", "cfg", "code"),
    [
        (_cand(), _ctx(), FLAT, GateCode.FLAT_MODE),
        (_cand(candle_key=NOW - 10_000), _ctx(entry_max_delay_ms=5_000), _cfg(), GateCode.STALE_CANDLE),
        (_cand(), _ctx(last_entry_key=KEY, open_positions_at_last_entry=1), _cfg(), GateCode.CANDLE_DEDUPE),
        (_cand(), _ctx(marks_stale=True), _cfg(), GateCode.DATA_STALE),
        (
            _cand(confidence=Confidence.LOW),
            _ctx(),
            _cfg(entry_min_confidence="high"),
            GateCode.LOW_CONFIDENCE,
        ),
        (_cand(snapshot={**SNAP, "MACD_hist": -1.0}), _ctx(), _cfg(), GateCode.SSF),
        (_cand(snapshot={**SNAP, "RSI": 80.0}), _ctx(), _cfg(), GateCode.REEF),
        (
            _cand(),
            _ctx(last_close=LastClose(PositionSide.LONG, NOW - 60_000, ExitReason.STOP_LOSS)),
            _cfg(),
            GateCode.REENTRY_COOLDOWN,
        ),
        (_cand(), _ctx(open_positions=2), _cfg(), GateCode.MAX_OPEN_POSITIONS),
        (_cand(), _ctx(last_entry_attempt_ms=NOW - 5_000), _cfg(), GateCode.ENTRY_COOLDOWN),
        (_cand(), _ctx(entries_this_tick=2), _cfg(), GateCode.ENTRY_BUDGET),
    ],
)
def test_open_gates_first_failure_stops_the_chain(cand, ctx, cfg, code):
    outcome = check_open_gates(cand, ctx, cfg)
    assert outcome.blocked_by == code.value
    assert outcome.checks[-1].gate == code.value and not outcome.checks[-1].passed
    assert all(check.passed for check in outcome.checks[:-1])


def test_reentry_cooldown_does_not_apply_after_a_flip_close():
    ctx = _ctx(last_close=LastClose(PositionSide.LONG, NOW - 60_000, ExitReason.SIGNAL_FLIP))
    assert check_open_gates(_cand(), ctx, _cfg()).passed


def test_dedupe_retry_on_capacity_allows_when_positions_dropped():
    ctx = _ctx(last_entry_key=KEY, open_positions_at_last_entry=2, open_positions=1, retry_on_capacity=True)
    assert check_open_gates(_cand(), ctx, _cfg()).passed
    blocked = dataclasses.replace(ctx, open_positions=2)
    assert check_open_gates(_cand(), blocked, _cfg()).blocked_by == GateCode.CANDLE_DEDUPE.value


def test_zero_budget_and_cooldown_mean_unlimited():
    ctx = _ctx(entries_this_tick=50, last_entry_attempt_ms=NOW - 1)
    assert check_open_gates(_cand(), ctx, _cfg(max_entry_orders_per_loop=0, entry_cooldown_s=0)).passed


def test_add_gates_skip_strategy_and_capacity_gates():
    outcome = check_add_gates(
        _cand(confidence=Confidence.LOW), _ctx(open_positions=99), _cfg(entry_min_confidence="high")
    )
    assert outcome.passed
    assert (
        check_add_gates(_cand(), _ctx(entries_this_tick=2), _cfg()).blocked_by == GateCode.ENTRY_BUDGET.value
    )


_ENTRY_BLOCKS = {
    SizingBlock.MIN_CONFIDENCE: GateCode.LOW_CONFIDENCE,
    SizingBlock.REENTRY_COOLDOWN: GateCode.REENTRY_COOLDOWN,
    SizingBlock.SSF: GateCode.SSF,
    SizingBlock.REEF: GateCode.REEF,
    SizingBlock.MARGIN_CAP: GateCode.MARGIN_CAP,
    SizingBlock.BELOW_MIN_NOTIONAL: GateCode.MIN_NOTIONAL,
    SizingBlock.BAD_INPUT: GateCode.DATA_STALE,
}


@pytest.mark.parametrize("block", list(SizingBlock))
def test_sizing_blocks_map_to_gate_codes_or_keep_their_own_code(block):
    expected = _ENTRY_BLOCKS.get(block)
    assert gate_for_block(block) == (block.value if expected is None else expected.value)
