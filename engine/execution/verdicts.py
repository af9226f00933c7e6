"""The pre-trade verdict: `Allow()` or `Deny(reason, details)`, typed across every seam.

Why its own module: the risk check (engine/risk/check.py) returns it, the brokers act on it and
carry it back in `OrderResult.deny`, the OMS stores its code in the DENY row and the decision log
keys on the same code. It is part of the Broker seam (`PreSendCheck` in engine/execution/broker.py
returns it), so it lives in execution/, below risk/: depending only on `engine.enums`, it can be
imported by all of them without a cycle (`engine.risk.manager` re-exports the names).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.enums import RiskReason


@dataclass(frozen=True, slots=True)
class Allow:
    """The order may proceed (to the live gates and the broker)."""

    @property
    def allowed(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Deny:
    """The order is refused: `reason` is the code to count and alert on, `details` the numbers."""

    reason: RiskReason
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return False


RiskVerdict = Allow | Deny
ALLOW = Allow()
FAIL_CLOSED_REASONS = frozenset({RiskReason.CHECK_FAILED, RiskReason.ADDRESS_BUDGET})
"""Reasons given around the check (by the caller failing closed, or the per-address request budget
shedding entries: engine.venue.address_budget), never by the check itself."""


def check_failed(stage: str, error: BaseException | None = None) -> Deny:
    """Return the fail-closed denial for a check that raised or answered something else."""
    details: dict[str, Any] = {"stage": stage}
    if error is not None:
        details["error"] = type(error).__name__
    return Deny(RiskReason.CHECK_FAILED, details)
