"""Pure matching pieces: tick/lot rules, wire formatting, book walks, resting triggers."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hyperliquid.utils.signing import float_to_wire

from simulator.matching import (
    BookFill,
    floor_size,
    price_is_valid,
    resting_order_triggered,
    round_price,
    size_is_valid,
    walk_book,
    wire,
    would_cross,
)


@pytest.mark.parametrize(
    ("px", "sz_decimals", "ok"),
    [
        ("100000", 5, True),  # integer: always valid
        ("1234567", 0, True),  # integer beyond 5 significant figures: still valid
        ("99000.5", 5, False),  # 6 - 5 = 1 decimal allowed, but 6 significant figures
        ("9900.5", 5, True),
        ("9900.55", 4, False),  # 6 significant figures
        ("3456.7", 2, True),
        ("1.2345", 2, True),
        ("1.23456", 0, False),  # 6 significant figures
        ("0.000123", 0, True),
        ("0.0001234", 0, False),  # 7 decimals > 6
        ("0.00123", 4, False),  # 5 decimals > 6 - 4
        ("0", 2, False),
        ("-1", 2, False),
    ],
)
def test_price_is_valid_venue_tick_rule(px: str, sz_decimals: int, ok: bool) -> None:
    assert price_is_valid(Decimal(px), sz_decimals) is ok


@pytest.mark.parametrize(
    ("sz", "sz_decimals", "ok"),
    [("0.001", 3, True), ("0.0001", 3, False), ("12", 0, True), ("12.5", 0, False), ("0", 2, False)],
)
def test_size_is_valid_lot_rule(sz: str, sz_decimals: int, ok: bool) -> None:
    assert size_is_valid(Decimal(sz), sz_decimals) is ok


@pytest.mark.parametrize(("px", "szd"), [(101_234.567, 5), (3456.789, 2), (0.123456789, 0), (17.77777, 3)])
def test_round_price_result_passes_tick_rule_and_sdk_wire(px: float, szd: int) -> None:
    rounded = round_price(px, szd)
    assert price_is_valid(Decimal(float_to_wire(rounded)), szd)
    assert abs(rounded - px) / px < 1e-4


@pytest.mark.parametrize(
    ("x", "decimals", "text"),
    [
        (26951.0, 8, "26951.0"),
        (-0.00785, 8, "-0.00785"),
        (0.0, 6, "0.0"),
        (-0.0, 6, "0.0"),
        (1e-7, 8, "0.0000001"),
        (10.5822714, 6, "10.582271"),
        (3.0, 0, "3.0"),
    ],
)
def test_wire_formats_like_the_venue(x: float, decimals: int, text: str) -> None:
    assert wire(x, decimals) == text


def test_floor_size_never_rounds_up() -> None:
    assert floor_size(0.123456789, 5) == 0.12345
    assert floor_size(12.9999, 0) == 12.0


ASKS = [(100.0, 1.0), (100.1, 2.0), (100.2, 5.0)]


def test_walk_book_takes_levels_in_order_until_size() -> None:
    assert walk_book(ASKS, True, 101.0, 2.5, 2) == [BookFill(100.0, 1.0), BookFill(100.1, 1.5)]


def test_walk_book_stops_at_limit_price() -> None:
    assert walk_book(ASKS, True, 100.1, 10.0, 2) == [BookFill(100.0, 1.0), BookFill(100.1, 2.0)]
    assert walk_book(ASKS, True, 99.9, 1.0, 2) == []


def test_walk_book_sell_side_walks_bids_down() -> None:
    bids = [(99.9, 1.0), (99.8, 1.0)]
    assert walk_book(bids, False, 99.85, 5.0, 2) == [BookFill(99.9, 1.0)]


def test_walk_book_floors_uneven_level_sizes_to_lots() -> None:
    assert walk_book([(10.0, 0.1239), (10.1, 5.0)], True, 11.0, 0.2, 2) == [
        BookFill(10.0, 0.12),
        BookFill(10.1, 0.08),
    ]


def test_would_cross_and_resting_trigger() -> None:
    assert would_cross(True, 100.0, 99.0, 100.0)
    assert not would_cross(True, 99.5, 99.0, 100.0)
    assert would_cross(False, 99.0, 99.0, 100.0)
    assert not would_cross(False, 99.5, None, None)
    assert resting_order_triggered(True, 100.0, 99.99)
    assert not resting_order_triggered(True, 100.0, 100.01)
    assert resting_order_triggered(False, 100.0, 100.0)
