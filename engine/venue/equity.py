"""Account equity in the venue's standard and unified account modes: the one place that says what
"equity" and "cash" are, for sizing and the risk checks.

Standard mode ("default", "disabled", "dexAbstraction"): the USDC collateral sits in the perp
clearinghouse; equity = `marginSummary.accountValue` (collateral + unrealised PnL), cash = equity
minus unrealised PnL. Unified mode ("unifiedAccount", and "portfolioMargin" likewise): every
balance and hold is reported in `spotClearinghouseState`, and the perp `accountValue` does not
describe the collateral (flat, it reads 0). Equity = the spot USDC `total` + the perp positions'
unrealised PnL; cash = the spot USDC total. Reading a unified account's `accountValue` as equity
would size every entry from zero, or from the unrealised PnL alone.

`account_equity` is pure. `AccountEquityReader` is the thin shell: it reads the mode
(`userAbstraction`) at start and again every `mode_max_age_ms` (the operator can switch modes),
and for a unified account the spot state together with each new perp state it is given (the
broker re-reads that after every send and when older than its max age), so the two never mix a
before-the-fill balance with an after-the-fill position. A failed read keeps the last good value
and flags it stale; with no value at all it raises (never "zero equity", never "standard by
default").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from engine.enums import AccountAbstraction
from engine.runtime.clock import wall_ms
from engine.venue import types as hl
from engine.venue.account_info import USDC, InfoPoster, SpotState, read_spot_state, read_user_abstraction

log = logging.getLogger(__name__)

MODE_MAX_AGE_MS = 600_000


@dataclass(frozen=True, slots=True)
class Equity:
    """What the account is worth (USD), read the way its mode requires."""

    mode: AccountAbstraction
    cash_usd: float
    equity_usd: float
    unrealised_pnl_usd: float
    margin_used_usd: float


def account_equity(mode: AccountAbstraction, state: hl.UserState, spot: SpotState | None) -> Equity:
    """Return equity and cash for `mode`; raise ValueError when a unified account has no spot state."""
    unrealised = sum(p.unrealized_pnl_usd for p in state.positions)
    margin_used = state.margin_summary.total_margin_used_usd
    if not mode.spot_collateral:
        value = state.margin_summary.account_value_usd
        return Equity(mode, value - unrealised, value, unrealised, margin_used)
    if spot is None:
        raise ValueError(f"account mode {mode.value} needs spotClearinghouseState for its equity")
    cash = spot.total(USDC)
    return Equity(mode, cash, cash + unrealised, unrealised, margin_used)


class AccountEquityReader:
    """Reads the account mode and (unified) spot balances behind caches; see the module docstring."""

    def __init__(
        self,
        info: InfoPoster,
        user: str,
        *,
        clock_ms: Callable[[], int] = wall_ms,
        mode_max_age_ms: int = MODE_MAX_AGE_MS,
    ) -> None:
        self._info = info
        self._user = user
        self._clock_ms = clock_ms
        self._mode_max_age_ms = mode_max_age_ms
        self._mode: AccountAbstraction | None = None
        self._mode_ms = 0
        self._spot: SpotState | None = None
        self._spot_for: hl.UserState | None = None  # the perp state the spot state was read with
        self.stale = False

    def mode(self) -> AccountAbstraction:
        """The account mode, re-read when older than `mode_max_age_ms`. Raises VenueError when it
        was never read successfully."""
        now = self._clock_ms()
        if self._mode is None or now - self._mode_ms > self._mode_max_age_ms:
            try:
                mode = read_user_abstraction(self._info, self._user)
            except hl.VenueError:
                if self._mode is None:
                    raise
                self.stale = True
                log.warning("userAbstraction read failed; keeping mode=%s", self._mode.value)
                return self._mode
            if self._mode is not None and mode is not self._mode:
                log.warning("account mode changed %s -> %s", self._mode.value, mode.value)
            self._mode, self._mode_ms = mode, now
        return self._mode

    def _spot_state(self, state: hl.UserState) -> SpotState:
        if self._spot is None or state is not self._spot_for:
            try:
                self._spot, self._spot_for = read_spot_state(self._info, self._user), state
            except hl.VenueError:
                if self._spot is None:
                    raise
                self.stale = True
                log.warning("spotClearinghouseState read failed; using the last snapshot")
        return self._spot

    def equity(self, state: hl.UserState) -> Equity:
        """Equity of the account whose perp state is `state`; `stale` tells whether a read failed."""
        self.stale = False
        mode = self.mode()
        spot = self._spot_state(state) if mode.spot_collateral else None
        return account_equity(mode, state, spot)
