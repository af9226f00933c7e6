"""UnifiedEngine: one tick of the driver, identical in paper, dry_live and live.

A tick: poll the candle keys (one Redis round trip) -> send the symbols whose key changed to their
shards (one batched call per shard, with a deadline) -> Phase 1, exits for every open position
(pure `strategies.exits`, priced at the mid, every tick) -> Phase 2, entries: rank the new BUY/SELL
decisions by score (ties by symbol), run the entry gates (`engine.tick.entry_gates`), size them
(`strategies.sizing`) and execute through the `Broker` -> hourly funding when due. Every evaluated
candidate leaves a decision event; every fill carries the id of the event that caused it.

Deliberate differences from the reference (§18): exits run every tick (no cadence that defaults to
never); ranking uses the shard's score; a signal flip closes and then re-enters the other side in
every mode (the flip close exempts the re-entry cooldown); entry candle keys are restored from the
decision log at start, so a restart never re-enters on a candle it already traded.
Errors are caught per symbol (logged, counted, no order); nothing here retries an order.
With `protections` (engine/tick/protections.py), each tick first polls the risk manager and runs
the drawdown close-all; every filled order is one TRADE alert (engine/alerts/notices.py).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cluster.executor import ShardExecutor
from cluster.records import ShardDecision
from engine.alerts.notices import notify_trade
from engine.enums import (
    DecisionEventType,
    DecisionPhase,
    DecisionStatus,
    GateCode,
    LedgerKind,
    ReloadOutcome,
)
from engine.execution.broker import Broker, ExitState, OrderIntent, OrderResult, Position
from engine.execution.trade_store import TradeStore
from engine.marketdata.hub import PriceQuote
from engine.tick.blind import BlindWatch, TickSight
from engine.tick.decision_log import DecisionEvent, EventLogger, GateCheck, new_decision_id
from engine.tick.engine_hooks import EngineHooks
from engine.tick.entry_gates import (
    Candidate,
    EntryContext,
    GateOutcome,
    check_add_gates,
    check_open_gates,
    gate_for_block,
    rank,
)
from engine.tick.funding_poll import FundingPoller
from engine.tick.protections import Protections
from engine.tick.regime import RegimeView
from engine.tick.sdk_primary import SdkPrimaryStep, entry_config, record_atr
from engine.tick.shadow import ShadowFleet
from engine.tick.shard_reader import ShardReader, candidate_of, exit_snapshot
from engine.tick.strategy_manager import AlertSink, StrategyManager
from engine.tick.types import (
    EngineOptions,
    FundingSource,
    MarketView,
    ReconfigurableExecutor,
    TickCounts,
    TickReport,
    TickTiming,
    execution_fields,
    market_quote,
    pending_fields,
    position_state,
    reject_detail,
    wall_ms,
)
from strategies.config import StrategyConfig
from strategies.enums import ExitAction, ExitReason, PositionSide, TradeAction
from strategies.exits import check_exit
from strategies.sizing import (
    EntrySizing,
    LastClose,
    check_add,
    compute_add_sizing,
    compute_entry_sizing,
    side_for,
)

log = logging.getLogger(__name__)

_ENTRY_KEY_LOOKBACK_MS = 7 * 86_400_000
# Entry events that count as an entry on the candle after a restart (`_restore_entry_keys`).
_ENTERED = (DecisionStatus.EXECUTED, DecisionStatus.PENDING)


class UnifiedEngine:
    """Runs ticks; owns only in-memory caches (candle keys, features, entry keys), all rebuildable."""

    def __init__(
        self,
        *,
        strategy: StrategyManager,
        market: MarketView,
        executor: ShardExecutor,
        broker: Broker,
        trades: TradeStore,
        events: EventLogger,
        watchlist: Callable[[], Sequence[str]],
        options: EngineOptions,
        alerts: AlertSink | None = None,
        funding: FundingSource | None = None,
        sz_decimals: Callable[[str], int | None] = lambda _symbol: None,
        recorded_ms: Callable[[], int] = wall_ms,
        protections: Protections | None = None,
        blind: BlindWatch | None = None,
        shadows: ShadowFleet | None = None,
    ) -> None:
        self._strategy = strategy
        self._market = market
        self._executor = executor
        self._broker = broker
        self._trades = trades
        self._events = events
        self._watchlist = watchlist
        self._opts = options
        self._alerts = alerts
        self._funding = FundingPoller(
            funding, enabled=options.funding_enabled, poll_ms=options.funding_poll_ms
        )
        self._sz_decimals = sz_decimals
        self._recorded_ms = recorded_ms
        self._protections = protections
        self._tick_id = 0
        self._shards = ShardReader(executor, deadline_ms=options.shard_deadline_ms, alerts=alerts)
        self._entry_keys: dict[str, tuple[int, int]] = {}
        self._last_entry_attempt: dict[str, int] = {}
        self._hooks = EngineHooks(options.heartbeat_secs)
        self._regime = RegimeView()  # this tick's market regime (engine.tick.regime)
        self._blind = blind or BlindWatch(alerts)  # engine.tick.blind: says so when nothing can be decided
        self._sdk = SdkPrimaryStep(lambda: strategy.overrides.plan, alerts)  # exits/faults of SDK primaries
        self._shadows = shadows  # engine.tick.shadow: paper books of the shadow variants, never an order
        self._restore_entry_keys()

    @property
    def shard_answers(self) -> dict[str, int]:
        """How the shards answered in the last tick: record status -> count (`last_tick` file)."""
        return {status.value: n for status, n in self._shards.answers.items()}

    def _restore_entry_keys(self) -> None:
        since = self._market.venue_now_ms() - _ENTRY_KEY_LOOKBACK_MS
        for event in self._events.events(since_ms=since):
            # a PENDING entry (the daemon died with the order in flight) counts: never re-sent
            if event.event_type is DecisionEventType.ENTRY_SIGNAL and event.status in _ENTERED:
                open_count = int(event.context.get("open_positions_after", 0))
                self._entry_keys[event.symbol] = (event.event_ms, open_count)

    # ------------------------------------------------------------------ tick
    def tick(self) -> TickReport:
        """Run one tick; per-symbol errors are contained and counted."""
        started = time.perf_counter()
        self._tick_id += 1
        reload = self._reload()
        now = self._market.venue_now_ms()
        positions = self._broker.positions()
        glob = self._strategy.config(None)
        watch = self._hooks.watch(self._watchlist(), glob)
        symbols = sorted(watch | set(positions) | self._hooks.context_symbols(glob))
        snapshot = self._market.candle_keys(symbols, self._opts.interval)
        keys = snapshot.keys
        t_keys = time.perf_counter()
        decisions = self._shards.evaluate(keys, set(positions), every=self._hooks.wants_snapshots(glob))
        decisions, self._regime = self._hooks.regime(decisions, glob, watch)
        sight = TickSight(snapshot.source, self._shards.answers, snapshot.health)
        blind = self._blind.observe(sight, self._tick_id, len(positions))
        t_shards = time.perf_counter()
        counts = TickCounts()
        counts.events.extend(self._sdk.fault_events(decisions, self._event))
        quote_symbols = sorted(set(positions) | {s for s, d in decisions.items() if d.actionable})
        quotes = self._market.get_mids(quote_symbols, self._opts.mid_max_age_secs) if quote_symbols else {}
        if self._protections is not None:  # kill switches, breakers, drawdown close-all, health
            self._protections.on_tick(self._broker, quotes, now, counts, self._event, self._record_now)
        for symbol in sorted(positions):
            self._guarded(counts, symbol, self._exit_one, symbol, decisions.get(symbol), quotes, now, counts)
        t_exits = time.perf_counter()
        if blind is None:  # blind: open nothing on data the shards could not see (exits ran above)
            self._entries(decisions, watch, quotes, now, counts)
        t_entries = time.perf_counter()
        self._accrue_funding(quotes, now, counts)
        if self._shadows is not None:
            self._shadow_tick(self._shadows, decisions, quotes, now, counts, entries=blind is None)
        if counts.events:
            self._events.record_many(counts.events)
        finished = time.perf_counter()
        marks = {s: q.price for s, q in quotes.items() if q.price is not None}
        account = self._broker.account(marks, now)

        timing = TickTiming.between(started, t_keys, t_shards, t_exits, t_entries, finished)
        report = TickReport(
            tick_id=self._tick_id,
            now_ms=now,
            symbols=len(symbols),
            evaluated=len(decisions),
            opened=counts.opened,
            added=counts.added,
            reduced=counts.reduced,
            closed=counts.closed,
            blocked=counts.blocked,
            errors=counts.errors,
            open_positions=account.open_positions,
            cash_usd=account.cash_usd,
            equity_usd=account.equity_usd,
            reload=reload,
            timing=timing,
            market=self._blind.status,
        )
        return self._hooks.heartbeat(report, self._strategy.snapshot().config_id, self._recorded_ms())

    def _guarded(self, counts: TickCounts, symbol: str, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # per symbol: one bad symbol must not stop the tick; no order is retried
            counts.errors += 1
            log.exception("engine error mode=%s symbol=%s tick=%d", self._broker.mode, symbol, self._tick_id)

    def _reload(self) -> ReloadOutcome:
        outcome = self._strategy.maybe_reload()
        if outcome in (ReloadOutcome.RELOADED, ReloadOutcome.RESTART_REQUIRED) and isinstance(
            self._executor, ReconfigurableExecutor
        ):
            self._executor.update_configs(self._strategy.config_source())
        return outcome

    # ------------------------------------------------------------------ events
    def _event(self, symbol: str, event_ms: int, **fields: Any) -> DecisionEvent:
        recorded = self._recorded_ms()
        fields.setdefault("event_id", new_decision_id(recorded))
        return self._events.new_event(
            symbol=symbol, event_ms=event_ms, recorded_ms=recorded, tick_id=self._tick_id, **fields
        )

    def _record_now(self, event: DecisionEvent) -> None:
        # Orders get their event written at once (not at the end of the tick): PENDING before the
        # order is sent (`_send`), replaced by the outcome after.
        self._events.record(event)

    def _send(self, intent: OrderIntent, now: int, event_type: DecisionEventType) -> OrderResult:
        """Execute `intent` once its decision event is on disk (PENDING), so that no crash can leave
        a fill without one (the fill links itself to it); if that write fails, nothing is sent."""
        self._record_now(self._event(intent.symbol, intent.event_ms, event_id=intent.decision_id,
                                     event_type=event_type, **pending_fields(intent.action)))  # fmt: skip
        return self._broker.execute(intent, now)

    # ------------------------------------------------------------------ Phase 1: exits
    def _exit_one(
        self,
        symbol: str,
        decision: ShardDecision | None,
        quotes: Mapping[str, PriceQuote],
        now: int,
        counts: TickCounts,
    ) -> None:
        position = self._broker.positions().get(symbol)
        quote = quotes.get(symbol)
        if position is None or quote is None or quote.price is None or quote.price <= 0:
            return
        cfg = self._strategy.config(symbol)
        snapshot = exit_snapshot(self._shards.features(symbol), self._funding.rate(symbol))
        last_close = self._trades.last_close(symbol)
        sdk_exit = self._sdk.exit_decision(symbol, cfg, position, quote.price, decision)
        exit_decision = sdk_exit if sdk_exit is not None else check_exit(
            position_state(position),
            quote.price,
            snapshot,
            cfg,
            now,
            symbol=symbol,
            signal=None if decision is None else decision.signal,
            last_close_ms=None if last_close is None else last_close.event_ms,
            sz_decimals=self._sz_decimals(symbol),
        )
        event_ms = now if decision is None else decision.candle_key
        if exit_decision.action is ExitAction.HOLD:
            if (exit_decision.trailing_sl, exit_decision.tp1_taken) != (
                position.trailing_sl,
                position.tp1_taken,
            ):
                state = ExitState(trailing_sl=exit_decision.trailing_sl, tp1_taken=exit_decision.tp1_taken)
                self._broker.update_exit_state(symbol, state, now)
            if decision is not None:
                counts.events.append(
                    self._hold_event(symbol, event_ms, decision, exit_decision.hold_reason.value)
                )
            return
        action = TradeAction.CLOSE if exit_decision.action is ExitAction.CLOSE else TradeAction.REDUCE
        remaining = position.size_coins - exit_decision.size_coins
        if action is TradeAction.REDUCE and remaining * quote.price < self._opts.dust_notional_usd:
            action = TradeAction.CLOSE  # the dust rule: never leave a remainder too small to close
        reason = exit_decision.reason or ExitReason.STOP_LOSS
        event_id = new_decision_id(self._recorded_ms())
        intent = OrderIntent(
            symbol=symbol,
            action=action,
            side=position.side,
            reference_price=quote.price,
            event_ms=event_ms,
            reason=reason,
            size_coins=exit_decision.size_coins if action is TradeAction.REDUCE else None,
            quote=market_quote(quote, now, use_bbo=cfg.trade.use_bbo_for_fills),
            confidence=position.confidence,
            decision_id=event_id,
        )
        result = self._send(intent, now, DecisionEventType.EXIT_CHECK)
        notify_trade(self._alerts, result)
        if result.filled and action is TradeAction.REDUCE:
            state = ExitState(trailing_sl=exit_decision.trailing_sl, tp1_taken=exit_decision.tp1_taken)
            self._broker.update_exit_state(symbol, state, now)
        if result.filled:
            counts.closed += action is TradeAction.CLOSE
            counts.reduced += action is TradeAction.REDUCE
        self._record_now(
            self._event(
                symbol,
                event_ms,
                event_id=event_id,
                event_type=DecisionEventType.EXIT_CHECK,
                signal=None if decision is None else decision.signal,
                confidence=None if decision is None else decision.confidence,
                score=None if decision is None else decision.score,
                context={
                    "price": quote.price,
                    "levels": dict(exit_decision.levels),
                    **reject_detail(result),
                },
                **execution_fields(result, action, reason),
            )
        )

    def _hold_event(self, symbol: str, event_ms: int, decision: ShardDecision, hold: str) -> DecisionEvent:
        return self._event(
            symbol,
            event_ms,
            event_type=DecisionEventType.EXIT_CHECK,
            status=DecisionStatus.HOLD,
            phase=DecisionPhase.SIGNAL_GENERATION,
            action_taken="hold",
            signal=decision.signal,
            confidence=decision.confidence,
            score=decision.score,
            reason_code=None if hold == "none" else hold,
        )

    # ------------------------------------------------------------------ Phase 2: entries
    def _entries(
        self,
        decisions: Mapping[str, ShardDecision],
        watch: set[str],
        quotes: Mapping[str, PriceQuote],
        now: int,
        counts: TickCounts,
    ) -> None:
        records = {d.symbol: d for d in decisions.values() if d.actionable and d.symbol in watch}
        for candidate in rank(candidate_of(d) for d in records.values()):
            record = records[candidate.symbol]
            self._guarded(counts, candidate.symbol, self._entry_one, candidate, record, quotes, now, counts)

    def _context(self, candidate: Candidate, now: int, counts: TickCounts, marks_stale: bool) -> EntryContext:
        positions = self._broker.positions()
        last_key = self._entry_keys.get(candidate.symbol)
        return EntryContext(
            now_ms=now,
            open_positions=len(positions),
            marks_stale=marks_stale,
            last_entry_key=None if last_key is None else last_key[0],
            open_positions_at_last_entry=None if last_key is None else last_key[1],
            last_entry_attempt_ms=self._last_entry_attempt.get(candidate.symbol),
            entries_this_tick=counts.entries,
            last_close=self._last_close(candidate.symbol),
            entry_max_delay_ms=self._opts.entry_max_delay_ms,
            retry_on_capacity=self._opts.retry_on_capacity,
            regime=self._regime,
        )

    def _entry_one(
        self,
        candidate: Candidate,
        record: ShardDecision,
        quotes: Mapping[str, PriceQuote],
        now: int,
        counts: TickCounts,
    ) -> None:
        symbol = candidate.symbol
        cfg = entry_config(self._strategy.config(symbol), sdk=record.primary is not None)
        position = self._broker.positions().get(symbol)
        side = side_for(candidate.signal)
        if position is not None and position.side is not side:
            flip = GateCheck(
                gate=GateCode.SIGNAL_FLIP, passed=False, details={"open_side": position.side.value}
            )
            self._blocked(candidate, GateOutcome((flip,), GateCode.SIGNAL_FLIP.value), counts)
            return
        quote = quotes.get(symbol)
        price = None if quote is None else quote.price
        marks = {s: q.price for s, q in quotes.items() if q.price is not None}
        account = self._broker.account(marks, now)
        ctx = self._context(candidate, now, counts, account.marks_stale)
        gates = (
            check_open_gates(candidate, ctx, cfg)
            if position is None
            else check_add_gates(candidate, ctx, cfg)
        )
        if not gates.passed:
            self._blocked(candidate, gates, counts)
            return
        if price is None or price <= 0:
            zero = GateCheck(gate=GateCode.ZERO_PRICE, passed=False)
            self._blocked(candidate, GateOutcome((*gates.checks, zero), GateCode.ZERO_PRICE.value), counts)
            return
        sizing_check, sizing = self._size(
            candidate, record, position, cfg, price, account.equity_usd, account.margin_used_usd, now
        )
        checks = (*gates.checks, sizing_check)
        if sizing is None or not sizing_check.passed:
            self._blocked(candidate, GateOutcome(checks, str(sizing_check.gate)), counts)
            return
        self._execute_entry(candidate, record, position, side, price, quote, sizing, checks, now, counts)

    def _size(
        self,
        candidate: Candidate,
        record: ShardDecision,
        position: Position | None,
        cfg: StrategyConfig,
        price: float,
        equity: float,
        open_margin: float,
        now: int,
    ) -> tuple[GateCheck, EntrySizing | None]:
        snap = candidate.snapshot
        features = record.features
        adx, atr = (math.nan if features is None else features.adx), record_atr(record)
        decimals = self._sz_decimals(candidate.symbol)
        if position is None:
            sizing = compute_entry_sizing(
                equity_usd=equity,
                price=price,
                confidence=candidate.confidence,
                adx=adx,
                atr=atr,
                cfg=cfg,
                open_margin_usd=open_margin,
                sz_decimals=decimals,
            )
        else:
            rule = check_add(
                position_state(position),
                price=price,
                confidence=candidate.confidence,
                snapshot=snap,
                cfg=cfg,
                now_ms=now,
            )
            if not rule.ok:
                assert rule.block is not None
                return GateCheck(gate=rule.block.value, passed=False, details=dict(rule.details)), None
            sizing = compute_add_sizing(
                position_state(position),
                equity_usd=equity,
                price=price,
                confidence=candidate.confidence,
                adx=adx,
                atr=atr,
                cfg=cfg,
                open_margin_usd=open_margin,
                sz_decimals=decimals,
            )
        if not sizing.ok:
            assert sizing.block is not None
            return GateCheck(
                gate=gate_for_block(sizing.block), passed=False, details=dict(sizing.details)
            ), sizing
        details = {
            "size_coins": sizing.size_coins,
            "notional_usd": sizing.notional_usd,
            "leverage": sizing.leverage,
        }
        return GateCheck(gate="sizing", passed=True, details=details), sizing

    def _execute_entry(
        self,
        candidate: Candidate,
        record: ShardDecision,
        position: Position | None,
        side: PositionSide,
        price: float,
        quote: PriceQuote | None,
        sizing: EntrySizing,
        checks: tuple[GateCheck, ...],
        now: int,
        counts: TickCounts,
    ) -> None:
        symbol = candidate.symbol
        use_bbo = self._strategy.config(symbol).trade.use_bbo_for_fills
        action = TradeAction.OPEN if position is None else TradeAction.ADD
        event_id = new_decision_id(self._recorded_ms())
        atr = record_atr(record)
        intent = OrderIntent(
            symbol=symbol,
            action=action,
            side=side,
            reference_price=price,
            event_ms=candidate.candle_key,
            reason=record.entry_kind,
            size_coins=sizing.size_coins,
            quote=None if quote is None else market_quote(quote, now, use_bbo=use_bbo),
            confidence=candidate.confidence,
            leverage=sizing.leverage,
            entry_atr=atr if math.isfinite(atr) and atr > 0 else None,
            decision_id=event_id,
        )
        counts.entries += 1
        self._last_entry_attempt[symbol] = now
        result = self._send(intent, now, DecisionEventType.ENTRY_SIGNAL)
        notify_trade(self._alerts, result)
        open_after = len(self._broker.positions())
        if result.filled:
            self._entry_keys[symbol] = (candidate.candle_key, open_after)
            counts.opened += action is TradeAction.OPEN
            counts.added += action is TradeAction.ADD
        else:
            counts.blocked += 1
        self._record_now(
            self._event(
                symbol,
                candidate.candle_key,
                event_id=event_id,
                event_type=DecisionEventType.ENTRY_SIGNAL,
                signal=candidate.signal,
                confidence=candidate.confidence,
                score=candidate.score,
                gates=checks,
                context={"price": price, "open_positions_after": open_after, **reject_detail(result)},
                **execution_fields(result, action, None),
            )
        )

    def _blocked(self, candidate: Candidate, outcome: GateOutcome, counts: TickCounts) -> None:
        counts.blocked += 1
        position = self._broker.positions().get(candidate.symbol)
        counts.events.append(
            self._event(
                candidate.symbol,
                candidate.candle_key,
                event_type=DecisionEventType.GATE_BLOCK,
                status=DecisionStatus.BLOCKED,
                phase=DecisionPhase.GATE_EVALUATION,
                action_taken="blocked",
                signal=candidate.signal,
                confidence=candidate.confidence,
                score=candidate.score,
                action=TradeAction.OPEN if position is None else TradeAction.ADD,
                reason_code=outcome.blocked_by,
                gates=outcome.checks,
            )
        )

    def _last_close(self, symbol: str) -> LastClose | None:
        fill = self._trades.last_close(symbol)
        if fill is None or fill.position_side is None:
            return None
        try:
            reason = ExitReason(fill.reason)
        except ValueError:
            reason = ExitReason.STOP_LOSS  # unknown reason: apply the cooldown (conservative)
        return LastClose(side=fill.position_side, time_ms=fill.event_ms, reason=reason)

    def _shadow_tick(self, fleet: ShadowFleet, decisions: Mapping[str, ShardDecision],
                     quotes: Mapping[str, PriceQuote], now: int, counts: TickCounts,
                     *, entries: bool) -> None:  # fmt: skip
        # funding on the ticks the paper broker accrues it, at the rates it used
        rates = self._funding.rates if self._funding.polled_at(now) else None
        try:  # the fleet holds no broker: nothing here can send an order; its failure is only counted
            fleet.on_tick(decisions, quotes, now, funding_rates=rates, entries=entries)
        except Exception:
            counts.errors += 1
            log.exception("shadow fleet error mode=%s tick=%d", self._broker.mode, self._tick_id)

    # ------------------------------------------------------------------ funding
    def _accrue_funding(self, quotes: Mapping[str, PriceQuote], now: int, counts: TickCounts) -> None:
        try:
            rates = self._funding.poll(now)
        except Exception:  # a failed rate lookup only delays funding; the hours catch up later
            counts.errors += 1
            log.exception("funding rates unavailable mode=%s", self._broker.mode)
            return
        if rates is None:
            return
        marks = {s: q.price for s, q in quotes.items() if q.price is not None}
        for row in self._broker.accrue_funding(rates, marks, now):
            if row.kind is not LedgerKind.FUNDING:
                continue
            counts.events.append(
                self._event(
                    row.symbol,
                    row.event_ms,
                    event_type=DecisionEventType.FUNDING,
                    status=DecisionStatus.EXECUTED,
                    phase=DecisionPhase.EXECUTION,
                    action_taken="funding",
                    trade_id=row.trade_id,
                    context={"funding_usd": row.funding_usd, "price": row.price},
                )
            )
