"""The applied tail keeps the newest applied candles as the store's own records, exactly.

The fast path compares a read's records with the tail byte for byte, so the tail must hold the
very bytes the layout stores for those candles; the general path still sees equal `Candle`s.
"""

from __future__ import annotations

import dataclasses

from bench.universe import series
from cluster.applied_tail import RECHECK_BARS, TAIL_BARS, AppliedTail, encode_record
from cluster.candle_codec import encode_candles


def test_tail_holds_the_newest_candles_as_the_layout_records() -> None:
    candles = series(3, 12)
    tail = AppliedTail()
    assert tail.read_from(None) is None and len(tail) == 0
    tail.append(candles[0])
    assert tail.read_from(candles[0].t) == candles[0].t  # one candle: read from the last applied
    tail.extend(candles[1:9])
    assert len(tail) == TAIL_BARS == RECHECK_BARS + 1
    assert tail.raw == encode_candles(candles[9 - TAIL_BARS: 9])
    assert tail.candles() == candles[9 - TAIL_BARS: 9]
    assert tail.read_from(candles[8].t) == candles[9 - TAIL_BARS].t
    assert encode_record(candles[0]) == encode_candles(candles[:1])
    twin = tail.copy()
    twin.append(candles[9])
    assert tail.candles()[-1] == candles[8] and twin.candles()[-1] == candles[9]


def test_rewritten_names_the_first_changed_applied_candle() -> None:
    candles = series(4, 10)
    tail = AppliedTail(candles[:8])
    last_t = candles[7].t
    assert tail.rewritten(candles[3:10], last_t) is None  # same candles, then new ones
    changed = dataclasses.replace(candles[5], c=candles[5].c * 1.001)
    read = [*candles[3:5], changed, *candles[6:10]]
    assert tail.rewritten(read, last_t) == changed
    assert tail.rewritten([dataclasses.replace(candles[8], v=0.0)], last_t) is None  # not applied yet
