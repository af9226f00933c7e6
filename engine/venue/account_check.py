"""The start-up check that the configured account is one the venue lets us trade, with its reason.

The secrets file names the account (`main_address`) and the key that signs (`secret_key`, or an
approved agent's `agent_secret_key`). A mistake there does not fail on the venue until the first
order, or worse, never: an agent wallet named as the account has no account of its own (its state
reads empty, while the orders it signs trade its master's account), so the engine would size from
zero and reconcile against the wrong account. So before anything reads or sends, `userRole` is
asked about the account and, when another key signs, about the signer:

* the account is an agent wallet -> refused, naming its master (the address to configure);
* the account is missing -> refused with the venue's "Must deposit before performing actions";
* the account is a vault or a sub-account -> refused (trading them needs a vaultAddress, which
  this engine does not sign);
* the signer is another address that is not an agent approved by the account -> refused with the
  venue's "User or API Wallet ... does not exist." (an unapproved signer) or naming whose agent
  it is.

Every refusal is a `ConfigError` (exit 2: a configuration to fix, not a crash to restart).
"""

from __future__ import annotations

import logging

from engine.config.env import ConfigError
from engine.enums import UserRole
from engine.venue.account_info import InfoPoster, RoleInfo, read_user_role

log = logging.getLogger(__name__)


class AccountRoleError(ConfigError):
    """The venue does not know the configured account (or signer) as one we may trade."""


def account_refusal(user: str, role: RoleInfo) -> str | None:
    """Return why `user` (the configured account, with venue role `role`) cannot be traded, or None."""
    if role.role is UserRole.USER:
        return None
    if role.role is UserRole.AGENT:
        return (
            f"account address {user} is an agent (API) wallet of {role.master} on the venue "
            f"(userRole=agent): an agent has no account of its own; set main_address to {role.master} "
            "and give the agent's key as agent_secret_key"
        )
    if role.role is UserRole.MISSING:
        return (
            f"account address {user} does not exist on the venue (userRole=missing): "
            f"Must deposit before performing actions. User: {user}"
        )
    return (
        f"account address {user} is a {role.role.value} on the venue: trading it needs a vaultAddress "
        "signature, which this engine does not send; configure the owning account"
    )


def signer_refusal(user: str, signer: str, role: RoleInfo) -> str | None:
    """Return why `signer` may not sign for `user`, or None (the signer is `user` or its agent)."""
    if signer == user or (role.role is UserRole.AGENT and role.master == user):
        return None
    if role.role is UserRole.AGENT:
        return (
            f"the signing key's address {signer} is an agent of {role.master}, not of the account {user}"
        )
    if role.role is UserRole.MISSING:
        return (
            f"the signing key's address {signer} is not an agent approved by {user} (userRole=missing): "
            f'the venue refuses its orders with "User or API Wallet {signer} does not exist."'
        )
    return f"the signing key's address {signer} is a {role.role.value} of its own, not an agent of {user}"


def check_account(info: InfoPoster, user: str, signer: str) -> RoleInfo:
    """Ask the venue about `user` (and `signer` when it differs); raise AccountRoleError with the
    reason when either cannot be used. VenueError propagates (the venue could not be asked)."""
    user, signer = user.lower(), signer.lower()
    role = read_user_role(info, user)
    problem = account_refusal(user, role)
    if problem is None and signer != user:
        problem = signer_refusal(user, signer, read_user_role(info, signer))
    if problem is not None:
        raise AccountRoleError(problem)
    log.info("venue account check user=%s role=%s signer=%s", user, role.role.value,
             "account" if signer == user else "agent")
    return role
