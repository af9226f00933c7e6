"""The base of the indicator library: the `Indicator` declaration contract and the `Kernel` protocol.

See `strategies.sdk.library` for what a declaration is and why; this module holds only the
abstract parts so the concrete indicators can live in more than one file. Pure: no I/O.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from strategies.kernels import _Packer, _Unpacker
from strategies.sdk.errors import IndicatorDeclarationError

NAN = math.nan
PRICE_COLUMNS: tuple[str, ...] = ("Open", "High", "Low", "Close", "Volume")

Row = Mapping[str, float]
Columns = Mapping[str, np.ndarray]


class Kernel(Protocol):
    """One indicator's incremental state for one (symbol, variant) row."""

    def push(self, row: Row) -> tuple[float, ...]:
        """Advance by one closed candle; return the outputs in `Indicator.outputs` order."""
        ...


class Checkpointed:
    """Exact checkpointing for a kernel built from `strategies.kernels` parts plus scalars.

    `dump` writes each part in `_PARTS` order (the parts' own exact `dump`), then the `_INTS`
    and `_FLOATS` attributes; `load` reads them back in the same order. A kernel that does not
    derive from this (a user-written indicator) cannot be checkpointed: the state is rebuilt
    from candle history instead.
    """

    __slots__ = ()
    _PARTS: ClassVar[tuple[str, ...]] = ()
    _INTS: ClassVar[tuple[str, ...]] = ()
    _FLOATS: ClassVar[tuple[str, ...]] = ()

    def dump(self, out: _Packer) -> None:
        for name in self._PARTS:
            getattr(self, name).dump(out)
        out.ints.extend(getattr(self, name) for name in self._INTS)
        out.floats.extend(getattr(self, name) for name in self._FLOATS)

    def load(self, src: _Unpacker) -> None:
        for name in self._PARTS:
            getattr(self, name).load(src)
        for name in self._INTS:
            setattr(self, name, src.next_int())
        for name, value in zip(self._FLOATS, src.next_floats(len(self._FLOATS)), strict=True):
            setattr(self, name, value)


@dataclass(frozen=True, kw_only=True, slots=True)
class Indicator(ABC):
    """Base of every library indicator: a named, hashable declaration with two exact twins."""

    name: str
    SUFFIXES: ClassVar[tuple[str, ...]] = ("",)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise IndicatorDeclarationError(
                f"{type(self).__name__}: name must be an identifier, got {self.name!r}")
        for attr in self.window_fields():
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise IndicatorDeclarationError(
                    f"{type(self).__name__} {self.name!r}: {attr} must be an int >= 1, got {value!r}")

    @property
    def outputs(self) -> tuple[str, ...]:
        """Columns this indicator writes, in the order `push` and `batch` return them."""
        return tuple(self.name + s for s in self.SUFFIXES)

    @property
    @abstractmethod
    def inputs(self) -> tuple[str, ...]:
        """Columns this indicator reads (price columns or earlier declarations' outputs)."""

    @abstractmethod
    def window_fields(self) -> tuple[str, ...]:
        """Names of the int fields that are window lengths in bars (validated >= 1)."""

    @abstractmethod
    def kernel(self) -> Kernel:
        """Return a fresh incremental state (no candle applied yet)."""

    @abstractmethod
    def batch(self, cols: Columns) -> tuple[np.ndarray, ...]:
        """Return every output over the whole history, bit-identical to pushing row by row."""

    @classmethod
    @abstractmethod
    def examples(cls) -> tuple[Indicator, ...]:
        """Declarations the library parity test runs on real candles (default and non-default)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class _Sourced(Indicator, ABC):
    """An indicator over one input column (`source`, Close by default)."""

    source: str = "Close"

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.source,)
