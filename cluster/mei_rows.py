"""A mei_alpha_v1 primary in the shard's columns: its indicator state as a `ColumnBook` row, and
the tick's NEUTRAL decisions made for all such symbols at once.

Why: a shard holding 1,000 mei_alpha_v1 symbols spent most of a tick in per-symbol Python
(`IncrementalIndicators.advance`, then `decide_lean`). Here the state of each symbol lives in a
row of `strategies.mei_columnar.MeiColumns` (one per indicator-window set, inside the shard's
`ColumnBook`, flushed with the SDK rows in one vectorised step per candle), and
`strategies.signals_columns.decide_columns` decides every symbol of a (window set, config) group
in a few numpy operations.

* `MeiRow` stands in for the symbol's `IncrementalIndicators` (`bars`, `last_t`, `rows_view()`,
  `to_state()` = the unchanged per-row checkpoint; `row_states` many at once, packed straight
  from the columns); `stage(candles)` queues candles for the book's flush; `detach()` gives the
  row back as an `IncrementalIndicators`.
* `mei_neutral(...)` returns, per group, every symbol whose array decision is NEUTRAL and whose
  features nobody asked for (`MeiNeutral`: arrays the shard writes into its record columns,
  `cluster.decision_block`); a BUY/SELL (features needed) or a symbol with an open position is
  left out, so `ShardCore._decide` runs `decide_lean` on its rows exactly as before. Their
  `Decision`s are shared constants (read-only; `gates` is not carried, no record reads it).
Pure (no I/O).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from strategies.enums import Confidence, Signal
from strategies.incremental import IncrementalIndicators
from strategies.mei_columnar import MeiColumns
from strategies.mei_columnar_export import export_states
from strategies.signals import (
    CONFIDENCE_RANK,
    MIN_BARS,
    Decision,
    SignalFeatures,
    _is_anomaly,
    _tp_mult,
    rank_score,
)
from strategies.signals_columns import (
    BTC_BEARISH,
    BTC_BULLISH,
    BTC_UNKNOWN,
    KIND_CODES,
    MeiColumnDecisions,
    decide_columns,
)

if TYPE_CHECKING:
    from cluster.anchor import AnchorTrend
    from cluster.columnar_book import ColumnBook
    from strategies.candle import Candle
    from strategies.config import StrategyConfig
    from strategies.sdk.strategy import ColumnWindow

_NEUTRAL = {code: Decision(Signal.NEUTRAL, Confidence.LOW, 0.0, entry_kind=kind)
            for kind, code in KIND_CODES.items()}
_SDK = attrgetter("sdk")
_BTC_NAMES = frozenset(a + b + c for a in "Bb" for b in "Tt" for c in "Cc")  # s.upper() == "BTC"
_BTC = {True: BTC_BULLISH, False: BTC_BEARISH, None: BTC_UNKNOWN}


class MeiRow:
    """One symbol's mei_alpha_v1 indicators as a row of the book (see the module docstring)."""

    __slots__ = ("bars", "book", "cols", "r")

    def __init__(self, book: ColumnBook, ind: IncrementalIndicators) -> None:
        """Load `ind` into a fresh row; raises ValueError (row given back) when it does not fit."""
        self.book = book
        self.cols, self.r = book.mei_slot(ind.params)
        try:
            self.cols.load(self.r, ind)
        except ValueError:
            self.cols.release(self.r)
            raise
        self.bars = ind.bars  # bars applied or staged (a refused candle fails and drops the symbol)

    @property
    def params(self) -> Any:
        return self.cols.params

    @property
    def slot(self) -> tuple[MeiColumns, int]:
        return self.cols, self.r

    @property
    def last_t(self) -> int | None:
        return None if self.cols.bars[self.r] == 0 else int(self.cols.last_t[self.r])

    def rows_view(self) -> tuple[dict[str, Any], ...]:
        """The kept rows as `IncrementalIndicators.rows_view()` gives them (fresh dicts)."""
        return self.cols.rows(self.r)

    def stage(self, candles: Sequence[Candle]) -> None:
        """Queue closed candles (ascending) for the book's next flush."""
        self.book.stage(self.slot, candles)
        self.bars += len(candles)

    def to_state(self) -> dict[str, Any]:
        """The per-row checkpoint (`IncrementalIndicators.to_state()`), bit-exact."""
        return export_states(self.cols, [self.r])[0]

    def detach(self) -> IncrementalIndicators:
        """Give the row back; return its state as a per-row `IncrementalIndicators`."""
        ind = self.cols.export(self.r)
        self.cols.release(self.r)
        return ind


