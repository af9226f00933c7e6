"""Closed vocabularies of the strategy layer. Values are what goes into SQLite and logs."""

from __future__ import annotations

from enum import StrEnum


class Signal(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    NEUTRAL = "NEUTRAL"


class Confidence(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class PositionSide(StrEnum):
    LONG = "LONG"
    SHORT = "SHORT"


class TradeAction(StrEnum):
    OPEN = "OPEN"
    ADD = "ADD"
    REDUCE = "REDUCE"
    CLOSE = "CLOSE"
