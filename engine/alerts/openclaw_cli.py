"""The `openclaw message send` CLI as an alert transport (used when the binary is installed).

Owns finding the binary (`AI_QUANT_OPENCLAW_BIN`, else PATH, else a few conventional install
places), validating channel/target pairs before anything is spawned, and sorting failures into
transient (timeout, killed, rate-limited: worth a retry) and permanent ones.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from engine.enums import AlertChannel

MAX_MESSAGE_CHARS = 8_000
_TRANSIENT_EXIT_CODES = {9, 137, 143, -9, -15}
_TRANSIENT_STDERR = ("rate limit", "429", "timed out", "temporarily")

_TARGET_PATTERNS: dict[AlertChannel, re.Pattern[str]] = {
    AlertChannel.DISCORD: re.compile(r"^(#[A-Za-z0-9_-]{1,100}|\d{15,25})$"),
    AlertChannel.TELEGRAM: re.compile(r"^(@[A-Za-z0-9_]{4,64}|-?\d{3,20})$"),
    AlertChannel.SLACK: re.compile(r"^(#[a-z0-9_-]{1,80}|[CGD][A-Z0-9]{6,20})$"),
    AlertChannel.WEBHOOK: re.compile(r"^https://\S+$"),
    AlertChannel.EMAIL: re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
}


class AlertDeliveryError(RuntimeError):
    """A message could not be delivered; `transient` says whether a retry may succeed."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def valid_target(channel: AlertChannel, target: str) -> bool:
    """Return True when `target` has the shape the channel expects (e.g. discord `#name` or an id)."""
    return bool(_TARGET_PATTERNS[channel].match(target))


def find_openclaw(env: Mapping[str, str]) -> str | None:
    """Return the openclaw binary to use, or None when it is not installed."""
    explicit = env.get("AI_QUANT_OPENCLAW_BIN", "").strip()
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    on_path = shutil.which("openclaw")
    if on_path:
        return on_path
    home = Path(env.get("HOME", str(Path.home())))
    for candidate in (
        home / ".local/bin/openclaw",
        home / ".npm-global/bin/openclaw",
        Path("/usr/local/bin/openclaw"),
    ):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def check_message(message: str) -> str:
    """Return the message truncated to the CLI limit; raise AlertDeliveryError if empty or has NUL."""
    if not message.strip() or "\x00" in message:
        raise AlertDeliveryError("alert message is empty or contains NUL", transient=False)
    return message[:MAX_MESSAGE_CHARS]


def send_message(binary: str, channel: AlertChannel, target: str, message: str, timeout_secs: float) -> None:
    """Run `openclaw message send --channel C --target T --message M`; raise AlertDeliveryError."""
    if not valid_target(channel, target):
        raise AlertDeliveryError(f"invalid {channel} target {target!r}", transient=False)
    text = check_message(message)
    argv = [binary, "message", "send", "--channel", channel.value, "--target", target, "--message", text]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_secs, check=False)
    except subprocess.TimeoutExpired:
        raise AlertDeliveryError(f"openclaw timed out after {timeout_secs}s", transient=True) from None
    except OSError as exc:
        raise AlertDeliveryError(f"openclaw could not run: {exc.strerror}", transient=False) from exc
    if done.returncode == 0:
        return
    stderr = (done.stderr or "").lower()
    transient = done.returncode in _TRANSIENT_EXIT_CODES or any(word in stderr for word in _TRANSIENT_STDERR)
    raise AlertDeliveryError(f"openclaw exited with {done.returncode}", transient=transient)
