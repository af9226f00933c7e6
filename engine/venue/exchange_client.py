"""Signing and sending Hyperliquid `/exchange` actions, split so that building can never send.

* `ActionSigner` BUILDS and SIGNS actions (order batches with cloids, trigger orders, batchModify,
  cancel, cancelByCloid, updateLeverage, scheduleCancel) through the official SDK's signing
  functions and returns the exact JSON body that would be POSTed. It holds no transport:
  dry_live uses it alone.
* `ExchangeTransport` POSTs signed bodies to `{base_url}/exchange` under the shared weight
  budget and classifies the outcome: accepted (with per-item statuses), rejected, AMBIGUOUS
  (timeout, reset, lost or unreadable answer — keep the intent in flight and reconcile; never a
  rejection) or not sent. It never retries: re-sending an order is the caller's decision.
* Pure venue rules (re-exported from `engine.venue.precision`): client order ids, price rounding
  (5 significant figures, at most 6 - szDecimals decimals, integers always valid) and size
  rounding (szDecimals).

Secrets: the key lives in a `SigningKey` that redacts itself and refuses to be pickled; bodies
and signatures are never logged.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests
from hyperliquid.utils.constants import MAINNET_API_URL
from hyperliquid.utils.types import Cloid
from urllib3.exceptions import ConnectTimeoutError

from engine.enums import (
    AmbiguousReason,
    ExchangeActionType,
    ExchangeOutcomeKind,
    NotSentReason,
    Tif,
    VenueRejectReason,
)
from engine.runtime.clock import wall_ms

if TYPE_CHECKING:  # eth_account and the SDK's signing module cost ~0.7 s of imports: see _signing()
    from eth_account.signers.local import LocalAccount
from engine.venue import types as hl
from engine.venue.precision import (
    aggressive_limit_price as aggressive_limit_price,
)
from engine.venue.precision import (  # re-exported: callers import the venue rules from here
    cloid_for as cloid_for,
)
from engine.venue.precision import (
    is_valid_cloid as is_valid_cloid,
)
from engine.venue.precision import (
    is_valid_price as is_valid_price,
)
from engine.venue.precision import (
    is_valid_size as is_valid_size,
)
from engine.venue.precision import (
    max_price_decimals as max_price_decimals,
)
from engine.venue.precision import (
    round_price as round_price,
)
from engine.venue.precision import (
    round_size as round_size,
)
from engine.venue.precision import (
    validate_cloid as validate_cloid,
)
from engine.venue.rate_budget import RateBudget, RateBudgetExhausted, exchange_weight

log = logging.getLogger(__name__)

_HEADERS = {"Content-Type": "application/json"}
_GROUPINGS = frozenset({"na", "normalTpsl", "positionTpsl"})


# --- secrets ------------------------------------------------------------------------------------


class SigningKey:
    """An eth-account key that never shows itself: repr/str print only the address, and pickling
    (e.g. into a Ray task or a log record) raises."""

    __slots__ = ("_account",)

    def __init__(self, account: LocalAccount) -> None:
        from eth_account.signers.local import LocalAccount  # lazy: see _signing()

        if not isinstance(account, LocalAccount):
            raise TypeError("SigningKey needs an eth_account LocalAccount")
        self._account = account

    @classmethod
    def from_hex(cls, secret_hex: str) -> SigningKey:
        """Build from a 64-hex private key (optional 0x); the error never echoes the input."""
        raw = secret_hex.strip()
        raw = raw[2:] if raw.lower().startswith("0x") else raw
        if not re.fullmatch(r"[0-9a-fA-F]{64}", raw):
            raise ValueError("secret key must be 64 hex characters (optionally 0x-prefixed)")
        from eth_account import Account  # lazy: see _signing()

        return cls(Account.from_key("0x" + raw))

    @property
    def address(self) -> str:
        """The signer's (agent wallet's) public address."""
        return str(self._account.address)

    @property
    def account(self) -> LocalAccount:
        return self._account

    def __repr__(self) -> str:
        return f"SigningKey(address={self.address}, key=<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("SigningKey must not be pickled")


# --- signing ------------------------------------------------------------------------------------



class NonceSource:
    """Strictly increasing nonces: the wall clock in ms, bumped by one when it does not advance
    (same millisecond, or a clock step backwards). Thread-safe."""

    def __init__(self, clock_ms: Callable[[], int] = wall_ms) -> None:
        self._clock_ms = clock_ms
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(int(self._clock_ms()), self._last + 1)
            return self._last


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """The trigger of a stop-loss ("sl") or take-profit ("tp") order; `trigger_px` on the tick."""

    trigger_px: float
    tpsl: str
    is_market: bool = True

    def __post_init__(self) -> None:
        if self.tpsl not in ("sl", "tp"):
            raise ValueError(f"tpsl must be 'sl' or 'tp', got {self.tpsl!r}")
        px = self.trigger_px
        if isinstance(px, bool) or not isinstance(px, int | float) or not math.isfinite(px) or px <= 0:
            raise ValueError(f"trigger_px must be a finite positive number, got {px!r}")


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """One limit order (or, with `trigger`, a trigger order), already rounded to the venue's tick
    and lot (see round_price/round_size)."""

    asset: int
    is_buy: bool
    limit_px: float
    sz: float
    reduce_only: bool = False
    tif: Tif = Tif.GTC
    cloid: str | None = None
    trigger: TriggerSpec | None = None

    def __post_init__(self) -> None:
        if isinstance(self.asset, bool) or not isinstance(self.asset, int) or self.asset < 0:
            raise ValueError(f"asset must be a non-negative int, got {self.asset!r}")
        for name in ("limit_px", "sz"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(f"{name} must be a finite positive number, got {value!r}")
        Tif(self.tif)
        if self.cloid is not None:
            validate_cloid(self.cloid)


@dataclass(frozen=True, slots=True)
class SignedAction:
    """A signed `/exchange` request. `body` is the exact bytes to POST; `cloids[i]` belongs to item
    i of the batch (and to `statuses[i]` of the reply). repr omits the body and signature."""

    action_type: ExchangeActionType
    nonce: int
    batch_len: int
    cloids: tuple[str | None, ...]
    signer_address: str
    body: bytes = field(repr=False)

    def payload(self) -> dict[str, Any]:
        """Return the body as a dict (key order preserved, as the venue hashes it)."""
        return json.loads(self.body)


class ActionSigner:
    """Builds and signs actions with the SDK's `sign_l1_action`; holds no transport."""

    def __init__(
        self,
        key: SigningKey,
        *,
        is_mainnet: bool,
        vault_address: str | None = None,
        nonces: NonceSource | None = None,
    ) -> None:
        self._key = key
        self.is_mainnet = is_mainnet
        self.vault_address = vault_address.lower() if vault_address else None
        self._nonces = nonces or NonceSource()

    @classmethod
    def for_base_url(cls, key: SigningKey, base_url: str, **kwargs: Any) -> ActionSigner:
        """Sign as mainnet only for the exact mainnet URL, as the SDK does (else source "b")."""
        return cls(key, is_mainnet=base_url.rstrip("/") == MAINNET_API_URL, **kwargs)

    @property
    def address(self) -> str:
        return self._key.address

    def __repr__(self) -> str:
        return f"ActionSigner(address={self.address}, is_mainnet={self.is_mainnet})"

    def sign_orders(self, orders: Sequence[OrderSpec], *, grouping: str = "na") -> SignedAction:
        """Sign one `order` action carrying `orders` (a batch); raise ValueError on an empty batch
        or a price/size the wire format cannot carry exactly."""
        if not orders:
            raise ValueError("an order batch needs at least one order")
        if grouping not in _GROUPINGS:
            raise ValueError(f"grouping must be one of {sorted(_GROUPINGS)}, got {grouping!r}")
        wires = [_order_wire(spec) for spec in orders]
        action = _signing().order_wires_to_order_action(wires, None, grouping)  # type: ignore[arg-type]
        return self._sign(ExchangeActionType.ORDER, action, tuple(o.cloid for o in orders))

    def sign_batch_modify(self, modifies: Sequence[tuple[int, OrderSpec]]) -> SignedAction:
        """Sign `batchModify`: replace each open order (by oid) with its new spec; the venue
        cancels the old order and places the new one (new oid, the spec's cloid) in one action."""
        if not modifies:
            raise ValueError("a modify batch needs at least one item")
        items = [{"oid": _nonneg_int(oid, "oid"), "order": _order_wire(spec)} for oid, spec in modifies]
        action = {"type": "batchModify", "modifies": items}
        return self._sign(ExchangeActionType.BATCH_MODIFY, action, tuple(s.cloid for _o, s in modifies))

    def sign_cancels(self, cancels: Sequence[tuple[int, int]]) -> SignedAction:
        """Sign a `cancel` action for (asset, oid) pairs."""
        if not cancels:
            raise ValueError("a cancel batch needs at least one item")
        items = [{"a": _nonneg_int(a, "asset"), "o": _nonneg_int(o, "oid")} for a, o in cancels]
        return self._sign(
            ExchangeActionType.CANCEL, {"type": "cancel", "cancels": items}, (None,) * len(items)
        )

    def sign_cancels_by_cloid(self, cancels: Sequence[tuple[int, str]]) -> SignedAction:
        """Sign a `cancelByCloid` action for (asset, cloid) pairs."""
        if not cancels:
            raise ValueError("a cancel batch needs at least one item")
        items = [{"asset": _nonneg_int(a, "asset"), "cloid": validate_cloid(c)} for a, c in cancels]
        action = {"type": "cancelByCloid", "cancels": items}
        return self._sign(ExchangeActionType.CANCEL_BY_CLOID, action, tuple(c for _a, c in cancels))

    def sign_update_leverage(self, asset: int, leverage: int, *, is_cross: bool = True) -> SignedAction:
        """Sign `updateLeverage` (an integer leverage >= 1; the venue enforces the asset's maximum)."""
        lev = _nonneg_int(leverage, "leverage")
        if lev < 1:
            raise ValueError("leverage must be at least 1")
        action = {
            "type": "updateLeverage",
            "asset": _nonneg_int(asset, "asset"),
            "isCross": bool(is_cross),
            "leverage": lev,
        }
        return self._sign(ExchangeActionType.UPDATE_LEVERAGE, action, ())

    def sign_schedule_cancel(self, time_ms: int | None) -> SignedAction:
        """Sign `scheduleCancel`: cancel all open orders at `time_ms` (None clears the schedule)."""
        action: dict[str, Any] = {"type": "scheduleCancel"}
        if time_ms is not None:
            action["time"] = _nonneg_int(time_ms, "time_ms")
        return self._sign(ExchangeActionType.SCHEDULE_CANCEL, action, ())

    def _sign(
        self, action_type: ExchangeActionType, action: dict[str, Any], cloids: tuple[str | None, ...]
    ) -> SignedAction:
        nonce = self._nonces.next()
        signature = _signing().sign_l1_action(
            self._key.account, action, self.vault_address, nonce, None, self.is_mainnet
        )
        body = {
            "action": action,
            "nonce": nonce,
            "signature": signature,
            "vaultAddress": self.vault_address,
            "expiresAfter": None,
        }
        return SignedAction(
            action_type=action_type,
            nonce=nonce,
            batch_len=max(1, len(cloids)),
            cloids=cloids,
            signer_address=self._key.address,
            body=json.dumps(body, separators=(",", ":")).encode(),
        )


