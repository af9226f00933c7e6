"""Market sources for the operator: the per-dex sums on the status line, the file the web page
reads, and the page's JSON carrying them (a real loopback HTTP server over a real trading DB)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Sequence
from pathlib import Path

from engine.enums import Mode
from engine.execution.trade_store import TradeStore
from engine.marketdata.market_sources import (
    MarketSourcesProbe,
    count_sources,
    market_sources_path,
    read_market_sources,
)
from engine.sidecar.plan import MarketSource
from engine.web.queries import TradingDbReader
from engine.web.server import WebPage
from engine.web.settings import WebSettings

WS, REST, NONE = MarketSource.WS, MarketSource.REST, MarketSource.NONE
SOURCES = {"BTC": WS, "ETH": REST, "xyz:TSLA": WS, "xyz:GOLD": NONE, "flx:TSLA": WS, "flx:kBONK": WS}


class FakeHub:
    """The hub's `market_sources` answer, fixed (the edge: Redis and the sidecar fleet)."""

    def __init__(self, sources: dict[str, MarketSource]) -> None:
        self.sources = sources
        self.asked: list[tuple[str, ...]] = []

    def market_sources(self, symbols: Sequence[str], interval: str | None = None) -> dict[str, MarketSource]:
        self.asked.append(tuple(symbols))
        return {s: self.sources.get(s, NONE) for s in symbols}


def test_counts_per_dex_and_in_total_with_zeros():
    counts = count_sources(SOURCES, 123)
    assert counts.total == {"ws": 4, "rest": 1, "none": 1}
    assert counts.per_dex == {
        "main": {"ws": 1, "rest": 1, "none": 0},
        "xyz": {"ws": 1, "rest": 0, "none": 1},
        "flx": {"ws": 2, "rest": 0, "none": 0},
    }
    assert counts.status_text() == "ws:4,rest:1,none:1"


def test_probe_reads_the_watchlist_writes_the_file_and_returns_the_status_text(tmp_path):
    hub = FakeHub(SOURCES)
    path = market_sources_path(tmp_path, Mode.PAPER)
    probe = MarketSourcesProbe(hub, list(SOURCES), path)
    assert probe() == "sources=ws:4,rest:1,none:1"
    assert hub.asked == [tuple(SOURCES)]
    written = read_market_sources(path)
    assert written is not None and written.total == {"ws": 4, "rest": 1, "none": 1}
    assert written.per_dex["xyz"] == {"ws": 1, "rest": 0, "none": 1}
    hub.sources = dict.fromkeys(SOURCES, WS)  # the fleet took the uncovered market
    assert probe() == "sources=ws:6,rest:0,none:0"
    assert read_market_sources(path).total == {"ws": 6, "rest": 0, "none": 0}


def test_unreadable_file_reads_as_not_reported(tmp_path):
    path = tmp_path / "market_sources_paper.json"
    assert read_market_sources(path) is None
    path.write_text("{not json")
    assert read_market_sources(path) is None


def test_web_snapshot_carries_the_sources_beside_the_db(tmp_path):
    db = tmp_path / "trading_paper.db"
    TradeStore.open(db, Mode.PAPER).close()
    reader = TradingDbReader(db, Mode.PAPER, {})
    assert reader.snapshot().market_sources is None  # the daemon has not ticked yet
    MarketSourcesProbe(FakeHub(SOURCES), list(SOURCES), market_sources_path(tmp_path, Mode.PAPER))()
    page = WebPage.start(WebSettings(host="127.0.0.1", port=0), reader)
    try:
        port = int(page.url.rsplit(":", 1)[1].strip("/"))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/api/snapshot")
        body = json.loads(conn.getresponse().read())
        conn.close()
    finally:
        page.stop()
    assert body["market_sources"]["total"] == {"ws": 4, "rest": 1, "none": 1}
    assert body["market_sources"]["per_dex"]["flx"] == {"ws": 2, "rest": 0, "none": 0}


def test_sources_file_lives_beside_the_trading_db():
    assert market_sources_path(Path("/s"), Mode.LIVE) == Path("/s/market_sources_live.json")
