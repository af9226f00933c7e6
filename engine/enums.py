"""Closed vocabularies of the driver. Values are what goes into SQLite, logs and alerts.

Strategy-level words (Signal, Confidence, PositionSide, TradeAction) live in strategies.enums.
Add new enums here rather than scattering string literals.
"""

from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    PAPER = "paper"
    DRY_LIVE = "dry_live"
    LIVE = "live"


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class PriceSource(StrEnum):
    REDIS_MID = "redis_mid"
    REDIS_BBO = "redis_bbo"
    REST_MIDS = "rest_all_mids"
    LAST_CLOSE = "last_close"
    NONE = "none"
