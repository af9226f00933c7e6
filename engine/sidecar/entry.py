"""`python -m engine.sidecar`: settings from the environment, REST client, Redis, signals, logging.

Split from `engine.sidecar.service` (which holds the sidecar's state and tasks) so the service
module stays about the sidecar itself.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from engine.config.env import ConfigError
from engine.sidecar.service import Sidecar
from engine.sidecar.settings import SidecarSettings


def bound_session(local_addr: str) -> Any:
    """A requests session whose connections leave from `local_addr` (the sidecar's own IP, whose
    REST weight budget the venue counts separately)."""
    import requests
    from requests.adapters import HTTPAdapter

    class _BoundAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["source_address"] = (local_addr, 0)
            super().init_poolmanager(*args, **kwargs)

    session = requests.Session()
    session.mount("http://", _BoundAdapter())
    session.mount("https://", _BoundAdapter())
    return session


def build_rest(settings: SidecarSettings) -> tuple[Any, Any]:
    """The REST client (bound to AI_QUANT_SIDECAR_LOCAL_ADDR when set) and its weight budget."""
    from engine.venue.info_client import HyperliquidInfoClient
    from engine.venue.rate_budget import RateBudget

    budget = RateBudget(settings.rest_weight_per_minute)
    session = bound_session(settings.local_addr) if settings.local_addr else None
    client = HyperliquidInfoClient(
        settings.info_base_url, timeout_secs=settings.rest_timeout_secs, budget=budget, session=session,
        perp_dexes=settings.perp_dexes,
    )
    return client, budget


async def amain(settings: SidecarSettings) -> None:
    from engine.runtime.redis_runtime import RedisRuntime

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with RedisRuntime(settings.redis) as runtime:
        client = runtime.client()
        rest, budget = build_rest(settings)
        try:
            await Sidecar(settings, redis_client=client, rest=rest, rest_budget=budget).run(stop)
        finally:
            rest.close()
            client.close()


_STD_RECORD_KEYS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class _ContextFormatter(logging.Formatter):
    """Plain log lines with the record's context fields appended as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = {k: v for k, v in vars(record).items() if k not in _STD_RECORD_KEYS}
        return line + "".join(f" {k}={v}" for k, v in extra.items())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit 2 on a configuration error (with the reason), 0 on SIGTERM."""
    handler = logging.StreamHandler()
    handler.setFormatter(_ContextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=os.environ.get("AI_QUANT_LOG_LEVEL", "INFO"), handlers=[handler])
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` dumps every thread's stack
    try:
        settings = SidecarSettings.from_env()
        asyncio.run(amain(settings))
    except ConfigError as exc:
        print(f"sidecar: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
