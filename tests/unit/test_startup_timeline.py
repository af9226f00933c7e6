"""Start-up breakdown (engine.runtime.startup_timeline), background Ray start (engine.runtime.ray_boot)."""

from __future__ import annotations

import threading

import pytest

from engine.runtime.ray_boot import RayBoot, wants_ray
from engine.runtime.ray_runtime import RayAttachment, RayInfo
from engine.runtime.startup_timeline import StartupTimeline, parse_phases, process_age_secs


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_timeline_marks_sequential_phases_and_keeps_background_ones_apart():
    clock = FakeClock()
    timeline = StartupTimeline(clock, age=2.0)
    clock.now += 1.5
    assert timeline.mark("imports") == 1.5  # adds to the process age already counted as imports
    clock.now += 0.25
    timeline.mark("config")
    timeline.add("ray_init", 7.0)  # ran in a thread beside the others
    clock.now += 4.0
    timeline.mark("shards")
    assert timeline.phases() == {"imports": 3.5, "config": 0.25, "ray_init": 7.0, "shards": 4.0}
    assert timeline.elapsed() == 7.75  # total since the process started, not the sum of the fields
    line = timeline.line()
    assert line.startswith("startup phases total=7.750 imports=3.500 ")


def test_parse_phases_reads_the_last_line_of_a_log_and_none_without_one():
    log = ("2026-01-01T00:00:00.000Z INFO [paper] engine.daemon: startup phases total=9.000 imports=1.000\n"
           "2026-01-01T00:00:05.000Z INFO [paper] engine.daemon: tick=1 symbols=3 evaluated=0\n"
           "2026-01-01T00:00:09.000Z INFO [paper] engine.daemon: startup phases total=4.250 imports=0.500 "
           "ray_init=2.125 shard_restore=0.000\n")
    assert parse_phases(log) == {"total": 4.25, "imports": 0.5, "ray_init": 2.125, "shard_restore": 0.0}
    assert parse_phases("tick=1 symbols=3\n") is None
    assert parse_phases(StartupTimeline(FakeClock()).line()) == {"total": 0.0}


def test_process_age_is_read_from_proc():
    age = process_age_secs()
    assert age is not None and 0.0 <= age < 24 * 3600.0
    assert process_age_secs("/nonexistent") is None


INFO = RayInfo(RayAttachment.EMBEDDED, "127.0.0.1:1", "aiq", None)


def test_ray_boot_hands_over_its_result_and_shuts_ray_down_once():
    """The thread that started Ray lives until Ray is shut down: Ray's GCS and raylet carry
    PR_SET_PDEATHSIG, which fires when the *thread* that forked them exits."""
    gate = threading.Event()
    shutdowns: list[int] = []
    booted: list[threading.Thread] = []

    def connect() -> RayInfo:
        booted.append(threading.current_thread())
        gate.wait(60)
        return INFO

    def shutdown() -> None:
        assert booted[0].is_alive()  # Ray's processes are still tied to a live thread
        shutdowns.append(1)

    boot = RayBoot(connect, shutdown).start()
    gate.set()
    assert boot.result(timeout=60) is INFO and boot.secs is not None
    assert booted[0].is_alive() and booted[0] is not threading.current_thread()
    boot.close()
    booted[0].join(60)
    assert not booted[0].is_alive()
    boot.close()  # the node's stop and cli's finally both call it
    assert shutdowns == [1]
    with pytest.raises(RuntimeError, match="closed"):
        boot.result()


def test_ray_boot_that_failed_reraises_and_shuts_nothing_down():
    shutdowns: list[int] = []

    def connect() -> RayInfo:
        raise ConnectionError("gcs did not answer")

    boot = RayBoot(connect, lambda: shutdowns.append(1)).start()
    with pytest.raises(ConnectionError, match="gcs"):
        boot.result(timeout=60)
    boot.close()
    assert shutdowns == []


def test_close_during_the_start_waits_for_it_then_shuts_down():
    """A stop (or a config error) while Ray is still starting: no embedded Ray is left behind."""
    gate = threading.Event()
    shutdowns: list[int] = []

    def connect() -> RayInfo:
        gate.wait(60)
        return INFO

    boot = RayBoot(connect, lambda: shutdowns.append(1)).start()
    closer = threading.Thread(target=boot.close)
    closer.start()
    assert shutdowns == []  # still starting: nothing to shut down yet
    gate.set()
    closer.join(60)
    assert shutdowns == [1]


def test_only_the_ray_executor_starts_ray_early():
    assert wants_ray({}) and wants_ray({"AI_QUANT_EXECUTOR": " Ray "})
    assert wants_ray({"AI_QUANT_EXECUTOR": ""})
    assert not wants_ray({"AI_QUANT_EXECUTOR": "inprocess"})
    assert not wants_ray({"AI_QUANT_EXECUTOR": "k8s"})  # the config parser exits 2 on it; start nothing
    assert not wants_ray({"AI_QUANT_RAY_EARLY_START": "0"})  # Ray then starts with the shards


def test_preload_runs_first_and_releases_the_waiter_before_the_connect_ends():
    """`python -m engine.daemon` imports its own stack only after `import ray` (the preload): one
    GIL, and Ray's start is the critical path. The waiter is released before Ray is up."""
    order: list[str] = []
    gate = threading.Event()

    def connect() -> RayInfo:
        order.append("connect")
        gate.wait(60)
        return INFO

    boot = RayBoot(connect, lambda: None, preload=lambda: order.append("preload")).start()
    assert boot.wait_preloaded(timeout=60)
    assert order[0] == "preload" and boot.preload_secs is not None
    assert boot.secs is None  # Ray itself is still starting
    gate.set()
    assert boot.result(timeout=60) is INFO and order == ["preload", "connect"]
    boot.close()


def test_a_failed_preload_still_releases_the_waiter_and_the_connect_reports_the_error():
    def preload() -> None:
        raise ImportError("no module named ray")

    def connect() -> RayInfo:
        raise ImportError("no module named ray")

    boot = RayBoot(connect, lambda: None, preload=preload).start()
    assert boot.wait_preloaded(timeout=60)  # the daemon goes on to its imports and config
    with pytest.raises(ImportError, match="ray"):
        boot.result(timeout=60)
    boot.close()


@pytest.mark.parametrize(("address", "url"), [
    (None, None), ("", None), ("127.0.0.1:8265", "http://127.0.0.1:8265"),
    ("http://10.0.0.1:8265", "http://10.0.0.1:8265"),
])
def test_dashboard_address_becomes_an_http_url(address, url):
    from engine.runtime.ray_runtime import dashboard_http_url

    assert dashboard_http_url(address) == url


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), ("", None), ("1", None), ("yes", None), ("0", False), ("off", False), (" FALSE ", False),
])
def test_embedded_dashboard_is_on_unless_turned_off(value, expected):
    from engine.runtime.ray_boot import DASHBOARD_VAR, wants_dashboard

    assert wants_dashboard({} if value is None else {DASHBOARD_VAR: value}) is expected
