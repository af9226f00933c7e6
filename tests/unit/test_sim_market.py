"""Simulator market: determinism, the mid path, candles (windows, cap, aggregation), book, funding."""

from __future__ import annotations

import itertools
import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from simulator.cli import SHIPPED_DATA
from simulator.market import CANDLE_CAP, HOUR_MS, Market, MarketClock, fmt_num
from simulator.series import load_csv_dir, merge, round_px, synthetic_series

IV = 300_000
START = 1_700_000_123_456


def shipped_market(seed: int = 1, history_bars: int = 300, start_ms: int = START) -> Market:
    series = load_csv_dir(SHIPPED_DATA, interval="5m", interval_ms=IV, seed=seed)
    return Market(series, MarketClock(start_ms=start_ms, speed=0), interval_ms=IV, seed=seed,
                  history_bars=history_bars)


def synthetic_market(count: int, seed: int = 3, history_bars: int = 300) -> Market:
    return Market(synthetic_series(count, seed=seed), MarketClock(start_ms=START, speed=0), interval_ms=IV,
                  seed=seed, history_bars=history_bars)


def sig_figs(px: float) -> int:
    digits = Decimal(fmt_num(px)).normalize().as_tuple().digits
    return len(digits)


def test_market_same_seed_same_data_identical_candles_and_mids() -> None:
    a, b = shipped_market(seed=5), shipped_market(seed=5)
    for step in (0, 37_000, 290_000, 3 * IV + 1, 40 * IV):
        a.clock.advance(step)
        b.clock.advance(step)
        now = a.now_ms()
        assert now == b.now_ms()
        assert a.mids_at(now).tolist() == b.mids_at(now).tolist()
        for coin in a.coins():
            assert a.candles(coin, IV, 0, now, now) == b.candles(coin, IV, 0, now, now)
            assert a.book(coin) == b.book(coin)


def test_market_other_seed_same_closed_candles_other_path() -> None:
    a, b = shipped_market(seed=1), shipped_market(seed=2)
    now = a.now_ms()
    closed_a = a.candles("ETH", IV, 0, now, now)[:-1]
    assert closed_a == b.candles("ETH", IV, 0, now, now)[:-1]
    paths_a = [a.mids_at(now + k * 7_000).tolist() for k in range(200)]
    paths_b = [b.mids_at(now + k * 7_000).tolist() for k in range(200)]
    assert paths_a != paths_b


def test_market_rebases_data_so_history_bar_contains_start() -> None:
    m = shipped_market(history_bars=300)
    candles = m.candles("ETH", IV, 0, m.now_ms(), m.now_ms())
    assert len(candles) == 301
    assert candles[-1][0] <= START < candles[-1][0] + IV
    assert all(c[1] == c[0] + IV - 1 for c in candles)
    assert [c[0] for c in candles] == list(range(candles[0][0], candles[-1][0] + 1, IV))


