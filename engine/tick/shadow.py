"""The live shadow fleet: every shadow variant trades its own paper book, never the venue.

Each tick the engine hands the fleet the shards' decisions (each `ShardDecision.variants` holds
one `VariantDecision` per shadow variant of that symbol, columnar: `cluster.records.VariantRows`)
and the mids it already fetched. The fleet reads all rows of the tick as one `VariantColumns` and
filters them with array operations: a record object is built only for a row that opens, closes
or faults. For every (variant, symbol), at most one action per tick:

1. open position: close it when the variant's `ExitRules` say so at the mid
   (`strategies.sdk.exits.check_rules_exit`: stop, trailing stop, take-profit; the trailing stop
   is persisted whatever the action) or when this tick's decision of that variant flags an
   indicator exit for the position's side (`exit_long` / `exit_short`). Price rules run every
   tick a mid exists, indicator flags only on a tick that decided a new bar;
2. flat: open on a BUY (long) or SELL (short) signal, unless the market is blind this tick
   (the primary opens nothing then either);
3. hourly funding on open positions from the engine's funding source (the rates the engine last
   polled), at every whole UTC hour crossed, exactly as the paper broker charges it.

Fills, fees and funding use the paper fill model (`engine.execution.fill_model`, the daemon's
`FillModelParams`): BBO when fresh (and `use_bbo`), else the mid, then adverse taker slippage; the
fee rate on the notional of every OPEN and CLOSE. Sizing is fixed (`ShadowSettings.notional_usd`,
`AI_QUANT_SHADOW_NOTIONAL_USD`, default 1,000 USD at the fill price, no leverage, no adds, no
pyramiding, no entry gates): variants are compared on the same stake, independent of any account.
A variant needs a mid to open or close (no mid, no fill, as the primary's zero-price gate).

Never an order: the fleet holds no broker, OMS or venue client, only its `ShadowStore`, so it
cannot reach the exchange in any mode. A faulted variant (its decision carries `fault`, or its
exit rules cannot be found) is skipped and logged once per (variant, symbol) until it decides
cleanly again. Every change of a tick is one DB transaction; the in-memory books follow only
after the commit, and start from the DB, so open shadow positions survive a restart.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from cluster.records import NO_FAULT, ShardDecision, VariantColumns, VariantDecision, gather_rows
from engine.config.env import env_float
from engine.enums import LedgerKind
from engine.execution import fill_model
from engine.execution.fill_model import FillModelParams
from engine.execution.trade_store import TradeStore
from engine.marketdata.hub import PriceQuote
from engine.tick.shadow_store import PositionChange, ShadowFill, ShadowPosition, ShadowStore
from engine.tick.types import market_quote, wall_ms
from strategies.enums import ExitAction, PositionSide, Signal
from strategies.exits import PositionState
from strategies.sdk.exits import check_rules_exit
from strategies.sdk.strategy import ExitRules

log = logging.getLogger(__name__)

INDICATOR_EXIT = "indicator_exit"  # shadow_trades.reason of a close from the strategy's indicator exit
DEFAULT_NOTIONAL_USD = 1_000.0
_SIDE = {Signal.BUY: PositionSide.LONG, Signal.SELL: PositionSide.SHORT}


@dataclass(frozen=True, slots=True, kw_only=True)
class ShadowSettings:
    """How shadow books fill: fixed notional per position, the paper fill model, funding on/off."""

    notional_usd: float = DEFAULT_NOTIONAL_USD
    fill: FillModelParams = field(default_factory=FillModelParams)
    funding_enabled: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.notional_usd) and self.notional_usd > 0):
            raise ValueError(f"ShadowSettings.notional_usd must be finite and > 0, got {self.notional_usd!r}")

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], fill: FillModelParams, *, funding_enabled: bool
    ) -> ShadowSettings:
        """`AI_QUANT_SHADOW_NOTIONAL_USD` (1..10,000,000; ConfigError, exit 2, otherwise)."""
        notional = env_float("AI_QUANT_SHADOW_NOTIONAL_USD", DEFAULT_NOTIONAL_USD, env, lo=1.0, hi=1e7)
        return cls(notional_usd=notional, fill=fill, funding_enabled=funding_enabled)


@dataclass(frozen=True, slots=True)
class ShadowTickReport:
    """What the fleet did in one tick (for the log line and the bench)."""

    opened: int
    closed: int
    funding_rows: int
    skipped: int
    open_positions: int
    elapsed_ms: float


@dataclass
class _Batch:
    """One tick's pending changes: written together, applied to memory after the commit."""

    positions: dict[tuple[str, str], ShadowPosition]
    now_ms: int
    fills: list[ShadowFill] = field(default_factory=list)
    changes: dict[tuple[str, str], PositionChange] = field(default_factory=dict)
    rules: dict[str, ExitRules] = field(default_factory=dict)  # rules_for, asked once per variant per tick
    touched: set[tuple[str, str]] = field(default_factory=set)
    opened: int = 0
    closed: int = 0
    funding_rows: int = 0
    skipped: int = 0

    def set(self, key: tuple[str, str], position: ShadowPosition | None) -> None:
        if position is None:
            self.positions.pop(key, None)
        else:
            self.positions[key] = position
        self.changes[key] = PositionChange(key[0], key[1], position)


