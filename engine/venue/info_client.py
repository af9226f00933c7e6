"""The project's Hyperliquid `POST /info` client: typed reads with retries and the shared budget.

Owns the request bodies of every info query the engine sends and the read-retry policy:
429, 5xx and connection errors are retried with exponential backoff and jitter, within a bounded
number of attempts and a total deadline; everything else fails at once with a typed error
(`VenueRejection` for 4xx, `ParseError` for a malformed answer, `TemporaryVenueError` when the
retries run out). Answers become `engine.venue.types` records here and nowhere else.

The base URL always comes from configuration (`AI_QUANT_HL_BASE_URL`, mainnet by default).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from hyperliquid.utils.constants import MAINNET_API_URL

from engine.config.env import ConfigError, env_str
from engine.config.perp_dexes import ORIGINAL_DEX, PerpDexSelection
from engine.enums import InfoType
from engine.venue import types as hl
from engine.venue.dexes import (
    ORIGINAL,
    PerpDex,
    collateral_token_of,
    merge_meta_and_ctxs,
    merge_metas,
    merge_user_states,
    offset_meta,
    parse_perp_dexs,
    parse_token_names,
    resolve_selection,
)
from engine.venue.rate_budget import RateBudget, info_extra_weight, info_weight
from strategies.candle import Candle, interval_ms

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_HL_BASE_URL = MAINNET_API_URL
HL_BASE_URL_ENV = "AI_QUANT_HL_BASE_URL"

_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_CLOID_RE = re.compile(r"^0x[0-9a-fA-F]{32}$")
_URL_RE = re.compile(r"^https?://[^/\s]+(/[^\s]*)?$")
_HEADERS = {"Content-Type": "application/json"}
_RETRYABLE_EXCEPTIONS = (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError)


def hl_base_url(env: Mapping[str, str] | None = None) -> str:
    """Return the venue's REST base URL from `AI_QUANT_HL_BASE_URL` (default: mainnet), without a
    trailing slash; raise ConfigError if it is not an http(s) URL."""
    url = env_str(HL_BASE_URL_ENV, DEFAULT_HL_BASE_URL, env).rstrip("/")
    if not _URL_RE.match(url):
        raise ConfigError(f"{HL_BASE_URL_ENV}={url!r} is not an http(s) URL")
    return url


def normalise_address(user: str) -> str:
    """Return a `0x` + 40-hex account address in lower case; raise ValueError otherwise."""
    if not isinstance(user, str) or not _ADDRESS_RE.match(user):
        raise ValueError(f"not an account address: {user!r}")
    return user.lower()


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Read retries: at most `max_attempts` tries within `total_deadline_secs`; the n-th wait is
    drawn uniformly from [d/2, d] with d = min(backoff_max_secs, backoff_base_secs * 2**(n-1))."""

    max_attempts: int = 4
    backoff_base_secs: float = 0.25
    backoff_max_secs: float = 8.0
    total_deadline_secs: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_base_secs < 0 or self.backoff_max_secs < 0 or self.total_deadline_secs <= 0:
            raise ValueError("backoff and deadline must be non-negative (deadline positive)")

    def backoff_secs(self, attempt: int, rng: random.Random) -> float:
        full = min(self.backoff_max_secs, self.backoff_base_secs * (2 ** (attempt - 1)))
        return full / 2 + rng.uniform(0.0, full / 2)


def _retry_after_secs(response: requests.Response) -> float:
    raw = response.headers.get("Retry-After")
    try:
        value = float(raw) if raw is not None else 0.0
    except ValueError:
        return 0.0
    return value if 0.0 <= value <= 300.0 else 0.0


