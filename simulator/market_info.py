"""Wire shapes of the venue's market data: /info answers and the WS market channels' payloads.

Owns the JSON the simulator sends for market data (meta, spotMeta, metaAndAssetCtxs, allMids,
candleSnapshot, l2Book, fundingHistory; candle, bbo, l2Book and allMids WS data). Numbers are
strings where the venue uses strings, times are integer ms, keys as in the recorded responses.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from simulator.market import (
    BASE_FUNDING_HOURLY,
    HOUR_MS,
    VALID_INTERVALS,
    Candle,
    Market,
    fmt_num,
    interval_ms_of,
)

MARKET_INFO_TYPES = frozenset({"meta", "spotMeta", "metaAndAssetCtxs", "allMids", "candleSnapshot",
                               "l2Book", "fundingHistory", "spotMetaAndAssetCtxs", "perpDexs",
                               "predictedFundings"})
EMPTY_SPOT_META: dict[str, Any] = {"universe": [], "tokens": []}  # a perp-only venue lists no spot pairs
FUNDING_HISTORY_CAP = 500
BOOK_DEPTH = 20
AGGREGATION_DEPTH = 400  # raw levels read to fill an aggregated (nSigFigs) book
N_SIG_FIGS = (2, 3, 4, 5)
DESERIALIZE_ERROR = "Failed to deserialize the JSON body into the target type"


class InfoRequestError(ValueError):
    """A malformed /info body; the venue answers HTTP 422 with plain text."""


def _meta(market: Market, body: dict[str, Any], _now_ms: int) -> Any:
    return meta_json(market, _dex(market, body))


def _all_mids(market: Market, body: dict[str, Any], now_ms: int) -> Any:
    return all_mids_json(market, now_ms, _dex(market, body))


def _meta_and_ctxs(market: Market, body: dict[str, Any], now_ms: int) -> Any:
    dex = _dex(market, body)
    return [meta_json(market, dex), asset_ctxs_json(market, now_ms, dex)]


def perp_dexs_json(market: Market) -> list[Any]:
    """``perpDexs``: null for the original dex (index 0), then each builder dex in asset-id order."""
    out: list[Any] = [None]
    for d in market.dexes.builders:
        out.append({"name": d.name, "fullName": d.full_name, "deployer": d.deployer,
                    "oracleUpdater": None, "feeRecipient": d.deployer, "assetToStreamingOiCap": [],
                    "deployerFeeScale": fmt_num(d.fee_scale)})
    return out


def spot_meta_json(market: Market) -> dict[str, Any]:
    """``spotMeta``: no spot pairs; the tokens list names the perp dexes' collateral tokens (only when
    builder dexes exist, so the original venue's answer is unchanged)."""
    if not market.dexes.builders:
        return dict(EMPTY_SPOT_META)
    tokens = {0: "USDC"} | {d.collateral_token: d.collateral for d in market.dexes.builders}
    return {"universe": [], "tokens": [
        {"name": name, "szDecimals": 2, "weiDecimals": 8, "index": index, "tokenId": f"0x{index:032x}",
         "isCanonical": True} for index, name in sorted(tokens.items())]}


def _l2_book(market: Market, body: dict[str, Any], now_ms: int) -> Any:
    coin = _req_str(body, "coin")
    n_sig = parse_n_sig_figs(body.get("nSigFigs"))
    return l2_book_json(market, coin, now_ms, n_sig_figs=n_sig) if market.has(coin) else None


_ANSWERS: dict[str, Any] = {
    "meta": _meta,
    "spotMeta": lambda m, _b, _t: spot_meta_json(m),
    "spotMetaAndAssetCtxs": lambda m, _b, _t: [spot_meta_json(m), []],
    "perpDexs": lambda m, _b, _t: perp_dexs_json(m),
    "predictedFundings": lambda m, _b, t: predicted_fundings_json(m, t),
    "metaAndAssetCtxs": _meta_and_ctxs,
    "allMids": _all_mids,
    "candleSnapshot": lambda m, b, t: _candle_snapshot(m, b, t),
    "l2Book": _l2_book,
    "fundingHistory": lambda m, b, t: _funding_history(m, b, t),
}


def answer_market_info(market: Market, body: dict[str, Any], now_ms: int) -> Any:
    """Answer a market-data /info request; raises InfoRequestError for a malformed one."""
    kind = body.get("type")
    answer = _ANSWERS.get(kind) if isinstance(kind, str) else None
    if answer is None:
        raise InfoRequestError(f"{DESERIALIZE_ERROR}: unknown variant `{kind}`")
    return answer(market, body, now_ms)


