"""Tick latency of the Ray shards vs the reference engine's per-symbol batch analyze, same run.

    python -m bench.tick --symbols 100,1000,10000 --json

For each universe size N (synthetic symbols from the shipped candles, see bench.universe):
1. a private redis-server and embedded Ray (2 CPUs) are started; `--warm-bars` of history per
   symbol (and the BTC anchor) go into Redis through RedisLayout;
2. a ShardPool of `--shards` actors catches up on that history (untimed);
3. each timed tick: the "sidecar" writes one closed candle per symbol (candles, close keys and
   the notification in one MULTI/EXEC); the clock starts when that write returns; the "driver"
   waits for the notification (pub/sub), reads all close keys in one round trip (or, with
   --batch-from notification, takes the changed symbols from the notification payload), sends
   the changed symbols to the pool (one call per shard), and ranks the decisions; clock stops;
4. baseline on the same ticks (untimed for the shards): the reference engine's way, i.e. per
   changed symbol, sequentially in this process, read the newest 200 candles from Redis and
   run the batch `analyze` on them (BTC gate from the anchor's newest 200 candles). For large N
   a sample of symbols is timed and the per-tick total extrapolated (reported as such);
5. parity: for a sample of symbols, every timed tick's shard decision is compared with the batch
   `analyze_series` over the same FULL history (the invariant), and we also report how often
   the 200-bar-window baseline disagrees with it (why the shards keep whole-history state);
6. memory: actor RSS growth per symbol after catch-up, and the traced size of one symbol's
   in-memory state (tracemalloc over an in-process ShardCore).

`--variants V` adds V shadow variants of donchian_breakout per symbol (a grid over the channel
length, i.e. several indicator declaration sets, and the breakout threshold), so a tick evaluates
symbols x (1 + V) rows; `--primary REF` makes an SDK strategy the primary instead of mei_alpha_v1
(a mei_alpha_v1 primary and the SDK rows both run columnar inside the shards, see
cluster/columnar_book.py and cluster/mei_rows.py; `--per-row` turns that off for comparison).
Per size the JSON adds
`rows`, `us_per_row_inside_shard_p50` and memory per row, and `parity_variants`: the shards'
variant (and SDK primary) records of every timed tick against the strategy's batch decision over
the full history. The baseline stays the reference engine's mei_alpha_v1 per symbol (it has no
variants): its signal comparison is reported only for a mei primary.
Prints one JSON document (or a short table without --json). No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.support import percentile
from bench.universe import INTERVAL, INTERVAL_MS, series, symbol_names
from cluster.redis_layout import RedisLayout, encode_candle
from strategies.candle import Candle

LOOKBACK_BARS = 200  # AI_QUANT_LOOKBACK_BARS default in the reference engine


def _write_history(client: Any, layout: RedisLayout, hist: dict[str, list[Candle]], upto: int) -> None:
    """Bulk-load bars [0, upto) (one ZADD per symbol), then set close keys via write_closed_many."""
    names = list(hist)
    for i in range(0, len(names), 500):
        pipe = client.pipeline(transaction=False)
        for sym in names[i: i + 500]:
            candles = hist[sym][: upto - 1]
            pipe.zadd(layout.candles_key(sym, INTERVAL), {encode_candle(c): c.t for c in candles})
        pipe.execute()
        pipe = client.pipeline(transaction=True)
        layout.write_closed_many(pipe, INTERVAL, {s: hist[s][upto - 1: upto] for s in names[i: i + 500]})
        pipe.execute()


def _write_bar(client: Any, layout: RedisLayout, hist: dict[str, list[Candle]], bar: int) -> None:
    pipe = client.pipeline(transaction=True)
    layout.write_closed_many(pipe, INTERVAL, {s: c[bar: bar + 1] for s, c in hist.items()})
    pipe.execute()


def _wait_notification(pubsub: Any, timeout_secs: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_secs
    while time.monotonic() < deadline:
        msg = pubsub.get_message(timeout=1.0)
        if msg is not None and msg.get("type") == "message":
            return msg["data"]
    raise TimeoutError("no candle-close notification")


def _baseline_tick(client: Any, layout: RedisLayout, symbols: list[str]) -> tuple[float, dict[str, Any]]:
    """Reference style: per symbol, read the newest 200 candles and batch-analyze. Returns (ms, signals)."""
    import pandas as pd

    from strategies.config import default_config
    from strategies.mei_alpha_v1 import analyze, btc_bullish_series

    def frame(candles: list[Candle]) -> pd.DataFrame:
        return pd.DataFrame({"Open": [c.o for c in candles], "High": [c.h for c in candles],
                             "Low": [c.l for c in candles], "Close": [c.c for c in candles],
                             "Volume": [c.v for c in candles]})

    started = time.perf_counter()
    btc = layout.read_candles(client, "BTC", INTERVAL, limit=LOOKBACK_BARS)
    btc_bullish = btc_bullish_series(pd.Series([c.c for c in btc]))[-1] if btc else None
    out = {}
    for sym in symbols:
        candles = layout.read_candles(client, sym, INTERVAL, limit=LOOKBACK_BARS)
        decision = analyze(frame(candles), sym, btc_bullish, default_config(sym))
        out[sym] = (decision.signal, decision.confidence)
    return (time.perf_counter() - started) * 1000.0, out


MISMATCH_EXAMPLES = 20  # cap of the (symbol, tick) mismatches the JSON lists


def _parity(hist: dict[str, list[Candle]], symbols: list[str], first_bar: int,
            shard_records: list[dict[str, Any]],
            examples: list[dict[str, Any]] | None = None) -> tuple[int, int]:
    """Compare shard records of ticks first_bar.. with analyze_series over the full history.

    Mismatches are appended to `examples` (up to MISMATCH_EXAMPLES): a count alone cannot tell a
    shard bug (one symbol, every tick after some bar) from a bench race (one tick, many symbols).
    """
    import pandas as pd

    from strategies.config import default_config
    from strategies.mei_alpha_v1 import analyze_series, btc_bullish_series

    bullish = btc_bullish_series(pd.Series([c.c for c in hist["BTC"]]))
    checked = mismatches = 0
    last = first_bar + len(shard_records)
    for sym in symbols:
        candles = hist[sym][:last]
        df = pd.DataFrame({"Open": [c.o for c in candles], "High": [c.h for c in candles],
                           "Low": [c.l for c in candles], "Close": [c.c for c in candles],
                           "Volume": [c.v for c in candles]})
        expected = analyze_series(df, sym, default_config(sym), bullish[:last])
        for k, records in enumerate(shard_records):
            rec = records[sym]
            exp = expected[first_bar + k]
            checked += 1
            same = (rec.signal, rec.confidence) == (exp.signal, exp.confidence)
            if not same or abs(rec.score - exp.score) > 1e-9:
                mismatches += 1
                if examples is not None and len(examples) < MISMATCH_EXAMPLES:
                    examples.append({"symbol": sym, "tick": k, "bar": first_bar + k,
                                     "bar_t": hist[sym][first_bar + k].t,
                                     "btc_bullish_batch": plain_bool(bullish[first_bar + k]),
                                     "shard": _decision_fields(rec), "batch": _decision_fields(exp)})
    return checked, mismatches


def plain_bool(v: Any) -> bool | None:
    """A numpy/pandas boolean (or NA) as JSON."""
    return None if v is None or v != v else bool(v)


def _decision_fields(decision: Any) -> dict[str, Any]:
    """signal/confidence/score of a shard record or a batch decision, JSON-ready."""
    def plain(v: Any) -> Any:
        return getattr(v, "value", v) if v is not None else None
    out = {"signal": plain(decision.signal), "confidence": plain(decision.confidence),
           "score": float(decision.score)}
    for extra in ("status", "t", "candle_key", "btc_bullish", "history_gap", "shard"):  # shard records
        if hasattr(decision, extra):
            out[extra] = plain(getattr(decision, extra))
    return out


def _source(args: argparse.Namespace) -> Any:
    """The ConfigSource of the run: the primary and `--variants` donchian_breakout shadows per symbol."""
    from cluster.shard_core import ConfigSource
    from strategies.config import load_yaml_text

    if args.primary == "mei_alpha_v1" and args.variants == 0:
        return ConfigSource()
    text = f"strategies:\n  primary: {args.primary}\n"
    v = args.variants
    if v:
        sets = 4 if v % 4 == 0 else 2 if v % 2 == 0 else 1
        channels = [10, 20, 40, 55][:sets]
        steps = v // sets
        thresholds = [round(0.9 * i / steps, 4) for i in range(steps)]  # < high_confidence_atr (1.0)
        text += (f"  shadows:\n    - name: v\n      strategy: donchian_breakout\n"
                 f"      grid: {{channel_bars: {channels}, min_breakout_atr: {thresholds}}}\n")
    return ConfigSource(overrides=load_yaml_text(text))


def _variant_parity(source: Any, hist: dict[str, list[Candle]], symbols: list[str], first_bar: int,
                    shard_records: list[dict[str, Any]]) -> dict[str, Any]:
    """SDK records (primary and variants) of the timed ticks vs the strategy's batch decisions."""
    import pandas as pd

    from strategies.sdk.strategy import DecisionContext, StrategyDecision, evaluate

    plan = source.plan
    checked = mismatches = signals = 0
    # each tick's variant records of a symbol by name, built once (a columnar record is built on access)
    by_name = [{s: {v.variant: v for v in r[s].variants} for s in symbols} for r in shard_records]
    for sym in symbols:
        candles = hist[sym][: first_bar + len(shard_records)]
        frame = pd.DataFrame({"timestamp": [c.t for c in candles], "Open": [c.o for c in candles],
                              "High": [c.h for c in candles], "Low": [c.l for c in candles],
                              "Close": [c.c for c in candles], "Volume": [c.v for c in candles]})
        strategies = [(spec.name, plan.build_shadow(spec, sym)) for spec in plan.shadows_for(sym)]
        primary = plan.build_primary(sym)
        if primary is not None:
            strategies.append((None, primary))
        for name, strategy in strategies:
            rows = strategy.indicator_set.batch(frame).to_dict("records")
            k = strategy.LOOKBACK_ROWS
            for tick, records in enumerate(shard_records):
                i = first_bar + tick
                ctx = DecisionContext(symbol=sym, bars=i + 1)
                want = evaluate(strategy, rows[max(0, i + 1 - k): i + 1], ctx)
                rec = records[sym]
                got = rec.primary if name is None else by_name[tick][sym].get(name)
                checked += 1
                same = isinstance(want, StrategyDecision) and got is not None and (
                    got.signal, got.confidence, got.score) == (want.signal, want.confidence, want.score)
                mismatches += not same
                signals += same and want.side is not None
    return {"decisions_checked": checked, "mismatches": mismatches, "signals": signals}


