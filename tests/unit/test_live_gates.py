"""engine.execution.gates: only live + enable + exact confirm + no hard kill sends (issue 6 acceptance 2)."""

from __future__ import annotations

import itertools

import pytest

from engine.enums import GateReason, Mode
from engine.execution.gates import LIVE_CONFIRM_PHRASE, GateVerdict, hard_kill_active, live_gate

ENABLE = {"on": "1", "off": None}
CONFIRM = {"correct": LIVE_CONFIRM_PHRASE, "wrong": LIVE_CONFIRM_PHRASE.lower(), "missing": None}
HARD_KILL = {"on": "1", "off": None}
MODES = (Mode.LIVE, Mode.DRY_LIVE)


def _env(enable: str | None, confirm: str | None, hard_kill: str | None) -> dict[str, str]:
    env = {}
    for name, value in (
        ("AI_QUANT_LIVE_ENABLE", enable),
        ("AI_QUANT_LIVE_CONFIRM", confirm),
        ("AI_QUANT_HARD_KILL_SWITCH", hard_kill),
    ):
        if value is not None:
            env[name] = value
    return env


def test_live_gate_full_table_exactly_one_combination_sends() -> None:
    sending = []
    combos = list(itertools.product(ENABLE, CONFIRM, HARD_KILL, MODES))
    assert len(combos) == 2 * 3 * 2 * 2
    for enable, confirm, hard_kill, mode in combos:
        verdict = live_gate(mode, _env(ENABLE[enable], CONFIRM[confirm], HARD_KILL[hard_kill]))
        assert verdict.may_send == (verdict.reason is GateReason.OPEN)
        if verdict.may_send:
            sending.append((enable, confirm, hard_kill, mode))
    assert sending == [("on", "correct", "off", Mode.LIVE)]


@pytest.mark.parametrize(
    ("mode", "env", "reason"),
    [
        (Mode.LIVE, _env("1", LIVE_CONFIRM_PHRASE, "1"), GateReason.HARD_KILL),
        (Mode.DRY_LIVE, _env("1", LIVE_CONFIRM_PHRASE, None), GateReason.NOT_LIVE_MODE),
        (Mode.PAPER, _env("1", LIVE_CONFIRM_PHRASE, None), GateReason.NOT_LIVE_MODE),
        (Mode.LIVE, _env(None, LIVE_CONFIRM_PHRASE, None), GateReason.LIVE_NOT_ENABLED),
        (Mode.LIVE, _env("0", LIVE_CONFIRM_PHRASE, None), GateReason.LIVE_NOT_ENABLED),
        (Mode.LIVE, _env("1", None, None), GateReason.CONFIRM_MISSING),
        (Mode.LIVE, _env("1", "   ", None), GateReason.CONFIRM_MISSING),
        (Mode.LIVE, _env("1", "I_UNDERSTAND", None), GateReason.CONFIRM_WRONG),
        (Mode.LIVE, _env("1", LIVE_CONFIRM_PHRASE + "!", None), GateReason.CONFIRM_WRONG),
        (Mode.LIVE, _env("maybe", LIVE_CONFIRM_PHRASE, None), GateReason.INVALID_VALUE),
        (Mode.LIVE, _env("1", LIVE_CONFIRM_PHRASE, "garbage"), GateReason.INVALID_VALUE),
    ],
)
def test_live_gate_closed_reports_reason(mode: Mode, env: dict[str, str], reason: GateReason) -> None:
    verdict = live_gate(mode, env)
    assert verdict.may_send is False
    assert verdict.reason is reason


@pytest.mark.parametrize("enable", ["1", "true", "YES", " on "])
@pytest.mark.parametrize("hard_kill", [None, "0", "false", "off", ""])
def test_live_gate_open_equivalents(enable: str, hard_kill: str | None) -> None:
    env = _env(enable, f"  {LIVE_CONFIRM_PHRASE}\n", hard_kill)
    assert live_gate(Mode.LIVE, env) == GateVerdict(may_send=True, reason=GateReason.OPEN)


def test_live_gate_rereads_environment_each_call() -> None:
    env = _env("1", LIVE_CONFIRM_PHRASE, None)
    assert live_gate(Mode.LIVE, env).may_send
    env["AI_QUANT_HARD_KILL_SWITCH"] = "1"
    assert live_gate(Mode.LIVE, env).reason is GateReason.HARD_KILL
    del env["AI_QUANT_HARD_KILL_SWITCH"]
    assert live_gate(Mode.LIVE, env).may_send


def test_live_gate_ignores_soft_kill_switch() -> None:
    env = _env("1", LIVE_CONFIRM_PHRASE, None) | {"AI_QUANT_KILL_SWITCH": "halt_all"}
    assert live_gate(Mode.LIVE, env).may_send  # the soft kill acts through the RiskManager's state


@pytest.mark.parametrize(("value", "active"), [(None, False), ("0", False), ("1", True), ("junk", True)])
def test_hard_kill_active_fails_closed(value: str | None, active: bool) -> None:
    env = {} if value is None else {"AI_QUANT_HARD_KILL_SWITCH": value}
    assert hard_kill_active(env) is active


@pytest.mark.parametrize("reason", list(GateReason))
def test_every_gate_reason_is_reachable(reason: GateReason) -> None:
    examples = {
        GateReason.OPEN: (Mode.LIVE, _env("1", LIVE_CONFIRM_PHRASE, None)),
        GateReason.NOT_LIVE_MODE: (Mode.DRY_LIVE, _env("1", LIVE_CONFIRM_PHRASE, None)),
        GateReason.HARD_KILL: (Mode.LIVE, _env("1", LIVE_CONFIRM_PHRASE, "yes")),
        GateReason.LIVE_NOT_ENABLED: (Mode.LIVE, _env(None, LIVE_CONFIRM_PHRASE, None)),
        GateReason.CONFIRM_MISSING: (Mode.LIVE, _env("1", None, None)),
        GateReason.CONFIRM_WRONG: (Mode.LIVE, _env("1", "nope", None)),
        GateReason.INVALID_VALUE: (Mode.LIVE, _env("2", LIVE_CONFIRM_PHRASE, None)),
    }
    mode, env = examples[reason]
    assert live_gate(mode, env).reason is reason
