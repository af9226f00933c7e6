"""Says loudly when the driver is blind: ticks go by and no decision can be made.

Three ways to be blind (issue 16, items 1 and 2):
- `redis_down`: the candle keys did not come from Redis (the hub fell back to SQLite). The shards
  read candles from Redis only, so no symbol can be decided, however long it lasts.
- `not_evaluating`: keys are due (new candles), Redis answers, yet no shard answer is usable
  (every one `missing_candle`, `store_unavailable`, `shard_dead`...). A key that is never
  decided is retried every tick, so this repeats until fixed.
- `stale_feed`: Redis answers but the sidecar's heartbeat is stale, missing or disconnected, and
  nothing was decided: the keys are frozen, so no new candle will ever be due.
- `keys_behind`: every answer says the shards are already past the driver's candle key
  (KEY_BEHIND), candle after candle: the driver reads keys from a feed that lags its own shards
  (a venue clock restarted behind the cache). Such a key is not asked again, so the ticks in
  between are idle; while this streak runs, idle ticks neither count nor end it.

Each is declared after `after_ticks` consecutive bad ticks spanning `after_secs` (one tick of
a Redis restart or of a candle racing its key is not worth an alert). While nothing was ever
decided and every answer is `no_history`, or no heartbeat was ever written (the sidecar still
starting or backfilling), the span is `warmup_secs` instead. Declaring it logs an ERROR and
sends ONE `health` alert; the status line carries `market=blind:<reason>` every tick until it
ends; the engine opens nothing while blind (`UnifiedEngine.tick`), and exits on open positions
keep running on the hub's mids (Redis → REST allMids → last close). The end is logged (no
second alert: the status line and the log carry it). Pure apart from the log and the alert
sink; the clock is injected.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from cluster.records import ShardStatus
from engine.enums import AlertKind, CandleSource, MarketHealthReason
from engine.tick.strategy_manager import AlertSink

log = logging.getLogger(__name__)


class BlindReason(StrEnum):
    REDIS_DOWN = "redis_down"
    NOT_EVALUATING = "not_evaluating"
    STALE_FEED = "stale_feed"
    KEYS_BEHIND = "keys_behind"


@dataclass(frozen=True, slots=True)
class BlindSettings:
    after_ticks: int = 3
    after_secs: float = 10.0
    warmup_secs: float = 120.0


@dataclass(frozen=True, slots=True)
class TickSight:
    """What one tick saw: where the keys came from, the shards' answers (status -> count), the feed."""

    keys_source: CandleSource
    answers: Mapping[ShardStatus, int]
    health: MarketHealthReason = MarketHealthReason.OK

    @property
    def due(self) -> int:
        return sum(self.answers.values())

    @property
    def decided(self) -> int:
        return self.answers.get(ShardStatus.OK, 0)


class BlindWatch:
    """Counts bad ticks, declares blindness once, ends it on the first healthy tick."""

    def __init__(
        self,
        alerts: AlertSink | None,
        settings: BlindSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._alerts = alerts
        self._settings = settings or BlindSettings()
        self._clock = clock
        self._streak = 0
        self._since: float | None = None
        self._ever_decided = False
        self._failures: Counter[str] = Counter()
        self._reason: BlindReason | None = None  # the reason of the current bad streak
        self.blind: BlindReason | None = None
        self.episodes = 0

    @property
    def status(self) -> str:
        """The status-line value: `ok` or `blind:<reason>`."""
        return "ok" if self.blind is None else f"blind:{self.blind.value}"

    def observe(self, sight: TickSight, tick_id: int, open_positions: int) -> BlindReason | None:
        """Account one tick; return the blindness in force after it (None = seeing)."""
        reason = _reason(sight)
        self._ever_decided |= sight.decided > 0
        if reason is None and self._reason is BlindReason.KEYS_BEHIND and _idle(sight):
            return self.blind
        self._reason = reason
        if reason is None:
            self._recover(tick_id)
            return None
        now = self._clock()
        if self._since is None:
            self._since = now
        self._streak += 1
        self._failures.update({s.value: n for s, n in sight.answers.items() if s is not ShardStatus.OK})
        if self.blind is None and self._due(sight, now - self._since):
            self._declare(reason, sight, tick_id, open_positions, now - self._since)
        return self.blind

    def _due(self, sight: TickSight, elapsed: float) -> bool:
        settings = self._settings
        starting = set(sight.answers) == {ShardStatus.NO_HISTORY} or (
            not sight.answers and sight.health is MarketHealthReason.NO_HEARTBEAT
        )
        warming = not self._ever_decided and starting
        span = settings.warmup_secs if warming else settings.after_secs
        return self._streak >= settings.after_ticks and elapsed >= span

    def _declare(
        self, reason: BlindReason, sight: TickSight, tick_id: int, open_positions: int, elapsed: float
    ) -> None:
        self.blind = reason
        self.episodes += 1
        failures = ",".join(f"{k}={v}" for k, v in sorted(self._failures.items())) or "none"
        log.error(
            "market data BLIND reason=%s ticks=%d secs=%.1f keys_source=%s feed=%s shard_answers=%s "
            "tick=%d open_positions=%d: no entries until it ends; exits keep running on mids",
            reason.value, self._streak, elapsed, sight.keys_source.value, sight.health.value, failures,
            tick_id, open_positions,
        )  # fmt: skip
        if self._alerts is not None:
            self._alerts.send(
                AlertKind.HEALTH,
                f"market data blind: {reason.value}",
                {
                    "ticks": self._streak, "secs": round(elapsed, 1), "keys_source": sight.keys_source.value,
                    "feed": sight.health.value,
                    "shard_answers": failures, "open_positions": open_positions,
                    "effect": "no entries; exits on mids",
                },
            )  # fmt: skip

    def _recover(self, tick_id: int) -> None:
        if self.blind is not None:
            elapsed = 0.0 if self._since is None else self._clock() - self._since
            log.warning(
                "market data seeing again after reason=%s ticks=%d secs=%.1f tick=%d",
                self.blind.value, self._streak, elapsed, tick_id,
            )  # fmt: skip
        self.blind = None
        self._streak = 0
        self._since = None
        self._failures.clear()


def _reason(sight: TickSight) -> BlindReason | None:
    if sight.keys_source is not CandleSource.REDIS:
        return BlindReason.REDIS_DOWN
    if sight.due > 0 and sight.decided == 0:
        if set(sight.answers) == {ShardStatus.KEY_BEHIND}:
            return BlindReason.KEYS_BEHIND
        return BlindReason.NOT_EVALUATING
    if sight.decided == 0 and sight.health is not MarketHealthReason.OK:
        return BlindReason.STALE_FEED
    return None


def _idle(sight: TickSight) -> bool:
    """Nothing was due and the feed is fine: a tick between candles, which proves nothing either way."""
    feed_ok = sight.health is MarketHealthReason.OK and sight.keys_source is CandleSource.REDIS
    return sight.due == 0 and feed_ok