def row_states(rows: Sequence[MeiRow]) -> list[dict[str, Any]]:
    """`[row.to_state() for row in rows]`, one bulk export per column set (strategies.mei_columnar_export)."""
    groups: dict[int, list[int]] = defaultdict(list)
    for j, row in enumerate(rows):
        groups[id(row.cols)].append(j)
    out: list[dict[str, Any]] = [{}] * len(rows)
    for members in groups.values():
        cols = rows[members[0]].cols
        for j, state in zip(members, export_states(cols, [rows[j].r for j in members]), strict=True):
            out[j] = state
    return out


@dataclass(frozen=True, slots=True)
class MeiNeutral:
    """The symbols of one (window set, config) group whose mei_alpha_v1 primary decided NEUTRAL in the
    columns, with what their records hold: newest applied open time, anchor trend code, entry kind."""

    symbols: list[str]
    states: list[Any]
    t: np.ndarray  # int64: each symbol's newest applied open time (the record's `t`)
    btc: np.ndarray  # int8: BTC_BULLISH / BTC_BEARISH / BTC_UNKNOWN of the anchor at t
    kind: np.ndarray  # int8: KIND_CODES of the decision's entry kind

    def decision(self, i: int) -> Decision:
        """Row i as the `Decision` `decide_lean` gives (shared constant: read-only)."""
        return _NEUTRAL[int(self.kind[i])]


def mei_neutral(book: ColumnBook, states: Mapping[str, Any], symbols: Collection[str],
                batch: Mapping[str, int], anchor: AnchorTrend, want_snapshot: Collection[str],
                ) -> list[MeiNeutral]:
    """The NEUTRAL groups of `mei_decide` (tests; the shard takes both halves)."""
    return mei_decide(book, states, symbols, batch, anchor, want_snapshot)[0]


class MeiPlan:
    """The grouping `mei_decide` made on the previous tick, reused while the same symbols hold the
    same state, indicator row and config objects (checked at C speed, `map`/list equality): a
    steady tick then groups no symbol in Python. Only the per-tick tests (on its key) run, on arrays."""

    __slots__ = ("cfgs", "groups", "held", "inds", "names")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.held: list[Any] = []
        self.inds: list[Any] = []
        self.cfgs: list[Any] = []
        self.groups: list[tuple[np.ndarray, np.ndarray]] = []

    def get(self, names: list[str], held: list[Any]) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """The groups when `names` hold exactly last tick's objects (no None among them), else None."""
        if (names != self.names or held != self.held or None in held or list(map(_IND, held)) != self.inds
                or list(map(_CFG, held)) != self.cfgs):
            return None
        return self.groups

    def put(self, names: list[str], held: list[Any], groups: list[tuple[np.ndarray, np.ndarray]]) -> None:
        if None in held:  # a symbol without state: not reused (the next tick groups again)
            self.names, self.held, self.inds, self.cfgs, self.groups = [], [], [], [], []
            return
        self.names, self.held, self.groups = names, held, groups
        self.inds, self.cfgs = list(map(_IND, held)), list(map(_CFG, held))


_IND, _CFG, _LAST_T, _LAST_CLOSE = (attrgetter(a) for a in ("ind", "cfg", "last_t", "last_close_ms"))


