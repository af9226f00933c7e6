"""Parsing of Hyperliquid market-data payloads (WebSocket frames, REST candle bodies) into records.

The one boundary where venue JSON becomes typed values for the sidecar and the MarketDataHub.
Every function here is pure; a malformed payload raises `FrameError` naming the field, and the
callers log and skip it (a bad frame is never fatal).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cluster.redis_layout import AccountEventKind
from strategies.candle import Candle


class FrameError(ValueError):
    """A venue payload is malformed; the message names the field."""


@dataclass(frozen=True, slots=True)
class CandleUpdate:
    symbol: str
    interval: str
    candle: Candle


@dataclass(frozen=True, slots=True)
class MidsUpdate:
    mids: dict[str, float]
    rejected: int


@dataclass(frozen=True, slots=True)
class BboUpdate:
    symbol: str
    bid_px: float
    bid_sz: float
    ask_px: float
    ask_sz: float
    venue_ms: int


@dataclass(frozen=True, slots=True)
class AccountUpdate:
    kind: AccountEventKind
    data: Any
    is_snapshot: bool
    venue_ms: int | None


@dataclass(frozen=True, slots=True)
class VenueError:
    text: str


Event = CandleUpdate | MidsUpdate | BboUpdate | AccountUpdate | VenueError

_IGNORED_CHANNELS = {"pong", "subscriptionResponse"}
# The venue greets every connection with this plain-text frame (not JSON).
CONNECTED_TEXT = "Websocket connection established."


def _num(obj: Mapping[str, Any], field: str) -> float:
    try:
        value = float(obj[field])
    except (KeyError, TypeError, ValueError) as exc:
        raise FrameError(f"field {field!r} missing or not a number: {obj.get(field)!r}") from exc
    if not math.isfinite(value):
        raise FrameError(f"field {field!r} is not finite: {obj[field]!r}")
    return value


def _int(obj: Mapping[str, Any], field: str) -> int:
    value = obj.get(field)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FrameError(f"field {field!r} missing or not an integer: {value!r}")
    try:
        number = int(value)
    except ValueError as exc:
        raise FrameError(f"field {field!r} is not an integer: {value!r}") from exc
    if number < 0:
        raise FrameError(f"field {field!r} is negative: {value!r}")
    return number


def parse_candle(obj: Any) -> tuple[str, str, Candle]:
    """Parse a venue candle object `{t,T,s,i,o,c,h,l,v,n}` into (symbol, interval, Candle)."""
    if not isinstance(obj, Mapping):
        raise FrameError(f"candle is not an object: {obj!r:.80}")
    symbol, interval = obj.get("s"), obj.get("i")
    if not isinstance(symbol, str) or not symbol:
        raise FrameError(f"candle field 's' missing or not a string: {symbol!r}")
    if not isinstance(interval, str) or not interval:
        raise FrameError(f"candle field 'i' missing or not a string: {interval!r}")
    try:
        candle = Candle(
            _int(obj, "t"),
            _int(obj, "T"),
            _num(obj, "o"),
            _num(obj, "h"),
            _num(obj, "l"),
            _num(obj, "c"),
            _num(obj, "v"),
            _int(obj, "n"),
        )
    except FrameError:
        raise
    except ValueError as exc:
        raise FrameError(f"candle {symbol} rejected: {exc}") from exc
    return symbol, interval, candle


def parse_candle_list(body: Any, symbol: str, interval: str) -> tuple[list[Candle], int]:
    """Parse a REST candleSnapshot body; return (candles ascending by t, count of rejected items).

    Items for another symbol/interval and malformed items are dropped and counted; duplicates on
    t keep the last one. A body that is not a list raises FrameError.
    """
    if not isinstance(body, list):
        raise FrameError(f"candleSnapshot body is not a list: {body!r:.80}")
    by_t: dict[int, Candle] = {}
    rejected = 0
    for item in body:
        try:
            sym, ivl, candle = parse_candle(item)
        except FrameError:
            rejected += 1
            continue
        if sym != symbol or ivl != interval:
            rejected += 1
            continue
        by_t[candle.t] = candle
    return [by_t[t] for t in sorted(by_t)], rejected


def _parse_mids(data: Any) -> MidsUpdate:
    mids = data.get("mids") if isinstance(data, Mapping) else None
    if not isinstance(mids, Mapping):
        raise FrameError("allMids frame without a 'mids' object")
    good: dict[str, float] = {}
    rejected = 0
    for coin, raw in mids.items():
        try:
            px = float(raw)
        except (TypeError, ValueError):
            rejected += 1
            continue
        if isinstance(coin, str) and coin and math.isfinite(px) and px > 0:
            good[coin] = px
        else:
            rejected += 1
    return MidsUpdate(good, rejected)


def _parse_bbo(data: Any) -> BboUpdate:
    if not isinstance(data, Mapping):
        raise FrameError("bbo frame data is not an object")
    coin, levels = data.get("coin"), data.get("bbo")
    if not isinstance(coin, str) or not coin:
        raise FrameError(f"bbo field 'coin' missing: {coin!r}")
    if not isinstance(levels, list) or len(levels) != 2:
        raise FrameError(f"bbo {coin}: field 'bbo' is not a [bid, ask] pair")
    bid, ask = levels
    if not isinstance(bid, Mapping) or not isinstance(ask, Mapping):
        raise FrameError(f"bbo {coin}: one side is empty")
    update = BboUpdate(
        coin, _num(bid, "px"), _num(bid, "sz"), _num(ask, "px"), _num(ask, "sz"), _int(data, "time")
    )
    if update.bid_px <= 0 or update.ask_px <= 0 or update.bid_px > update.ask_px:
        raise FrameError(f"bbo {coin}: bad prices bid={update.bid_px} ask={update.ask_px}")
    return update


def _account_time(kind: AccountEventKind, data: Any) -> int | None:
    times: list[int] = []
    if kind is AccountEventKind.USER_FILLS and isinstance(data, Mapping):
        times = [
            f["time"]
            for f in data.get("fills") or []
            if isinstance(f, Mapping) and isinstance(f.get("time"), int)
        ]
    elif kind is AccountEventKind.ORDER_UPDATES and isinstance(data, list):
        times = [
            u["statusTimestamp"]
            for u in data
            if isinstance(u, Mapping) and isinstance(u.get("statusTimestamp"), int)
        ]
    return max(times) if times else None


def parse_frame(text: str | bytes) -> Event | None:
    """Parse one WS frame; return an event, or None for frames we deliberately ignore.

    Raises FrameError for anything malformed (not JSON, wrong shape, bad numbers).
    """
    if text in (CONNECTED_TEXT, CONNECTED_TEXT.encode()):
        return None
    try:
        msg = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameError(f"frame is not JSON: {exc}") from exc
    if not isinstance(msg, Mapping) or not isinstance(msg.get("channel"), str):
        raise FrameError("frame without a 'channel' string")
    channel, data = msg["channel"], msg.get("data")
    if channel in _IGNORED_CHANNELS:
        return None
    parse = _CHANNEL_PARSERS.get(channel)
    return parse(data) if parse is not None else None


def _parse_candle_frame(data: Any) -> CandleUpdate:
    symbol, interval, candle = parse_candle(data)
    return CandleUpdate(symbol, interval, candle)


def _parse_account(kind: AccountEventKind, data: Any) -> AccountUpdate:
    if data is None:
        raise FrameError(f"{kind.value} frame without data")
    snapshot = bool(data.get("isSnapshot")) if isinstance(data, Mapping) else False
    return AccountUpdate(kind, data, snapshot, _account_time(kind, data))


# channel -> parser of its `data`; a channel not listed here (nor ignored above) yields None.
_CHANNEL_PARSERS: dict[str, Callable[[Any], Event]] = {
    "candle": _parse_candle_frame,
    "allMids": _parse_mids,
    "bbo": _parse_bbo,
    "error": lambda data: VenueError(str(data)[:500]),
    **{kind.value: functools.partial(_parse_account, kind)
       for kind in (AccountEventKind.USER_FILLS, AccountEventKind.ORDER_UPDATES)},
}
