"""Issue 14 acceptance: a paper daemon over the whole HIP-3 universe, WS drops, Redis == candleSnapshot.

    .venv/bin/python -m bench.hip3_acceptance [--builder-dexes 3] [--markets-per-dex 400]
        [--speed 15] [--run-secs 180] [--ws-drop-every-secs 30] [--extra-sidecars 1]

Starts a private redis-server, the simulator (1m candles, `--original-markets` synthetic markets
on the original dex (the shipped data is 5m only) plus
`--builder-dexes` × `--markets-per-dex` builder-dex markets, the venue's per-IP WebSocket caps,
every WS connection dropped every `--ws-drop-every-secs`), a paper daemon watching every market of
every dex (AI_QUANT_PERP_DEXES=all, AI_QUANT_TOP_N=all) and `--extra-sidecars` more sidecars on
their own loopback IPs (127.0.0.2, ...): a universe past one IP's budget is carried by a fleet,
one sidecar per IP, as in production. BBO is off (one subscription per market), so 999 markets
fit one IP.

After the daemon's first tick over the whole watchlist it runs `--run-secs`, then gets SIGTERM.
Then, with the sidecars stopped, every market's closed candles in Redis are compared with the
venue's `candleSnapshot` over the same range: a gap, a duplicate, a missing market or a value
that differs is a mismatch. Also reported: markets and paper trades per dex, each market's source
(ws / rest / none) just before the stop, how far Redis lags the venue per market, load, and from
the sidecars' logs: closed bars repaired from REST after a session ended, best-effort cross-check
corrections (partial bars the clock closed), fleet share changes (membership flaps).
Prints one JSON object; exits 1 on any mismatch or when the daemon did not exit cleanly.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis

from bench.soak_crash import DaemonRun
from bench.support import REPO_ROOT, SimulatorProcess, start_simulator
from cluster.redis_layout import RedisLayout
from engine.config.perp_dexes import dex_of
from engine.runtime.redis_server import EmbeddedRedis
from engine.sidecar.fleet import FleetKeys, read_sources, sources_summary
from engine.venue.info_client import HyperliquidInfoClient
from engine.venue.rate_budget import RateBudget
from engine.venue.types import VenueError
from strategies.candle import Candle

PREFIX = "hip3acc"
IV = "1m"
IV_MS = 60_000
YAML = "global:\n  engine: {interval: 1m}\n  trade: {entry_min_confidence: low}\n"
STATUS = re.compile(r"symbols=(\d+) evaluated=(\d+)")


def universe(sim: SimulatorProcess) -> list[str]:
    """Every market of every perp dex the venue lists, as `dex:COIN` (the original dex's bare)."""
    names = [d["name"] if d else "" for d in sim.info({"type": "perpDexs"}).json()]
    out: list[str] = []
    for dex in names:
        body = {"type": "meta", "dex": dex} if dex else {"type": "meta"}
        out += [u["name"] for u in sim.info(body).json()["universe"]]
    return out


def _base_env(args: argparse.Namespace) -> dict[str, str]:
    """Our environment without AI_QUANT_/HL_/Ray settings, plus the sidecars' REST pace: the
    simulator's REST limit is off, so start-up backfill and the gap fills after each drop are
    paced by `--rest-weight-per-min` only (the WS budget stays the venue's). `--member-ttl-ms`:
    on a loaded box a sidecar can miss beats for seconds; with the default 5 s TTL the members
    then see each other die and move ~600 markets back and forth (resubscribe + refill)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AI_QUANT_", "HL_", "RAY_ADDRESS"))}
    env.pop("RAY_TMPDIR", None)
    env.update(AI_QUANT_REST_WEIGHT_PER_MIN=str(args.rest_weight_per_min),
               AI_QUANT_CANDLE_REST_MIN_GAP_MS="0", AI_QUANT_CANDLE_REST_MAX_INFLIGHT="8",
               AI_QUANT_SIDECAR_MEMBER_TTL_MS=str(args.member_ttl_ms))
    return env


def daemon_env(
    state: Path, sim: SimulatorProcess, redis_url: str, args: argparse.Namespace
) -> dict[str, str]:
    (state / "strategy.yaml").write_text(YAML)
    env = _base_env(args)
    env.update(
        AI_QUANT_MODE="paper", AI_QUANT_HL_BASE_URL=sim.base_url, AI_QUANT_STATE_DIR=str(state / "daemon"),
        AI_QUANT_STRATEGY_YAML=str(state / "strategy.yaml"), AI_QUANT_INTERVAL=IV,
        AI_QUANT_PERP_DEXES="all", AI_QUANT_TOP_N="all", AI_QUANT_LOOP_TARGET_SECS="1",
        AI_QUANT_EXECUTOR="inprocess", AI_QUANT_SHARDS=str(args.shards), AI_QUANT_REDIS_URL=redis_url,
        AI_QUANT_REDIS_PREFIX=PREFIX, AI_QUANT_WS_ENABLE_BBO="0", AI_QUANT_ANCHOR_SYMBOL="NONE",
        AI_QUANT_ALERT_TARGETS="discord:#alerts", AI_QUANT_ALERT_DRY_RUN="1", AI_QUANT_WEB_PORT="0",
        PYTHONUNBUFFERED="1",
    )  # fmt: skip
    return env


def sidecar_env(
    state: Path, sim: SimulatorProcess, redis_url: str, index: int, args: argparse.Namespace
) -> dict[str, str]:
    """One more fleet member on its own loopback IP (its own WS budget), same watchlist rule."""
    env = _base_env(args)
    env.update(
        AI_QUANT_MODE="paper", AI_QUANT_HL_BASE_URL=sim.base_url, AI_QUANT_REDIS_URL=redis_url,
        AI_QUANT_REDIS_PREFIX=PREFIX, AI_QUANT_STATE_DIR=str(state / f"sidecar{index}"),
        AI_QUANT_INTERVAL=IV, AI_QUANT_PERP_DEXES="all", AI_QUANT_TOP_N="all",
        AI_QUANT_ANCHOR_SYMBOL="NONE", AI_QUANT_WS_ENABLE_BBO="0",
        AI_QUANT_SIDECAR_LOCAL_ADDR=f"127.0.0.{index + 2}", PYTHONUNBUFFERED="1",
    )  # fmt: skip
    return env


def wait_until(cond: Callable[[], bool], timeout: float, what: str, daemon: DaemonRun) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if not daemon.alive():
            code = daemon.proc.returncode
            raise RuntimeError(f"daemon exited ({code}) waiting for {what}: {daemon.text()[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}: {daemon.text()[-2000:]}")
        time.sleep(0.5)


def full_ticks(daemon: DaemonRun, markets: int) -> int:
    """Status lines of ticks over the whole universe that evaluated symbols."""
    found = STATUS.finditer(daemon.text())
    return sum(1 for m in found if int(m.group(1)) >= markets and int(m.group(2)) > 0)


def trades_per_dex(db: Path) -> dict[str, int]:
    if not db.exists():
        return {}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT symbol FROM trades WHERE kind='OPEN'").fetchall()
    return dict(Counter(dex_of(s) or "main" for (s,) in rows))


def compare(
    client: redis.Redis, layout: RedisLayout, rest: HyperliquidInfoClient, market: str
) -> tuple[str, int]:
    """(verdict, bars compared) of one market: "ok", "missing", "gap" or "differs"."""
    candles = layout.read_candles(client, market, IV)
    if not candles:
        return "missing", 0
    opens = [c.t for c in candles]
    if opens != list(range(opens[0], opens[-1] + IV_MS, IV_MS)):
        return "gap", len(candles)
    venue = [c for c in _snapshot(rest, market, opens[0], opens[-1]) if c.t <= opens[-1]]
    if venue != candles:
        pairs = [(a, b) for a, b in zip(candles, venue, strict=False) if a != b]
        if not pairs:
            return f"differs: redis {len(candles)} bars, venue {len(venue)}", len(candles)
        redis_bar, venue_bar = pairs[0]
        text = f"differs: {len(pairs)} of {len(candles)} bars; first redis={redis_bar} venue={venue_bar}"
        return text, len(candles)
    return "ok", len(candles)


def _snapshot(rest: HyperliquidInfoClient, market: str, start: int, end: int) -> list[Candle]:
    """candleSnapshot, asked again on a timeout or error (a loaded simulator answers late)."""
    for attempt in range(6):
        try:
            return list(rest.candle_snapshot(market, IV, start, end))
        except (VenueError, ValueError):
            if attempt == 5:
                raise
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def log_counts(state: Path) -> dict[str, int]:
    """What the sidecars logged: closed bars repaired after a session ended, best-effort cross-check
    corrections, share changes (each moves markets between members: resubscribe + refill)."""
    text = "".join(p.read_text(errors="replace") for p in [state / "daemon.log", *state.glob("sidecar*.log")]
                   if p.exists())  # fmt: skip
    return {"repaired_logged": text.count("closed bar repaired from REST"),
            "cross_check_corrections_logged": text.count("closed candle corrected from REST"),
            "share_changes_logged": text.count("sidecar share changed")}  # fmt: skip


def settle(client: redis.Redis, layout: RedisLayout, sim: SimulatorProcess, markets: Sequence[str],
           daemon: DaemonRun, timeout: float) -> int:
    """Stop the drops; wait until every market's closed key passes the bar forming then (the fills
    of the last drop are done). Returns the venue time of the stop of the drops."""
    sim.set_faults(ws_drop_every_secs=0)
    quiet_ms = int(sim.state()["now_ms"])
    target = quiet_ms // IV_MS * IV_MS

    def caught_up() -> bool:
        keys = layout.read_candle_keys(client, markets, IV)
        return all((k.closed_close_ms or 0) >= target for k in keys.values())

    wait_until(caught_up, timeout, "every market's key past the last drop", daemon)
    return quiet_ms


def warm(client: redis.Redis, layout: RedisLayout, markets: Sequence[str], daemon: DaemonRun) -> bool:
    """Every market has a closed candle in Redis and the daemon ticked over all of them."""
    keyed = all(k.closed_close_ms for k in layout.read_candle_keys(client, markets, IV).values())
    return keyed and full_ticks(daemon, len(markets)) > 0


def start_extras(args: argparse.Namespace, state: Path, sim: SimulatorProcess,
                 url: str) -> list[subprocess.Popen[bytes]]:
    extras = []
    for i in range(args.extra_sidecars):
        log = (state / f"sidecar{i}.log").open("ab")
        extras.append(subprocess.Popen([sys.executable, "-m", "engine.sidecar"], cwd=REPO_ROOT,
                                       env=sidecar_env(state, sim, url, i, args), stdout=log, stderr=log))
    return extras


def stop_all(daemon: DaemonRun | None, extras: Sequence[subprocess.Popen[bytes]]) -> int:
    """SIGTERM the daemon (its exit code) and the extra sidecars; SIGKILL what does not stop."""
    code = daemon.terminate() if daemon is not None and daemon.alive() else -1
    for proc in extras:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return code


def compare_all(sim: SimulatorProcess, client: redis.Redis, layout: RedisLayout,
                markets: Sequence[str]) -> tuple[dict[str, str], int]:
    verdicts: dict[str, str] = {}
    bars = 0
    with HyperliquidInfoClient(sim.base_url, timeout_secs=30, budget=RateBudget(100_000_000)) as rest:
        for market in markets:
            verdicts[market], n = compare(client, layout, rest, market)
            bars += n
    return verdicts, bars


def run(args: argparse.Namespace, state: Path) -> dict[str, Any]:
    layout = RedisLayout(PREFIX)
    sim_args = ["--interval", IV, "--speed", str(args.speed), "--seed", "7", "--history-bars", "300",
                "--rate-limit-per-min", "0", "--synthetic", str(args.original_markets),
                "--builder-dexes", str(args.builder_dexes), "--markets-per-dex", str(args.markets_per_dex),
                "--ws-drop-every-secs", str(args.ws_drop_every_secs), "--tick-ms", str(args.tick_ms),
                "--ws-max-connections", "10", "--ws-max-new-connections-per-min", "30",
                "--ws-max-messages-per-min", "2000", "--ws-max-subscriptions", "1000"]  # fmt: skip
    facts: dict[str, Any] = {}
    with EmbeddedRedis(state / "redis", appendonly=True) as server:
        sim = start_simulator(sim_args, state / "logs")
        client = redis.Redis.from_url(server.url)
        extras: list[subprocess.Popen[bytes]] = []
        daemon: DaemonRun | None = None
        try:
            markets = universe(sim)
            extras = start_extras(args, state, sim, server.url)
            started = time.monotonic()
            daemon = DaemonRun(daemon_env(state, sim, server.url, args), state / "daemon.log")
            wait_until(lambda: warm(client, layout, markets, daemon), args.timeout,
                       "every market's candles and a tick over all of them", daemon)
            facts["warm_secs"] = round(time.monotonic() - started, 1)
            time.sleep(args.run_secs)  # the run itself: the daemon ticks, the simulator drops WS
            facts["sources"] = read_sources(client, FleetKeys(PREFIX), IV, markets)
            facts["ws_drops"] = int(sim.state()["ws_dropped"])
            settled = time.monotonic()
            settle(client, layout, sim, markets, daemon, args.timeout)
            facts["settle_secs"] = round(time.monotonic() - settled, 1)
            facts["full_ticks"] = full_ticks(daemon, len(markets))
            facts["daemon_exit"] = stop_all(daemon, extras)
            facts["verdicts"], facts["bars_compared"] = compare_all(sim, client, layout, markets)
        finally:
            stop_all(daemon, extras)
            sim.stop()
    return report(markets, facts, state, args)


def report(
    markets: Sequence[str], facts: dict[str, Any], state: Path, args: argparse.Namespace
) -> dict[str, Any]:
    verdicts: dict[str, str] = facts["verdicts"]
    bad = {m: v for m, v in verdicts.items() if v != "ok"}
    by_dex: dict[str, Counter[str]] = {}
    for m, s in facts["sources"].items():
        by_dex.setdefault(dex_of(m) or "main", Counter())[s.value] += 1
    return {
        "markets": len(markets),
        "markets_per_dex": dict(Counter(dex_of(m) or "main" for m in markets)),
        "trades_per_dex": trades_per_dex(state / "daemon" / "trading_paper.db"),
        "sources": sources_summary(facts["sources"]),
        "sources_per_dex": {d: dict(c) for d, c in by_dex.items()},
        "markets_compared": len(verdicts),
        "bars_compared": facts["bars_compared"],
        "mismatches": len(bad),
        "mismatch_kinds": dict(Counter(v.split(":")[0] for v in bad.values())),
        "mismatch_sample": dict(list(bad.items())[:5]),
        "full_ticks": facts["full_ticks"],
        "daemon_exit": facts["daemon_exit"],
        "warm_secs": facts["warm_secs"],
        "settle_secs": facts["settle_secs"],
        "run_secs": args.run_secs,
        "speed": args.speed,
        "ws_drop_every_secs": args.ws_drop_every_secs,
        "ws_drops": facts["ws_drops"],
        "extra_sidecars": args.extra_sidecars,
        "rest_weight_per_min": args.rest_weight_per_min,
        "member_ttl_ms": args.member_ttl_ms,
        "sim_tick_ms": args.tick_ms,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        **log_counts(state),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (argparse exits 2 on a bad value)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--builder-dexes", type=int, default=3)
    parser.add_argument("--markets-per-dex", type=int, default=400)
    parser.add_argument("--original-markets", type=int, default=7, help="synthetic original-dex markets")
    parser.add_argument("--speed", type=float, default=15.0, help="venue seconds per wall second")
    parser.add_argument("--run-secs", type=float, default=180.0, help="run after the first full tick (s)")
    parser.add_argument("--ws-drop-every-secs", type=float, default=30.0)
    parser.add_argument("--extra-sidecars", type=int, default=1, help="fleet members besides the daemon's")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--tick-ms", type=int, default=250, help="the simulator's WS push period")
    parser.add_argument("--member-ttl-ms", type=int, default=5000, help="AI_QUANT_SIDECAR_MEMBER_TTL_MS")
    parser.add_argument("--rest-weight-per-min", type=int, default=200_000, help="a sidecar's REST budget")
    parser.add_argument("--timeout", type=float, default=900.0, help="warm-up limit (s)")
    parser.add_argument("--state-dir", type=Path, default=None, help="keep logs and DBs here (default: temp)")
    args = parser.parse_args(argv)
    sizes = (args.builder_dexes, args.markets_per_dex, args.original_markets, args.shards,
             args.rest_weight_per_min, args.tick_ms)
    if min(sizes) < 1 or args.speed <= 0 or args.run_secs < 0 or args.ws_drop_every_secs < 0 \
            or not 0 <= args.extra_sidecars <= 8:
        parser.error("--builder-dexes, --markets-per-dex, --original-markets, --shards, --tick-ms, "
                     "--rest-weight-per-min >= 1, --speed > 0, --run-secs and --ws-drop-every-secs >= 0, "
                     "--extra-sidecars in [0, 8]")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.state_dir is not None:
        args.state_dir.mkdir(parents=True, exist_ok=True)
        out = run(args, args.state_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="aiq-bench-hip3-") as state:
            out = run(args, Path(state))
    print(json.dumps(out, indent=2))
    return 0 if out["mismatches"] == 0 and out["daemon_exit"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
