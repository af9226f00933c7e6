"""The health guard (reference §1.11): turns "the fill path is sick" into one alert and a kill.

Pure logic, no I/O: the caller feeds observations with a clock and acts on what comes back
(engine/tick/protections.py sends the alerts and applies the kills to the RiskManager).

- `HealthMonitor.findings(sample, now_ms)` turns one iteration's observations (did the fill ingest
  work, how many fills wait to be ingested, which ledger fills no intent explains) into findings:
  `pending_fills` (backlog >= limit), `fill_ingest_failed` (N consecutive failures) and
  `unmatched_fills` (>= N unexplained fills inside the window, suppressed for a grace period after
  start-up because the start-up backfill yields fills whose intents are not linked yet).
- `HealthGuard.observe(findings, now_ms)` is edge-triggered per key: a key that is already active
  only refreshes its last-seen time, so a condition that lasts many ticks is one activation. Each
  activation carries the kill the key is configured for (applied on every activation, fail closed;
  the reference only killed when the alert was not in cooldown) and whether to notify (at most one
  alert per key per cooldown). `resolve(now_ms)` retires keys not seen for `resolve_after_secs`;
  resolving never lifts a kill it caused (only an explicit CLEAR does).

Settings keep the reference's names (AI_QUANT_HEALTH_*); kill modes are `close_only` (REDUCING)
or `halt_all` (HALTED, exits blocked too). `AI_QUANT_HEALTH_GUARD=0` turns the fill-path monitor
off; the guard still carries the keys engine/tick/protections.py raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.config.env import env_bool, env_enum, env_float, env_int
from engine.enums import HealthKey, KillCommand


def _kill_mode(name: str, env: Mapping[str, str]) -> KillCommand:
    mode = env_enum(name, KillCommand, KillCommand.CLOSE_ONLY, env)
    return KillCommand.CLOSE_ONLY if mode is KillCommand.CLEAR else mode


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthSettings:
    """Health-guard knobs (reference §1.11 / §19 defaults). A kill flag off means alert only."""

    enabled: bool = True
    alert_cooldown_secs: float = 300.0
    resolve_after_secs: float = 600.0  # 0: a key stays active until restart
    pending_fills_to_kill: int = 20_000
    pending_fills_kill: bool = True
    pending_fills_kill_mode: KillCommand = KillCommand.CLOSE_ONLY
    fill_ingest_fails_to_kill: int = 5
    fill_ingest_kill: bool = True
    fill_ingest_kill_mode: KillCommand = KillCommand.CLOSE_ONLY
    unmatched_window_secs: float = 900.0
    unmatched_alert_n: int = 1
    unmatched_kill: bool = False
    unmatched_kill_mode: KillCommand = KillCommand.CLOSE_ONLY
    unmatched_grace_secs: float = 120.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> HealthSettings:
        """Read AI_QUANT_HEALTH_*; raise ConfigError naming a bad variable."""
        return cls(
            enabled=env_bool("AI_QUANT_HEALTH_GUARD", True, env),
            alert_cooldown_secs=env_float(
                "AI_QUANT_HEALTH_ALERT_COOLDOWN_S", 300.0, env, lo=0.0, hi=86_400.0
            ),
            resolve_after_secs=env_float("AI_QUANT_HEALTH_RESOLVE_AFTER_S", 600.0, env, lo=0.0, hi=86_400.0),
            pending_fills_to_kill=env_int(
                "AI_QUANT_HEALTH_PENDING_FILLS_TO_KILL", 20_000, env, lo=1, hi=10_000_000
            ),
            pending_fills_kill=env_bool("AI_QUANT_HEALTH_PENDING_FILLS_KILL", True, env),
            pending_fills_kill_mode=_kill_mode("AI_QUANT_HEALTH_PENDING_FILLS_KILL_MODE", env),
            fill_ingest_fails_to_kill=env_int(
                "AI_QUANT_HEALTH_FILL_INGEST_FAILS_TO_KILL", 5, env, lo=1, hi=1_000_000
            ),
            fill_ingest_kill=env_bool("AI_QUANT_HEALTH_FILL_INGEST_KILL", True, env),
            fill_ingest_kill_mode=_kill_mode("AI_QUANT_HEALTH_FILL_INGEST_KILL_MODE", env),
            unmatched_window_secs=env_float(
                "AI_QUANT_HEALTH_UNMATCHED_WINDOW_S", 900.0, env, lo=1.0, hi=604_800.0
            ),
            unmatched_alert_n=env_int("AI_QUANT_HEALTH_UNMATCHED_ALERT_N", 1, env, lo=1, hi=1_000_000),
            unmatched_kill=env_bool("AI_QUANT_HEALTH_UNMATCHED_KILL", False, env),
            unmatched_kill_mode=_kill_mode("AI_QUANT_HEALTH_UNMATCHED_KILL_MODE", env),
            unmatched_grace_secs=env_float(
                "AI_QUANT_HEALTH_UNMATCHED_GRACE_S", 120.0, env, lo=0.0, hi=86_400.0
            ),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthSample:
    """One iteration's observations of the fill path (None = not observed this time).

    `ingest_ok`: whether moving the venue's fills into the ledger worked; `pending_fills`: fills
    received but not yet in the ledger; `unmatched_fill_ms`: times (epoch ms) of ledger fills that
    no intent explains (orphans), whatever their age.
    """

    ingest_ok: bool | None = None
    pending_fills: int | None = None
    unmatched_fill_ms: Sequence[int] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthFinding:
    """A key that is unhealthy now, what to say, and the kill it calls for (None = alert only)."""

    key: HealthKey
    message: str
    kill: KillCommand | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthActivation:
    """A key that just became active: apply `finding.kill` (if any); alert when `notify`."""

    finding: HealthFinding
    notify: bool


class HealthMonitor:
    """Turns `HealthSample`s into findings; remembers the ingest failure streak."""

    def __init__(self, settings: HealthSettings, started_ms: int) -> None:
        self._settings = settings
        self._started_ms = started_ms
        self._fail_streak = 0

    @property
    def fail_streak(self) -> int:
        return self._fail_streak

    def findings(self, sample: HealthSample, now_ms: int) -> list[HealthFinding]:
        """Return the unhealthy keys this sample shows (empty when the guard is off)."""
        s = self._settings
        if sample.ingest_ok is not None:
            self._fail_streak = 0 if sample.ingest_ok else self._fail_streak + 1
        if not s.enabled:
            return []
        out: list[HealthFinding] = []
        if sample.pending_fills is not None and sample.pending_fills >= s.pending_fills_to_kill:
            out.append(HealthFinding(
                key=HealthKey.PENDING_FILLS,
                message=f"{sample.pending_fills} fills wait for the ledger (limit {s.pending_fills_to_kill})",
                kill=s.pending_fills_kill_mode if s.pending_fills_kill else None,
                details={"pending_fills": sample.pending_fills, "limit": s.pending_fills_to_kill},
            ))  # fmt: skip
        if self._fail_streak >= s.fill_ingest_fails_to_kill:
            out.append(HealthFinding(
                key=HealthKey.FILL_INGEST_FAILED,
                message=f"fill ingest failed {self._fail_streak} times in a row",
                kill=s.fill_ingest_kill_mode if s.fill_ingest_kill else None,
                details={"consecutive_failures": self._fail_streak, "limit": s.fill_ingest_fails_to_kill},
            ))  # fmt: skip
        unmatched = self._unmatched(sample, now_ms)
        if unmatched is not None:
            out.append(unmatched)
        return out

    def _unmatched(self, sample: HealthSample, now_ms: int) -> HealthFinding | None:
        s = self._settings
        if now_ms - self._started_ms < s.unmatched_grace_secs * 1000:
            return None
        cutoff = now_ms - s.unmatched_window_secs * 1000
        recent = sorted(t for t in sample.unmatched_fill_ms if t >= cutoff)
        if len(recent) < s.unmatched_alert_n:
            return None
        return HealthFinding(
            key=HealthKey.UNMATCHED_FILLS,
            message=f"{len(recent)} fills in the last {s.unmatched_window_secs:.0f}s match no intent",
            kill=s.unmatched_kill_mode if s.unmatched_kill else None,
            details={"count": len(recent), "sample_fill_ms": recent[-5:], "threshold": s.unmatched_alert_n},
        )


class HealthGuard:
    """Edge-triggered health keys with a per-key alert cooldown and time-based resolution."""

    def __init__(self, settings: HealthSettings) -> None:
        self._settings = settings
        self._active: set[HealthKey] = set()
        self._last_seen: dict[HealthKey, int] = {}
        self._last_alert: dict[HealthKey, int] = {}

    @property
    def settings(self) -> HealthSettings:
        return self._settings

    @property
    def active(self) -> frozenset[HealthKey]:
        return frozenset(self._active)

    def observe(self, findings: Sequence[HealthFinding], now_ms: int) -> list[HealthActivation]:
        """Record findings; return the keys that became active now (each once until resolved).

        Not gated by `enabled`: that switch silences the fill-path monitor only, never the keys the
        protections raise themselves (a stuck close-all, an unwritten risk state)."""
        out = []
        for finding in findings:
            key = finding.key
            self._last_seen[key] = now_ms
            if key in self._active:
                continue
            self._active.add(key)
            last = self._last_alert.get(key)
            notify = last is None or now_ms - last > self._settings.alert_cooldown_secs * 1000
            if notify:
                self._last_alert[key] = now_ms
            out.append(HealthActivation(finding=finding, notify=notify))
        return out

    def resolve(self, now_ms: int) -> list[HealthKey]:
        """Deactivate keys not seen for `resolve_after_secs` (0 disables); return them, sorted."""
        after = self._settings.resolve_after_secs
        if after <= 0:
            return []
        done = sorted(k for k in self._active if now_ms - self._last_seen.get(k, now_ms) >= after * 1000)
        self._active.difference_update(done)
        return done
