"""The per-address request budget of the venue, kept locally so entries are shed before it runs out.

Hyperliquid gives every address a buffer of 10,000 `/exchange` requests plus one per USDC traded
(cumulative); past that cap the address may send one request every 10 s, and the venue refuses
the rest with "Too many cumulative requests sent ...". A batch of n orders or cancels counts n.
`userRateLimit` reports requests used and the cap.

What this module does:

* `budget_view` / `shed_decision` (pure): requests left = cap - used at the last read - requests
  sent since; entries are shed once that is at or below the reserve (`reserve_requests`), and
  resume only when it is back above twice the reserve (no flapping alerts while exits trade the
  cap up one request per USDC).
* `AddressBudget` (the thin shell): reads `userRateLimit` at start and every `poll_secs`, counts
  what `BudgetedTransport` posts, marks the budget spent at once when the venue answers "Too many
  cumulative requests" (and re-reads after the venue's 10 s window), and sends one alert when
  shedding starts and one when it ends.
* `with_address_budget(check)`: the pre-send check wrapper. Only NON_ESSENTIAL requests are shed:
  entries (OPEN/ADD), and whatever a caller asks about with `admits(RequestPriority.NON_ESSENTIAL)`
  (cosmetic cancels and modifies, non-urgent re-places). Exits, protective orders and their
  cancels are ESSENTIAL and never shed here: when the venue itself refuses them, the order is
  recorded as rejected and the engine's next tick tries again; the daemon never stops for it.

A failed `userRateLimit` read keeps the last view (a budget never read admits: the venue's own
limit stays the backstop, and an entry refused there costs nothing).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.config.env import env_float, env_int
from engine.enums import AlertKind, ExchangeOutcomeKind, RequestPriority, RiskReason, VenueRejectReason
from engine.execution.broker import AccountSnapshot, OrderIntent, Position, PreSendCheck
from engine.execution.verdicts import Deny, RiskVerdict
from engine.runtime.clock import wall_ms
from engine.venue import types as hl
from engine.venue.account_info import UserRateLimit
from engine.venue.exchange_client import ExchangeOutcome, ExchangeRejected, ExchangeTransport, SignedAction
from strategies.enums import TradeAction

log = logging.getLogger(__name__)

ENV_RESERVE = "AI_QUANT_ADDRESS_BUDGET_RESERVE"
ENV_POLL_SECS = "AI_QUANT_ADDRESS_BUDGET_POLL_SECS"
TOO_MANY_REQUESTS = "Too many cumulative requests"  # the venue's refusal text starts so
THROTTLED_EVERY_MS = 10_000  # over its cap an address may send one request per 10 s
_ENTRIES = frozenset({TradeAction.OPEN, TradeAction.ADD})

Alert = Callable[[AlertKind, str, Mapping[str, object]], Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class AddressBudgetConfig:
    """`reserve_requests`: requests kept for exits and protective orders (entries are shed at or
    below it); `poll_secs`: how often `userRateLimit` is re-read."""

    reserve_requests: int = 1_000
    poll_secs: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AddressBudgetConfig:
        """Read AI_QUANT_ADDRESS_BUDGET_RESERVE and _POLL_SECS; ConfigError naming a bad value."""
        return cls(
            reserve_requests=env_int(ENV_RESERVE, 1_000, env, lo=0, hi=1_000_000),
            poll_secs=env_float(ENV_POLL_SECS, 60.0, env, lo=1.0, hi=3_600.0),
        )


@dataclass(frozen=True, slots=True)
class BudgetView:
    """The venue's last reading plus what we sent since; `exhausted` after a venue refusal."""

    used: int
    cap: int
    sent_since_read: int = 0
    exhausted: bool = False

    @property
    def remaining(self) -> int:
        return 0 if self.exhausted else self.cap - self.used - self.sent_since_read


def shed_decision(view: BudgetView | None, reserve: int, shedding: bool) -> bool:
    """Return whether non-essential requests are shed now (hysteresis: start at or below
    `reserve` left, stop above twice the reserve). Unknown budget (never read): not shed."""
    if view is None:
        return False
    if shedding:
        return view.remaining <= max(2 * reserve, reserve + 1)
    return view.remaining <= reserve


def requests_counted(outcome: ExchangeOutcome) -> bool:
    """Whether a post used address requests: anything the venue may have processed. Not sent, a
    per-IP 429 and the address-budget refusal itself use none."""
    if outcome.kind is ExchangeOutcomeKind.NOT_SENT:
        return False
    if isinstance(outcome, ExchangeRejected):
        return outcome.reason is not VenueRejectReason.RATE_LIMITED and not is_budget_refusal(outcome)
    return True


def is_budget_refusal(outcome: ExchangeOutcome) -> bool:
    return isinstance(outcome, ExchangeRejected) and outcome.message.startswith(TOO_MANY_REQUESTS)


