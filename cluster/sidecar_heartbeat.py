"""The sidecar heartbeat: its payload and its keys (part of the Redis layout, `cluster.redis_layout`).

Keys (under the market-data prefix):

``{p}:hb:sidecar``         string, the newest heartbeat JSON object of any sidecar: the venue clock
                           for readers, and the whole story when one sidecar runs (as before).
``{p}:hb:sidecar:{id}``    string, the newest heartbeat of sidecar ``id`` (AI_QUANT_SIDECAR_ID,
                           the fleet member id of `engine.sidecar.fleet`). With several sidecars
                           the shared key hides a dead one behind a live one; readers judge each
                           market by the heartbeat of the sidecar that carries it.

A heartbeat says: the wall time of the write, the venue clock (latest venue event time seen),
connection state and counters. No TTL: a reader judges its age on the wall clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from cluster.candle_codec import LayoutError


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    """What the sidecar says about itself, written every second or so."""

    wall_ms: int
    venue_ms: int
    connected: bool
    interval: str
    symbols: int
    pid: int
    started_wall_ms: int
    reconnects: int = 0
    last_error: str = ""
    frames: int = 0
    malformed: int = 0
    candles_published: int = 0
    corrections: int = 0
    redis_failures: int = 0
    sidecar: str = ""  # the writer's id; "" from a sidecar that predates per-sidecar keys


def shared_key(prefix: str) -> str:
    return f"{prefix}:hb:sidecar"


def sidecar_key(prefix: str, sidecar: str) -> str:
    return f"{prefix}:hb:sidecar:{sidecar}"


def queue_heartbeat(pipe: Any, prefix: str, heartbeat: Heartbeat) -> None:
    """Queue the shared key and, when the writer names itself, its own key."""
    body = json.dumps(asdict(heartbeat), separators=(",", ":"))
    pipe.set(shared_key(prefix), body)
    if heartbeat.sidecar:
        pipe.set(sidecar_key(prefix, heartbeat.sidecar), body)


def parse_heartbeat(key: str, raw: Any) -> Heartbeat:
    """One stored heartbeat; LayoutError when it does not parse."""
    text = raw.decode() if isinstance(raw, bytes | bytearray) else str(raw)
    try:
        return Heartbeat(**json.loads(text))
    except (ValueError, TypeError) as exc:
        raise LayoutError(f"{key}: malformed heartbeat {raw!r}") from exc


def read_sidecar_heartbeats(client: Any, prefix: str, sidecars: Iterable[str]) -> dict[str, Heartbeat | None]:
    """Each named sidecar's own heartbeat (None when it never wrote one), one round trip."""
    ids = list(sidecars)
    if not ids:
        return {}
    keys = [sidecar_key(prefix, s) for s in ids]
    raws = client.mget(keys)
    return {
        s: None if raw is None else parse_heartbeat(k, raw) for s, k, raw in zip(ids, keys, raws, strict=True)
    }
