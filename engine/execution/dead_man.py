"""The venue's dead man's switch (`scheduleCancel`): armed from the loop's heartbeat where the
venue allows it, cleared while protective orders rest, said once when refused.

Why the clearing: `scheduleCancel` cancels every open order of the account when it fires, the
protective stop-loss and take-profit triggers included (it is not position-aware). Armed while a
position is protected, a dead daemon would leave that position naked a minute later, the
opposite of what protection is for. So the switch is armed only while the account holds no
position and no protective order rests (then it cancels whatever else of ours could rest:
entries are IOC, so normally nothing), and cleared as soon as a position opens, before its stop
is placed; while the daemon lives each beat pushes the time out before it
fires, so it fires only when the daemon is dead (the venue allows 10 fires a UTC day).

Where the venue refuses (below its traded-volume gate, or its daily fire cap), the refusal is
alerted once and the switch left alone until `retry_after_ms` (the next UTC day for the cap):
the protective orders are what guards the positions then. `plan_beat` is the pure decision;
`DeadManSwitch` the shell around the broker's `schedule_cancel`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from engine.config.env import env_float
from engine.enums import AlertKind
from engine.execution.protection import AlertPort
from engine.runtime.clock import wall_ms
from engine.venue.exchange_client import ExchangeAccepted, ExchangeOutcome, ExchangeRejected

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
MIN_LEAD_MS = 5_000  # the venue refuses a time less than 5 s ahead


class SwitchState(StrEnum):
    UNKNOWN = "unknown"  # nothing sent yet this run (the venue may hold an old schedule)
    ARMED = "armed"
    CLEARED = "cleared"
    REFUSED = "refused"  # the venue said no: leave it until `retry_at_ms`


class BeatStep(StrEnum):
    NONE = "none"
    ARM = "arm"
    CLEAR = "clear"


@dataclass(frozen=True, slots=True, kw_only=True)
class SwitchConfig:
    """`window_secs`: how far ahead each arm sets the cancel time (0 = never arm;
    AI_QUANT_SCHEDULE_CANCEL_SECS, default 120); re-armed when less than half of it is left;
    `refused_retry_secs`: how long a volume-gate refusal is left alone (1 hour)."""

    window_secs: float = 120.0
    refused_retry_secs: float = 3600.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SwitchConfig:
        """Raise ConfigError naming the variable for a bad value."""
        return cls(window_secs=env_float("AI_QUANT_SCHEDULE_CANCEL_SECS", 120.0, env, lo=0.0, hi=86_400.0))


@dataclass(frozen=True, slots=True, kw_only=True)
class SwitchStatus:
    state: SwitchState = SwitchState.UNKNOWN
    armed_until_ms: int | None = None
    retry_at_ms: int | None = None


def plan_beat(
    status: SwitchStatus, *, now_ms: int, protected: bool, config: SwitchConfig
) -> tuple[BeatStep, int]:
    """Return (what to send now, the cancel time for an ARM). Pure."""
    window_ms = int(config.window_secs * 1000)
    if window_ms < MIN_LEAD_MS:
        return BeatStep.NONE, 0
    if status.state is SwitchState.REFUSED and (status.retry_at_ms is None or now_ms < status.retry_at_ms):
        return BeatStep.NONE, 0
    if protected:
        # An armed (or, after a restart, possibly armed) switch would cancel the stops: clear it.
        clear = status.state in (SwitchState.ARMED, SwitchState.UNKNOWN, SwitchState.REFUSED)
        return (BeatStep.CLEAR, 0) if clear else (BeatStep.NONE, 0)
    due = status.state is not SwitchState.ARMED or status.armed_until_ms is None or (
        status.armed_until_ms - now_ms < window_ms // 2)
    return (BeatStep.ARM, now_ms + window_ms) if due else (BeatStep.NONE, 0)


def after_refusal(message: str, now_ms: int, config: SwitchConfig) -> SwitchStatus:
    """The status after the venue refused: a daily-cap refusal waits for the next UTC day."""
    if "day" in message.lower() or "daily" in message.lower():
        retry = (now_ms // DAY_MS + 1) * DAY_MS
    else:
        retry = now_ms + int(config.refused_retry_secs * 1000)
    return SwitchStatus(state=SwitchState.REFUSED, retry_at_ms=retry)


class DeadManSwitch:
    """Calls `schedule_cancel(time_ms | None)` (LiveBroker.schedule_cancel) as `plan_beat` says."""

    def __init__(
        self,
        *,
        schedule_cancel: Callable[[int | None], ExchangeOutcome] | None,
        alerter: AlertPort | None = None,
        config: SwitchConfig | None = None,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self._send = schedule_cancel
        self._alerter = alerter
        self.config = config or SwitchConfig()
        self._clock_ms = clock_ms
        self.status = SwitchStatus()
        self._refusal_alerted = False

    def beat(self, *, protected: bool) -> BeatStep:
        """One heartbeat: arm, re-arm, clear or nothing; return what was sent. Never raises for a
        venue answer (an ambiguous or unsent one is retried at the next beat)."""
        if self._send is None:
            return BeatStep.NONE  # dry_live: nothing can be sent
        now = self._clock_ms()
        step, when = plan_beat(self.status, now_ms=now, protected=protected, config=self.config)
        if step is BeatStep.NONE:
            return step
        outcome = self._send(when if step is BeatStep.ARM else None)
        if isinstance(outcome, ExchangeAccepted):
            before = self.status.state
            self.status = (SwitchStatus(state=SwitchState.ARMED, armed_until_ms=when) if step is BeatStep.ARM
                           else SwitchStatus(state=SwitchState.CLEARED))  # fmt: skip
            if self.status.state is not before:  # a re-arm is not news
                log.info("scheduleCancel %s%s", step.value, f" until={when}" if when else "")
            self._refusal_alerted = False
        elif isinstance(outcome, ExchangeRejected):
            self.status = after_refusal(outcome.message, now, self.config)
            self._refused(outcome.message)
        return step

    def _refused(self, message: str) -> None:
        if self._refusal_alerted:
            return
        self._refusal_alerted = True
        log.warning("scheduleCancel refused by the venue; relying on protective orders: %s", message[:200])
        if self._alerter is not None:
            self._alerter.send(
                AlertKind.RISK, "scheduleCancel refused by the venue: relying on protective orders",
                {"reason": message[:200]},
            )  # fmt: skip
