"""Typed strategy parameters: schema, layered merge, and errors naming strategy, symbol and field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import pytest

from strategies.sdk.errors import EXIT_CONFIG, StrategyConfigError, StrategyParamError
from strategies.sdk.params import StrategyParams, param


class Mode(StrEnum):
    FAST = "fast"
    SLOW = "slow"


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoParams(StrategyParams):
    window: int = param(20, lo=2, hi=500, doc="bars")
    threshold: float = param(1.5, lo=0.0, hi=10.0, doc="ATR")
    enabled: bool = param(True)
    label: str = param("x")
    mode: Mode = param(Mode.FAST)  # noqa: RUF009 - param() returns a dataclasses.field
    low: float = param(1.0)
    high: float = param(2.0)

    def cross_check(self) -> Sequence[tuple[str, str]]:
        return [("low", "must be below high")] if not self.low < self.high else ()


def build(*layers: dict[str, object], symbol: str | None = "ETH") -> DemoParams:
    return DemoParams.from_layers(list(layers), strategy="demo", symbol=symbol)


def test_params_defaults_when_no_layer() -> None:
    p = build()
    assert (p.window, p.threshold, p.enabled, p.label, p.mode) == (20, 1.5, True, "x", Mode.FAST)


def test_params_later_layer_wins() -> None:
    p = build({"window": 30, "threshold": 2}, {"window": 40})
    assert p.window == 40
    assert p.threshold == 2.0 and isinstance(p.threshold, float)


def test_params_enum_parsed_through_the_enum() -> None:
    assert build({"mode": "slow"}).mode is Mode.SLOW


@pytest.mark.parametrize(
    ("layer", "field", "problem"),
    [
        ({"windw": 3}, "windw", "unknown parameter"),
        ({"window": 1}, "window", "below the minimum"),
        ({"window": 501}, "window", "above the maximum"),
        ({"window": 20.0}, "window", "must be an int"),
        ({"window": True}, "window", "must be an int"),
        ({"threshold": "1.5"}, "threshold", "finite number"),
        ({"threshold": float("nan")}, "threshold", "finite number"),
        ({"threshold": False}, "threshold", "finite number"),
        ({"enabled": 1}, "enabled", "true or false"),
        ({"label": 3}, "label", "string"),
        ({"mode": "medium"}, "mode", "not one of"),
        ({"mode": ["fast"]}, "mode", "not one of"),
        ({"low": 3.0}, "low", "below high"),
    ],
)
def test_params_bad_value_names_strategy_symbol_and_field(
    layer: dict[str, object], field: str, problem: str
) -> None:
    with pytest.raises(StrategyParamError) as info:
        build(layer)
    err = info.value
    assert (err.strategy, err.symbol, err.field) == ("demo", "ETH", field)
    assert problem in err.problem
    assert "'demo'" in str(err) and "ETH" in str(err) and repr(field) in str(err)
    assert err.exit_code == EXIT_CONFIG == 2
    assert isinstance(err, StrategyConfigError)


def test_params_global_layer_error_shows_star_for_symbol() -> None:
    with pytest.raises(StrategyParamError) as info:
        build({"window": 0}, symbol=None)
    assert info.value.symbol == "*"


def test_params_layer_not_a_mapping_is_refused() -> None:
    with pytest.raises(StrategyParamError, match="mapping"):
        build(["window", 3])  # type: ignore[arg-type]


def test_params_direct_construction_validates() -> None:
    with pytest.raises(StrategyParamError) as info:
        DemoParams(window=0)
    assert info.value.strategy == "DemoParams" and info.value.field == "window"


def test_params_schema_lists_fields_in_order() -> None:
    schema = {s.name: s for s in DemoParams.schema()}
    assert list(schema) == ["window", "threshold", "enabled", "label", "mode", "low", "high"]
    assert schema["window"].to_dict() == {"name": "window", "type": "int", "default": 20, "lo": 2, "hi": 500,
                                          "choices": [], "doc": "bars"}
    assert schema["mode"].type == "enum" and schema["mode"].choices == ("fast", "slow")
    assert schema["mode"].default == "fast"


def test_params_to_dict_round_trips() -> None:
    p = build({"mode": "slow", "window": 7})
    assert DemoParams.from_mapping(p.to_dict(), strategy="demo", symbol="ETH") == p
    assert p.to_dict()["mode"] == "slow"
