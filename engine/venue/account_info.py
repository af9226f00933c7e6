"""Account-level `/info` answers beyond `clearinghouseState`, parsed once at the edge, and their reads.

Owns the wire shapes of `spotClearinghouseState` (where a unified account keeps its USDC),
`userAbstraction` (the account mode), `userRateLimit` (the per-address request budget) and
`userRole` (is an address a user, an agent wallet, a vault...). Each `read_*` function takes the
project's info client (retries, the shared weight budget) and returns the typed record; a
malformed answer raises `ParseError` naming the request and the field, like every venue parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from engine.enums import AccountAbstraction, InfoType, UserRole
from engine.venue.fields import _Ctx, _int, _list_field, _num, _obj, _opt_str, _str, _sub, _unknown

USDC = "USDC"


class InfoPoster(Protocol):
    """The part of `HyperliquidInfoClient` these reads use."""

    def post_raw(self, info_type: InfoType, payload: dict[str, Any]) -> Any: ...


@dataclass(frozen=True, slots=True)
class SpotBalance:
    """One token balance; `hold` is what orders and (unified) perp margin tie up."""

    coin: str
    total: float
    hold: float


@dataclass(frozen=True, slots=True)
class SpotState:
    balances: tuple[SpotBalance, ...]

    def total(self, coin: str = USDC) -> float:
        """Return the balance of `coin` (0.0 when the venue lists none: it omits zero balances)."""
        return sum(b.total for b in self.balances if b.coin == coin)

    def hold(self, coin: str = USDC) -> float:
        return sum(b.hold for b in self.balances if b.coin == coin)


def _spot_balance(item: Any, ctx: _Ctx) -> SpotBalance:
    obj = _obj(item, ctx)
    return SpotBalance(
        coin=_str(obj, "coin", ctx),
        total=_num(obj, "total", ctx, sign="nonneg"),
        hold=_num(obj, "hold", ctx, sign="nonneg"),
    )


def parse_spot_state(body: Any, request: str = "spotClearinghouseState") -> SpotState:
    ctx = _Ctx(request)
    return SpotState(balances=_list_field(_obj(body, ctx), "balances", ctx, _spot_balance))


def parse_user_abstraction(body: Any, request: str = "userAbstraction") -> AccountAbstraction:
    """The answer is a bare JSON string ("default", "unifiedAccount", ...); anything else raises."""
    ctx = _Ctx(request)
    if not isinstance(body, str):
        raise ctx.fail(f"expected a string, got {type(body).__name__}")
    try:
        return AccountAbstraction(body)
    except ValueError:
        raise _unknown(ctx, body) from None


@dataclass(frozen=True, slots=True)
class UserRateLimit:
    """`userRateLimit`: requests used so far and the cap (10,000 + 1 per USDC traded + reserved)."""

    cum_volume_usd: float
    requests_used: int
    requests_cap: int
    requests_surplus: int = 0


def parse_user_rate_limit(body: Any, request: str = "userRateLimit") -> UserRateLimit:
    ctx = _Ctx(request)
    obj = _obj(body, ctx)
    surplus = obj.get("nRequestsSurplus")
    return UserRateLimit(
        cum_volume_usd=_num(obj, "cumVlm", ctx, sign="nonneg"),
        requests_used=_int(obj, "nRequestsUsed", ctx),
        requests_cap=_int(obj, "nRequestsCap", ctx),
        requests_surplus=0 if surplus is None else _int(obj, "nRequestsSurplus", ctx),
    )


@dataclass(frozen=True, slots=True)
class RoleInfo:
    """`userRole`: the role, and for an agent (or sub-account) the master account's address."""

    role: UserRole
    master: str | None = None


def parse_user_role(body: Any, request: str = "userRole") -> RoleInfo:
    ctx = _Ctx(request)
    obj = _obj(body, ctx)
    role_text = _str(obj, "role", ctx)
    try:
        role = UserRole(role_text)
    except ValueError:
        raise _unknown(ctx.at("role"), role_text) from None
    if role not in (UserRole.AGENT, UserRole.SUB_ACCOUNT):
        return RoleInfo(role)
    data, dctx = _sub(obj, "data", ctx)
    master = _opt_str(data, "user", dctx) or _opt_str(data, "master", dctx)
    if master is None:
        raise dctx.fail("missing the master address (user / master)")
    return RoleInfo(role, master.lower())


def _user(user: str) -> dict[str, Any]:
    return {"user": user.lower()}


def read_spot_state(info: InfoPoster, user: str) -> SpotState:
    kind = InfoType.SPOT_CLEARINGHOUSE_STATE
    return parse_spot_state(info.post_raw(kind, {"type": str(kind), **_user(user)}), str(kind))


def read_user_abstraction(info: InfoPoster, user: str) -> AccountAbstraction:
    kind = InfoType.USER_ABSTRACTION
    return parse_user_abstraction(info.post_raw(kind, {"type": str(kind), **_user(user)}), str(kind))


def read_user_rate_limit(info: InfoPoster, user: str) -> UserRateLimit:
    kind = InfoType.USER_RATE_LIMIT
    return parse_user_rate_limit(info.post_raw(kind, {"type": str(kind), **_user(user)}), str(kind))


def read_user_role(info: InfoPoster, user: str) -> RoleInfo:
    kind = InfoType.USER_ROLE
    return parse_user_role(info.post_raw(kind, {"type": str(kind), **_user(user)}), str(kind))
