"""Ingest benchmark: candles/s written to Redis and close → key-visible delay, pipelined vs not.

    .venv/bin/python -m bench.ingest [--symbols 1000,5000] [--rounds 10] [--baseline-rounds 3]
    .venv/bin/python -m bench.ingest --fleet [--markets 3000] [--sidecars 4] [--bars 20]

Each round is a bar boundary where every symbol's candle closes at once (the worst case). The
sidecar's way (`RedisLayout.write_closed_many` in one MULTI/EXEC pipeline: candles, then keys,
then ONE notification) is measured against two baselines in the same run that send the same
logical writes: the honest middle one, the same commands in one non-transactional pipeline per
round with one notification (what MULTI/EXEC costs over plain pipelining), and the naive one,
one command at a time (per candle: ZREMRANGEBYSCORE, ZADD, ZREMRANGEBYRANK, HSET key, PUBLISH).
The delay is from the start of the round (the close) until an independent client, woken by the
notification, sees every symbol's new close key. Runs against a private redis-server with the
sidecar's settings (AOF, everysec). Prints one JSON object.

`--fleet` measures the whole path instead (`bench.ingest_fleet`): the simulator over real WS,
several sidecars each on its own loopback IP and the venue's per-IP budget, one Redis.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis

from bench.support import percentile
from cluster.redis_layout import RedisLayout, encode_candle
from engine.runtime.redis_server import EmbeddedRedis
from strategies.candle import Candle

IV = 60_000
INTERVAL = "1m"


def _round_candles(symbols: Sequence[str], bar: int) -> dict[str, list[Candle]]:
    px = 100.0 + bar % 17
    return {
        s: [Candle(bar * IV, bar * IV + IV - 1, px, px + 1, px - 1, px + 0.5, 10.0 + i % 7, 5)]
        for i, s in enumerate(symbols)
    }


class KeyWatcher(threading.Thread):
    """Wakes on the close notification, then checks (one round trip) that every key is visible."""

    def __init__(self, url: str, layout: RedisLayout, symbols: Sequence[str]) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.layout = layout
        self.symbols = list(symbols)
        self.last = self.symbols[-1]
        self.expected: int | None = None
        self.visible_at: float | None = None
        self.done = threading.Event()
        self.stop = threading.Event()
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(layout.closed_channel(INTERVAL))

    def expect(self, close_ms: int) -> None:
        self.visible_at = None
        self.done.clear()
        self.expected = close_ms

    def run(self) -> None:
        while not self.stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message is None or self.expected is None:
                continue
            closed = self.layout.parse_closed_notification(message["data"])
            if not any(sym == self.last and close == self.expected for sym, close in closed):
                continue
            keys = self.layout.read_candle_keys(self.client, self.symbols, INTERVAL)
            if all(k.closed_close_ms == self.expected for k in keys.values()):
                self.visible_at = time.perf_counter()
                self.done.set()

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=5)
        self.pubsub.close()
        self.client.close()


def _write_pipelined(client: redis.Redis, layout: RedisLayout, batch: dict[str, list[Candle]]) -> None:
    pipe = client.pipeline(transaction=True)
    layout.write_closed_many(pipe, INTERVAL, batch)
    pipe.execute()


def _write_plain_pipeline(client: redis.Redis, layout: RedisLayout, batch: dict[str, list[Candle]]) -> None:
    """The middle baseline: the same commands and ONE notification, pipelined without MULTI/EXEC."""
    pipe = client.pipeline(transaction=False)
    layout.write_closed_many(pipe, INTERVAL, batch)
    pipe.execute()


def _write_unpipelined(client: redis.Redis, layout: RedisLayout, batch: dict[str, list[Candle]]) -> None:
    for sym, candles in batch.items():
        key = layout.candles_key(sym, INTERVAL)
        for c in candles:
            client.zremrangebyscore(key, c.t, c.t)
            client.zadd(key, {encode_candle(c): c.t})
            client.zremrangebyrank(key, 0, -(layout.keep_bars + 1))
            client.hset(layout.close_key_hash(INTERVAL), sym, str(c.close_ms))
            client.publish(layout.closed_channel(INTERVAL), json.dumps([[sym, c.close_ms]]))


WRITERS = {"multi_exec": _write_pipelined, "plain_pipeline": _write_plain_pipeline,
           "one_at_a_time": _write_unpipelined}  # fmt: skip


def _measure(url: str, prefix: str, symbols: Sequence[str], rounds: int, how: str) -> dict[str, Any]:
    layout = RedisLayout(prefix, keep_bars=250)
    client = redis.Redis.from_url(url)
    watcher = KeyWatcher(url, layout, symbols)
    watcher.start()
    write = WRITERS[how]
    write_secs: list[float] = []
    delays_ms: list[float] = []
    for r in range(rounds):
        batch = _round_candles(symbols, 1_000 + r)
        watcher.expect(batch[symbols[-1]][-1].close_ms)
        start = time.perf_counter()
        write(client, layout, batch)
        write_secs.append(time.perf_counter() - start)
        if not watcher.done.wait(timeout=120) or watcher.visible_at is None:
            raise RuntimeError("keys never became visible")
        delays_ms.append((watcher.visible_at - start) * 1000)
    watcher.close()
    client.close()
    total = sum(write_secs)
    return {
        "rounds": rounds,
        "candles_per_sec": round(len(symbols) * rounds / total, 1),
        "write_ms_per_round": {
            "p50": round(statistics.median(write_secs) * 1000, 2),
            "max": round(max(write_secs) * 1000, 2),
        },
        "close_to_key_visible_ms": {
            "p50": round(statistics.median(delays_ms), 2),
            "p90": round(percentile(delays_ms, 0.9), 2),
            "max": round(max(delays_ms), 2),
        },
    }


def _ratio(a: float, b: float, digits: int = 1) -> float | None:
    return round(a / b, digits) if b > 0 else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--symbols", default="1000,5000")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--baseline-rounds", type=int, default=3)
    parser.add_argument("--fleet", action="store_true", help="simulator + sidecars (bench.ingest_fleet)")
    args, rest = parser.parse_known_args(argv)
    if args.fleet:
        from bench.ingest_fleet import main as fleet_main

        return fleet_main(rest)
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    sizes = [int(x) for x in args.symbols.split(",") if x.strip()]
    results = []
    with (
        tempfile.TemporaryDirectory(prefix="aiq-bench-") as state,
        EmbeddedRedis(state, appendonly=True) as server,
    ):
        info = redis.Redis.from_url(server.url).info("server")
        for n in sizes:
            symbols = [f"S{i:05d}" for i in range(n)]
            piped = _measure(server.url, f"bp{n}", symbols, args.rounds, "multi_exec")
            plain = _measure(server.url, f"bn{n}", symbols, args.rounds, "plain_pipeline")
            base = _measure(server.url, f"bu{n}", symbols, args.baseline_rounds, "one_at_a_time")
            results.append(
                {
                    "symbols": n,
                    "pipelined_multi_exec": piped,
                    "plain_pipeline_baseline": plain,
                    "unpipelined_baseline": base,
                    "throughput_ratio": _ratio(piped["candles_per_sec"], base["candles_per_sec"]),
                    "delay_ratio_p50": _ratio(
                        base["close_to_key_visible_ms"]["p50"], piped["close_to_key_visible_ms"]["p50"]
                    ),
                    "throughput_ratio_vs_plain_pipeline": _ratio(
                        piped["candles_per_sec"], plain["candles_per_sec"], 2
                    ),
                    "delay_ratio_p50_vs_plain_pipeline": _ratio(
                        plain["close_to_key_visible_ms"]["p50"], piped["close_to_key_visible_ms"]["p50"], 2
                    ),
                }
            )
    print(
        json.dumps(
            {
                "benchmark": "ingest",
                "redis_version": info.get("redis_version"),
                "persistence": "appendonly everysec",
                "note": "the sidecar adds up to AI_QUANT_SIDECAR_FLUSH_MS (default 50) of batching first",
                "results": results,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