def _signing() -> Any:
    """The SDK's signing module, imported on first use: it pulls in eth_account (~0.7 s of CPU), which
    a paper daemon never needs, and the daemon's imports share the 2 cores with Ray's start."""
    from hyperliquid.utils import signing

    return signing


def _order_wire(spec: OrderSpec) -> Any:
    order_type: dict[str, Any] = {"limit": {"tif": str(Tif(spec.tif))}}
    if spec.trigger is not None:
        trigger = spec.trigger
        order_type = {"trigger": {"triggerPx": float(trigger.trigger_px), "isMarket": bool(trigger.is_market),
                                  "tpsl": trigger.tpsl}}  # fmt: skip
    request: dict[str, Any] = {
        "coin": "",
        "is_buy": bool(spec.is_buy),
        "sz": float(spec.sz),
        "limit_px": float(spec.limit_px),
        "order_type": order_type,
        "reduce_only": bool(spec.reduce_only),
    }
    if spec.cloid is not None:
        request["cloid"] = Cloid(spec.cloid)
    try:
        return _signing().order_request_to_order_wire(request, spec.asset)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValueError(f"order for asset {spec.asset} not representable on the wire: {exc}") from exc


def _nonneg_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a non-negative int, got {value!r}")
    return value


# --- outcomes -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExchangeAccepted:
    """HTTP 200 + status ok. Items may still carry per-item errors: check `ack.statuses`."""

    action_type: ExchangeActionType
    nonce: int
    ack: hl.ExchangeAck
    kind: ExchangeOutcomeKind = ExchangeOutcomeKind.ACCEPTED


