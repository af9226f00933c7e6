"""Closed vocabularies of the Strategy SDK. Values are what goes into SQLite, logs and JSON.

Signal, Confidence, PositionSide and ExitReason are the strategy layer's own (`strategies.enums`);
these are the SDK's additions.
"""

from __future__ import annotations

from enum import StrEnum


class FaultKind(StrEnum):
    """Why a strategy's evaluation on one symbol produced no usable answer (decision-log code)."""

    EXCEPTION = "exception"  # the strategy's code raised
    BAD_OUTPUT = "bad_output"  # it returned NaN, a wrong type or an impossible value


class StrategyOrigin(StrEnum):
    """Where the registry found a strategy."""

    BUILTIN = "builtin"
    ENTRY_POINT = "entry_point"
    MODULE = "module"  # a 'package.module:ClassName' reference in the YAML
