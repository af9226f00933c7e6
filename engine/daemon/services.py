"""Start-up and teardown of everything the daemon runs besides the engine: Redis, the loopback
simulator, the sidecar, Ray and the shards.

Kept apart from `engine.daemon.cli` so the daemon reads as the start-up order and the loop. Every
service started here is recorded and stopped in reverse order by `Services.stop()`, which never
raises and may be called at any point of a half-finished start-up (a SIGTERM during Ray's start,
a sidecar that fails): no orphan Redis, simulator, sidecar or Ray processes.

Our variables (not in the reference; listed in `.env.example`):
- `AI_QUANT_VENUE` = `hyperliquid` (default: `AI_QUANT_HL_BASE_URL`, else mainnet) | `simulator`
  (spawn `python -m simulator` on loopback replaying the shipped candles, with demo defaults);
- `AI_QUANT_SIDECAR_EXTERNAL=1`: do not spawn the sidecar (one runs already against the same Redis);
- `AI_QUANT_EXECUTOR` = `ray` (default) | `inprocess` (shards in this process, no Ray: escape hatch);
- `AI_QUANT_SHARDS`: number of shards (default: CPUs);
- `AI_QUANT_SIM_DATA`, `AI_QUANT_SIM_SPEED`, `AI_QUANT_SIM_CANDLE_SECS`, `AI_QUANT_SIM_SEED`,
  `AI_QUANT_SIM_HISTORY_BARS`, `AI_QUANT_SIM_START_MS`: the spawned simulator's replay.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from cluster.executor import ShardExecutor
from cluster.records import ShardAlert
from cluster.shard_core import ConfigSource, ShardSettings
from engine.config.env import (
    ConfigError,
    env_bool,
    env_enum,
    env_float,
    env_int,
    env_list,
    env_opt_str,
    env_str,
)
from engine.runtime.children import ChildProcess
from engine.runtime.ray_boot import RayBoot, start_ray_boot
from engine.runtime.redis_runtime import RedisRuntime, RedisSettings
from engine.runtime.startup_timeline import StartupTimeline
from strategies.candle import interval_ms

log = logging.getLogger(__name__)

SIM_BASE_INTERVAL_MS = 300_000  # the shipped data is 5m
SIM_DATA_DIR = Path(__file__).resolve().parents[2] / "simulator" / "data"
_SIM_DEFAULTS = {
    # A simulator run must never share a DB, lock or Redis AOF with a run against the real venue.
    "AI_QUANT_STATE_DIR": "state/simulator",
    "AI_QUANT_LOOP_TARGET_SECS": "1",
}


class Venue(StrEnum):
    HYPERLIQUID = "hyperliquid"
    SIMULATOR = "simulator"


class ExecutorKind(StrEnum):
    RAY = "ray"
    INPROCESS = "inprocess"


def apply_venue_defaults(env: Mapping[str, str]) -> dict[str, str]:
    """Return a copy of `env`; for AI_QUANT_VENUE=simulator, with the demo defaults the user did
    not set filled in (the caller's mapping is never changed)."""
    out = dict(env)
    if env_enum("AI_QUANT_VENUE", Venue, Venue.HYPERLIQUID, env) is Venue.SIMULATOR:
        for name, value in _SIM_DEFAULTS.items():
            if not out.get(name, "").strip():  # empty counts as unset, as everywhere in engine.config.env
                out[name] = value
    return out


def parse_shard_resources(env: Mapping[str, str]) -> tuple[tuple[str, float], ...]:
    """AI_QUANT_SHARD_RESOURCES like `aiq_shard=0.001,other=1`: custom Ray resources per shard."""
    pairs: list[tuple[str, float]] = []
    for item in env_list("AI_QUANT_SHARD_RESOURCES", env):
        name, sep, amount = item.partition("=")
        try:
            value = float(amount) if sep else float("nan")
        except ValueError:
            value = float("nan")
        if not name.strip() or not value > 0:
            raise ConfigError(f"AI_QUANT_SHARD_RESOURCES item {item!r} is not NAME=POSITIVE_NUMBER")
        pairs.append((name.strip(), value))
    return tuple(pairs)


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeSettings:
    venue: Venue = Venue.HYPERLIQUID
    sidecar_external: bool = False
    executor: ExecutorKind = ExecutorKind.RAY
    n_shards: int = 2
    shard_deadline_ms: float = 2_000.0
    shard_resources: tuple[tuple[str, float], ...] = ()
    shard_scheduling: str | None = None
    sim_data: Path = SIM_DATA_DIR
    sim_speed: float | None = None
    sim_candle_secs: float = 1.5
    sim_seed: int = 7
    sim_history_bars: int | None = None
    sim_start_ms: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RuntimeSettings:
        """Parse the runtime variables; raise ConfigError naming a bad one."""
        speed = env_opt_str("AI_QUANT_SIM_SPEED", env)
        history = env_opt_str("AI_QUANT_SIM_HISTORY_BARS", env)
        start = env_opt_str("AI_QUANT_SIM_START_MS", env)
        return cls(
            venue=env_enum("AI_QUANT_VENUE", Venue, Venue.HYPERLIQUID, env),
            sidecar_external=env_bool("AI_QUANT_SIDECAR_EXTERNAL", False, env),
            executor=env_enum("AI_QUANT_EXECUTOR", ExecutorKind, ExecutorKind.RAY, env),
            n_shards=env_int("AI_QUANT_SHARDS", max(1, os.cpu_count() or 1), env, lo=1, hi=1024),
            shard_deadline_ms=env_float("AI_QUANT_SHARD_DEADLINE_MS", 2_000.0, env, lo=10.0, hi=600_000.0),
            shard_resources=parse_shard_resources(env),
            shard_scheduling=env_opt_str("AI_QUANT_SHARD_SCHEDULING", env),
            sim_data=Path(env_str("AI_QUANT_SIM_DATA", str(SIM_DATA_DIR), env)),
            sim_speed=None if speed is None else env_float("AI_QUANT_SIM_SPEED", 0.0, env, lo=0.0),
            sim_candle_secs=env_float("AI_QUANT_SIM_CANDLE_SECS", 1.5, env, lo=0.05, hi=3_600.0),
            sim_seed=env_int("AI_QUANT_SIM_SEED", 7, env, lo=0),
            sim_history_bars=None if history is None else env_int("AI_QUANT_SIM_HISTORY_BARS", 0, env, lo=1),
            sim_start_ms=None if start is None else env_int("AI_QUANT_SIM_START_MS", 0, env, lo=0),
        )

    def simulator_args(self, interval: str, lookback_bars: int, resume_ms: int | None = None) -> list[str]:
        """Replay so that one `interval` candle closes every `sim_candle_secs` of wall time, with
        enough history before the start for the sidecar's backfill (lookback + 50 bars).

        The simulator's clock starts at wall time and runs `speed` times faster, so a demo restarted
        on the same state dir would start behind the candles and checkpoints of its last run and
        decide nothing until it caught up. `resume_ms` (the last run's venue time, from the sidecar
        heartbeat kept in the embedded Redis) starts the new replay one candle after it instead.
        AI_QUANT_SIM_START_MS, when set, wins."""
        iv_ms = interval_ms(interval)
        speed = self.sim_speed if self.sim_speed is not None else iv_ms / 1000.0 / self.sim_candle_secs
        bars_per_candle = max(1, iv_ms // SIM_BASE_INTERVAL_MS)
        history = self.sim_history_bars or min(4_000, (lookback_bars + 50) * bars_per_candle)
        args = ["--port", "0", "--data", str(self.sim_data), "--speed", f"{speed:g}",
                "--seed", str(self.sim_seed), "--history-bars", str(history), "--rate-limit-per-min", "0",
                "--fund-any", "10000"]  # the demo trades from any wallet: the simulator funds it
        start = self.sim_start_ms
        if start is None and resume_ms is not None and resume_ms > time.time() * 1000:
            start = resume_ms - resume_ms % iv_ms + iv_ms
        if start is not None:
            args += ["--start-ms", str(start)]
        return args


class ConfigForwarding:
    """Adds `update_configs` (what UnifiedEngine calls on a YAML reload) to an executor that only
    has `set_configs`, so edits reach the shards whichever executor version is installed."""

    def __init__(self, inner: ShardExecutor) -> None:
        self.inner = inner
        self.n_shards = inner.n_shards

    def update_configs(self, configs: ConfigSource) -> None:
        self.inner.set_configs(configs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Services:
    """What the daemon started, in order; `stop()` undoes it in reverse."""

    def __init__(self, settings: RuntimeSettings, env: Mapping[str, str], *, ray_boot: RayBoot | None = None,
                 timeline: StartupTimeline | None = None) -> None:
        """`ray_boot`: Ray already starting in the background (engine.daemon.__main__); the shards
        wait for it instead of starting Ray themselves. `timeline` gets the shard phases."""
        self.settings = settings
        self.env = env  # read-only: the simulator child's environment
        self.redis: RedisRuntime | None = None
        self.simulator: ChildProcess | None = None
        self.sidecar: ChildProcess | None = None
        self.ray_boot = ray_boot
        self.timeline = timeline or StartupTimeline()
        self.ray_started = False
        self.executor: Any = None
        self._pending: Future[Any] | None = None  # begin_shards' executor, until finish_shards

    # ------------------------------------------------------------------ start steps
    def start_redis(self, settings: RedisSettings) -> RedisRuntime:
        self.redis = RedisRuntime(settings)
        url = self.redis.start()
        log.info("redis ready embedded=%s url=%s", self.redis.embedded, url)
        return self.redis

    def start_venue(self, interval: str, lookback_bars: int, venue_url: str) -> str:
        """Return the venue's REST base URL: `venue_url`, or a spawned simulator's."""
        if self.settings.venue is Venue.SIMULATOR:
            if not self.settings.sim_data.is_dir():
                raise ConfigError(f"AI_QUANT_SIM_DATA={str(self.settings.sim_data)!r} is not a directory")
            args = self.settings.simulator_args(interval, lookback_bars, self._last_venue_ms())
            self.simulator = ChildProcess(
                "simulator", "simulator", args, env=self.env, ready_pattern=r"listening on (http://\S+)"
            )
            self.simulator.start(ready_timeout_secs=60.0)
            assert self.simulator.ready_match is not None
            venue_url = self.simulator.ready_match.group(1).rstrip("/")
            log.info("simulator ready pid=%s url=%s args=%s", self.simulator.pid, venue_url, " ".join(args))
        return venue_url

    def _last_venue_ms(self) -> int | None:
        """The venue time the sidecar last saw in this state dir's Redis (None: none, or unreadable)."""
        if self.redis is None:
            return None
        try:
            beat = self.redis.layout.read_heartbeat(self.redis.client())
        except Exception as exc:  # no resume point: the replay starts at wall time, as on a first run
            log.warning("no simulator resume point error=%s", type(exc).__name__)
            return None
        return None if beat is None else beat.venue_ms

    def start_sidecar(self, env: Mapping[str, str]) -> None:
        """Spawn the sidecar with `env` (DriverConfig.to_env: what start-up decided included)."""
        if self.settings.sidecar_external:
            log.info("sidecar external (AI_QUANT_SIDECAR_EXTERNAL=1): not spawned")
            return
        self.sidecar = ChildProcess("sidecar", "engine.sidecar", env=env)
        self.sidecar.start()
        log.info("sidecar started pid=%s", self.sidecar.pid)

    def begin_shards(self, **kwargs: Any) -> None:
        """Create the shard executor (`start_shards` arguments) in a background thread, so the
        actors import and restore while the daemon starts the sidecar and the broker stack;
        `finish_shards` waits for it. Nothing ticks before finish_shards returned."""
        future: Future[Any] = Future()
        self._pending = future
        if self.settings.executor is ExecutorKind.RAY and self.ray_boot is None:
            # Ray must not be started by the short-lived thread below: its processes die with
            # the thread that forked them (engine.runtime.ray_boot); a boot thread lives on.
            self.ray_boot = start_ray_boot()

        def create() -> None:
            try:
                future.set_result(self.start_shards(**kwargs))
            except BaseException as exc:  # re-raised by finish_shards
                future.set_exception(exc)

        threading.Thread(target=create, name="shard-start", daemon=True).start()

    def finish_shards(self) -> ShardExecutor:
        """Wait for `begin_shards`; return the executor or raise what its creation raised."""
        assert self._pending is not None, "finish_shards without begin_shards"
        began = time.monotonic()
        try:
            return self._pending.result()
        finally:
            self._pending = None
            self.timeline.add("shards_wait", time.monotonic() - began)

    def start_shards(
        self,
        *,
        interval: str,
        configs: ConfigSource,
        symbols: Sequence[str],
        alert: Callable[[ShardAlert], None],
        signal_on_candle_close: bool = True,
    ) -> ShardExecutor:
        assert self.redis is not None
        shard_settings = ShardSettings(interval=interval, signal_on_candle_close=signal_on_candle_close)
        began = time.monotonic()
        if self.settings.executor is ExecutorKind.INPROCESS:
            executor = self._inprocess(interval, shard_settings, configs, symbols, alert)
        else:
            executor = self._ray_pool(shard_settings, configs, symbols, alert)
        self.timeline.add("shards_create", time.monotonic() - began)
        self.executor = executor if hasattr(executor, "update_configs") else ConfigForwarding(executor)
        return self.executor

    def _inprocess(self, interval: str, shard_settings: ShardSettings, configs: ConfigSource,
                   symbols: Sequence[str], alert: Callable[[ShardAlert], None]) -> Any:
        from cluster.inprocess import InProcessExecutor
        from cluster.shard_store import RedisShardStore

        assert self.redis is not None
        client = self.redis.client(socket_timeout=30.0)
        layout = self.redis.layout
        executor = InProcessExecutor(
            self.settings.n_shards,
            lambda _i: RedisShardStore(client, layout, interval),
            shard_settings,
            configs,
            symbols=symbols,
            alert=alert,
        )
        log.info("shards in process n=%d (AI_QUANT_EXECUTOR=inprocess)", self.settings.n_shards)
        return executor

    def _connect_ray(self) -> Any:
        """Ray from the background boot when there is one (timed there), else started here."""
        began = time.monotonic()
        if self.ray_boot is not None:
            info = self.ray_boot.result()
            self.timeline.add("ray_init", self.ray_boot.secs or 0.0)
            self.timeline.add("ray_import", self.ray_boot.preload_secs or 0.0)  # part of ray_init
            self.timeline.add("ray_wait", time.monotonic() - began)
        else:
            from engine.runtime.ray_boot import connect_daemon_ray

            info = connect_daemon_ray()
            self.timeline.add("ray_init", time.monotonic() - began)
        self.ray_started = True
        log.info("ray %s address=%s namespace=%s dashboard=%s", info.attachment.value, info.address,
                 info.namespace, info.dashboard_url or "none")
        return info

    def _ray_pool(self, shard_settings: ShardSettings, configs: ConfigSource, symbols: Sequence[str],
                  alert: Callable[[ShardAlert], None]) -> Any:
        from cluster.pool import PoolSettings, ShardPool

        assert self.redis is not None
        info = self._connect_ray()
        began = time.monotonic()
        executor = ShardPool(
            redis_url=self.redis.url,
            redis_prefix=self.redis.settings.prefix,
            settings=shard_settings,
            configs=configs,
            pool=PoolSettings(
                n_shards=self.settings.n_shards,
                namespace=info.namespace,
                deadline_ms=self.settings.shard_deadline_ms,
                resources=self.settings.shard_resources,
                scheduling_strategy=self.settings.shard_scheduling,
            ),
            symbols=symbols,
            alert=alert,
        )
        self.timeline.add("actors_ready", time.monotonic() - began)
        for name, secs in executor.startup_phases().items():
            self.timeline.add(name, secs)
        log.info("shard pool ready n=%d", self.settings.n_shards)
        return executor

    # ------------------------------------------------------------------ teardown
    def stop(self) -> None:
        """Stop everything started, newest first; log and continue past any failure."""
        if self._pending is not None:  # a stop during start-up: let the creation finish, then close it
            with _step("shard start"):
                self._pending.result()
            self._pending = None
        if self.executor is not None:
            with _step("shards"):
                self.executor.close()
            self.executor = None
        if self.ray_boot is not None:  # waits for a start still running, then shuts Ray down
            with _step("ray"):
                self.ray_boot.close()
            self.ray_started = False
        if self.ray_started:
            from engine.runtime.ray_runtime import shutdown_ray

            with _step("ray"):
                shutdown_ray()
            self.ray_started = False
        for name in ("sidecar", "simulator"):
            child: ChildProcess | None = getattr(self, name)
            if child is not None:
                with _step(name):
                    code = child.stop()
                    log.info("%s stopped code=%s", name, code)
                setattr(self, name, None)
        if self.redis is not None:
            with _step("redis"):
                self.redis.stop()
            self.redis = None


@contextlib.contextmanager
def _step(name: str) -> Any:
    try:
        yield
    except Exception:  # teardown must reach every later step
        log.exception("stopping %s failed", name)
