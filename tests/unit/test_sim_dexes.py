"""The simulator's HIP-3 builder dexes (simulator/dexes.py, --builder-dexes): deterministic names and
coins, the SDK's asset-id arithmetic both ways, flag validation (exit 2), per-dex market answers, and
independence (adding a dex never moves another dex's prices).
"""

from __future__ import annotations

import pytest

from simulator.cli import build_venue, parse_options
from simulator.dexes import DexTable, make_builder_dexes
from simulator.market_info import InfoRequestError, answer_market_info

START = ["--speed", "0", "--start-ms", "1764000000000", "--seed", "3"]


def test_catalogue_dexes_are_deterministic_with_distinct_coins() -> None:
    first = make_builder_dexes(3, 50)
    assert first == make_builder_dexes(3, 50)
    assert [d.name for d in first] == ["xyz", "flx", "vntl"]
    assert [d.collateral for d in first] == ["USDC", "USDH", "USDE"]
    for dex in first:
        assert len(set(dex.coins)) == 50 and all(c.startswith(dex.name + ":") for c in dex.coins)
    assert "xyz:kBONK" in first[0].coins  # a mixed-case coin, as the venue has them
    with pytest.raises(ValueError, match="--builder-dexes"):
        make_builder_dexes(9, 10)
    with pytest.raises(ValueError, match="--markets-per-dex"):
        make_builder_dexes(1, 0)


def test_asset_ids_follow_the_sdk_both_ways() -> None:
    builders = make_builder_dexes(2, 3)
    coins = ["BTC", "ETH", *builders[0].coins, *builders[1].coins]
    table = DexTable(coins, builders)
    assert [table.asset_of(c) for c in coins] == [0, 1, 110_000, 110_001, 110_002, 120_000, 120_001, 120_002]
    assert all(table.coin_of(table.asset_of(c)) == c for c in coins)
    assert table.coin_of(2) is None and table.coin_of(110_003) is None
    assert table.fee_multiplier("flx:TSLA") == 1.5 and table.fee_multiplier("BTC") == 1.0
    with pytest.raises(ValueError, match="unknown perp dex"):
        DexTable(["abc:TSLA"], builders)


BAD_FLAGS = [["--builder-dexes", "9"], ["--builder-dexes", "1", "--markets-per-dex", "0"]]


@pytest.mark.parametrize("args", BAD_FLAGS)
def test_bad_builder_dex_flags_exit_2(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_options(args)
    assert exc.value.code == 2


def test_market_answers_are_per_dex_and_adding_a_dex_moves_no_prices() -> None:
    one = build_venue(parse_options([*START, "--builder-dexes", "1", "--markets-per-dex", "5"])).market
    two = build_venue(parse_options([*START, "--builder-dexes", "2", "--markets-per-dex", "5"])).market
    now = one.now_ms()
    xyz_one = answer_market_info(one, {"type": "allMids", "dex": "xyz"}, now)
    assert xyz_one == answer_market_info(two, {"type": "allMids", "dex": "xyz"}, now)
    flx = answer_market_info(two, {"type": "meta", "dex": "flx"}, now)
    assert [a["name"] for a in flx["universe"]] == list(two.dexes.coins_of("flx"))
    main = answer_market_info(two, {"type": "meta"}, now)
    assert not any(":" in a["name"] for a in main["universe"]) and "collateralToken" not in main
    meta, ctxs = answer_market_info(two, {"type": "metaAndAssetCtxs", "dex": "flx"}, now)
    assert len(ctxs) == len(meta["universe"]) == 5
    assert [d and d["deployerFeeScale"] for d in answer_market_info(two, {"type": "perpDexs"}, now)] == [
        None, "1.0", "0.5"]
    with pytest.raises(InfoRequestError, match="unknown perp dex"):
        answer_market_info(one, {"type": "allMids", "dex": "flx"}, now)