def test_market_shipped_prices_rescaled_to_at_least_one_with_five_sig_figs() -> None:
    series = load_csv_dir(SHIPPED_DATA, interval="5m", interval_ms=IV, seed=0)
    o, h, lo, c, _ = series.bars(0, series.n_bars)
    assert series.coins and all(info.price_scale >= 1 for info in series.coins)
    assert (c[0] >= 1).all() and (c[0] < 10).all()
    for arr in (o, h, lo, c):
        sample = arr[::97].ravel().tolist()
        assert all(sig_figs(px) <= 5 for px in sample)
    assert (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all()


def test_market_mid_stays_inside_forming_candle_and_closes_at_data_close() -> None:
    m = shipped_market()
    k_start = m.bar_index(m.now_ms())
    for _ in range(300):
        m.clock.advance(23_017)
        now = m.now_ms()
        for coin in ("ETH", "ADA", "XMR"):
            _, _, o, h, lo, c, _, _ = m.current_candle(coin, IV, now)
            mid = m.mid(coin)
            tick = m.tick_size(coin, mid)
            assert lo - tick <= mid <= h + tick
            assert lo <= c <= h and lo <= o <= h
    now = m.now_ms()
    k_now = m.bar_index(now)
    assert k_now > k_start + 10
    i = m.index_of("ETH")
    closed = m.candles("ETH", IV, m.bar_open(k_start), m.bar_open(k_now - 1), now)
    for offset, candle in enumerate(closed):
        o, h, lo, c, _ = (float(a[i]) for a in m.series.bar(k_start + offset))
        assert candle[2:6] == (o, h, lo, c)


def test_market_forming_candle_grows_monotonically_within_bar() -> None:
    m = shipped_market()
    m.clock.advance(IV - (m.now_ms() - m.bar_open(m.bar_index(m.now_ms()))))  # to a bar start
    prev = None
    for _ in range(20):
        candle = m.current_candle("LTC", IV, m.now_ms())
        if prev is not None and candle[0] == prev[0]:
            assert candle[3] >= prev[3] and candle[4] <= prev[4] and candle[6] >= prev[6]
        prev = candle
        m.clock.advance(IV // 25)


def test_market_candles_window_includes_candle_containing_start() -> None:
    m = shipped_market()
    now = m.now_ms()
    all_c = m.candles("ETH", IV, 0, now, now)
    mid_candle = all_c[100]
    got = m.candles("ETH", IV, mid_candle[0] + 1234, all_c[110][0] + 5, now)
    assert [c[0] for c in got] == [c[0] for c in all_c[100:111]]
    assert m.candles("ETH", IV, 0, all_c[0][0] - 1, now) == []
    assert m.candles("ETH", IV, now + IV, now + 10 * IV, now) == []


def test_market_candles_capped_at_most_recent_5000() -> None:
    m = synthetic_market(2, history_bars=6000)
    now = m.now_ms()
    got = m.candles("SYN0001", IV, 0, now, now)
    assert len(got) == CANDLE_CAP
    assert got[-1][0] == (now // IV) * IV
    assert got[0][0] == got[-1][0] - (CANDLE_CAP - 1) * IV


def test_market_hourly_candles_aggregate_base_bars() -> None:
    m = shipped_market()
    m.clock.advance(3 * HOUR_MS + 17)
    now = m.now_ms()
    hourly = m.candles("DASH", HOUR_MS, 0, now, now)
    base = m.candles("DASH", IV, 0, now, now)
    assert all(c[0] % HOUR_MS == 0 for c in hourly)
    for hc in hourly[-3:]:
        parts = [c for c in base if hc[0] <= c[0] < hc[0] + HOUR_MS]
        assert hc[2] == parts[0][2] and hc[5] == parts[-1][5]
        assert hc[3] == max(c[3] for c in parts) and hc[4] == min(c[4] for c in parts)
        assert hc[7] == sum(c[7] for c in parts)
        assert math.isclose(hc[6], sum(c[6] for c in parts), rel_tol=1e-9, abs_tol=1e-3)
    assert m.candles("DASH", 60_000, 0, now, now) == []  # 1m cannot be built from 5m bars


def test_market_book_is_sorted_valid_and_around_mid() -> None:
    m = synthetic_market(50)
    for coin in m.coins():
        bids, asks = m.book(coin, 20)
        mid = m.mid(coin)
        szd = m.sz_decimals(coin)
        assert len(bids) == len(asks) == 20
        assert bids[0][0] < mid < asks[0][0]
        assert all(a[0] > b[0] for a, b in itertools.pairwise(bids))
        assert all(a[0] < b[0] for a, b in itertools.pairwise(asks))
        for px, sz in bids + asks:
            assert float(round_px(np.array([px]), szd)[0]) == px
            assert sz >= 10.0**-szd and round(sz, szd) == sz
        assert sum(s for _, s in asks[:5]) < sum(s for _, s in asks[5:10])


def test_market_vectorised_best_bid_ask_and_marks_match_per_coin_answers() -> None:
    m = synthetic_market(300, seed=8)
    for _ in range(5):
        m.clock.advance(71_003)
        now = m.now_ms()
        bids, asks = m.best_bid_ask_at(now)
        marks = m.marks_at(now)
        for i, coin in enumerate(m.coins()):
            book_bids, book_asks = m.book_at(coin, now, 1)
            assert (bids[i], asks[i]) == (book_bids[0][0], book_asks[0][0])
            _, _, _, h, lo, _, _, _ = m.current_candle(coin, IV, now)
            assert lo <= marks[i] <= h


def test_market_range_between_covers_every_sampled_mid() -> None:
    m = shipped_market()
    t0 = m.now_ms()
    samples = []
    for _ in range(120):
        m.clock.advance(9_111)
        samples.append(m.mid("ETC"))
    lo, hi = m.range_between("ETC", t0, m.now_ms())
    tick = m.tick_size("ETC", hi)
    assert lo - tick <= min(samples) and max(samples) <= hi + tick
    lo1, hi1 = m.range_between("ETC", t0 + 50_000, t0 + 60_000)
    assert lo <= lo1 <= hi1 <= hi


def test_market_funding_is_deterministic_hourly_and_bounded() -> None:
    a, b = shipped_market(seed=1), shipped_market(seed=1)
    hour = (a.now_ms() // HOUR_MS) * HOUR_MS
    rates = [a.funding_rate_at("ETH", hour + k * HOUR_MS // 4) for k in range(4)]
    assert len(set(rates)) == 1
    assert rates[0] == b.funding_rate_at("ETH", hour + 5)
    for coin in a.coins():
        assert abs(a.funding_rate(coin)) <= 0.0005


def test_fmt_num_matches_venue_style() -> None:
    assert fmt_num(30135.0) == "30135.0"
    assert fmt_num(1.96595) == "1.96595"
    assert fmt_num(0.00001) == "0.00001"
    assert fmt_num(-0.0000393) == "-0.0000393"


def test_synthetic_names_and_limits() -> None:
    s = synthetic_series(12, seed=9)
    assert [c.name for c in s.coins][:2] == ["SYN0001", "SYN0002"]
    with pytest.raises(ValueError):
        synthetic_series(10_001, seed=9)


def test_csv_loader_fills_gaps_flat_at_previous_close(tmp_path: Path) -> None:
    (tmp_path / "AAA_BTC-5m.csv").write_text("t,o,h,l,c,v\n0,1.0,1.2,0.9,1.1,5\n600000,1.1,1.3,1.0,1.2,6\n")
    (tmp_path / "BBB_BTC-1m.csv").write_text("t,o,h,l,c,v\n0,1,1,1,1,1\n")
    s = load_csv_dir(tmp_path, interval="5m", interval_ms=IV, seed=0)
    assert [c.name for c in s.coins] == ["AAA"]
    o, h, lo, c, v = s.bars(0, 3)
    assert o[:, 0].tolist() == [1.0, 1.1, 1.1] and c[:, 0].tolist() == [1.1, 1.1, 1.2]
    assert h[1, 0] == lo[1, 0] == 1.1 and v[1, 0] == 0.0


def test_market_csv_plus_synthetic_grow_independently() -> None:
    csv_part = load_csv_dir(SHIPPED_DATA, interval="5m", interval_ms=IV, seed=4)
    syn_part = synthetic_series(500, seed=4)
    m = Market(merge([csv_part, syn_part]), MarketClock(start_ms=START, speed=0), interval_ms=IV, seed=4,
               history_bars=300)
    now = m.now_ms()
    assert m.coins()[:7] == ["ADA", "DASH", "ETC", "ETH", "LTC", "XLM", "XMR"] and m.coins()[-1] == "SYN0500"
    assert len(m.mids_at(now)) == 507
    assert syn_part.n_bars < 1000 < csv_part.n_bars  # the synthetic part was not grown to the CSV length
    alone = synthetic_market(500, seed=4)
    for coin in ("SYN0001", "SYN0500"):
        assert m.candles(coin, IV, 0, now, now) == alone.candles(coin, IV, 0, now, now)
    assert m.candles("ETH", IV, 0, now, now) == shipped_market(seed=4).candles("ETH", IV, 0, now, now)


def test_market_shock_moves_mid_book_and_forming_candle_but_not_closed_candles() -> None:
    m = synthetic_market(2)
    coin = m.coins()[0]
    now = m.now_ms()
    closed_before = m.candles(coin, IV, now - 10 * IV, now - IV, now)[:-1]
    before, after = m.shock(coin, 0.9)
    assert after == pytest.approx(before * 0.9, rel=1e-3)
    bids, _ = m.book(coin, 1)
    assert bids[0][0] < after
    assert m.candles(coin, IV, now - 10 * IV, now - IV, now)[:-1] == closed_before
    assert m.current_candle(coin, IV, now)[5] == pytest.approx(after, rel=1e-3)
    other = m.coins()[1]
    assert m.mid(other) == synthetic_market(2).mid(other)
    with pytest.raises(ValueError):
        m.shock(coin, 0.0)
