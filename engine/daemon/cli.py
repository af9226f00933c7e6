"""`python -m engine.daemon`: the driver process — start-up in order, the tick loop, clean shutdown.

Start-up (DESIGN §1, §6; reference §1.4): the environment, parsed once into a frozen
`DriverConfig` (engine/daemon/config.py), then `engine.daemon.node.run`: lock → promoted config →
alerts → strategy YAML → trading DB and risk → Redis (embedded or AI_QUANT_REDIS_URL) → venue
(the loopback simulator when AI_QUANT_VENUE=simulator) → watchlist → sidecar → broker stack →
Ray → shards → loop. The loop ticks when the sidecar's candle-close notification arrives, or after
AI_QUANT_LOOP_TARGET_SECS without one, and logs one status line per tick.

SIGTERM and SIGINT set a flag: the tick in progress finishes (its fills and events are committed
as they happen), the loop exits, and every child (shards, Ray, sidecar, simulator, embedded
Redis) is stopped before the lock is released; exit code 0. Exit code 2 means "do not restart
me" (systemd RestartPreventExitStatus=2): a bad AI_QUANT_* value, YAML or secrets file, or a held
lock, or a named strategy YAML that does not exist. Every mode runs through one
`engine.daemon.node.run`; only the broker stack differs (paper broker, or OMS + venue broker).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence

from engine.config.env import ConfigError
from engine.config.shared import env_mode
from engine.daemon.config import DriverConfig
from engine.daemon.node import run
from engine.daemon.stop import StopFlag
from engine.enums import Mode
from engine.runtime.lock import DaemonLockError
from engine.runtime.logging_setup import set_mode, setup_logging
from engine.runtime.ray_boot import RayBoot
from engine.runtime.startup_timeline import StartupTimeline
from strategies.config import StrategyConfigError

log = logging.getLogger("engine.daemon")

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_FAILED = 1


def read_mode(env: Mapping[str, str]) -> Mode:
    """AI_QUANT_MODE (default paper); anything else is a ConfigError listing the valid values."""
    return env_mode(env)


def main(argv: Sequence[str] | None = None, *, ray_boot: RayBoot | None = None,
         timeline: StartupTimeline | None = None) -> int:
    """Entry point; returns the process exit code (see the module docstring).

    `ray_boot`: Ray already starting in the background (`engine.daemon.__main__`); stopped on
    every exit path, the early ones (configuration error, held lock) included."""
    del argv  # configuration is the environment only
    try:
        return _main(ray_boot, timeline)
    finally:
        if ray_boot is not None:
            ray_boot.close()  # a no-op when the node already stopped it


def _main(ray_boot: RayBoot | None, timeline: StartupTimeline | None) -> int:
    env = dict(os.environ)  # one read of the process environment; never written back
    handler = setup_logging("-", env.get("AI_QUANT_LOG_LEVEL", "INFO"))
    stop = StopFlag()
    stop.install()
    try:
        mode = read_mode(env)
        set_mode(handler, mode.value)
        config = DriverConfig.from_env(env)  # every setting, before anything starts
        return run(config, stop, ray_boot=ray_boot, timeline=timeline)
    except (ConfigError, StrategyConfigError) as exc:
        log.error("configuration error: %s", exc)
        print(f"engine.daemon: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except DaemonLockError as exc:
        log.error("%s", exc)
        print(f"engine.daemon: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:  # start-up or loop failure: everything started was already stopped
        log.exception("daemon failed: %s", exc)
        print(f"engine.daemon: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
