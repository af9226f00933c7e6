"""Shard, pool and tick metrics through `ray.util.metrics`, and a no-op twin for code without Ray.

Each name says what it times. Shards (tag `shard`): `aiq_shard_symbols` (gauge),
`aiq_shard_evaluate_ms` (histogram, time inside one evaluate call), `aiq_shard_candles_applied`
(counter), `aiq_shard_rehydrates` (counter, symbols restored from a checkpoint or rebuilt; tag
`kind`). Pool: `aiq_pool_faults` (counter, tags `shard`, `fault` = ShardFault value),
`aiq_pool_round_ms` (histogram, one shard round: every shard call sent until the last answer or
the deadline). Driver, one per engine tick (`TICK_METRICS`, from `TickReport.metrics()`):
`aiq_tick_total_ms` (the whole tick) and its phases `aiq_tick_{keys,shards,exits,entries,
funding}_ms` (histograms), what the tick did (`aiq_tick_{opened,added,reduced,closed,blocked,
errors}`, counters) and where it left the account (`aiq_tick_symbols`, `aiq_tick_evaluated`,
`aiq_open_positions`, `aiq_cash_usd`, `aiq_equity_usd`, `aiq_market_blind`, gauges). They show on the Ray
dashboard's metrics page and each node's Prometheus export (with Ray's `ray_` prefix).

`shard_metrics()` / `pool_metrics()` / `tick_metrics()` return the Ray-backed set when Ray is
initialised in this process and the no-op set otherwise, so `ShardCore`, the in-process executor
and a paper run without Ray never need it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

log = logging.getLogger(__name__)

_LATENCY_BOUNDS_MS = [0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0]


class MetricKind(StrEnum):
    HISTOGRAM = "histogram"  # a duration per tick, in ms
    COUNTER = "counter"  # added up over ticks
    GAUGE = "gauge"  # the value at the last tick


TICK_METRICS: dict[str, tuple[MetricKind, str, str]] = {
    # TickReport.metrics() key: (kind, exported name, what it measures)
    "tick_total_ms": (MetricKind.HISTOGRAM, "aiq_tick_total_ms", "one whole engine tick (ms)"),
    "tick_keys_ms": (MetricKind.HISTOGRAM, "aiq_tick_keys_ms", "tick phase: reading candle keys (ms)"),
    "tick_shards_ms": (MetricKind.HISTOGRAM, "aiq_tick_shards_ms", "tick phase: shard decisions (ms)"),
    "tick_exits_ms": (MetricKind.HISTOGRAM, "aiq_tick_exits_ms", "tick phase: exits of open positions (ms)"),
    "tick_entries_ms": (MetricKind.HISTOGRAM, "aiq_tick_entries_ms", "tick phase: entries (ms)"),
    "tick_funding_ms": (MetricKind.HISTOGRAM, "aiq_tick_funding_ms", "tick phase: funding and events (ms)"),
    "opened": (MetricKind.COUNTER, "aiq_tick_opened", "positions opened"),
    "added": (MetricKind.COUNTER, "aiq_tick_added", "positions added to"),
    "reduced": (MetricKind.COUNTER, "aiq_tick_reduced", "positions reduced"),
    "closed": (MetricKind.COUNTER, "aiq_tick_closed", "positions closed"),
    "blocked": (MetricKind.COUNTER, "aiq_tick_blocked", "orders blocked by a gate or the risk manager"),
    "errors": (MetricKind.COUNTER, "aiq_tick_errors", "per-symbol errors contained in a tick"),
    "symbols": (MetricKind.GAUGE, "aiq_tick_symbols", "symbols the last tick looked at"),
    "evaluated": (MetricKind.GAUGE, "aiq_tick_evaluated", "symbols with a shard decision in the last tick"),
    "open_positions": (MetricKind.GAUGE, "aiq_open_positions", "open positions after the last tick"),
    "cash_usd": (MetricKind.GAUGE, "aiq_cash_usd", "cash after the last tick (USD)"),
    "equity_usd": (MetricKind.GAUGE, "aiq_equity_usd", "equity after the last tick (USD)"),
    "market_blind": (MetricKind.GAUGE, "aiq_market_blind", "1 while the driver is blind (no usable candles)"),
}


class ShardMetrics:
    """Metrics a shard records; every method is a no-op in this base class."""

    def symbols(self, shard: int, count: int) -> None:
        """Record how many symbols the shard currently holds state for."""

    def evaluate_ms(self, shard: int, elapsed_ms: float) -> None:
        """Record the time one evaluate call took inside the shard, in ms."""

    def candles_applied(self, shard: int, count: int) -> None:
        """Count candles applied to indicator state."""

    def rehydrates(self, shard: int, kind: str, count: int) -> None:
        """Count symbols restored (`checkpoint`, `rebuild`, `gap`)."""


class PoolMetrics:
    """Metrics the driver-side pool records; every method is a no-op in this base class."""

    def fault(self, shard: int, fault: str) -> None:
        """Count one shard fault (late, dead, busy, killed)."""

    def round_ms(self, elapsed_ms: float) -> None:
        """Record one shard round (every shard call sent until the last answer or the deadline), in ms."""


class TickMetrics:
    """Metrics of one engine tick; the no-op base class."""

    def record(self, values: Mapping[str, float]) -> None:
        """Record a tick's `TickReport.metrics()` (keys of `TICK_METRICS`; others are ignored)."""


