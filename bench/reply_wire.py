"""What a shard reply's size costs the driver on Ray: raw arrays against the compact wire form, same run.

    python -m bench.reply_wire --symbols 500 --variants 8 --calls 30 --json

Why: bench.scale's two-node tick lost ~50 ms of driver CPU in its Ray calls, and each shard's
reply (500 symbols x 9 rows) was ~224 KB, above Ray's 100 KiB inline-return limit, so it went
through the plasma object store. `cluster.column_wire` now pickles a `DecisionBlock` in ~36 KB.
This bench builds one real shard block (a `ShardCore` over a `MemoryShardStore`, mei_alpha_v1 plus
`--variants` donchian_breakout shadows, `--bars-per-call` candles a call, as bench.scale), then on
a loopback cluster (head with 0 CPUs, two worker nodes, one actor each, SPREAD) alternates calls
that return it in the two forms:
- "raw": the block's arrays as plain numpy arrays (what Ray shipped before: out-of-band buffers);
- "compact": the `DecisionBlock` itself (`column_wire` forms).
The driver sends one call per actor with a symbol batch, waits for both, rebuilds and checks the
block (`cluster.pool.check_reply`) and ranks it, as `ShardPool.evaluate` does. Printed per form:
pickled bytes per reply, wall ms per round and the driver thread's CPU ms per round (p50, mean).
The actors do no work, so the numbers are the transport alone. No timing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import sys
import tempfile
import time
from typing import Any

from bench.support import percentile
from bench.universe import INTERVAL, series, symbol_names


def build_block(symbols: int, variants: int, per_call: int) -> tuple[Any, dict[str, int]]:
    """One shard's `DecisionBlock` after a few calls of `per_call` candles, and its batch."""
    from bench.tick import _source
    from cluster.shard_core import ShardCore, ShardSettings
    from cluster.shard_store import MemoryShardStore

    names = symbol_names(symbols)
    warm = 260
    hist = {s: series(i, warm + 3 * per_call) for i, s in enumerate(names)}
    hist["BTC"] = series(0, warm + 3 * per_call, anchor=True)
    store = MemoryShardStore()
    for s, candles in hist.items():
        store.add_closed(s, candles[:warm])
    source = _source(argparse.Namespace(primary="mei_alpha_v1", variants=variants))
    core = ShardCore(0, store, ShardSettings(interval=INTERVAL), source, symbols=names)
    bar, block, batch = warm, None, {}
    core.evaluate_block({s: hist[s][warm - 1].close_ms for s in names})
    for _ in range(3):
        for s, candles in hist.items():
            store.add_closed(s, candles[bar: bar + per_call])
        bar += per_call
        batch = {s: hist[s][bar - 1].close_ms for s in names}
        block = core.evaluate_block(batch)
    return block, batch


class Replier:
    """An actor holding one block; `reply(batch, form)` returns it raw or compact (no work)."""

    def __init__(self, payload: bytes) -> None:
        self.block = pickle.loads(payload)

    def reply(self, batch: dict[str, int], form: str) -> Any:
        return self.block if form == "compact" else raw_form(self.block)


def raw_form(b: Any) -> tuple[Any, ...]:
    """The block as plain arrays and tables (Ray pickles the arrays out of band, as before)."""
    v = b.variants
    return (b.symbols, b.rows, v.symbols, v.variants, v.strategies, v.texts, v.rows, dict(b.features),
            dict(b.primaries))


def from_raw(raw: tuple[Any, ...]) -> Any:
    from cluster.decision_block import DecisionBlock
    from cluster.records import VariantColumns

    symbols, rows, *tables, vrows, features, primaries = raw
    return DecisionBlock(symbols, rows, VariantColumns(*tables, vrows), features, primaries)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import ray

    from bench.scale import loopback_cluster
    from cluster.decision_block import TickDecisions
    from cluster.pool import check_reply

    block, batch = build_block(args.symbols, args.variants, args.bars_per_call)
    payload = pickle.dumps(block, protocol=5)
    raw_bytes = len(pickle.dumps(raw_form(block), protocol=5))
    stats: dict[str, dict[str, list[float]]] = {f: {"wall_ms": [], "driver_cpu_ms": []}
                                                for f in ("raw", "compact")}
    with loopback_cluster([1, 1], dashboard=False, namespace="aiq-reply-wire"):
        actor = ray.remote(Replier).options(num_cpus=0.1, scheduling_strategy="SPREAD")
        actors = [actor.remote(payload) for _ in range(2)]
        ray.get([a.reply.remote({}, "compact") for a in actors])
        symbols = tuple(batch)
        for call in range(args.calls + 2):
            for form in ("raw", "compact") if call % 2 else ("compact", "raw"):
                t0, c0 = time.perf_counter(), time.thread_time()
                refs = [a.reply.remote(batch, form) for a in actors]
                ray.wait(refs, num_returns=len(refs))
                got = [ray.get(r) for r in refs]
                blocks = [from_raw(g) if form == "raw" else g for g in got]
                for b in blocks:
                    check_reply(b, symbols)
                TickDecisions({**batch}, blocks[:1]).ranked()
                if call >= 2:  # the first calls warm the workers' imports and pools
                    stats[form]["wall_ms"].append((time.perf_counter() - t0) * 1000.0)
                    stats[form]["driver_cpu_ms"].append((time.thread_time() - c0) * 1000.0)
        for a in actors:
            ray.kill(a)
    out: dict[str, Any] = {"reply_bytes": {"raw": raw_bytes, "compact": len(payload)}}
    for form, s in stats.items():
        out[form] = {f"{k}_{agg}": round(fn(v), 3) for k, v in s.items()
                     for agg, fn in (("p50", statistics.median), ("mean", statistics.fmean),
                                     ("p90", lambda x: percentile(x, 0.9)))}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500, help="symbols in one shard's reply")
    parser.add_argument("--variants", type=int, default=8)
    parser.add_argument("--bars-per-call", type=int, default=4)
    parser.add_argument("--calls", type=int, default=30, help="timed rounds per form (alternating)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from engine.runtime.ray_runtime import prepare_ray_environment

    prepare_ray_environment()
    out = {"bench": "reply_wire", "symbols": args.symbols, "variants": args.variants,
           "bars_per_call": args.bars_per_call, "calls": args.calls, "loadavg_before": list(os.getloadavg())}
    with tempfile.TemporaryDirectory(prefix="aiqw-", dir="/tmp") as tmp:
        os.environ.setdefault("RAY_TMPDIR", tmp)  # our cluster's address file stays private
        out.update(run(args))
    out["loadavg_after"] = list(os.getloadavg())
    print(json.dumps(out, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
