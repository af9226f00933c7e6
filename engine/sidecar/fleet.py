"""Sidecar fleet membership in Redis: who is alive, what each can carry, which source each market is on.

Keys (under the market-data prefix; this module owns them):

``{p}:fleet:members``               set of member ids ever seen (dead ones are pruned on read)
``{p}:fleet:member:{id}``           JSON `MemberInfo`, written every heartbeat with a TTL of
                                    AI_QUANT_SIDECAR_MEMBER_TTL_MS: a member whose key expired is dead
``{p}:fleet:source:{interval}``     hash market → "ws <member>" | "rest <member>" | "none"
``{p}:fleet:watchlist:{interval}``  JSON list: the watchlist every member assigns, in priority order,
                                    written by the live member with the lowest id (members resolve
                                    their own lists at different times; the assignment must not differ)

Every member beats, reads the live members and their capacities, and computes the same
assignment (`engine.sidecar.plan.assign`); a member that dies stops beating, its key expires,
and the others' next assignment takes its markets. A member that stops cleanly deletes its key
at once. Readers (`engine.marketdata.hub`) trust a "ws"/"rest" entry only while its member is
alive; otherwise the market is on no source.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from engine.sidecar.plan import Assignment, Capacity, MarketSource

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """One member's beat: its capacity, what it carries now, and whether its sockets are up."""

    member: str
    ws_capacity: int
    rest_capacity: int
    ws_markets: int = 0
    rest_markets: int = 0
    connections: int = 0
    connected: bool = False
    local_addr: str = ""
    pid: int = 0
    wall_ms: int = 0

    @property
    def capacity(self) -> Capacity:
        return Capacity(self.ws_capacity, self.rest_capacity)


