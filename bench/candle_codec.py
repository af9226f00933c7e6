"""Candle codec benchmark: the version-1 JSON read path against the version-2 binary one, same run.

    .venv/bin/python -m bench.candle_codec [--symbols 1000] [--rounds 30] [--cold-bars 250]

Both formats hold the same candles for N symbols in one private redis-server. Measured, in
alternating rounds so machine noise hits both alike:

- ``decode_only``: no Redis. JSON: the former shard fast path's reply (one bulk string, a JSON
  array per symbol) through one ``json.loads`` plus a validated `Candle` per row. Binary: the
  same candles as 64-byte records (one string per symbol) through `split_bars_reply` (``numpy.frombuffer``
  plus vectorised validation), and, separately, also turned into `Candle` objects.
- ``warm_tick``: a shard's tick read (one new candle per symbol after its resume time, with
  the continuity proof), Redis round trip included. JSON: the former Lua script that joins
  members into one JSON string. Binary: `RedisLayout.read_bars_since` (arrays), and the same
  plus ``CandleRead.candles``.
- ``cold_read``: every stored candle of every symbol (a rehydrate). JSON: the former pipelined
  ZRANGE with one `decode_legacy_candle` per member. Binary: `read_bars_since` with no resume.

Prints one JSON object: ms per call (p50, p90) and the JSON/binary ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis

from bench.support import percentile
from cluster.candle_codec import decode_legacy_candle, split_bars_reply
from cluster.redis_layout import RECORD_BYTES, RedisLayout, bars_to_candles, encode_candles
from engine.runtime.redis_server import EmbeddedRedis
from strategies.candle import Candle

IV = 60_000
INTERVAL = "1m"

# The version-1 shard read (removed from cluster/shard_store.py with the JSON layout): one bulk
# string, a JSON array [found, candle, ...] per key, keys and resumes in one argument.
_V1_READ_SINCE_JSON_LUA = """
local out = {}
local i = 0
for key, resume in string.gmatch(ARGV[1], '([^\\n]+)\\n([^\\n]+)') do
  i = i + 1
  local rows = redis.call('ZRANGEBYSCORE', key, '(' .. resume, '+inf')
  local found = redis.call('ZCOUNT', key, resume, resume) > 0 and '1' or '0'
  if #rows > 0 then
    out[i] = '[' .. found .. ',' .. table.concat(rows, ',') .. ']'
  else
    out[i] = '[' .. found .. ']'
  end
