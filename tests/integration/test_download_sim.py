"""`engine.download` against the loopback simulator over real HTTP: paging, resume, the venue's cap.

The simulator runs 1m synthetic bars at wall-clock speed with 6,000 bars of history, of which it
(like Hyperliquid) serves only the most recent 5,000. Small pages (1,000 bars) put several page
boundaries inside one download; a first run stopped after one page, plus a torn last line as a
crash mid-write would leave, must resume with no duplicate and no hole. The written CSV must be
what `engine.replay` loads, bar for bar equal to a direct candleSnapshot answer.
"""

from __future__ import annotations

import time
from itertools import pairwise

import pytest

from engine.tools import download
from engine.tools.progress import Progress
from engine.tools.replay import load_csv_dir
from engine.venue.info_client import HyperliquidInfoClient
from engine.venue.rate_budget import RateBudget

IV = 60_000
COIN = "SYN0001"


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture
def sim(simulator_factory):
    return simulator_factory("--synthetic", "1", "--interval", "1m", "--history-bars", "6000", "--seed", "7")


@pytest.fixture
def client(sim):
    with HyperliquidInfoClient(sim.base_url, timeout_secs=10.0, budget=RateBudget()) as c:
        yield c


def rows(path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines()[1:]]


def test_pages_resume_after_a_torn_write_without_duplicates(client, tmp_path):
    now = wall_ms()
    start = now - now % IV - 2_500 * IV
    plan = download.Plan(interval="1m", start_ms=start, end_ms=now, page_candles=1_000)
    first = download.download_symbol(client, COIN, plan, tmp_path, now_ms=wall_ms, max_pages=1)
    assert (first.requests, first.written, first.resumed_after_ms) == (1, 1_000, None)
    path = download.csv_path(tmp_path, COIN, "1m")
    with open(path, "a") as handle:
        handle.write(f"{start + 1_000 * IV},1.0,2.0")  # a crash in the middle of the next row
    io_progress: list[str] = []
    progress = Progress("download", 2_501, stream=_Sink(io_progress), tty=False, every_secs=0.0)
    second = download.download_symbol(client, COIN, plan, tmp_path, now_ms=wall_ms, progress=progress)
    progress.close()
    assert second.resumed_after_ms == start + 999 * IV  # the last complete row of the first run
    assert second.first_ms == start + 1_000 * IV  # continued right after it
    assert second.requests >= 2 and not second.unavailable  # several page boundaries crossed
    lines = rows(path)
    ts = [int(r[0]) for r in lines]
    assert ts[0] == start and len(ts) == len(set(ts))
    assert all(b - a == IV for a, b in pairwise(ts))  # no hole, no duplicate
    assert ts[-1] + IV <= wall_ms()  # closed bars only (the forming one waits for the next run)
    assert len(ts) >= 2_499
    assert io_progress and "done" in io_progress[-1] and "download:" in io_progress[0]
    # Bar for bar what the venue answers, and what the replay loader reads.
    direct = {c.t: c for c in client.candle_snapshot(COIN, "1m", start + 1_500 * IV, start + 1_510 * IV)}
    for r in lines[1_500:1_511]:
        c = direct[int(r[0])]
        assert [float(x) for x in r[1:]] == [c.o, c.h, c.l, c.c, c.v]
    loaded = load_csv_dir(tmp_path, "1m")[COIN]
    assert [c.t for c in loaded] == ts


def test_windows_older_than_the_venue_keeps_are_reported_and_the_cli_resumes(sim, tmp_path, capsys):
    now = wall_ms()
    start = now - now % IV - 5_600 * IV  # 600 bars older than the 5,000 the venue serves
    out = tmp_path / "candles"
    args = ["--symbols", COIN, "--interval", "1m", "--start", str(start), "--out", str(out),
            "--base-url", sim.base_url, "--page-candles", "2000"]  # fmt: skip
    assert download.main(args) == 0
    err = capsys.readouterr().err
    assert "download 1m:" in err and "nothing served" in err
    ts = [int(r[0]) for r in rows(download.csv_path(out, COIN, "1m"))]
    assert ts[0] > start + 590 * IV  # the oldest bars are not on the venue any more
    assert all(b - a == IV for a, b in pairwise(ts))
    # A second run straight after: nothing new or a bar that closed meanwhile, never a duplicate.
    assert download.main(args) == 0
    again = [int(r[0]) for r in rows(download.csv_path(out, COIN, "1m"))]
    assert again[: len(ts)] == ts and len(again) == len(set(again))
    assert download.main([*args[:-2], "--page-candles", "6000"]) == 2
    assert "--page-candles" in capsys.readouterr().err


class _Sink:
    """A non-terminal stream collecting lines."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def write(self, text: str) -> None:
        self.lines.extend(line for line in text.splitlines() if line)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False
