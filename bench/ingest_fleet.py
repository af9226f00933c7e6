"""Fleet ingest benchmark: a big watchlist through several sidecars, the simulator over real WS.

    .venv/bin/python -m bench.ingest_fleet [--markets 3000] [--sidecars 4] [--bars 20] [--speed 60]
    (also: python -m bench.ingest --fleet ...)

Starts a private redis-server (AOF everysec, like the sidecar's), the simulator with `--markets`
synthetic 1m markets and the venue's per-IP WebSocket caps (10 connections, 30 new a minute,
1,000 subscriptions, 2,000 messages a minute), and `--sidecars` sidecars, each on its own loopback
IP (127.0.0.2, 127.0.0.3, ...) so each has its own budget; they divide the markets by rendezvous
hashing. BBO is off (one subscription per market: 999 markets per IP) and so is the REST
cross-check (it would re-read every closed candle); backfill is short and REST unthrottled so
start-up takes seconds.

After every market's keys exist, the next `--bars` bars are measured:
- close → key-visible: the bar's close on the venue clock, mapped to wall time through the
  simulator's clock (`/admin/state`, sampled around the run), to the moment an independent
  client receives the close notification (published after the write's keys, so they are
  visible). It includes the simulator's tick (`--tick-ms`), the sidecar's flush batching
  (AI_QUANT_SIDECAR_FLUSH_MS, 50) and Redis.
- candles per second: measured closes over the time from the first bar's open to the last
  notification; at most the offered rate (markets × speed / 60 a second): keeping up shows as
  this rate near the offered one with a bounded p99.
- missing: measured bars absent from Redis per market (must be 0), and markets on no source.
Prints one JSON object; exits 1 if a candle is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from bench.support import REPO_ROOT, SimulatorProcess, percentile, start_simulator
from cluster.redis_layout import RedisLayout
from engine.runtime.redis_server import EmbeddedRedis
from engine.sidecar.fleet import FleetKeys, read_members, read_sources, sources_summary

IV = 60_000
PREFIX = "bf"


class CloseWatcher(threading.Thread):
    """Records the wall time each (market, close) notification arrives (the first one).

    A notification names only the newest close of a market in its write: when a flush carries two
    bars of one market (the sidecar fell behind, or a sync filled a gap), the older bar has no
    notification of its own and became visible with the newer one (see `visible_at`).
    """

    def __init__(self, url: str, layout: RedisLayout) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.layout = layout
        self.seen: dict[tuple[str, int], float] = {}
        self.stop = threading.Event()
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(layout.closed_channel("1m"))

    def run(self) -> None:
        while not self.stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message is None:
                continue
            now = time.time()
            for sym, close in self.layout.parse_closed_notification(message["data"]):
                self.seen.setdefault((sym, close), now)

    def newest(self, symbol: str) -> int:
        return max((c for (s, c) in list(self.seen) if s == symbol), default=0)

    def visible_at(self, symbol: str, close: int) -> float | None:
        """Wall time the bar closing at `close` became visible: the first notification at or after it."""
        times = [w for (s, c), w in list(self.seen.items()) if s == symbol and c >= close]
        return min(times) if times else None

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=5)
        self.pubsub.close()
        self.client.close()


class SimClock:
    """venue ms → wall seconds, from (wall, venue) samples of the simulator's clock."""

    def __init__(self, sim: SimulatorProcess, speed: float) -> None:
        self.sim = sim
        self.speed = speed
        self.offsets: list[float] = []

    def sample(self) -> int:
        before = time.time()
        now_ms = int(self.sim.state()["now_ms"])
        after = time.time()
        # wall at venue 0 (per sample); the request's midpoint is when now_ms was read
        self.offsets.append((before + after) / 2 - now_ms / 1000 / self.speed)
        return now_ms

    def wall_of(self, venue_ms: int) -> float:
        return sorted(self.offsets)[len(self.offsets) // 2] + venue_ms / 1000 / self.speed


def _sidecar_env(
    sim: SimulatorProcess, redis_url: str, state: Path, index: int, symbols: Sequence[str]
) -> dict[str, str]:
    """The watchlist is explicit: AI_QUANT_TOP_N stops at 200."""
    return dict(
        os.environ,
        AI_QUANT_HL_BASE_URL=sim.base_url,
        AI_QUANT_REDIS_URL=redis_url,
        AI_QUANT_REDIS_PREFIX=PREFIX,
        AI_QUANT_STATE_DIR=str(state / f"sidecar{index}"),
        AI_QUANT_INTERVAL="1m",
        AI_QUANT_SYMBOLS=",".join(symbols),
        AI_QUANT_ANCHOR_SYMBOL="NONE",
        AI_QUANT_LOOKBACK_BARS="50",
        AI_QUANT_WS_ENABLE_BBO="0",
        AI_QUANT_CANDLE_CROSS_CHECK="0",
        AI_QUANT_CANDLE_REST_MIN_GAP_MS="0",
        AI_QUANT_CANDLE_REST_MAX_INFLIGHT="8",
        AI_QUANT_REST_WEIGHT_PER_MIN="100000000",
        AI_QUANT_CANDLE_VERIFY_SECS="1",
        AI_QUANT_SIDECAR_ID=f"s{index}",
        AI_QUANT_SIDECAR_LOCAL_ADDR=f"127.0.0.{index + 2}",
        AI_QUANT_SIDECAR_MEMBER_TTL_MS="5000",
        HL_WS_SUB_SEND_MS="0",
        AI_QUANT_LOG_LEVEL="WARNING",
    )


def _wait(
    cond: Any, timeout: float, what: str, procs: Sequence[subprocess.Popen[bytes]], state: Path
) -> None:
    """Poll `cond` (returns (done, progress text)); progress goes to stderr every 10 s."""
    deadline = time.monotonic() + timeout
    shown = time.monotonic()
    progress = ""
    while time.monotonic() < deadline:
        done, progress = cond()
        if done:
            return
        if time.monotonic() - shown >= 10:
            print(f"waiting for {what}: {progress}", file=sys.stderr, flush=True)
            shown = time.monotonic()
        for i, proc in enumerate(procs):
            if proc.poll() is not None:
                tail = (state / f"sidecar{i}.log").read_text(errors="replace")[-1500:]
                raise RuntimeError(f"sidecar {i} exited ({proc.returncode}) waiting for {what}: {tail}")
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what} ({progress})")


