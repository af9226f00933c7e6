"""Shard and pool metrics through `ray.util.metrics`, and a no-op twin for code running without Ray.

Names (all tagged with `shard`): `aiq_shard_symbols` (gauge), `aiq_shard_evaluate_ms`
(histogram, time inside one evaluate call), `aiq_shard_candles_applied` (counter),
`aiq_shard_rehydrates` (counter, symbols restored from a checkpoint or rebuilt; tag `kind`),
`aiq_pool_faults` (counter, tag `fault` = ShardFault value), `aiq_pool_tick_ms` (histogram, one
whole tick in the driver). They show on the Ray dashboard's metrics page / Prometheus export.

`shard_metrics()` / `pool_metrics()` return the Ray-backed set when Ray is initialised in this
process and the no-op set otherwise, so `ShardCore` and the in-process executor never need Ray.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger(__name__)

_LATENCY_BOUNDS_MS = [0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0]


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

    def tick_ms(self, elapsed_ms: float) -> None:
        """Record one whole tick (submit to last result or deadline), in ms."""


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
        self._tick = metrics.Histogram("aiq_pool_tick_ms", "one tick in the driver (ms)",
                                       boundaries=_LATENCY_BOUNDS_MS)

    def fault(self, shard: int, fault: str) -> None:
        self._faults.inc(1, tags={"shard": str(shard), "fault": fault})

    def tick_ms(self, elapsed_ms: float) -> None:
        self._tick.observe(elapsed_ms)


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