class HyperliquidInfoClient:
    """Typed `POST {base_url}/info` reads. Thread-safe as long as the session is (requests' is,
    for this use). Every method raises TemporaryVenueError, VenueRejection or ParseError."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_secs: float,
        budget: RateBudget,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        perp_dexes: PerpDexSelection | None = None,
    ) -> None:
        """`perp_dexes` (AI_QUANT_PERP_DEXES) makes meta, metaAndAssetCtxs, allMids,
        clearinghouseState, openOrders and frontendOpenOrders span those dexes (default: the
        original dex only, the requests exactly as before); resolved against `perpDexs` on first use."""
        if timeout_secs <= 0:
            raise ValueError(f"timeout_secs must be positive, got {timeout_secs}")
        self.base_url = base_url.rstrip("/")
        self.timeout_secs = timeout_secs
        self.budget = budget
        self.retry = retry or RetryPolicy()
        self._session = session or requests.Session()
        self._owns_session = session is None
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock
        self.selection = perp_dexes or PerpDexSelection()
        self._listed: tuple[PerpDex, ...] | None = None
        self._traded: tuple[PerpDex, ...] | None = None
        self._collateral_index: dict[str, int | None] = {}

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> HyperliquidInfoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport ------------------------------------------------------------------------------

    def post_raw(self, info_type: InfoType, payload: Mapping[str, Any]) -> Any:
        """POST one info request and return the decoded JSON, retrying reads as the policy says."""
        url = f"{self.base_url}/info"
        data = json.dumps(payload, separators=(",", ":")).encode()
        deadline = self._clock() + self.retry.total_deadline_secs
        last = "no attempt made"
        attempt = 0
        while attempt < self.retry.max_attempts:
            attempt += 1
            remaining = deadline - self._clock()
            if remaining <= 0:
                break
            self.budget.acquire(info_weight(info_type), deadline=self.budget.now() + remaining)
            wait_floor = 0.0
            try:
                response = self._session.post(
                    url, data=data, headers=_HEADERS, timeout=min(self.timeout_secs, remaining)
                )
            except _RETRYABLE_EXCEPTIONS as exc:
                last = f"{type(exc).__name__}"
            else:
                status = response.status_code
                if status == 200:
                    return self._decode(info_type, response)
                if status == 429:
                    wait_floor = _retry_after_secs(response)
                    self.budget.penalise(wait_floor)
                    last = "http 429"
                elif status >= 500:
                    last = f"http {status}"
                else:
                    raise hl.VenueRejection(str(info_type), status, response.text[:300])
            if attempt >= self.retry.max_attempts:
                break
            wait = max(wait_floor, self.retry.backoff_secs(attempt, self._rng))
            if self._clock() + wait >= deadline:
                break
            log.warning(
                "info request retry",
                extra={
                    "request": str(info_type),
                    "attempt": attempt,
                    "cause": last,
                    "wait_secs": round(wait, 3),
                },
            )
            self._sleep(wait)
        raise hl.TemporaryVenueError(str(info_type), attempt, last)

    def _decode(self, info_type: InfoType, response: requests.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            raise hl.ParseError(str(info_type), "", f"not JSON: {response.text[:80]!r}") from None
        if isinstance(body, list):
            self.budget.charge(info_extra_weight(info_type, len(body)))
        return body

    def _get(self, info_type: InfoType, payload: dict[str, Any], parse: Callable[[Any, str], T]) -> T:
        return parse(self.post_raw(info_type, {"type": str(info_type), **payload}), str(info_type))

    # --- typed reads ----------------------------------------------------------------------------

    def perp_dexs(self) -> tuple[PerpDex, ...]:
        """Every perp dex the venue lists (the original first), with asset offsets and fee scales."""
        self._listed = self._get(InfoType.PERP_DEXS, {}, parse_perp_dexs)
        return self._listed

    def traded_dexes(self) -> tuple[PerpDex, ...]:
        """The dexes this client spans (AI_QUANT_PERP_DEXES resolved against `perpDexs`, once);
        ValueError naming a selected dex the venue does not list."""
        if self.selection.original_only:
            return (ORIGINAL,)
        if self._traded is None:
            self._traded = resolve_selection(self.selection, self.perp_dexs())
        return self._traded

    def _dex_payload(self, dex: str) -> dict[str, Any]:
        return {"dex": dex} if dex else {}

    def _offset(self, dex: str) -> int:
        if not dex:
            return 0
        listed = self._listed if self._listed is not None else self.perp_dexs()
        for d in listed:
            if d.name == dex:
                return d.asset_offset
        raise ValueError(f"perp dex {dex!r} is not listed by the venue")

    def _spans(self, dex: str | None) -> bool:
        return dex is None and not self.selection.original_only

    def meta(self, dex: str | None = None) -> hl.Meta:
        """Return the perp universe with the venue's asset ids (a builder dex's are offset);
        `dex=None` spans the traded dexes, a name reads that dex only ("" = the original)."""
        if self._spans(dex):
            return merge_metas(self.meta(d.name) for d in self.traded_dexes())
        name = dex or ORIGINAL_DEX
        body = self.post_raw(InfoType.META, {"type": str(InfoType.META), **self._dex_payload(name)})
        self._collateral_index[name] = collateral_token_of(body, str(InfoType.META))
        return offset_meta(hl.parse_meta(body, str(InfoType.META)), self._offset(name))

    def meta_and_asset_ctxs(self, dex: str | None = None) -> hl.MetaAndAssetCtxs:
        """Return the universe with each asset's funding, mark/oracle/mid prices, OI and volume."""
        if self._spans(dex):
            return merge_meta_and_ctxs(self.meta_and_asset_ctxs(d.name) for d in self.traded_dexes())
        name = dex or ORIGINAL_DEX
        answer = self._get(
            InfoType.META_AND_ASSET_CTXS, self._dex_payload(name), hl.parse_meta_and_asset_ctxs
        )
        return hl.MetaAndAssetCtxs(meta=offset_meta(answer.meta, self._offset(name)), ctxs=answer.ctxs)

    def all_mids(self, dex: str | None = None) -> dict[str, float]:
        """Return `{coin: mid price}`."""
        if self._spans(dex):
            return {k: v for d in self.traded_dexes() for k, v in self.all_mids(d.name).items()}
        return self._get(InfoType.ALL_MIDS, self._dex_payload(dex or ORIGINAL_DEX), hl.parse_all_mids)

    def dex_collateral(self) -> dict[str, str]:
        """{dex: collateral token name} of the traded dexes (the original dex settles in USDC)."""
        names: dict[int, str] | None = None
        out: dict[str, str] = {}
        for d in self.traded_dexes():
            if d.name not in self._collateral_index:
                self.meta(d.name)
            index = self._collateral_index.get(d.name)
            if index is None:
                out[d.name] = "USDC"
                continue
            if names is None:
                names = self._get(InfoType.SPOT_META, {}, parse_token_names)
            out[d.name] = names.get(index, f"token{index}")
        return out

    def candle_snapshot(self, coin: str, interval: str, start_ms: int, end_ms: int) -> tuple[Candle, ...]:
        """Return candles of `coin` opened in [start_ms, end_ms] (the venue keeps the last 5,000)."""
        interval_ms(interval)
        if start_ms > end_ms:
            raise ValueError(f"start_ms {start_ms} after end_ms {end_ms}")
        req = {"coin": coin, "interval": interval, "startTime": int(start_ms), "endTime": int(end_ms)}
        body = self.post_raw(InfoType.CANDLE_SNAPSHOT, {"type": str(InfoType.CANDLE_SNAPSHOT), "req": req})
        return hl.parse_candle_snapshot(body, str(InfoType.CANDLE_SNAPSHOT), coin=coin, interval=interval)

    def l2_book(self, coin: str) -> hl.L2Book:
        return self._get(InfoType.L2_BOOK, {"coin": coin}, hl.parse_l2_book)

    def clearinghouse_state(self, user: str, dex: str | None = None) -> hl.UserState:
        """Return margin summary, withdrawable and positions of `user` (the main account address);
        over several dexes, the merged account with each dex's own state kept (engine.venue.dexes)."""
        if self._spans(dex):
            dexes = self.traded_dexes()
            return merge_user_states({d.name: self.clearinghouse_state(user, d.name) for d in dexes})
        payload = {"user": normalise_address(user), **self._dex_payload(dex or ORIGINAL_DEX)}
        return self._get(InfoType.CLEARINGHOUSE_STATE, payload, hl.parse_user_state)

    def open_orders(self, user: str, dex: str | None = None) -> tuple[hl.OpenOrder, ...]:
        if self._spans(dex):
            return tuple(o for d in self.traded_dexes() for o in self.open_orders(user, d.name))
        payload = {"user": normalise_address(user), **self._dex_payload(dex or ORIGINAL_DEX)}
        return self._get(InfoType.OPEN_ORDERS, payload, hl.parse_open_orders)

    def frontend_open_orders(self, user: str, dex: str | None = None) -> tuple[hl.FrontendOpenOrder, ...]:
        if self._spans(dex):
            return tuple(o for d in self.traded_dexes() for o in self.frontend_open_orders(user, d.name))
        payload = {"user": normalise_address(user), **self._dex_payload(dex or ORIGINAL_DEX)}
        return self._get(InfoType.FRONTEND_OPEN_ORDERS, payload, hl.parse_frontend_open_orders)

    def user_fills(self, user: str) -> tuple[hl.Fill, ...]:
        """Return the most recent fills of `user` (the venue caps the count)."""
        return self._get(InfoType.USER_FILLS, {"user": normalise_address(user)}, hl.parse_user_fills)

    def user_fills_by_time(self, user: str, start_ms: int, end_ms: int | None = None) -> tuple[hl.Fill, ...]:
        """Return fills of `user` with time in [start_ms, end_ms] (end defaults to now at the venue)."""
        payload: dict[str, Any] = {"user": normalise_address(user), "startTime": int(start_ms)}
        if end_ms is not None:
            payload["endTime"] = int(end_ms)
        payload["aggregateByTime"] = False
        return self._get(InfoType.USER_FILLS_BY_TIME, payload, hl.parse_user_fills)

    def order_status(self, user: str, oid_or_cloid: int | str) -> hl.OrderStatusInfo:
        """Look an order up by exchange oid (int) or client order id (`0x` + 32 hex)."""
        if isinstance(oid_or_cloid, bool):
            raise ValueError("oid must be an int or a cloid string")
        if isinstance(oid_or_cloid, str):
            if not _CLOID_RE.match(oid_or_cloid):
                raise ValueError(f"not a cloid: {oid_or_cloid!r}")
            key: int | str = oid_or_cloid.lower()
        else:
            key = int(oid_or_cloid)
        return self._get(
            InfoType.ORDER_STATUS, {"user": normalise_address(user), "oid": key}, hl.parse_order_status
        )

    def funding_history(
        self, coin: str, start_ms: int, end_ms: int | None = None
    ) -> tuple[hl.FundingEntry, ...]:
        payload: dict[str, Any] = {"coin": coin, "startTime": int(start_ms)}
        if end_ms is not None:
            payload["endTime"] = int(end_ms)
        return self._get(InfoType.FUNDING_HISTORY, payload, hl.parse_funding_history)

    def user_funding(
        self, user: str, start_ms: int, end_ms: int | None = None
    ) -> tuple[hl.UserFundingEntry, ...]:
        payload: dict[str, Any] = {"user": normalise_address(user), "startTime": int(start_ms)}
        if end_ms is not None:
            payload["endTime"] = int(end_ms)
        return self._get(InfoType.USER_FUNDING, payload, hl.parse_user_funding)
