"""Fault injection switches for the simulated venue, set by CLI flags and the admin endpoint.

Owns the fault settings and the seeded coin flips that decide which request a fault hits, so a
run with the same seed and request order hits the same requests. The server and the WS hub ask
this object what to do; it does no I/O itself.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, fields
from typing import Any


class FaultError(ValueError):
    """An unknown fault name or a bad value (answered with HTTP 400 by the admin endpoint)."""


@dataclass
class FaultSettings:
    """Current fault switches; every one off by default."""

    ws_drop_every_secs: float = 0.0     # close every WS connection every N wall seconds (0 = off)
    rest_error_rate: float = 0.0        # fraction of REST calls answered with rest_error_status
    rest_error_status: int = 502        # a 5xx, or 429 (a rate-limit storm); the call is not processed
    rest_delay_rate: float = 0.0        # fraction of REST calls answered only after rest_delay_secs
    rest_delay_secs: float = 0.0
    lost_ack_next: int = 0              # the next N /exchange orders are processed, answer dropped
    lost_ack_rate: float = 0.0          # fraction of /exchange orders processed, answer dropped
    pause_candle_feed: bool = False     # stop pushing WS candle messages (they are lost, not queued)
    pause_market_feed: bool = False     # stop pushing WS allMids, bbo and l2Book messages


_RATES = ("rest_error_rate", "rest_delay_rate", "lost_ack_rate")


class Faults:
    """Fault settings plus the seeded decisions the server asks for per request."""

    def __init__(self, settings: FaultSettings | None = None, *, seed: int = 0) -> None:
        self.settings = FaultSettings()
        self._rng = random.Random(seed ^ 0xFA17)
        if settings is not None:
            self.update(asdict(settings))

    def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply a partial update (``{"reset": true}`` first restores defaults); return all settings."""
        changes = dict(changes)
        if changes.pop("reset", False):
            self.settings = FaultSettings()
        known = {f.name: f.type for f in fields(FaultSettings)}
        new = asdict(self.settings)
        for key, value in changes.items():
            if key not in known:
                raise FaultError(f"unknown fault {key!r}; known: {sorted(known)}")
            new[key] = _coerce(key, value, new[key])
        self.settings = FaultSettings(**new)
        return self.as_dict()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self.settings)

    def rest_error_status(self) -> int | None:
        """HTTP status to fail this REST call with, or None to serve it."""
        s = self.settings
        if s.rest_error_rate > 0 and self._rng.random() < s.rest_error_rate:
            return s.rest_error_status
        return None

    def rest_delay_secs(self) -> float:
        """Seconds to hold this REST call's answer (0 = none)."""
        s = self.settings
        if s.rest_delay_secs > 0 and s.rest_delay_rate > 0 and self._rng.random() < s.rest_delay_rate:
            return s.rest_delay_secs
        return 0.0

    def take_lost_ack(self) -> bool:
        """Whether to drop the answer of this (already processed) /exchange order."""
        s = self.settings
        if s.lost_ack_next > 0:
            self.settings = FaultSettings(**{**asdict(s), "lost_ack_next": s.lost_ack_next - 1})
            return True
        return s.lost_ack_rate > 0 and self._rng.random() < s.lost_ack_rate


def _coerce(key: str, value: Any, current: Any) -> Any:
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise FaultError(f"{key} must be true or false")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultError(f"{key} must be a number")
    if isinstance(current, int):
        if value != int(value) or value < 0:
            raise FaultError(f"{key} must be a whole number >= 0")
        value = int(value)
        if key == "rest_error_status" and not (500 <= value <= 599 or value == 429):
            raise FaultError("rest_error_status must be 429 or a 5xx status")
        return value
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise FaultError(f"{key} must be finite and >= 0")
    if key in _RATES and value > 1:
        raise FaultError(f"{key} must be within 0..1")
    return value
