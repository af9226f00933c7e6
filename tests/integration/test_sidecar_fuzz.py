"""Fuzzed WS frames and REST bodies never stop the sidecar (issue 3 acceptance 5).

A small WebSocket server stands in for the venue's edge and interleaves garbage with valid candle
frames; the REST side answers with fuzzed bodies parsed by the project's real parser. The sidecar
(in-process, real Redis, real SQLite) must keep publishing every valid bar, in order, once.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from websockets.asyncio.server import ServerConnection, serve

from cluster.redis_layout import RedisLayout
from engine.runtime.redis_runtime import RedisSettings
from engine.runtime.redis_server import EmbeddedRedis
from engine.sidecar.parse import FrameError, parse_frame
from engine.sidecar.service import Sidecar
from engine.sidecar.settings import SidecarSettings
from engine.venue import types as hl
from strategies.candle import Candle

IV = 60_000
BASE = 28_000_000  # bar index of the first WS bar (any epoch-ms scale works)
SYMBOLS = ("AAA", "BBB")


def bar(sym: str, i: int) -> Candle:
    px = 10.0 + (i % 7) + (0.5 if sym == "BBB" else 0.0)
    return Candle(i * IV, i * IV + IV - 1, px, px + 1, px - 1, px + 0.25, 3.0 + i % 5, 4)


def wire(sym: str, c: Candle) -> dict[str, Any]:
    return {
        "t": c.t,
        "T": c.close_ms,
        "s": sym,
        "i": "1m",
        "o": str(c.o),
        "c": str(c.c),
        "h": str(c.h),
        "l": str(c.l),
        "v": str(c.v),
        "n": c.n,
    }


def garbage(rng: random.Random) -> str | bytes:
    """One malformed frame: broken JSON, wrong shapes, bad numbers, wrong channel payloads."""
    good = {"channel": "candle", "data": wire("AAA", bar("AAA", BASE))}
    choices: list[Any] = [
        lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40))),
        lambda: json.dumps(good)[: rng.randint(1, 60)],
        lambda: json.dumps({"channel": "candle", "data": {**good["data"], "h": "NaN"}}),
        lambda: json.dumps({"channel": "candle", "data": {**good["data"], "l": "99999"}}),
        lambda: json.dumps({"channel": "candle", "data": {**good["data"], "t": -5}}),
        lambda: json.dumps({"channel": "candle", "data": {**good["data"], "o": None}}),
        lambda: json.dumps({"channel": "candle", "data": [1, 2, 3]}),
        lambda: json.dumps({"channel": "allMids", "data": {"mids": {"AAA": "x", "BBB": "-1", "": "2"}}}),
        lambda: json.dumps({"channel": "allMids", "data": "nope"}),
        lambda: json.dumps({"channel": "bbo", "data": {"coin": "AAA", "time": 1, "bbo": [None, None]}}),
        lambda: json.dumps({"channel": "bbo", "data": {"coin": "AAA", "time": "x", "bbo": [{"px": "1"}]}}),
        lambda: json.dumps({"channel": 5}),
        lambda: json.dumps([1, {"channel": "candle"}]),
        lambda: json.dumps({"channel": "userFills", "data": None}),
        lambda: "{" * rng.randint(1, 5000),
    ]
    return rng.choice(choices)()


def test_parse_frame_fuzz_raises_only_frame_error() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        try:
            parse_frame(garbage(rng))
        except FrameError:
            pass


class FuzzyRest:
    """REST edge: every other call answers with a fuzzed body (parsed by the real parser)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.calls = 0
        self.bad = 0

    def candle_snapshot(self, coin: str, interval: str, start_ms: int, end_ms: int) -> Sequence[Candle]:
        self.calls += 1
        truth = [
            wire(coin, bar(coin, i))
            for i in range(start_ms // IV, end_ms // IV + 1)
            if start_ms <= i * IV <= end_ms and i < BASE + 1000
        ]
        if self.calls % 2 == 1:
            self.bad += 1
            body: Any = self.rng.choice(
                [
                    {"error": "x"},
                    "text",
                    [*truth, {"t": "bad"}],
                    [{**c, "c": "inf"} for c in truth] or [{"t": 1}],
                    list(reversed(truth)) if len(truth) > 1 else [1],
                    [{**c, "s": "OTHER"} for c in truth] or [None],
                ]
            )
        else:
            body = truth
        return hl.parse_candle_snapshot(body, "candleSnapshot", coin=coin, interval=interval)

    def meta_and_asset_ctxs(self) -> hl.MetaAndAssetCtxs:
        raise hl.TemporaryVenueError("metaAndAssetCtxs", 1, "not used")


async def _venue(ws: ServerConnection, bars: int, done: asyncio.Event) -> None:
    rng = random.Random(11)
    await ws.send("Websocket connection established.")
    for _ in range(1 + len(SYMBOLS) * 2):  # allMids + candle and bbo per symbol
        await ws.recv()
    for i in range(BASE, BASE + bars):
        for sym in SYMBOLS:
            for _ in range(rng.randint(0, 4)):
                await ws.send(garbage(rng))
            await ws.send(json.dumps({"channel": "candle", "data": wire(sym, bar(sym, i))}))
    await ws.send(json.dumps({"channel": "allMids", "data": {"mids": {"AAA": "10.5", "BBB": "11"}}}))
    await done.wait()


@pytest.mark.parametrize("seed", [1, 2])
def test_sidecar_survives_fuzzed_frames_and_rest_bodies(
    seed: int, redis_client: redis.Redis, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    layout = RedisLayout(f"fz{seed}", keep_bars=100)
    bars = 40

    async def scenario() -> dict[str, list[Candle]]:
        finished = asyncio.Event()
        async with serve(lambda ws: _venue(ws, bars, finished), "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]  # type: ignore[index]
            settings = SidecarSettings(
                info_base_url="http://127.0.0.1:1",
                ws_url=f"ws://127.0.0.1:{port}",
                interval="1m",
                symbols=SYMBOLS,
                lookback_bars=5,
                rest_min_gap_ms=0,
                sub_send_ms=0,
                flush_ms=10,
                verify_secs=0.2,
                reconnect_min_secs=0.05,
                reconnect_max_secs=0.2,
                candles_db_dir=tmp_path,
                redis=RedisSettings(url=redis_server.url, state_dir=tmp_path),
            )
            rest = FuzzyRest(seed)
            sidecar = Sidecar(
                settings, redis_client=redis_client, rest=rest, layout=layout, rng=random.Random(seed)
            )
            stop = asyncio.Event()
            task = asyncio.create_task(sidecar.run(stop))
            last_closed = (BASE + bars - 2) * IV
            for _ in range(600):
                keys = layout.read_candle_keys(redis_client, list(SYMBOLS), "1m")
                done = all(k.closed_close_ms == last_closed + IV - 1 for k in keys.values())
                if done and layout.read_mids(redis_client, ["AAA"]):
                    break
                assert not task.done(), "the sidecar stopped"
                await asyncio.sleep(0.05)
            stop.set()
            finished.set()
            await asyncio.wait_for(task, 20)
            assert sidecar.stats.malformed > 50 and rest.bad > 0
        return {s: layout.read_candles(redis_client, s, "1m") for s in SYMBOLS}

    got = asyncio.run(scenario())
    for sym in SYMBOLS:
        assert got[sym] == [bar(sym, i) for i in range(BASE - 5, BASE + bars - 1)], sym
    assert layout.read_mids(redis_client, ["AAA"])["AAA"].price == 10.5


class BrokenRest(FuzzyRest):
    """A REST edge that fails in a way nobody planned for (a bug, not a venue error)."""

    def candle_snapshot(self, coin: str, interval: str, start_ms: int, end_ms: int) -> Sequence[Candle]:
        raise KeyError("unplanned")


def test_sidecar_crashes_loudly_when_a_task_dies(
    redis_client: redis.Redis, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    async def scenario() -> None:
        finished = asyncio.Event()
        async with serve(lambda ws: _venue(ws, 2, finished), "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]  # type: ignore[index]
            settings = SidecarSettings(
                info_base_url="http://127.0.0.1:1",
                ws_url=f"ws://127.0.0.1:{port}",
                interval="1m",
                symbols=SYMBOLS,
                lookback_bars=5,
                rest_min_gap_ms=0,
                sub_send_ms=0,
                flush_ms=10,
                candles_db_dir=tmp_path,
                redis=RedisSettings(url=redis_server.url, state_dir=tmp_path),
            )
            sidecar = Sidecar(
                settings, redis_client=redis_client, rest=BrokenRest(0), layout=RedisLayout("cr")
            )
            try:
                with pytest.raises(RuntimeError, match="ended unexpectedly"):
                    await asyncio.wait_for(sidecar.run(asyncio.Event()), 20)
            finally:
                finished.set()

    asyncio.run(scenario())
