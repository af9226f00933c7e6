"""Opening the OMS ledger database: its policy knobs, connection pragmas and schema migrations.

Why its own module: `LiveOms` (engine/oms/ledger.py) is the ledger's operations; how its
database is opened (WAL, `synchronous=FULL`, checkpoint threshold), created and brought to the
current schema version (`engine.oms.records.MIGRATIONS`) is a separate job, done once per open.
A DB left at another schema version is refused with `OmsSchemaError`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.config.env import env_int
from engine.oms.records import _SCHEMA, MIGRATIONS, SCHEMA_VERSION, OmsSchemaError
from engine.storage.sqlite import immediate_transaction, open_db


@dataclass(frozen=True, slots=True, kw_only=True)
class OmsConfig:
    """Ledger policy. `match_window_ms`: time-proximity window (+-) for fills without oid/cloid
    match; `not_found_grace_ms`: how long after the send a cloid lookup answering "unknown" still
    counts as possibly in flight; `synchronous_full`: fsync the WAL on every commit (survives
    power loss, not just kill -9); `wal_autocheckpoint_pages`: safety-net threshold, normally
    `checkpoint()` runs periodically."""

    match_window_ms: int = 600_000
    not_found_grace_ms: int = 30_000
    synchronous_full: bool = True
    busy_timeout_secs: float = 5.0
    wal_autocheckpoint_pages: int = 20_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OmsConfig:
        """Read AI_QUANT_OMS_MATCH_TTL_MS and AI_QUANT_OMS_NOT_FOUND_GRACE_MS; ConfigError if invalid."""
        return cls(
            match_window_ms=env_int("AI_QUANT_OMS_MATCH_TTL_MS", 600_000, env, lo=0, hi=86_400_000),
            not_found_grace_ms=env_int(
                "AI_QUANT_OMS_NOT_FOUND_GRACE_MS", 30_000, env, lo=1_000, hi=3_600_000
            ),
        )


def open_ledger_db(path: Path, config: OmsConfig) -> sqlite3.Connection:
    """Open (creating 0600, WAL) the ledger DB at `path` and bring its schema to SCHEMA_VERSION.

    The connection runs in autocommit (`isolation_level=None`: the ledger issues BEGIN/COMMIT
    itself) and may be used from other threads (the ledger serialises access with its lock).
    Raises OmsSchemaError for a DB at a version no migration reaches, sqlite3.Error on I/O.
    """
    conn = open_db(path, busy_timeout_secs=config.busy_timeout_secs, check_same_thread=False)
    try:
        conn.isolation_level = None  # explicit BEGIN/COMMIT
        if config.synchronous_full:
            conn.execute("PRAGMA synchronous=FULL")
        # Checkpoints (which fsync the main file) run off the order path: `checkpoint()` is called by
        # the reconciler; the large automatic threshold is only a safety net.
        conn.execute(f"PRAGMA wal_autocheckpoint={int(config.wal_autocheckpoint_pages)}")
        _init_schema(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _init_schema(conn: sqlite3.Connection, path: Path) -> None:
    with immediate_transaction(conn):
        for stmt in _SCHEMA.split(";"):
            if stmt.strip():
                conn.execute(stmt)
        conn.execute(
            "INSERT OR IGNORE INTO oms_meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        version = int(conn.execute("SELECT value FROM oms_meta WHERE key='schema_version'").fetchone()[0])
        while version < SCHEMA_VERSION and version in MIGRATIONS:
            for stmt in MIGRATIONS[version]:
                conn.execute(stmt)
            version += 1
            conn.execute("UPDATE oms_meta SET value=? WHERE key='schema_version'", (str(version),))
    if version != SCHEMA_VERSION:
        raise OmsSchemaError(f"{path}: OMS schema version {version}, code expects {SCHEMA_VERSION}")
