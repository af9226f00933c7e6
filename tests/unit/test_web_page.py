"""The read-only web page: the JSON it serves equals the ledger, and nothing on it can write.

A real HTTP server on loopback (port 0) over a trading DB written by the real PaperBroker.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import sqlite3
from pathlib import Path

import pytest

from engine.config.env import ConfigError
from engine.enums import Mode
from engine.execution.broker import OrderIntent
from engine.execution.fill_model import HOUR_MS, FillModelParams
from engine.execution.paper_broker import PaperBroker, allow_all
from engine.execution.trade_store import TradeStore
from engine.web.queries import TradingDbReader, open_readonly
from engine.web.server import WebPage
from engine.web.settings import WebSettings
from strategies.enums import EntryKind, ExitReason, PositionSide, TradeAction

T0 = 1_700_000_000_000 - (1_700_000_000_000 % HOUR_MS) + 600_000


def _intent(action: TradeAction, symbol: str, price: float, size: float | None = 1.0) -> OrderIntent:
    opening = action in (TradeAction.OPEN, TradeAction.ADD)
    return OrderIntent(
        symbol=symbol, action=action, side=PositionSide.LONG, reference_price=price, event_ms=T0,
        reason=EntryKind.STANDARD if opening else ExitReason.STOP_LOSS, size_coins=size if opening else None,
    )  # fmt: skip


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "trading_paper.db"
    store = TradeStore.open(path, Mode.PAPER)
    broker = PaperBroker(
        store, FillModelParams(slippage_bps=0.0), 10_000.0, clock_ms=lambda: T0, pre_send_check=allow_all
    )
    broker.execute(_intent(TradeAction.OPEN, "BTC", 100.0), T0)
    broker.execute(_intent(TradeAction.OPEN, "ETH", 50.0, size=2.0), T0 + 1)
    broker.execute(_intent(TradeAction.CLOSE, "BTC", 110.0), T0 + 2)
    store.close()
    return path


@pytest.fixture
def page(db: Path, tmp_path: Path):
    kill = tmp_path / "kill"
    kill.write_text("close_only\n")
    reader = TradingDbReader(db, Mode.PAPER, {"AI_QUANT_KILL_SWITCH_FILE": str(kill)})
    started = WebPage.start(WebSettings(host="127.0.0.1", port=0), reader)
    yield started
    started.stop()


def _request(page: WebPage, method: str, path: str, host: str | None = None) -> tuple[int, bytes, dict]:
    port = int(page.url.rsplit(":", 1)[1].strip("/"))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {} if host is None else {"Host": host}
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    conn.request(method, path, body=body, headers=headers)
    answer = conn.getresponse()
    data = answer.read()
    conn.close()
    return answer.status, data, dict(answer.getheaders())


def test_snapshot_equals_the_ledger(page, db):
    status, body, headers = _request(page, "GET", "/api/snapshot")
    assert status == 200 and headers["Content-Type"] == "application/json"
    snap = json.loads(body)
    # Hand-computed: BTC 1 @ 100 → 110 (+10), taker fee 0.045 + 0.0495; ETH 2 @ 50 open, fee 0.045.
    totals = snap["totals"]
    assert totals["realised_pnl_usd"] == pytest.approx(10.0)
    assert totals["fees_usd"] == pytest.approx(0.045 + 0.0495 + 0.045)
    assert totals["balance_usd"] == pytest.approx(10_000.0 + 10.0 - 0.1395)
    assert totals["closed_trades"] == 1 and totals["seed_usd"] == pytest.approx(10_000.0)
    assert [(p["symbol"], p["side"], p["size_coins"], p["entry_price"]) for p in snap["positions"]] == [
        ("ETH", "LONG", 2.0, 50.0)
    ]
    trades = [(t["kind"], t["symbol"]) for t in snap["trades"]]
    assert trades == [("CLOSE", "BTC"), ("OPEN", "ETH"), ("OPEN", "BTC")]
    assert snap["equity"][0][1] == pytest.approx(10_000.0)
    assert snap["equity"][-1][1] == pytest.approx(totals["balance_usd"])
    assert snap["risk"]["kill_file"].startswith("close_only")
    assert snap["risk"]["trading_state"] == "not recorded"  # paper: no risk manager writes one


def test_page_and_script_are_served_same_origin_only(page):
    status, body, headers = _request(page, "GET", "/")
    assert status == 200 and b'<script src="/app.js">' in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert b"http://" not in body and b"https://" not in body  # nothing fetched from elsewhere
    status, script, _ = _request(page, "GET", "/app.js")
    assert status == 200 and b"/api/snapshot" in script
    assert b"innerHTML" not in script and b"http" not in script
    assert _request(page, "GET", "/app.css")[0] == 200
    assert _request(page, "GET", "/nope")[0] == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
@pytest.mark.parametrize("path", ["/", "/api/snapshot"])
def test_every_method_but_get_is_refused_and_the_db_is_untouched(page, db, method, path):
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    status, _body, headers = _request(page, method, path)
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_foreign_host_header_is_refused(page):
    assert _request(page, "GET", "/api/snapshot", host="evil.example:8765")[0] == 421
    assert _request(page, "GET", "/api/snapshot", host="localhost:1")[0] == 200


def test_reader_connection_cannot_write(db):
    with open_readonly(db) as conn:
        assert conn is not None
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("DELETE FROM trades")


def test_missing_db_is_not_created(tmp_path):
    db = tmp_path / "absent.db"
    snap = TradingDbReader(db, Mode.PAPER, {}).snapshot()
    assert snap.db_present is False and snap.positions == () and snap.equity == ()
    assert not db.exists()


def test_web_settings_parse_and_refuse_bad_values():
    assert WebSettings.from_env({}) == WebSettings(enabled=True, host="127.0.0.1", port=8765)
    assert WebSettings.from_env({"AI_QUANT_WEB_ENABLE": "0", "AI_QUANT_WEB_PORT": "0"}).enabled is False
    for env, needle in [
        ({"AI_QUANT_WEB_PORT": "70000"}, "AI_QUANT_WEB_PORT"),
        ({"AI_QUANT_WEB_HOST": "example.com"}, "AI_QUANT_WEB_HOST"),
        ({"AI_QUANT_WEB_ENABLE": "maybe"}, "AI_QUANT_WEB_ENABLE"),
    ]:
        with pytest.raises(ConfigError, match=needle):
            WebSettings.from_env(env)
