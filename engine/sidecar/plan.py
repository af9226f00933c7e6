"""Who carries which market, and on which WebSocket connection: the sidecar fleet's pure core.

Several sidecars (one per IP, i.e. per Ray node) share one watchlist. Each market goes to the
member that ranks highest for it by rendezvous (highest-random-weight) hashing, so every member
computes the same answer from the same member list, and when a member leaves only its markets
move (when one joins, only the markets that now rank it highest move to it).

Budgets bound the answer: a member carries at most `ws_markets` markets on its WebSockets (what
its IP's subscription budget allows) and polls at most `rest_markets` more over REST (what its
REST weight budget allows). A market whose first choice is full goes to its next choice, in
rank order; markets beyond every budget are left uncovered (`none`). Markets are placed in
watchlist order, so the front of the watchlist (the anchor, then the biggest by volume) is
always on WebSocket first. No I/O here.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class MarketSource(StrEnum):
    """Where a market's candles come from: a WebSocket, REST polling, or nowhere."""

    WS = "ws"
    REST = "rest"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Capacity:
    """How many markets one member can carry on WebSocket and by REST polling."""

    ws_markets: int
    rest_markets: int


@dataclass(frozen=True, slots=True)
class Share:
    """One member's markets, in watchlist order."""

    ws: tuple[str, ...] = ()
    rest: tuple[str, ...] = ()

    @property
    def markets(self) -> tuple[str, ...]:
        return self.ws + self.rest


@dataclass(frozen=True, slots=True)
class Assignment:
    """Every member's share and the markets no budget could take."""

    shares: dict[str, Share]
    uncovered: tuple[str, ...]

    def source_of(self) -> dict[str, tuple[MarketSource, str]]:
        """market → (source, member id; "" when uncovered)."""
        out: dict[str, tuple[MarketSource, str]] = {}
        for member, share in self.shares.items():
            out.update({m: (MarketSource.WS, member) for m in share.ws})
            out.update({m: (MarketSource.REST, member) for m in share.rest})
        out.update({m: (MarketSource.NONE, "") for m in self.uncovered})
        return out


def score(member: str, market: str) -> int:
    """The rendezvous weight of (member, market): a stable 64-bit hash, same on every host."""
    digest = hashlib.blake2b(f"{member}\x00{market}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def ranked(market: str, members: Sequence[str]) -> list[str]:
    """Members in the order `market` prefers them (highest weight first, ties by id)."""
    return sorted(members, key=lambda m: (-score(m, market), m))


def assign(markets: Sequence[str], members: Mapping[str, Capacity]) -> Assignment:
    """Place every market (see module docstring); deterministic for the same inputs."""
    ids = sorted(members)
    ws: dict[str, list[str]] = {m: [] for m in ids}
    rest: dict[str, list[str]] = {m: [] for m in ids}
    waiting: list[tuple[str, list[str]]] = []
    for market in dict.fromkeys(markets):
        order = ranked(market, ids)
        home = next((m for m in order if len(ws[m]) < members[m].ws_markets), None)
        if home is None:
            waiting.append((market, order))
        else:
            ws[home].append(market)
    uncovered: list[str] = []
    for market, order in waiting:
        home = next((m for m in order if len(rest[m]) < members[m].rest_markets), None)
        if home is None:
            uncovered.append(market)
        else:
            rest[home].append(market)
    shares = {m: Share(tuple(ws[m]), tuple(rest[m])) for m in ids}
    return Assignment(shares, tuple(uncovered))


# ---------------------------------------------------------------------------- one member's budget
@dataclass(frozen=True, kw_only=True)
class WsBudget:
    """One IP's WebSocket allowance (the venue's documented per-IP limits by default)."""

    max_connections: int = 10
    max_new_connections_per_min: int = 30
    max_subscriptions: int = 1000
    subs_per_connection: int = 200
    max_messages_per_min: int = 2000


def ws_market_capacity(budget: WsBudget, *, fixed_subs: int, subs_per_market: int) -> int:
    """Markets one IP can carry: what the subscription cap and the connections leave after the
    fixed channels (allMids, account channels). The message rate only paces subscribing."""
    by_subs = budget.max_subscriptions - fixed_subs
    by_conns = budget.max_connections * budget.subs_per_connection - fixed_subs
    return max(0, min(by_subs, by_conns) // subs_per_market)


def rest_market_capacity(
    weight_per_min: int, share: float, interval_ms: int, *, weight_per_poll: int = 21
) -> int:
    """Markets REST polling can keep current: one candleSnapshot (weight 20, +1 per 60 candles)
    per market per closed bar, within `share` of the REST weight budget."""
    if share <= 0:
        return 0
    polls_per_bar = weight_per_min * share * (interval_ms / 60_000) / weight_per_poll
    return max(0, math.floor(polls_per_bar))


def connection_plan(
    markets: Sequence[str],
    *,
    fixed: Sequence[dict[str, Any]],
    per_market: Sequence[str],
    interval: str,
    budget: WsBudget,
) -> list[tuple[tuple[str, ...], list[dict[str, Any]]]]:
    """Split subscriptions over connections: [(markets on it, its subscriptions)], at most
    `max_connections`, each at most `subs_per_connection` (the first also holds `fixed`).

    A market's channels (`per_market` kinds: "candle", "bbo") stay on one connection, so a dropped
    connection concerns a known set of markets. Markets are spread evenly in sorted order.
    Subscriptions are grouped by kind, candles first: the venue pushes in subscription order, and
    a bbo (which carries the venue's current time) ahead of another market's final candle update
    would move the sidecar's venue clock past that candle's close before its final state arrives.
    """
    kinds = list(per_market)
    total = len(fixed) + len(markets) * len(kinds)
    if total == 0:
        return []
    n = min(budget.max_connections, max(1, math.ceil(total / budget.subs_per_connection)))
    ordered = sorted(markets)
    plan: list[tuple[tuple[str, ...], list[dict[str, Any]]]] = []
    for i in range(n):
        chunk = tuple(ordered[i * len(ordered) // n : (i + 1) * len(ordered) // n])
        subs = [dict(s) for s in fixed] if i == 0 else []
        for kind in kinds:  # grouped by kind: every candle, then every bbo (see below)
            for market in chunk:
                sub: dict[str, Any] = {"type": kind, "coin": market}
                if kind == "candle":
                    sub["interval"] = interval
                subs.append(sub)
        plan.append((chunk, subs))
    return plan