def _dex(market: Market, body: dict[str, Any]) -> str:
    """The request's perp dex ("" or absent = the original dex); 422 for one the venue does not list."""
    dex = body.get("dex") or ""
    if not isinstance(dex, str) or not market.dexes.has_dex(dex):
        raise InfoRequestError(f"{DESERIALIZE_ERROR}: unknown perp dex `{dex}`")
    return dex


def _rows(market: Market, dex: str) -> list[int]:
    """Rows of the dex's coins in the market's arrays, in its meta (asset index) order."""
    return [market.index_of(c) for c in market.dexes.coins_of(dex)]


def _req_str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise InfoRequestError(f"{DESERIALIZE_ERROR}: missing field `{key}`")
    return value


def _req_int(body: dict[str, Any], key: str, default: int | None = None) -> int:
    value = body.get(key, default)
    if value is None and default is not None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InfoRequestError(f"{DESERIALIZE_ERROR}: missing or invalid field `{key}`")
    return value


def meta_json(market: Market, dex: str = "") -> dict[str, Any]:
    """``meta`` of perp dex `dex`: its universe (asset index = position) and margin tables; a builder
    dex also names its collateral token (index into spotMeta tokens)."""
    universe = []
    tables: dict[int, dict[str, Any]] = {}
    infos = market.coin_info()
    for info in (infos[i] for i in _rows(market, dex)):
        universe.append({"szDecimals": info.sz_decimals, "name": info.name,
                         "maxLeverage": info.max_leverage, "marginTableId": info.max_leverage})
        tables[info.max_leverage] = {
            "description": "",
            "marginTiers": [{"lowerBound": "0.0", "maxLeverage": info.max_leverage}],
        }
    out: dict[str, Any] = {"universe": universe, "marginTables": [[k, v] for k, v in sorted(tables.items())]}
    if dex:
        out["collateralToken"] = market.dexes.collateral_index(dex)
    return out


