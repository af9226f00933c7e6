"""The Prometheus export, scraped: a paper daemon with its shards on Ray (embedded, started by
the daemon in its own RAY_TMPDIR) against the simulator; the node's metrics endpoint must show
the pool's shard round, the shards' evaluate time, and every per-tick metric of `TICK_METRICS`
(the `TickReport.metrics()` breakdown the loop records) with values. Ray's metrics agent exports
on its own schedule (every RAY_metrics_report_interval_ms, set to 1 s here instead of Ray's 10 s),
so the scrape is polled with a bound."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from cluster.metrics import TICK_METRICS, MetricKind
from tests.e2e.test_daemon_paper import Daemon, daemon_env

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})? (\S+)$")


@pytest.fixture
def ray_tmp() -> Iterator[Path]:
    """A short temp dir for the daemon's Ray (its socket paths must stay under 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="aiqm", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def scrape(ray_tmp: Path) -> dict[str, float]:
    """Sum of the samples of each metric on the node's Prometheus endpoint ({} if not up yet)."""
    ports = list(ray_tmp.glob("ray/session_*/metrics_export_port_*"))
    if not ports:
        return {}
    port = int(ports[0].read_text().strip())
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except requests.RequestException:
        return {}
    totals: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match.group(1).startswith("ray_aiq_"):
            totals[match.group(1)] = totals.get(match.group(1), 0.0) + float(match.group(2))
    return totals


def exported_name(kind: MetricKind, name: str) -> str:
    """The Prometheus sample that proves a value: a histogram's count, a counter's total."""
    suffix = {MetricKind.HISTOGRAM: "_count", MetricKind.COUNTER: "_total", MetricKind.GAUGE: ""}[kind]
    return f"ray_{name}{suffix}"


@pytest.mark.slow
def test_prometheus_endpoint_shows_pool_shard_and_tick_metrics_with_values(tmp_path, ray_tmp):
    env = daemon_env(tmp_path, AI_QUANT_EXECUTOR="ray", AI_QUANT_SHARDS="1", RAY_TMPDIR=str(ray_tmp),
                     RAY_metrics_report_interval_ms="1000")  # export every 1 s, not 10 s: same metrics
    daemon = Daemon(env, tmp_path / "daemon.log")
    try:
        daemon.wait_log(r"engine started mode=paper .* executor=ray", timeout=180)
        daemon.wait_log(r"tick=3 ", timeout=120)
        timed = [exported_name(k, n) for k, n, _ in TICK_METRICS.values() if k is MetricKind.HISTOGRAM]
        wanted = ["ray_aiq_pool_round_ms_count", "ray_aiq_shard_evaluate_ms_count", *timed]
        gauges = ["ray_aiq_tick_symbols", "ray_aiq_tick_evaluated", "ray_aiq_equity_usd"]
        seen: dict[str, float] = {}

        def exported() -> bool:
            seen.clear()
            seen.update(scrape(ray_tmp))
            return all(seen.get(name, 0.0) > 0 for name in wanted + gauges)

        daemon.wait_for(exported, timeout=120, label=f"{wanted + gauges} on the Prometheus endpoint")
        every = {exported_name(k, n) for k, n, _ in TICK_METRICS.values()}
        counters = {exported_name(k, n) for k, n, _ in TICK_METRICS.values() if k is MetricKind.COUNTER}
        # Every gauge and histogram of the tick is there; a counter shows once it first counts.
        assert every - counters <= set(seen), sorted(every - counters - set(seen))
        assert not any("aiq_pool_tick_ms" in name for name in seen)  # the old, misleading name
        children = daemon.descendants()
        assert daemon.terminate() == 0
        _gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"orphans after SIGTERM: {[(p.pid, p.name()) for p in alive]}"
    finally:
        daemon.cleanup()
