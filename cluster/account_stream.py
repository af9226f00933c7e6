"""The account-events stream's entry format (``{p}:acct:{user}``, key owned by
`cluster.redis_layout`, which re-exports these names): kept apart so the layout module stays
under the size limit. Pure: no I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cluster.candle_codec import LayoutError


class AccountEventKind(StrEnum):
    """Venue channels forwarded to the driver through the account-events stream, and the
    sidecar's own SESSION marker: written when a WebSocket session starts (before its
    subscriptions go out), so the driver knows events of the gap before it were not replayed
    and reconciles (`w` = the session's start, wall ms; `d` = {"reconnects": n})."""

    USER_FILLS = "userFills"
    ORDER_UPDATES = "orderUpdates"
    SESSION = "session"


@dataclass(frozen=True, slots=True)
class AccountEvent:
    kind: AccountEventKind
    data: Any
    is_snapshot: bool
    wall_ms: int


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


def event_fields(event: AccountEvent) -> dict[str, str]:
    """The stream fields of one event (see the layout's key table)."""
    return {"k": event.kind.value, "s": "1" if event.is_snapshot else "0", "w": str(event.wall_ms),
            "d": json.dumps(event.data, separators=(",", ":"))}


def decode_event(key: str, entry_id: Any, fields: Mapping[Any, Any]) -> AccountEvent:
    """The event of one entry; raises LayoutError naming the key and entry when malformed."""
    try:
        got = {_text(k): _text(v) for k, v in fields.items()}
        return AccountEvent(AccountEventKind(got["k"]), json.loads(got["d"]), got["s"] == "1", int(got["w"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise LayoutError(f"{key} entry {_text(entry_id)}: malformed account event {fields!r}") from exc
