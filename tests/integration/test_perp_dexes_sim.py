"""The engine's info client over HIP-3 builder dexes against `python -m simulator --builder-dexes`
(real HTTP): the selection resolved against `perpDexs`, the spanned universe with the SDK's asset
ids, mids and contexts, each dex's collateral token, and the merged account (positions opened on two
dexes with the official SDK) with each dex's own state. Redis candle keys take a `dex:COIN` name and
give it back exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import eth_account
import pytest
import redis
from hyperliquid.exchange import Exchange

from cluster.redis_layout import RedisLayout
from engine.config.perp_dexes import parse_perp_dex_selection
from engine.runtime.redis_server import EmbeddedRedis
from engine.sidecar.fleet import FleetKeys, read_sources
from engine.sidecar.plan import MarketSource
from engine.venue.info_client import HyperliquidInfoClient
from engine.venue.rate_budget import RateBudget
from strategies.candle import Candle
from tests.fixtures.sim_fixtures import SimulatorProcess
from tests.integration.test_sidecar_sim import SidecarProc, sidecars, wait_for  # noqa: F401  (fixture)


def _client(sim: SimulatorProcess, dexes: str) -> HyperliquidInfoClient:
    return HyperliquidInfoClient(sim.base_url, timeout_secs=10.0, budget=RateBudget(),
                                 perp_dexes=parse_perp_dex_selection(dexes))


def test_info_client_spans_the_selected_dexes(simulator_factory: Callable[..., SimulatorProcess]) -> None:
    wallet = eth_account.Account.create()
    sim = simulator_factory("--speed", "0", "--builder-dexes", "3", "--markets-per-dex", "8",
                            "--fund", f"{wallet.address}=10000")
    original = _client(sim, "")
    assert all(":" not in a.name for a in original.meta().universe)  # the default: as before
    client = _client(sim, "main,flx,vntl")
    assert [d.name for d in client.traded_dexes()] == ["", "flx", "vntl"]
    meta = client.meta()
    ids = {a.name: a.asset_id for a in meta.universe}
    assert ids["flx:TSLA"] == 120_000 and ids["vntl:kBONK"] == 130_001 and "xyz:TSLA" not in ids
    mids = client.all_mids()
    assert set(mids) == set(ids)
    answer = client.meta_and_asset_ctxs()
    assert [c.coin for c in answer.ctxs] == [a.name for a in answer.meta.universe]
    assert client.dex_collateral() == {"": "USDC", "flx": "USDH", "vntl": "USDE"}

    exchange = Exchange(wallet, sim.base_url, perp_dexs=["", "flx", "vntl"])
    for coin in ("flx:GOLD", "vntl:kBONK"):
        size = round(60 / mids[coin], exchange.info.asset_to_sz_decimals[ids[coin]])
        assert exchange.market_open(coin, True, size)["status"] == "ok"
    state = client.clearinghouse_state(wallet.address)
    assert sorted(p.coin for p in state.positions) == ["flx:GOLD", "vntl:kBONK"]
    per_dex = dict(state.dex_states)
    assert per_dex[""].positions == () and [p.coin for p in per_dex["flx"].positions] == ["flx:GOLD"]
    assert state.margin_summary.total_ntl_pos_usd == pytest.approx(
        sum(s.margin_summary.total_ntl_pos_usd for s in per_dex.values()))
    assert state.margin_summary.account_value_usd == per_dex[""].margin_summary.account_value_usd

    unknown = _client(sim, "main,nope")
    with pytest.raises(ValueError, match="nope not listed"):
        unknown.meta()


def test_redis_candle_keys_keep_a_dex_coin_name(redis_client: redis.Redis) -> None:
    layout = RedisLayout(prefix="hip3test")
    candle = Candle(t=0, close_ms=299_999, o=1.0, h=2.0, l=0.5, c=1.5, v=10.0, n=3)
    pipe = redis_client.pipeline()
    layout.write_closed_candles(pipe, "xyz:kBONK", "5m", [candle])
    pipe.execute()
    assert layout.candles_key("xyz:kBONK", "5m").endswith(":5m:xyz:kBONK")
    assert layout.read_candles(redis_client, "xyz:kBONK", "5m") == [candle]
    assert layout.read_candles(redis_client, "XYZ:KBONK", "5m") == []  # another coin entirely


def test_sidecar_subscribes_allmids_per_builder_dex_within_the_ws_budget(
    simulator_factory: Callable[..., SimulatorProcess], redis_server: EmbeddedRedis,
    redis_client: redis.Redis, tmp_path: Path, sidecars: list[SidecarProc],  # noqa: F811
) -> None:
    """BBO off, so a builder-dex mid in Redis can only come from an `allMids` subscription with that
    dex (the venue's plain allMids covers the original dex only); the WS budget counts them: the
    subscription cap is set so 2 allMids of builder dexes + the original's + 4 candles fit exactly."""
    sim = simulator_factory("--speed", "60", "--interval", "1m", "--synthetic", "2", "--builder-dexes", "2",
                            "--markets-per-dex", "3", "--rate-limit-per-min", "0",
                            "--ws-max-subscriptions", "7")  # fmt: skip
    watch = ["SYN0001", "xyz:TSLA", "flx:TSLA", "flx:AAPL"]
    sidecar = SidecarProc(sim, redis_server.url, tmp_path, "mids", AI_QUANT_SYMBOLS=",".join(watch),
                          AI_QUANT_PERP_DEXES="all", AI_QUANT_WS_ENABLE_BBO="0",
                          AI_QUANT_ANCHOR_SYMBOL="NONE", HL_WS_MAX_SUBSCRIPTIONS="7").start()  # fmt: skip
    sidecars.append(sidecar)
    layout = RedisLayout("mids")
    everyone = [*watch, "SYN0002", "xyz:AAPL", "xyz:kBONK", "flx:kBONK"]  # allMids: all of a dex
    wait_for(lambda: set(layout.read_mids(redis_client, everyone)) == set(everyone), 60, "mids of every dex")
    sources = read_sources(redis_client, FleetKeys("mids"), "1m", watch)
    assert set(sources.values()) == {MarketSource.WS}  # all four candles on WS: the budget held
    with _client(sim, "all") as client:
        venue = client.all_mids()
    mids = layout.read_mids(redis_client, everyone)
    for coin in everyone:  # the pushed mid is the venue's (both move: compare loosely)
        assert mids[coin].price == pytest.approx(venue[coin], rel=0.05)
    assert sidecar.alive()