class AddressBudget:
    """Thread-safe local view of the address budget; see the module docstring."""

    def __init__(
        self,
        *,
        read: Callable[[], UserRateLimit],
        config: AddressBudgetConfig,
        alert: Alert | None = None,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self._read = read
        self.config = config
        self._alert = alert
        self._clock_ms = clock_ms
        self._lock = threading.Lock()
        self._view: BudgetView | None = None
        self._next_read_ms = 0
        self.shedding = False
        self.shed_count = 0  # non-essential requests refused since shedding began

    @property
    def view(self) -> BudgetView | None:
        return self._view

    def poll(self, *, force: bool = False) -> BudgetView | None:
        """Re-read `userRateLimit` when due (or `force`); a failed read keeps the last view."""
        now = self._clock_ms()
        if not force and now < self._next_read_ms:
            return self._view
        try:
            reading = self._read()
        except hl.VenueError as exc:
            log.warning("userRateLimit read failed error=%s; keeping the last view", type(exc).__name__)
            self._next_read_ms = now + THROTTLED_EVERY_MS
            return self._view
        with self._lock:
            before, self._view = self._view, BudgetView(reading.requests_used, reading.requests_cap)
            self._next_read_ms = now + int(self.config.poll_secs * 1000)
        if before is None or (before.used, before.cap) != (reading.requests_used, reading.requests_cap):
            log.info(
                "address request budget used=%d cap=%d remaining=%d reserve=%d", reading.requests_used,
                reading.requests_cap, self._view.remaining, self.config.reserve_requests,
            )  # fmt: skip
        self._update()
        return self._view

    def note_outcome(self, batch_len: int, outcome: ExchangeOutcome) -> None:
        """Count one post of `batch_len` requests by what the venue answered."""
        with self._lock:
            view = self._view
            if is_budget_refusal(outcome):
                base = view or BudgetView(0, 0)
                self._view = BudgetView(base.used, base.cap, base.sent_since_read, exhausted=True)
                # the venue's window: read again once one more request could pass
                self._next_read_ms = min(self._next_read_ms, self._clock_ms() + THROTTLED_EVERY_MS)
            elif view is not None and requests_counted(outcome):
                self._view = BudgetView(
                    view.used, view.cap, view.sent_since_read + max(1, batch_len), view.exhausted
                )
        self._update()

    def admits(self, priority: RequestPriority) -> bool:
        """Whether a request of `priority` may be sent now; ESSENTIAL ones always may."""
        if priority is RequestPriority.ESSENTIAL:
            return True
        self._update()
        if self.shedding:
            with self._lock:
                self.shed_count += 1
        return not self.shedding

    def _update(self) -> None:
        with self._lock:
            before = self.shedding
            self.shedding = shed_decision(self._view, self.config.reserve_requests, before)
            view = self._view
            if before == self.shedding or view is None:
                return
            shed, self.shed_count = self.shed_count, 0
        detail = {"remaining": view.remaining, "cap": view.cap, "reserve": self.config.reserve_requests}
        if self.shedding:
            log.warning("address request budget low: shedding entries %s", detail)
            self._send_alert("address request budget low: shedding entries, exits continue", detail)
        else:
            log.warning("address request budget recovered: entries resume %s shed=%d", detail, shed)
            self._send_alert("address request budget recovered: entries resume", {**detail, "shed": shed})

    def _send_alert(self, message: str, detail: Mapping[str, object]) -> None:
        if self._alert is None:
            return
        try:
            self._alert(AlertKind.RISK, message, detail)
        except Exception:  # an alert sink must never stop the order path
            log.exception("address budget alert failed")


def with_address_budget(check: PreSendCheck, budget: AddressBudget) -> PreSendCheck:
    """Wrap the pre-send check: after it allows, an entry is denied (ADDRESS_BUDGET) while the
    budget sheds; exits and everything else pass untouched."""

    def checked(
        intent: OrderIntent, account: AccountSnapshot, positions: Mapping[str, Position], now_ms: int
    ) -> RiskVerdict:
        verdict = check(intent, account, positions, now_ms)
        if isinstance(verdict, Deny) or intent.action not in _ENTRIES:
            return verdict
        if budget.admits(RequestPriority.NON_ESSENTIAL):
            return verdict
        view = budget.view
        return Deny(RiskReason.ADDRESS_BUDGET, {
            "remaining": None if view is None else view.remaining,
            "reserve": budget.config.reserve_requests,
        })  # fmt: skip

    return checked


class BudgetedTransport(ExchangeTransport):
    """The exchange transport that tells the address budget about every post."""

    def __init__(self, base_url: str, *, address_budget: AddressBudget, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self.address_budget = address_budget

    def post(self, signed: SignedAction, *, budget_wait_secs: float = 2.0) -> ExchangeOutcome:
        outcome = super().post(signed, budget_wait_secs=budget_wait_secs)
        self.address_budget.note_outcome(signed.batch_len, outcome)
        return outcome
