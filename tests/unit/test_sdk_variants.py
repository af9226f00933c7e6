"""Shadow variants: grids from lists and ranges, deterministic names, validation at load."""

from __future__ import annotations

from typing import Any

import pytest

from strategies.sdk.builtin.breakout import BreakoutParams
from strategies.sdk.errors import StrategyConfigError, StrategyParamError
from strategies.sdk.variants import Variant, build_variants, expand_grid


def test_grid_expands_lists_and_ranges_in_a_stable_order() -> None:
    grid = {"stop_loss_atr": {"from": 1.0, "to": 2.0, "step": 0.5}, "channel_bars": [10, 55]}
    variants = expand_grid("bo", "donchian_breakout", grid, base_overrides={"allow_short": False})
    assert [v.name for v in variants] == [
        "bo[channel_bars=10,stop_loss_atr=1.0]", "bo[channel_bars=10,stop_loss_atr=1.5]",
        "bo[channel_bars=10,stop_loss_atr=2.0]", "bo[channel_bars=55,stop_loss_atr=1.0]",
        "bo[channel_bars=55,stop_loss_atr=1.5]", "bo[channel_bars=55,stop_loss_atr=2.0]"]
    assert variants[4].overrides == {"allow_short": False, "channel_bars": 55, "stop_loss_atr": 1.5}
    assert {v.strategy for v in variants} == {"donchian_breakout"}


def test_grid_float_range_has_no_binary_noise_and_keeps_the_top() -> None:
    values = [v.overrides["x"] for v in expand_grid("g", "s", {"x": {"from": 0.1, "to": 0.7, "step": 0.2}})]
    assert values == [0.1, 0.3, 0.5, 0.7]
    ints = [v.overrides["n"] for v in expand_grid("g", "s", {"n": {"from": 10, "to": 30, "step": 10}})]
    assert ints == [10, 20, 30] and all(isinstance(n, int) for n in ints)


def test_empty_grid_is_the_base_variant() -> None:
    assert expand_grid("only", "s", {}, base_overrides={"a": 1}) == [Variant("only", "s", {"a": 1})]


@pytest.mark.parametrize(
    ("axis", "match"),
    [
        ([], "non-empty list"),
        ("10,20", "non-empty list"),
        ({"from": 1, "to": 3}, "exactly from, to, step"),
        ({"from": 1, "to": 3, "step": 0}, "step > 0"),
        ({"from": 3, "to": 1, "step": 1}, "to >= from"),
        ({"from": "1", "to": 3, "step": 1}, "finite numbers"),
        ({"from": 1, "to": float("inf"), "step": 1}, "finite numbers"),
    ],
)
def test_grid_bad_axis_is_a_config_error(axis: Any, match: str) -> None:
    with pytest.raises(StrategyConfigError, match=match):
        expand_grid("g", "s", {"x": axis})


def test_grid_over_the_limit_is_refused() -> None:
    with pytest.raises(StrategyConfigError, match="expands to 1001 variants"):
        expand_grid("g", "s", {"a": list(range(7)), "b": list(range(11)), "c": list(range(13))})
    assert len(expand_grid("g", "s", {"a": list(range(10)), "b": list(range(10))}, max_variants=100)) == 100


def test_build_variants_validates_each_against_the_schema() -> None:
    variants = expand_grid("bo", "donchian_breakout", {"channel_bars": [10, 20]})
    built = build_variants(variants, BreakoutParams, [{"atr_window": 7}], symbol="ETH")
    assert [(v.name, p.channel_bars, p.atr_window) for v, p in built] == [
        ("bo[channel_bars=10]", 10, 7), ("bo[channel_bars=20]", 20, 7)]


def test_build_variants_bad_value_names_the_variant_and_field() -> None:
    variants = expand_grid("bo", "donchian_breakout", {"channel_bars": [10, 1]})
    with pytest.raises(StrategyParamError) as info:
        build_variants(variants, BreakoutParams, symbol="SOL")
    err = info.value
    assert err.strategy == "donchian_breakout (variant bo[channel_bars=1])"
    assert (err.symbol, err.field, err.exit_code) == ("SOL", "channel_bars", 2)


def test_build_variants_refuses_duplicate_names() -> None:
    twice = [Variant("v", "donchian_breakout", {}), Variant("v", "donchian_breakout", {"channel_bars": 5})]
    with pytest.raises(StrategyConfigError, match="duplicate shadow variant name 'v'"):
        build_variants(twice, BreakoutParams)
