"""The vendored candle files are all there, whole, and in order (tests/data/README.md)."""

from __future__ import annotations

import csv
import itertools

from tests.fixtures.data_files import OHLCV_BARS, OHLCV_NAMES, ohlcv_files


def test_vendored_files_are_exactly_the_expected_ones_with_their_bars() -> None:
    files = ohlcv_files()
    assert [p.stem for p in files] == sorted(OHLCV_NAMES)
    for path in files:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == OHLCV_BARS[path.stem], path.name
        times = [int(r["t"]) for r in rows]
        assert all(a < b for a, b in itertools.pairwise(times)), f"{path.name}: times not increasing"
        assert all(float(r["l"]) <= min(float(r["o"]), float(r["c"])) for r in rows), path.name
