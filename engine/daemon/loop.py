"""The loop's pieces, the same in every mode: the candle-close waiter, the market view with a
fresh venue clock, the watchlist, and `run_loop` itself (engine/daemon/node.py wires them)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from cluster.metrics import tick_metrics
from engine.config.settings import DaemonSettings
from engine.daemon.stop import StopFlag
from engine.marketdata.hub import KeysSnapshot, MarketDataHub, PriceQuote
from engine.runtime.systemd_watchdog import SystemdWatchdog
from engine.sidecar.settings import top_symbols_by_volume
from engine.tick.engine import UnifiedEngine
from engine.tick.last_tick import LastTickWriter
from engine.venue.info_client import HyperliquidInfoClient

log = logging.getLogger("engine.daemon")


class CandleCloseWaiter:
    """Waits for the sidecar's candle-close notification (Redis pub/sub), a timeout, or stop."""

    def __init__(self, client: object, channel: str) -> None:
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[attr-defined]
        self._pubsub.subscribe(channel)

    def wait(self, timeout_secs: float, stop: StopFlag, ping: Callable[[], None]) -> bool:
        """Return True when a notification arrived (pending ones drained), False on timeout/stop."""
        deadline = time.monotonic() + timeout_secs
        while not stop and (left := deadline - time.monotonic()) > 0:
            ping()
            try:
                message = self._pubsub.get_message(timeout=min(0.25, left))
            except Exception as exc:  # Redis down: fall back to the poll interval, never stall
                log.warning("candle-close wait failed error=%s", type(exc).__name__)
                stop.wait(min(0.25, left))
                continue
            if message is not None:
                self._drain()
                return True
        return False

    def _drain(self) -> None:
        """Drop the notifications queued behind the one that woke us (one tick serves them all)."""
        try:
            while self._pubsub.get_message(timeout=0.0) is not None:
                pass
        except Exception as exc:  # Redis died after the notification: the tick still runs (it was due)
            log.warning("candle-close drain failed error=%s", type(exc).__name__)

    def close(self) -> None:
        try:
            self._pubsub.close()
        except Exception as exc:  # teardown: nothing more to do about it
            log.debug("pubsub close failed error=%s", exc)


class FreshClockMarket:
    """The hub as the engine's MarketView, with the heartbeat re-read when the tick asks the time.

    `MarketDataHub.venue_now_ms()` extrapolates the last heartbeat it saw, and the hub re-reads the
    heartbeat only inside `health()`/`get_mids()`, which a tick calls after asking the time (and not
    at all when nothing is open or actionable). In a replay faster than wall time that clock would
    lag the venue by many candles; one Redis read per tick keeps it current.
    """

    def __init__(self, hub: MarketDataHub) -> None:
        self._hub = hub

    def venue_now_ms(self) -> int:
        self._hub.health()
        return self._hub.venue_now_ms()

    def candle_keys(self, symbols: Sequence[str], interval: str | None = None) -> KeysSnapshot:
        return self._hub.candle_keys(symbols, interval)

    def get_mids(self, symbols: Sequence[str], max_age_secs: float | None = None) -> dict[str, PriceQuote]:
        return self._hub.get_mids(symbols, max_age_secs)


def resolve_watchlist(
    settings: DaemonSettings, info: HyperliquidInfoClient, stop: StopFlag
) -> tuple[str, ...]:
    """AI_QUANT_SYMBOLS, else the venue's top AI_QUANT_TOP_N by 24 h volume (retried until stop)."""
    if settings.symbols:
        return settings.symbols
    delay = 0.5
    while not stop:
        try:
            answer = info.meta_and_asset_ctxs()
            return top_symbols_by_volume([(c.coin, c.day_ntl_vlm) for c in answer.ctxs], settings.top_n)
        except Exception as exc:  # venue not reachable yet: retry with backoff
            log.warning("watchlist query failed error=%s; retrying in %.1fs", exc, delay)
            stop.wait(delay)
            delay = min(delay * 2, 30.0)
    return ()


def run_loop(
    engine: UnifiedEngine,
    waiter: CandleCloseWaiter,
    watchdog: SystemdWatchdog,
    stop: StopFlag,
    poll_secs: float,
    before_tick: Callable[[], bool] | None = None,
    last_tick: LastTickWriter | None = None,
    sources: Callable[[], str] | None = None,
) -> None:
    """Tick until stopped, waking on candle closes. `before_tick` (the broker stack's sync and risk
    poll) runs every iteration and returns whether the engine may tick now; `last_tick` keeps the
    last tick's numbers on disk for `engine.status` and the web page; `sources` (the market-source
    probe, engine.marketdata.market_sources) adds `sources=ws:N,rest:N,none:N` to the status line."""
    loop_errors = 0
    metrics = tick_metrics()  # Ray-backed when the shards run on Ray, else a no-op
    while not stop:
        if before_tick is None or before_tick():
            try:
                report = engine.tick()
            except Exception:  # the loop must survive anything a tick throws; the next tick retries
                loop_errors += 1
                log.exception("engine loop error count=%d", loop_errors)
            else:
                metrics.record(report.metrics())
                if last_tick is not None:
                    last_tick.write(report, engine.shard_answers)
                line = report.status_line("" if sources is None else _sources_text(sources))
                log.info("%s", line)
                watchdog.tick_done(line)
        waiter.wait(poll_secs, stop, watchdog.ping)


def _sources_text(sources: Callable[[], str]) -> str:
    """The probe's text; a failure to read the sources never stops the loop."""
    try:
        return sources()
    except Exception as exc:  # a Redis hiccup: the line says so, the next tick retries
        log.warning("market sources unreadable error=%s", exc)
        return "sources=unknown"
