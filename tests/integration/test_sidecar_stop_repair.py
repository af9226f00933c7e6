"""A clean stop repairs the bars its ended sessions left unconfirmed (in-process sidecar, real Redis).

A small WebSocket server stands in for the venue: it sends one market's bars, then a partial
state of the next bar and goes silent (its final update is "queued behind" forever). The
injected clock moves past the close, the grace and the socket hold, so the sidecar closes the
partial bar by the clock; then it is stopped. The stop ends the session, which makes the bar a
repair, and the sidecar runs it before exiting: Redis ends with the venue's final bar. Without
the drain at stop, the partial bar stayed for the next owner to find (issue 14's acceptance).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from pathlib import Path

import redis
from websockets.asyncio.server import ServerConnection, serve

from cluster.redis_layout import RedisLayout
from engine.runtime.redis_runtime import RedisSettings
from engine.runtime.redis_server import EmbeddedRedis
from engine.sidecar.progress import CLOSE_HOLD_MS
from engine.sidecar.service import Sidecar
from engine.sidecar.settings import SidecarSettings
from engine.venue import types as hl
from strategies.candle import Candle
from tests.integration.test_sidecar_fuzz import wire

IV = 60_000
BASE = 29_000_000
SYMBOLS = ("AAA",)


def final(i: int) -> Candle:
    return Candle(i * IV, i * IV + IV - 1, 10.0, 12.0, 9.0, 11.0, 50.0 + i % 3, 20)


PARTIAL = Candle(BASE * IV, BASE * IV + IV - 1, 10.0, 11.5, 9.5, 10.5, 30.0, 12)


class VenueRest:
    """candleSnapshot answers the venue's final bars."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def candle_snapshot(self, coin: str, interval: str, start_ms: int, end_ms: int) -> Sequence[Candle]:
        self.calls.append((start_ms, end_ms))
        body = [wire(coin, final(i)) for i in range(start_ms // IV, end_ms // IV + 1)
                if start_ms <= i * IV <= end_ms and i <= BASE]  # fmt: skip
        return hl.parse_candle_snapshot(body, "candleSnapshot", coin=coin, interval=interval)

    def meta_and_asset_ctxs(self) -> hl.MetaAndAssetCtxs:
        raise hl.TemporaryVenueError("metaAndAssetCtxs", 1, "not used")


async def _venue(ws: ServerConnection, done: asyncio.Event) -> None:
    await ws.send("Websocket connection established.")
    await ws.recv()  # allMids
    await ws.recv()  # the candle subscription
    await ws.send(json.dumps({"channel": "candle", "data": wire("AAA", final(BASE - 1))}))
    await ws.send(json.dumps({"channel": "candle", "data": wire("AAA", PARTIAL)}))  # then silence
    await done.wait()


def test_clean_stop_repairs_a_clock_closed_bar_whose_final_update_never_came(
    redis_client: redis.Redis, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    layout = RedisLayout("sr", keep_bars=100)
    now = [(BASE - 1) * IV + 30_000]  # the injected wall clock: the venue runs on it
    rest = VenueRest()

    async def scenario() -> Sidecar:
        finished = asyncio.Event()
        async with serve(lambda ws: _venue(ws, finished), "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]  # type: ignore[index]
            settings = SidecarSettings(
                info_base_url="http://127.0.0.1:1", ws_url=f"ws://127.0.0.1:{port}", interval="1m",
                symbols=SYMBOLS, anchor_symbol=None, enable_bbo=False, lookback_bars=5,
                rest_min_gap_ms=0, sub_send_ms=0, flush_ms=10, verify_secs=0.2, cross_check=False,
                candles_db_dir=tmp_path, redis=RedisSettings(url=redis_server.url, state_dir=tmp_path),
            )  # fmt: skip
            sidecar = Sidecar(settings, redis_client=redis_client, rest=rest, layout=layout,
                              clock_ms=lambda: now[0], rng=random.Random(3))  # fmt: skip
            stop = asyncio.Event()
            task = asyncio.create_task(sidecar.run(stop))

            async def closed_through(t: int) -> None:
                for _ in range(1200):
                    keys = layout.read_candle_keys(redis_client, list(SYMBOLS), "1m")
                    if (keys["AAA"].closed_close_ms or 0) >= t + IV - 1:
                        return
                    assert not task.done(), "the sidecar stopped"
                    await asyncio.sleep(0.05)
                raise AssertionError(f"bar {t} never closed")

            now[0] = BASE * IV + 5_000  # bar BASE-1 closed; BASE forming (its partial came)
            await closed_through((BASE - 1) * IV)
            now[0] = BASE * IV + IV + 2_000 + CLOSE_HOLD_MS + 1_000  # past close + grace + hold
            await closed_through(BASE * IV)
            assert sidecar.tracker.unconfirmed("AAA") == [BASE * IV]
            assert layout.read_candles(redis_client, "AAA", "1m")[-1] == PARTIAL  # what the clock closed
            stop.set()
            finished.set()
            await asyncio.wait_for(task, 30)
            return sidecar

    sidecar = asyncio.run(scenario())
    assert layout.read_candles(redis_client, "AAA", "1m")[-1] == final(BASE)
    assert sidecar.stats.repair_corrections == 1
