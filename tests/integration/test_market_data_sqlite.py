"""engine.storage.sqlite: 0600 WAL files, idempotent candle upserts, newest-N reads, bad rows skipped."""

from __future__ import annotations

import stat
from pathlib import Path

import redis

from cluster.redis_layout import RedisLayout
from engine.sidecar.store import SidecarStore, WriteBatch
from engine.storage.sqlite import (
    ensure_candles_table,
    last_candle_t,
    open_db,
    prune_candles,
    read_candles,
    upsert_candles,
    upsert_candles_many,
)
from strategies.candle import Candle

IV = 60_000


def bar(i: int, c: float = 10.0) -> Candle:
    return Candle(i * IV, i * IV + IV - 1, 10.0, 12.0, 9.0, c, 1.5, 7)


def test_open_db_is_wal_and_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "candles.db"
    conn = open_db(path)
    ensure_candles_table(conn)
    upsert_candles(conn, "BTC", "1m", [bar(1)])
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for file in (path, Path(f"{path}-wal")):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    conn.close()


def test_upsert_is_idempotent_and_replaces_values(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "c.db")
    ensure_candles_table(conn)
    ensure_candles_table(conn)
    upsert_candles(conn, "BTC", "1m", [bar(1), bar(2)])
    upsert_candles_many(conn, "1m", {"BTC": [bar(2, c=11.0), bar(3)], "ETH": [bar(1)]})
    assert read_candles(conn, "BTC", "1m") == [bar(1), bar(2, c=11.0), bar(3)]
    assert conn.execute("SELECT COUNT(*) FROM candles").fetchone()[0] == 4
    assert read_candles(conn, "BTC", "1m", limit=2) == [bar(2, c=11.0), bar(3)]
    assert read_candles(conn, "BTC", "1m", after_t=2 * IV) == [bar(3)]
    assert last_candle_t(conn, "BTC", "1m") == 3 * IV and last_candle_t(conn, "X", "1m") is None
    conn.close()


def test_read_skips_rows_with_missing_or_bad_values(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "c.db")
    ensure_candles_table(conn)
    upsert_candles(conn, "BTC", "1m", [bar(1), bar(3)])
    conn.execute(
        "INSERT INTO candles (symbol, interval, t, t_close, o, h, l, c, v, n) "
        "VALUES ('BTC','1m',?,?,1,NULL,1,1,1,1)",
        (2 * IV, 3 * IV - 1),
    )
    conn.execute(
        "INSERT INTO candles (symbol, interval, t, t_close, o, h, l, c, v, n) "
        "VALUES ('BTC','1m',?,?,1,0.5,1,1,1,1)",
        (4 * IV, 5 * IV - 1),
    )
    conn.commit()
    assert read_candles(conn, "BTC", "1m") == [bar(1), bar(3)]
    reader = open_db(tmp_path / "c.db", read_only=True)
    assert read_candles(reader, "BTC", "1m", limit=1) == [bar(3)]
    reader.close()
    conn.close()


def test_prune_drops_only_old_bars_of_the_interval(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "c.db")
    ensure_candles_table(conn)
    upsert_candles(conn, "BTC", "1m", [bar(i) for i in range(10)])
    upsert_candles(conn, "BTC", "5m", [bar(1)])
    assert prune_candles(conn, "1m", 7 * IV) == 7
    assert [c.t // IV for c in read_candles(conn, "BTC", "1m")] == [7, 8, 9]
    assert read_candles(conn, "BTC", "5m") == [bar(1)]
    conn.close()


def test_sidecar_store_keeps_sqlite_bounded(redis_client: redis.Redis, tmp_path: Path) -> None:
    store = SidecarStore(
        client=redis_client,
        layout=RedisLayout("st"),
        interval="1m",
        db_path=tmp_path / "c.db",
        interval_ms=IV,
        sqlite_keep_bars=3,
        prune_every_writes=1,
    )
    for i in range(6):
        result = store.write(WriteBatch(publish={"BTC": [bar(i)]}), ["BTC"])
        assert result.redis_ok and result.sqlite_ok
    reader = open_db(tmp_path / "c.db", read_only=True)
    assert [c.t // IV for c in read_candles(reader, "BTC", "1m")] == [2, 3, 4, 5]
    assert len(RedisLayout("st").read_candles(redis_client, "BTC", "1m")) == 6
    reader.close()
    store.close()


def test_correction_of_a_bar_published_in_the_same_batch_wins(redis_client: redis.Redis, tmp_path: Path,
                                                               ) -> None:
    """The stale close and its correction can be flushed together; the stores keep the correction."""
    store = SidecarStore(client=redis_client, layout=RedisLayout("cw"), interval="1m",
                         db_path=tmp_path / "c.db", interval_ms=IV)
    both = WriteBatch(publish={"BTC": [bar(1)]}, corrections={"BTC": [bar(1, c=11.0)]})
    result = store.write(both, ["BTC"])
    assert result.redis_ok and result.sqlite_ok
    assert RedisLayout("cw").read_candles(redis_client, "BTC", "1m") == [bar(1, c=11.0)]
    reader = open_db(tmp_path / "c.db", read_only=True)
    assert read_candles(reader, "BTC", "1m") == [bar(1, c=11.0)]
    reader.close()
    store.close()
