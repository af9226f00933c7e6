"""The per-tick metrics table covers the whole `TickReport.metrics()` breakdown, and the Ray-backed
recorder puts each value into the right kind of metric (a small fake of `ray.util.metrics`,
passed in; the real export is scraped in tests/e2e/test_daemon_metrics.py)."""

from __future__ import annotations

from typing import Any

from cluster.metrics import TICK_METRICS, MetricKind, PoolMetrics, TickMetrics, _RayTickMetrics, tick_metrics
from engine.enums import ReloadOutcome
from engine.tick.types import TickReport, TickTiming


def report(opened: int = 0) -> TickReport:
    return TickReport(
        tick_id=1, now_ms=0, symbols=4, evaluated=3, opened=opened, added=0, reduced=0, closed=0, blocked=0,
        errors=0, open_positions=1, cash_usd=1000.0, equity_usd=1001.5, reload=ReloadOutcome.UNCHANGED,
        timing=TickTiming(keys_ms=1.0, shards_ms=2.0, exits_ms=3.0, entries_ms=4.0, funding_ms=5.0,
                          total_ms=15.0),
    )  # fmt: skip


class _Metric:
    def __init__(self, name: str, description: str, **_kw: Any) -> None:
        self.name, self.calls = name, []

    def observe(self, value: float) -> None:
        self.calls.append(("observe", value))

    def inc(self, value: float) -> None:
        self.calls.append(("inc", value))

    def set(self, value: float) -> None:
        self.calls.append(("set", value))


class _FakeRayMetrics:
    """Stands in for `ray.util.metrics`: records every metric made and every call on it."""

    def __init__(self) -> None:
        self.made: dict[str, tuple[str, _Metric]] = {}

    def _make(self, kind: str, name: str, description: str, **kw: Any) -> _Metric:
        metric = _Metric(name, description, **kw)
        self.made[name] = (kind, metric)
        return metric

    def Histogram(self, name: str, description: str, **kw: Any) -> _Metric:
        return self._make("histogram", name, description, **kw)

    def Counter(self, name: str, description: str, **kw: Any) -> _Metric:
        return self._make("counter", name, description, **kw)

    def Gauge(self, name: str, description: str, **kw: Any) -> _Metric:
        return self._make("gauge", name, description, **kw)


def test_tick_metrics_table_covers_every_key_of_the_tick_report() -> None:
    assert set(TICK_METRICS) == set(report().metrics())
    names = [name for _kind, name, _ in TICK_METRICS.values()]
    assert len(set(names)) == len(names) and all(n.startswith("aiq_") for n in names)
    # Durations are histograms named in ms; nothing else is.
    assert {k for k, (kind, _, _) in TICK_METRICS.items() if kind is MetricKind.HISTOGRAM} == {
        k for k in TICK_METRICS if k.endswith("_ms")
    }


def test_ray_tick_metrics_observe_durations_count_actions_and_set_levels() -> None:
    fake = _FakeRayMetrics()
    recorder = _RayTickMetrics(fake)
    recorder.record(report(opened=2).metrics())
    recorder.record(report(opened=0).metrics())
    assert {fake.made[name][0] for _k, name, _ in TICK_METRICS.values()} == {"histogram", "counter", "gauge"}
    assert fake.made["aiq_tick_total_ms"][1].calls == [("observe", 15.0), ("observe", 15.0)]
    assert fake.made["aiq_tick_shards_ms"][1].calls == [("observe", 2.0), ("observe", 2.0)]
    assert fake.made["aiq_tick_opened"][1].calls == [("inc", 2.0)]  # a zero adds nothing
    assert fake.made["aiq_equity_usd"][1].calls == [("set", 1001.5), ("set", 1001.5)]
    for key, (kind, name, _) in TICK_METRICS.items():
        assert fake.made[name][0] == kind.value, key


def test_without_ray_the_recorders_are_no_ops() -> None:
    import ray

    from cluster.metrics import _RayTickMetrics

    # A whole-suite run has the shared Ray fixture up in this process; alone, Ray is down.
    recorder = tick_metrics()
    assert type(recorder) is (_RayTickMetrics if ray.is_initialized() else TickMetrics)
    recorder.record(report().metrics())
    PoolMetrics().round_ms(1.0)
