"""A strategy's declared indicators as one unit: validated once, run batch or one candle at a time.

`IndicatorSet(specs)` checks a declaration list (unique column names, every input a price column
or an output declared earlier, no clash with Open..Volume/timestamp) and offers both twins:

* `batch(candles)` -> a new frame with every declared column (the oracle: replay, parity checks);
* `incremental(keep_rows)` -> an `IndicatorState` whose `update(t, o, h, l, c, v)` returns the
  same row, bit for bit, and keeps the last `keep_rows` rows for the strategy's decision.

Declaration order is evaluation order, so a declaration may read an earlier one's output (for
example `Sma(name="avg_atr", source="atr", window=50)`).

`IndicatorState.to_state()` / `IndicatorSet.restore(state, keep_rows)` checkpoint a state as
plain JSON types, bit-exact (floats travel as base64 little-endian doubles, as
`strategies.incremental` does), so a shard can persist it and rehydrate without replaying the
history. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from strategies.kernels import _Packer, _Unpacker
from strategies.sdk.errors import IndicatorDeclarationError
from strategies.sdk.indicator_base import Checkpointed
from strategies.sdk.library import PRICE_COLUMNS, Indicator, Kernel

if TYPE_CHECKING:  # batch() is handed a frame: its caller imported pandas; a shard never needs it
    import pandas as pd

RESERVED_COLUMNS: tuple[str, ...] = ("timestamp", *PRICE_COLUMNS)
STATE_VERSION = 1


class IndicatorSet:
    """An ordered, validated tuple of indicator declarations (see the module docstring)."""

    __slots__ = ("_columns", "_specs")

    def __init__(self, specs: Sequence[Indicator]) -> None:
        """Validate `specs`; raise IndicatorDeclarationError naming the first bad declaration."""
        seen: set[str] = set(RESERVED_COLUMNS)
        columns: list[str] = []
        for spec in specs:
            if not isinstance(spec, Indicator):
                raise IndicatorDeclarationError(f"not a library indicator: {spec!r}")
            for col in spec.inputs:
                if col not in seen:
                    raise IndicatorDeclarationError(
                        f"{spec!r} reads {col!r}, which is neither a price column nor declared before it")
            for col in spec.outputs:
                if col in seen:
                    raise IndicatorDeclarationError(f"{spec!r} writes {col!r}, which already exists")
                seen.add(col)
                columns.append(col)
        self._specs: tuple[Indicator, ...] = tuple(specs)
        self._columns: tuple[str, ...] = tuple(columns)

    @property
    def specs(self) -> tuple[Indicator, ...]:
        """The declarations, in evaluation order (hashable: a shard groups rows by them)."""
        return self._specs

    @property
    def columns(self) -> tuple[str, ...]:
        """Every declared output column, in evaluation order."""
        return self._columns

    def batch(self, candles: pd.DataFrame) -> pd.DataFrame:
        """Return a copy of `candles` (Open..Volume, oldest first) with every declared column added.

        Raises KeyError naming a missing price column.
        """
        missing = [c for c in PRICE_COLUMNS if c not in candles.columns]
        if missing:
            raise KeyError(f"candle frame lacks {missing}; has {list(candles.columns)}")
        cols: dict[str, np.ndarray] = {c: candles[c].to_numpy(dtype=float) for c in PRICE_COLUMNS}
        for spec in self._specs:
            for name, values in zip(spec.outputs, spec.batch(cols), strict=True):
                cols[name] = np.asarray(values, dtype=float)
        out = candles.reset_index(drop=True).copy()
        for name in (*PRICE_COLUMNS, *self._columns):
            out[name] = cols[name]
        return out

    def incremental(self, keep_rows: int) -> IndicatorState:
        """Return a fresh incremental state keeping the last `keep_rows` (>= 1) rows."""
        return IndicatorState(self, keep_rows)

    def fingerprint(self) -> list[str]:
        """The declarations as stable strings: a checkpoint only restores into the same list."""
        return [repr(spec) for spec in self._specs]

    def restore(self, state: dict[str, Any], keep_rows: int) -> IndicatorState:
        """Rebuild a state from `IndicatorState.to_state()` output, bit-exact.

        Raises ValueError on another version, other declarations, or a truncated or corrupt state
        (missing keys and wrong types included), so the caller can rebuild from candle history.
        """
        obj = IndicatorState(self, keep_rows)
        try:
            if state.get("version") != STATE_VERSION:
                raise ValueError(f"indicator state version {state.get('version')!r}, not {STATE_VERSION}")
            if state["specs"] != self.fingerprint():
                raise ValueError("indicator state was built from other declarations")
            raw = base64.b64decode(state["f"], validate=True)
            obj._load(state, _Unpacker(list(state["i"]), struct.unpack(f"<{len(raw) // 8}d", raw)))
        except (KeyError, TypeError, AttributeError, binascii.Error, struct.error) as e:
            raise ValueError(f"indicator state is corrupt: {e!r}") from e
        return obj


class IndicatorState:
    """One (symbol, variant) row's indicator state, advanced one closed candle at a time."""

    __slots__ = ("_bars", "_columns", "_fingerprint", "_last_t", "_pushes", "_rows", "_steps")

    def __init__(self, indicator_set: IndicatorSet, keep_rows: int) -> None:
        if isinstance(keep_rows, bool) or not isinstance(keep_rows, int) or keep_rows < 1:
            raise ValueError(f"keep_rows must be an int >= 1, got {keep_rows!r}")
        self._steps: tuple[tuple[Kernel, tuple[str, ...]], ...] = tuple(
            (spec.kernel(), spec.outputs) for spec in indicator_set.specs
        )
        # the hot loop's view of _steps: bound push, and the single output name (None if several)
        self._pushes = tuple((k.push, outs[0] if len(outs) == 1 else None, outs) for k, outs in self._steps)
        self._rows: deque[dict[str, Any]] = deque(maxlen=keep_rows)
        self._bars = 0
        self._last_t: int | None = None
        self._fingerprint = indicator_set.fingerprint()
        self._columns: tuple[str, ...] = (*PRICE_COLUMNS, *indicator_set.columns)  # row floats, in order

    @property
    def bars(self) -> int:
        """Candles applied since the start of the history."""
        return self._bars

    @property
    def last_t(self) -> int | None:
        """Open time (epoch ms) of the last applied candle; None before the first."""
        return self._last_t

    def rows(self) -> tuple[dict[str, Any], ...]:
        """The kept rows, oldest first, NOT copied: read-only use (what `Strategy.decide` gets)."""
        return tuple(self._rows)

    def update(self, t_open_ms: int, o: float, h: float, l: float, c: float, v: float) -> dict[str, Any]:  # noqa: E741
        """Apply one closed candle (prices in quote units, volume in coins); return its row.

        Raises ValueError when t_open_ms is not after the last candle's (a candle applied twice or
        out of order would corrupt every window) or a price/volume is not finite.
        """
        if self._last_t is not None and t_open_ms <= self._last_t:
            raise ValueError(f"candle t={t_open_ms} is not after the last applied candle t={self._last_t}")
        row: dict[str, Any] = {"timestamp": int(t_open_ms), "Open": float(o), "High": float(h),
                               "Low": float(l), "Close": float(c), "Volume": float(v)}
        isfinite = math.isfinite
        if not (isfinite(o) and isfinite(h) and isfinite(l) and isfinite(c) and isfinite(v)):
            bad = next(name for name in PRICE_COLUMNS if not isfinite(row[name]))
            raise ValueError(f"candle t={t_open_ms}: {bad} is not finite ({row[bad]!r})")
        for push, single, outputs in self._pushes:
            if single is not None:
                row[single] = push(row)[0]
            else:
                row.update(zip(outputs, push(row), strict=True))
        self._rows.append(row)
        self._bars += 1
        self._last_t = int(t_open_ms)
        return row

    def kernels(self) -> tuple[Kernel, ...]:
        """The per-declaration kernels, in declaration order (a columnar row exports into these)."""
        return tuple(kernel for kernel, _ in self._steps)

    def adopt(self, rows: Sequence[dict[str, Any]], bars: int, last_t: int | None) -> None:
        """Set the kept rows and progress after `kernels()` were filled in from another representation."""
        self._rows.clear()
        self._rows.extend(rows)
        self._bars = int(bars)
        self._last_t = None if last_t is None else int(last_t)

    def to_state(self) -> dict[str, Any]:
        """Return the whole state (kernels and kept rows) as plain JSON types; restoring is exact.

        Raises ValueError when a declaration's kernel cannot be checkpointed (a user-written
        indicator): rebuild from candle history instead.
        """
        ints, floats = [len(self._rows)], []
        for row in self._rows:
            ints.append(row["timestamp"])
            floats.extend([row[k] for k in self._columns])
        return self.state_with_rows(ints, floats, self._bars, self._last_t)

    def state_with_rows(self, ints: list[int], floats: list[float], bars: int, last_t: int | None,
                        ) -> dict[str, Any]:
        """`to_state()` with the kept rows, bars and last open time given already packed (`ints` =
        [row count, each row's timestamp], `floats` = each row's `_columns` values) and this state's
        kernels: `ColumnarSet.state_of` packs a row straight from its arrays, no row dicts."""
        out = _Packer()
        out.ints, out.floats = ints, floats
        for (kernel, outputs), spec in zip(self._steps, self._fingerprint, strict=True):
            if not isinstance(kernel, Checkpointed):
                raise ValueError(f"{spec} ({outputs}) cannot be checkpointed: not a library kernel")
            kernel.dump(out)
        packed = struct.pack(f"<{len(out.floats)}d", *out.floats)
        return {"version": STATE_VERSION, "specs": list(self._fingerprint), "bars": bars,
                "last_t": last_t, "i": out.ints, "f": base64.b64encode(packed).decode("ascii")}

    def _load(self, state: dict[str, Any], src: _Unpacker) -> None:
        columns = self._columns
        self._bars = int(state["bars"])
        self._last_t = None if state["last_t"] is None else int(state["last_t"])
        for _ in range(src.next_int()):
            row: dict[str, Any] = {"timestamp": src.next_int()}
            row.update(zip(columns, src.next_floats(len(columns)), strict=True))
            self._rows.append(row)
        for kernel, _ in self._steps:
            if not isinstance(kernel, Checkpointed):
                raise ValueError("indicator state names a kernel that cannot be checkpointed")
            kernel.load(src)
        src.assert_done()