def predicted_fundings_json(market: Market, now_ms: int) -> list[Any]:
    """``predictedFundings``: per coin, [venue, {fundingRate, nextFundingTime, fundingIntervalHours}];
    the simulator knows only its own venue ("HlPerp") and funds hourly."""
    rates = market.funding_rates_at(now_ms).tolist()
    next_hour = (now_ms // HOUR_MS + 1) * HOUR_MS
    return [[info.name, [["HlPerp", {"fundingRate": fmt_num(rate), "nextFundingTime": next_hour,
                                     "fundingIntervalHours": 1}]]]
            for info, rate in zip(market.coin_info(), rates, strict=True)]


def all_mids_json(market: Market, now_ms: int, dex: str = "") -> dict[str, str]:
    """``allMids`` of perp dex `dex`: coin → mid string."""
    mids = market.mids_at(now_ms).tolist()
    return {name: fmt_num(mids[market.index_of(name)]) for name in market.dexes.coins_of(dex)}


def asset_ctxs_json(market: Market, now_ms: int, dex: str = "") -> list[dict[str, Any]]:
    """Per-asset contexts of perp dex `dex`, index i ↔ its meta universe i."""
    mids = market.mids_at(now_ms).tolist()
    day = market.day_stats(now_ms)
    marks = market.marks_at(now_ms).tolist()
    funding = market.funding_rates_at(now_ms).tolist()
    bids, asks = (a.tolist() for a in market.best_bid_ask_at(now_ms))
    out = []
    infos = market.coin_info()
    for i in _rows(market, dex):
        info = infos[i]
        base = float(day["base"][i])
        out.append({
            "funding": fmt_num(funding[i]),
            "openInterest": fmt_num(round(base * 0.3, info.sz_decimals)),
            "prevDayPx": fmt_num(float(day["prev"][i])),
            "dayNtlVlm": fmt_num(round(float(day["ntl"][i]), 2)),
            "premium": fmt_num(round(funding[i] - BASE_FUNDING_HOURLY, 8)),
            "oraclePx": fmt_num(marks[i]),
            "markPx": fmt_num(marks[i]),
            "midPx": fmt_num(mids[i]),
            "impactPxs": [fmt_num(bids[i]), fmt_num(asks[i])],
            "dayBaseVlm": fmt_num(round(base, info.sz_decimals)),
        })
    return out


def candle_json(coin: str, interval: str, c: Candle) -> dict[str, Any]:
    """One candle as the venue sends it (REST and WS share the shape)."""
    t, t_close, o, h, lo, cl, v, n = c
    return {"T": t_close, "c": fmt_num(cl), "h": fmt_num(h), "i": interval, "l": fmt_num(lo), "n": n,
            "o": fmt_num(o), "s": coin, "t": t, "v": fmt_num(v)}


def _candle_snapshot(market: Market, body: dict[str, Any], now_ms: int) -> list[dict[str, Any]]:
    req = body.get("req")
    if not isinstance(req, dict):
        raise InfoRequestError(f"{DESERIALIZE_ERROR}: missing field `req`")
    coin = _req_str(req, "coin")
    interval = _req_str(req, "interval")
    if interval not in VALID_INTERVALS:
        raise InfoRequestError(f"{DESERIALIZE_ERROR}: unknown variant `{interval}`")
    start = _req_int(req, "startTime")
    end = _req_int(req, "endTime", default=now_ms)
    iv_ms = interval_ms_of(interval)
    if iv_ms is None or not market.has(coin):
        return []
    return [candle_json(coin, interval, c) for c in market.candles(coin, iv_ms, start, end, now_ms)]


def _funding_history(market: Market, body: dict[str, Any], now_ms: int) -> list[dict[str, Any]]:
    coin = _req_str(body, "coin")
    start = _req_int(body, "startTime")
    end = _req_int(body, "endTime", default=now_ms)
    if not market.has(coin):
        return []
    first = max(start, market.t0_ms, 0)
    hour = -(-first // HOUR_MS) * HOUR_MS
    last = min(end, now_ms)
    out = []
    while hour <= last and len(out) < FUNDING_HISTORY_CAP:
        rate = market.funding_rate_at(coin, hour)
        out.append({"coin": coin, "fundingRate": fmt_num(rate),
                    "premium": fmt_num(round(rate - BASE_FUNDING_HOURLY, 8)), "time": hour})
        hour += HOUR_MS
    return out


def _level(px: float, sz: float) -> dict[str, Any]:
    # orders per level: a deterministic 1..3 derived from the size
    return {"n": 1 + round(sz * 1000) % 3, "px": fmt_num(px), "sz": fmt_num(sz)}


def parse_n_sig_figs(value: Any) -> int | None:
    """The optional ``nSigFigs`` of an l2Book request: null/absent (full precision) or 2..5."""
    if value is None:
        return None
    if isinstance(value, bool) or value not in N_SIG_FIGS:
        raise InfoRequestError(f"{DESERIALIZE_ERROR}: invalid nSigFigs `{value}`")
    return int(value)


def _bucket(px: float, n_sig_figs: int, up: bool) -> float:
    step = 10.0 ** (math.floor(math.log10(px)) - n_sig_figs + 1)
    units = px / step
    return round((math.ceil(units - 1e-9) if up else math.floor(units + 1e-9)) * step, 10)


def _aggregate(
    levels: list[tuple[float, float]], n_sig_figs: int, up: bool, depth: int
) -> list[dict[str, Any]]:
    """Merge levels into price buckets of `n_sig_figs` significant figures (bids down, asks up)."""
    out: list[tuple[float, float, int]] = []
    for px, sz in levels:
        bucket = _bucket(px, n_sig_figs, up)
        n = 1 + round(sz * 1000) % 3
        if out and out[-1][0] == bucket:
            out[-1] = (bucket, out[-1][1] + sz, out[-1][2] + n)
        elif len(out) < depth:
            out.append((bucket, sz, n))
        else:
            break
    return [{"n": n, "px": fmt_num(p), "sz": fmt_num(round(s, 8))} for p, s, n in out]


def l2_book_json(market: Market, coin: str, now_ms: int, depth: int = BOOK_DEPTH,
                 n_sig_figs: int | None = None) -> dict[str, Any]:
    """``l2Book`` (REST answer and WS data): bids high→low, asks low→high; with `n_sig_figs` the
    levels are aggregated to that many significant figures (a deeper book is read to fill them)."""
    if n_sig_figs is None:
        bids, asks = market.book_at(coin, now_ms, depth)
        return {"coin": coin, "levels": [[_level(p, s) for p, s in bids], [_level(p, s) for p, s in asks]],
                "time": now_ms}
    bids, asks = market.book_at(coin, now_ms, AGGREGATION_DEPTH)
    return {"coin": coin, "levels": [_aggregate(bids, n_sig_figs, False, depth),
                                     _aggregate(asks, n_sig_figs, True, depth)], "time": now_ms}


def bbo_json(market: Market, coin: str, now_ms: int) -> dict[str, Any]:
    """WS ``bbo`` data: best bid and ask levels."""
    bids, asks = market.book_at(coin, now_ms, 1)
    return {"bbo": [_level(*bids[0]), _level(*asks[0])], "coin": coin, "time": now_ms}


def info_items(result: Any) -> int:
    """Number of items an answer returned (for size-dependent rate-limit weight)."""
    if isinstance(result, list | tuple | np.ndarray):
        return len(result)
    return 0