def _missing(
    client: redis.Redis, layout: RedisLayout, symbols: Sequence[str], first_t: int, last_t: int
) -> int:
    """Measured bars (first_t..last_t) absent from Redis, summed over the markets."""
    pipe = client.pipeline(transaction=False)
    for sym in symbols:
        pipe.zcount(layout.candles_key(sym, "1m"), first_t, last_t)
    expected = (last_t - first_t) // IV + 1
    return sum(expected - int(n) for n in pipe.execute())


def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every sidecar, then wait; SIGKILL one that does not stop within 20 s."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(args: argparse.Namespace, state: Path) -> dict[str, Any]:
    layout = RedisLayout(PREFIX)
    sim_args = ["--synthetic", str(args.markets), "--interval", "1m", "--speed", str(args.speed),
                "--tick-ms", str(args.tick_ms), "--rate-limit-per-min", "0", "--ws-max-connections", "10",
                "--ws-max-new-connections-per-min", "30", "--ws-max-messages-per-min", "2000",
                "--ws-max-subscriptions", "1000"]  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    with EmbeddedRedis(state / "redis", appendonly=True) as server:
        sim = start_simulator(sim_args, state / "logs")
        client = redis.Redis.from_url(server.url)
        watcher = CloseWatcher(server.url, layout)
        watcher.start()
        try:
            symbols = [u["name"] for u in sim.info({"type": "meta"}).json()["universe"]][: args.markets]
            for i in range(args.sidecars):
                log = (state / f"sidecar{i}.log").open("ab")
                procs.append(subprocess.Popen([sys.executable, "-m", "engine.sidecar"], cwd=REPO_ROOT,
                                              env=_sidecar_env(sim, server.url, state, i, symbols),
                                              stdout=log, stderr=log))  # fmt: skip
            started = time.monotonic()
            keys = lambda: layout.read_candle_keys(client, symbols, "1m")  # noqa: E731
            def everyone() -> tuple[bool, str]:
                have = sum(1 for k in keys().values() if k.closed_close_ms)
                return have == len(symbols), f"{have}/{len(symbols)} markets have keys"

            _wait(everyone, args.timeout, "all keys", procs, state)
            warm_secs = time.monotonic() - started
            clock = SimClock(sim, args.speed)
            now = clock.sample()
            first_t = (now // IV + 1) * IV  # the first bar that opens after warm-up
            last_t = first_t + (args.bars - 1) * IV
            def measured() -> tuple[bool, str]:
                behind = sum(1 for k in keys().values() if (k.closed_close_ms or 0) < last_t + IV - 1)
                return behind == 0, f"{behind} markets behind"

            _wait(measured, args.timeout + args.bars * 60 / args.speed, "the measured bars", procs, state)
            clock.sample()
            def notified() -> tuple[bool, str]:  # the watcher thread may lag on a loaded machine
                behind = sum(1 for sym in symbols if watcher.newest(sym) < last_t + IV - 1)
                return behind == 0, f"{behind} markets without the last bar's notification"

            _wait(notified, 30.0, "the last notifications", procs, state)
            sources = read_sources(client, FleetKeys(PREFIX), "1m", symbols)
            members = read_members(client, FleetKeys(PREFIX))
            missing = _missing(client, layout, symbols, first_t, last_t)
        finally:
            watcher.close()
            _stop(procs)
            sim.stop()
            client.close()
    delays: list[float] = []
    arrivals: list[float] = []
    for sym in symbols:
        for bar_t in range(first_t, last_t + 1, IV):
            wall = watcher.visible_at(sym, bar_t + IV - 1)
            if wall is not None:
                delays.append((wall - clock.wall_of(bar_t + IV)) * 1000)
                arrivals.append(wall)
    span = max(arrivals) - clock.wall_of(first_t) if arrivals else 0.0  # first bar's open → last key
    return {
        "benchmark": "ingest_fleet",
        "markets": args.markets,
        "sidecars": args.sidecars,
        "bars": args.bars,
        "speed": args.speed,
        "sim_tick_ms": args.tick_ms,
        "warm_up_secs": round(warm_secs, 1),
        "per_sidecar": {
            m: {"ws": i.ws_markets, "rest": i.rest_markets, "connections": i.connections, "ip": i.local_addr}
            for m, i in sorted(members.items())
        },
        "sources": sources_summary(sources),
        "candles_measured": len(delays),
        "candles_per_sec": round(len(delays) / span, 1) if span > 0 else None,
        "offered_candles_per_sec": round(args.markets * args.speed / 60, 1),
        "close_to_key_visible_ms": {
            "p50": round(percentile(delays, 0.5), 1) if delays else None,
            "p99": round(percentile(delays, 0.99), 1) if delays else None,
            "max": round(max(delays), 1) if delays else None,
        },
        "missing_candles": missing,
        "note": "delay includes the simulator's tick and the sidecar's 50 ms flush batching",
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--markets", type=int, default=3000)
    parser.add_argument("--sidecars", type=int, default=4)
    parser.add_argument("--bars", type=int, default=20)
    parser.add_argument("--speed", type=float, default=60.0, help="venue seconds per wall second")
    parser.add_argument("--tick-ms", type=int, default=250)
    parser.add_argument("--timeout", type=float, default=300.0, help="warm-up limit (s)")
    args = parser.parse_args(argv)
    if args.markets < 1 or args.sidecars < 1 or args.bars < 1 or args.speed <= 0 or args.sidecars > 200:
        parser.error("--markets, --sidecars (<= 200), --bars must be >= 1 and --speed > 0")
    with tempfile.TemporaryDirectory(prefix="aiq-bench-fleet-") as state:
        out = run(args, Path(state))
    print(json.dumps(out, indent=2))
    return 0 if out["missing_candles"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
