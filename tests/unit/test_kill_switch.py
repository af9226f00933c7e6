"""engine.risk.kill_switch (one parser for env and file) driven through RiskManager.poll with a real file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.enums import KillCommand, KillSource, RiskReason, TradingState, TradingStateEvent
from engine.execution.broker import OrderIntent
from engine.risk.kill_switch import KillReading, KillSwitchSources, kill_events, parse_kill_text
from engine.risk.limits import RiskLimits
from engine.risk.manager import Deny, RiskManager
from engine.risk.state import RiskStateStore
from strategies.enums import EntryKind, ExitReason, PositionSide, TradeAction
from tests.unit.test_risk_check import _account, _position

NOW = 1_767_225_600_000


@pytest.mark.parametrize(
    ("text", "command", "recognised"),
    [
        (None, None, True),
        ("", None, True),
        ("   ", None, True),
        ("close_only", KillCommand.CLOSE_ONLY, True),
        (" CLOSE ", KillCommand.CLOSE_ONLY, True),
        ("halt_all", KillCommand.HALT_ALL, True),
        ("Halt", KillCommand.HALT_ALL, True),
        ("stop", KillCommand.HALT_ALL, True),
        ("2", KillCommand.HALT_ALL, True),
        ("clear", KillCommand.CLEAR, True),
        ("resume", KillCommand.CLEAR, True),
        ("0", None, True),
        ("off", None, True),
        ("false", None, True),
        ("1", KillCommand.CLOSE_ONLY, True),
        ("yes", KillCommand.CLOSE_ONLY, True),
        ("please stop trading", KillCommand.CLOSE_ONLY, False),  # unknown: fail closed
    ],
)
def test_parse_kill_text(text: str | None, command: KillCommand | None, recognised: bool) -> None:
    parsed, _, ok = parse_kill_text(text)
    assert (parsed, ok) == (command, recognised)


def test_parse_truthy_uses_kill_switch_mode() -> None:
    assert parse_kill_text("true", truthy_mode=KillCommand.HALT_ALL)[0] is KillCommand.HALT_ALL
    sources = KillSwitchSources(env={"AI_QUANT_KILL_SWITCH": "1", "AI_QUANT_KILL_SWITCH_MODE": "halt_all"})
    env_reading, _ = sources.poll()
    assert env_reading.command is KillCommand.HALT_ALL
    bad_mode = KillSwitchSources(env={"AI_QUANT_KILL_SWITCH": "1", "AI_QUANT_KILL_SWITCH_MODE": "bogus"})
    assert bad_mode.poll()[0].command is KillCommand.CLOSE_ONLY


def test_file_readings(tmp_path: Path) -> None:
    path = tmp_path / "KILL"
    sources = KillSwitchSources.from_env({"AI_QUANT_KILL_SWITCH_FILE": str(path)})
    assert sources.file_path == path
    assert sources.poll()[1].command is None  # absent
    path.write_text("")
    assert sources.poll()[1].command is KillCommand.CLOSE_ONLY  # touch = close_only
    path.write_text("\n\n  halt_all  \nclear\n")
    assert sources.poll()[1].command is KillCommand.HALT_ALL  # first non-empty line
    path.unlink()
    path.mkdir()
    unreadable = sources.poll()[1]
    assert (unreadable.command, unreadable.recognised) == (KillCommand.CLOSE_ONLY, False)


def test_kill_events_clear_is_an_edge_and_comes_first() -> None:
    env = KillReading(KillSource.ENV, KillCommand.HALT_ALL, "halt_all")
    file = KillReading(KillSource.FILE, KillCommand.CLEAR, "clear")
    events = [event for event, _ in kill_events((env, file), {})]
    assert events == [TradingStateEvent.CLEAR, TradingStateEvent.KILL_HALT_ALL]
    assert [e for e, _ in kill_events((file,), {KillSource.FILE: "clear"})] == []


@pytest.fixture
def kill_file(tmp_path: Path) -> Path:
    return tmp_path / "KILL"


def _manager(db: Path, kill_file: Path, env: dict[str, str] | None = None) -> RiskManager:
    full_env = {"AI_QUANT_KILL_SWITCH_FILE": str(kill_file)} | (env or {})
    return RiskManager(
        RiskLimits(max_drawdown_pct=5.0),
        RiskStateStore.open(db),
        KillSwitchSources.from_env(full_env),
        full_env,
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "risk.db"


ENTRY = OrderIntent(
    symbol="BTC", action=TradeAction.OPEN, side=PositionSide.LONG, reference_price=100.0, event_ms=NOW,
    reason=EntryKind.STANDARD, size_coins=1.0,
)  # fmt: skip
EXIT = OrderIntent(
    symbol="ETH", action=TradeAction.CLOSE, side=PositionSide.LONG, reference_price=100.0, event_ms=NOW,
    reason=ExitReason.STOP_LOSS,
)  # fmt: skip
HELD = {"ETH": _position()}


def _verdicts(manager: RiskManager, now: int) -> tuple[RiskReason | None, RiskReason | None, bool]:
    def code(intent: OrderIntent) -> RiskReason | None:
        verdict = manager.check(intent, _account(), HELD, now)
        return verdict.reason if isinstance(verdict, Deny) else None

    return code(ENTRY), code(EXIT), manager.check_cancel(now).allowed


def test_kill_file_close_only_halt_all_clear_without_restart(db: Path, kill_file: Path) -> None:
    manager = _manager(db, kill_file)
    assert manager.poll(NOW) == []
    assert _verdicts(manager, NOW) == (None, None, True)

    kill_file.write_text("close_only\n")
    (change,) = manager.poll(NOW + 1)
    assert change.to_state is TradingState.REDUCING and change.details["source"] == "file"
    assert _verdicts(manager, NOW + 1) == (RiskReason.TRADING_REDUCING, None, True)  # exits, cancels pass

    kill_file.write_text("halt_all")
    manager.poll(NOW + 2)
    assert _verdicts(manager, NOW + 2) == (RiskReason.TRADING_HALTED, RiskReason.TRADING_HALTED, True)

    kill_file.write_text("close_only")  # never downgrades a halt
    assert manager.poll(NOW + 3) == []
    assert manager.trading_state is TradingState.HALTED
    kill_file.unlink()  # deleting does not lift it
    manager.poll(NOW + 4)
    assert manager.trading_state is TradingState.HALTED

    kill_file.write_text("clear")
    (change,) = manager.poll(NOW + 5)
    assert (change.event, change.to_state) == (TradingStateEvent.CLEAR, TradingState.ACTIVE)
    assert _verdicts(manager, NOW + 5) == (None, None, True)


def test_clear_left_in_file_never_cancels_a_later_breaker(db: Path, kill_file: Path) -> None:
    kill_file.write_text("clear")
    manager = _manager(db, kill_file)
    manager.poll(NOW)
    manager.apply(TradingStateEvent.RECONCILE_MISMATCH, NOW + 1, {"symbol": "DOGE"})
    assert manager.poll(NOW + 2) == []
    assert manager.trading_state is TradingState.REDUCING
    # ...not after a restart either: the token seen is persisted.
    restarted = _manager(db, kill_file)
    assert restarted.poll(NOW + 3) == []
    assert restarted.trading_state is TradingState.REDUCING
    # Re-arming the clear (write something else, then clear again) lifts it.
    kill_file.write_text("close_only")
    restarted.poll(NOW + 4)
    kill_file.write_text("clear")
    restarted.poll(NOW + 5)
    assert restarted.trading_state is TradingState.ACTIVE


def test_env_halt_all_wins_over_file_clear(db: Path, kill_file: Path) -> None:
    kill_file.write_text("clear")
    manager = _manager(db, kill_file, {"AI_QUANT_KILL_SWITCH": "halt_all"})
    manager.poll(NOW)
    assert manager.trading_state is TradingState.HALTED


def test_kill_state_survives_restart(db: Path, kill_file: Path) -> None:
    manager = _manager(db, kill_file, {"AI_QUANT_KILL_SWITCH": "close_only"})
    manager.poll(NOW)
    restarted = _manager(db, kill_file)  # env no longer set: the kill stays until `clear`
    restarted.poll(NOW + 1)
    assert restarted.trading_state is TradingState.REDUCING
    assert _verdicts(restarted, NOW + 1)[0] is RiskReason.TRADING_REDUCING


def test_hard_kill_env_blocks_exits_but_not_cancels(db: Path, kill_file: Path) -> None:
    env = {"AI_QUANT_HARD_KILL_SWITCH": "1"}
    manager = _manager(db, kill_file, env)
    assert _verdicts(manager, NOW) == (RiskReason.HARD_KILL, RiskReason.HARD_KILL, True)
    assert manager.trading_state is TradingState.ACTIVE  # the hard kill is not a persisted state
