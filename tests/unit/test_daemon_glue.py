"""The daemon's pure glue: mode gate, venue defaults, runtime settings, log format, config forwarding."""

from __future__ import annotations

import io
import logging
import signal
import time

import pytest

from cluster.shard_core import ConfigSource
from engine.config.env import ConfigError
from engine.daemon.cli import read_mode
from engine.daemon.services import (
    ConfigForwarding,
    ExecutorKind,
    RuntimeSettings,
    Venue,
    apply_venue_defaults,
)
from engine.daemon.stop import StopFlag
from engine.enums import Mode
from engine.runtime.logging_setup import ModeFormatter, set_mode, setup_logging


def test_mode_defaults_to_paper_and_refuses_unknown_modes():
    assert read_mode({}) is Mode.PAPER
    assert read_mode({"AI_QUANT_MODE": " PAPER "}) is Mode.PAPER
    assert read_mode({"AI_QUANT_MODE": "live"}) is Mode.LIVE
    assert read_mode({"AI_QUANT_MODE": "Dry_Live"}) is Mode.DRY_LIVE
    valid = "AI_QUANT_MODE='demo' is not valid; expected one of: paper, dry_live, live"
    with pytest.raises(ConfigError, match=valid):
        read_mode({"AI_QUANT_MODE": "demo"})


def test_simulator_venue_gets_its_own_state_dir_unless_set():
    env = {"AI_QUANT_VENUE": "simulator", "AI_QUANT_LOOP_TARGET_SECS": ""}
    full = apply_venue_defaults(env)
    assert full["AI_QUANT_STATE_DIR"] == "state/simulator" and full["AI_QUANT_LOOP_TARGET_SECS"] == "1"
    assert env == {"AI_QUANT_VENUE": "simulator", "AI_QUANT_LOOP_TARGET_SECS": ""}  # never written
    env = {"AI_QUANT_VENUE": "simulator", "AI_QUANT_STATE_DIR": "/data/x"}
    assert apply_venue_defaults(env)["AI_QUANT_STATE_DIR"] == "/data/x"
    assert apply_venue_defaults({}) == {}
    assert RuntimeSettings.from_env(full).venue is Venue.SIMULATOR


def test_runtime_settings_parse_and_name_bad_values():
    rt = RuntimeSettings.from_env({"AI_QUANT_EXECUTOR": "inprocess", "AI_QUANT_SHARDS": "3"})
    assert rt.executor is ExecutorKind.INPROCESS and rt.n_shards == 3 and not rt.sidecar_external
    bad = (("AI_QUANT_SHARDS", "0"), ("AI_QUANT_EXECUTOR", "k8s"), ("AI_QUANT_SIM_SPEED", "fast"))
    for name, value in bad:
        with pytest.raises(ConfigError, match=name):
            RuntimeSettings.from_env({name: value})


def test_simulator_replay_speed_and_history_follow_the_interval():
    args = RuntimeSettings(sim_candle_secs=1.5).simulator_args("1h", 200)
    opts = dict(zip(args[::2], args[1::2], strict=True))
    assert float(opts["--speed"]) == 2400.0  # one 1h candle per 1.5 s of wall time
    assert int(opts["--history-bars"]) == 250 * 12  # lookback + 50 candles of 5m base bars
    assert opts["--port"] == "0"
    fixed = RuntimeSettings(sim_speed=0.0, sim_history_bars=200, sim_start_ms=1_767_225_600_000)
    opts = dict(zip(*[iter(fixed.simulator_args("5m", 200))] * 2, strict=True))
    assert opts["--speed"] == "0" and opts["--history-bars"] == "200"
    assert opts["--start-ms"] == "1767225600000"


def test_simulator_demo_restart_resumes_after_the_last_runs_venue_time():
    """The replay clock runs ahead of wall time; a restart must not start behind its own candles."""
    hour = 3_600_000
    ahead = (int(time.time() * 1000) // hour + 40) * hour + 123  # the last run ended 40 h ahead
    opts = dict(zip(*[iter(RuntimeSettings().simulator_args("1h", 200, resume_ms=ahead))] * 2, strict=True))
    assert int(opts["--start-ms"]) == ahead - 123 + hour  # the next candle after the last one seen
    behind = int(time.time() * 1000) - hour  # a resume point in the past: start at wall time
    assert "--start-ms" not in RuntimeSettings().simulator_args("1h", 200, resume_ms=behind)
    pinned = RuntimeSettings(sim_start_ms=1_767_225_600_000).simulator_args("1h", 200, resume_ms=ahead)
    assert dict(zip(*[iter(pinned)] * 2, strict=True))["--start-ms"] == "1767225600000"


def test_log_lines_are_utc_and_stamped_with_the_mode():
    stream = io.StringIO()
    handler = setup_logging("-", "INFO", stream)
    try:
        set_mode(handler, "paper")
        logging.getLogger("engine.test").info("hello %s", "world", extra={"symbol": "ETH", "_private": 1})
        logging.getLogger("child.sidecar").warning("forwarded")
    finally:
        logging.getLogger().removeHandler(handler)
    first, second = stream.getvalue().splitlines()
    assert first.endswith("INFO [paper] engine.test: hello world symbol=ETH")
    assert first[:24][-1] == "Z" and first[10] == "T"
    assert "WARNING [paper] child.sidecar: forwarded" in second


def test_formatter_uses_utc():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.created, record.msecs = 0.0, 5.0
    assert ModeFormatter("paper").format(record).startswith("1970-01-01T00:00:00.005Z INFO [paper] x: m")


def test_config_forwarding_maps_update_configs_to_set_configs():
    class Pool:
        n_shards = 2

        def __init__(self) -> None:
            self.got: list[ConfigSource] = []

        def set_configs(self, configs: ConfigSource) -> None:
            self.got.append(configs)

        def checkpoint_all(self) -> int:
            return 7

    pool = Pool()
    wrapped = ConfigForwarding(pool)  # type: ignore[arg-type]
    wrapped.update_configs(ConfigSource(strategy_mode="flat"))
    assert pool.got == [ConfigSource(strategy_mode="flat")]
    assert wrapped.checkpoint_all() == 7 and wrapped.n_shards == 2


def test_stop_flag_remembers_the_first_signal():
    stop = StopFlag()
    assert not stop
    stop.handler(signal.SIGTERM, None)
    stop.handler(signal.SIGINT, None)
    assert stop and stop.signal_name == "SIGTERM" and stop.wait(0)
