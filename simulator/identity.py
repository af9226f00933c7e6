"""Who exists on the simulated venue and who may act for whom: accounts, deposits, approved agents.

Owns the funding policy. By default (strict, like the real venue) only addresses funded through the
simulator's configuration (`--fund ADDRESS=USD`, the loopback admin call, or `ExchangeCore.fund`)
have accounts; an L1 action whose recovered signer is neither an account nor an approved agent is
refused with "User or API Wallet 0x… does not exist.", and an account that never received a deposit
with "Must deposit before performing actions. User: 0x…". An agent wallet approved by a master
(`approveAgent`) acts for the master and has no account of its own. With `fund_any_usd` set
(`--fund-any USD`, the simulator's old kindness, for quick tests and the offline demo) any address
a user /info request or an approveAgent names is funded with that amount on first sight.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

from simulator import venue_vocab as vt
from simulator.accounts import Account
from simulator.matching import wire

ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")


class Identities:
    """Accounts by lowercase address, approved agents (agent -> master) and the funding policy."""

    def __init__(self, fund_any_usd: float | None, clock_ms: Callable[[], int]) -> None:
        """`clock_ms` stamps deposits (the market clock, like fills)."""
        if fund_any_usd is not None and not fund_any_usd >= 0:
            raise ValueError(f"fund_any_usd must be >= 0, got {fund_any_usd!r}")
        self.fund_any_usd = fund_any_usd
        self.accounts: dict[str, Account] = {}
        self.agents: dict[str, str] = {}
        self._clock_ms = clock_ms

    def fund(self, user: str, usd: float, volume_usd: float = 0.0) -> Account:
        """Deposit `usd` to `user` (creating the account) and add `volume_usd` of prior traded volume."""
        if not usd >= 0 or not volume_usd >= 0:
            raise ValueError("deposit and volume must be >= 0 USD")
        if user in self.agents:
            raise ValueError(f"{user} is an approved agent wallet; agents have no account of their own")
        account = self.accounts.get(user)
        if account is None:
            account = Account(address=user, cash=0.0)
            self.accounts[user] = account
        account.cash += usd
        account.deposited_usd += usd
        account.volume_usd += volume_usd
        if usd > 0:
            n = len(account.ledger_updates)
            account.ledger_updates.append({
                "time": self._clock_ms(),
                "hash": "0x" + hashlib.sha256(f"deposit:{user}:{n}".encode()).hexdigest(),
                "delta": {"type": "deposit", "usdc": wire(usd, 6)},
            })
        return account

    def _fund_on_sight(self, user: str) -> Account | None:
        if self.fund_any_usd is None or user in self.agents:
            return None
        return self.fund(user, self.fund_any_usd)

    def for_query(self, user: str) -> Account:
        """The account a user /info request reports: the stored one; under fund-any a new funded one;
        otherwise an empty view that is not stored (the venue reports zeros for unknown addresses)."""
        account = self.accounts.get(user) or self._fund_on_sight(user)
        return account if account is not None else Account(address=user, cash=0.0)

    def acting_user(self, signer: str) -> str | tuple[str, str]:
        """The user an L1 action signed by `signer` acts for, or ("err", text) refusing it."""
        user = self.agents.get(signer, signer if signer in self.accounts else None)
        if user is None:
            return ("err", vt.unknown_signer(signer))
        if self.accounts[user].deposited_usd <= 0:
            return ("err", vt.must_deposit(user))
        return user

    def role(self, user: str) -> dict[str, Any]:
        """The userRole answer: an approved agent names its master; an account (under fund-any, any
        address not an agent) is a user; anything else is missing."""
        master = self.agents.get(user)
        if master is not None:
            return {"role": "agent", "data": {"user": master}}
        account = self.accounts.get(user) or self._fund_on_sight(user)
        return {"role": "user"} if account is not None else {"role": "missing"}

    def approve_agent(self, master: str, agent: str) -> str | None:
        """Record `agent` as acting for `master`; return the refusal text, or None if approved."""
        account = self.accounts.get(master) or self._fund_on_sight(master)
        if account is None or account.deposited_usd <= 0:
            return vt.must_deposit(master)
        if agent in self.accounts:
            return vt.AGENT_IS_USER
        self.agents[agent] = master
        return None
