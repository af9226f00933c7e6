"""Typed Hyperliquid records, parsed once at the edge, and the venue error types.

Owns the wire shapes of every `POST /info` answer the engine reads and of `POST /exchange`
replies. Everything above the clients works with these frozen records and never with raw JSON.
Parsers are strict where a wrong value could move money (NaN, infinity, negative sizes, unknown
enum values, wrong types all raise `ParseError` naming the request and the field path) and
lenient about extra keys, which the venue adds over time.

Numbers arrive as decimal strings (sometimes JSON numbers); they become floats. Times are epoch ms.

This module is the one import for callers (`from engine.venue import types as hl`); the code lives in
`engine.venue.errors` (error types), `engine.venue.fields` (the strict field readers),
`engine.venue.market` (meta, asset contexts, mids, candles, book, funding history),
`engine.venue.account` (account state, orders, fills, funding payments) and `engine.venue.exchange_parse`
(`/exchange` replies).
"""

from __future__ import annotations

from engine.enums import LeverageType, VenueOrderStatus, VenueSide
from engine.venue.account import (
    CumFunding,
    Fill,
    FrontendOpenOrder,
    MarginSummary,
    OpenOrder,
    OrderStatusInfo,
    OrderUpdate,
    Position,
    UserFundingEntry,
    UserState,
    parse_fill,
    parse_frontend_open_orders,
    parse_open_orders,
    parse_order_status,
    parse_order_updates,
    parse_user_fills,
    parse_user_funding,
    parse_user_state,
)
from engine.venue.errors import ParseError, TemporaryVenueError, VenueError, VenueRejection
from engine.venue.exchange_parse import (
    ActionStatus,
    ErrorStatus,
    ExchangeAck,
    ExchangeErr,
    FilledStatus,
    RestingStatus,
    TextStatus,
    parse_exchange_reply,
)
from engine.venue.market import (
    AssetCtx,
    AssetMeta,
    FundingEntry,
    L2Book,
    L2Level,
    MarginTable,
    MarginTier,
    Meta,
    MetaAndAssetCtxs,
    parse_all_mids,
    parse_candle,
    parse_candle_snapshot,
    parse_funding_history,
    parse_l2_book,
    parse_meta,
    parse_meta_and_asset_ctxs,
)
from strategies.candle import Candle

__all__ = [
    "ActionStatus",
    "AssetCtx",
    "AssetMeta",
    "Candle",
    "CumFunding",
    "ErrorStatus",
    "ExchangeAck",
    "ExchangeErr",
    "Fill",
    "FilledStatus",
    "FrontendOpenOrder",
    "FundingEntry",
    "L2Book",
    "L2Level",
    "LeverageType",
    "MarginSummary",
    "MarginTable",
    "MarginTier",
    "Meta",
    "MetaAndAssetCtxs",
    "OpenOrder",
    "OrderStatusInfo",
    "OrderUpdate",
    "ParseError",
    "Position",
    "RestingStatus",
    "TemporaryVenueError",
    "TextStatus",
    "UserFundingEntry",
    "UserState",
    "VenueError",
    "VenueOrderStatus",
    "VenueRejection",
    "VenueSide",
    "parse_all_mids",
    "parse_candle",
    "parse_candle_snapshot",
    "parse_exchange_reply",
    "parse_fill",
    "parse_frontend_open_orders",
    "parse_funding_history",
    "parse_l2_book",
    "parse_meta",
    "parse_meta_and_asset_ctxs",
    "parse_open_orders",
    "parse_order_status",
    "parse_order_updates",
    "parse_user_fills",
    "parse_user_funding",
    "parse_user_state",
]
