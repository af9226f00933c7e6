"""The live stack's venue-rule steps: the account check at start, the per-address request budget,
the account mode behind equity, and what follows a venue liquidation.

Why its own module: these are the venue's rules the simulator now enforces (issue 13) and the live
stack (engine/daemon/live.py) only calls two hooks, `start` before anything else reads the account
and `sync` on every loop iteration, so the stack's own steps stay as they were.

* `start`: `userRole` of the account and the signer (engine.venue.account_check; a refusal is a
  ConfigError: exit 2 with the venue's reason), the account mode (`userAbstraction`, logged: it
  decides how equity is read, engine.venue.equity) and the first `userRateLimit` read.
* `sync`: the budget's periodic `userRateLimit` read, then the liquidation watch
  (engine.oms.liquidation) over the fills the ledger took in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from engine.execution.address_budget import AddressBudget
from engine.oms.liquidation import LiquidationWatch
from engine.venue.account_check import check_account
from engine.venue.equity import AccountEquityReader
from engine.venue.errors import VenueError
from engine.venue.info_client import HyperliquidInfoClient

log = logging.getLogger("engine.daemon.live")

Guard = Callable[[str], AbstractContextManager[None]]  # one failing step never skips the others


@dataclass
class VenueRules:
    """What the live stack runs for the venue's rules (see the module docstring)."""

    info: HyperliquidInfoClient
    user: str
    signer: str
    equity: AccountEquityReader
    liquidation: LiquidationWatch
    address_budget: AddressBudget | None = None

    def start(self) -> None:
        """Refuse an account the venue will not let us trade (ConfigError), then read the mode
        and the request budget. A venue that cannot be asked raises VenueError (not trading)."""
        role = check_account(self.info, self.user, self.signer)
        mode = self.equity.mode()
        log.info("venue account mode=%s role=%s", mode.value, role.role.value)
        if self.address_budget is not None:
            try:
                self.address_budget.poll(force=True)
            except VenueError:  # poll keeps going on a failed read; never stop the start for it
                log.warning("first userRateLimit read failed", exc_info=True)

    def sync(self, guard: Guard) -> None:
        """Every loop iteration, after the reconcile step."""
        if self.address_budget is not None:
            with guard("address_budget"):
                self.address_budget.poll()
        with guard("liquidation"):
            self.liquidation.check()