class FleetKeys:
    """Key names of the fleet under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def members(self) -> str:
        return f"{self.prefix}:fleet:members"

    def member(self, member: str) -> str:
        return f"{self.prefix}:fleet:member:{member}"

    def sources(self, interval: str) -> str:
        return f"{self.prefix}:fleet:source:{interval}"

    def watchlist(self, interval: str) -> str:
        return f"{self.prefix}:fleet:watchlist:{interval}"


def _parse_member(raw: Any) -> MemberInfo | None:
    try:
        data = json.loads(raw)
        return MemberInfo(**data)
    except (TypeError, ValueError) as exc:
        log.warning("malformed fleet member entry skipped", extra={"error": str(exc)[:120]})
        return None


def read_members(client: Any, keys: FleetKeys) -> dict[str, MemberInfo]:
    """Live members (their key has not expired); dead ids are pruned from the set."""
    ids = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in client.smembers(keys.members()))
    if not ids:
        return {}
    raws = client.mget([keys.member(m) for m in ids])
    live: dict[str, MemberInfo] = {}
    dead: list[str] = []
    for member, raw in zip(ids, raws, strict=True):
        info = None if raw is None else _parse_member(raw)
        if info is None:
            dead.append(member)
        else:
            live[member] = info
    if dead:
        client.srem(keys.members(), *dead)
    return live


def _parse_watchlist(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, list) or not all(isinstance(m, str) for m in data):
        return None
    return tuple(data)


def encode_source(source: MarketSource, member: str) -> str:
    return source.value if source is MarketSource.NONE else f"{source.value} {member}"


def read_sources(
    client: Any, keys: FleetKeys, interval: str, markets: Sequence[str]
) -> dict[str, MarketSource]:
    """Which source each market is on now: its entry, if its member is alive; else NONE."""
    if not markets:
        return {}
    live = read_members(client, keys)
    raws = client.hmget(keys.sources(interval), list(markets))
    out: dict[str, MarketSource] = {}
    for market, raw in zip(markets, raws, strict=True):
        text = raw.decode() if isinstance(raw, bytes) else (raw or "")
        kind, _, member = text.partition(" ")
        if kind in (MarketSource.WS.value, MarketSource.REST.value) and member in live:
            out[market] = MarketSource(kind)
        else:
            out[market] = MarketSource.NONE
    return out


def carrying_members(client: Any, keys: FleetKeys, interval: str) -> set[str]:
    """The members the source table names for at least one market of the fleet's watchlist (ws or
    rest), alive or not. Entries of markets no longer watched are ignored: nobody rewrites them."""
    raw_list = client.get(keys.watchlist(interval))
    watchlist = _parse_watchlist(raw_list.decode() if isinstance(raw_list, bytes) else raw_list)
    if not watchlist:
        return set()
    out: set[str] = set()
    for raw in client.hmget(keys.sources(interval), list(watchlist)):
        if raw is None:
            continue
        kind, _, member = (raw.decode() if isinstance(raw, bytes) else str(raw)).partition(" ")
        if member and kind in (MarketSource.WS.value, MarketSource.REST.value):
            out.add(member)
    return out


class FleetMember:
    """One sidecar's side of the fleet; call from one thread (the sidecar runs it off the loop)."""

    def __init__(self, client: Any, prefix: str, *, member: str, ttl_ms: int, interval: str) -> None:
        self._client = client
        self.keys = FleetKeys(prefix)
        self.member = member
        self.ttl_ms = ttl_ms
        self.interval = interval

    def beat(
        self, info: MemberInfo, watchlist: Sequence[str]
    ) -> tuple[dict[str, Capacity], tuple[str, ...]]:
        """Announce this member (TTL'd); return every live member's capacity (this one included)
        and the fleet's watchlist (the lowest live id's; this member's own when it is that one)."""
        pipe = self._client.pipeline(transaction=False)
        pipe.sadd(self.keys.members(), self.member)
        body = json.dumps(asdict(info), separators=(",", ":"))
        pipe.set(self.keys.member(self.member), body, px=self.ttl_ms)
        pipe.execute()
        live = read_members(self._client, self.keys)
        live[self.member] = info
        key = self.keys.watchlist(self.interval)
        mine = json.dumps(list(watchlist), separators=(",", ":"))
        raw = self._client.get(key)
        text = raw.decode() if isinstance(raw, bytes) else raw
        agreed = _parse_watchlist(text)
        if min(live) == self.member or agreed is None:
            if text != mine:
                self._client.set(key, mine)
            agreed = tuple(watchlist)
        return {m: i.capacity for m, i in live.items()}, agreed

    def publish_sources(self, assignment: Assignment) -> int:
        """Write the source of this member's markets and of the uncovered ones (changes only)."""
        mine = assignment.shares.get(self.member)
        entries: dict[str, str] = {}
        if mine is not None:
            entries.update({m: encode_source(MarketSource.WS, self.member) for m in mine.ws})
            entries.update({m: encode_source(MarketSource.REST, self.member) for m in mine.rest})
        entries.update({m: encode_source(MarketSource.NONE, "") for m in assignment.uncovered})
        if not entries:
            return 0
        names = list(entries)
        current = self._client.hmget(self.keys.sources(self.interval), names)  # others write here too
        changed = {
            m: entries[m]
            for m, raw in zip(names, current, strict=True)
            if (raw.decode() if isinstance(raw, bytes) else raw) != entries[m]
        }
        if changed:
            self._client.hset(self.keys.sources(self.interval), mapping=changed)
        return len(changed)

    def retire(self) -> None:
        """Leave the fleet at once (clean stop): the others take the markets on their next beat."""
        pipe = self._client.pipeline(transaction=False)
        pipe.srem(self.keys.members(), self.member)
        pipe.delete(self.keys.member(self.member))
        pipe.execute()


def sources_summary(sources: Mapping[str, MarketSource]) -> dict[str, int]:
    """Counts per source, for status lines."""
    out = {s.value: 0 for s in MarketSource}
    for source in sources.values():
        out[source.value] += 1
    return out