def open_fleet(
    store: TradeStore,
    rules_for: Callable[[str], ExitRules],
    fill: FillModelParams,
    env: Mapping[str, str],
    *,
    funding_enabled: bool,
    mids: Callable[[Sequence[str]], Mapping[str, PriceQuote]] | None = None,
    recorded_ms: Callable[[], int] = wall_ms,
) -> ShadowFleet:
    """The node's wiring, in every mode: the books in the node's trading DB (the TradeStore's
    connection and mode), priced by the paper fill model `fill` (the daemon's `paper.fill_params()`,
    also in live: the shadows are paper books there too), resumed from the DB.

    Raises ConfigError (exit 2) for a bad `AI_QUANT_SHADOW_NOTIONAL_USD`."""
    settings = ShadowSettings.from_env(env, fill, funding_enabled=funding_enabled)
    return ShadowFleet(ShadowStore(store.connection, store.mode), rules_for, settings, mids=mids,
                       recorded_ms=recorded_ms)  # fmt: skip


class ShadowFleet:
    """Paper books of every shadow variant; see the module docstring. Not thread-safe (tick loop)."""

    def __init__(
        self,
        store: ShadowStore,
        rules_for: Callable[[str], ExitRules],
        settings: ShadowSettings,
        *,
        mids: Callable[[Sequence[str]], Mapping[str, PriceQuote]] | None = None,
        recorded_ms: Callable[[], int] = wall_ms,
    ) -> None:
        """`rules_for(variant)` returns the variant's ExitRules (raises for an unknown variant; asked
        once per variant per tick, so a hot reload's new rules apply from the next tick);
        `mids(symbols)` fetches quotes the engine did not already have this tick."""
        self._store = store
        self._rules_for = rules_for
        self._settings = settings
        self._mids = mids
        self._recorded_ms = recorded_ms
        self._positions = store.load_positions()
        self._faulted: set[tuple[str, str]] = set()
        self.last_report: ShadowTickReport | None = None  # the newest tick's, for metrics and the bench
        if self._positions:
            log.info("shadow fleet resumed %d open positions from the trading DB", len(self._positions))

    @property
    def positions(self) -> Mapping[tuple[str, str], ShadowPosition]:
        """Open shadow positions by (variant, symbol)."""
        return dict(self._positions)

    def on_tick(
        self,
        decisions: Mapping[str, ShardDecision],
        quotes: Mapping[str, PriceQuote],
        now_ms: int,
        *,
        funding_rates: Mapping[str, float] | None = None,
        entries: bool = True,
    ) -> ShadowTickReport:
        """Exits, entries (when `entries`), funding (when rates are given and funding is on)."""
        started = time.perf_counter()
        batch = _Batch(positions=dict(self._positions), now_ms=now_ms)
        cols = gather_rows(decisions.values())  # every variant row of the tick, columnar (no objects)
        quotes = self._quotes(cols, quotes)
        index = cols.index_of(self._positions.keys() | self._faulted)  # the rows that need a lookup
        for key in sorted(self._positions):
            row = index.get(key)
            decision = None if row is None else cols.decision(row)
            self._guarded(batch, key, self._exit_one, batch, key, decision, quotes, now_ms)
        if entries:
            self._entries(batch, cols, index, quotes, now_ms)
        if funding_rates is not None and self._settings.funding_enabled:
            self._funding(batch, funding_rates, quotes)
        self._store.apply(batch.fills, list(batch.changes.values()), self._recorded_ms())
        self._positions = batch.positions  # only after the commit: memory never runs ahead of the DB
        elapsed = (time.perf_counter() - started) * 1000.0
        if batch.opened or batch.closed:
            log.info("shadows opened=%d closed=%d funding=%d open=%d skipped=%d %.1fms", batch.opened,
                     batch.closed, batch.funding_rows, len(self._positions), batch.skipped, elapsed)
        self.last_report = ShadowTickReport(batch.opened, batch.closed, batch.funding_rows, batch.skipped,
                                            len(self._positions), elapsed)  # fmt: skip
        return self.last_report

    def _entries(self, batch: _Batch, cols: VariantColumns, index: Mapping[tuple[str, str], int],
                 quotes: Mapping[str, PriceQuote], now_ms: int) -> None:  # fmt: skip
        """`_entry_one` for the rows that can change something (a signal, a fault, a variant without
        exit rules), in key order; a quiet clean row only clears its key's logged fault."""
        rows = cols.rows
        clean = rows["fault"] == NO_FAULT
        ruled = self._ruled(batch, cols)[rows["variant"]]
        quiet = rows["signal"] == 0
        for key in sorted(self._faulted):
            i = index.get(key)
            if i is not None and key not in batch.touched and clean[i] and ruled[i] and quiet[i]:
                self._clear_fault(key)
        acting = np.flatnonzero(~(clean & ruled & quiet)).tolist()
        for key, i in sorted((cols.key(i), i) for i in acting):
            if key not in batch.touched:
                self._guarded(batch, key, self._entry_one, batch, key, cols.decision(i), quotes, now_ms)

    def _ruled(self, batch: _Batch, cols: VariantColumns) -> np.ndarray:
        """Per entry of `cols.variants`: True when the variant's exit rules are found (asked once)."""
        out = np.zeros(len(cols.variants), dtype=bool)
        for v in np.unique(cols.rows["variant"]).tolist():
            try:
                self._rules(batch, cols.variants[v])
                out[v] = True
            except Exception:  # _entry_one asks again and records the fault for each of its rows
                continue
        return out

    # ------------------------------------------------------------------ helpers
    def _quotes(self, cols: VariantColumns, quotes: Mapping[str, PriceQuote]) -> Mapping[str, PriceQuote]:
        wanted = {symbol for _variant, symbol in self._positions}
        wanted |= cols.signal_symbols()
        missing = sorted(wanted - quotes.keys())
        if not missing or self._mids is None:
            return quotes
        return {**quotes, **self._mids(missing)}

    def _guarded(self, batch: _Batch, key: tuple[str, str], fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except Exception as e:  # one variant's bad value never stops the fleet or the tick
            batch.skipped += 1
            self._fault_once(key, f"{type(e).__name__}: {e}")

    def _rules(self, batch: _Batch, variant: str) -> ExitRules:
        rules = batch.rules.get(variant)
        if rules is None:
            rules = batch.rules[variant] = self._rules_for(variant)
        return rules

    def _fault_once(self, key: tuple[str, str], detail: str) -> None:
        if key not in self._faulted:
            self._faulted.add(key)
            log.warning("shadow variant skipped variant=%s symbol=%s fault=%s", key[0], key[1], detail)

    def _clear_fault(self, key: tuple[str, str]) -> None:
        if key in self._faulted:
            self._faulted.discard(key)
            log.info("shadow variant decides again variant=%s symbol=%s", key[0], key[1])

    def _exit_one(self, batch: _Batch, key: tuple[str, str], decision: VariantDecision | None,
                  quotes: Mapping[str, PriceQuote], now_ms: int) -> None:  # fmt: skip
        position = self._positions[key]
        quote = quotes.get(position.symbol)
        if quote is None or quote.price is None or not quote.price > 0:
            return
        rules = self._rules(batch, position.variant)
        state = PositionState(
            side=position.side, entry_price=position.entry_price, size_coins=position.size_coins,
            entry_atr=position.entry_atr, entry_time_ms=position.opened_ms, trailing_sl=position.trailing_sl,
        )  # fmt: skip
        verdict = check_rules_exit(rules, state, quote.price)
        reason = None if verdict.reason is None else verdict.reason.value
        if verdict.action is not ExitAction.CLOSE and decision is not None and decision.fault is None:
            flag = decision.exit_long if position.side is PositionSide.LONG else decision.exit_short
            reason = INDICATOR_EXIT if flag else None
        if verdict.action is ExitAction.CLOSE or reason is not None:
            self._close(batch, key, position, quote, reason or "stop_loss", now_ms)
        elif verdict.trailing_sl != position.trailing_sl:
            batch.set(key, replace(position, trailing_sl=verdict.trailing_sl))

    def _close(self, batch: _Batch, key: tuple[str, str], position: ShadowPosition, quote: PriceQuote,
               reason: str, now_ms: int) -> None:  # fmt: skip
        params = self._settings.fill
        side = fill_model.order_side(position.side, opening=False)
        priced = fill_model.fill_price(side, market_quote(quote, now_ms, use_bbo=params.use_bbo),
                                       quote.price or 0.0, params, now_ms)  # fmt: skip
        if priced is None:
            return
        size = position.size_coins
        realised = fill_model.realised_pnl_usd(position.side, position.entry_price, priced.price, size)
        fill = self._fill(position, LedgerKind.CLOSE, size, priced, realised, 0.0, reason, now_ms)
        batch.fills.append(fill)
        batch.set(key, None)
        batch.touched.add(key)
        batch.closed += 1

    def _entry_one(self, batch: _Batch, key: tuple[str, str], decision: VariantDecision,
                   quotes: Mapping[str, PriceQuote], now_ms: int) -> None:  # fmt: skip
        if decision.fault is not None:
            batch.skipped += 1
            self._fault_once(key, decision.fault)
            return
        self._rules(batch, decision.variant)  # raises for a variant without exit rules: never open stopless
        self._clear_fault(key)
        side = _SIDE.get(decision.signal)
        if side is None or key in batch.positions:
            return
        quote = quotes.get(key[1])
        if quote is None or quote.price is None or not quote.price > 0:
            return
        params = self._settings.fill
        priced = fill_model.fill_price(fill_model.order_side(side, opening=True),
                                       market_quote(quote, now_ms, use_bbo=params.use_bbo),
                                       quote.price, params, now_ms)  # fmt: skip
        if priced is None:
            return
        size = self._settings.notional_usd / priced.price
        atr = decision.entry_atr if math.isfinite(decision.entry_atr) and decision.entry_atr > 0 else 0.0
        position = ShadowPosition(
            variant=decision.variant, strategy=decision.strategy, symbol=key[1], side=side, size_coins=size,
            entry_price=priced.price, entry_atr=atr, opened_ms=now_ms, last_funding_ms=now_ms,
        )  # fmt: skip
        reason = f"signal_{decision.signal.value.lower()}"
        batch.fills.append(self._fill(position, LedgerKind.OPEN, size, priced, 0.0, 0.0, reason, now_ms))
        batch.set(key, position)
        batch.touched.add(key)
        batch.opened += 1

    def _funding(self, batch: _Batch, rates: Mapping[str, float], quotes: Mapping[str, PriceQuote]) -> None:
        for key in sorted(batch.positions):
            position = batch.positions[key]
            rate = rates.get(position.symbol)
            if rate is None or not math.isfinite(rate):
                continue  # no known rate: skipped, the hours catch up later (as the paper broker)
            quote = quotes.get(position.symbol)
            mark = quote.price if quote is not None and quote.price is not None and quote.price > 0 else None
            price = position.entry_price if mark is None else mark
            for hour_ms in fill_model.funding_hours(position.last_funding_ms, batch.now_ms):
                delta = fill_model.funding_usd(position.side, position.size_coins, price, rate)
                priced = fill_model.PricedFill(price=price, source=None, slippage_bps=0.0)  # type: ignore[arg-type]
                reason = f"funding rate={rate:+.10f}"
                batch.fills.append(self._fill(position, LedgerKind.FUNDING, position.size_coins, priced, 0.0,
                                              delta, reason, hour_ms, fee=False))  # fmt: skip
                position = replace(position, last_funding_ms=hour_ms)
                batch.funding_rows += 1
            if position is not batch.positions[key]:
                batch.set(key, position)

    def _fill(self, position: ShadowPosition, kind: LedgerKind, size: float, priced: fill_model.PricedFill,
              realised: float, funding: float, reason: str, event_ms: int, *, fee: bool = True) -> ShadowFill:
        fee_usd = fill_model.fee_usd(size, priced.price, self._settings.fill.fee_rate) if fee else 0.0
        return ShadowFill(
            variant=position.variant, strategy=position.strategy, kind=kind, symbol=position.symbol,
            side=position.side, size_coins=size, price=priced.price, notional_usd=abs(size) * priced.price,
            fee_usd=fee_usd, realised_pnl_usd=realised, funding_usd=funding,
            price_source=None if priced.source is None else priced.source.value,
            reason=reason, event_ms=event_ms, recorded_ms=self._recorded_ms(),
        )  # fmt: skip
