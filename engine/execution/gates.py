"""The live send gates: whether this process may POST an order to the venue right now.

Re-read from the environment before every order (no caching), so an operator who sets
`AI_QUANT_HARD_KILL_SWITCH` stops the next order. Only one combination opens the gate:
mode `live`, `AI_QUANT_LIVE_ENABLE` true, `AI_QUANT_LIVE_CONFIRM` equal to the exact phrase
(case-sensitive, surrounding whitespace ignored) and no hard kill. `dry_live` and `paper` never
send, whatever the variables say. With the gate closed the daemon keeps running and records what
it would have sent.

Fail closed: an unparseable `AI_QUANT_HARD_KILL_SWITCH` counts as a hard kill and an unparseable
`AI_QUANT_LIVE_ENABLE` as disabled (reason INVALID_VALUE); this function never raises on a bad
value, because it runs in the order path.

The soft kill switch (`AI_QUANT_KILL_SWITCH`) is deliberately NOT read here: it has one parser,
in engine/risk/kill_switch.py, and acts through the RiskManager's trading state (reference quirk
§18.10, two parsers for one variable, is not repeated).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from engine.config.env import ConfigError, env_bool
from engine.enums import GateReason, Mode

LIVE_CONFIRM_PHRASE = "I_UNDERSTAND_THIS_CAN_LOSE_MONEY"

ENV_LIVE_ENABLE = "AI_QUANT_LIVE_ENABLE"
ENV_LIVE_CONFIRM = "AI_QUANT_LIVE_CONFIRM"
ENV_HARD_KILL = "AI_QUANT_HARD_KILL_SWITCH"


@dataclass(frozen=True, slots=True)
class GateVerdict:
    """`may_send` is True only with reason OPEN; `variable` names the variable that closed it."""

    may_send: bool
    reason: GateReason
    variable: str | None = None


def hard_kill_active(env: Mapping[str, str] | None = None) -> bool:
    """Return True when AI_QUANT_HARD_KILL_SWITCH is true or unparseable (fail closed)."""
    try:
        return env_bool(ENV_HARD_KILL, False, env)
    except ConfigError:
        return True


def _closed(reason: GateReason, variable: str | None) -> GateVerdict:
    return GateVerdict(may_send=False, reason=reason, variable=variable)


def live_gate(mode: Mode, env: Mapping[str, str] | None = None) -> GateVerdict:
    """Decide whether an order may be POSTed now; read the variables afresh on every call.

    Checks, in order: hard kill, mode (only `live` sends), the enable flag, the confirm phrase.
    Never raises.
    """
    source = os.environ if env is None else env
    try:
        hard_kill = env_bool(ENV_HARD_KILL, False, source)
    except ConfigError:
        return _closed(GateReason.INVALID_VALUE, ENV_HARD_KILL)
    if hard_kill:
        return _closed(GateReason.HARD_KILL, ENV_HARD_KILL)
    if mode is not Mode.LIVE:
        return _closed(GateReason.NOT_LIVE_MODE, "AI_QUANT_MODE")
    try:
        enabled = env_bool(ENV_LIVE_ENABLE, False, source)
    except ConfigError:
        return _closed(GateReason.INVALID_VALUE, ENV_LIVE_ENABLE)
    if not enabled:
        return _closed(GateReason.LIVE_NOT_ENABLED, ENV_LIVE_ENABLE)
    confirm = source.get(ENV_LIVE_CONFIRM)
    if confirm is None or not confirm.strip():
        return _closed(GateReason.CONFIRM_MISSING, ENV_LIVE_CONFIRM)
    if confirm.strip() != LIVE_CONFIRM_PHRASE:
        return _closed(GateReason.CONFIRM_WRONG, ENV_LIVE_CONFIRM)
    return GateVerdict(may_send=True, reason=GateReason.OPEN)
