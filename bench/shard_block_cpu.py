"""CPU per symbol of ONE shard's `ShardCore.evaluate_block` (what the Ray actor runs), in-process.

    python -m bench.shard_block_cpu --symbols 500 --ticks 20 [--variants V] [--profile N] --json

Why: `bench.shard_cpu` times `evaluate()`, which also builds every record object (tests only; the
actor ships the columnar block); this times `evaluate_block` alone with `time.thread_time`
(this thread's CPU, so the neighbours on a shared box do not count), over a private
redis-server holding synthetic symbols (bench.universe), the store as the actor uses it
(closed-bar journal, bulk read). It depends only on APIs older than itself, so the same file can
time another tree of the project (`PYTHONPATH=/other/tree python /this/file`) for a same-run A/B;
`digest` (a hash of every tick's records and of every checkpoint written) must then match.
Prints one JSON document; nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
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

from bench.shard_cpu import load_history
from bench.universe import INTERVAL, series, symbol_names
from cluster.redis_layout import RedisLayout
from cluster.shard_core import ConfigSource, ShardCore, ShardSettings
from cluster.shard_store import RedisShardStore
from engine.runtime.redis_server import EmbeddedRedis


def _source(variants: int) -> Any:
    """mei_alpha_v1 primaries, with `variants` donchian_breakout shadows per symbol (as bench.tick)."""
    if not variants:
        return ConfigSource()
    from strategies.config import load_yaml_text

    sets = 4 if variants % 4 == 0 else 2 if variants % 2 == 0 else 1
    steps = variants // sets
    thresholds = [round(0.9 * i / steps, 4) for i in range(steps)]
    text = ("strategies:\n  primary: mei_alpha_v1\n  shadows:\n    - name: v\n"
            "      strategy: donchian_breakout\n"
            f"      grid: {{channel_bars: {[10, 20, 40, 55][:sets]}, min_breakout_atr: {thresholds}}}\n")
    return ConfigSource(overrides=load_yaml_text(text))


def _timed(args: argparse.Namespace, core: ShardCore, write: Any, hist: dict[str, list[Any]],
           want: list[str]) -> tuple[list[float], Any, cProfile.Profile | None]:
    """The timed ticks: each one's thread CPU, the digest of their records, the profile (if asked)."""
    digest = hashlib.blake2b(digest_size=8)
    cpu: list[float] = []
    profile = cProfile.Profile() if args.profile else None
    for bar in range(args.warm_bars + 2, args.warm_bars + 2 + args.ticks):
        write(bar)
        batch = {s: c[bar].close_ms for s, c in hist.items() if s != "BTC"}
        if profile is not None:
            profile.enable()
        cpu0 = time.thread_time()
        block = core.evaluate_block(batch, want)
        cpu.append(time.thread_time() - cpu0)
        if profile is not None:
            profile.disable()
        for record in block.records():
            digest.update(repr(record).encode())
    return cpu, digest, profile


def run(args: argparse.Namespace, server_dir: Path) -> dict[str, Any]:
    """Load the history, catch the shard up, time `args.ticks` ticks; return the report."""
    server = EmbeddedRedis(server_dir, appendonly=False)
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        total = args.warm_bars + args.ticks + 2
        symbols = symbol_names(args.symbols)
        hist = {s: series(i, total) for i, s in enumerate(symbols)}
        hist["BTC"] = series(0, total, anchor=True)
        layout = RedisLayout("ab", keep_bars=total + 10)
        load_history(client, layout, hist, args.warm_bars)
        settings = ShardSettings(interval=INTERVAL, checkpoint_every=args.checkpoint_every)
        core = ShardCore(0, RedisShardStore(client, layout, INTERVAL), settings, _source(args.variants),
                         symbols=symbols)
        want = symbols[:: max(1, args.symbols // max(args.open_positions, 1))][: args.open_positions]

        def write(bar: int) -> None:
            pipe = client.pipeline(transaction=True)
            layout.write_closed_many(pipe, INTERVAL, {s: c[bar: bar + 1] for s, c in hist.items()})
            pipe.execute()

        core.evaluate_block({s: hist[s][args.warm_bars - 1].close_ms for s in symbols}, want)
        for bar in range(args.warm_bars, args.warm_bars + 2):
            write(bar)
            core.evaluate_block({s: hist[s][bar].close_ms for s in symbols}, want)
        if not args.no_freeze:  # this process also holds every symbol's history (the actor does not)
            gc.collect()
            gc.freeze()
        cpu, digest, profile = _timed(args, core, write, hist, want)
        for key in sorted(client.keys(f"{layout.prefix}:ckpt:*")):
            digest.update(key + (client.get(key) or b""))
        if profile is not None:
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats(args.sort).print_stats(args.profile)
            print(out.getvalue(), file=sys.stderr)
        cpu.sort()
        rows = args.symbols * (1 + args.variants)
        tree = os.path.dirname(os.path.dirname(os.path.abspath(sys.modules["cluster"].__file__ or "")))
        return {"bench": "shard_block_cpu", "tree": tree, "symbols": args.symbols, "variants": args.variants,
                "ticks": args.ticks,
                "cpu_us_per_symbol_p50": round(cpu[len(cpu) // 2] * 1e6 / args.symbols, 2),
                "cpu_us_per_symbol_min": round(cpu[0] * 1e6 / args.symbols, 2),
                "cpu_us_per_row_p50": round(cpu[len(cpu) // 2] * 1e6 / rows, 3),
                "digest": digest.hexdigest(), "loadavg": [round(x, 2) for x in os.getloadavg()]}
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--variants", type=int, default=0)
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--warm-bars", type=int, default=260)
    parser.add_argument("--checkpoint-every", type=int, default=16)
    parser.add_argument("--open-positions", type=int, default=5, help="symbols whose features are wanted")
    parser.add_argument("--profile", type=int, default=0, help="print the top N cProfile lines to stderr")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--no-freeze", action="store_true", help="leave the cyclic GC as the actor has it")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.symbols < 1 or args.ticks < 1 or args.warm_bars < 2 or args.checkpoint_every < 1:
        parser.error("--symbols, --ticks, --checkpoint-every must be >= 1 and --warm-bars >= 2")
    with tempfile.TemporaryDirectory(prefix="bench-block-cpu-") as tmp:
        report = run(args, Path(tmp))
    print(json.dumps(report) if args.json else " ".join(f"{k}={v}" for k, v in report.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
