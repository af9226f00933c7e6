"""The live daemon opens trading_<mode>.db several times in one process (the OMS ledger, then the
funding ledger, the risk state and the trade store, each through `engine.storage.sqlite.open_db`).
A second open must not drop the ledger's POSIX locks: without them, another process that opens
the DB read-write and closes it (an operator's sqlite3, a tool) takes it for the last connection,
checkpoints and unlinks the live WAL, and every later ledger commit goes to the unlinked file,
invisible to anyone else and lost at a kill -9. Found by the crash soak: a committed OPEN intent
vanished after a restart while its venue order stayed (reconcile mismatch, trading halted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.oms.ledger import LiveOms, OmsConfig
from engine.storage.sqlite import open_db

_READ = (
    "import sqlite3, sys\n"
    "conn = sqlite3.connect(sys.argv[1])\n"  # read-write, as the sqlite3 shell opens it
    "print(' '.join(sorted(r[0] for r in conn.execute('SELECT intent_id FROM intents'))))\n"
    "conn.close()\n"
)


def _read_elsewhere(db: Path) -> set[str]:
    """Open the DB in another process, list the intents, close (the close is what deletes a WAL)."""
    out = subprocess.run([sys.executable, "-c", _READ, str(db)], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def _intent(oms: LiveOms, candle: int) -> str:
    return oms.create_intent(
        symbol="BTC", action="OPEN", position_side="LONG", is_buy=True, size_coins=1.0, limit_px=101.0,
        reduce_only=False, reference_price=100.0, leverage=2.0, reason="entry", event_ms=candle,
    ).intent.intent_id  # fmt: skip


def test_a_second_open_in_the_process_keeps_ledger_commits_visible_after_another_process_reads(
    tmp_path: Path,
) -> None:
    db = tmp_path / "trading_live.db"
    oms = LiveOms(db, mode="live", config=OmsConfig(synchronous_full=False))
    other = open_db(db)  # as FundingLedger / RiskState / TradeStore do right after the ledger
    try:
        first = _intent(oms, 1)
        assert _read_elsewhere(db) == {first}
        second = _intent(oms, 2)  # committed after the other process closed its connection
        assert Path(f"{db}-wal").exists(), "the live WAL was unlinked under the ledger"
        assert _read_elsewhere(db) == {first, second}
    finally:
        other.close()
        oms.close()
    reopened = LiveOms(db, mode="live", config=OmsConfig(synchronous_full=False))
    try:
        assert {i.intent_id for i in reopened.intents()} == {first, second}
    finally:
        reopened.close()
