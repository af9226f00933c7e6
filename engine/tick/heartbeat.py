"""The engine heartbeat: one `engine ok` line every `engine.heartbeat_every_s` (AI_QUANT_HEARTBEAT_SECS).

Why: the per-tick status line is quiet between candle closes when nothing trades, and a monitor
needs a steady, parseable sign of life with the regime state (reference engine §3.8; the tokens
`loop=`, `errors=`, `symbols=`, `open_pos=`, `regime_gate=`, `regime_reason=`, `breadth=`,
`auto_rev=` keep the reference's spelling). Pure: the caller passes the wall time in ms.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.tick.regime import RegimeView


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatFacts:
    """What the heartbeat line reports (counters are since start)."""

    ticks: int
    errors: int
    symbols: int
    open_positions: int
    equity_usd: float
    loop_ms: float
    regime: RegimeView
    config_id: str


class Heartbeat:
    """Says when a heartbeat is due and formats it. `period_secs` <= 0 disables it."""

    def __init__(self, period_secs: float) -> None:
        self._period_ms = int(period_secs * 1000)
        self._last_ms: int | None = None

    def due(self, now_ms: int) -> bool:
        """True on the first call and then once `period_secs` have passed since the last beat."""
        if self._period_ms <= 0:
            return False
        if self._last_ms is not None and now_ms - self._last_ms < self._period_ms:
            return False
        self._last_ms = now_ms
        return True


def heartbeat_line(facts: HeartbeatFacts) -> str:
    """Return the single-line `engine ok ...` heartbeat."""
    regime = facts.regime
    breadth = regime.inputs.breadth_pct
    return (
        f"engine ok. loops={facts.ticks} errors={facts.errors} symbols={facts.symbols} "
        f"open_pos={facts.open_positions} loop={facts.loop_ms / 1000.0:.2f}s "
        f"equity={facts.equity_usd:.2f} regime_gate={'on' if regime.gate_on else 'off'} "
        f"regime_reason={regime.gate_reason.value} "
        f"breadth={'n/a' if breadth is None else f'{breadth:.1f}%'} "
        f"auto_rev={'ON' if regime.auto_reverse else 'OFF'} config_id={facts.config_id[:12] or 'none'}"
    )
