"""Compact, bit-exact pickling of the structured arrays a shard returns (`DecisionBlock`, `VariantColumns`).

Why: with 500 symbols x 8 shadow variants a shard's reply was ~224 KB, mostly `VariantColumns.rows`
(48 bytes a row). Ray returns results above 100 KiB through the plasma object store (a put on
the worker's node, a pull to the driver's node, one more IPC hop) instead of inline in the call's
reply. Most columns are nearly constant (one strategy, no fault), repeat along a symbol's rows
(close and entry ATR are per symbol) or take a few values (signal, confidence, variant index), so
each column is shipped in the smallest of four forms, computed on the column's raw bits (so NaN,
-0.0 and every float payload round-trip exactly; parity stays bit for bit):

- ``const``: one value;
- ``runs``: a bit mask of the rows that differ from the previous row, plus those rows' values;
- ``dict``: the distinct values plus a uint8/uint16 code per row;
- ``raw``: the column as it is.

`pack(rows)` gives a tuple of plain bytes and small arrays (picklable by any protocol);
`unpack(packed, dtype)` rebuilds an equal, writable array. Pure (no I/O).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["pack", "unpack"]

_CONST, _RUNS, _DICT, _RAW = 0, 1, 2, 3
_CODE_TYPES = ((256, np.dtype(np.uint8)), (65536, np.dtype(np.uint16)))


def _bits(column: np.ndarray) -> np.ndarray:
    """The column's values as unsigned ints of the same width (compare bits, not values)."""
    width = column.dtype.itemsize
    return np.ascontiguousarray(column).view(np.dtype(f"<u{width}"))


def _encode(bits: np.ndarray) -> tuple[Any, ...]:
    """The smallest form of one column (see the module docstring)."""
    n, width = len(bits), bits.dtype.itemsize
    if n == 0:
        return (_RAW, b"")
    first = bits[0]
    changed = np.empty(n, dtype=bool)
    changed[0] = True
    np.not_equal(bits[1:], bits[:-1], out=changed[1:])
    starts = np.flatnonzero(changed)
    if len(starts) == 1:
        return (_CONST, first.tobytes())
    best: tuple[int, tuple[Any, ...]] = (n * width, (_RAW, bits.tobytes()))
    runs_size = (n + 7) // 8 + len(starts) * width
    if runs_size < best[0]:
        best = (runs_size, (_RUNS, np.packbits(changed).tobytes(), bits[starts].tobytes()))
    if width > 1 and runs_size > n:  # a code costs a byte a row at least: no gain on one-byte columns
        values, codes = np.unique(bits, return_inverse=True)
        for limit, code_type in _CODE_TYPES:
            if len(values) <= limit and code_type.itemsize < width:
                size = n * code_type.itemsize + len(values) * width
                if size < best[0]:
                    best = (size, (_DICT, values.tobytes(), codes.astype(code_type).tobytes()))
                break
    return best[1]


def _decode(form: tuple[Any, ...], n: int, width: int) -> np.ndarray:
    kind = np.dtype(f"<u{width}")
    tag = form[0]
    if tag == _CONST:
        return np.full(n, np.frombuffer(form[1], dtype=kind)[0], dtype=kind)
    if tag == _RUNS:
        changed = np.unpackbits(np.frombuffer(form[1], dtype=np.uint8), count=n).astype(bool)
        values = np.frombuffer(form[2], dtype=kind)
        if not changed[0] or int(changed.sum()) != len(values):
            raise ValueError("column_wire: run mask and values disagree")
        return values[np.cumsum(changed) - 1]
    if tag == _DICT:
        values = np.frombuffer(form[1], dtype=kind)
        codes = np.frombuffer(form[2], dtype=np.uint8 if len(values) <= 256 else np.uint16)
        if len(codes) != n or (n and int(codes.max()) >= len(values)):
            raise ValueError("column_wire: dictionary codes out of range")
        return values[codes]
    if tag == _RAW:
        out = np.frombuffer(form[1], dtype=kind)
        if len(out) != n:
            raise ValueError("column_wire: raw column of the wrong length")
        return out
    raise ValueError(f"column_wire: unknown column form {tag!r}")


def pack(rows: np.ndarray) -> tuple[Any, ...]:
    """`rows` (a 1-D structured array) as (dtype descr, row count, one form per field)."""
    if rows.ndim != 1 or rows.dtype.names is None:
        raise ValueError("column_wire.pack needs a 1-D structured array")
    forms = tuple(_encode(_bits(rows[name])) for name in rows.dtype.names)
    return (rows.dtype.descr, len(rows), forms)


def unpack(packed: tuple[Any, ...], dtype: np.dtype) -> np.ndarray:
    """The array `pack` was given (bit for bit). Raises ValueError when `packed` does not describe
    `dtype` (a reply from another version) or a form is inconsistent, so a bad reply fails closed."""
    descr, n, forms = packed
    if np.dtype(descr) != dtype or len(forms) != len(dtype.names or ()):
        raise ValueError(f"column_wire: packed rows are {descr}, expected {dtype}")
    out = np.zeros(int(n), dtype=dtype)
    for name, form in zip(dtype.names, forms, strict=True):
        field = dtype.fields[name][0]
        out[name] = _decode(form, int(n), field.itemsize).view(field)
    return out
