"""Times on the command line of the tools (`--since`, `--until`, `--start`, `--end`): epoch ms or ISO.

Why one parser: the report's window and the download's range must read the same text the same
way; a time without an offset is UTC, the unit everything in the ledgers uses.
"""

from __future__ import annotations

from datetime import UTC, datetime

from engine.config.env import ConfigError


def parse_time_ms(text: str | None) -> int | None:
    """Epoch ms, or an ISO date/time (UTC when no offset is given); ConfigError when neither."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"bad time {text!r}: want epoch ms or ISO, e.g. 2026-01-31 or 2026-01-31T12:00"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)