class _RayShardMetrics(ShardMetrics):
    def __init__(self, metrics: Any) -> None:
        self._symbols = metrics.Gauge("aiq_shard_symbols", "symbols held by the shard", tag_keys=("shard",))
        self._evaluate = metrics.Histogram(
            "aiq_shard_evaluate_ms", "time inside one evaluate call (ms)",
            boundaries=_LATENCY_BOUNDS_MS, tag_keys=("shard",),
        )
        self._applied = metrics.Counter("aiq_shard_candles_applied", "candles applied", tag_keys=("shard",))
        self._rehydrates = metrics.Counter(
            "aiq_shard_rehydrates", "symbols restored or rebuilt", tag_keys=("shard", "kind")
        )

    def symbols(self, shard: int, count: int) -> None:
        self._symbols.set(count, tags={"shard": str(shard)})

    def evaluate_ms(self, shard: int, elapsed_ms: float) -> None:
        self._evaluate.observe(elapsed_ms, tags={"shard": str(shard)})

    def candles_applied(self, shard: int, count: int) -> None:
        if count:
            self._applied.inc(count, tags={"shard": str(shard)})

    def rehydrates(self, shard: int, kind: str, count: int) -> None:
        if count:
            self._rehydrates.inc(count, tags={"shard": str(shard), "kind": kind})


class _RayPoolMetrics(PoolMetrics):
    def __init__(self, metrics: Any) -> None:
        self._faults = metrics.Counter("aiq_pool_faults", "shard faults seen by the pool",
                                       tag_keys=("shard", "fault"))
        self._round = metrics.Histogram(
            "aiq_pool_round_ms", "one shard round: calls sent until the last answer or the deadline (ms)",
            boundaries=_LATENCY_BOUNDS_MS,
        )

    def fault(self, shard: int, fault: str) -> None:
        self._faults.inc(1, tags={"shard": str(shard), "fault": fault})

    def round_ms(self, elapsed_ms: float) -> None:
        self._round.observe(elapsed_ms)


class _RayTickMetrics(TickMetrics):
    def __init__(self, metrics: Any) -> None:
        self._metrics: dict[str, tuple[MetricKind, Any]] = {}
        for key, (kind, name, description) in TICK_METRICS.items():
            if kind is MetricKind.HISTOGRAM:
                metric = metrics.Histogram(name, description, boundaries=_LATENCY_BOUNDS_MS)
            elif kind is MetricKind.COUNTER:
                metric = metrics.Counter(name, description)
            else:
                metric = metrics.Gauge(name, description)
            self._metrics[key] = (kind, metric)

    def record(self, values: Mapping[str, float]) -> None:
        try:
            for key, value in values.items():
                entry = self._metrics.get(key)
                if entry is not None:
                    _put(*entry, float(value))
        except Exception as exc:  # metrics are diagnostics: never let them stop the loop
            log.warning("tick metrics not recorded: %s", exc)


def _put(kind: MetricKind, metric: Any, value: float) -> None:
    if kind is MetricKind.HISTOGRAM:
        metric.observe(value)
    elif kind is MetricKind.COUNTER:
        if value > 0:
            metric.inc(value)
    else:
        metric.set(value)


def _ray_metrics_module() -> Any | None:
    ray = sys.modules.get("ray")  # not imported means not initialised: don't pay Ray's import here
    if ray is None or not ray.is_initialized():
        return None
    from ray.util import metrics

    return metrics


def shard_metrics() -> ShardMetrics:
    """Return Ray-backed shard metrics when Ray is up in this process, else the no-op set."""
    metrics = _ray_metrics_module()
    if metrics is None:
        return ShardMetrics()
    try:
        return _RayShardMetrics(metrics)
    except Exception as exc:  # metrics are diagnostics: never let them stop a shard
        log.warning("shard metrics unavailable, using no-op: %s", exc)
        return ShardMetrics()


def pool_metrics() -> PoolMetrics:
    """Return Ray-backed pool metrics when Ray is up in this process, else the no-op set."""
    metrics = _ray_metrics_module()
    if metrics is None:
        return PoolMetrics()
    try:
        return _RayPoolMetrics(metrics)
    except Exception as exc:  # metrics are diagnostics: never let them stop the driver
        log.warning("pool metrics unavailable, using no-op: %s", exc)
        return PoolMetrics()


def tick_metrics() -> TickMetrics:
    """Return Ray-backed tick metrics when Ray is up in this process, else the no-op set."""
    metrics = _ray_metrics_module()
    if metrics is None:
        return TickMetrics()
    try:
        return _RayTickMetrics(metrics)
    except Exception as exc:  # metrics are diagnostics: never let them stop the driver
        log.warning("tick metrics unavailable, using no-op: %s", exc)
        return TickMetrics()
