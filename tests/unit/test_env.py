"""engine.config.env: malformed variables fail loudly and name themselves."""

from __future__ import annotations

from enum import StrEnum

import pytest

from engine.config.env import ConfigError, env_bool, env_enum, env_float, env_int, env_list


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


def test_env_bool_accepts_common_spellings() -> None:
    assert env_bool("X", False, {"X": "Yes"}) is True
    assert env_bool("X", True, {"X": "0"}) is False
    assert env_bool("X", True, {}) is True
    assert env_bool("X", False, {"X": "  "}) is False


def test_env_bool_rejects_garbage_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="AI_QUANT_FOO"):
        env_bool("AI_QUANT_FOO", False, {"AI_QUANT_FOO": "maybe"})


def test_env_int_enforces_range_and_type() -> None:
    assert env_int("N", 5, {"N": "7"}, lo=1, hi=10) == 7
    with pytest.raises(ConfigError, match="below the minimum"):
        env_int("N", 5, {"N": "0"}, lo=1)
    with pytest.raises(ConfigError, match="not an integer"):
        env_int("N", 5, {"N": "1.5"})


def test_env_float_rejects_non_finite() -> None:
    with pytest.raises(ConfigError, match="finite"):
        env_float("F", 1.0, {"F": "nan"})
    assert env_float("F", 1.0, {"F": "2.5"}) == 2.5


def test_env_enum_lists_valid_values_on_error() -> None:
    assert env_enum("C", Colour, Colour.RED, {"C": "BLUE"}) is Colour.BLUE
    with pytest.raises(ConfigError, match="red, blue"):
        env_enum("C", Colour, Colour.RED, {"C": "green"})


def test_env_list_splits_and_strips() -> None:
    assert env_list("L", {"L": " BTC, ETH ,,SOL "}) == ("BTC", "ETH", "SOL")
    assert env_list("L", {}) == ()