def _plan(book: ColumnBook, held: list[Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per (column set, decision config) group of mei_alpha_v1 rows: positions in `held`, their rows."""
    groups: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
    mei_row, mei_group = MeiRow, book.mei_group
    for i, state in enumerate(held):
        if state is None or type(ind := state.ind) is not mei_row:
            continue
        group = (id(ind.cols), mei_group(state.cfg))
        members = groups.get(group)
        if members is None:
            members = groups[group] = ([], [])
        members[0].append(i)
        members[1].append(ind.r)
    return [(np.array(pos, dtype=np.int64), np.array(rows, dtype=np.int64)) for pos, rows in groups.values()]


def _times(held: list[Any], attr: Any) -> np.ndarray:
    """Each state's `attr` (an int open/close time, or None: NaN) as float64 (exact below 2**53)."""
    if None in held:
        return np.array([np.nan if st is None or (v := attr(st)) is None else v for st in held], dtype=float)
    return np.array(list(map(attr, held)), dtype=float)


def mei_decide(book: ColumnBook, states: Mapping[str, Any], symbols: Collection[str],
               batch: Mapping[str, int], anchor: AnchorTrend, want_snapshot: Collection[str],
               plan: MeiPlan | None = None) -> tuple[list[MeiNeutral], dict[str, Decision]]:
    """The mei_alpha_v1 decisions of `symbols` this tick from the columns (see the module docstring):
    per group the NEUTRALs nobody wants features of, and by symbol the `Decision` (with features,
    as `decide_lean` gives it) of each BUY/SELL and of each warm `want_snapshot` symbol.

    The symbols are grouped by column set and decision config (`plan`: last tick's grouping when
    nothing changed), a symbol whose state does not sit on its key is left out (`ShardCore._decide`
    names the reason), then arrays per group; the anchor trend is looked up once per distinct open
    time (most symbols of a tick share it)."""
    names = list(symbols)
    held = list(map(states.get, names))
    groups = plan.get(names, held) if plan is not None else None
    if groups is None:
        groups = _plan(book, held)
        if plan is not None:
            plan.put(names, held, groups)
    decided: dict[str, Decision] = {}
    if not groups:
        return [], decided
    last_t, last_close = _times(held, _LAST_T), _times(held, _LAST_CLOSE)
    key = np.fromiter(map(batch.__getitem__, names), dtype=np.int64, count=len(names))
    with np.errstate(invalid="ignore"):
        on_key = (last_close >= key) & (last_t <= key)  # NaN (None): False
    neutral = []
    for pos, rows in groups:
        ok = on_key[pos]
        if not ok.all():
            pos, rows = pos[ok], rows[ok]
        if not len(pos):
            continue
        at = pos.tolist()
        neutral.append(_decide_group([names[i] for i in at], [held[i] for i in at], rows,
                                     last_t[pos].astype(np.int64), anchor, want_snapshot, decided))
    return [g for g in neutral if g.symbols], decided


def _decide_group(symbols: list[str], states: list[Any], idx: np.ndarray, t: np.ndarray, anchor: AnchorTrend,
                  want: Collection[str], decided: dict[str, Decision]) -> MeiNeutral:
    """One group's decisions: `idx` the symbols' rows in the shared columns, `t` their newest open times."""
    cols, cfg = states[0].ind.cols, states[0].cfg
    n = len(states)
    if n and t.min() == t.max():  # the usual tick: every symbol on the same bar
        btc = np.full(n, _BTC[anchor.bullish_at(int(t[0]))], dtype=np.int8)
    else:
        distinct, where = np.unique(t, return_inverse=True)
        trend = [_BTC[anchor.bullish_at(u)] for u in distinct.tolist()]
        btc = np.array(trend, dtype=np.int8)[where.reshape(n)]
    is_btc = np.zeros(n, dtype=bool)
    if _BTC_NAMES.intersection(symbols):  # set work at C speed; the positions only when there is one
        is_btc[[i for i, s in enumerate(symbols) if len(s) == 3 and s.upper() == "BTC"]] = True
    window = cols.window(idx)
    out = decide_columns(window, cfg, btc, is_btc)
    keep = out.signal == 0
    if want:
        wanted = [i for i, s in enumerate(symbols) if s in want] if set(want).intersection(symbols) else []
        if wanted:
            keep[wanted] = False
    if not keep.all():
        # BUY/SELL and wanted rows: their Decision with features; a warming-up row is left to decide_lean
        rest = np.flatnonzero(~keep & (window.bars >= MIN_BARS))
        if len(rest):
            for i, decision in zip(rest.tolist(), _with_features(window, out, rest, cfg), strict=True):
                decided[symbols[i]] = decision
    if keep.all():
        return MeiNeutral(symbols, states, t, btc, out.kind.astype(np.int8))
    keep = np.flatnonzero(keep)
    rows = keep.tolist()
    return MeiNeutral([symbols[i] for i in rows], [states[i] for i in rows], t[keep], btc[keep],
                      out.kind[keep].astype(np.int8))


_SIGNAL_OF = {1: Signal.BUY, -1: Signal.SELL, 0: Signal.NEUTRAL}
_CONFIDENCE_OF = {rank: conf for conf, rank in CONFIDENCE_RANK.items()}
_KIND_OF = {code: kind for kind, code in KIND_CODES.items()}
_CUR = ("Close", "ADX", "ATR", "RSI", "EMA_fast", "EMA_slow", "EMA_macro", "MACD_hist", "bb_width",
        "avg_bb_width")


def _with_features(window: ColumnWindow, out: MeiColumnDecisions, rows: np.ndarray, cfg: StrategyConfig,
                   ) -> list[Decision]:
    """`decide_lean(..., with_features=True)` of warm `rows` (bars >= MIN_BARS: 4 kept rows) from the
    columns: signal, confidence and entry kind from `decide_columns`, the features' values read
    from the same kept rows and combined by the same Python statements (`signals._decide`)."""
    col = window.col
    cur = [col(k)[rows].tolist() for k in _CUR]
    prev_adx, prev_close, prev_atr = (col(k, 1)[rows].tolist() for k in ("ADX", "Close", "ATR"))
    hist1, hist2, hist3 = (col("MACD_hist", back)[rows].tolist() for back in (1, 2, 3))
    codes = zip(out.signal[rows].tolist(), out.confidence[rows].tolist(), out.kind[rows].tolist(),
                strict=True)
    made = []
    for j, (sig, conf, kind) in enumerate(codes):
        close, adx, atr, rsi, ema_fast, ema_slow, ema_macro, hist, bbw, avg_bbw = (c[j] for c in cur)
        signal, confidence = _SIGNAL_OF[sig], _CONFIDENCE_OF[conf]
        features = SignalFeatures(
            close, adx, adx - prev_adx[j], atr, atr - prev_atr[j], rsi, ema_fast, ema_slow, ema_macro, hist,
            hist1[j], hist2[j], hist3[j], bbw, avg_bbw, _tp_mult(adx, cfg),
            _is_anomaly(close, prev_close[j], ema_fast, cfg),
        )  # fmt: skip
        made.append(Decision(signal, confidence, rank_score(signal, confidence, adx),
                             entry_kind=_KIND_OF[kind], features=features))
    return made


Neutral = tuple[MeiNeutral, list[Sequence[Any]]]  # a group and each symbol's shadow rows


def with_shadows(groups: Sequence[MeiNeutral], ready: Mapping[str, tuple[Any, Sequence[Any]]],
                 ) -> tuple[list[Neutral], dict[str, Decision]]:
    """Each group with its symbols' shadow rows from the book's `ready` (none without SDK rows), and
    the NEUTRAL `Decision` of the symbols whose SDK rows the book did not decide (they go the
    per-symbol way, `ShardCore._decide`, which evaluates those rows one by one)."""
    out: list[Neutral] = []
    slow: dict[str, Decision] = {}
    for group in groups:
        if group.states and list(map(_SDK, group.states)).count(None) == len(group.states):  # no SDK rows
            out.append((group, [()] * len(group.states)))
            continue
        variants: list[Sequence[Any]] = []
        keep: list[int] = []
        for i, (symbol, state) in enumerate(zip(group.symbols, group.states, strict=True)):
            book = ready.get(symbol) if state.sdk is not None else None
            if state.sdk is not None and book is None:
                slow[symbol] = group.decision(i)
                continue
            keep.append(i)
            variants.append(() if book is None else book[1])
        if len(keep) < len(group.symbols):
            at = np.array(keep, dtype=np.int64)
            group = MeiNeutral([group.symbols[i] for i in keep], [group.states[i] for i in keep], group.t[at],
                               group.btc[at], group.kind[at])
        if keep:
            out.append((group, variants))
    return out, slow
