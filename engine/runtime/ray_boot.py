"""Start (or attach to) Ray in a background thread while the daemon does everything else.

Starting an embedded Ray is the largest single start-up cost (4-6 s on a quiet 2-core box,
20+ s under load), and it needs nothing the daemon computes: `connect_ray()` takes no argument
from the config. So `engine.daemon.__main__` starts it first, before the daemon's own imports,
config, DB, Redis and venue reads, and `Services.start_shards` waits for it. Nothing is
decided earlier than before: the shards are still created only after the lock is held and the
watchlist is known, and nothing trades before they are up.

Ray's `ray.init` is safe off the main thread (it then leaves the SIGTERM handler alone; the
daemon installs its own), with one catch: Ray starts its GCS and raylet with PR_SET_PDEATHSIG,
which Linux ties to the *thread* that forked them. The boot thread therefore stays alive, parked,
until `close()` has shut Ray down; if it returned, the kernel would kill Ray under the daemon (the
driver then loses the GCS a minute later). A daemon that exits before the shards (config
error, held lock, stop during start-up) calls `close()`, which waits for the start to finish
and shuts Ray down, so an embedded Ray is never left behind.

`import ray` goes first, alone (`preload`, then `wait_preloaded()` in `__main__`): two threads
importing at once share one GIL, so the daemon's own imports (seconds, not on the critical path:
the daemon then waits for Ray) would stretch Ray's import (~0.7 s of CPU) and delay every Ray
process behind it; the daemon's imports start once Ray's are done.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future

from engine.runtime.ray_runtime import RayInfo, prepare_ray_environment

log = logging.getLogger(__name__)

EXECUTOR_VAR = "AI_QUANT_EXECUTOR"
EARLY_VAR = "AI_QUANT_RAY_EARLY_START"
DASHBOARD_VAR = "AI_QUANT_RAY_DASHBOARD"


def wants_ray(env: Mapping[str, str]) -> bool:
    """True when the daemon will run its shards on Ray (AI_QUANT_EXECUTOR unset, empty or `ray`)
    and AI_QUANT_RAY_EARLY_START is not `0` (then Ray starts once the watchlist is known, as a
    same-run comparison for bench.startup, or an escape hatch).

    Any other executor value (`inprocess`, or a typo that the config parser will reject with
    exit 2) starts nothing here.
    """
    early = env.get(EARLY_VAR, "").strip().lower() not in ("0", "false", "no", "off")
    return early and env.get(EXECUTOR_VAR, "").strip().lower() in ("", "ray")


class RayBoot:
    """One background `connect_ray()`; `result()` waits for it, `close()` undoes it."""

    def __init__(self, connect: Callable[[], RayInfo], shutdown: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic,
                 preload: Callable[[], None] | None = None) -> None:
        """`preload` runs first on the boot thread (`import ray`); `wait_preloaded` waits for it."""
        self._connect = connect
        self._preload = preload
        self._preloaded = threading.Event()
        self.preload_secs: float | None = None  # how long `preload` took (None until it finished)
        self._shutdown = shutdown
        self._clock = clock
        self._future: Future[RayInfo] = Future()
        self._release = threading.Event()  # set by close(): the boot thread may exit
        self._closed = False
        self.secs: float | None = None  # how long the start took (None until it finished)

    def start(self) -> RayBoot:
        """Begin the start in a daemon thread (a stuck Ray start never blocks interpreter exit)."""
        prepare_ray_environment()  # on the caller's thread: the environment is not thread-safe
        threading.Thread(target=self._run, name="ray-boot", daemon=True).start()
        return self

    def _run(self) -> None:
        began = self._clock()
        try:
            if self._preload is not None:
                self._preload()  # an error here shows again in connect(), which re-imports
        except Exception as exc:
            log.warning("ray preload failed: %s", type(exc).__name__)
        finally:
            self.preload_secs = self._clock() - began
            self._preloaded.set()
        try:
            info = self._connect()
        except BaseException as exc:  # handed to whoever waits in result()
            self.secs = self._clock() - began
            self._future.set_exception(exc)
            return
        self.secs = self._clock() - began
        self._future.set_result(info)
        self._release.wait()  # Ray's processes die with this thread (module docstring)

    def wait_preloaded(self, timeout: float) -> bool:
        """Wait until `preload` finished (or failed); False on timeout (the caller goes on)."""
        return self._preloaded.wait(timeout)

    def result(self, timeout: float | None = None) -> RayInfo:
        """Wait for the start; re-raise its error. Raises RuntimeError after close()."""
        if self._closed:
            raise RuntimeError("Ray boot already closed")
        return self._future.result(timeout)

    def close(self, timeout: float = 600.0) -> None:
        """Wait for a start still running, then shut Ray down if it came up; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self._future.result(timeout)
        except BaseException as exc:  # it never came up: nothing to shut down
            log.info("ray boot ended without Ray: %s", type(exc).__name__)
            return
        try:
            self._shutdown()
        finally:
            self._release.set()


def wants_dashboard(env: Mapping[str, str]) -> bool | None:
    """AI_QUANT_RAY_DASHBOARD: unset/empty/1 → None (Ray's default: the full dashboard when its
    dependencies are installed; a failure to start it is logged, not fatal); `0` → False (Ray's
    minimal dashboard process only: no state API, no page; ~1.5 CPU-seconds less at start)."""
    off = env.get(DASHBOARD_VAR, "").strip().lower() in ("0", "false", "no", "off")
    return False if off else None


def connect_daemon_ray() -> RayInfo:
    """The daemon's Ray: attach (engine.runtime.ray_runtime policy), or start an embedded one with
    its dashboard (actor health on http://127.0.0.1:8265, or the next free port; see
    `wants_dashboard`). Measured on 2 cores beside the bench's feed: the full dashboard adds ~3 s to
    Ray's start (its head is waited for before the raylet starts) and ~2.5-5 CPU-seconds."""
    from engine.runtime.ray_runtime import connect_ray

    return connect_ray(include_dashboard=wants_dashboard(os.environ))


def start_ray_boot(env: Mapping[str, str] | None = None) -> RayBoot | None:
    """Start Ray in the background when `env` asks for the Ray executor (None: always); else None."""
    if env is not None and not wants_ray(env):
        return None
    from engine.runtime.ray_runtime import shutdown_ray

    return RayBoot(connect_daemon_ray, shutdown_ray, preload=_import_ray).start()


def _import_ray() -> None:
    import ray  # noqa: F401  (the import is the work: see the module docstring)