end
return '[' .. table.concat(out, ',') .. ']'
"""


def _json(c: Candle) -> str:
    return json.dumps([c.t, c.close_ms, c.o, c.h, c.l, c.c, c.v, c.n], separators=(",", ":"))


def _history(symbols: int, bars: int) -> dict[str, list[Candle]]:
    out: dict[str, list[Candle]] = {}
    for i in range(symbols):
        candles = []
        for b in range(bars):
            px = 100.0 + i % 50 + 3.0 * math.sin(b / 7.0 + i) + b * 0.013
            candles.append(Candle(b * IV, b * IV + IV - 1, px, px * 1.002, px * 0.997, px * 1.0007,
                                  10.0 + (b * 7 + i) % 13 / 3.0, 5 + b % 9))
        out[f"S{i:04d}"] = candles
    return out


def _load(client: redis.Redis, layout: RedisLayout, hist: dict[str, list[Candle]]) -> None:
    for start in range(0, len(hist), 200):
        pipe = client.pipeline(transaction=False)
        for sym in list(hist)[start: start + 200]:
            candles = hist[sym]
            pipe.zadd(layout.legacy_candles_key(sym, INTERVAL), {_json(c): c.t for c in candles})
            layout.queue_candles(pipe, sym, INTERVAL, candles)
        pipe.execute()


def _v1_candles(rows: list[Any]) -> list[Candle]:
    return [Candle(int(t), int(T), float(o), float(h), float(low), float(c), float(v), int(n))
            for t, T, o, h, low, c, v, n in rows]


def _stats(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(samples, 0.5), 3), "p90_ms": round(percentile(samples, 0.9), 3)}


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


def run(client: redis.Redis, symbols: int, cold_bars: int, rounds: int) -> dict[str, Any]:
    """Load both formats, then time every method `rounds` times, alternating; return the report."""
    layout = RedisLayout("bench-codec", keep_bars=cold_bars + 10)
    hist = _history(symbols, cold_bars)
    _load(client, layout, hist)
    names = list(hist)
    resume = {s: hist[s][-2].t for s in names}
    v1_keys = [layout.legacy_candles_key(s, INTERVAL) for s in names]
    v1_arg = "\n".join(f"{k}\n{resume[s]}" for k, s in zip(v1_keys, names, strict=True))
    v1_script = client.register_script(_V1_READ_SINCE_JSON_LUA)
    v2_script = layout.bars_script(client)
    # decode-only payloads: exactly what each format's read returns for the warm tick
    v1_reply = v1_script(keys=[], args=[v1_arg])
    v2_keys = [layout.candles_key(s, INTERVAL) for s in names]
    v2_reply = [b"".join((1).to_bytes(4, "little") + (1).to_bytes(4, "little") + bytes(4) for _ in names),
                *(encode_candles(hist[s][-1:]) for s in names)]

    def v1_decode() -> list[list[Candle]]:
        return [_v1_candles(reply[1:]) for reply in json.loads(v1_reply)]

    def v1_warm() -> list[list[Candle]]:
        return [_v1_candles(reply[1:]) for reply in json.loads(v1_script(keys=[], args=[v1_arg]))]

    def v1_cold() -> list[list[Candle]]:
        pipe = client.pipeline(transaction=False)
        for key in v1_keys:
            pipe.zrangebyscore(key, "-inf", "+inf")
        return [[decode_legacy_candle(m, key) for m in rows] for key, rows in zip(v1_keys, pipe.execute(),
                                                                                   strict=True)]

    methods: dict[str, Callable[[], Any]] = {
        "decode_only.json": v1_decode,
        "decode_only.binary_arrays": lambda: split_bars_reply(names, v2_keys, v2_reply),
        "decode_only.binary_candles": lambda: [bars_to_candles(b) for _, b in
                                               split_bars_reply(names, v2_keys, v2_reply).values()],
        "warm_tick.json": v1_warm,
        "warm_tick.binary_arrays": lambda: layout.read_bars_since(client, resume, INTERVAL, script=v2_script),
        "warm_tick.binary_candles": lambda: [bars_to_candles(b) for _, b in layout.read_bars_since(
            client, resume, INTERVAL, script=v2_script).values()],
        "cold_read.json": v1_cold,
        "cold_read.binary_arrays": lambda: layout.read_bars_since(client, dict.fromkeys(names), INTERVAL,
                                                                  script=v2_script),
    }
    # same answer from both formats before anything is timed
    binary = layout.read_bars_since(client, resume, INTERVAL)
    if v1_warm() != [bars_to_candles(b) for _, b in binary.values()]:
        raise SystemExit("bench.candle_codec: JSON and binary reads disagree")
    samples: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, fn in methods.items():
            samples[name].append(_timed(fn))
    stats = {name: _stats(values) for name, values in samples.items()}

    def ratio(a: str, b: str) -> float:
        return round(stats[a]["p50_ms"] / max(stats[b]["p50_ms"], 1e-6), 2)

    return {
        "symbols": symbols, "cold_bars": cold_bars, "rounds": rounds,
        "bytes_per_candle": {"json": round(sum(len(_json(c)) for c in hist[names[0]]) / cold_bars, 1),
                             "binary": RECORD_BYTES},
        "ms": stats,
        "ratio_json_vs_binary": {
            "decode_only_arrays": ratio("decode_only.json", "decode_only.binary_arrays"),
            "decode_only_candles": ratio("decode_only.json", "decode_only.binary_candles"),
            "warm_tick_arrays": ratio("warm_tick.json", "warm_tick.binary_arrays"),
            "warm_tick_candles": ratio("warm_tick.json", "warm_tick.binary_candles"),
            "cold_read_arrays": ratio("cold_read.json", "cold_read.binary_arrays"),
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--cold-bars", type=int, default=250)
    args = parser.parse_args(argv)
    if args.symbols < 1 or args.rounds < 1 or args.cold_bars < 2:
        print("bench.candle_codec: --symbols and --rounds must be >= 1, --cold-bars >= 2", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-codec-") as tmp, \
            EmbeddedRedis(Path(tmp), appendonly=False) as server:
        client = redis.Redis.from_url(server.url)
        try:
            report = run(client, args.symbols, args.cold_bars, args.rounds)
            report["redis_version"] = client.info("server")["redis_version"]
        finally:
            client.close()
    print(json.dumps({"bench": "candle_codec", **report}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
