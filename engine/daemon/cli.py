"""`python -m engine.daemon`: the driver process — start-up in order, the tick loop, clean shutdown.

Start-up (DESIGN §1, §6; reference §1.4): environment → promoted config → lock → alerts →
strategy YAML → trading DB and paper broker → Redis (embedded or AI_QUANT_REDIS_URL) → venue
(the loopback simulator when AI_QUANT_VENUE=simulator) → watchlist → sidecar → Ray → shards →
loop. The loop ticks when the sidecar's candle-close notification arrives, or after
AI_QUANT_LOOP_TARGET_SECS without one, and logs one status line per tick.

SIGTERM and SIGINT set a flag: the tick in progress finishes (its fills and events are committed
as they happen), the loop exits, and every child (shards, Ray, sidecar, simulator, embedded
Redis) is stopped before the lock is released; exit code 0. Exit code 2 means "do not restart
me" (systemd RestartPreventExitStatus=2): a bad AI_QUANT_* value, YAML or secrets file, or a held
lock. live and dry_live run through `engine.daemon.live.run_live` (venue broker, OMS, risk).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import MutableMapping, Sequence
from types import FrameType

from engine.config.env import ConfigError, env_enum
from engine.enums import Mode
from engine.runtime.lock import DaemonLockError
from engine.runtime.logging_setup import set_mode, setup_logging
from strategies.config import StrategyConfigError

log = logging.getLogger("engine.daemon")

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_FAILED = 1


class StopFlag:
    """Set by SIGTERM/SIGINT; the loop and start-up poll it. `wait` sleeps in short slices."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None

    def __bool__(self) -> bool:
        return self._event.is_set()

    def handler(self, signum: int, _frame: FrameType | None) -> None:
        if not self._event.is_set():
            self.signal_name = signal.Signals(signum).name
        self._event.set()

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.handler)

    def wait(self, secs: float) -> bool:
        return self._event.wait(secs)


def read_mode(env: MutableMapping[str, str]) -> Mode:
    """AI_QUANT_MODE (default paper); anything else is a ConfigError listing the valid values."""
    return env_enum("AI_QUANT_MODE", Mode, Mode.PAPER, env)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (see the module docstring)."""
    del argv  # configuration is the environment only
    env: dict[str, str] = dict(os.environ)
    handler = setup_logging("-", env.get("AI_QUANT_LOG_LEVEL", "INFO"))
    stop = StopFlag()
    stop.install()
    try:
        mode = read_mode(env)
        set_mode(handler, mode.value)
        if mode in (Mode.LIVE, Mode.DRY_LIVE):
            from engine.daemon.live import run_live  # the venue broker stack (engine/daemon/live.py)

            return run_live(env, mode, stop)
        from engine.daemon.loop import run_paper

        return run_paper(env, mode, stop)
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
