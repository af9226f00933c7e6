"""The OMS schema (tables, columns, version) and its row records: the one owner of the layout.

`engine.oms.ledger.LiveOms` writes and reads these tables; everything else reads the records it returns.
Tables: `oms_meta` (schema version), `intents` (one immutable row per intent, cloid UNIQUE, OPEN
dedupe key UNIQUE), `orders` (current-state projection of `order_events`), `order_events`
(append-only transitions), `fills` (venue fills, natural key), `fill_links` (fill -> intent
facts), `cursors`, `reconcile_events` (append-only), `exit_state` (strategy fields of a live
position).

Schema 2 adds `order_events.reason_code`: the typed code of a DENY (a RiskReason or BrokerReject
value), next to its structured details in `detail_json`. Schema 3 adds `fills.liquidation_json`:
the venue's `liquidation` object ({liquidatedUser, markPx, method}) of a fill the venue made when
it liquidated the account (NULL for every other fill). Such a fill is not ours to link to an
intent, yet it explains the position change it made. `MIGRATIONS[v]` brings a version-v DB to
v+1 inside the opening transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from engine.enums import BrokerReject, RiskReason
from engine.oms.states import OrderState

if TYPE_CHECKING:
    from engine.venue import types as hl

SCHEMA_VERSION = 3
FILL_COMPLETE_RATIO = 0.999

_SCHEMA = """
CREATE TABLE IF NOT EXISTS oms_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS intents (
    intent_id TEXT PRIMARY KEY,
    cloid TEXT NOT NULL UNIQUE,
    dedupe_key TEXT UNIQUE,
    mode TEXT NOT NULL,
    symbol TEXT NOT NULL,
    action TEXT NOT NULL,
    position_side TEXT NOT NULL,
    is_buy INTEGER NOT NULL,
    size_coins REAL NOT NULL,
    limit_px REAL NOT NULL,
    reduce_only INTEGER NOT NULL,
    reference_price REAL NOT NULL,
    leverage REAL NOT NULL,
    reason TEXT NOT NULL,
    decision_id TEXT,
    event_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    meta_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS intents_symbol ON intents (symbol, created_ms);
CREATE TABLE IF NOT EXISTS orders (
    intent_id TEXT PRIMARY KEY REFERENCES intents (intent_id),
    cloid TEXT NOT NULL UNIQUE,
    symbol TEXT NOT NULL,
    is_buy INTEGER NOT NULL,
    state TEXT NOT NULL,
    oid INTEGER,
    requested_sz REAL NOT NULL,
    filled_sz REAL NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_state ON orders (state);
CREATE INDEX IF NOT EXISTS orders_oid ON orders (oid);
CREATE TABLE IF NOT EXISTS order_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    intent_id TEXT NOT NULL,
    event TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    oid INTEGER,
    recorded_ms INTEGER NOT NULL,
    detail_json TEXT NOT NULL,
    reason_code TEXT
);
CREATE INDEX IF NOT EXISTS order_events_intent ON order_events (intent_id, id);
CREATE TABLE IF NOT EXISTS fills (
    fill_key TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    tid INTEGER,
    oid INTEGER NOT NULL,
    cloid TEXT,
    coin TEXT NOT NULL,
    is_buy INTEGER NOT NULL,
    px REAL NOT NULL,
    sz REAL NOT NULL,
    time_ms INTEGER NOT NULL,
    start_position REAL NOT NULL,
    dir TEXT NOT NULL,
    closed_pnl REAL NOT NULL,
    fee REAL NOT NULL,
    fee_token TEXT,
    crossed INTEGER NOT NULL,
    source TEXT NOT NULL,
    recorded_ms INTEGER NOT NULL,
    liquidation_json TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS fills_hash_tid ON fills (hash, tid) WHERE tid IS NOT NULL;
CREATE INDEX IF NOT EXISTS fills_coin_time ON fills (coin, time_ms);
CREATE INDEX IF NOT EXISTS fills_oid ON fills (oid);
CREATE TABLE IF NOT EXISTS fill_links (
    fill_key TEXT PRIMARY KEY REFERENCES fills (fill_key),
    intent_id TEXT NOT NULL,
    matched_via TEXT NOT NULL,
    recorded_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS fill_links_intent ON fill_links (intent_id);
CREATE TABLE IF NOT EXISTS cursors (
    name TEXT PRIMARY KEY,
    value_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS exit_state (
    symbol TEXT PRIMARY KEY,
    trailing_sl REAL,
    tp1_taken INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS reconcile_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    symbol TEXT,
    intent_id TEXT,
    recorded_ms INTEGER NOT NULL,
    detail_json TEXT NOT NULL
);
"""

MIGRATIONS: Mapping[int, tuple[str, ...]] = {
    1: ("ALTER TABLE order_events ADD COLUMN reason_code TEXT",),
    2: ("ALTER TABLE fills ADD COLUMN liquidation_json TEXT",),
}

_INTENT_COLUMNS = (
    "intent_id", "cloid", "dedupe_key", "mode", "symbol", "action", "position_side", "is_buy",
    "size_coins", "limit_px", "reduce_only", "reference_price", "leverage", "reason", "decision_id",
    "event_ms", "created_ms", "meta_json",
)  # fmt: skip
_ORDER_COLUMNS = (
    "intent_id", "cloid", "symbol", "is_buy", "state", "oid", "requested_sz", "filled_sz",
    "created_ms", "updated_ms",
)  # fmt: skip
_FILL_COLUMNS = (
    "fill_key", "hash", "tid", "oid", "cloid", "coin", "is_buy", "px", "sz", "time_ms",
    "start_position", "dir", "closed_pnl", "fee", "fee_token", "crossed", "source", "recorded_ms",
    "liquidation_json",
)  # fmt: skip

_INSERT_FILL = (
    f"INSERT OR IGNORE INTO fills ({', '.join(_FILL_COLUMNS)}) VALUES ({', '.join('?' * len(_FILL_COLUMNS))})"
)
# Orphans: fills no intent of ours explains. A liquidation fill is not one: the venue explains it.
_SELECT_ORPHANS = (
    f"SELECT {', '.join('f.' + c for c in _FILL_COLUMNS)} FROM fills f "
    "LEFT JOIN fill_links l ON l.fill_key = f.fill_key "
    "WHERE l.fill_key IS NULL AND f.liquidation_json IS NULL ORDER BY f.time_ms"
)


def dedupe_key_for_open(symbol: str, position_side: str, candle_ms: int) -> str:
    """Return the restart-safe "one OPEN per symbol/side/candle" key."""
    return f"OPEN:{symbol}:{position_side}:{int(candle_ms)}"


def fill_natural_key(fill: hl.Fill) -> str:
    """Return a fill's identity that does not depend on `tid` (absent in some venue answers):
    hash, oid, time, side, price, size and start position."""
    return "|".join(
        (fill.hash.lower(), str(fill.oid), str(fill.time_ms), str(fill.side),
         repr(float(fill.px)), repr(float(fill.sz)), repr(float(fill.start_position)))
    )  # fmt: skip


class FillSource(StrEnum):
    WS = "ws"
    REST = "rest"


class MatchedVia(StrEnum):
    OID = "oid"
    CLOID = "cloid"
    TIME_PROXIMITY = "time_proximity"


class OmsSchemaError(RuntimeError):
    """The DB holds a different OMS schema version than this code: stop (config-class error)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IntentRecord:
    intent_id: str
    cloid: str
    dedupe_key: str | None
    mode: str
    symbol: str
    action: str
    position_side: str
    is_buy: bool
    size_coins: float
    limit_px: float
    reduce_only: bool
    reference_price: float
    leverage: float
    reason: str
    decision_id: str | None
    event_ms: int
    created_ms: int
    meta_json: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRow:
    intent_id: str
    cloid: str
    symbol: str
    is_buy: bool
    state: OrderState
    oid: int | None
    requested_sz: float
    filled_sz: float
    created_ms: int
    updated_ms: int


@dataclass(frozen=True, slots=True)
class CreateResult:
    intent: IntentRecord
    duplicate: bool
    state: OrderState


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerFill:
    fill_key: str
    hash: str
    tid: int | None
    oid: int
    cloid: str | None
    coin: str
    is_buy: bool
    px: float
    sz: float
    time_ms: int
    start_position: float
    dir: str
    closed_pnl: float
    fee: float
    fee_token: str | None
    crossed: bool
    source: str
    recorded_ms: int
    liquidation_json: str | None = None  # the venue liquidated us with this fill (schema 3)

    @property
    def liquidation(self) -> bool:
        return self.liquidation_json is not None


DenyCode = RiskReason | BrokerReject


@dataclass(frozen=True, slots=True, kw_only=True)
class DenyRecord:
    """One DENY transition: an intent refused before anything was sent, with its typed reason.

    `reason` is None only for rows written before schema 2 (their reason is in `details`).
    """

    intent_id: str
    reason: DenyCode | None
    details: Mapping[str, Any]
    recorded_ms: int


def deny_from_row(row: tuple[Any, ...]) -> DenyRecord:
    """(intent_id, reason_code, detail_json, recorded_ms) of an order_events row -> DenyRecord."""
    intent_id, code, detail_json, recorded_ms = row
    reason, details = parse_deny_code(code), json.loads(detail_json)
    return DenyRecord(intent_id=intent_id, reason=reason, details=details, recorded_ms=recorded_ms)


def parse_deny_code(value: str | None) -> DenyCode | None:
    """Return the enum of a stored reason code; raise ValueError naming the column if unknown."""
    if value is None:
        return None
    for enum in (RiskReason, BrokerReject):
        if value in enum._value2member_map_:
            return enum(value)
    raise ValueError(f"order_events.reason_code {value!r} is neither a RiskReason nor a BrokerReject")


@dataclass(slots=True)
class IngestStats:
    received: int = 0
    inserted: int = 0
    duplicates: int = 0
    matched: int = 0
    orphans: int = 0
    liquidations: int = 0  # fills of a venue liquidation (never linked, never orphans)
    anomalies: int = 0
    new_fill_keys: list[str] = field(default_factory=list)


def liquidation_json(fill: hl.Fill) -> str | None:
    """The venue's liquidation object of a fill, as stored in `fills.liquidation_json` (None for an
    ordinary fill)."""
    liq = fill.liquidation
    if liq is None:
        return None
    body = {"liquidatedUser": liq.liquidated_user, "markPx": liq.mark_px, "method": liq.method}
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def intent_from_row(row: tuple[Any, ...]) -> IntentRecord:
    d = dict(zip(_INTENT_COLUMNS, row, strict=True))
    d["is_buy"] = bool(d["is_buy"])
    d["reduce_only"] = bool(d["reduce_only"])
    return IntentRecord(**d)


def order_from_row(row: tuple[Any, ...]) -> OrderRow:
    d = dict(zip(_ORDER_COLUMNS, row, strict=True))
    d["is_buy"] = bool(d["is_buy"])
    d["state"] = OrderState(d["state"])
    return OrderRow(**d)


def fill_from_row(row: tuple[Any, ...]) -> LedgerFill:
    d = dict(zip(_FILL_COLUMNS, row, strict=True))
    d["is_buy"] = bool(d["is_buy"])
    d["crossed"] = bool(d["crossed"])
    return LedgerFill(**d)
