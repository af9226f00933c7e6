"""The Hyperliquid client error types, ordered by the action each calls for (house style §4.10).

`ParseError` (the answer's shape is wrong, names the field), `TemporaryVenueError` (retry later)
and `VenueRejection` (the venue refused; do not retry) all derive from `VenueError`. Re-exported by
`engine.venue.types`, which is where callers import them from.
"""

from __future__ import annotations


class VenueError(Exception):
    """Base of every error raised by the Hyperliquid clients."""


class ParseError(VenueError, ValueError):
    """A venue answer does not have the expected shape; names the request and the field path."""

    def __init__(self, request: str, field: str, reason: str) -> None:
        super().__init__(f"{request}: field {field or '<body>'}: {reason}")
        self.request = request
        self.field = field
        self.reason = reason


class TemporaryVenueError(VenueError):
    """The venue could not be reached or was overloaded and the retries ran out (retry later)."""

    def __init__(self, request: str, attempts: int, detail: str) -> None:
        super().__init__(f"{request}: gave up after {attempts} attempt(s): {detail}")
        self.request = request
        self.attempts = attempts
        self.detail = detail


class VenueRejection(VenueError):
    """The venue refused the request itself (4xx or an error body); retrying will not help."""

    def __init__(self, request: str, status_code: int | None, message: str) -> None:
        super().__init__(f"{request}: rejected (http {status_code}): {message}")
        self.request = request
        self.status_code = status_code
        self.message = message
