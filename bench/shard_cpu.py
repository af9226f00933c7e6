"""CPU per symbol inside ONE shard on the steady-state tick, fast path against the general path, same run.

    python -m bench.shard_cpu --symbols 500 --ticks 20 --json

Why in-process: on a shared 2-core box wall times say more about the neighbours than about the
code; the process CPU time of `ShardCore.evaluate` (time.process_time) and Redis' own time for
its reads (INFO commandstats: the read script and the closed-bar journal's XRANGE/XREVRANGE;
the writer's journal XADD is reported apart, per symbol written) do not. Two `ShardCore`s hold
the same synthetic symbols (bench.universe) over one private redis-server, each under its own key prefix:
- "fast": the shard as it runs (`RedisShardStore`: the closed-bar journal, `cluster.shard_journal`,
  then the bulk read, `cluster.shard_fast`);
- "general": the same store seen without `read_batch`, so every symbol takes the general path
  (`ShardCore._view` / `_catch_up`, `Candle` objects): the same-run baseline.
Each timed tick writes one closed candle per symbol to both prefixes, then evaluates both shards
(alternating which goes first) and compares their records field for field (`mismatches`, which
must be 0); `timed_candles_fast` counts the timed candles the fast paths applied (all, normally),
`timed_candles_journal` those of them applied from the closed-bar journal.
Checkpoints run as in production (`--checkpoint-every`, staggered by symbol).
`--profile N` prints the fast shard's top N cProfile lines to stderr. Prints one JSON document
(or a short table); nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench.support import percentile
from bench.universe import INTERVAL, series, symbol_names
from cluster.redis_layout import RedisLayout, encode_candle
from cluster.shard_core import ConfigSource, ShardCore, ShardSettings
from cluster.shard_store import RedisShardStore
from engine.runtime.redis_server import EmbeddedRedis
from strategies.candle import Candle


class GeneralOnly:
    """A store seen without its bulk read: every symbol takes ShardCore's general path."""

    def __init__(self, inner: RedisShardStore) -> None:
        self._inner = inner

    def read_since(self, resume: Any) -> Any:
        return self._inner.read_since(resume)

    def load_checkpoints(self, names: Any) -> Any:
        return self._inner.load_checkpoints(names)

    def save_checkpoints(self, states: Any) -> None:
        self._inner.save_checkpoints(states)

    def read_forming(self, symbols: Any) -> Any:
        return self._inner.read_forming(symbols)


def load_history(client: redis.Redis, layout: RedisLayout, hist: dict[str, list[Candle]], upto: int) -> None:
    """Write bars [0, upto) of every symbol as the sidecar would (the last one as the closed key)."""
    names = list(hist)
    for i in range(0, len(names), 500):
        pipe = client.pipeline(transaction=False)
        for sym in names[i: i + 500]:
            members = {encode_candle(c): c.t for c in hist[sym][: upto - 1]}
            pipe.zadd(layout.candles_key(sym, INTERVAL), members)
        pipe.execute()
        pipe = client.pipeline(transaction=True)
        layout.write_closed_many(pipe, INTERVAL, {s: hist[s][upto - 1: upto] for s in names[i: i + 500]})
        pipe.execute()


def _write_bar(client: redis.Redis, layouts: list[RedisLayout], hist: dict[str, list[Candle]], bar: int,
               ) -> None:
    pipe = client.pipeline(transaction=True)
    for layout in layouts:
        layout.write_closed_many(pipe, INTERVAL, {s: c[bar: bar + 1] for s, c in hist.items()})
    pipe.execute()


READ_COMMANDS = ("evalsha", "xrange", "xrevrange")  # the candle read script and the journal reads


def _usec(client: redis.Redis, commands: tuple[str, ...] = READ_COMMANDS) -> float:
    stats = client.info("commandstats")
    return float(sum(stats.get(f"cmdstat_{name}", {}).get("usec", 0) for name in commands))


