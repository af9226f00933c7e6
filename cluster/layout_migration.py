"""The one-time conversion of version-1 (JSON) candle keys into the version-2 binary layout.

Part of the Redis layout contract (`cluster.redis_layout` documents both versions and calls this
directly); the sidecar, the only writer of candle keys, runs it at
start before it reads or writes any candle. Nothing else ever reads version-1 keys.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from cluster.candle_codec import LAYOUT_VERSION, LayoutError, decode_legacy_candle, encode_candle
from strategies.candle import Candle

if TYPE_CHECKING:
    from cluster.redis_layout import RedisLayout

log = logging.getLogger(__name__)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def migrate_legacy(layout: RedisLayout, client: Any, interval: str) -> int:
    """Convert version-1 candle keys of `interval` to version 2; return the candles moved.

    Idempotent and cheap once done (one GET of the version key). Each symbol moves in one
    MULTI/EXEC (write the new members, delete the old key), so a crash half-way leaves every
    symbol either old or new and the next start finishes the job. Candles a version-2 writer
    already stored win over old ones at the same open time. Members that do not parse are
    dropped and counted in the log (the sidecar's SQLite reconcile and backfill restore them).
    """
    if _text(client.get(layout.layout_version_key(interval)) or b"") == str(LAYOUT_VERSION):
        return 0
    moved = dropped = 0
    old_prefix = layout.legacy_candles_key("", interval)
    for raw_key in client.scan_iter(match=_glob_escape(old_prefix) + "*", count=500):
        key = _text(raw_key)
        symbol = key[len(old_prefix):]
        new_key = layout.candles_key(symbol, interval)
        newer = {int(t) for _, t in client.zrange(new_key, 0, -1, withscores=True)}
        candles: dict[int, Candle] = {}
        for member in client.zrange(key, 0, -1):
            try:
                candle = decode_legacy_candle(member, key)
            except LayoutError:
                dropped += 1
                continue
            if candle.t not in newer:
                candles[candle.t] = candle
        pipe = client.pipeline(transaction=True)
        if candles:
            layout.queue_candles(pipe, symbol, interval, [candles[t] for t in sorted(candles)])
        pipe.delete(key)
        pipe.execute()
        moved += len(candles)
    moved += _migrate_forming(layout, client, interval)
    client.set(layout.layout_version_key(interval), str(LAYOUT_VERSION))
    if moved or dropped:
        log.warning("redis candle keys migrated to layout version %d", LAYOUT_VERSION,
                    extra={"interval": interval, "candles": moved, "dropped": dropped})
    return moved


def _migrate_forming(layout: RedisLayout, client: Any, interval: str) -> int:
    """Move forming candles; a version-2 forming candle already there is newer and is kept."""
    old = layout.legacy_forming_key(interval)
    forming: dict[str, Candle] = {}
    for field, raw in client.hgetall(old).items():
        try:
            forming[_text(field)] = decode_legacy_candle(raw, old)
        except LayoutError:
            continue
    pipe = client.pipeline(transaction=True)
    for symbol, candle in forming.items():
        pipe.hsetnx(layout.forming_key(interval), symbol, encode_candle(candle))
    pipe.delete(old)
    pipe.execute()
    return len(forming)