@dataclass(frozen=True, slots=True)
class ExchangeRejected:
    """The venue did not act on the request (status err, 4xx, or 429)."""

    action_type: ExchangeActionType
    nonce: int
    reason: VenueRejectReason
    message: str
    http_status: int | None = None
    kind: ExchangeOutcomeKind = ExchangeOutcomeKind.REJECTED


@dataclass(frozen=True, slots=True)
class ExchangeAmbiguous:
    """The request may or may not have been executed. Never a rejection: keep it in flight and
    settle it from orderStatus (by cloid), openOrders or fills."""

    action_type: ExchangeActionType
    nonce: int
    reason: AmbiguousReason
    detail: str
    kind: ExchangeOutcomeKind = ExchangeOutcomeKind.AMBIGUOUS


@dataclass(frozen=True, slots=True)
class ExchangeNotSent:
    """Nothing reached the venue (local budget refusal, or the TCP connection never opened)."""

    action_type: ExchangeActionType
    nonce: int
    reason: NotSentReason
    detail: str
    kind: ExchangeOutcomeKind = ExchangeOutcomeKind.NOT_SENT


ExchangeOutcome = ExchangeAccepted | ExchangeRejected | ExchangeAmbiguous | ExchangeNotSent


# --- transport ----------------------------------------------------------------------------------