def _state_bytes_per_symbol(warm_bars: int, n: int = 200, source: Any = None, columnar: bool = True) -> float:
    """Traced Python memory of n symbols' ShardCore state, per symbol (bytes)."""
    from cluster.shard_core import ConfigSource, ShardCore, ShardSettings
    from cluster.shard_store import MemoryShardStore

    store = MemoryShardStore()
    syms = symbol_names(n)
    for i, s in enumerate(syms):
        store.add_closed(s, series(i, warm_bars))
    store.add_closed("BTC", series(0, warm_bars, anchor=True))
    batch = {s: series(i, warm_bars)[-1].close_ms for i, s in enumerate(syms)}
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    no_checkpoints = ShardSettings(interval=INTERVAL, checkpoint_every=10**9,  # measure state, not the store
                                   columnar=columnar)
    core = ShardCore(0, store, no_checkpoints, source or ConfigSource(), symbols=syms)
    core.evaluate(batch)
    del batch
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del core
    return used / n


def run_size(n: int, args: argparse.Namespace, redis_url: str, client: Any) -> dict[str, Any]:
    from cluster.pool import PoolSettings, ShardPool
    from cluster.shard_core import ShardSettings

    client.flushdb()
    total_bars = args.warm_bars + args.ticks + 2
    layout = RedisLayout(f"bench{n}", keep_bars=total_bars + 10)
    symbols = symbol_names(n)
    hist = {s: series(i, total_bars) for i, s in enumerate(symbols)}
    hist["BTC"] = series(0, total_bars, anchor=True)
    t_load = time.perf_counter()
    _write_history(client, layout, hist, args.warm_bars)
    load_secs = time.perf_counter() - t_load

    settings = ShardSettings(interval=INTERVAL, checkpoint_every=args.checkpoint_every,
                             columnar=not args.per_row)
    source = _source(args)
    rows = n * (1 + args.variants)
    t_start = time.perf_counter()
    pool = ShardPool(redis_url=redis_url, redis_prefix=f"bench{n}", settings=settings, configs=source,
                     pool=PoolSettings(n_shards=args.shards, namespace=f"aiq-bench-{n}", deadline_ms=600_000),
                     symbols=symbols)
    create_secs = time.perf_counter() - t_start
    try:
        rss0 = {s["shard"]: s["rss_bytes"] for s in pool.stats()}
        keys = layout.read_candle_keys(client, symbols, INTERVAL)
        t_warm = time.perf_counter()
        pool.evaluate({s: k.closed_close_ms for s, k in keys.items()})
        warm_secs = time.perf_counter() - t_warm
        for bar in range(args.warm_bars, args.warm_bars + 2):  # untimed: settle allocators/caches
            _write_bar(client, layout, hist, bar)
            pool.evaluate({s: hist[s][bar].close_ms for s in symbols})
        # The driver here also holds every symbol's whole history (millions of objects, for the
        # parity check); freeze them so the cyclic GC does not rescan them during timed ticks.
        gc.collect()
        gc.freeze()
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(layout.closed_channel(INTERVAL))
        while pubsub.get_message(timeout=0.2) is not None:
            pass
        seen = {s: hist[s][args.warm_bars + 1].close_ms for s in symbols}
        universe = set(symbols)
        latencies: list[float] = []
        eval_ms: list[float] = []
        keys_ms: list[float] = []
        baseline_ms: list[float] = []
        reply_bytes: list[int] = []  # the shards' replies of a tick, pickled (what Ray ships)
        records: list[dict[str, Any]] = []
        not_ok = base_diff = base_checked = 0
        sample = symbols[:: max(1, n // args.baseline_sample)][: args.baseline_sample]
        first_timed = args.warm_bars + 2
        for k, bar in enumerate(range(first_timed, first_timed + args.ticks)):
            _write_bar(client, layout, hist, bar)
            t0 = time.perf_counter()
            note = _wait_notification(pubsub)
            t1 = time.perf_counter()
            if args.batch_from == "keys":
                picked = layout.read_picked_keys(client, symbols, INTERVAL, True)  # as the daemon reads them
                fresh = {s: key for s, key in picked.items() if key is not None}
            else:
                fresh = {s: key for s, key in layout.parse_closed_notification(note) if s in universe}
            changed = {s: key for s, key in fresh.items() if key != seen.get(s)}
            seen.update(changed)
            t2 = time.perf_counter()
            result = pool.evaluate(changed)
            ranked = result.ranked()
            t3 = time.perf_counter()
            latencies.append((t3 - t0) * 1000.0)
            keys_ms.append((t2 - t1) * 1000.0)
            eval_ms.append((t3 - t2) * 1000.0)
            counts = result.decisions.status_counts()  # on the arrays: the driver reads no other record
            not_ok += sum(n for status, n in counts.items() if status.value != "ok")
            reply_bytes.append(sum(len(pickle.dumps(b, protocol=5)) for b in result.decisions.blocks))
            records.append(result.decisions)
            del ranked
            if k < args.baseline_ticks:
                ms, signals = _baseline_tick(client, layout, sample)
                baseline_ms.append(ms * n / len(sample))
                base_checked += len(sample)
                base_diff += sum(1 for s in sample if signals[s] != (result.decisions[s].signal,
                                                                      result.decisions[s].confidence))
        pubsub.close()
        stats = pool.stats()
        # a restarted actor (Ray re-runs __init__) only knows the evaluates since its restart: its
        # list is shorter and ends at the last tick, so the lists are aligned on their ends and the
        # overhead taken over the ticks every shard measured (indexing from the front raised)
        per_tick_inside = [s["evaluate_ms_recent"][-args.ticks:] for s in stats]
        shard_ms = [statistics.median(x) for x in per_tick_inside]
        measured = min(len(x) for x in per_tick_inside)
        overhead = [e - max(x[len(x) - measured + k] for x in per_tick_inside)
                    for k, e in enumerate(eval_ms[len(eval_ms) - measured:])]
        rss_growth = sum(s["rss_bytes"] - rss0[s["shard"]] for s in stats)
        parity_syms = symbols[:: max(1, n // args.parity_sample)][: args.parity_sample]
        sampled = [{s: r[s] for s in parity_syms} for r in records]
        mei = args.primary == "mei_alpha_v1"
        examples: list[dict[str, Any]] = []
        checked, mismatches = (_parity(hist, parity_syms, first_timed, sampled, examples)
                               if mei else (0, 0))
        variant_parity = _variant_parity(source, hist, parity_syms, first_timed, sampled)
        rows_per_shard = [s["symbols"] * (1 + args.variants) for s in stats]
        us_per_row = [1000.0 * ms / r for ms, r in zip(shard_ms, rows_per_shard, strict=True) if r]
    finally:
        pool.close()
        gc.unfreeze()
    p50 = statistics.median(latencies)
    base_p50 = statistics.median(baseline_ms)
    return {
        "symbols": n, "shards": args.shards, "ticks": args.ticks, "warm_bars": args.warm_bars,
        "checkpoint_every": args.checkpoint_every,
        "tick_ms_p50": round(p50, 2), "tick_ms_p99": round(percentile(latencies, 0.99), 2),
        "tick_ms_max": round(max(latencies), 2),
        "batch_build_ms_p50": round(statistics.median(keys_ms), 2),
        "pool_evaluate_ms_p50": round(statistics.median(eval_ms), 2),
        "inside_shard_evaluate_ms_p50": [round(x, 2) for x in shard_ms],
        "ray_overhead_ms_p50": round(statistics.median(overhead), 2) if overhead else None,
        "ticks_every_shard_measured": measured,
        "reply_bytes_per_symbol": round(statistics.median(reply_bytes) / n, 1),
        "batch_from": args.batch_from,
        "non_ok_records": not_ok,
        "baseline_tick_ms_p50": round(base_p50, 1),
        "baseline_ticks": len(baseline_ms),
        "baseline_symbols_timed_per_tick": len(sample),
        "baseline_extrapolated": len(sample) < n,
        "speedup_vs_baseline": round(base_p50 / p50, 1),
        "baseline_window200_signal_differs_pct": (round(100.0 * base_diff / max(1, base_checked), 2)
                                                  if mei else None),
        "parity_full_history": {"decisions_checked": checked, "mismatches": mismatches,
                                "signals_equal": mismatches == 0},
        "parity_mismatch_examples": examples,
        "primary": args.primary, "variants": args.variants, "rows": rows, "columnar": not args.per_row,
        "us_per_row_inside_shard_p50": round(statistics.mean(us_per_row), 3) if us_per_row else None,
        "parity_variants": variant_parity,
        "actor_rss_growth_bytes_per_row": round(rss_growth / rows),
        "actor_rss_growth_bytes_per_symbol": round(rss_growth / n),
        "actor_rss_bytes": [s["rss_bytes"] for s in stats],
        "setup_secs": {"redis_load": round(load_secs, 1), "pool_create": round(create_secs, 1),
                       "catch_up": round(warm_secs, 1)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", default="100,1000", help="comma-separated universe sizes")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--warm-bars", type=int, default=260)
    parser.add_argument("--checkpoint-every", type=int, default=16)
    parser.add_argument("--baseline-sample", type=int, default=300, help="symbols timed per baseline tick")
    parser.add_argument("--baseline-ticks", type=int, default=3)
    parser.add_argument("--parity-sample", type=int, default=60)
    parser.add_argument("--batch-from", choices=("keys", "notification"), default="keys",
                        help="driver builds the batch from one HMGET of all close keys, or from the "
                             "notification payload itself")
    parser.add_argument("--variants", type=int, default=0,
                        help="donchian_breakout shadow variants per symbol")
    parser.add_argument("--primary", default="mei_alpha_v1", help="primary strategy ref of every symbol")
    parser.add_argument("--per-row", action="store_true",
                        help="per-row SDK states (columnar off), to compare")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.variants < 0:
        parser.error("--variants must be >= 0")

    from engine.runtime.ray_runtime import connect_ray, prepare_ray_environment, shutdown_ray
    from engine.runtime.redis_server import EmbeddedRedis

    prepare_ray_environment()
    import redis

    out: dict[str, Any] = {"bench": "tick", "cpus": os.cpu_count(), "python": sys.version.split()[0],
                           "interval": INTERVAL, "interval_ms": INTERVAL_MS, "results": []}
    per_symbol = _state_bytes_per_symbol(args.warm_bars, source=_source(args), columnar=not args.per_row)
    out["state_bytes_per_symbol_traced"] = round(per_symbol)
    out["state_bytes_per_row_traced"] = round(per_symbol / (1 + args.variants))
    with tempfile.TemporaryDirectory(prefix="aiq-bench-") as tmp:
        server = EmbeddedRedis(Path(tmp), appendonly=False)
        server.start()
        client = redis.Redis.from_url(server.url)
        try:
            connect_ray(namespace="aiq-bench", num_cpus=2)
            for n in (int(x) for x in args.symbols.split(",") if x.strip()):
                out["results"].append(run_size(n, args, server.url, client))
                if not args.json:
                    print(json.dumps(out["results"][-1]), file=sys.stderr)
        finally:
            client.close()
            shutdown_ray()
            server.stop()
    print(json.dumps(out, indent=2 if not args.json else None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
