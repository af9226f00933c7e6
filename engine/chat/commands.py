"""What each chat command answers and does; no network here (engine/chat/telegram.py carries it).

/pause, /resume and /halt write the operator's kill-switch file (engine/risk/kill_switch.py):
`close_only`, `clear`, `halt_all`. The engine's risk manager reads that file every tick, exactly
as if the operator had written it by hand; nothing here touches risk state directly. The reply
says what the file reads back through the kill switch's own parser, so the operator sees the
command the engine will see.

A clear is an edge in the kill switch (applied when the file's token changes), so /resume writes
`clear`, or `resume` when the file already says `clear`: each /resume is a new operator clear.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from engine.risk.kill_switch import KillSwitchSources
from engine.web.queries import Snapshot, TradingDbReader

HELP = "commands: /status /positions /profit /pause (close only: no entries) /resume /halt (no orders)"
_KILL_TOKENS = {"/pause": "close_only", "/resume": "clear", "/halt": "halt_all"}


def write_kill_file(path: Path, token: str) -> None:
    """Replace the kill file's content with `token` atomically (a reader never sees it half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".kill-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _status(s: Snapshot) -> str:
    r = s.risk
    kill = r.kill_file or r.kill_env or "none"
    return (
        f"[{s.mode}] balance ${s.totals.balance_usd:,.2f} · open positions {len(s.positions)}\n"
        f"trading state {r.trading_state} · kill switch {kill}{' · HARD KILL' if r.hard_kill else ''}\n"
        f"last tick {s.shards.last_tick_id} · shard timeouts {s.shards.timeouts_recent} "
        f"in {s.shards.window_secs}s"
    )


def _positions(s: Snapshot) -> str:
    if not s.positions:
        return f"[{s.mode}] no open positions"
    lines = [
        f"{p.symbol} {p.side} {p.size_coins:g} @ {p.entry_price:g} (${p.notional_usd:,.2f}, "
        f"{p.leverage:g}x, {p.age_secs / 60:.0f} min)"
        for p in s.positions
    ]
    return f"[{s.mode}] open positions (at entry):\n" + "\n".join(lines)


def _profit(s: Snapshot) -> str:
    t = s.totals
    return (
        f"[{s.mode}] realised PnL ${t.realised_pnl_usd:,.2f} (today ${t.realised_today_usd:,.2f}) "
        f"over {t.closed_trades} closed trades\nfees ${t.fees_usd:,.2f} · funding ${t.funding_usd:,.2f} · "
        f"balance ${t.balance_usd:,.2f} (seed ${t.seed_usd:,.2f})"
    )


class ChatCommands:
    """Turns one allow-listed chat message into a reply (and, for the kill commands, a file write)."""

    def __init__(self, reader: TradingDbReader, kill_file: Path) -> None:
        self._reader = reader
        self._kill_file = kill_file

    def handle(self, text: str) -> str:
        """Answer `text`; unknown commands get the help line."""
        word = (text.strip().split() or [""])[0].lower().split("@", 1)[0]
        if word in _KILL_TOKENS:
            return self._kill(word)
        views = {"/status": _status, "/positions": _positions, "/profit": _profit}
        if word in views:
            return views[word](self._reader.snapshot())
        return HELP

    def _kill(self, word: str) -> str:
        sources = KillSwitchSources(env={}, file_path=self._kill_file)
        token = _KILL_TOKENS[word]
        if token == "clear" and sources.poll()[1].token == "clear":
            token = "resume"  # same command, new token: the kill switch sees a fresh clear
        write_kill_file(self._kill_file, token)
        _env_reading, reading = sources.poll()
        now = "none" if reading.command is None else reading.command.value
        return f"kill switch file now reads {now}; the engine applies it at its next tick"
