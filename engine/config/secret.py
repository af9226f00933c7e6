"""`Secret`: the one type that holds key material, webhook URLs and bot tokens.

Why one type: a value read from a secrets file or the environment must never reach a log line,
an alert, an exception message or a pickle sent to another process. `Secret` shows itself as
`<redacted>` in repr, str, f-strings and %-formatting, refuses to be pickled, and hands out the
text only through `reveal()`, called where the value is used (building the signer, posting to a
webhook). Wallet secrets (`engine.venue.secrets`) and alert targets (`engine.alerts.alerting`)
both use it.
"""

from __future__ import annotations

from typing import Any

REDACTED = "<redacted>"


class Secret:
    """A string that never shows itself in repr, str, f-strings, %-formatting or pickles."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret text; call only where it is used."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __reduce__(self) -> Any:
        raise TypeError("Secret must not be pickled")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))