def run(args: argparse.Namespace, server_dir: Path) -> dict[str, Any]:
    """Load the history, catch both shards up, time `args.ticks` ticks; return the report."""
    server = EmbeddedRedis(server_dir, appendonly=False)
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        total = args.warm_bars + args.ticks + 2
        symbols = symbol_names(args.symbols)
        hist = {s: series(i, total) for i, s in enumerate(symbols)}
        hist["BTC"] = series(0, total, anchor=True)
        layouts = {name: RedisLayout(prefix, keep_bars=total + 10) for name, prefix in (("fast", "bf"),
                                                                                         ("general", "bg"))}
        for layout in layouts.values():
            load_history(client, layout, hist, args.warm_bars)
        settings = ShardSettings(interval=INTERVAL, checkpoint_every=args.checkpoint_every)
        stores = {"fast": RedisShardStore(client, layouts["fast"], INTERVAL),
                  "general": GeneralOnly(RedisShardStore(client, layouts["general"], INTERVAL))}
        cores = {name: ShardCore(0, store, settings, ConfigSource(), symbols=symbols)
                 for name, store in stores.items()}
        first = {s: hist[s][args.warm_bars - 1].close_ms for s in symbols}
        for core in cores.values():
            core.evaluate(first)
        for bar in range(args.warm_bars, args.warm_bars + 2):  # untimed: fill the applied tails, settle
            _write_bar(client, list(layouts.values()), hist, bar)
            for core in cores.values():
                core.evaluate({s: hist[s][bar].close_ms for s in symbols})
        # This process also holds both shards' whole histories (the actor would not): freeze them so the
        # cyclic GC does not rescan them during timed ticks (as bench.tick does for its driver).
        gc.collect()
        gc.freeze()
        cpu: dict[str, list[float]] = {name: [] for name in cores}
        wall: dict[str, list[float]] = {name: [] for name in cores}
        redis_us: dict[str, list[float]] = {name: [] for name in cores}
        journal_us: list[float] = []  # the writer's XADD of the journal, per symbol written
        mismatches = not_ok = 0
        profile = cProfile.Profile() if args.profile else None
        fast_before, journal_before = cores["fast"].fast_applied, cores["fast"].journal.applied
        for tick, bar in enumerate(range(args.warm_bars + 2, args.warm_bars + 2 + args.ticks)):
            before_xadd = _usec(client, ("xadd",))
            _write_bar(client, list(layouts.values()), hist, bar)
            journal_us.append((_usec(client, ("xadd",)) - before_xadd) / (len(layouts) * len(hist)))
            batch = {s: hist[s][bar].close_ms for s in symbols}
            records: dict[str, list[Any]] = {}
            for name in (["fast", "general"] if tick % 2 == 0 else ["general", "fast"]):
                before_redis = _usec(client)
                wall0, cpu0 = time.perf_counter(), time.process_time()
                if profile is not None and name == "fast":
                    profile.enable()
                records[name] = cores[name].evaluate(batch)
                if profile is not None and name == "fast":
                    profile.disable()
                cpu[name].append((time.process_time() - cpu0) * 1e6 / args.symbols)
                wall[name].append((time.perf_counter() - wall0) * 1e3)
                redis_us[name].append((_usec(client) - before_redis) / args.symbols)
            pairs = zip(records["fast"], records["general"], strict=True)
            mismatches += sum(repr(a) != repr(b) for a, b in pairs)
            not_ok += sum(r.status.value != "ok" for r in records["fast"])
        if profile is not None:
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats(args.sort).print_stats(args.profile)
            print(out.getvalue(), file=sys.stderr)
        paths = {name: {"cpu_us_per_symbol_p50": round(percentile(cpu[name], 0.5), 1),
                        "cpu_us_per_symbol_p90": round(percentile(cpu[name], 0.9), 1),
                        "wall_ms_p50": round(percentile(wall[name], 0.5), 2),
                        "redis_read_us_per_symbol_p50": round(percentile(redis_us[name], 0.5), 2)}
                 for name in cores}
        return {"bench": "shard_cpu", "symbols": args.symbols, "ticks": args.ticks,
                "checkpoint_every": args.checkpoint_every,
                "paths": paths,
                "cpu_ratio_general_over_fast": round(paths["general"]["cpu_us_per_symbol_p50"]
                                                     / max(paths["fast"]["cpu_us_per_symbol_p50"], 1e-9), 2),
                "mismatches": mismatches, "records_not_ok": not_ok,
                "timed_candles_fast": cores["fast"].fast_applied - fast_before,
                "timed_candles_journal": cores["fast"].journal.applied - journal_before,
                "redis_journal_write_us_per_symbol_p50": round(percentile(journal_us, 0.5), 2),
                "rehydrated": cores["fast"].rehydrated, "loadavg": list(os.getloadavg())}
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--warm-bars", type=int, default=260)
    parser.add_argument("--checkpoint-every", type=int, default=16)
    parser.add_argument("--profile", type=int, default=0, help="print the fast shard's top N cProfile lines")
    parser.add_argument("--sort", default="tottime", help="cProfile sort key for --profile")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.symbols < 1 or args.ticks < 1 or args.warm_bars < 2 or args.checkpoint_every < 1:
        parser.error("--symbols, --ticks, --checkpoint-every must be >= 1 and --warm-bars >= 2")
    try:
        series(args.symbols, args.warm_bars + args.ticks + 2)
    except ValueError as e:
        parser.error(str(e))
    with tempfile.TemporaryDirectory(prefix="bench-shard-cpu-") as tmp:
        report = run(args, Path(tmp))
    if args.json:
        print(json.dumps(report))
    else:
        for name, row in report["paths"].items():
            print(f"{name:8s} " + " ".join(f"{k}={v}" for k, v in row.items()))
        print(f"mismatches={report['mismatches']} loadavg={report['loadavg']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