class ExchangeTransport:
    """POSTs signed actions to `{base_url}/exchange`, once, and classifies what happened."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_secs: float,
        budget: RateBudget,
        session: requests.Session | None = None,
    ) -> None:
        if timeout_secs <= 0:
            raise ValueError(f"timeout_secs must be positive, got {timeout_secs}")
        self.base_url = base_url.rstrip("/")
        self.timeout_secs = timeout_secs
        self.budget = budget
        self._session = session or requests.Session()
        self._owns_session = session is None

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def post(self, signed: SignedAction, *, budget_wait_secs: float = 2.0) -> ExchangeOutcome:
        """Send `signed` once. Waits at most `budget_wait_secs` for rate budget, else NOT_SENT."""
        outcome = self._post(signed, budget_wait_secs)
        log.info(
            "exchange post",
            extra={
                "action_type": str(signed.action_type),
                "nonce": signed.nonce,
                "batch_len": signed.batch_len,
                "cloids": [c for c in signed.cloids if c],
                "outcome": str(outcome.kind),
                "reason": str(getattr(outcome, "reason", "")),
            },
        )
        return outcome

    def _post(self, signed: SignedAction, budget_wait_secs: float) -> ExchangeOutcome:
        kind, nonce = signed.action_type, signed.nonce
        try:
            self.budget.acquire(
                exchange_weight(signed.batch_len), deadline=self.budget.now() + budget_wait_secs
            )
        except RateBudgetExhausted as exc:
            return ExchangeNotSent(kind, nonce, NotSentReason.RATE_BUDGET, exc.detail)
        try:
            response = self._session.post(
                f"{self.base_url}/exchange",
                data=signed.body,
                headers=_HEADERS,
                timeout=self.timeout_secs,
                allow_redirects=False,  # never re-send an action somewhere else
            )
        except requests.RequestException as exc:
            return _classify_exception(kind, nonce, exc)
        return self._classify_response(kind, nonce, response)

    def _classify_response(
        self, kind: ExchangeActionType, nonce: int, response: requests.Response
    ) -> ExchangeOutcome:
        status = response.status_code
        if status == 429:
            retry_after = _retry_after(response.headers)
            self.budget.penalise(retry_after)
            return ExchangeRejected(kind, nonce, VenueRejectReason.RATE_LIMITED, response.text[:300], status)
        if status >= 500 or status < 200 or 300 <= status < 400:
            return ExchangeAmbiguous(kind, nonce, AmbiguousReason.SERVER_ERROR, f"http {status}")
        if status >= 400:
            return ExchangeRejected(
                kind, nonce, VenueRejectReason.HTTP_CLIENT_ERROR, response.text[:300], status
            )
        try:
            reply = hl.parse_exchange_reply(response.json(), f"exchange.{kind}")
        except (ValueError, hl.ParseError) as exc:
            return ExchangeAmbiguous(kind, nonce, AmbiguousReason.UNREADABLE_RESPONSE, str(exc)[:300])
        if isinstance(reply, hl.ExchangeErr):
            return ExchangeRejected(kind, nonce, VenueRejectReason.VENUE_ERROR, reply.message, status)
        return ExchangeAccepted(kind, nonce, reply)


def _classify_exception(
    kind: ExchangeActionType, nonce: int, exc: requests.RequestException
) -> ExchangeOutcome:
    if isinstance(exc, requests.ConnectTimeout) or _caused_by_connect_failure(exc):
        return ExchangeNotSent(kind, nonce, NotSentReason.CONNECT_FAILED, type(exc).__name__)
    if isinstance(exc, requests.Timeout):
        return ExchangeAmbiguous(kind, nonce, AmbiguousReason.TIMEOUT, type(exc).__name__)
    return ExchangeAmbiguous(kind, nonce, AmbiguousReason.CONNECTION_LOST, type(exc).__name__)


def _caused_by_connect_failure(exc: BaseException) -> bool:
    """True when the TCP connection was never established (refused, unresolvable, connect timeout),
    so no byte of the request can have reached the venue."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectTimeoutError):
            return True
        if isinstance(current, BaseException):
            stack.extend(
                [
                    current.__cause__,
                    current.__context__,
                    getattr(current, "reason", None),
                    *[a for a in current.args if isinstance(a, BaseException)],
                ]
            )
    return False


def _retry_after(headers: Mapping[str, str]) -> float:
    try:
        value = float(headers.get("Retry-After", "0"))
    except ValueError:
        return 0.0
    return value if 0 <= value <= 300 else 0.0
