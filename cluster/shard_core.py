"""One shard's logic without Ray: per-symbol incremental state, idempotent candle application,
checkpoint/restore through a `ShardStore`, and the strategy decision per requested symbol.

`SignalShard` (Ray) and `InProcessExecutor` both just hold a `ShardCore`, so every behaviour
below is testable without Ray.

Semantics (issue 4):
- Indicators are over the symbol's whole history. The state is checkpointed to the store (every
  `checkpoint_every` applied candles per symbol, staggered by symbol so the writes spread over
  ticks) and restored on construction; the candles after the checkpoint are replayed from the
  store on the next evaluate, so a restarted shard decides exactly like an uninterrupted one.
- Continuity proof: every read starts AT the last applied open time (not after it). If that
  candle is no longer in the store (trimmed by retention while the shard was away), the exact
  history is lost: the symbol is rebuilt from what is available and flagged `history_gap`
  (records and checkpoint carry it), never silently diverged.
- `evaluate({symbol: candle_key})`: key = close time T of the newest closed candle the driver
  saw (RedisLayout's close key). Candles with open time <= key are applied, each at most once
  (state keeps the last open time). The decision is made when the newest applied candle
  contains the key (t <= key <= close_ms); otherwise the record says why not.
- Corrected candles (`cluster.applied_tail`): reads start a few applied candles back; if the
  sidecar rewrote one, the symbol is rebuilt from the store (rehydrated["corrected"]).
- Steady ticks (close mode): symbols the closed-bar journal shows exactly one new candle for
  advance from it with no candle read (`cluster.shard_journal`, stores with `read_journal`); of
  the rest, those whose read holds exactly their unchanged tail plus one new candle within the
  key are checked and applied in bulk (`cluster.shard_fast`, stores with `read_batch`), without
  `Candle` objects; every other symbol takes the general path described here.
- Open mode (`ShardSettings.signal_on_candle_close=False`, AI_QUANT_SIGNAL_ON_CANDLE_CLOSE=0):
  key = open time t of the newest (forming) candle (RedisLayout's open key), as the reference
  engine decides on the un-trimmed frame whose last row is still forming. Closed candles with
  t < key are applied to the state; the bar at t = key (the forming candle from the store, or
  the closed one if it closed meanwhile) is applied to a throw-away copy for the decision only,
  so state and checkpoints only ever hold closed candles.
- The BTC anchor trend is tracked by every shard (`cluster.anchor`), checkpointed per shard.
- Strategies (issue 11): the YAML's `strategies:` plan (`ConfigSource.plan`) picks each symbol's
  primary and shadow variants. A mei_alpha_v1 primary runs the legacy fast path; SDK strategies
  run in `cluster.shard_sdk.SdkRows` beside it (one indicator state per declaration set), and
  their states ride in the symbol's checkpoint (`sdk`, keyed by the declarations' fingerprint).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from cluster.anchor import AnchorTrend
from cluster.book_decide import enrolled_at_key, split_by_symbol
from cluster.columnar_book import ColumnBook
from cluster.decision_block import DecisionBlock, assemble
from cluster.mei_rows import MeiNeutral, MeiPlan, MeiRow, Neutral, mei_decide, row_states, with_shadows
from cluster.metrics import ShardMetrics
from cluster.records import ShardDecision, ShardStatus, VariantDecision, make_decision, no_signal
from cluster.shard_fast import advance_fast
from cluster.shard_journal import JournalCursor
from cluster.shard_reads import BatchReads, add_anchor, advance_anchor, chunk_reads, read_store, resume_view
from cluster.shard_sdk import SdkRows, run_row
from cluster.shard_settings import ConfigSource, ShardSettings
from cluster.shard_state import _SymbolState, checkpoints_due
from cluster.shard_store import CandleRead, ShardStore
from strategies.candle import Candle
from strategies.config import StrategyConfig
from strategies.enums import EntryKind
from strategies.sdk.plan import StrategyPlan
from strategies.signals import Decision, decide_lean

log = logging.getLogger(__name__)

Ready = Mapping[str, tuple[VariantDecision | None, Sequence[VariantDecision]]]  # the book's, by symbol
MeiReady = Mapping[str, Decision]  # mei_alpha_v1 primaries the columns decided, by symbol


def _stagger(symbol: str, every: int) -> int:
    return int.from_bytes(hashlib.blake2b(symbol.encode(), digest_size=4).digest(), "big") % every


_FAST_VIEW: tuple[list[Candle], bool] = ([], False)  # fast-path symbols: close mode reads no candle list


class ShardCore:
    """The per-shard engine: holds state for the symbols it is asked about, decides per tick."""

    def __init__(
        self,
        shard_index: int,
        store: ShardStore,
        settings: ShardSettings,
        configs: ConfigSource | Callable[[str], StrategyConfig],
        *,
        symbols: Iterable[str] = (),
        metrics: ShardMetrics | None = None,
    ) -> None:
        """Restore the checkpoints of `symbols` and of the anchor trend (one store round trip)."""
        self.index = shard_index
        self._store = store
        self._settings = settings
        self._resolve = configs.resolve if isinstance(configs, ConfigSource) else configs
        self._plan = configs.plan if isinstance(configs, ConfigSource) else StrategyPlan()
        self._metrics = metrics or ShardMetrics()
        self._states: dict[str, _SymbolState] = {}
        self._anchor = AnchorTrend()
        self._anchor_restored = False
        self.rehydrated = {"checkpoint": 0, "stale_checkpoint": 0, "gap": 0, "rebuild": 0, "corrected": 0}
        self.candles_applied = 0
        self.fast_applied = 0  # of candles_applied, by the steady-state fast path (cluster.shard_fast)
        self.journal = JournalCursor()  # the closed-bar journal path (cluster.shard_journal); .applied
        self.evaluate_ms: deque[float] = deque(maxlen=256)  # recent evaluate durations, for health/bench
        self.checkpoint_ms: deque[tuple[float, int]] = deque(maxlen=256)  # per evaluate: (ms, checkpoints)
        self._forming: dict[str, Candle] = {}  # open mode: forming bars read by the current evaluate
        self._book = ColumnBook() if settings.columnar else None
        self._neutral: list[Neutral] = []  # this evaluate's columnar NEUTRAL rows (`_block`)
        self._mei_plan = MeiPlan()  # last tick's grouping of the columns' mei_alpha_v1 symbols
        self._restore([*dict.fromkeys(symbols)], with_anchor=True)

    # ------------------------------------------------------------------ checkpoints
    @property
    def anchor_name(self) -> str:
        """Checkpoint name of this shard's anchor trend (one per shard, never shared)."""
        return f"{self._settings.anchor_symbol}#anchor.{self.index}"

    def _restore(self, symbols: list[str], *, with_anchor: bool) -> bool:
        """Load checkpoints; False (nothing changed) if the store is unavailable, retried later."""
        names = symbols + ([self.anchor_name] if with_anchor else [])
        try:
            saved = self._store.load_checkpoints(names) if names else {}
        except Exception as exc:  # store down: the next evaluate retries; never a fresh restart
            log.warning("shard %d: cannot load %d checkpoints (%s); will retry", self.index, len(names), exc)
            return False
        for symbol in symbols:
            self._restore_symbol(symbol, saved.get(symbol))
        if with_anchor:
            self._anchor_restored = True
        if with_anchor and self.anchor_name in saved:
            try:
                self._anchor = AnchorTrend.from_state(saved[self.anchor_name])
            except (KeyError, TypeError, ValueError):  # damaged: rebuild the anchor from the store
                log.warning("shard %d: anchor checkpoint unusable; rebuilding", self.index)
        self._metrics.rehydrates(self.index, "checkpoint", sum(1 for s in symbols if s in saved))
        self._metrics.symbols(self.index, len(self._states))
        return True

    def _restore_symbol(self, symbol: str, state: Mapping[str, Any] | None) -> None:
        """Hold `symbol`'s state: its checkpoint if it fits the config and strategies, else a fresh one.

        A config or a strategy that does not build costs that symbol only (no state: STRATEGY_ERROR).
        """
        try:
            cfg = self._resolve(symbol)
            sdk = SdkRows.build(self._plan, symbol, cfg)
        except Exception:
            log.exception("shard %d symbol %s: config or strategies do not build", self.index, symbol)
            return
        phase = _stagger(symbol, self._settings.checkpoint_every)
        restored = _SymbolState.restore(cfg, state, sdk) if state is not None else None
        if restored is not None:
            self.rehydrated["checkpoint"] += 1
            restored.phase, restored.ckpt_bars = phase, restored.bars
            self._hold(symbol, restored)
            return
        if state is not None:
            self.rehydrated["stale_checkpoint"] += 1
            if sdk is not None:  # a partly restored SDK state is never reused
                sdk = SdkRows.build(self._plan, symbol, cfg)
        self._hold(symbol, _SymbolState(cfg, phase, sdk))

    def _hold(self, symbol: str, state: _SymbolState) -> _SymbolState:
        """Keep `state` for `symbol` (its SDK states moved into the book's columns), replacing any old one."""
        old = self._states.get(symbol)
        if old is not None and old is not state:
            old.release()
        if self._book is not None:
            state.attach(self._book, symbol)
        self._states[symbol] = state
        return state

    def _forget(self, symbol: str) -> None:
        state = self._states.pop(symbol, None)
        if state is not None:
            try:
                state.release()
            except Exception:  # a broken row: its columns are abandoned, never reused
                log.exception("shard %d symbol %s: releasing columnar rows failed", self.index, symbol)

    def checkpoint(self, symbols: Iterable[str] | None = None) -> int:
        """Write the checkpoints of `symbols` (default: all) and the anchor now; return how many.

        Raises whatever the store raises; nothing is marked saved then, so it is retried.
        """
        chosen = [s for s in (self._states if symbols is None else symbols)
                  if s in self._states and self._states[s].last_t is not None]
        rows = [s for s in chosen if type(self._states[s].ind) is MeiRow]  # packed in bulk
        inds = dict(zip(rows, row_states([self._states[s].ind for s in rows]), strict=True))
        states = {s: self._states[s].to_state(inds.get(s)) for s in chosen}
        if self._anchor_restored:  # never overwrite a checkpoint we could not read
            states[self.anchor_name] = self._anchor.to_state()
        self._store.save_checkpoints(states)
        for s in states:
            if s in self._states:
                self._states[s].ckpt_bars = self._states[s].bars
        return len(states)

    # ------------------------------------------------------------------ evaluate
    def evaluate(self, batch: Mapping[str, int], want_snapshot: Collection[str] = ()) -> list[ShardDecision]:
        """`evaluate_block` as one `ShardDecision` per symbol of `batch`, in order (tests, replays)."""
        return self.evaluate_block(batch, want_snapshot).records()

    def evaluate_block(self, batch: Mapping[str, int], want_snapshot: Collection[str] = ()) -> DecisionBlock:
        """Bring each symbol to its candle key, decide, checkpoint what is due; the records as columns.

        One pipelined store read per call in steady state; symbols with no state yet (first
        tick, new symbols, rebuilds) are read `cold_chunk` at a time so a catch-up over long
        histories never holds every symbol's candles at once. The typed indicator features ride
        along only for BUY/SELL records and for `want_snapshot` (the driver's open positions,
        whose exits need them), keeping records small.
        """
        started = time.perf_counter()
        applied_before = self.candles_applied
        if not self._anchor_restored and not self._restore([], with_anchor=True):
            return DecisionBlock.failed(batch, ShardStatus.STORE_UNAVAILABLE, self.index)
        self._neutral = []
        unavailable: set[str] = set()
        new = [s for s in batch if s not in self._states]
        if new and not self._restore(new, with_anchor=False):
            unavailable.update(new)
        self._forming = self._read_forming(batch)
        results = self._read_and_decide(batch, want_snapshot, unavailable)
        block = self._block(batch, results, want_snapshot, unavailable)
        due = checkpoints_due(self._states, batch, self._settings.checkpoint_every)
        ckpt_started = time.perf_counter()
        if due:
            try:
                self.checkpoint(due)
            except Exception as exc:  # decisions stand; the checkpoint is retried on a later tick
                log.warning("shard %d: checkpoint of %d symbols failed (%s)", self.index, len(due), exc)
        self.checkpoint_ms.append(((time.perf_counter() - ckpt_started) * 1000.0, len(due)))
        self._metrics.candles_applied(self.index, self.candles_applied - applied_before)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        self.evaluate_ms.append(elapsed_ms)
        self._metrics.evaluate_ms(self.index, elapsed_ms)
        return block

    def _read_and_decide(
        self, batch: Mapping[str, int], want_snapshot: Collection[str], unavailable: set[str]
    ) -> dict[str, ShardDecision]:
        """Read and apply what each behind symbol misses (chunked), then decide; fills `unavailable`."""
        get, lag = self._states.get, 0 if self._settings.signal_on_candle_close else 1  # _through
        behind = {symbol: state for symbol, key in batch.items() if (state := get(symbol)) is not None
                  and ((last := state.last_close_ms) is None or last < key - lag)}
        results: dict[str, ShardDecision] = {}
        journaled = self._advance_journal(behind, batch, results)  # before any candle read
        reads = {symbol: state.recent.read_from(state.last_t) for symbol, state in behind.items()}
        anchor, newest = self._settings.anchor_symbol, self._through(max(batch.values())) if batch else None
        self.journal.advance_anchor(self._anchor, newest)  # steady: its new candle from the journal, no read
        for index, chunk in enumerate(chunk_reads(reads, self._settings.cold_chunk)):
            if unavailable.intersection(chunk):  # an earlier read failed: don't hammer the store
                continue
            request = dict(chunk)
            with_anchor = not index and newest is not None and add_anchor(self._anchor, anchor, request,
                                                                          newest)
            try:
                got = read_store(self._store, request)
            except Exception as exc:  # store down: these symbols fail closed this tick, retry next
                log.warning("shard %d: candle read failed (%s); %d symbols without a decision",
                            self.index, exc, len(reads))
                unavailable.update(reads)
                continue
            fast = self._advance_fast(got, request, batch, results)
            if with_anchor and newest is not None:
                view = resume_view(got[anchor], request[anchor], self._anchor.last_t)
                if view[1]:
                    log.warning("shard %d: anchor %s history gap; rebuilding from available candles",
                                self.index, anchor)
                self._anchor = advance_anchor(self._anchor, view, newest)
                self.journal.mark_anchor(self._anchor, view[0])
            rest = [s for s in chunk if s not in fast and s not in results]
            views = self._flush(self._advance_chunk(rest, got, request, batch, results, unavailable), batch,
                                results)
            views.update(fast)
            self.journal.mark(self._states, views)
            if not index:
                views.update(journaled)
            ready, mei, decided = self._decide_columns(views, batch, want_snapshot)
            self._decide_views(views, batch, want_snapshot, results, ready, mei, decided)
        return results

    def _advance_journal(self, reads: dict[str, Any], batch: Mapping[str, int],
                         results: dict[str, ShardDecision]) -> dict[str, Any]:
        """Apply the steady symbols' new candle from the closed-bar journal (`cluster.shard_journal`;
        close mode only); they leave `reads` (behind symbols' states). Their views; the rest are read."""
        if not self._settings.signal_on_candle_close:
            return {}
        done = self.journal.advance(self._states, self._store, reads, batch, self._settings.anchor_symbol)
        for symbol in done.refused:
            self._forget(symbol)
            results[symbol] = no_signal(symbol, batch[symbol], ShardStatus.STRATEGY_ERROR, self.index)
        for symbol in (*done.applied, *done.refused):
            del reads[symbol]
        self.candles_applied += len(done.applied)
        self.fast_applied += len(done.applied)
        return dict.fromkeys(done.applied, _FAST_VIEW)

    def _advance_fast(self, got: Mapping[str, CandleRead], request: Mapping[str, int | None],
                      batch: Mapping[str, int], results: dict[str, ShardDecision]) -> dict[str, Any]:
        """Apply the steady-state symbols' new candle in bulk (`cluster.shard_fast`; close mode only:
        open mode reads the views' candles); their views. The rest take the general path."""
        if not self._settings.signal_on_candle_close or not isinstance(got, BatchReads):
            return {}
        try:
            done = advance_fast(self._states, got.batch, request, lambda s: self._through(batch[s]))
        except Exception:  # nothing was applied: every symbol takes the general path
            log.exception("shard %d: fast path failed; reading every symbol the general way", self.index)
            return {}
        for symbol in done.refused:
            self._forget(symbol)
            results[symbol] = no_signal(symbol, batch[symbol], ShardStatus.STRATEGY_ERROR, self.index)
        self.candles_applied += len(done.applied)
        self.fast_applied += len(done.applied)
        return dict.fromkeys(done.applied, _FAST_VIEW)

    def _advance_chunk(self, chunk: Iterable[str], got: Mapping[str, CandleRead],
                       request: Mapping[str, int | None], batch: Mapping[str, int],
                       results: dict[str, ShardDecision], unavailable: set[str]) -> dict[str, Any]:
        """Apply each read symbol's new candles; return their views (failures go to `results`)."""
        views = {}
        for symbol in chunk:
            view = self._view(symbol, got[symbol], request[symbol])
            if view is None:
                unavailable.add(symbol)
            elif (failed := self._advance(symbol, batch[symbol], view)) is not None:
                results[symbol] = failed
            else:
                views[symbol] = view
        return views

    def _view(self, symbol: str, read: CandleRead, requested: int | None) -> tuple[list[Candle], bool] | None:
        """The candles `symbol` has not applied; all stored ones (state rebuilt) if the store rewrote
        one it applied; None if that rebuild's read fails (no decision; the next read retries)."""
        state = self._states[symbol]
        changed = state.recent.rewritten(read.candles, state.last_t)
        if changed is None:
            return resume_view(read, requested, state.last_t)
        log.warning("shard %d symbol %s: applied candle corrected in the store (now %s); rebuilding",
                    self.index, symbol, changed)
        try:
            everything = self._store.read_since({symbol: None})[symbol]
        except Exception as exc:
            log.warning("shard %d symbol %s: rebuild read failed (%s)", self.index, symbol, exc)
            return None
        fresh = _SymbolState(state.cfg, state.phase, SdkRows.build(self._plan, symbol, state.cfg))
        fresh.history_gap = state.history_gap
        self._hold(symbol, fresh)
        self.rehydrated["corrected"] += 1
        self._metrics.rehydrates(self.index, "corrected", 1)
        return list(everything.candles), False

    def _flush(self, views: dict[str, Any], batch: Mapping[str, int], results: dict[str, ShardDecision],
               ) -> dict[str, Any]:
        """Apply the staged columnar candles; symbols whose rows refused one fail (STRATEGY_ERROR)."""
        if self._book is None:
            return views
        try:
            failed = self._book.flush()
        except Exception:  # a bug in the columns: every staged symbol rebuilds from the store
            log.exception("shard %d: columnar flush failed; %d symbols dropped for rehydrate",
                          self.index, len(views))
            failed = None
        kept = {}
        for symbol, view in views.items():
            state = self._states.get(symbol)
            slots = state.slots() if state is not None else []
            if (failed is None and slots) or any(slot in failed for slot in slots):
                self._forget(symbol)
                results[symbol] = no_signal(symbol, batch[symbol], ShardStatus.STRATEGY_ERROR, self.index)
            else:
                kept[symbol] = view
        return kept

    def _decide_views(self, views: Mapping[str, Any], batch: Mapping[str, int], want: Collection[str],
                      results: dict[str, ShardDecision], ready: Ready, neutral: list[MeiNeutral],
                      decided: MeiReady) -> None:
        """Decide the caught-up `views`: the columns' NEUTRAL mei_alpha_v1 rows to `self._neutral` (as
        arrays in `_block`), the rest to `results` per symbol (`decided`: the columns' other Decisions)."""
        fast, mei = with_shadows(neutral, ready)
        mei.update(decided)
        self._neutral.extend(fast)
        done = set().union(*(group.symbols for group, _ in fast))
        for symbol, view in views.items():
            if symbol not in done:
                results[symbol] = self._evaluate_symbol(symbol, batch[symbol], view, symbol in want, ready,
                                                        advanced=True, mei=mei)

    def _decide_columns(self, views: Mapping[str, Any], batch: Mapping[str, int], want: Collection[str],
                        ) -> tuple[Ready, list[MeiNeutral], MeiReady]:
        """The book's array decisions of every enrolled symbol about to decide (close mode), by symbol;
        the mei_alpha_v1 primaries the columns decided NEUTRAL, and the other decisions they made
        (`cluster.mei_rows.mei_decide`)."""
        if self._book is None or not self._settings.signal_on_candle_close:
            return {}, [], {}
        neutral: list[MeiNeutral] = []
        decided: MeiReady = {}
        try:  # the columns' mei_alpha_v1 primaries
            neutral, decided = mei_decide(self._book, self._states, views, batch, self._anchor, want,
                                          self._mei_plan)
        except Exception:  # per symbol below (decide_lean), exactly as without columns
            log.exception("shard %d: columnar mei_alpha_v1 decisions failed; deciding per symbol", self.index)
        book = self._book.decisions
        btc = enrolled_at_key(self._states, views, batch, self._anchor) if book else {}
        if not btc:
            return {}, neutral, decided
        try:
            return split_by_symbol(book.decide(btc, run_row), book, list(btc)), neutral, decided
        except Exception:  # per row below (each row fenced on its own)
            log.exception("shard %d: columnar decisions failed; deciding per row", self.index)
        return {}, neutral, decided

    def _block(self, batch: Mapping[str, int], results: Mapping[str, ShardDecision], want: Collection[str],
               unavailable: set[str]) -> DecisionBlock:
        """The tick's records as one `DecisionBlock` in batch order (`cluster.decision_block.assemble`)."""
        neutral, self._neutral = self._neutral, []

        def record(symbol: str, key: int) -> ShardDecision:
            got = results.get(symbol)
            if got is None and symbol in unavailable:
                return no_signal(symbol, key, ShardStatus.STORE_UNAVAILABLE, self.index)
            return got or self._evaluate_symbol(symbol, key, None, symbol in want)

        return assemble(batch, neutral, record, self.index)

    def _catch_up(self, symbol: str, view: tuple[list[Candle], bool], key: int) -> _SymbolState:
        state = self._states[symbol]
        fresh, gap = view
        if gap:
            log.warning("shard %d symbol %s: state at t=%s is older than the stored history "
                        "(first t=%d); rebuilding from available candles, flagged history_gap",
                        self.index, symbol, state.last_t, fresh[0].t)
            state = _SymbolState(state.cfg, state.phase, SdkRows.build(self._plan, symbol, state.cfg))
            state.history_gap = True
            self._hold(symbol, state)
            self.rehydrated["gap"] += 1
            self._metrics.rehydrates(self.index, "gap", 1)
        upto = len(fresh)
        if upto and fresh[-1].t > key:
            upto = next(i for i, c in enumerate(fresh) if c.t > key)
        state.apply_many(fresh[:upto] if upto < len(fresh) else fresh)
        self.candles_applied += upto
        return state

    def _advance(self, symbol: str, key: int, view: tuple[list[Candle], bool]) -> ShardDecision | None:
        """Catch the symbol up to its key (columnar rows staged); None, or the STRATEGY_ERROR record."""
        try:
            self._catch_up(symbol, view, self._through(key))
            return None
        except Exception:  # one bad symbol must not cost the others their decisions
            log.exception("shard %d symbol %s: catch-up failed at key %d; state dropped for rehydrate",
                          self.index, symbol, key)
            self._forget(symbol)
            return no_signal(symbol, key, ShardStatus.STRATEGY_ERROR, self.index)

    def _evaluate_symbol(
        self, symbol: str, key: int, view: tuple[list[Candle], bool] | None, with_snapshot: bool,
        ready: Ready | None = None, *, advanced: bool = False, mei: MeiReady | None = None,
    ) -> ShardDecision:
        try:
            through = self._through(key)
            state = self._states[symbol]
            if view is not None and not advanced:
                state = self._catch_up(symbol, view, through)
            if through != key:
                state = self._with_forming(symbol, key, state, view)
            return self._decide(symbol, key, state, with_snapshot, ready, mei)
        except Exception:  # one bad symbol must not cost the others their decisions
            log.exception("shard %d symbol %s: evaluate failed at key %d; state dropped for rehydrate",
                          self.index, symbol, key)
            self._forget(symbol)
            return no_signal(symbol, key, ShardStatus.STRATEGY_ERROR, self.index)

    # ------------------------------------------------------------------ open mode (module docstring)
    def _through(self, key: int) -> int:
        """Newest open time applied to state for `key`: the key itself, or (open mode) before it."""
        return key if self._settings.signal_on_candle_close else key - 1

    def _read_forming(self, batch: Mapping[str, int]) -> dict[str, Candle]:
        if self._settings.signal_on_candle_close or not batch:
            return {}
        try:
            return self._store.read_forming(list(batch))
        except Exception as exc:  # store down: the closed read fails too; no bar, no decision
            log.warning("shard %d: forming read failed (%s)", self.index, exc)
            return {}

    def _with_forming(
        self, symbol: str, key: int, state: _SymbolState, view: tuple[list[Candle], bool] | None
    ) -> _SymbolState:
        """A copy of `state` with the bar opened at `key` applied; `state` itself if that cannot be.

        The bar is the closed candle at `key` when the read brought one (it closed meanwhile),
        else the forming candle at `key`. Without it, or with the state not exactly one bar
        behind the key, `_decide` on the untouched state names the reason (missing/behind).
        """
        if state.last_close_ms is None or state.last_close_ms < key - 1 or (state.last_t or 0) >= key:
            return state
        bar = next((c for c in view[0] if c.t == key), None) if view is not None else None
        if bar is None:
            forming = self._forming.get(symbol)
            bar = forming if forming is not None and forming.t == key else None
        if bar is None:
            return state
        peek = state.peek()
        peek.apply(bar)
        return peek

    def _decide(self, symbol: str, key: int, state: _SymbolState, with_snapshot: bool,
                ready: Ready | None = None, mei: MeiReady | None = None) -> ShardDecision:
        last_t, last_close_ms = state.last_t, state.last_close_ms
        status = None
        if last_t is None or last_close_ms is None:
            status = ShardStatus.NO_HISTORY
        elif last_close_ms < key:
            status = ShardStatus.MISSING_CANDLE
        elif last_t > key:
            status = ShardStatus.KEY_BEHIND
        if status is not None:
            return ShardDecision(symbol=symbol, candle_key=key, status=status, t=last_t, shard=self.index,
                                 history_gap=state.history_gap)
        btc_bullish = self._anchor.bullish_at(last_t)
        sdk = state.sdk
        book = None if ready is None else ready.get(symbol)
        primary, variants = sdk.decide(symbol, btc_bullish, book) if sdk is not None else (None, ())
        ind = state.ind
        if ind is None:  # an SDK primary trades the symbol; a fault is NEUTRAL with the fault on record
            assert primary is not None
            return make_decision(symbol, key, ShardStatus.OK, primary.signal, primary.confidence,
                                 primary.score, last_t, btc_bullish, state.history_gap, self.index,
                                 EntryKind.NONE, None, variants, primary)
        # the columns' NEUTRAL (cluster.mei_rows), else per row: rows_view is read-only
        decision = mei.get(symbol) if mei else None
        if decision is None:
            decision = decide_lean(ind.rows_view(), ind.bars, state.cfg, btc_bullish, symbol=symbol,
                                   with_features=with_snapshot)
        return make_decision(symbol, key, ShardStatus.OK, decision.signal, decision.confidence,
                             float(decision.score), last_t, btc_bullish, state.history_gap, self.index,
                             decision.entry_kind, decision.features, variants)

    def set_configs(self, configs: ConfigSource | Callable[[str], StrategyConfig]) -> int:
        """Swap in reloaded strategy configs; return how many symbols must rebuild their state.

        A symbol whose indicator windows are unchanged keeps its state (only the decision config
        changes). One whose windows changed restarts from the candles in the store on the next
        evaluate (counted in rehydrated["rebuild"]); its old checkpoint no longer matches and is
        overwritten at the next checkpoint.
        """
        self._resolve = configs.resolve if isinstance(configs, ConfigSource) else configs
        self._plan = configs.plan if isinstance(configs, ConfigSource) else StrategyPlan()
        rebuilt = 0
        for symbol, state in list(self._states.items()):
            try:
                cfg = self._resolve(symbol)
                sdk = SdkRows.build(self._plan, symbol, cfg)
            except Exception:  # the symbol fails closed (STRATEGY_ERROR) until its config resolves
                log.exception("shard %d symbol %s: reloaded config does not resolve", self.index, symbol)
                self._forget(symbol)
                continue
            fresh = _SymbolState(cfg, state.phase, sdk)
            if fresh.fingerprint == state.fingerprint and (sdk is None or sdk.restore(state.sdk.to_state())):
                state.release()
                state.cfg, state.sdk = cfg, sdk  # same declarations: keep the indicator states
                self._hold(symbol, state)
                continue
            self._hold(symbol, fresh)
            rebuilt += 1
        self.rehydrated["rebuild"] += rebuilt
        self._metrics.rehydrates(self.index, "rebuild", rebuilt)
        return rebuilt

    # ------------------------------------------------------------------ introspection
    def symbols(self) -> list[str]:
        """Return the symbols this shard holds state for."""
        return sorted(self._states)

    def progress(self, symbols: Iterable[str]) -> dict[str, tuple[int | None, int]]:
        """Return {symbol: (last applied open time, bars applied)} for symbols held here."""
        return {s: (self._states[s].last_t, self._states[s].bars) for s in symbols if s in self._states}

    def drop(self, symbols: Iterable[str]) -> None:
        """Forget symbols that moved to another shard (after a final checkpoint by the caller)."""
        for symbol in symbols:
            self._forget(symbol)
        self._metrics.symbols(self.index, len(self._states))

    def stats(self) -> dict[str, Any]:
        """Return counters for health checks and the benchmark (plain values)."""
        return {"shard": self.index, "symbols": len(self._states), "candles_applied": self.candles_applied,
                "fast_applied": self.fast_applied,
                "rehydrated": dict(self.rehydrated), "anchor_t": self._anchor.last_t,
                "columnar_rows": self._book.rows() if self._book is not None else 0,
                "evaluate_ms_recent": list(self.evaluate_ms),
                "checkpoint_ms_recent": list(self.checkpoint_ms)}  # (ms, symbols checkpointed) per evaluate
